"""Noise files, read as data: transition matrices (``--noise matrix:FILE``) and noisy-label vectors
over a dataset's official training set (``--noise labels:FILE[:KEY]``): ``.npy`` without pickles,
``.csv``/``.txt`` text, ``.pt`` through ``torch.load(weights_only=True)`` with an allow-list of
numpy's array types (CIFAR-10N/100N)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .errors import LimitlabError


def read_matrix_file(path, k: int) -> np.ndarray:
    """The numbers in a transition-matrix file (``matrix:FILE``): ``.npy`` read without pickles, ``.csv``
    as comma-separated text, anything else as whitespace-separated text (``#`` starts a comment).
    ``k`` (the K×K expected) only shapes the messages; :func:`limitlab.noise.load_transition` checks
    the matrix."""
    path = Path(path)
    try:
        path.stat()
    except ValueError:  # a NUL byte in the name
        raise LimitlabError(f"transition matrix path {str(path)!r} is not a valid file name") from None
    except OSError:
        pass  # reported below
    if not path.exists():
        raise LimitlabError(f"transition matrix file {str(path)!r} does not exist; give the path of a {k}x{k} .npy, .csv or .txt file")
    if not path.is_file():
        raise LimitlabError(f"transition matrix path {str(path)!r} is not a file; give the path of a {k}x{k} .npy, .csv or .txt file")
    if path.stat().st_size == 0:
        raise LimitlabError(f"transition matrix file {str(path)!r} is empty; it must hold a {k}x{k} matrix")
    is_npy = path.suffix.lower() == ".npy"
    try:
        if is_npy:
            data = np.load(path, allow_pickle=False)
        else:
            delimiter = "," if path.suffix.lower() == ".csv" else None
            data = np.loadtxt(path, delimiter=delimiter, dtype=np.float64, ndmin=2)
    except (OSError, ValueError, EOFError) as exc:
        # numpy's own message is useful for text files (bad number, ragged row) but misleading for
        # a corrupt .npy file (it talks about pickles), so .npy gets a plain reason.
        reason = "not a valid .npy array file" if is_npy else (str(exc).splitlines() or [type(exc).__name__])[0]
        reason = reason.split("; use `usecols`")[0].rstrip(".")
        raise LimitlabError(
            f"could not read transition matrix file {str(path)!r} ({reason}); write it with numpy.save or as comma/whitespace-separated numbers"
        ) from None
    return data


LABEL_FILE_SUFFIXES = (".npy", ".csv", ".txt", ".pt")


def _split_label_argument(arg: str, search: tuple = ()) -> tuple[Path, str | None]:
    """``FILE[:KEY]`` -> (the file, KEY or None). FILE is looked for as given, then inside each folder
    of ``search`` (e.g. the data root) when it is relative."""

    def find(text: str) -> Path | None:
        path = Path(text).expanduser()
        for candidate in [path] + ([Path(folder) / path for folder in search] if not path.is_absolute() else []):
            if candidate.is_file():
                return candidate
        return None

    found = find(arg)
    if found is not None:
        return found, None
    path_text, sep, key = arg.rpartition(":")
    found = find(path_text) if sep else None
    if found is not None:
        return found, key.strip() or None
    where = f" (also looked in {', '.join(str(f) for f in search)})" if search else ""
    raise LimitlabError(f"noisy-label file '{path_text if sep else arg}' does not exist{where}; give a "
                        f"{', '.join(LABEL_FILE_SUFFIXES)} file with one label per official training example")


def _numpy_safe_globals() -> list:
    """What a .pt file of numpy arrays may reference: numpy's array rebuild function (under its
    numpy 1 and numpy 2 names), ndarray, dtype and the numeric dtype classes. No other code runs."""
    try:
        from numpy._core.multiarray import _reconstruct
    except ImportError:  # numpy < 2
        from numpy.core.multiarray import _reconstruct
    allowed = [(_reconstruct, "numpy.core.multiarray._reconstruct"),
               (_reconstruct, "numpy._core.multiarray._reconstruct"), np.ndarray, np.dtype]
    allowed += sorted({type(np.dtype(c)) for c in "?bBhHiIlLqQefd"} - {np.dtype}, key=str)
    return allowed


def read_pt_labels(path: Path, key: str | None) -> tuple[np.ndarray, dict]:
    """A label vector from a ``.pt`` file (a tensor, an array, or a dict of them such as CIFAR-10N's
    ``CIFAR-10_human.pt``), read with ``torch.load(weights_only=True)`` and an allow-list of numpy's
    array types: no code from the file runs. Returns (the vector, the whole dict)."""
    import torch

    if not hasattr(torch.serialization, "safe_globals"):
        raise LimitlabError(f"reading {path} needs torch >= 2.5 (safe numpy loading); save the labels with "
                            "numpy.save as .npy instead")
    try:
        with torch.serialization.safe_globals(_numpy_safe_globals()):
            obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # UnpicklingError for anything outside the allow-list, RuntimeError for a bad zip
        first = (str(e).strip().splitlines() or [type(e).__name__])[-1][:160]
        raise LimitlabError(f"cannot read {path} as a file of label arrays (only tensors and numeric numpy arrays "
                            f"are loaded, no other objects): {first}") from None
    contents = obj if isinstance(obj, dict) else {}
    if isinstance(obj, dict):
        keys = [str(k) for k in obj]
        if not keys:
            raise LimitlabError(f"{path} holds an empty dict; it needs the label array (e.g. {{'noisy_label': labels}})")
        if key is None:
            raise LimitlabError(f"{path} holds several arrays ({', '.join(keys)}); choose one with "
                                f"labels:{path}:KEY, e.g. labels:{path}:{keys[0]}")
        same = [k for k in obj if str(k) == key]  # KEY is text; a dict saved with int keys {1: ...} matches too
        if key not in obj and len(same) != 1:
            raise LimitlabError(f"{path} has no key {key!r}; its keys are {', '.join(keys)}")
        obj = obj[key if key in obj else same[0]]
    elif key is not None:
        raise LimitlabError(f"{path} holds a single array, not a dict, so it takes no key; drop ':{key}'")
    where = f"{path}" + (f" [{key}]" if key else "")
    if "clean_label" in contents:  # compared with the dataset's labels by load_noisy_labels
        try:
            contents = {**contents, "clean_label": _tensor_as_array(contents["clean_label"], where)}
        except LimitlabError:
            contents = {k: v for k, v in contents.items() if k != "clean_label"}
    return _tensor_as_array(obj, where), contents


def _tensor_as_array(obj, where: str) -> np.ndarray:
    """A loaded tensor (or array) as a numpy array: half-precision floats (bfloat16, float8, which
    numpy lacks) as float32; a sparse, quantized or otherwise non-plain tensor refused in one sentence."""
    import torch

    if not isinstance(obj, torch.Tensor):
        return np.asarray(obj)
    if obj.layout != torch.strided:
        raise LimitlabError(f"the labels in {where} are a sparse tensor ({obj.layout}); save a dense one "
                            "(tensor.to_dense()) or a numpy array")
    if obj.is_floating_point() and obj.dtype not in (torch.float16, torch.float32, torch.float64):
        obj = obj.float()  # bfloat16 and float8 hold small integers exactly; checked as labels later
    try:
        return obj.detach().cpu().numpy()
    except (TypeError, RuntimeError) as e:
        raise LimitlabError(f"the labels in {where} are a {obj.dtype} tensor that cannot be read as class "
                            f"indices ({_first(e)}); save them as an int64 tensor or numpy array") from None


def _first(e: BaseException) -> str:
    return (str(e).strip().splitlines() or [type(e).__name__])[0][:160]


def read_label_file(path: Path, key: str | None = None) -> tuple[np.ndarray, dict]:
    """The label vector in ``path`` (.npy, .csv/.txt one label per line with an optional header line,
    or .pt with ``key``), and for .pt files the file's whole dict (else {})."""
    suffix = path.suffix.lower()
    if suffix not in LABEL_FILE_SUFFIXES:
        raise LimitlabError(f"noisy-label file {path} must end in {', '.join(LABEL_FILE_SUFFIXES)}")
    if path.stat().st_size == 0:
        raise LimitlabError(f"noisy-label file {path} is empty; it needs one label per official training example")
    if key is not None and suffix != ".pt":
        raise LimitlabError(f"a key (':{key}') is only for .pt label files, not {path.name}")
    if suffix == ".pt":
        return read_pt_labels(path, key)
    if suffix == ".npy":
        try:
            return np.load(path, allow_pickle=False), {}
        except (OSError, ValueError, EOFError):
            raise LimitlabError(f"cannot read {path}: not a numeric .npy array (write it with numpy.save)") from None
    try:
        lines = [line.strip().strip(",") for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    except (OSError, UnicodeDecodeError) as e:
        raise LimitlabError(f"cannot read {path}: {e}") from None
    if lines and not lines[0].lstrip("-").isdigit():
        lines = lines[1:]  # a header line such as "label"
    bad = next((i for i, t in enumerate(lines) if not t.lstrip("-").isdigit()), None)
    if bad is not None:
        raise LimitlabError(f"{path}: {lines[bad][:40]!r} is not an integer label; write one class index per line")
    return np.array([int(t) for t in lines], dtype=np.int64), {}


def load_noisy_labels(argument: str, true_labels: np.ndarray, num_classes: int, search: tuple = ()) -> np.ndarray:
    """The noisy labels of ``labels:FILE[:KEY]`` (``argument`` is ``FILE[:KEY]``), one per official
    training example, in order; -1 leaves that example out of the run's training and validation splits.

    Checked: integers, the same length as ``true_labels`` and in [0, K); and when a .pt file also holds
    ``clean_label`` (CIFAR-10N/100N), that it agrees with ``true_labels``, so that a file for another
    dataset or order is caught.
    """
    path, key = _split_label_argument(argument, search)
    labels, contents = read_label_file(path, key)
    where = f"{path}" + (f" [{key}]" if key else "")
    if labels.ndim != 1:
        raise LimitlabError(f"the labels in {where} have shape {labels.shape} but must be a vector, one per example")
    if labels.dtype.kind == "f" and np.all(np.isfinite(labels)) and np.all(labels == np.round(labels)):
        labels = labels.astype(np.int64)
    if labels.dtype.kind not in "iu":
        raise LimitlabError(f"the labels in {where} are {labels.dtype}, not integer class indices 0..{num_classes - 1}")
    n = len(true_labels)
    if len(labels) != n:
        raise LimitlabError(f"{where} has {len(labels)} labels but the dataset's official training set has {n} "
                            "examples; give one label per training example, in the dataset's order")
    # -1 marks an example to leave out of the run (e.g. excluded in `limitlab review`); see data/run.py
    if labels.size and (labels.min() < -1 or labels.max() >= num_classes):
        raise LimitlabError(f"{where} has labels from {labels.min()} to {labels.max()}, outside the dataset's "
                            f"classes 0..{num_classes - 1} (and -1, which leaves an example out)")
    if labels.size and labels.min() == -1 and (labels >= 0).sum() == 0:
        raise LimitlabError(f"{where} marks every example -1 (left out); keep at least one label")
    clean = contents.get("clean_label")
    if clean is not None and np.shape(clean) == (n,):
        differ = int((np.asarray(clean) != np.asarray(true_labels)).sum())
        if differ:
            raise LimitlabError(f"the clean_label array of {path} disagrees with the dataset's labels on {differ} of "
                                f"{n} examples; is it the label file of this dataset, in its official order?")
    return labels.astype(np.int64)
