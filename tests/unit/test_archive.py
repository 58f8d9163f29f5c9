"""Unit tests of piperack.archive: a corpus of hostile archives, each refused before anything is written."""

from __future__ import annotations

import gzip
import io
import os
import re
import stat
import struct
import tarfile
import zipfile
import zlib
from pathlib import Path, PurePosixPath

import pytest

from piperack.archive import max_bytes_from_env, read_archive, read_folder, read_zip
from piperack.errors import PiperackError


def exact(message: str) -> str:
    """A ``match=`` pattern for exactly this one-line message."""
    return f"^{re.escape(message)}$"


def member(name, data=b"x", kind=tarfile.REGTYPE, linkname="", mode=0o644):
    info = tarfile.TarInfo(name)
    info.type = kind
    info.mode = mode
    info.linkname = linkname
    info.size = len(data) if kind == tarfile.REGTYPE else 0
    return info, (io.BytesIO(data) if kind == tarfile.REGTYPE else None)


def make_tar(path: Path, members, fmt=tarfile.PAX_FORMAT) -> Path:
    with tarfile.open(path, "w:gz", format=fmt) as tar:
        for info, data in list(members):
            if data is not None:
                data.seek(0)
            tar.addfile(info, data)
    return path


class _Good:
    """The members of a small valid sdist (fresh readers on each use)."""

    def __iter__(self):
        yield member("pkg-0.1/PKG-INFO", b"Name: pkg\nVersion: 0.1\n")
        yield member("pkg-0.1/pkg/__init__.py", b"")


GOOD = _Good()


def test_good_archive_is_read_into_memory(tmp_path):
    arc = make_tar(tmp_path / "a.tar.gz", [*GOOD, member("pkg-0.1/run.sh", b"#!/bin/sh\n", mode=0o4777)])
    top, files = read_archive(arc)
    assert top == "pkg-0.1"
    assert sorted(str(p) for p in files) == ["PKG-INFO", "pkg/__init__.py", "run.sh"]
    assert files[PurePosixPath("run.sh")] == b"#!/bin/sh\n"  # contents only: modes from the archive are not kept


HOSTILE = {  # case: (members, "refused member '<name>': <reason>")
    "absolute": ([member("/etc/evil", b"x")], "'/etc/evil': an absolute path"),
    "dotdot": (
        [*GOOD, member("pkg-0.1/../../evil.py", b"x")],
        "'pkg-0.1/../../evil.py': a path that climbs out with '..'",
    ),
    "dotdot-top": ([member("../evil.py", b"x")], "'../evil.py': a path that climbs out with '..'"),
    "symlink-outside": (
        [*GOOD, member("pkg-0.1/pkg/link", kind=tarfile.SYMTYPE, linkname="/etc/passwd")],
        "'pkg-0.1/pkg/link': a symbolic link (to '/etc/passwd')",
    ),
    "symlink-inside": (
        [*GOOD, member("pkg-0.1/pkg/link", kind=tarfile.SYMTYPE, linkname="__init__.py")],
        "'pkg-0.1/pkg/link': a symbolic link (to '__init__.py')",
    ),
    "hardlink-outside": (
        [*GOOD, member("pkg-0.1/pkg/hard", kind=tarfile.LNKTYPE, linkname="../../../etc/passwd")],
        "'pkg-0.1/pkg/hard': a hard link (to '../../../etc/passwd')",
    ),
    "hardlink-inside": (
        [*GOOD, member("pkg-0.1/pkg/hard", kind=tarfile.LNKTYPE, linkname="pkg-0.1/pkg/__init__.py")],
        "'pkg-0.1/pkg/hard': a hard link (to 'pkg-0.1/pkg/__init__.py')",
    ),
    "chardev": ([*GOOD, member("pkg-0.1/pkg/dev", kind=tarfile.CHRTYPE)], "'pkg-0.1/pkg/dev': a device file"),
    "blockdev": ([*GOOD, member("pkg-0.1/pkg/dev", kind=tarfile.BLKTYPE)], "'pkg-0.1/pkg/dev': a device file"),
    "fifo": ([*GOOD, member("pkg-0.1/pkg/fifo", kind=tarfile.FIFOTYPE)], "'pkg-0.1/pkg/fifo': a fifo"),
    "duplicate": (
        [*GOOD, member("pkg-0.1/pkg/__init__.py", b"evil")],
        "'pkg-0.1/pkg/__init__.py': listed more than once",
    ),
    "file-and-folder": (
        [*GOOD, member("pkg-0.1/pkg/__init__.py/x", b"x")],
        "'pkg-0.1/pkg/__init__.py/x': pkg-0.1/pkg/__init__.py is a file",
    ),
    "backslash": ([*GOOD, member("pkg-0.1\\..\\evil", b"x")], "'pkg-0.1\\\\..\\\\evil': a backslash in its name"),
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_members_are_refused(tmp_path, case):
    members, refusal = HOSTILE[case]
    arc = make_tar(tmp_path / "bad.tar.gz", members)
    with pytest.raises(PiperackError, match=exact(f"{arc}: refused member {refusal}")):
        read_archive(arc)
    assert not (tmp_path / "evil.py").exists() and not (tmp_path.parent / "evil.py").exists()


def test_oversize_is_refused_with_a_configurable_limit(tmp_path, monkeypatch):
    arc = make_tar(tmp_path / "big.tar.gz", [*GOOD, member("pkg-0.1/pkg/data.bin", b"\0" * 5000)])
    refusal = exact(
        f"{arc}: refused member 'pkg-0.1/pkg/data.bin': the archive unpacks to more than 4096 bytes "
        "(the limit; set $PIPERACK_PULL_MAX_BYTES to change it)"
    )
    with pytest.raises(PiperackError, match=refusal):
        read_archive(arc, max_bytes=4096)
    monkeypatch.setenv("PIPERACK_PULL_MAX_BYTES", "4K")
    assert max_bytes_from_env() == 4096
    with pytest.raises(PiperackError, match=refusal):
        read_archive(arc)
    read_archive(arc, max_bytes=10_000)  # under the limit: fine


def test_bad_limit_setting_is_a_clear_error(monkeypatch):
    monkeypatch.setenv("PIPERACK_PULL_MAX_BYTES", "lots")
    with pytest.raises(
        PiperackError, match=exact("$PIPERACK_PULL_MAX_BYTES='lots': expected a size in bytes such as 200M")
    ):
        max_bytes_from_env()


def test_not_a_tarball(tmp_path):
    arc = tmp_path / "x.tar.gz"
    arc.write_bytes(b"this is not an archive at all\n" * 10)
    with pytest.raises(
        PiperackError, match=exact(f"{arc}: not a readable .tar.gz archive (file could not be opened successfully:)")
    ):
        read_archive(arc)


def test_gzip_of_not_a_tar(tmp_path):
    arc = tmp_path / "x.tar.gz"
    arc.write_bytes(gzip.compress(b"hello " * 1000))
    with pytest.raises(
        PiperackError, match=exact(f"{arc}: not a readable .tar.gz archive (file could not be opened successfully:)")
    ):
        read_archive(arc)


@pytest.mark.parametrize("keep", [0.3, 0.6, 0.9])
def test_truncated_gzip(tmp_path, keep):
    payload = bytes(range(256)) * 400  # not very compressible: the archive is long enough to cut
    full = make_tar(
        tmp_path / "full.tar.gz", [*GOOD, member("pkg-0.1/pkg/data.bin", payload), member("pkg-0.1/pkg/z.py", b"z")]
    )
    data = full.read_bytes()
    cut = tmp_path / "cut.tar.gz"
    cut.write_bytes(data[: int(len(data) * keep)])
    with pytest.raises(
        PiperackError,
        match=exact(
            f"{cut}: truncated or corrupt archive (Compressed file ended before the end-of-stream marker was reached)"
        ),
    ):
        read_archive(cut)


def test_two_top_level_folders(tmp_path):
    arc = make_tar(tmp_path / "two.tar.gz", [*GOOD, member("other-0.1/x.py", b"x")])
    with pytest.raises(
        PiperackError,
        match=exact(f"{arc}: expected exactly one top-level folder (<name>-<version>/), found 2: other-0.1, pkg-0.1"),
    ):
        read_archive(arc)


def test_a_file_at_the_top(tmp_path):
    arc = make_tar(tmp_path / "flat.tar.gz", [member("setup.py", b"print('x')")])
    with pytest.raises(PiperackError, match=exact(f"{arc}: expected a top-level folder, found the file 'setup.py'")):
        read_archive(arc)


def test_empty_archive(tmp_path):
    arc = make_tar(tmp_path / "empty.tar.gz", [])
    with pytest.raises(PiperackError, match=exact(f"{arc}: the archive is empty")):
        read_archive(arc)


def test_missing_file(tmp_path):
    with pytest.raises(PiperackError, match=exact(f"{tmp_path / 'nope.tar.gz'}: no such file")):
        read_archive(tmp_path / "nope.tar.gz")


# -- zip (update-project --from a wheel) and folders (--from a kit checkout) -------------------------


def make_zip(path: Path, members: dict[str, bytes], compression=zipfile.ZIP_DEFLATED) -> Path:
    with zipfile.ZipFile(path, "w", compression) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return path


def forge(path: Path, name: str, crc: int | None = None, size: int | None = None) -> None:
    """Make member ``name`` of a zip lie about its CRC or its uncompressed size, in its local header
    and in the central directory alike, as a forger would."""
    data = bytearray(path.read_bytes())
    with zipfile.ZipFile(path) as archive:
        local = archive.getinfo(name).header_offset
        central = archive.start_dir
    fields = [(local + 14, crc), (local + 22, size)]
    while data[central : central + 4] == b"PK\x01\x02":
        name_len, extra_len, comment_len = struct.unpack("<HHH", data[central + 28 : central + 34])
        if data[central + 46 : central + 46 + name_len].decode() == name:
            fields += [(central + 16, crc), (central + 24, size)]
        central += 46 + name_len + extra_len + comment_len
    for offset, value in fields:
        if value is not None:
            data[offset : offset + 4] = struct.pack("<I", value)
    path.write_bytes(bytes(data))


def test_a_good_zip_is_read_into_memory(tmp_path):
    path = make_zip(tmp_path / "w.whl", {"pkg/a.txt": b"a" * 5000, "pkg/sub/b.txt": b"b", "pkg/empty/": b""})
    assert read_zip(path, "w.whl") == {PurePosixPath("pkg/a.txt"): b"a" * 5000, PurePosixPath("pkg/sub/b.txt"): b"b"}


@pytest.mark.parametrize("compression", [zipfile.ZIP_DEFLATED, zipfile.ZIP_STORED], ids=["deflated", "stored"])
def test_a_zip_member_that_fails_its_crc_is_refused(tmp_path, compression):
    path = make_zip(tmp_path / "w.whl", {"pkg/a.txt": b"hello zip"}, compression)
    forge(path, "pkg/a.txt", crc=zlib.crc32(b"hello zip") ^ 0xFFFF)
    with pytest.raises(PiperackError, match=exact("w.whl: refused member 'pkg/a.txt': its data fails its CRC check")):
        read_zip(path, "w.whl")


def test_a_zip_member_that_inflates_past_its_declared_size_is_refused(tmp_path):
    data = b"z" * 54321  # a bomb declares a small size and inflates to much more
    path = make_zip(tmp_path / "w.whl", {"pkg/bomb.txt": data})
    forge(path, "pkg/bomb.txt", size=7)
    with pytest.raises(
        PiperackError, match=exact("w.whl: refused member 'pkg/bomb.txt': it inflates past its declared size")
    ):
        read_zip(path, "w.whl")


@pytest.mark.parametrize(
    "members, message",
    [
        ({"pkg/x": b"file", "pkg/x/y": b"under it"}, "refused member 'pkg/x/y': pkg/x is a file"),
        ({"pkg/x/y": b"under it", "pkg/x": b"file"}, "refused member 'pkg/x': it is both a file and a folder"),
        ({"../evil.txt": b"x"}, "refused member '../evil.txt': a path that climbs out with '..'"),
        ({"/etc/evil": b"x"}, "refused member '/etc/evil': an absolute path"),
        ({"pkg\\evil": b"x"}, "refused member 'pkg\\\\evil': a backslash in its name"),
    ],
    ids=["file-then-folder", "folder-then-file", "dotdot", "absolute", "backslash"],
)
def test_hostile_zip_members_are_refused(tmp_path, members, message):
    path = tmp_path / "w.whl"
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in members.items():
            archive.writestr(zipfile.ZipInfo(name), data)
    with pytest.raises(PiperackError, match=exact(f"w.whl: {message}")):
        read_zip(path, "w.whl")


def test_a_zip_link_is_refused(tmp_path):
    path = tmp_path / "w.whl"
    with zipfile.ZipFile(path, "w") as archive:
        link = zipfile.ZipInfo("pkg/link")
        link.external_attr = (stat.S_IFLNK | 0o777) << 16
        archive.writestr(link, "/etc/passwd")
    with pytest.raises(PiperackError, match=exact("w.whl: refused member 'pkg/link': a symbolic link")):
        read_zip(path, "w.whl")


def test_a_zip_over_the_limit_is_refused_before_inflating(tmp_path):
    path = make_zip(tmp_path / "w.whl", {"pkg/a": b"a" * 100, "pkg/b": b"b" * 100})
    with pytest.raises(
        PiperackError, match="w.whl: refused member 'pkg/b': the archive unpacks to more than 150 bytes"
    ):
        read_zip(path, "w.whl", max_bytes=150)


def folder_with(tmp_path: Path) -> Path:
    root = tmp_path / "kit"
    (root / "tpl" / "sub").mkdir(parents=True)
    (root / "tpl" / "sub" / "a.txt").write_text("a")
    (root / "cookiecutter.json").write_text("{}")
    return root


def test_a_folder_is_read_and_skipped_names_are_not_walked(tmp_path):
    root = folder_with(tmp_path)
    (root / ".venv").mkdir()
    (root / ".venv" / "python").symlink_to("/usr/bin/python3")  # a virtualenv's links: not the template's
    files = read_folder(root, "kit", skip=frozenset({".venv"}), wanted=lambda rel: rel.name != "cookiecutter.json")
    assert files == {PurePosixPath("tpl/sub/a.txt"): b"a"}


@pytest.mark.parametrize(
    "link, target, reason",
    [
        ("tpl/leak.txt", "/etc/passwd", "a symbolic link (to '/etc/passwd')"),
        ("tpl/outside", "../../..", "a symbolic link (to '../../..')"),
        ("tpl/inside", "sub/a.txt", "a symbolic link (to 'sub/a.txt')"),
    ],
    ids=["file-outside", "folder-outside", "inside"],
)
def test_a_link_anywhere_in_a_folder_refuses_it(tmp_path, link, target, reason):
    root = folder_with(tmp_path)
    (root / link).symlink_to(target)
    with pytest.raises(PiperackError, match=exact(f"kit: refused member {link!r}: {reason}")):
        read_folder(root, "kit")


def test_a_fifo_in_a_folder_refuses_it(tmp_path):
    root = folder_with(tmp_path)
    os.mkfifo(root / "tpl" / "pipe")
    with pytest.raises(PiperackError, match=exact("kit: refused member 'tpl/pipe': not a plain file or folder")):
        read_folder(root, "kit")
