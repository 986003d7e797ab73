"""The one exception type for user mistakes (bad flags, missing or corrupt files, bad values).

The CLI prints its message as one sentence and exits non-zero, without a traceback.
"""


class LimitlabError(Exception):
    """A problem the user can fix; the message says what to do."""


class DataError(LimitlabError, ValueError):
    """Bad input data (NaN, mismatched lengths, one class, ...). The CLI reports it like any
    LimitlabError; Python callers in the scikit-learn style can catch it as a ValueError."""
