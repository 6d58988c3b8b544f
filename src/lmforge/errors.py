"""Errors a user can cause. The CLI prints them as one line and exits non-zero, without a traceback."""


class LmforgeError(Exception):
    """A problem with the user's input (path, recipe, data). The message says what and where."""
