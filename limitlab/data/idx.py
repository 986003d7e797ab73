"""Reader and writer for the IDX format that MNIST and Fashion-MNIST are published in.

Layout: two zero bytes, a dtype code byte, a byte with the number of dimensions ``ndim``,
``ndim`` big-endian uint32 sizes, then the array's elements, big-endian, in C order.
A path ending in ``.gz`` is gzip-compressed.
"""

from __future__ import annotations

import gzip
import os
import struct
import zlib
from pathlib import Path

import numpy as np

from limitlab.errors import LimitlabError

# IDX dtype code -> big-endian NumPy dtype.
IDX_DTYPES = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read an IDX file (plain, or gzip if the name ends in ``.gz``).

    Returns a writable native-endian array with the shape and dtype stored in the header
    (MNIST images: uint8 [N, 28, 28]; labels: uint8 [N]).
    Raises LimitlabError naming the file if it cannot be read or is not a valid IDX file.
    """
    path = Path(path)

    def invalid(why: str) -> LimitlabError:
        return LimitlabError(f"{path} is not a valid IDX file ({why}); delete it and download it again")

    try:
        raw = path.read_bytes()
        if path.suffix == ".gz":
            raw = gzip.decompress(raw)
    except (gzip.BadGzipFile, zlib.error, EOFError) as e:
        raise invalid(f"unreadable gzip data: {e}") from None
    except OSError as e:
        raise LimitlabError(f"cannot read {path}: {e.strerror or e}") from None

    if len(raw) < 4 or raw[:2] != b"\0\0":
        raise invalid(f"bad magic number {raw[:4].hex() or 'empty file'}, expected 0000xxyy")
    code, ndim = raw[2], raw[3]
    if code not in IDX_DTYPES:
        raise invalid(f"unknown dtype code 0x{code:02x}")
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise invalid(f"truncated header: {ndim} dimensions need {header} bytes, found {len(raw)}")
    shape = struct.unpack(f">{ndim}I", raw[4:header])
    dtype = IDX_DTYPES[code]
    expected = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    found = len(raw) - header
    if found != expected:
        what = "truncated" if found < expected else "trailing garbage"
        raise invalid(f"{what}: expected {expected} data bytes, found {found}")
    data = np.frombuffer(raw, dtype=dtype, offset=header).reshape(shape)
    return data.astype(dtype.newbyteorder("="))  # a copy: writable and native-endian


def write_idx(path: str | os.PathLike, array: np.ndarray) -> None:
    """Write ``array`` (any shape; dtype uint8, int8, int16, int32, float32 or float64) as IDX.

    The file is gzip-compressed if ``path`` ends in ``.gz``.
    """
    array = np.asarray(array)
    codes = {dt.newbyteorder("="): code for code, dt in IDX_DTYPES.items()}
    dtype = array.dtype.newbyteorder("=")
    if dtype not in codes:
        raise LimitlabError(f"IDX cannot store dtype {array.dtype}: convert the array to one of "
                            f"{', '.join(str(d) for d in codes)} first")
    header = struct.pack(f">BBBB{array.ndim}I", 0, 0, codes[dtype], array.ndim, *array.shape)
    payload = header + array.astype(dtype.newbyteorder(">")).tobytes()
    path = Path(path)
    path.write_bytes(gzip.compress(payload) if path.suffix == ".gz" else payload)
