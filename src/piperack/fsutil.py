"""Writing files so that a failure never leaves half of one: atomic writes and the transaction.

- ``atomic_write(path, data)``: write a sibling temporary file, then ``os.replace`` it over
  ``path``; the old file stays whole until the rename, and the temporary file is removed on error.
- ``sibling_temp(path)``: the temporary file itself, for a tool that writes it (the resolver of
  build-reqs), replaced over ``path`` by the caller.
- ``transaction(root)``: several creates, changes and removals under ``root`` that land all
  together or not at all; an error, Ctrl-C or SIGTERM midway restores every path byte-for-byte.
"""
from __future__ import annotations

import os
import shutil
import signal
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from .errors import PiperackError

DEFAULT_MODE = 0o644
TEMP_SUFFIX = ".piperack-tmp"


@contextmanager
def sibling_temp(path: Path) -> Iterator[Path]:
    """A new empty temporary file next to ``path`` (same filesystem, so a rename is atomic).

    It is removed when the block raises, and left for the caller to ``os.replace`` otherwise.
    """
    path = Path(path)
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=TEMP_SUFFIX, dir=path.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def atomic_write(path: Path, data: bytes | str, mode: int | None = None) -> None:
    """Replace ``path`` with ``data`` (str is written as UTF-8, newlines kept as given) atomically.

    ``mode`` defaults to the mode of the file being replaced, else 0o644.
    """
    path = Path(path)
    if isinstance(data, str):
        data = data.encode("utf-8")
    if mode is None:
        try:
            mode = path.stat().st_mode & 0o7777
        except FileNotFoundError:
            mode = DEFAULT_MODE
    with sibling_temp(path) as tmp:
        with open(tmp, "wb") as out:
            out.write(data)
        os.chmod(tmp, mode)
        os.replace(tmp, path)


class Transaction:
    """File operations under ``root`` that ``rollback`` can undo exactly.

    Removed paths are moved into a backup folder inside ``root`` (same filesystem: ``os.replace``
    is atomic) and moved back on rollback; changed files keep their old bytes and mode in memory;
    new files and folders are recorded and deleted on rollback. Use it through ``transaction()``.
    """

    BACKUP_PREFIX = ".piperack-backup-"

    def __init__(self, root: Path):
        self.root = Path(root)
        self.backup: Path | None = None
        self.moved: list[tuple[Path, Path]] = []
        self.created_files: list[Path] = []
        self.created_dirs: list[Path] = []
        self.changed: list[tuple[Path, bytes | None, int | None]] = []

    def _backup_dir(self) -> Path:
        if self.backup is None:
            self.backup = Path(tempfile.mkdtemp(prefix=self.BACKUP_PREFIX, dir=self.root))
        return self.backup

    def _mkdirs(self, folder: Path) -> None:
        missing = []
        while not folder.exists():
            missing.append(folder)
            folder = folder.parent
        for path in reversed(missing):
            path.mkdir(mode=0o755)
            self.created_dirs.append(path)

    def remove(self, rel) -> None:
        """Move a file or folder out of the way (restored on rollback)."""
        path = self.root / rel
        target = self._backup_dir() / str(len(self.moved))
        os.replace(path, target)
        self.moved.append((path, target))

    def create(self, rel, data: bytes) -> None:
        """Write a file that must not exist yet (its missing folders are created too)."""
        path = self.root / rel
        self._mkdirs(path.parent)
        if path.exists() or path.is_symlink():
            raise PiperackError(f"{rel} appeared while writing; nothing changed")
        self.created_files.append(path)
        atomic_write(path, data, DEFAULT_MODE)

    def change(self, rel, data: bytes | str) -> None:
        """Write a file that may exist (its old bytes and mode come back on rollback)."""
        path = self.root / rel
        if path.exists():
            self.changed.append((path, path.read_bytes(), path.stat().st_mode & 0o7777))
        else:
            self._mkdirs(path.parent)
            self.changed.append((path, None, None))
        atomic_write(path, data)

    def commit(self) -> None:
        if self.backup is not None:
            shutil.rmtree(self.backup, ignore_errors=True)
            self.backup = None

    def rollback(self) -> None:
        for path, old, mode in reversed(self.changed):
            if old is None:
                path.unlink(missing_ok=True)
            else:
                atomic_write(path, old, mode)
        for path in reversed(self.created_files):
            if path.exists() or path.is_symlink():
                path.unlink()
        for path in reversed(self.created_dirs):
            if path.exists():
                shutil.rmtree(path)
        for original, backup in reversed(self.moved):
            if backup.exists():
                os.replace(backup, original)
        if self.backup is not None:
            shutil.rmtree(self.backup, ignore_errors=True)
            self.backup = None


def leftover_backups(root: Path) -> list[Path]:
    """Backup folders a killed process could not roll back (SIGKILL, power loss)."""
    return sorted(Path(root).glob(f"{Transaction.BACKUP_PREFIX}*"))


@contextmanager
def _signals_ignored() -> Iterator[None]:
    """Ignore Ctrl-C and SIGTERM while a rollback runs, so it always finishes."""
    old = {}
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGINT, signal.SIGTERM):
            old[sig] = signal.signal(sig, signal.SIG_IGN)
    try:
        yield
    finally:
        for sig, handler in old.items():
            signal.signal(sig, handler)


def _interrupt(signum, frame):
    raise KeyboardInterrupt(f"signal {signum}")


@contextmanager
def transaction(root: Path) -> Iterator[Transaction]:
    """``with transaction(root) as tx:`` — commit when the block ends, roll back if it raises.

    SIGTERM is turned into KeyboardInterrupt inside the block, so ``kill`` rolls back like Ctrl-C.
    """
    tx = Transaction(root)
    old_term = None
    if threading.current_thread() is threading.main_thread():
        old_term = signal.signal(signal.SIGTERM, _interrupt)
    try:
        try:
            yield tx
        except BaseException:
            with _signals_ignored():
                tx.rollback()
            raise
        tx.commit()
    finally:
        if old_term is not None:
            signal.signal(signal.SIGTERM, old_term)
