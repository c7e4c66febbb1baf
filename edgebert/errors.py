"""The one exception type users see.

Anything a user can get wrong (a name, a file, a dimension, a budget) raises
`EdgebertError` with a message that fits on one line and says what to do. The
CLI prints it as `edgebert: error: <message>` and exits 1; everything else is a
bug and keeps its traceback.
"""


class EdgebertError(Exception):
    """Bad input or an unmet precondition, explained in one line."""


def nearest(name: str, candidates) -> str:
    """' (did you mean X?)' for the closest candidate, or '' when nothing is close."""
    import difflib

    match = difflib.get_close_matches(name, list(candidates), n=1, cutoff=0.5)
    return f" (did you mean {match[0]!r}?)" if match else ""
