"""The CLI's error type: a mistake the user can fix, printed as one line with exit status 2."""


class UsageError(Exception):
    """Bad input to a command (unknown model, unwritable path, ...)."""
