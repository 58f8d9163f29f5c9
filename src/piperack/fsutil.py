"""The write session: how every verb writes to a project, so a failure never leaves half of it.

- ``write_session(root, verb)``: the one way a verb writes to a project. It holds the project
  lock (one writer at a time, for every user of the machine), first finishes what a killed run of
  the same verb left half-done (its journal), turns SIGTERM into KeyboardInterrupt like Ctrl-C, and
  hands out transactions confined to the project.
- ``transaction(root)``: several creates, changes and removals under ``root`` that land all
  together or not at all; an error, Ctrl-C or SIGTERM midway restores every path byte-for-byte.
  Only inside a write session. Every path is confined: relative to the root, no ``..``, and no
  symbolic link in any of its parent folders (``confined``; readers use ``read_confined``).
- ``recover(root, verb)``: after a SIGKILL or a power cut, undo what the journal of a killed run of
  ``verb`` records, but only where the files are still as that run left them: a file changed since
  is kept (and named), never replayed over.
- ``atomic_write(path, data)``: a sibling temporary file, then ``os.replace`` over ``path``.
  ``sibling_temp(path)``: that temporary file, for a tool that writes it (build-reqs' resolver).
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import shutil
import signal
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from .errors import PiperackError, signals_interrupt
from .yamlload import load_json

DEFAULT_MODE = 0o644
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_BINARY", 0)
TEMP_SUFFIX = ".piperack-tmp"
# Fault injection for the kill tests (tests/test_update_faults.py): "<point>:<signal>", the point a
# journal entry's number (the signal arrives once that entry is journalled, before its operation),
# "commit" (every operation done, the journal not yet marked) or "committed" (marked, not yet
# removed); the signal KILL, TERM or INT, sent by the process to itself. Unset: no cost but a lookup.
FAULT_ENV = "PIPERACK_TEST_FAULT"


def _fault(point: str) -> None:
    wanted = os.environ.get(FAULT_ENV)
    if wanted and wanted.partition(":")[0] == point:
        os.kill(os.getpid(), getattr(signal, "SIG" + wanted.partition(":")[2].upper(), signal.SIGKILL))


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


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _file_sha256(path: Path) -> str | None:
    """The sha256 of a regular file (not followed through a link), else None."""
    try:
        fd = os.open(path, os.O_RDONLY | _NOFOLLOW)
    except OSError:
        return None
    digest = hashlib.sha256()
    with os.fdopen(fd, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def confined(root: Path, rel, safe: set[Path] | None = None) -> Path:
    """``root / rel``, refused in one line unless it stays inside ``root`` with no symbolic link in
    any folder between them (the last part may be a link: it is replaced or removed, never followed).

    ``safe`` caches folders already checked within one session (a pull writes thousands of files)."""
    root = Path(root)
    path = Path(rel)
    if path.is_absolute():
        try:
            path = path.relative_to(root)
        except ValueError:
            raise PiperackError(f"{rel}: outside the project ({root}); nothing written") from None
    if not path.parts or any(part in ("..", "") for part in path.parts):
        raise PiperackError(f"{rel}: not a path inside the project; nothing written")
    folder = root
    for part in path.parts[:-1]:
        folder = folder / part
        if safe is not None and folder in safe:
            continue
        if folder.is_symlink():
            shown = folder.relative_to(root).as_posix()
            raise PiperackError(
                f"{path.as_posix()}: {shown} is a symbolic link; piperack writes, reads and deletes "
                "nothing through a link (replace it with a folder)"
            )
        if safe is not None and folder.is_dir():
            safe.add(folder)
    return root / path


def read_confined(root: Path, rel) -> bytes | None:
    """A project file's bytes (None when it is missing), read only where ``confined`` allows and never
    through a link: the file itself may not be a link either."""
    path = confined(root, rel)
    try:
        fd = os.open(path, os.O_RDONLY | _NOFOLLOW)
    except FileNotFoundError:
        return None
    except OSError as exc:
        if path.is_symlink():
            raise PiperackError(
                f"{Path(rel).as_posix()}: a symbolic link; piperack reads nothing through a link"
            ) from None
        raise exc
    with os.fdopen(fd, "rb") as handle:
        return handle.read()


class Transaction:
    """File operations under ``root`` that can be undone exactly, even after the process is killed.

    A backup folder inside ``root`` (same filesystem: ``os.replace`` is atomic) holds a journal.
    Its first line names the session (verb, id, pid, start); then one JSON line per operation,
    written *before* the operation: a removed path is moved into the folder, a changed file's old
    bytes and mode are saved there with the new bytes' sha256, created files are listed with theirs.
    ``rollback`` undoes the journal in reverse; ``recover`` does the same for a journal a killed run
    left behind, skipping files changed since. ``commit`` marks the journal done, then deletes the
    folder. Use it through ``write_session(...).transaction()``.
    """

    BACKUP_PREFIX = ".piperack-backup-"
    JOURNAL = "journal.jsonl"
    COMMITTED = "committed"  # the journal's name once every operation is done

    def __init__(self, root: Path, verb: str = "pull"):
        self.root = Path(root)
        self.verb = verb
        self.backup: Path | None = Path(tempfile.mkdtemp(prefix=f"{self.BACKUP_PREFIX}{verb}-", dir=self.root))
        self.entries: list[dict] = []
        self._folders: set[Path] = set()  # folders known to exist (made or checked by this transaction)
        self._safe: set[Path] = set()  # folders checked to be no link (confined)
        self._journal = open(self.backup / self.JOURNAL, "w", encoding="utf-8")
        header = {"session": os.urandom(8).hex(), "verb": verb, "pid": os.getpid(), "started": time.time()}
        self._journal.write(json.dumps(header) + "\n")
        self._journal.flush()

    def _log(self, **entry) -> None:
        self.entries.append(entry)
        self._journal.write(json.dumps(entry) + "\n")
        self._journal.flush()
        _fault(str(len(self.entries)))

    def _path(self, rel) -> Path:
        return confined(self.root, rel, self._safe)

    def _mkdirs(self, folder: Path) -> None:
        if folder in self._folders:
            return
        wanted, missing = folder, []
        while not folder.exists():
            if folder.is_symlink():  # a dangling link where a folder should be
                raise PiperackError(f"{folder.relative_to(self.root).as_posix()}: a symbolic link; nothing written")
            missing.append(folder)
            folder = folder.parent
        for path in reversed(missing):
            self._log(op="mkdir", path=str(path))
            path.mkdir(mode=0o755)
        self._folders.add(wanted)

    def remove(self, rel) -> None:
        """Move a file or folder out of the way (restored on rollback)."""
        path = self._path(rel)
        target = self.backup / f"moved-{len(self.entries)}"
        self._folders.clear()  # a folder moved away may be one of them
        self._safe.clear()
        self._log(op="move", path=str(path), saved=str(target))
        os.replace(path, target)

    def create(self, rel, data: bytes) -> None:
        """Write a file that must not exist yet (its missing folders are created too).

        The file is created in place with O_EXCL, not through a temporary file: nobody's file can be
        replaced (one that appeared meanwhile is refused), and the journal entry written first means
        a half-written file is removed by ``rollback`` or, after a kill, by ``recover``. Four system
        calls a file instead of eleven: pulling 50 packages is mostly this.
        """
        path = self._path(rel)
        self._mkdirs(path.parent)
        appeared = PiperackError(f"{rel} appeared while writing; nothing changed")
        try:
            os.lstat(path)  # any error but "no such file" (a name too long…) stops here, before the journal
        except FileNotFoundError:
            pass
        else:
            raise appeared
        self._log(op="create", path=str(path), sha256=_sha256(data), size=len(data))
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
        path = self._path(rel)
        if isinstance(data, str):
            data = data.encode("utf-8")
        if path.is_symlink():
            raise PiperackError(f"{Path(rel).as_posix()}: a symbolic link; piperack writes nothing through a link")
        if path.exists():
            saved = self.backup / f"old-{len(self.entries)}"
            shutil.copyfile(path, saved)
            self._log(
                op="change", path=str(path), saved=str(saved), mode=path.stat().st_mode & 0o7777, sha256=_sha256(data)
            )
        else:
            self._mkdirs(path.parent)
            self._log(op="create", path=str(path), sha256=_sha256(data), size=len(data))
        atomic_write(path, data)

    def commit(self) -> None:
        _fault("commit")
        self._journal.close()
        os.replace(self.backup / self.JOURNAL, self.backup / self.COMMITTED)
        _fault("committed")
        shutil.rmtree(self.backup, ignore_errors=True)
        self.backup = None

    def rollback(self) -> None:
        self._journal.close()
        _undo(self.entries)  # on failure the backup folder stays: the next run's recover() finishes
        shutil.rmtree(self.backup, ignore_errors=True)
        self.backup = None


def _undo(entries: list[dict], since: float | None = None) -> list[str]:
    """Undo journal entries, newest first; what is already undone (or never done) is skipped.

    ``since`` (a killed run's start): recovery, not a live rollback. Then a file whose bytes are no
    longer what the run wrote was changed by someone after it: it is kept, and its path returned.
    Every entry is tried even when one fails (a file that became read-only): the first error is
    raised at the end, and the backup folder stays for ``recover`` to finish the job."""
    failures: list[BaseException] = []
    kept: list[str] = []
    cancelled = {entry["path"] for entry in entries if entry.get("op") == "cancel"}
    for entry in reversed(entries):
        if entry.get("op") == "cancel" or (entry.get("op") == "create" and entry["path"] in cancelled):
            continue
        try:
            if not _undo_one(entry, since):
                kept.append(entry["path"])
        except OSError as exc:
            failures.append(exc)
    if failures:
        raise failures[0]
    return kept


def _ours(path: Path, entry: dict, since: float | None) -> bool:
    """Is ``path`` still what the journal's run wrote there? Always, in a live rollback; after a
    kill, when its bytes have the sha256 the run wrote, or it is shorter and not older than the run
    (a write the kill cut short). Journals without a sha256 (older piperack) are trusted."""
    if since is None or "sha256" not in entry:
        return True
    if _file_sha256(path) == entry["sha256"]:
        return True
    try:
        info = os.lstat(path)
    except OSError:
        return False
    return entry.get("op") == "create" and info.st_size < entry.get("size", 0) and info.st_mtime >= since - 2


def _undo_one(entry: dict, since: float | None = None) -> bool:
    """Undo one operation; False when the path was changed since (recovery keeps it)."""
    path = Path(entry["path"])
    for tmp in path.parent.glob(f".{path.name}.*{TEMP_SUFFIX}"):
        tmp.unlink(missing_ok=True)  # an atomic write cut short
    op = entry["op"]
    if op == "create":
        if path.is_symlink() or path.is_file():
            if not _ours(path, entry, since):
                return False
            path.unlink()
    elif op == "mkdir":
        if path.is_dir() and not path.is_symlink():
            try:
                path.rmdir()  # only when empty: what others put there since stays
            except OSError:
                if since is None:
                    shutil.rmtree(path)  # a live rollback: everything in it is this run's
                else:
                    return False
    elif op == "change":
        saved = Path(entry["saved"])
        if saved.is_file():
            old = saved.read_bytes()
            if not path.is_file() or path.read_bytes() != old or (path.stat().st_mode & 0o7777) != entry["mode"]:
                if path.exists() and not _ours(path, entry, since):
                    return False
                atomic_write(path, old, entry["mode"])
    elif op == "move":
        saved = Path(entry["saved"])
        if saved.exists() or saved.is_symlink():
            if since is not None and (path.exists() or path.is_symlink()):
                return False  # made anew since: the newer one stays
            os.replace(saved, path)
    return True


def leftover_backups(root: Path) -> list[Path]:
    """Backup folders a killed process left behind (SIGKILL, power loss)."""
    return sorted(Path(root).glob(f"{Transaction.BACKUP_PREFIX}*"))


def _journal_of(folder: Path) -> tuple[dict, list[dict]]:
    """A backup folder's session header and its entries (a line cut by the kill ends the list)."""
    journal = folder / Transaction.JOURNAL
    if not journal.is_file():
        return {}, []
    lines = journal.read_text(encoding="utf-8").splitlines()
    entries = []
    for line in lines:
        try:
            entries.append(load_json(line))
        except ValueError:
            break  # the line being written when the process died: its operation never started
    header = entries.pop(0) if entries and isinstance(entries[0], dict) and "session" in entries[0] else {}
    return header, entries


def _finished(folder: Path) -> bool:
    """A backup folder with nothing to undo: its run committed (killed before removing it), or was
    killed before journalling anything. Any verb's session removes it."""
    if (folder / Transaction.COMMITTED).exists():
        return True
    header, entries = _journal_of(folder)
    return not header and not entries


def recover(root: Path, verb: str = "pull") -> list[str]:
    """Undo what killed runs of ``verb`` left half-done under ``root``; the paths put back.

    A journal of another verb is left for that verb (``interrupted_runs`` names it); a file changed
    since the killed run is kept and named in a warning. Call it holding the project lock (inside
    ``write_session``), so a live transaction is never touched.
    """
    restored: list[str] = []
    kept: list[str] = []
    root_resolved = Path(root).resolve()
    for folder in leftover_backups(root):
        if _finished(folder):
            shutil.rmtree(folder, ignore_errors=True)
            continue
        header, entries = _journal_of(folder)
        if header.get("verb", "pull") != verb:
            continue
        entries = [
            e
            for e in entries
            if isinstance(e, dict)
            and isinstance(e.get("path"), str)
            and Path(e["path"]).resolve().is_relative_to(root_resolved)
        ]
        since = header.get("started") if isinstance(header.get("started"), (int, float)) else 0.0
        kept_here = set(_undo(entries, since=since))
        kept += sorted({os.path.relpath(p, root) for p in kept_here})
        restored += sorted({os.path.relpath(e["path"], root) for e in entries if e["path"] not in kept_here})
        shutil.rmtree(folder, ignore_errors=True)
    if kept:
        from . import ui

        ui.warn(f"kept {len(kept)} path(s) changed since the killed run, as they are now: {ui.first_few(kept)}")
    return restored


def interrupted_runs(root: Path) -> list[str]:
    """The verbs whose killed runs left a journal under ``root`` (each recovers its own)."""
    return sorted(
        {_journal_of(folder)[0].get("verb", "pull") for folder in leftover_backups(root) if not _finished(folder)}
    )


# -- the project lock and the write session ---------------------------------------------------------

_HELD: dict[Path, str] = {}  # project roots this process holds the lock of, and the verb holding it


@contextmanager
def project_lock(root: Path, what: str = "piperack") -> Iterator[None]:
    """One piperack writer per project at a time: others wait (and say so) instead of racing.

    The lock is the project folder itself, held with ``flock`` on POSIX: nothing is created, so it
    works for every user who can read the project (CI runners and Airflow workers under other
    uids share nothing in /tmp), and the kernel drops it when the process dies, even by SIGKILL.
    Elsewhere the filelock package holds ``.piperack.lock`` in the project; it is not used on POSIX
    because importing it (asyncio, decimal, platform, …) costs 40–50 ms of a 0.4 s ``pull --all``.
    """
    root = Path(root)
    key = root.resolve()
    if key in _HELD:  # already ours (a verb calling another's step): flock would not block anyway
        yield
        return
    try:
        import fcntl
    except ImportError:  # not POSIX
        with _filelock(root / ".piperack.lock", what):
            _HELD[key] = what
            try:
                yield
            finally:
                _HELD.pop(key, None)
        return
    fd = os.open(root, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | getattr(os, "O_CLOEXEC", 0))
    try:
        if not _flock_within(fd, fcntl, seconds=0.2):
            from . import ui

            ui.warn(f"another piperack command is writing to this project; this {what} waits for it to finish")
            fcntl.flock(fd, fcntl.LOCK_EX)
        _HELD[key] = what
        try:
            yield
        finally:
            _HELD.pop(key, None)
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def _flock_within(fd: int, fcntl, seconds: float) -> bool:
    """Take an exclusive flock on ``fd`` if it comes free within ``seconds``."""
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
        ui.warn(f"another piperack command is writing to this project; this {what} waits for it to finish")
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


RERUN = {
    "pull": "invoke pull",
    "update-project": "invoke update-project",
    "new-pipeline": "invoke new-pipeline",
    "airflow-dag": "invoke airflow-dag",
    "viz": "invoke viz",
    "new": "piperack new -f",
}


@contextmanager
def write_session(root: Path, verb: str) -> Iterator[None]:
    """``with write_session(project.root, "pull"):`` around everything a verb reads and writes.

    Holds the project lock (a pull during an update waits for it), turns SIGTERM into
    KeyboardInterrupt, and first recovers what a killed run of the same verb left half-done (a
    warning names the paths). A killed run of another verb is that verb's to finish: this one
    refuses in one line naming the command to run, instead of working on a half-written tree.
    Inside, ``transaction(root)`` writes."""
    from . import ui

    with signals_interrupt(signal.SIGTERM), project_lock(root, verb):
        restored = recover(root, verb)
        if restored:
            ui.warn(
                f"an earlier run was killed midway; put back {len(restored)} path(s) as they were: "
                + ui.first_few(restored)
            )
        others = interrupted_runs(root)
        if others:
            command = RERUN.get(others[0], others[0])
            raise PiperackError(
                f"an earlier `{command}` was killed midway and left its journal in {Path(root).name}/"
                f"{Transaction.BACKUP_PREFIX}{others[0]}-*: run `{command}` again first (it puts the "
                "project back before it starts); nothing changed"
            )
        yield


def sigterm_interrupts() -> Iterator[None]:
    """Inside the block SIGTERM raises KeyboardInterrupt (errors.Interrupted), as Ctrl-C does."""
    return signals_interrupt(signal.SIGTERM)


@contextmanager
def transaction(root: Path) -> Iterator[Transaction]:
    """``with transaction(root) as tx:`` — commit when the block ends, roll back if it raises.

    Only inside ``write_session(root, verb)``: the journal records that verb. SIGTERM is turned into
    KeyboardInterrupt inside the block, so ``kill`` rolls back like Ctrl-C.
    """
    verb = _HELD.get(Path(root).resolve())
    if verb is None:
        raise RuntimeError(f"fsutil.transaction({root}) outside a write session (use fsutil.write_session)")
    with signals_interrupt(signal.SIGTERM):
        tx = Transaction(root, verb)
        try:
            yield tx
        except BaseException:
            with _signals_ignored():
                tx.rollback()
            raise
        tx.commit()


def write_output(root: Path, verb: str, path: Path, data: bytes | str) -> None:
    """Write one file a verb produces (a DAG file, a page): inside the project through the write
    session (lock, journal, no write through a linked folder); a path outside the project, the
    user's own choice of folder, atomically there, its folder made first."""
    full = Path(os.path.abspath(path))
    root = Path(os.path.abspath(root))
    if full.is_relative_to(root):
        with write_session(root, verb), transaction(root) as tx:
            tx.change(full.relative_to(root), data)
        return
    full.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(full, data)
