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


# --- caches on a shared machine ------------------------------------------------------------------


def _can_write(folder: Path) -> bool:
    """``folder`` is, or can be made as, a folder this user writes to: it (or its nearest existing
    parent) is a folder with write and search permission."""
    probe = folder
    while not (probe.exists() or probe.is_symlink()):
        if probe.parent == probe:
            return False
        probe = probe.parent
    return probe.is_dir() and os.access(probe, os.W_OK | os.X_OK)


def private_temp_dir() -> Path:
    """``<temp>/piperack-<uid>``: this user's own folder in the shared temporary directory (mode 0700),
    for caches when HOME cannot hold them. Another user's folder of that name, a link or a folder
    others can write to is refused in one line, never used."""
    import stat
    import tempfile

    from .errors import PiperackError

    uid = os.getuid() if hasattr(os, "getuid") else 0
    folder = Path(tempfile.gettempdir()) / f"piperack-{uid}"
    try:
        folder.mkdir(mode=0o700)
    except FileExistsError:
        pass
    info = os.lstat(folder)
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != uid or info.st_mode & 0o022:
        raise PiperackError(
            f"{folder}: not this user's private folder (a link, another user's or writable by others); "
            "remove it, or set XDG_CACHE_HOME to a folder of yours"
        )
    return folder


def _home_cache(name: str, env) -> Path | None:
    """``$XDG_CACHE_HOME/name``, else ``~/.cache/name``, when this user can write there; else None."""
    home = env.get("HOME") or os.path.expanduser("~")
    base = env.get("XDG_CACHE_HOME") or os.path.join(home, ".cache")
    folder = Path(base) / name
    return folder if os.path.isabs(base) and _can_write(folder) else None


def user_cache_dir(name: str, env=None) -> Path:
    """The cache folder ``name`` of the user running piperack: ``$XDG_CACHE_HOME/name``, else
    ``~/.cache/name``, when this user can write there; else ``private_temp_dir()/name``. So a HOME
    that is another user's (``sudo -u`` keeps it) or none at all (``nobody``) never locks a user out
    with "Permission denied"."""
    return _home_cache(name, os.environ if env is None else env) or private_temp_dir() / name


def tool_env(env) -> dict:
    """``env`` for uv and pip: when their default cache (under HOME) cannot be written, one in
    ``private_temp_dir()``, so they work for every user of a shared machine (uv stops at an unwritable
    cache). A cache the user set (UV_CACHE_DIR, PIP_CACHE_DIR) is left alone."""
    env = dict(env)
    for variable, name in (("UV_CACHE_DIR", "uv"), ("PIP_CACHE_DIR", "pip")):
        if not env.get(variable) and _home_cache(name, env) is None:
            env[variable] = str(private_temp_dir() / name)
    return env
