"""Safe reading of untrusted archives and folders: pulled micro-packages, update's --from templates.

A micro-package pulled from somewhere else is a tarball; an old piperack template given to
``update-project --from`` is a tarball, a wheel (zip) or a folder.

``read_archive(path)`` (tar), ``read_zip(path)`` (zip, wheels) and ``read_folder(path)`` check every
member (refusing absolute names, ``..``, backslashes, symbolic and hard links, devices, fifos,
anything that is not a plain file or folder, duplicate names, a path that is both a file and a
folder, more members or bytes than the limits; for zip members, data that inflates past its
declared size or fails its CRC) and read the plain files into memory: callers plan from that and
write nothing from the source until every check has passed; modes and owners are ignored. Errors
are ``PiperackError`` lines naming the archive and the member at fault.

Nothing in the archive is executed, and nothing is written.
"""

from __future__ import annotations

import copy
import os
import stat
import tarfile
import zipfile
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
    """Yield ``(relative path, member)`` for the members of ``tar`` in archive order (``_checked``)."""
    entries = iter(tar.next, None)
    yield from _checked(((m.name, m.isdir(), _member_kind(m), m) for m in entries), label)


def _checked(entries, label: str):
    """Yield ``(relative path, payload)`` for ``(name, is a folder, reason to refuse or None, payload)``
    entries, in their order.

    Raises PiperackError for a refused name, anything but a plain file or folder, a name listed twice
    (the same folder listed twice is skipped: harmless) and a path under a file; once every member
    is read, for a path that is both a file and a folder. Size and count limits are the caller's.
    """
    seen: dict[str, bool] = {}  # normalised name -> is a folder
    folders: set[str] = set()  # every parent folder of a member, listed or not
    for name, is_dir, kind, payload in entries:
        reason, rel = _check_name(name)
        reason = reason or kind
        if reason:
            raise PiperackError(f"{label}: refused member {name!r}: {reason}")
        if len(seen) >= MAX_MEMBERS:
            raise PiperackError(f"{label}: more than {MAX_MEMBERS} members; refused")
        if rel in seen:
            if is_dir and seen[rel]:
                continue  # the same folder listed twice is harmless
            raise PiperackError(f"{label}: refused member {name!r}: listed more than once")
        parent = rel
        while "/" in parent:
            parent = parent.rpartition("/")[0]
            if seen.get(parent) is False:
                raise PiperackError(f"{label}: refused member {name!r}: {parent} is a file")
            if parent in folders:
                break  # its own parents are in already
            folders.add(parent)
        seen[rel] = is_dir
        yield PurePosixPath(rel), payload
    for rel, is_dir in seen.items():  # linear: no pairwise comparison
        if not is_dir and rel in folders:
            raise PiperackError(f"{label}: refused member {rel!r}: it is both a file and a folder")


def _too_big(label: str, name: str, limit: int) -> PiperackError:
    return PiperackError(
        f"{label}: refused member {name!r}: the archive unpacks to more than "
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
                members.append((rel, member))
                if member.isfile():
                    total += member.size
                    if total > limit:
                        raise _too_big(label, member.name, limit)
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


# -- zip (a wheel) ------------------------------------------------------------------------------------


def _zip_kind(info) -> str | None:
    """Why a zip member is refused before its data is read, or None."""
    kind = stat.S_IFMT(info.external_attr >> 16)  # 0: a zip tool that records no file type
    if info.flag_bits & 0x1:
        return "encrypted"
    if kind == stat.S_IFLNK:
        return "a symbolic link"
    if kind not in (0, stat.S_IFREG, stat.S_IFDIR):
        return "not a plain file or folder"
    if not info.is_dir() and info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
        return f"compression method {info.compress_type} (only stored and deflated are read)"
    return None


def _zip_data(archive: zipfile.ZipFile, info, label: str) -> bytes:
    """A member's bytes, inflated by hand so that data past its declared size or a wrong CRC is
    refused (zipfile would silently stop at the declared size)."""
    raw_info = copy.copy(info)
    raw_info.compress_type = zipfile.ZIP_STORED
    raw_info.file_size = info.compress_size
    raw_info.CRC = None  # the CRC is of the inflated bytes: checked below
    with archive.open(raw_info) as stream:
        raw = stream.read()
    if info.compress_type == zipfile.ZIP_STORED:
        data, ended = raw, True
    else:
        inflater = zlib.decompressobj(-15)
        data = inflater.decompress(raw, info.file_size + 1)
        ended = inflater.eof and not inflater.unconsumed_tail
    if len(data) > info.file_size:
        raise PiperackError(f"{label}: refused member {info.filename!r}: it inflates past its declared size")
    if len(data) != info.file_size or not ended:
        raise PiperackError(f"{label}: truncated or corrupt archive (member {info.filename!r} is short)")
    if zlib.crc32(data) != info.CRC:
        raise PiperackError(f"{label}: refused member {info.filename!r}: its data fails its CRC check")
    return data


def read_zip(archive: Path, label: str | None = None, max_bytes: int | None = None) -> dict[PurePosixPath, bytes]:
    """Check and read a zip archive (a wheel) into memory: ``{path: bytes}`` for its files.

    Every member is checked (names, kinds, duplicates, file-and-folder clashes, the declared sizes
    against ``max_bytes``) before any data is read; then each file is inflated and checked against
    its declared size and CRC. Nothing is written anywhere.
    """
    label = label or str(archive)
    limit = max_bytes if max_bytes is not None else max_bytes_from_env()
    try:
        with zipfile.ZipFile(archive) as opened:
            infos = opened.infolist()
            checked = list(_checked(((i.filename, i.is_dir(), _zip_kind(i), i) for i in infos), label))
            total = 0
            for _rel, info in checked:
                total += info.file_size
                if total > limit:
                    raise _too_big(label, info.filename, limit)
            return {rel: _zip_data(opened, info, label) for rel, info in checked if not info.is_dir()}
    except PiperackError:
        raise
    except FileNotFoundError:
        raise PiperackError(f"{label}: no such file") from None
    except (zipfile.BadZipFile, zlib.error, OSError, EOFError, ValueError, NotImplementedError) as exc:
        raise PiperackError(f"{label}: not a readable zip archive ({first_line(exc)})") from None


# -- a folder -----------------------------------------------------------------------------------------


def _folder_entries(root: Path, skip: frozenset[str]):
    """``(name, is a folder, reason or None, path)`` for everything under ``root``, links not followed."""
    stack = [(root, "")]
    while stack:
        folder, prefix = stack.pop()
        with os.scandir(folder) as found:
            entries = sorted(found, key=lambda e: e.name)
        for entry in entries:
            if not prefix and entry.name in skip:
                continue
            name = prefix + entry.name
            if entry.is_symlink():
                yield name, False, f"a symbolic link (to {os.readlink(entry.path)!r})", entry.path
            elif entry.is_dir(follow_symlinks=False):
                yield name, True, None, entry.path
                stack.append((Path(entry.path), name + "/"))
            elif entry.is_file(follow_symlinks=False):
                yield name, False, None, entry.path
            else:
                yield name, False, "not a plain file or folder", entry.path


def read_folder(
    folder: Path,
    label: str | None = None,
    max_bytes: int | None = None,
    skip: frozenset[str] = frozenset(),
    wanted=None,
) -> dict[PurePosixPath, bytes]:
    """Check a folder as pull checks an archive and read its files: ``{path: bytes}``.

    A symbolic link anywhere below (to a file or a folder, inside or outside), a device, a fifo or
    a socket refuses the whole folder, as do the name rules of archives and the limits. ``skip``:
    top-level names not walked at all (a checkout's ``.git``, ``.venv``); ``wanted(path)``: which
    checked files are read (default: all). Files are opened without following links.
    """
    label = label or str(folder)
    limit = max_bytes if max_bytes is not None else max_bytes_from_env()
    files: dict[PurePosixPath, bytes] = {}
    total = 0
    try:
        for rel, path in _checked(_folder_entries(Path(folder), skip), label):
            if Path(path).is_dir() or (wanted is not None and not wanted(rel)):
                continue
            fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
            with os.fdopen(fd, "rb") as stream:
                data = stream.read(limit - total + 1)
            total += len(data)
            if total > limit:
                raise _too_big(label, rel.as_posix(), limit)
            files[rel] = data
    except PiperackError:
        raise
    except OSError as exc:
        raise PiperackError(f"{label}: could not be read ({first_line(exc)})") from None
    return files
