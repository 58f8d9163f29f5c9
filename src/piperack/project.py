"""Project discovery: where the project is and what its pyproject.toml says about it."""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from .errors import PiperackError

ENV_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,254}")  # fullmatch: `$` lets "x\n" through
MODULE_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")

# What is never packaged or pulled: caches, VCS data, build output and OS litter (one list for both).
SKIP_DIRS = frozenset(
    {
        "__pycache__",
        ".pytest_cache",
        ".mypy_cache",
        ".ruff_cache",
        ".ipynb_checkpoints",
        ".git",
        ".hypothesis",
    }
)
SKIP_FILES = frozenset({".DS_Store", "Thumbs.db"})
SKIP_SUFFIXES = (".pyc", ".pyo")


def skipped_dir(name: str) -> bool:
    return name in SKIP_DIRS or name.endswith(".egg-info")


def skipped_file(name: str) -> bool:
    return name in SKIP_FILES or name.endswith(SKIP_SUFFIXES) or name.endswith(".egg-info")


@dataclass(frozen=True)
class Project:
    root: Path
    package: str
    version: str
    pyproject_data: dict = field(repr=False, compare=False)

    @property
    def pyproject(self) -> Path:
        return self.root / "pyproject.toml"

    @property
    def src(self) -> Path:
        return self.root / "src"

    @property
    def package_dir(self) -> Path:
        return self.src / self.package

    @property
    def tests(self) -> Path:
        return self.src / "tests"

    @property
    def conf(self) -> Path:
        return self.root / "conf"

    def module_dir(self, dotted: str) -> Path:
        """The folder of module ``dotted`` (relative to the project package), checked to stay inside it."""
        check_module_path(dotted, what="module path")
        path = self.package_dir.joinpath(*dotted.split("."))
        return path

    def tests_dir(self, dotted: str) -> Path:
        check_module_path(dotted, what="module path")
        return self.tests.joinpath(*dotted.split("."))

    def env_dir(self, env: str, must_exist: bool = True) -> Path:
        """conf/<env>, refusing names that would leave conf/ (``../x``, ``/etc``)."""
        if not ENV_RE.fullmatch(env) or env in {".", ".."}:
            raise PiperackError(
                f"invalid env {env!r}: an env is a folder name directly under conf/ (letters, digits, '_', '-', '.')"
            )
        path = self.conf / env
        if must_exist and not path.is_dir():
            available = ", ".join(sorted(p.name for p in self.conf.iterdir() if p.is_dir())) or "none"
            raise PiperackError(f"no such env {env!r}: conf/{env}/ does not exist (available: {available})")
        return path

    def label(self, path: Path) -> str:
        """``path`` as messages name it: relative to the project root (``/``-separated) when inside
        it, else as given."""
        try:
            return path.relative_to(self.root).as_posix()
        except ValueError:
            return str(path)

    def tool(self, *keys: str, default=None):
        """A value under [tool.piperack.<keys…>] of pyproject.toml, or default."""
        node = self.pyproject_data.get("tool", {}).get("piperack", {})
        for key in keys:
            if not isinstance(node, dict) or key not in node:
                return default
            node = node[key]
        return node


def check_module_path(dotted: str, what: str = "module path") -> str:
    """A dotted module path like ``pipelines.ingest``; refuses ``../x``, ``a/b``, ``.x`` and empty parts."""
    if not isinstance(dotted, str) or not MODULE_RE.fullmatch(dotted):
        raise PiperackError(
            f"invalid {what} {dotted!r}: expected a dotted Python module path such as 'pipelines.ingest'"
        )
    return dotted


def check_identifier(name: str, what: str = "alias") -> str:
    """An ASCII Python identifier usable as a module name: not a keyword, not a dunder name (``__init__``)."""
    import keyword

    if not isinstance(name, str) or not name.isidentifier() or not name.isascii():
        raise PiperackError(f"invalid {what} {name!r}: it must be a Python identifier such as 'my_pipeline'")
    if keyword.iskeyword(name):
        raise PiperackError(
            f"invalid {what} {name!r}: it is a Python keyword; it must be a Python identifier such as 'my_pipeline'"
        )
    if len(name) > 4 and name.startswith("__") and name.endswith("__"):
        raise PiperackError(
            f"invalid {what} {name!r}: dunder names (__x__) are reserved by Python; "
            "it must be a Python identifier such as 'my_pipeline'"
        )
    return name


def load_pyproject(path: Path) -> dict:
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise PiperackError(f"{path}: invalid TOML: {exc}") from None
    except UnicodeDecodeError:
        raise PiperackError(f"{path}: not UTF-8 text") from None


def find_project(start: Path | str | None = None) -> Project:
    """The project holding ``start`` (default: the working directory): the nearest folder upwards
    whose pyproject.toml has a [tool.piperack] table."""
    here = Path(start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        candidate = folder / "pyproject.toml"
        if not candidate.is_file():
            continue
        data = load_pyproject(candidate)
        tool_table = data.get("tool", {})
        if not isinstance(tool_table, dict):
            raise PiperackError(f"{candidate}: [tool] must be a table, got {type(tool_table).__name__}")
        tool = tool_table.get("piperack")
        if tool is None:
            continue
        if not isinstance(tool, dict):
            raise PiperackError(f"{candidate}: [tool.piperack] must be a table, got {type(tool).__name__}")
        if not isinstance(data.get("project", {}), dict):
            raise PiperackError(f"{candidate}: [project] must be a table, got {type(data['project']).__name__}")
        package = tool.get("python_package")
        if not isinstance(package, str) or not package.isidentifier():
            raise PiperackError(f"{candidate}: [tool.piperack] python_package must name the project's package")
        version = data.get("project", {}).get("version")
        if not isinstance(version, str):
            raise PiperackError(f"{candidate}: [project] version is missing (the packages take their version from it)")
        return Project(root=folder, package=package, version=version, pyproject_data=data)
    raise PiperackError(f"no piperack project here: no pyproject.toml with [tool.piperack] in {here} or above")
