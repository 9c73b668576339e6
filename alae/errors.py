"""The one exception type for mistakes a user can make (bad path, bad config, bad file).

The command line prints its message on one line and exits non-zero; anything else
escaping is a bug in the project and keeps its traceback.
"""


class UserError(Exception):
    """An error caused by user input, reported as a single line."""
