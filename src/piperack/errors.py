"""The one exception type that means "the user asked for something we can't do", and how any
exception is shown in one line."""


class PiperackError(Exception):
    """A user error: its message is one line that names the file, key, URL or name at fault.

    piperack.tasks and piperack.cli print it as ``error: <message>`` and exit 1, without a traceback.
    """


def first_line(exc: BaseException, limit: int = 200) -> str:
    """The first line of an exception's message (at most ``limit`` characters), else its type name.

    Libraries put whole tracebacks, schemas or HTML pages into messages; a user error quotes one line.
    """
    text = str(exc).strip()
    return text.splitlines()[0][:limit] if text else type(exc).__name__
