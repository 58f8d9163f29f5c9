"""Console output shared by the verbs: plain lines, warnings and progress."""
from __future__ import annotations

import sys
import time
from collections.abc import Iterable, Iterator
from typing import TypeVar

T = TypeVar("T")


def info(message: str = "") -> None:
    print(message, flush=True)


def warn(message: str) -> None:
    """One ``warning:`` line; control characters in it (from a package's file names) are escaped."""
    safe = "".join(ch if ch.isprintable() else ch.encode("unicode_escape").decode("ascii") for ch in str(message))
    print(f"warning: {safe}", file=sys.stderr, flush=True)


def shown(value) -> str:
    """``value`` as one safe line of output: text with newlines or other control characters (a
    hostile archive's names) is shown quoted with escapes, so it cannot forge lines of its own."""
    text = str(value)
    return text if text.isprintable() else repr(text)


def human_size(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GB"


def progress(items: Iterable[T], total: int, label: str) -> Iterator[T]:
    """Yield items, showing ``label [i/total]`` as a redrawn line on a TTY (nothing otherwise).

    Callers still print their own line per item; this only adds a live counter for long work.
    """
    stream = sys.stderr
    live = stream.isatty()
    start = time.monotonic()
    for index, item in enumerate(items, 1):
        if live:
            stream.write(f"\r{label} [{index}/{total}] {time.monotonic() - start:.1f}s ")
            stream.flush()
        yield item
    if live:
        stream.write("\r" + " " * (len(label) + 30) + "\r")
        stream.flush()


class ByteProgress:
    """A download/copy counter: redraws ``label  12.3 MB / 40.0 MB`` on a TTY for large transfers."""

    def __init__(self, label: str, total: int | None, threshold: int = 4 * 1024 * 1024):
        self.label, self.total, self.done = label, total, 0
        self.live = sys.stderr.isatty() and (total is None or total >= threshold)

    def update(self, n: int) -> None:
        self.done += n
        if self.live:
            total = f" / {human_size(self.total)}" if self.total else ""
            sys.stderr.write(f"\r{self.label}  {human_size(self.done)}{total} ")
            sys.stderr.flush()

    def close(self) -> None:
        if self.live:
            sys.stderr.write("\n")
            sys.stderr.flush()
