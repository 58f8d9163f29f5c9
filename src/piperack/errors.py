"""The exception types that mean "the user asked for something we can't do" or "stop", and the one
error funnel: how every command of piperack (the invoke tasks and the ``piperack`` command) turns an
exception into one line on stderr and an exit status.

Light on purpose (standard library only): the tasks import it before any engine module, so a
Ctrl-C while the engine imports is already handled here.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

DEBUG_ENV = "PIPERACK_DEBUG"  # set (to anything but "" or "0"): tracebacks instead of one line

INTERRUPTED = "interrupted: nothing was left half-done"
TERMINATED = "terminated: nothing was left half-done"


class PiperackError(Exception):
    """A user error: its message is one line that names the file, key, URL or name at fault.

    The funnel prints it as ``error: <message>`` and exits 1, without a traceback.
    """


class Interrupted(KeyboardInterrupt):
    """Ctrl-C (SIGINT) or a polite kill (SIGTERM) reached piperack: ``finally`` blocks and
    rollbacks run as for Ctrl-C, and the command exits 128 + the signal's number (130, 143)."""

    def __init__(self, signum: int = signal.SIGINT):
        super().__init__(f"signal {int(signum)}")
        self.signum = int(signum)


def first_line(exc: BaseException, limit: int = 200) -> str:
    """The first line of an exception's message (at most ``limit`` characters), else its type name.

    Libraries put whole tracebacks, schemas or HTML pages into messages; a user error quotes one line.
    """
    text = str(exc).strip()
    return text.splitlines()[0][:limit] if text else type(exc).__name__


def raise_interrupted(signum, frame) -> None:
    """A signal handler: the signal becomes :class:`Interrupted` in the main thread."""
    raise Interrupted(signum)


@contextmanager
def signals_interrupt(*signums: int) -> Iterator[None]:
    """Inside the block these signals (default: SIGTERM) raise :class:`Interrupted`, as Ctrl-C raises
    KeyboardInterrupt, so temporary files and rollbacks are cleaned up when a command is killed
    politely. Only the main thread can install handlers; elsewhere this does nothing."""
    old = {}
    if threading.current_thread() is threading.main_thread():
        for signum in signums or (signal.SIGTERM,):
            old[signum] = signal.signal(signum, raise_interrupted)
    try:
        yield
    finally:
        for signum, handler in old.items():
            signal.signal(signum, handler)


def outcome(exc: BaseException) -> tuple[int, str | None] | None:
    """The exit status and the one line (or None: say nothing) for an exception that reached the
    funnel; None for an exception the funnel does not know (a bug: its traceback is shown)."""
    if isinstance(exc, PiperackError):
        return 1, f"error: {exc}"
    if isinstance(exc, KeyboardInterrupt):
        signum = getattr(exc, "signum", signal.SIGINT)
        return 128 + signum, INTERRUPTED if signum == signal.SIGINT else TERMINATED
    if isinstance(exc, EOFError):  # a prompt met a closed standard input
        return 1, "error: no answer on standard input (it is closed)"
    if isinstance(exc, ModuleNotFoundError) and exc.name:
        return 1, (
            f"error: the Python package {exc.name!r} is not installed in this environment: "
            "run `pip install -r requirements-dev.txt`"
        )
    if isinstance(exc, BrokenPipeError):  # `… | head`: the reader left; say nothing more
        try:
            sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - so the interpreter's final flush is quiet
        except OSError:
            pass
        return 141, None
    if isinstance(exc, OSError):  # disk full, read-only or immutable files, names too long …
        where = f": {exc.filename}" if exc.filename else ""
        return 1, f"error: {exc.strerror or first_line(exc)}{where} (nothing was changed)"
    return None


def _exit_now(signum, frame) -> None:
    try:
        print(INTERRUPTED if signum == signal.SIGINT else TERMINATED, file=sys.stderr, flush=True)
    finally:
        os._exit(128 + signum)


def exit_on_signals() -> None:
    """Before a command's work starts (invoke still parsing, the task not yet called) there is
    nothing to undo: Ctrl-C or SIGTERM then ends the process at once with the funnel's line and
    status, instead of a traceback or invoke's silent exit 1. :func:`funnel` takes over inside."""
    if threading.current_thread() is threading.main_thread():
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, _exit_now)


def debugging() -> bool:
    return os.environ.get(DEBUG_ENV, "") not in ("", "0")


@contextmanager
def funnel(exit_with: Callable[[int], BaseException] = SystemExit) -> Iterator[None]:
    """``with funnel():`` around a whole command: SIGTERM stops it like Ctrl-C, and any exception
    :func:`outcome` knows becomes its one line on stderr and ``exit_with(status)`` (SystemExit for
    the ``piperack`` command, invoke's Exit for the tasks). $PIPERACK_DEBUG shows the traceback."""
    try:
        with signals_interrupt(signal.SIGINT, signal.SIGTERM):
            yield
    except BaseException as exc:
        result = None if debugging() else outcome(exc)
        if result is None:
            raise
        status, line = result
        if line:
            try:
                print(line, file=sys.stderr, flush=True)
            except OSError:
                pass
        raise exit_with(status) from None
