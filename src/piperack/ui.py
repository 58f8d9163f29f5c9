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


def first_few(items: list[str], most: int = 5) -> str:
    """The first ``most`` of ``items``, comma-separated, with " …" when there are more."""
    return ", ".join(items[:most]) + (" …" if len(items) > most else "")


def human_size(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GB"


QUIET = False  # set by the tasks' --quiet: no progress output (results and errors still print)


def progress_enabled() -> bool:
    """Progress is for a person watching: only on a terminal, and never with --quiet."""
    return not QUIET and sys.stderr.isatty()


def progress(items: Iterable[T], total: int, label: str, name=str) -> Iterator[T]:
    """Yield items; on a terminal, first print ``label [i/total] <name(item)>`` for each, and the time
    taken at the end. Quiet when output is not a terminal or with --quiet."""
    live = progress_enabled()
    start = time.monotonic()
    for index, item in enumerate(items, 1):
        if live:
            print(f"{label} [{index}/{total}] {shown(name(item))}", file=sys.stderr, flush=True)
        yield item
    if live and total:
        print(f"{label}: {total} done in {time.monotonic() - start:.1f} s", file=sys.stderr, flush=True)


def run_streaming(cmd: list[str], label: str, show=None, **kwargs):
    """Run ``cmd`` with its output captured (for error messages) and, on a terminal, shown line by
    line as it comes (``  label | …``; ``show(line)`` may rewrite a line or return None to hide it),
    so long work shows its progress. Returns a CompletedProcess whose ``stdout`` holds stdout and
    stderr together.

    The tool gets a temporary folder of its own as TMPDIR, removed when it has ended: a tool
    stopped by Ctrl-C or SIGTERM (uv, pip) leaves nothing in the shared temporary directory."""
    import os
    import shutil
    import subprocess
    import tempfile

    live = progress_enabled()
    lines: list[str] = []
    scratch = tempfile.mkdtemp(prefix="piperack-tool-")
    from .tools import tool_env

    env = tool_env(kwargs.pop("env", None) or os.environ) | {"TMPDIR": scratch, "TEMP": scratch, "TMP": scratch}
    try:
        with subprocess.Popen(
            cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, errors="replace", env=env, **kwargs
        ) as proc:
            try:
                for line in proc.stdout:
                    lines.append(line)
                    text = line.rstrip() if show is None else show(line)
                    if live and text:
                        sys.stderr.write(f"  {label} | {text}\n")
                        sys.stderr.flush()
            except BaseException:  # Ctrl-C or SIGTERM here (or a closed stderr): the tool stops too
                stop_child(proc)
                raise
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return subprocess.CompletedProcess(cmd, proc.returncode, "".join(lines), "")


class ByteProgress:
    """A download/copy counter: redraws ``label  12.3 MB / 40.0 MB`` on a TTY for large transfers."""

    def __init__(self, label: str, total: int | None, threshold: int = 4 * 1024 * 1024):
        self.label, self.total, self.done = label, total, 0
        self.live = progress_enabled() and (total is None or total >= threshold)

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


def stop_child(proc, grace: float = 5.0) -> None:
    """End a child process this command started: SIGTERM, then SIGKILL if it outlives ``grace``."""
    import subprocess

    if proc.poll() is not None:
        return
    try:
        proc.terminate()
        proc.wait(grace)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    except ProcessLookupError:
        pass
