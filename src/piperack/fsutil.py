"""Writing files so that a failure never leaves half of one: atomic writes and the transaction.

- ``atomic_write(path, data)``: write a sibling temporary file, then ``os.replace`` it over
  ``path``; the old file stays whole until the rename, and the temporary file is removed on error.
- ``sibling_temp(path)``: the temporary file itself, for a tool that writes it (the resolver of
  build-reqs), replaced over ``path`` by the caller.
- ``transaction(root)``: several creates, changes and removals under ``root`` that land all
  together or not at all; an error, Ctrl-C or SIGTERM midway restores every path byte-for-byte,
  and ``recover(root)`` finishes the job after a SIGKILL or a power cut (the journal).
- ``project_lock(root)``: one writer per project; a second pull or update waits for the first.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import signal
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from .errors import PiperackError, signals_interrupt

DEFAULT_MODE = 0o644
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_BINARY", 0)
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


@functools.cache
def _umask() -> int:
    """The process umask (read once: reading it means setting it)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


class Transaction:
    """File operations under ``root`` that can be undone exactly, even after the process is killed.

    A backup folder inside ``root`` (same filesystem: ``os.replace`` is atomic) holds a journal,
    one JSON line per operation written *before* the operation: a removed path is moved into the
    folder, a changed file's old bytes and mode are saved there, created files and folders are
    listed. ``rollback`` undoes the journal in reverse; ``recover`` does the same for a journal a
    killed process left behind. ``commit`` marks the journal done, then deletes the folder. Use it
    through ``transaction()``.
    """

    BACKUP_PREFIX = ".piperack-backup-"
    JOURNAL = "journal.jsonl"

    def __init__(self, root: Path):
        self.root = Path(root)
        self.backup: Path | None = Path(tempfile.mkdtemp(prefix=self.BACKUP_PREFIX, dir=self.root))
        self.entries: list[dict] = []
        self._folders: set[Path] = set()  # folders known to exist (made or checked by this transaction)
        self._journal = open(self.backup / self.JOURNAL, "w", encoding="utf-8")

    def _log(self, **entry) -> None:
        self.entries.append(entry)
        self._journal.write(json.dumps(entry) + "\n")
        self._journal.flush()

    def _mkdirs(self, folder: Path) -> None:
        if folder in self._folders:
            return
        wanted, missing = folder, []
        while not folder.exists():
            missing.append(folder)
            folder = folder.parent
        for path in reversed(missing):
            self._log(op="mkdir", path=str(path))
            path.mkdir(mode=0o755)
        self._folders.add(wanted)

    def remove(self, rel) -> None:
        """Move a file or folder out of the way (restored on rollback)."""
        path = self.root / rel
        target = self.backup / f"moved-{len(self.entries)}"
        self._folders.clear()  # a folder moved away may be one of them
        self._log(op="move", path=str(path), saved=str(target))
        os.replace(path, target)

    def create(self, rel, data: bytes) -> None:
        """Write a file that must not exist yet (its missing folders are created too).

        The file is created in place with O_EXCL, not through a temporary file: nobody's file can be
        replaced (one that appeared meanwhile is refused), and the journal entry written first means
        a half-written file is removed by ``rollback`` or, after a kill, by ``recover``. Four system
        calls a file instead of eleven: pulling 50 packages is mostly this.
        """
        path = self.root / rel
        self._mkdirs(path.parent)
        appeared = PiperackError(f"{rel} appeared while writing; nothing changed")
        try:
            os.lstat(path)  # any error but "no such file" (a name too long…) stops here, before the journal
        except FileNotFoundError:
            pass
        else:
            raise appeared
        self._log(op="create", path=str(path))
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW, DEFAULT_MODE)
        except FileExistsError:  # created by someone else since the check: not ours to remove on rollback
            self._log(op="cancel", path=str(path))
            raise appeared from None
        try:
            if _umask() & DEFAULT_MODE:
                os.fchmod(fd, DEFAULT_MODE)
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
        finally:
            os.close(fd)

    def change(self, rel, data: bytes | str) -> None:
        """Write a file that may exist (its old bytes and mode come back on rollback)."""
        path = self.root / rel
        if path.exists():
            saved = self.backup / f"old-{len(self.entries)}"
            shutil.copyfile(path, saved)
            self._log(op="change", path=str(path), saved=str(saved), mode=path.stat().st_mode & 0o7777)
        else:
            self._mkdirs(path.parent)
            self._log(op="create", path=str(path))
        atomic_write(path, data)

    def commit(self) -> None:
        self._journal.close()
        os.replace(self.backup / self.JOURNAL, self.backup / "committed")
        shutil.rmtree(self.backup, ignore_errors=True)
        self.backup = None

    def rollback(self) -> None:
        self._journal.close()
        _undo(self.entries)  # on failure the backup folder stays: the next run's recover() finishes
        shutil.rmtree(self.backup, ignore_errors=True)
        self.backup = None


def _undo(entries: list[dict]) -> None:
    """Undo journal entries, newest first; what is already undone (or never done) is skipped.

    Every entry is tried even when one fails (a file that became read-only): the first error is
    raised at the end, and the backup folder stays for ``recover`` to finish the job."""
    failures: list[BaseException] = []
    cancelled = {entry["path"] for entry in entries if entry.get("op") == "cancel"}
    for entry in reversed(entries):
        if entry.get("op") == "cancel" or (entry.get("op") == "create" and entry["path"] in cancelled):
            continue
        try:
            _undo_one(entry)
        except OSError as exc:
            failures.append(exc)
    if failures:
        raise failures[0]


def _undo_one(entry: dict) -> None:
    path = Path(entry["path"])
    for tmp in path.parent.glob(f".{path.name}.*{TEMP_SUFFIX}"):
        tmp.unlink(missing_ok=True)  # an atomic write cut short
    op = entry["op"]
    if op == "create":
        if path.is_symlink() or path.is_file():
            path.unlink()
    elif op == "mkdir":
        if path.is_dir():
            shutil.rmtree(path)
    elif op == "change":
        saved = Path(entry["saved"])
        if saved.is_file():
            old = saved.read_bytes()
            if not path.is_file() or path.read_bytes() != old or (path.stat().st_mode & 0o7777) != entry["mode"]:
                atomic_write(path, old, entry["mode"])
    elif op == "move":
        saved = Path(entry["saved"])
        if saved.exists() or saved.is_symlink():
            os.replace(saved, path)


def leftover_backups(root: Path) -> list[Path]:
    """Backup folders a killed process left behind (SIGKILL, power loss)."""
    return sorted(Path(root).glob(f"{Transaction.BACKUP_PREFIX}*"))


def recover(root: Path) -> list[str]:
    """Undo what killed runs left half-done under ``root``; the paths put back, for the user.

    Call it while holding ``project_lock(root)``, so a live transaction is never touched.
    """
    restored: list[str] = []
    for folder in leftover_backups(root):
        journal = folder / Transaction.JOURNAL
        if journal.is_file():
            entries = []
            for line in journal.read_text(encoding="utf-8").splitlines():
                try:
                    entries.append(json.loads(line))
                except ValueError:
                    break  # the line being written when the process died: its operation never started
            entries = [
                e
                for e in entries
                if isinstance(e, dict)
                and isinstance(e.get("path"), str)
                and Path(e["path"]).resolve().is_relative_to(Path(root).resolve())
            ]
            _undo(entries)
            restored += sorted({os.path.relpath(e["path"], root) for e in entries})
        shutil.rmtree(folder, ignore_errors=True)
    return restored


@contextmanager
def project_lock(root: Path, what: str = "piperack") -> Iterator[None]:
    """One piperack writer per project at a time: others wait (and say so) instead of racing.

    The lock is a file in the temp folder named by the project's resolved path, held with
    ``flock`` on POSIX (the kernel drops it when the process dies, even by SIGKILL). The filelock
    package does the same job on other systems; it is not used on POSIX because importing it
    (asyncio, decimal, platform, …) costs 40–50 ms, a fifth of what `tar xzf` takes for the 50
    archives a `pull --all` is measured against.
    """
    import hashlib

    folder = Path(tempfile.gettempdir()) / "piperack-locks"
    folder.mkdir(mode=0o777, exist_ok=True)
    key = hashlib.sha256(str(Path(root).resolve()).encode()).hexdigest()[:20]
    path = folder / f"{key}.lock"
    try:
        import fcntl
    except ImportError:  # not POSIX
        with _filelock(path, what):
            yield
        return
    fd = os.open(path, os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o666)
    try:
        if not _flock_within(fd, fcntl, seconds=0.2):
            from . import ui

            ui.warn(f"another {what} is writing to this project; waiting for it to finish")
            fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def _flock_within(fd: int, fcntl, seconds: float) -> bool:
    """Take an exclusive flock on ``fd`` if it comes free within ``seconds``."""
    import time

    ends = time.monotonic() + seconds
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            if time.monotonic() >= ends:
                return False
            time.sleep(0.02)


@contextmanager
def _filelock(path: Path, what: str) -> Iterator[None]:
    from filelock import FileLock, Timeout

    from . import ui

    lock = FileLock(str(path))
    try:
        lock.acquire(timeout=0.2)
    except Timeout:
        ui.warn(f"another {what} is writing to this project; waiting for it to finish")
        lock.acquire()
    try:
        yield
    finally:
        lock.release()


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


@contextmanager
def sigterm_interrupts() -> Iterator[None]:
    """Inside the block SIGTERM raises KeyboardInterrupt (errors.Interrupted), as Ctrl-C does, so
    ``finally`` blocks (temporary folders, rollbacks) run when a pull or an update is killed politely."""
    with signals_interrupt(signal.SIGTERM):
        yield


@contextmanager
def transaction(root: Path) -> Iterator[Transaction]:
    """``with transaction(root) as tx:`` — commit when the block ends, roll back if it raises.

    SIGTERM is turned into KeyboardInterrupt inside the block, so ``kill`` rolls back like Ctrl-C.
    """
    with signals_interrupt(signal.SIGTERM):
        tx = Transaction(root)
        try:
            yield tx
        except BaseException:
            with _signals_ignored():
                tx.rollback()
            raise
        tx.commit()
