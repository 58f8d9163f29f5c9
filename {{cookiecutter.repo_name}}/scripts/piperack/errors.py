"""The one exception type that means "the user asked for something we can't do"."""


class PiperackError(Exception):
    """A user error: its message is one line that names the file, key, URL or name at fault.

    tasks.py prints it as ``error: <message>`` and exits 1, without a traceback.
    """
