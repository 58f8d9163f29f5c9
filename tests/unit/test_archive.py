"""Unit tests of piperack.archive: a corpus of hostile archives, each refused before anything is written."""

from __future__ import annotations

import gzip
import io
import re
import tarfile
from pathlib import Path, PurePosixPath

import pytest

from piperack.archive import max_bytes_from_env, read_archive
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
