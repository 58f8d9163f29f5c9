"""Safe staging of an untrusted tarball (a micro-package pulled from somewhere else).

``read_archive(path)`` checks every member header (refusing absolute names, ``..``, symbolic and
hard links, devices, fifos, anything that is not a plain file or folder, duplicate names, and a
total uncompressed size over a limit) and reads the plain files into memory: pull plans from that
and writes nothing from the archive until every check has passed; modes and owners in the archive
are ignored. Errors are ``PiperackError`` lines naming the archive and the member at fault.

Nothing in the archive is executed, and nothing is written.
"""

from __future__ import annotations

import os
import tarfile
import zlib
from pathlib import Path, PurePosixPath

from .errors import PiperackError, first_line

DEFAULT_MAX_BYTES = 200 * 1024 * 1024
MAX_MEMBERS = 100_000
ENV_MAX_BYTES = "PIPERACK_PULL_MAX_BYTES"


def max_bytes_from_env(default: int = DEFAULT_MAX_BYTES) -> int:
    """The uncompressed size limit: $PIPERACK_PULL_MAX_BYTES (bytes; suffixes K, M, G accepted) or default."""
    raw = os.environ.get(ENV_MAX_BYTES, "").strip()
    if not raw:
        return default
    units = {"K": 1024, "M": 1024**2, "G": 1024**3}
    factor = units.get(raw[-1].upper(), 1)
    number = raw[:-1] if raw[-1].upper() in units else raw
    try:
        value = int(number) * factor
    except ValueError:
        raise PiperackError(f"${ENV_MAX_BYTES}={raw!r}: expected a size in bytes such as 200M") from None
    if value <= 0:
        raise PiperackError(f"${ENV_MAX_BYTES}={raw!r}: the limit must be positive")
    return value


def _member_kind(member: tarfile.TarInfo) -> str | None:
    """Why a member is refused, or None for a plain file or folder."""
    if member.issym():
        return f"a symbolic link (to {member.linkname!r})"
    if member.islnk():
        return f"a hard link (to {member.linkname!r})"
    if member.ischr() or member.isblk():
        return "a device file"
    if member.isfifo():
        return "a fifo"
    if not (member.isfile() or member.isdir()):
        return "not a plain file or folder"
    return None


def _check_name(name: str) -> tuple[str | None, str]:
    """(a reason to refuse the member's name or None, the name as a relative POSIX path without
    empty or '.' parts: ``a//./b/`` -> ``a/b``, exactly as PurePosixPath spells it)."""
    if not name or "\x00" in name:
        return "an empty or invalid name", ""
    if name.startswith(("/", "\\")) or (len(name) > 1 and name[1] == ":"):
        return "an absolute path", ""
    if "\\" in name:
        return "a backslash in its name", ""
    parts = name.split("/")
    if ".." in parts:
        return "a path that climbs out with '..'", ""
    normal = "/".join(part for part in parts if part not in ("", "."))
    return (None if normal else "an empty name"), normal


def _open(archive: Path, label: str) -> tarfile.TarFile:
    try:
        return tarfile.open(archive, mode="r:*")
    except (tarfile.ReadError, EOFError, zlib.error, OSError) as exc:
        if isinstance(exc, FileNotFoundError):
            raise PiperackError(f"{label}: no such file") from None
        raise PiperackError(f"{label}: not a readable .tar.gz archive ({first_line(exc)})") from None


def _checked_members(tar: tarfile.TarFile, label: str):
    """Yield ``(relative path, member)`` for the members of ``tar`` in archive order.

    Raises PiperackError for a refused name, anything but a plain file or folder, a name listed twice
    (the same folder listed twice is skipped: harmless) and a path under a file; once every member
    is read, for a path that is both a file and a folder. Size and count limits are the caller's.
    """
    seen: dict[str, bool] = {}  # normalised name -> is a folder
    folders: set[str] = set()  # every parent folder of a member, listed or not
    while True:
        member = tar.next()
        if member is None:
            break
        reason, rel = _check_name(member.name)
        reason = reason or _member_kind(member)
        if reason:
            raise PiperackError(f"{label}: refused member {member.name!r}: {reason}")
        if rel in seen:
            if member.isdir() and seen[rel]:
                continue  # the same folder listed twice is harmless
            raise PiperackError(f"{label}: refused member {member.name!r}: listed more than once")
        parent = rel
        while "/" in parent:
            parent = parent.rpartition("/")[0]
            if seen.get(parent) is False:
                raise PiperackError(f"{label}: refused member {member.name!r}: {parent} is a file")
            if parent in folders:
                break  # its own parents are in already
            folders.add(parent)
        seen[rel] = member.isdir()
        yield PurePosixPath(rel), member
    for rel, is_dir in seen.items():  # linear: no pairwise comparison
        if not is_dir and rel in folders:
            raise PiperackError(f"{label}: refused member {rel!r}: it is both a file and a folder")


def _too_big(label: str, member: tarfile.TarInfo, limit: int) -> PiperackError:
    return PiperackError(
        f"{label}: refused member {member.name!r}: the archive unpacks to more than "
        f"{limit} bytes (the limit; set ${ENV_MAX_BYTES} to change it)"
    )


def read_archive(
    archive: Path, label: str | None = None, max_bytes: int | None = None
) -> tuple[str, dict[PurePosixPath, bytes]]:
    """Check and read ``archive`` into memory: ``(top-level folder, {path under it: bytes})``.

    One pass: each member header is checked before its data is read, and the running total is held
    under ``max_bytes``. Exactly one top-level folder is expected (an sdist's ``<name>-<version>/``).
    Nothing is written anywhere.
    """
    label = label or str(archive)
    limit = max_bytes if max_bytes is not None else max_bytes_from_env()
    members = []
    data: dict[PurePosixPath, bytes] = {}
    total = 0
    tar = _open(archive, label)
    try:
        with tar:
            for rel, member in _checked_members(tar, label):
                if len(members) >= MAX_MEMBERS:
                    raise PiperackError(f"{label}: more than {MAX_MEMBERS} members; refused")
                members.append((rel, member))
                if member.isfile():
                    total += member.size
                    if total > limit:
                        raise _too_big(label, member, limit)
                    reader = tar.extractfile(member)
                    content = reader.read() if reader is not None else b""
                    if len(content) != member.size:
                        raise PiperackError(f"{label}: truncated or corrupt archive (member {member.name!r} is short)")
                    data[rel] = content
    except PiperackError:
        raise
    except (tarfile.TarError, EOFError, zlib.error, OSError) as exc:
        raise PiperackError(f"{label}: truncated or corrupt archive ({first_line(exc)})") from None
    if not members:
        raise PiperackError(f"{label}: the archive is empty")
    tops = sorted({rel.parts[0] for rel, _ in members})
    if len(tops) != 1:
        raise PiperackError(
            f"{label}: expected exactly one top-level folder (<name>-<version>/), found {len(tops)}: "
            + ", ".join(tops[:10])
        )
    top = tops[0]
    if any(len(rel.parts) == 1 and not member.isdir() for rel, member in members):
        raise PiperackError(f"{label}: expected a top-level folder, found the file {top!r}")
    files = {PurePosixPath(*rel.parts[1:]): content for rel, content in data.items()}
    return top, files
