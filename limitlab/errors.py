"""The one exception type for user mistakes (bad flags, missing or corrupt files, bad values).

The CLI prints its message as one sentence and exits non-zero, without a traceback.
"""


class LimitlabError(Exception):
    """A problem the user can fix; the message says what to do."""


class DataError(LimitlabError, ValueError):
    """Bad input data (NaN, mismatched lengths, one class, ...). The CLI reports it like any
    LimitlabError; Python callers in the scikit-learn style can catch it as a ValueError."""


def first_line(e: BaseException) -> str:
    """``"TypeName: first line of the message"`` (or the type alone): an exception in one line,
    for a one-sentence error that wraps it."""
    text = str(e).strip().splitlines()
    return f"{type(e).__name__}: {text[0]}" if text else type(e).__name__
