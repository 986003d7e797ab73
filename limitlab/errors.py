"""The one exception type for user mistakes (bad flags, missing or corrupt files, bad values).

The CLI prints its message as one sentence and exits non-zero, without a traceback.
"""


class LimitlabError(Exception):
    """A problem the user can fix; the message says what to do."""
