"""The command-line tools piperack runs (uv, pip-tools' pip-compile): found next to the running
Python first (its virtualenv), then on PATH, then as a module of the running Python."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path


def _next_to_python(name: str) -> str | None:
    folder = Path(sys.executable).parent
    for candidate in (folder / name, folder / f"{name}.exe"):
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    return None


def _has_module(name: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(name) is not None


def find_uv() -> list | None:
    """The command that runs uv: next to sys.executable, on PATH, or ``python -m uv``."""
    exe = _next_to_python("uv") or shutil.which("uv")
    if exe:
        return [exe]
    if _has_module("uv"):
        return [sys.executable, "-m", "uv"]
    return None


def find_pip_compile() -> list | None:
    """The command that runs pip-tools' pip-compile, preferring the running Python's."""
    exe = _next_to_python("pip-compile")
    if exe:
        return [exe]
    if _has_module("piptools"):
        return [sys.executable, "-m", "piptools", "compile"]
    exe = shutil.which("pip-compile")
    return [exe] if exe else None
