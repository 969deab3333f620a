"""The one exception type a user sees as a one-line message instead of a traceback."""


class UserError(Exception):
    """Bad input (a flag, a file, a combination); str(e) is the whole message."""
