"""Three-way merges of files: the one home of merging, for update-project and ``pull --upgrade``.

Both bring a newer upstream (the template; a pulled pipeline) into files a team edits.

``merge_one(ours, base, theirs, labels)`` decides one file: taken from upstream, kept, deleted,
merged line by line (``git merge-file``), or a conflict written inline with git's markers
(``<<<<<<< <ours label>`` … ``>>>>>>> <theirs label>``). ``None`` stands for "no such file".
Nothing is written here.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from .errors import PiperackError, first_line


@dataclass
class Merged:
    """What a three-way merge does to one file. ``data`` is what is written (None: nothing, or the
    file is removed when ``action`` is ``delete``)."""

    action: str  # add, update, merge, conflict, keep, delete, same
    data: bytes | None = None
    note: str = ""


def is_binary(data: bytes) -> bool:
    if b"\0" in data:
        return True
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return True
    return False


def merge_file(ours: bytes, base: bytes, theirs: bytes, labels: tuple[str, str, str]) -> tuple[bytes, int]:
    """A line-level three-way merge with ``git merge-file``: (result, number of conflicts)."""
    git = shutil.which("git")
    if not git:
        raise PiperackError("git is needed for the three-way merge of files both sides changed: install git")
    with tempfile.TemporaryDirectory(prefix="piperack-merge-") as tmp:
        paths = []
        for name, data in (("ours", ours), ("base", base), ("theirs", theirs)):
            path = Path(tmp) / name
            path.write_bytes(data)
            paths.append(str(path))
        proc = subprocess.run(
            [git, "merge-file", "-p", "-L", labels[0], "-L", labels[1], "-L", labels[2], *paths], capture_output=True
        )
    if proc.returncode < 0 or proc.returncode > 127:
        raise PiperackError(f"git merge-file failed: {first_line(Exception(proc.stderr.decode(errors='replace')))}")
    return proc.stdout, proc.returncode


def merge_one(
    ours: bytes | None, base: bytes | None, theirs: bytes | None, labels: tuple[str, str, str], *, upstream: str
) -> Merged:
    """The fate of one file: ``ours`` (the project's), ``base`` (the upstream it came from),
    ``theirs`` (the new upstream); ``upstream`` names the latter in notes ("the template")."""
    if theirs is None:  # upstream dropped it
        if ours is None:
            return Merged("same")
        if ours == base:
            return Merged("delete")
        return Merged("keep", note=f"dropped by {upstream}; kept: the team changed it")
    if ours is None:
        if base is None:
            return Merged("add", theirs)
        if base != theirs:
            return Merged("keep", note=f"deleted by the team; {upstream} changed it: not restored")
        return Merged("same")
    if ours == theirs:
        return Merged("same")
    if base is not None and ours == base:
        return Merged("update", theirs)
    if base == theirs:
        return Merged("keep", note="changed by the team only")
    if is_binary(ours) or is_binary(theirs) or (base is not None and is_binary(base)):
        return Merged("conflict", note="binary: not merged; the project's file is kept")
    merged, conflicts = merge_file(ours, base if base is not None else b"", theirs, labels)
    if conflicts:
        return Merged("conflict", merged, note=f"{conflicts} conflict(s) marked inline")
    if merged == ours:
        return Merged("same")
    return Merged("merge", merged)


def unified_diff(path: str, old: bytes | None, new: bytes | None) -> list[str]:
    """``git diff``-style lines from ``old`` to ``new`` (None: no file) for ``--diff``."""
    import difflib

    old, new = old or b"", new or b""
    if is_binary(old) or is_binary(new):
        return [f"Binary file {path} differs\n"]
    return list(
        difflib.unified_diff(
            old.decode("utf-8").splitlines(keepends=True),
            new.decode("utf-8").splitlines(keepends=True),
            fromfile=f"a/{path}",
            tofile=f"b/{path}",
        )
    )


def uncommitted(root: Path, paths: list) -> list[str] | None:
    """Of ``paths`` (relative to ``root``), those with uncommitted changes, untracked ones included:
    what a merge into them would mix with upstream's changes past undoing by git. None when ``root``
    is not in a git work tree (or git is missing)."""
    git = shutil.which("git")
    if not git:
        return None
    if not paths:
        return []
    inside = subprocess.run(
        [git, "rev-parse", "--is-inside-work-tree", "--show-prefix"], cwd=root, capture_output=True, text=True
    )
    lines = inside.stdout.splitlines()
    if inside.returncode or not lines or lines[0].strip() != "true":
        return None
    prefix = lines[1] if len(lines) > 1 else ""  # the project inside a larger repository: its folder
    status = subprocess.run(
        [
            git,
            "--no-optional-locks",
            "--literal-pathspecs",
            "status",
            "--porcelain",
            "-z",
            "--untracked-files=all",
            "--",
            *map(str, paths),
        ],
        cwd=root,
        capture_output=True,
        text=True,
    )
    found, fields = set(), iter(status.stdout.split("\0"))
    for field in fields:
        if len(field) < 4:
            continue
        if field[0] in "RC":  # a rename or copy: its source path follows
            next(fields, None)
        path = field[3:]
        found.add(path[len(prefix) :] if prefix and path.startswith(prefix) else path)
    return sorted(found)


def dirty_refusal(dirty: list[str], what: str) -> str:
    """The one line that refuses a merge into files with uncommitted changes (``what``: "the update
    would touch")."""
    from .ui import first_few

    return (
        f"uncommitted changes in {len(dirty)} file(s) {what}: {first_few(dirty)} "
        "(commit or stash them, or pass --allow-dirty)"
    )


DIRTY_NOTE = "uncommitted changes"


def check_dirty(root: Path, paths: list, what: str, doing: str, *, preview: bool, allow_dirty: bool) -> list[str]:
    """Of ``paths`` (the files a merge would write, relative to ``root``), those with uncommitted
    changes: merged in place, the team's work would be mixed with upstream's past undoing by git.
    A real run refuses them in one line (``dirty_refusal``; nothing is written yet) unless
    ``allow_dirty``, and outside a git work tree warns that it cannot check (``doing``: "updating").
    A preview (--dry-run, --diff) only returns them: its listing marks them (``listed_note``) and it
    ends with the refusal as a warning (``warn_dirty``); outside git it says nothing."""
    from . import ui

    dirty = uncommitted(root, paths)
    if dirty is None:
        if paths and not preview:
            ui.warn(f"not a git work tree: cannot check for uncommitted changes (commit before {doing})")
        return []
    if dirty and not allow_dirty and not preview:
        raise PiperackError(dirty_refusal(dirty, what))
    return dirty


def warn_dirty(dirty: list[str], what: str, allow_dirty: bool) -> None:
    """The last line of a preview: the refusal the real run would give, as a warning."""
    from . import ui

    if dirty and not allow_dirty:
        ui.warn(dirty_refusal(dirty, what))


def listed_note(note: str, dirty: bool) -> str:
    """What follows a file in a --dry-run/--diff listing: ``  (<merge note>; uncommitted changes)``,
    either part alone, or nothing."""
    notes = [text for text in (note, DIRTY_NOTE if dirty else "") if text]
    return f"  ({'; '.join(notes)})" if notes else ""
