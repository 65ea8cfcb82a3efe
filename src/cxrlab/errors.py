"""The one exception type for bad user input.

Library code raises ``CxrlabError`` with a one-line message that names the file, row or field and the fix;
the CLI prints it as ``error: ...`` and exits with status 2, never a traceback.
"""


class CxrlabError(Exception):
    """A problem with the user's input or environment, explained in one line."""
