"""Helpers for the tests/test_options_*.py files: a command on a pseudo-terminal, one error line."""

from __future__ import annotations

import os
import pty
import select
import subprocess
import time
from pathlib import Path


def on_a_terminal(cmd: list[str], cwd: Path, env: dict, timeout: float = 600) -> tuple[int, str]:
    """Run ``cmd`` with a pseudo-terminal as stdin, stdout and stderr: (exit code, what it printed,
    with the terminal's \\r\\n turned back into \\n). Fails loudly when it has not ended in ``timeout``."""
    master, slave = pty.openpty()
    proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdin=slave, stdout=slave, stderr=slave, close_fds=True)
    os.close(slave)
    chunks = []
    deadline = time.monotonic() + timeout
    try:
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                proc.kill()
                proc.wait()
                raise AssertionError(
                    f"{cmd} did not end within {timeout} s:\n" + b"".join(chunks).decode(errors="replace")
                )
            ready, _, _ = select.select([master], [], [], min(left, 5))
            if not ready:
                continue
            try:
                data = os.read(master, 65536)
            except OSError:  # EIO: every writer closed the terminal
                break
            if not data:
                break
            chunks.append(data)
    finally:
        os.close(master)
    code = proc.wait(timeout=max(deadline - time.monotonic(), 1))
    return code, b"".join(chunks).decode("utf-8", "replace").replace("\r\n", "\n")


def output(proc: subprocess.CompletedProcess) -> str:
    return f"exit {proc.returncode}\n--- stdout\n{proc.stdout}\n--- stderr\n{proc.stderr}"


def one_error_line(proc: subprocess.CompletedProcess, code: int = 1) -> str:
    """The single line a refused command prints on stderr (no traceback), after checking its exit code."""
    assert proc.returncode == code, output(proc)
    assert "Traceback" not in proc.stdout + proc.stderr, output(proc)
    lines = proc.stderr.splitlines()
    assert len(lines) == 1, output(proc)
    return lines[0]
