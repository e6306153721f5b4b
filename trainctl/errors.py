"""The one exception type for mistakes a user can fix: the CLI prints its message alone, no traceback."""


class UserError(Exception):
    """A problem in the user's input or environment; the message names the culprit and the fix."""
