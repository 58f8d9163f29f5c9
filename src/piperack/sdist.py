"""The micro-package format: a standard, reproducible sdist (Kedro 0.18 ``micropkg`` compatible).

Layout of ``<name>-<version>.tar.gz``::

    <name>-<version>/
      PKG-INFO                 core metadata 2.1; Requires-Dist from the module's requirements.txt
      README.md                what this is and where it came from
      pyproject.toml           setuptools build; [tool.piperack] records the origin
      <name>/                  the module's files (imports of the module rewritten to <name>)
        config/parameters/...  the module's parameter files, paths relative to conf/<env>/
      tests/                   the module's tests (never installed: only <name> packages are)

Everything here is pure (inputs in, bytes out): the tar is written in memory with fixed
mtimes, owners, modes and order, and gzip with a fixed header, so the same inputs give the
same bytes. ``pull`` shares the names below.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import tarfile
from dataclasses import dataclass, field

CONFIG_DIR = "config"  # <name>/config/ holds the parameters (Kedro 0.18 place)
TESTS_DIR = "tests"  # top-level tests/ of the sdist
TOOL_TABLE = "piperack"  # [tool.piperack] in the sdist's pyproject.toml
FORMAT_VERSION = 1
# 2000-01-01T00:00:00Z: a fixed time for every entry (after 1980, so wheels built from it are fine).
DEFAULT_MTIME = 946684800
BUILD_REQUIRES = "setuptools>=64"  # recursive ("**") package-data globs


def source_date_epoch() -> int:
    """``SOURCE_DATE_EPOCH`` when set (reproducible-builds convention), else :data:`DEFAULT_MTIME`."""
    value = os.environ.get("SOURCE_DATE_EPOCH", "")
    return int(value) if value.isdigit() and int(value) >= 315532800 else DEFAULT_MTIME


def sdist_filename(name: str, version: str) -> str:
    return f"{name}-{version}.tar.gz"


SUMS_FILE = "SHA256SUMS"  # beside the archives: what `invoke package` wrote there (sha256sum -c format)


def read_sums(folder) -> dict[str, str]:
    """``<folder>/SHA256SUMS`` as file name -> sha256, for entries whose file still exists there."""
    sums = folder / SUMS_FILE
    entries: dict[str, str] = {}
    if sums.is_file():
        for line in sums.read_text(encoding="utf-8", errors="replace").splitlines():
            digest, sep, fname = line.partition("  ")
            fname = fname.lstrip("*")
            if sep and fname and "/" not in fname and (folder / fname).is_file():
                entries[fname] = digest
    return entries


@dataclass
class SdistSpec:
    name: str  # import name of the package folder == distribution name
    version: str  # already normalised (PEP 440)
    summary: str
    requires: list[str] = field(default_factory=list)  # PEP 508 strings
    requires_python: str | None = None
    files: dict[str, bytes] = field(default_factory=dict)  # path inside <name>-<version>/ -> content
    executable: set[str] = field(default_factory=set)  # paths (as in files) to mark 0755
    tool: dict = field(default_factory=dict)  # extra [tool.piperack] keys (str / int / list of str)
    readme: str = ""

    @property
    def top(self) -> str:
        return f"{self.name}-{self.version}"


def _toml_value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return json.dumps(value)  # a JSON string is a valid TOML basic string
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    raise TypeError(f"cannot write {value!r} to TOML")


def _packages(spec: SdistSpec) -> list[str]:
    """The import packages to install: <name> and each folder below it holding an __init__.py."""
    packages = {spec.name}
    prefix = spec.name + "/"
    for path in spec.files:
        if path.startswith(prefix) and path.endswith("/__init__.py"):
            packages.add(path[: -len("/__init__.py")].replace("/", "."))
    return sorted(packages)


def pyproject_toml(spec: SdistSpec) -> str:
    lines = [
        "# Written by piperack (`invoke package`). A standard sdist: `pip install` it, or",
        "# `invoke pull` / `kedro micropkg pull` it into a project.",
        "[build-system]",
        f"requires = [{_toml_value(BUILD_REQUIRES)}]",
        'build-backend = "setuptools.build_meta"',
        "",
        "[project]",
        f"name = {_toml_value(spec.name)}",
        f"version = {_toml_value(spec.version)}",
        f"description = {_toml_value(spec.summary)}",
        'readme = "README.md"',
    ]
    if spec.requires_python:
        lines.append(f"requires-python = {_toml_value(spec.requires_python)}")
    if spec.requires:
        lines.append("dependencies = [")
        lines += [f"    {_toml_value(req)}," for req in spec.requires]
        lines.append("]")
    else:
        lines.append("dependencies = []")
    lines += [
        "",
        "[tool.setuptools]",
        "# Only the micro-package is installed: the top-level tests/ folder is not a package to install.",
        f"packages = {_toml_value(_packages(spec))}",
        "include-package-data = false",
        "",
        "[tool.setuptools.package-data]",
        "# Every file of the module (SQL, JSON, templates, its requirements.txt, config/parameters).",
        f'{_toml_value(spec.name)} = ["**/*"]',
        "",
        f"[tool.{TOOL_TABLE}]",
        f"format = {FORMAT_VERSION}",
    ]
    for key, value in spec.tool.items():
        lines.append(f"{key} = {_toml_value(value)}")
    return "\n".join(lines) + "\n"


def pkg_info(spec: SdistSpec) -> str:
    """Core metadata 2.1 (what ``twine check`` and indexes read)."""
    lines = [
        "Metadata-Version: 2.1",
        f"Name: {spec.name}",
        f"Version: {spec.version}",
        f"Summary: {spec.summary}",
    ]
    if spec.requires_python:
        lines.append(f"Requires-Python: {spec.requires_python}")
    lines += [f"Requires-Dist: {req}" for req in spec.requires]
    lines.append("Description-Content-Type: text/markdown")
    return "\n".join(lines) + "\n\n" + spec.readme


def _tarinfo(name: str, size: int, mode: int, mtime: int, kind=tarfile.REGTYPE) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size = size
    info.mode = mode
    info.mtime = mtime
    info.type = kind
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info


def targz_bytes(files: dict[str, bytes], executable: set[str] = frozenset(), mtime: int | None = None) -> bytes:
    """A reproducible .tar.gz of ``files`` (paths with ``/``), with a directory entry for each folder."""
    mtime = source_date_epoch() if mtime is None else mtime
    dirs: set[str] = set()
    for path in files:
        parts = path.split("/")[:-1]
        for i in range(1, len(parts) + 1):
            dirs.add("/".join(parts[:i]))
    entries = sorted([(tuple(d.split("/")), True) for d in dirs] + [(tuple(f.split("/")), False) for f in files])
    raw = io.BytesIO()
    # filename="" and a fixed mtime keep the gzip header free of names and clocks.
    with gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=mtime, compresslevel=9) as gz:
        with tarfile.open(fileobj=gz, mode="w", format=tarfile.PAX_FORMAT) as tar:
            for parts, is_dir in entries:
                path = "/".join(parts)
                if is_dir:
                    tar.addfile(_tarinfo(path, 0, 0o755, mtime, tarfile.DIRTYPE))
                else:
                    data = files[path]
                    mode = 0o755 if path in executable else 0o644
                    tar.addfile(_tarinfo(path, len(data), mode, mtime), io.BytesIO(data))
    return raw.getvalue()


def build_sdist(spec: SdistSpec, mtime: int | None = None) -> bytes:
    """The sdist's bytes: ``spec.files`` plus generated PKG-INFO, pyproject.toml and README.md."""
    top = spec.top
    generated = {
        "PKG-INFO": pkg_info(spec).encode("utf-8"),
        "pyproject.toml": pyproject_toml(spec).encode("utf-8"),
        "README.md": spec.readme.encode("utf-8"),
    }
    clash = sorted(set(generated) & set(spec.files))
    if clash:
        raise ValueError(f"generated files cannot be given: {clash}")
    files = {f"{top}/{path}": data for path, data in {**spec.files, **generated}.items()}
    executable = {f"{top}/{path}" for path in spec.executable}
    return targz_bytes(files, executable, mtime)


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
