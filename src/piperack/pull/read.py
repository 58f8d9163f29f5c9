"""Reading a checked archive as a micro-package: its metadata and layout, statically.

Nothing from the package is built, imported or executed: PKG-INFO and pyproject.toml are parsed
as text, and the one import package is found by its folder.
"""

from __future__ import annotations

import keyword
from dataclasses import dataclass
from pathlib import PurePosixPath

from ..errors import PiperackError
from ..project import check_module_path, skipped_dir, skipped_file
from ..sdist import TESTS_DIR


class Staged:
    """The files of a checked archive, in memory: paths relative to its top-level folder."""

    def __init__(self, top: str, files: dict):
        self.name = top  # <name>-<version>
        self.files = files
        self._order: list | None = None  # (posix string, path) of every file, sorted once

    def read(self, rel: str) -> bytes | None:
        return self.files.get(PurePosixPath(rel))

    def top_dirs(self) -> set[str]:
        return {rel.parts[0] for rel in self.files if len(rel.parts) > 1}

    def walk(self, folder: str):
        """(path relative to ``folder``, bytes) for every file under it, sorted, caches skipped."""
        if self._order is None:
            self._order = [(rel.as_posix(), rel) for rel in sorted(self.files)]
        prefix = PurePosixPath(folder).as_posix() + "/"
        for text, rel in self._order:
            if not text.startswith(prefix):
                continue
            parts = text[len(prefix) :].split("/")
            if any(skipped_dir(part) for part in parts[:-1]) or skipped_file(parts[-1]):
                continue
            yield PurePosixPath(*parts), self.files[rel]


@dataclass
class Package:
    top: Staged  # the archive's files
    name: str  # the import package's folder name in the sdist
    dist_name: str
    version: str
    requires: list
    module: str | None  # the original module path recorded by `invoke package`, if any
    kind: str  # "piperack" or "kedro"
    requires_python: str | None = None


def read_package(top: Staged, label: str) -> Package:
    """Metadata and layout of a staged sdist, read statically (nothing is built or executed)."""
    import tomllib
    from email.parser import Parser

    from packaging.requirements import InvalidRequirement, Requirement

    meta = {}
    requires: list[str] = []
    pkg_info = top.read("PKG-INFO")
    pyproject = top.read("pyproject.toml")
    data = {}
    if pyproject is not None:
        try:
            data = tomllib.loads(pyproject.decode("utf-8"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise PiperackError(f"{label}: {top.name}/pyproject.toml is not valid TOML ({exc})") from None
    if (
        not isinstance(data, dict)
        or not isinstance(data.get("tool", {}), dict)
        or ("project" in data and not isinstance(data["project"], dict))
    ):
        raise PiperackError(f"{label}: {top.name}/pyproject.toml: [project] and [tool] must be tables; refused")
    requires_python = None
    if pkg_info is not None:
        message = Parser().parsestr(pkg_info.decode("utf-8", errors="replace"), headersonly=True)
        meta = {"name": message.get("Name"), "version": message.get("Version")}
        requires = [r for r in (message.get_all("Requires-Dist") or [])]
        requires_python = message.get("Requires-Python")
    elif isinstance(data.get("project"), dict):
        project = data["project"]
        meta = {"name": project.get("name"), "version": project.get("version")}
        deps = project.get("dependencies", [])
        if not isinstance(deps, list) or not all(isinstance(d, str) for d in deps):
            raise PiperackError(
                f"{label}: {top.name}/pyproject.toml [project] dependencies must be a list of requirement "
                f"strings, got {type(deps).__name__}; refused"
            )
        requires = list(deps)
        requires_python = project.get("requires-python")
        if requires_python is not None and not isinstance(requires_python, str):
            raise PiperackError(f"{label}: {top.name}/pyproject.toml requires-python must be a string; refused")
    else:
        raise PiperackError(
            f"{label}: no PKG-INFO or pyproject.toml [project] in {top.name}/: not a micro-package sdist"
        )
    if (
        not isinstance(meta.get("name"), str)
        or not isinstance(meta.get("version"), str)
        or not meta["name"]
        or not meta["version"]
    ):
        raise PiperackError(f"{label}: {top.name}/PKG-INFO has no Name or Version")
    reqs = []
    for line in requires:
        try:
            req = Requirement(line)
        except InvalidRequirement:
            raise PiperackError(f"{label}: invalid requirement in its metadata: {line!r}") from None
        if req.marker is not None and "extra" in str(req.marker):
            continue  # optional extras are not the package's own requirements
        reqs.append(req)
    packages = sorted(
        d
        for d in top.top_dirs()
        if d != TESTS_DIR and not d.endswith(".egg-info") and top.read(f"{d}/__init__.py") is not None
    )
    if not packages:
        raise PiperackError(
            f"{label}: no package in {top.name}/ (expected a folder with an __init__.py besides tests/)"
        )
    if len(packages) > 1:
        raise PiperackError(
            f"{label}: more than one package in {top.name}/: {', '.join(packages)} (expected exactly one)"
        )
    name = packages[0]
    if not name.isidentifier() or not name.isascii() or keyword.iskeyword(name) or name.startswith("__"):
        raise PiperackError(f"{label}: package folder {name!r} is not a Python identifier")
    module = None
    recorded = data.get("tool", {}).get("piperack", {}) if isinstance(data.get("tool"), dict) else {}
    if isinstance(recorded, dict) and recorded.get("module") is not None:
        module = recorded["module"]
        try:
            check_module_path(module, what="[tool.piperack] module")
            if any(part.startswith("__") or keyword.iskeyword(part) for part in module.split(".")):
                raise PiperackError(f"invalid [tool.piperack] module {module!r}: a reserved or keyword name")
        except PiperackError as exc:
            raise PiperackError(f"{label}: {top.name}/pyproject.toml {exc}") from None
    kind = "piperack" if recorded else "kedro"
    return Package(
        top=top,
        name=name,
        dist_name=meta["name"],
        version=meta["version"],
        requires=reqs,
        module=module,
        kind=kind,
        requires_python=(requires_python or "").strip() or None,
    )
