"""Fetching the IDX and CIFAR datasets from their official sources, with md5 checksums.

A file is downloaded to a temporary file beside its destination, checked, then renamed into
place, so an interrupted or corrupted download never leaves a file that looks complete.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import socket
import tempfile
import threading
import urllib.parse
import urllib.request
from pathlib import Path

from tqdm import tqdm

from limitlab.errors import LimitlabError

# Base URLs (with a trailing slash) of the official .gz files; tests point these at file:// folders.
# MNIST: the mirror torchvision uses (yann.lecun.com refuses automated downloads).
BASE_URLS = {
    "mnist": "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "fashion-mnist": "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
    "cifar10": "https://www.cs.toronto.edu/~kriz/",
    "cifar100": "https://www.cs.toronto.edu/~kriz/",
}

# md5 of each published .gz file (as listed in torchvision's dataset resources).
CHECKSUMS = {
    "mnist": {
        "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
        "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
        "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
        "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
    },
    "fashion-mnist": {
        "train-images-idx3-ubyte.gz": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
        "train-labels-idx1-ubyte.gz": "25c81989df183df01b3e8a0aad5dffbe",
        "t10k-images-idx3-ubyte.gz": "bef4ecab320f06d8554ea6380940ec79",
        "t10k-labels-idx1-ubyte.gz": "bb300cfdad3c16e7a12a480ee83cd310",
    },
    "cifar10": {"cifar-10-python.tar.gz": "c58f30108f718f92721af3b95e74349a"},
    "cifar100": {"cifar-100-python.tar.gz": "eb9058c3a382ffc7106e4002c42a8d85"},
}

TIMEOUT_S = 5.0  # connect/read timeout: a machine without network finds out within seconds


class DownloadUnavailable(Exception):
    """The file could not be fetched (no network, server error); the message says why."""


def _resolve_host(url: str, timeout: float) -> None:
    """Look up the URL's host name, giving up after ``timeout`` s (urllib's timeout does not cover DNS)."""
    host = urllib.parse.urlsplit(url).hostname
    if not host:  # file:// URLs
        return
    outcome: list[BaseException | None] = []

    def lookup() -> None:
        try:
            socket.getaddrinfo(host, None)
            outcome.append(None)
        except OSError as e:
            outcome.append(e)

    thread = threading.Thread(target=lookup, daemon=True)
    thread.start()
    thread.join(timeout)
    if not outcome:
        raise DownloadUnavailable(f"looking up {host} took longer than {timeout:g} s")
    if outcome[0] is not None:
        raise DownloadUnavailable(f"cannot resolve {host}: {outcome[0]}")


def download_file(url: str, dest: Path, md5: str, timeout: float = TIMEOUT_S) -> None:
    """Download ``url`` to ``dest`` (atomically), checking its md5.

    Raises DownloadUnavailable if it cannot be fetched, LimitlabError on a checksum mismatch
    (the partial file is deleted in both cases).
    """
    _resolve_host(url, timeout)
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part")
    except OSError as e:
        raise DownloadUnavailable(f"cannot write to {dest.parent}: {e.strerror or e}") from None
    tmp = Path(tmp_name)
    try:
        digest = hashlib.md5()
        try:
            with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=timeout) as response:
                total = int(response.headers.get("Content-Length") or 0) or None
                with tqdm(total=total, unit="B", unit_scale=True, desc=dest.name) as bar:
                    while chunk := response.read(1 << 20):
                        out.write(chunk)
                        digest.update(chunk)
                        bar.update(len(chunk))
        except (OSError, http.client.HTTPException) as e:  # URLError, timeouts, resets are OSErrors
            reason = getattr(e, "reason", None) or e
            raise DownloadUnavailable(f"downloading {url} failed: {reason}") from None
        if digest.hexdigest() != md5:
            raise LimitlabError(f"the download of {url} is corrupt (md5 {digest.hexdigest()}, "
                                f"expected {md5}); try again, or fetch the file by hand and put it in "
                                f"{dest.parent}")
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)
