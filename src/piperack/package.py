"""``invoke package``: a module of the project as a micro-package sdist (see sdist.py for the format).

Everything is planned in memory first (files read, imports rewritten, requirements parsed, the
archive built); only then is the archive written, atomically, with dist/SHA256SUMS. A failing
package writes nothing. The project itself is only read: no imports of its code, no __pycache__.
"""

from __future__ import annotations

import os
import re
import stat
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from . import ui
from .errors import PiperackError, first_line
from .fsutil import atomic_write
from .options import BASE_ENV, Job, PackageOptions, resolve_destination
from .project import Project, check_identifier, check_module_path, skipped_dir, skipped_file
from .sdist import (
    CONFIG_DIR,
    SUMS_FILE,
    TESTS_DIR,
    SdistSpec,
    build_sdist,
    read_sums,
    sdist_filename,
    sha256_hex,
)

REWRITE_SUFFIXES = (".py", ".pyi")


@dataclass
class Built:
    job: Job
    name: str
    version: str
    filename: str
    dest_dir: Path
    data: bytes
    files: int
    warnings: list = field(default_factory=list)

    @property
    def path(self) -> Path:
        return self.dest_dir / self.filename


# -- reading the project ---------------------------------------------------------------------------


def _walk(folder: Path, project: Project):
    """(relative posix path, absolute path) of every file below ``folder``, sorted; caches skipped."""
    out = []
    for current, dirs, files in os.walk(folder, followlinks=False):
        dirs[:] = sorted(d for d in dirs if not skipped_dir(d))
        for entry in dirs:
            path = Path(current, entry)
            if path.is_symlink():
                raise PiperackError(f"{project.label(path)}: symbolic links to folders cannot be packaged")
        for name in files:
            if skipped_file(name):
                continue
            path = Path(current, name)
            if path.is_symlink():
                target = path.resolve()
                if not target.is_file() or not target.is_relative_to(project.root):
                    raise PiperackError(
                        f"{project.label(path)}: a symbolic link to something outside the project cannot be packaged"
                    )
            elif not stat.S_ISREG(path.lstat().st_mode):  # never open a FIFO: reading it would wait forever
                raise PiperackError(
                    f"{project.label(path)}: not a regular file (a FIFO, socket or device): cannot be packaged"
                )
            out.append((path.relative_to(folder).as_posix(), path))
    out.sort()
    return out


def _module_version(init: Path) -> str | None:
    """``__version__ = "x"`` at the top level of ``__init__.py``, read without importing it."""
    import ast

    if not init.is_file():
        return None
    try:
        tree = ast.parse(init.read_bytes())
    except (SyntaxError, ValueError):
        return None
    for node in tree.body:
        targets = (
            node.targets if isinstance(node, ast.Assign) else [node.target] if isinstance(node, ast.AnnAssign) else []
        )
        if any(isinstance(t, ast.Name) and t.id == "__version__" for t in targets):
            value = node.value
            if isinstance(value, ast.Constant) and isinstance(value.value, str):
                return value.value
    return None


def _normalise_version(version: str, where: str) -> str:
    from packaging.version import InvalidVersion, Version

    try:
        return str(Version(version))
    except InvalidVersion:
        raise PiperackError(f"{where}: version {version!r} is not a valid PEP 440 version") from None


def _decode(data: bytes, where: str) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise PiperackError(f"{where}: not UTF-8 text") from None


def _rewrite_or_refuse(data: bytes, where: str, old: str, new: str, targets: frozenset[str] | None = None) -> bytes:
    """``data`` with its references to ``old`` spelled ``new``; a file that is not UTF-8 or not valid
    Python is refused (PiperackError): a package never ships code whose imports it could not rewrite."""
    from .rewrite import rewrite_references

    text = _decode(data, where)
    try:
        out = rewrite_references(text, old, new, targets)
    except ModuleNotFoundError:
        raise  # libcst missing: the task says how to install it
    except Exception as exc:  # noqa: BLE001 - libcst.ParserSyntaxError and friends
        raise PiperackError(f"{where}: not valid Python, cannot rewrite its imports ({first_line(exc)})") from None
    return data if out is text else out.encode("utf-8")


def parameter_files(project: Project, env_dir: Path, name: str) -> list[tuple[str, Path]]:
    """(path relative to conf/<env>/, file) of ``parameters/<name>.yml`` (or ``.yaml``) and
    ``parameters/<name>/**``: the exact name only (``retail`` never takes ``retail_banking.yml``)."""
    params = env_dir / "parameters"
    found: list[tuple[str, Path]] = []
    if not params.is_dir():
        return found
    for suffix in (".yml", ".yaml"):
        path = params / f"{name}{suffix}"
        if path.is_file():
            found.append((f"parameters/{path.name}", path))
    folder = params / name
    if folder.is_dir():
        found += [(f"parameters/{name}/{rel}", file) for rel, file in _walk(folder, project)]
    return found


def parameters(project: Project, env: str, name: str) -> list[tuple[str, bytes]]:
    """(path relative to conf/<env>/, bytes) of the parameter files a package of ``name`` carries:
    conf/base's, with conf/<env>'s merged over them for another env, so the package holds the
    parameters the pipeline runs with in that env (an env's files usually hold overrides alone).

    A file in both is one file: its YAML mappings deep-merged, the env's values winning (lists
    replaced), as the runner merges them; a file in one of them is taken as it is."""
    base = parameter_files(project, project.env_dir(BASE_ENV, must_exist=False), name)
    if env == BASE_ENV:
        return [(rel, path.read_bytes()) for rel, path in base]
    over = parameter_files(project, project.env_dir(env), name)

    def same(rel: str) -> str:  # parameters/<name>.yml and parameters/<name>.yaml are one file
        return re.sub(r"\.yaml$", ".yml", rel) if rel.count("/") == 1 else rel

    merged: dict[str, tuple[str, list[Path]]] = {same(rel): (rel, [path]) for rel, path in base}
    for rel, path in over:
        merged.setdefault(same(rel), (rel, []))[1].append(path)
    return [(rel, _merged_yaml(project, env, paths)) for rel, paths in merged.values()]


def _merged_yaml(project: Project, env: str, paths: list[Path]) -> bytes:
    if len(paths) == 1:
        return paths[0].read_bytes()
    import yaml

    from .graph import merge, read_mapping

    labels = [project.label(path) for path in paths]
    data = merge(read_mapping(paths[0], labels[0]), read_mapping(paths[1], labels[1]))
    header = f"# {labels[0]} with {labels[1]} merged over it (invoke package --env {env})\n"
    return (header + yaml.safe_dump(data, sort_keys=False, allow_unicode=True, default_flow_style=False)).encode()


def _renamed(rel: str, name: str, alias: str) -> str:
    """``parameters/<name>.yml`` -> ``parameters/<alias>.yml``, ``parameters/<name>/x`` -> ``parameters/<alias>/x``."""
    parts = rel.split("/")
    parts[1] = alias + parts[1][len(name) :]
    return "/".join(parts)


def check_alias(project: Project, module: str, alias: str) -> str:
    check_identifier(alias, what="alias")
    parent = project.module_dir(module).parent
    taken = None
    if alias in sys.stdlib_module_names:
        taken = "a module of Python's standard library"
    elif alias == TESTS_DIR:
        taken = "the sdist's tests/ folder"
    elif alias == project.package:
        taken = "the project's own package"
    elif alias != module.rsplit(".", 1)[-1] and ((parent / alias).exists() or (parent / f"{alias}.py").exists()):
        taken = f"the existing module {project.label(parent / alias)}"
    if taken:
        raise PiperackError(f"alias {alias!r} collides with {taken}: choose another name")
    return alias


# -- planning one package ----------------------------------------------------------------------------


def build(project: Project, job: Job) -> Built:
    """Everything ``invoke package`` would write for ``job``, in memory. Raises PiperackError."""
    module = job.subject
    origin = f"{project.package}.{module}"
    module_dir = _module_dir(project, module, origin)
    env = job.env or BASE_ENV
    project.env_dir(env)  # an unknown env is refused here, naming it
    source_name = module.rsplit(".", 1)[-1]
    name = check_alias(project, module, job.alias) if job.alias else source_name
    dest_dir = resolve_destination(project, job.destination)
    warnings = _name_warnings(origin, name, aliased=bool(job.alias))
    code = _code_files(project, module_dir)
    version = _version(project, module_dir)

    contents = _Contents(project, origin, name, code, warnings)
    for rel, path in code:
        contents.add(f"{name}/{rel}", path, rewrite=True)
    contents.files.setdefault(f"{name}/__init__.py", b"")  # a regular package, as pip, pull and Kedro expect
    for rel, data in parameters(project, env, source_name):
        arc_rel = _renamed(rel, source_name, name) if name != source_name else rel
        contents.files[f"{name}/{CONFIG_DIR}/{arc_rel}"] = data
    tests_dir = project.tests_dir(module)
    tests = _walk(tests_dir, project) if tests_dir.is_dir() else []
    for rel, path in tests:
        contents.add(f"{TESTS_DIR}/{rel}", path, rewrite=True)

    spec = _spec(project, module, name, version, env, contents, _requires(project, module_dir), bool(tests))
    return Built(
        job=job,
        name=name,
        version=version,
        filename=sdist_filename(name, version),
        dest_dir=dest_dir,
        data=build_sdist(spec),
        files=len(contents.files),
        warnings=warnings,
    )


def _module_dir(project: Project, module: str, origin: str) -> Path:
    """The folder of ``module`` (``origin`` is its full dotted name), checked: a folder inside the
    project package."""
    check_module_path(module, what="module path")
    module_dir = project.module_dir(module)
    if not module_dir.is_dir():
        if module_dir.with_suffix(".py").is_file():
            raise PiperackError(
                f"{origin} is a single-file module ({project.label(module_dir.with_suffix('.py'))}); "
                f"micro-packages are folders: move it to {project.label(module_dir)}/__init__.py"
            )
        raise PiperackError(f"no module {origin}: {project.label(module_dir)}/ does not exist")
    if not module_dir.resolve().is_relative_to(project.package_dir.resolve()):
        raise PiperackError(f"module path {module!r} leaves the project package {project.package}")
    return module_dir


def _name_warnings(origin: str, name: str, aliased: bool) -> list[str]:
    """The package's name checked: never the sdist's tests/ folder (refused); a warning, returned, when
    an unaliased name is also a standard-library module."""
    if name == TESTS_DIR:
        raise PiperackError(
            f"{origin}: a micro-package cannot be named {TESTS_DIR!r} (the sdist's tests/ folder); "
            "package it with --alias NAME"
        )
    if not aliased and name in sys.stdlib_module_names:
        return [
            f"{name!r} is also a standard-library module: pip-installing the package would shadow it "
            "(pulling it into a project is fine); --alias NAME avoids that"
        ]
    return []


def _code_files(project: Project, module_dir: Path) -> list[tuple[str, Path]]:
    """The module's files (``_walk``): refused when there are none, or when it has a config/ folder
    of its own (the format keeps the parameters there)."""
    code = _walk(module_dir, project)
    if not code:
        raise PiperackError(f"{project.label(module_dir)}/ is empty: nothing to package")
    if any(rel.split("/")[0] == CONFIG_DIR for rel, _ in code):
        raise PiperackError(
            f"{project.label(module_dir / CONFIG_DIR)}/: the micro-package format keeps parameters in "
            f"<name>/{CONFIG_DIR}/, so the module cannot have its own {CONFIG_DIR}/ folder; rename it"
        )
    return code


def _version(project: Project, module_dir: Path) -> str:
    """The module's ``__version__``, else the project's version; PEP 440-normalised."""
    version = _module_version(module_dir / "__init__.py")
    version_where = f"{project.label(module_dir / '__init__.py')} __version__"
    if version is None:
        version, version_where = project.version, f"{project.pyproject.name} [project] version"
    return _normalise_version(version, version_where)


class _Contents:
    """The archive's files as they are added: bytes by archive path, and which are executable. Code
    files have their references to ``origin`` (the module's full name) rewritten to ``name``; one
    that still names the project package gets a warning."""

    def __init__(self, project: Project, origin: str, name: str, code: list[tuple[str, Path]], warnings: list[str]):
        from .rewrite import importable_paths

        self.project = project
        self.origin = origin
        self.name = name
        self.warnings = warnings
        self.targets = importable_paths({rel: path.read_bytes() if rel == "__init__.py" else b"" for rel, path in code})
        self.leftover = re.compile(r"\b" + re.escape(project.package) + r"\s*\.")
        self.files: dict[str, bytes] = {}
        self.executable: set[str] = set()

    def add(self, arc: str, path: Path, rewrite: bool) -> None:
        data = path.read_bytes()
        if rewrite and path.suffix in REWRITE_SUFFIXES:
            where_file = self.project.label(path)
            data = _rewrite_or_refuse(data, where_file, self.origin, self.name, self.targets)
            if self.leftover.search(data.decode("utf-8")):
                self.warnings.append(
                    f"{where_file} still refers to {self.project.package}.… outside {self.origin}: "
                    "that code is not in the package"
                )
        self.files[arc] = data
        if os.access(path, os.X_OK):
            self.executable.add(arc)


def _requires(project: Project, module_dir: Path) -> list[str]:
    """The module's requirements.txt, parsed, each requirement once, in order ([] without one)."""
    from .requirements import parse_requirements

    requires: list[str] = []
    req_file = module_dir / "requirements.txt"
    if req_file.is_file():
        text = _decode(req_file.read_bytes(), project.label(req_file))
        seen = set()
        for req in parse_requirements(text, project.label(req_file)):
            line = str(req)
            if line not in seen:
                seen.add(line)
                requires.append(line)
    return requires


def _spec(
    project: Project,
    module: str,
    name: str,
    version: str,
    env: str,
    contents: _Contents,
    requires: list[str],
    has_tests: bool,
) -> SdistSpec:
    """The sdist's metadata, README and files."""
    requires_python = project.pyproject_data.get("project", {}).get("requires-python")
    origin = f"{project.package}.{module}"
    source = f"`conf/{env}/`" if env == BASE_ENV else f"`conf/base/` with `conf/{env}/` merged over it"
    readme = (
        f"# {name}\n\n"
        f"Micro-package `{name}` {version}, made with piperack's `invoke package` from the module "
        f"`{origin}` of the project `{project.pyproject_data.get('project', {}).get('name', project.package)}`.\n\n"
        f"- code: `{name}/`\n"
        f"- parameters: `{name}/{CONFIG_DIR}/` (paths relative to `conf/<env>/`; packaged from {source})\n"
        f"- tests: `{TESTS_DIR}/`\n\n"
        "Bring it into another project with `invoke pull <this file>` (or Kedro 0.18's "
        "`kedro micropkg pull`), or install the code alone with `pip install <this file>`.\n"
    )
    return SdistSpec(
        name=name,
        version=version,
        summary=f"Micro-package {name}, packaged from {origin}",
        requires=requires,
        requires_python=requires_python if isinstance(requires_python, str) else None,
        files=contents.files,
        executable=contents.executable,
        tool={
            "module": module,
            "name": name,
            "source_package": project.package,
            "env": env,
            "parameters": sorted(p for p in contents.files if p.startswith(f"{name}/{CONFIG_DIR}/")),
            "tests": has_tests,
        },
        readme=readme,
    )


# -- writing -----------------------------------------------------------------------------------------


def update_sums(dest_dir: Path, written: dict[str, str]) -> None:
    """dist/SHA256SUMS (``sha256sum -c`` format): the new entries, plus old ones whose file still exists."""
    sums = dest_dir / SUMS_FILE
    entries = read_sums(dest_dir)
    entries.update(written)
    text = "".join(f"{entries[f]}  {f}\n" for f in sorted(entries))
    if not sums.is_file() or sums.read_text(encoding="utf-8", errors="replace") != text:
        atomic_write(sums, text.encode("utf-8"))


def write(built: Built) -> tuple[str, bool]:
    """Write the archive (atomically); return (sha256, unchanged)."""
    digest = sha256_hex(built.data)
    path = built.path
    unchanged = path.is_file() and path.stat().st_size == len(built.data) and path.read_bytes() == built.data
    if not unchanged:
        created = not built.dest_dir.exists()
        built.dest_dir.mkdir(parents=True, exist_ok=True)
        try:
            atomic_write(path, built.data)
        except BaseException:
            if created:
                try:
                    built.dest_dir.rmdir()
                except OSError:
                    pass
            raise
    return digest, unchanged


def _show(project: Project, path: Path) -> str:
    try:
        return os.path.relpath(path, Path.cwd()) if path.is_relative_to(Path.cwd()) else project.label(path)
    except ValueError:
        return str(path)


def _line(project: Project, built: Built, digest: str, unchanged: bool) -> str:
    note = "  (unchanged)" if unchanged else ""
    return f"{_show(project, built.path)}  {len(built.data)} bytes  sha256:{digest}{note}"


# -- the verb ----------------------------------------------------------------------------------------


def package(project: Project, options: PackageOptions) -> list[Built]:
    """Run ``invoke package``; raise PiperackError on a user error (for --all: if any entry failed)."""
    jobs = options.jobs(project)
    if options.all_:
        return _package_all(project, jobs)
    (job,) = jobs
    built = build(project, job)
    digest, unchanged = write(built)
    update_sums(built.dest_dir, {built.filename: digest})
    for message in built.warnings:
        ui.warn(message)
    ui.info(_line(project, built, digest, unchanged))
    return [built]


def _package_all(project: Project, jobs: list[Job]) -> list[Built]:
    started = time.perf_counter()
    total = len(jobs)
    width = len(str(total))
    done: list[Built] = []
    failed: list[tuple[str, str]] = []
    sums: dict[Path, dict[str, str]] = {}
    claimed: dict[Path, str] = {}  # archive path -> the entry that wrote it in this run
    for index, (job, built) in enumerate(zip(jobs, _build_all(project, jobs), strict=True), 1):
        counter = str(index).rjust(width)
        prefix = f"[{counter}/{total}] {job.label}"
        try:
            if isinstance(built, Exception):
                raise built
            if built.path in claimed:
                raise PiperackError(
                    f"writes {_show(project, built.path)}, as {claimed[built.path]!r} did: give one an alias"
                )
            claimed[built.path] = job.label
            digest, unchanged = write(built)
        except PiperackError as exc:
            failed.append((job.label, str(exc)))
            ui.info(f"{prefix}  FAILED: {exc}")
            continue
        except OSError as exc:
            failed.append((job.label, f"{exc.strerror or exc}: {exc.filename or ''}".rstrip(": ")))
            ui.info(f"{prefix}  FAILED: {failed[-1][1]}")
            continue
        sums.setdefault(built.dest_dir, {})[built.filename] = digest
        for message in built.warnings:
            ui.warn(message)
        ui.info(f"{prefix} -> {_line(project, built, digest, unchanged)}")
        done.append(built)
    for dest_dir, written in sums.items():
        update_sums(dest_dir, written)
    seconds = time.perf_counter() - started
    size = sum(len(b.data) for b in done)
    ui.info(f"packaged {len(done)} of {total} micro-package(s), {size} bytes, in {seconds:.2f} s")
    if failed:
        for label, message in failed:
            print(f"  failed: {label}: {message}", file=sys.stderr, flush=True)
        raise PiperackError(f"{len(failed)} of {total} package(s) failed: {', '.join(line_ for line_, _ in failed)}")
    return done


def _build_one(project: Project, job: Job):
    """``build(project, job)``, or the user error (PiperackError, OSError) that stopped it."""
    try:
        return build(project, job)
    except (PiperackError, OSError) as exc:
        return exc


def _build_all(project: Project, jobs: list[Job]) -> list:
    """Every job's Built (or its error), in order. Building is CPU work (parsing, the rewrite, zlib):
    with many jobs a forked process builds the second half (``workers.map_in_two``); the archives are
    written here, in order, either way."""
    from .workers import map_in_two

    return map_in_two(lambda job: _build_one(project, job), jobs)
