"""``invoke pull``: bring a micro-package (piperack or Kedro 0.18 sdist) into this project.

A pull runs in two phases:

1. **Plan** (nothing in the project is touched): validate every option, fetch each archive into a
   temporary folder, check it and read it into memory (``archive.read_archive``), read its metadata statically
   (PKG-INFO / pyproject.toml, never by running it), rewrite its absolute imports to their new
   home (``rewrite.rewrite_references``), map its files to the three destinations (code,
   parameters, tests), detect every conflict, compute the new requirements.in text
   (``requirements.merge_requirements``) and the new pyproject.toml record (``record.with_pulled``).
2. **Apply** (only when the plan has no error): a ``Transaction`` writes the files, and an error
   or interruption midway restores the project byte-for-byte.

``--all`` plans every manifest entry first and applies them as one transaction.
"""
from __future__ import annotations

import os
import re
import shutil
import signal
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from .errors import PiperackError

ALLOWED_OPTIONS = {"alias", "destination", "env", "fs_args", "force", "sha256"}
DEFAULT_DESTINATION = "pipelines"
_SKIP_DIRS = {"__pycache__", ".git", ".mypy_cache", ".pytest_cache"}
_SKIP_SUFFIXES = (".pyc", ".pyo")


# -- options ----------------------------------------------------------------------------------------


@dataclass
class Job:
    source: str
    alias: str | None = None
    destination: str | None = None
    env: str = "base"
    fs_args: str | None = None
    force: bool = False
    sha256: str | None = None
    base: Path | None = None  # where relative paths (source, fs-args) are resolved
    label: str = ""  # how errors name this entry ("--all" entries name the manifest key)


def normalise_destination(value: str, what: str = "--destination") -> str:
    """``pipelines``, ``pipelines.shared`` or ``pipelines/shared`` -> dotted; refuses anything else."""
    from .project import check_module_path

    if not isinstance(value, str):
        raise PiperackError(f"invalid {what} {value!r}: expected a module path such as 'pipelines'")
    text = value.strip().strip("/")
    if "/" in value:
        if value.startswith("/") or any(part in ("", ".", "..") for part in value.strip("/").split("/")):
            raise PiperackError(f"invalid {what} {value!r}: expected a module path such as 'pipelines' inside the project package")
        text = text.replace("/", ".")
    check_module_path(text, what=what)
    if any(not part.isascii() or __import__("keyword").iskeyword(part) for part in text.split(".")):
        raise PiperackError(f"invalid {what} {value!r}: every part must be a Python identifier")
    return text


def validate_job(project, job: Job) -> None:
    """Check options before anything is fetched or written; errors name the option and entry."""
    from .project import check_identifier

    where = f" ({job.label})" if job.label else ""
    if job.alias is not None:
        if not isinstance(job.alias, str):
            raise PiperackError(f"invalid alias {job.alias!r}{where}: expected a Python identifier")
        check_identifier(job.alias, what=f"alias{where}")
    if job.destination is not None:
        job.destination = normalise_destination(job.destination, f"destination{where}")
    if not isinstance(job.env, str):
        raise PiperackError(f"invalid env {job.env!r}{where}")
    project.env_dir(job.env, must_exist=False)  # refuses ../x, /etc, …
    if not isinstance(job.force, bool):
        raise PiperackError(f"invalid force {job.force!r}{where}: expected true or false")
    if job.sha256 is not None and (not isinstance(job.sha256, str) or not re.fullmatch(r"[0-9a-fA-F]{64}", job.sha256.strip())):
        raise PiperackError(f"invalid sha256 {job.sha256!r}{where}: expected 64 hexadecimal digits")
    if job.fs_args is not None and not isinstance(job.fs_args, str):
        raise PiperackError(f"invalid fs-args {job.fs_args!r}{where}: expected the path of a YAML file")


# -- reading a staged package -----------------------------------------------------------------------


class Staged:
    """The files of a checked archive, in memory: paths relative to its top-level folder."""

    def __init__(self, top: str, files: dict):
        self.name = top  # <name>-<version>
        self.files = files

    def read(self, rel: str) -> bytes | None:
        return self.files.get(PurePosixPath(rel))

    def top_dirs(self) -> set[str]:
        return {rel.parts[0] for rel in self.files if len(rel.parts) > 1}

    def walk(self, folder: str):
        """(path relative to ``folder``, bytes) for every file under it, sorted, caches skipped."""
        prefix = PurePosixPath(folder)
        for rel in sorted(self.files):
            if prefix not in rel.parents:
                continue
            inner = rel.relative_to(prefix)
            if any(part in _SKIP_DIRS or part.endswith(".egg-info") for part in inner.parts):
                continue
            if inner.name.endswith(_SKIP_SUFFIXES):
                continue
            yield inner, self.files[rel]


@dataclass
class Package:
    top: Staged  # the archive's files
    name: str  # the import package's folder name in the sdist
    dist_name: str
    version: str
    requires: list
    module: str | None  # the original module path recorded by `invoke package`, if any
    kind: str  # "piperack" or "kedro"


def read_package(top: Staged, label: str) -> Package:
    """Metadata and layout of a staged sdist, read statically (nothing is built or executed)."""
    import tomllib
    from email.parser import Parser

    from packaging.requirements import InvalidRequirement, Requirement

    from .project import check_module_path

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
    if pkg_info is not None:
        message = Parser().parsestr(pkg_info.decode("utf-8", errors="replace"), headersonly=True)
        meta = {"name": message.get("Name"), "version": message.get("Version")}
        requires = [r for r in (message.get_all("Requires-Dist") or [])]
    elif isinstance(data.get("project"), dict):
        project = data["project"]
        meta = {"name": project.get("name"), "version": project.get("version")}
        deps = project.get("dependencies") or []
        requires = [d for d in deps if isinstance(d, str)]
    else:
        raise PiperackError(f"{label}: no PKG-INFO or pyproject.toml [project] in {top.name}/: not a micro-package sdist")
    if not meta.get("name") or not meta.get("version"):
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
        d for d in top.top_dirs()
        if d != "tests" and not d.endswith(".egg-info") and top.read(f"{d}/__init__.py") is not None
    )
    if not packages:
        raise PiperackError(f"{label}: no package in {top.name}/ (expected a folder with an __init__.py besides tests/)")
    if len(packages) > 1:
        raise PiperackError(f"{label}: more than one package in {top.name}/: {', '.join(packages)} (expected exactly one)")
    name = packages[0]
    if not name.isidentifier() or not name.isascii():
        raise PiperackError(f"{label}: package folder {name!r} is not a Python identifier")
    module = None
    recorded = data.get("tool", {}).get("piperack", {}) if isinstance(data.get("tool"), dict) else {}
    if isinstance(recorded, dict) and recorded.get("module") is not None:
        module = recorded["module"]
        try:
            check_module_path(module, what="[tool.piperack] module")
        except PiperackError as exc:
            raise PiperackError(f"{label}: {top.name}/pyproject.toml {exc}") from None
    kind = "piperack" if recorded else "kedro"
    return Package(top=top, name=name, dist_name=meta["name"], version=meta["version"], requires=reqs, module=module, kind=kind)


# -- the plan ---------------------------------------------------------------------------------------


@dataclass
class Placement:
    """Where one package lands, and what it brings."""

    job: Job
    package: Package
    source: str
    sha256: str
    module: str  # module path relative to the project package, e.g. pipelines.ingest
    code_dir: PurePosixPath  # relative to the project root
    tests_dir: PurePosixPath
    files: dict = field(default_factory=dict)  # PurePosixPath -> bytes
    params: list = field(default_factory=list)
    removes: list = field(default_factory=list)  # paths replaced by --force
    conflicts: list = field(default_factory=list)
    warnings: list = field(default_factory=list)


@dataclass
class Plan:
    placements: list = field(default_factory=list)
    files: dict = field(default_factory=dict)  # rel path -> bytes (new files)
    removes: list = field(default_factory=list)  # rel paths (files or folders) to remove first
    changes: dict = field(default_factory=dict)  # rel path -> (new text) for existing/created shared files
    created_requirements_in: bool = False
    added_requirements: list = field(default_factory=list)
    warnings: list = field(default_factory=list)


def _rewrite(data: bytes, rel: str, old: str, new: str, warnings: list) -> bytes:
    from .rewrite import rewrite_references

    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        warnings.append(f"{rel}: not UTF-8; copied without rewriting its imports")
        return data
    try:
        out = rewrite_references(text, old, new)
    except Exception as exc:  # noqa: BLE001 - libcst.ParserSyntaxError and friends
        warnings.append(f"{rel}: not valid Python ({type(exc).__name__}); copied without rewriting its imports")
        return data
    return out.encode("utf-8")


def _param_target(rel: PurePosixPath, name: str, new_name: str) -> PurePosixPath:
    """A file under the package's config/ -> its path under conf/<env>/ (renamed on alias)."""
    parts = list(rel.parts)
    if len(parts) == 1 and parts[0].startswith("parameters_"):
        parts = ["parameters", parts[0][len("parameters_"):]]  # Kedro: parameters_<name>.yml
    if name != new_name:
        for index in range(1 if parts[0].startswith("parameters") else 0, len(parts)):
            if parts[index].startswith(name):
                parts[index] = new_name + parts[index][len(name):]
                break
    return PurePosixPath(*parts)


def _package_inits(project, root_rel: PurePosixPath, dest_parts: list[str], files: dict) -> None:
    """Plan an empty __init__.py in each destination folder that does not exist yet."""
    here = root_rel
    for part in dest_parts:
        here = here / part
        if not (project.root / here).exists():
            files.setdefault(here / "__init__.py", b"")


def place(project, job: Job, package: Package, source: str, sha256: str) -> Placement:
    """Map a staged package to project paths, rewriting its imports; detect conflicts."""
    name = package.name
    new_name = job.alias or name
    if job.destination is not None:
        destination = job.destination
    elif package.module:
        destination = package.module.rpartition(".")[0]
    else:
        destination = DEFAULT_DESTINATION
    dest_parts = destination.split(".") if destination else []
    module = ".".join([*dest_parts, new_name])
    full = f"{project.package}.{module}"
    pkg_rel = PurePosixPath(project.package_dir.relative_to(project.root).as_posix())
    tests_rel = PurePosixPath(project.tests.relative_to(project.root).as_posix())
    env_rel = PurePosixPath(project.env_dir(job.env, must_exist=False).relative_to(project.root).as_posix())
    code_dir = pkg_rel.joinpath(*dest_parts, new_name)
    tests_dir = tests_rel.joinpath(*dest_parts, new_name)
    placement = Placement(job=job, package=package, source=source, sha256=sha256, module=module,
                          code_dir=code_dir, tests_dir=tests_dir)
    files = placement.files

    _package_inits(project, pkg_rel, dest_parts, files)
    staged = package.top
    for rel, data in staged.walk(name):
        if rel.parts[0] == "config":
            continue
        if rel.suffix == ".py":
            data = _rewrite(data, f"{name}/{rel.as_posix()}", name, full, placement.warnings)
        files[code_dir / rel.as_posix()] = data
    for rel, data in staged.walk(f"{name}/config"):
        target = env_rel / _param_target(rel, name, new_name)
        if target in files:
            raise PiperackError(f"{source}: two parameter files of the package would both land at {target}")
        files[target] = data
        placement.params.append(target)
    test_files = list(staged.walk("tests"))
    if test_files:
        if (project.root / tests_rel).is_dir():
            _package_inits(project, tests_rel, dest_parts, files)
        for rel, data in test_files:
            if rel.suffix == ".py":
                data = _rewrite(data, f"tests/{rel.as_posix()}", name, full, placement.warnings)
            files[tests_dir / rel.as_posix()] = data

    # Conflicts with what is already in the project.
    existing = []
    for folder in (code_dir, tests_dir):
        if (project.root / folder).exists() or (project.root / folder).is_symlink():
            existing.append(folder)
    for target in placement.params:
        if (project.root / target).exists() or (project.root / target).is_symlink():
            existing.append(target)
    if job.force:
        placement.removes = existing
    else:
        placement.conflicts = [f"{p}{'/' if (project.root / p).is_dir() else ''}" for p in existing]
    # Anything that is in the way of a folder we must create (a file named like a folder).
    for target in files:
        for parent in PurePosixPath(target).parents:
            if str(parent) in (".", ""):
                continue
            on_disk = project.root / parent
            if (on_disk.exists() and not on_disk.is_dir()) or on_disk.is_symlink():
                if parent not in placement.removes:
                    placement.conflicts.append(f"{parent} (a file where a folder is needed)")
            if on_disk.is_dir():
                break
    placement.conflicts = sorted(set(placement.conflicts))
    return placement


def finish_plan(project, placements: list[Placement]) -> Plan:
    """Combine placements: cross-package clashes, requirements.in and the pyproject record."""
    from . import requirements as reqs_mod
    from .record import with_pulled

    plan = Plan(placements=placements)
    conflicts: list[str] = []
    owner: dict = {}
    for placement in placements:
        label = placement.job.label or placement.source
        for item in placement.conflicts:
            conflicts.append(f"{item} already exists (from {label})")
        for path, data in placement.files.items():
            if path in owner and owner[path] is not placement and not path.name == "__init__.py":
                conflicts.append(f"{path} would be written by both {owner[path].job.label or owner[path].source} and {label}")
            owner.setdefault(path, placement)
            plan.files.setdefault(path, data)
        for path in placement.removes:
            if path not in plan.removes:
                plan.removes.append(path)
        plan.warnings += [f"{label}: {w}" for w in placement.warnings]
    if conflicts:
        lines = "; ".join(conflicts)
        raise PiperackError(f"nothing pulled: {len(conflicts)} conflict(s): {lines} (use --force to replace the old module)")

    # Requirements.
    wanted = [req for placement in placements for req in placement.package.requires]
    if wanted:
        text, created = reqs_mod.plan_requirements_in(project)
        result = reqs_mod.merge_requirements(text, wanted)
        for existing, new in result.conflicts:
            plan.warnings.append(f"requirement {new!r} conflicts with requirements.in line {existing!r}; not added")
        if result.added:
            plan.changes[PurePosixPath(reqs_mod.IN_FILE)] = result.text
            plan.created_requirements_in = created
            plan.added_requirements = [str(r) for r in result.added]

    # The pull record.
    entries = {
        p.module: {"source": p.source, "version": p.package.version, "sha256": p.sha256} for p in placements
    }
    pyproject_text = project.pyproject.read_text(encoding="utf-8")
    plan.changes[PurePosixPath(project.pyproject.relative_to(project.root).as_posix())] = with_pulled(pyproject_text, entries)
    return plan


# -- the transaction --------------------------------------------------------------------------------


class Transaction:
    """Applies a plan; on any error or interruption, ``rollback`` restores the project exactly.

    Removed paths are moved into a backup folder inside the project root (same filesystem:
    ``os.replace`` is atomic) and moved back on rollback; changed files keep their old bytes in
    memory; new files and folders are recorded and deleted on rollback.
    """

    def __init__(self, root: Path):
        self.root = Path(root)
        self.backup: Path | None = None
        self.moved: list[tuple[Path, Path]] = []
        self.created_files: list[Path] = []
        self.created_dirs: list[Path] = []
        self.changed: list[tuple[Path, bytes | None, int | None]] = []

    def _backup_dir(self) -> Path:
        if self.backup is None:
            self.backup = Path(tempfile.mkdtemp(prefix=".piperack-pull-", dir=self.root))
        return self.backup

    def remove(self, rel) -> None:
        path = self.root / rel
        target = self._backup_dir() / str(len(self.moved))
        os.replace(path, target)
        self.moved.append((path, target))

    def _mkdirs(self, folder: Path) -> None:
        missing = []
        while not folder.exists():
            missing.append(folder)
            folder = folder.parent
        for path in reversed(missing):
            path.mkdir(mode=0o755)
            self.created_dirs.append(path)

    def _write(self, path: Path, data: bytes, mode: int) -> None:
        tmp = path.with_name(f".{path.name}.piperack-tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(data)
            os.chmod(tmp, mode)
            os.replace(tmp, path)
        except BaseException:
            if tmp.exists():
                tmp.unlink()
            raise

    def create(self, rel, data: bytes) -> None:
        path = self.root / rel
        self._mkdirs(path.parent)
        if path.exists() or path.is_symlink():
            raise PiperackError(f"{rel} appeared while pulling; nothing pulled")
        self.created_files.append(path)
        self._write(path, data, 0o644)

    def change(self, rel, data: bytes) -> None:
        path = self.root / rel
        if path.exists():
            old, mode = path.read_bytes(), path.stat().st_mode & 0o7777
            self.changed.append((path, old, mode))
            self._write(path, data, mode)
        else:
            self._mkdirs(path.parent)
            self.changed.append((path, None, None))
            self._write(path, data, 0o644)

    def commit(self) -> None:
        if self.backup is not None:
            shutil.rmtree(self.backup, ignore_errors=True)
            self.backup = None

    def rollback(self) -> None:
        for path, old, mode in reversed(self.changed):
            if old is None:
                if path.exists():
                    path.unlink()
            else:
                self._write(path, old, mode)
        for path in reversed(self.created_files):
            if path.exists() or path.is_symlink():
                path.unlink()
            tmp = path.with_name(f".{path.name}.piperack-tmp")
            if tmp.exists():
                tmp.unlink()
        for path in reversed(self.created_dirs):
            if path.exists():
                shutil.rmtree(path)
        for original, backup in reversed(self.moved):
            if backup.exists():
                os.replace(backup, original)
        if self.backup is not None:
            shutil.rmtree(self.backup, ignore_errors=True)
            self.backup = None


class _DeferInterrupts:
    """Ignore Ctrl-C and SIGTERM while a rollback runs (the first interruption is re-raised after it)."""

    def __enter__(self):
        self.old = {}
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self.old[sig] = signal.signal(sig, signal.SIG_IGN)
        return self

    def __exit__(self, *exc):
        for sig, handler in self.old.items():
            signal.signal(sig, handler)
        return False


def _interrupt(signum, frame):
    raise KeyboardInterrupt(f"signal {signum}")


def apply(project, plan: Plan) -> None:
    """Apply ``plan`` as one transaction: any error, Ctrl-C or SIGTERM midway rolls it back."""
    transaction = Transaction(project.root)
    old_term = None
    if threading.current_thread() is threading.main_thread():
        old_term = signal.signal(signal.SIGTERM, _interrupt)
    try:
        _apply(transaction, plan)
    finally:
        if old_term is not None:
            signal.signal(signal.SIGTERM, old_term)


def _apply(transaction: Transaction, plan: Plan) -> None:
    try:
        for rel in plan.removes:
            transaction.remove(rel)
        for rel, data in sorted(plan.files.items(), key=lambda item: str(item[0])):
            transaction.create(rel, data)
        for rel, text in plan.changes.items():
            transaction.change(rel, text.encode("utf-8"))
    except BaseException:
        with _DeferInterrupts():
            transaction.rollback()
        raise
    transaction.commit()


# -- the verb ---------------------------------------------------------------------------------------


def _jobs(project, source, all_, alias, destination, env, fs_args, force, sha256) -> list[Job]:
    from .manifest import read_manifest

    if all_ and source:
        raise PiperackError("give either a source or --all, not both")
    if all_:
        if any(v is not None for v in (alias, destination, env, fs_args, sha256)) or force:
            raise PiperackError("--all takes its options from [tool.piperack.pull]; do not combine it with other options")
        entries = read_manifest(project, "pull", allowed=ALLOWED_OPTIONS)
        jobs = []
        for key, options in entries.items():
            job = Job(source=key, base=project.root, label=f'[tool.piperack.pull] "{key}"', **{k: v for k, v in options.items()})
            if job.env is None:
                job.env = "base"
            jobs.append(job)
        return jobs
    if not source:
        raise PiperackError("give a source (a .tar.gz path, an fsspec URL or a package name) or --all")
    return [Job(source=source, alias=alias, destination=destination, env=env or "base", fs_args=fs_args,
                force=bool(force), sha256=sha256, base=Path.cwd())]


def pull(
    source: str | None = None,
    *,
    all_: bool = False,
    alias: str | None = None,
    destination: str | None = None,
    env: str | None = None,
    fs_args: str | None = None,
    force: bool = False,
    dry_run: bool = False,
    sha256: str | None = None,
    index_url: str | None = None,
    project=None,
    max_bytes: int | None = None,
) -> Plan:
    """Pull one source (or every manifest entry with ``all_``) into the project; returns the plan."""
    from . import ui
    from .archive import max_bytes_from_env, read_archive
    from .fetch import fetch, load_fs_args, redact, secret_values, strip_credentials
    from .project import find_project

    project = project or find_project()
    limit = max_bytes if max_bytes is not None else max_bytes_from_env()
    jobs = _jobs(project, source, all_, alias, destination, env, fs_args, force, sha256)
    for job in jobs:
        validate_job(project, job)
    for leftover in sorted(project.root.glob(".piperack-pull-*")):
        ui.warn(f"{leftover.name}/ holds what an interrupted pull had moved aside (a killed process "
                "could not roll back); check it, then delete it")
    placements: list[Placement] = []
    with tempfile.TemporaryDirectory(prefix="piperack-pull-") as tmp:
        work = Path(tmp)
        items = ui.progress(jobs, len(jobs), "pulling") if len(jobs) > 1 else jobs
        for index, job in enumerate(items):
            label = strip_credentials(job.source)
            args = load_fs_args(job.fs_args, job.base or Path.cwd()) if job.fs_args else {}
            secrets = secret_values(args)
            try:
                fetched = fetch(job.source, work / f"{index}", base=job.base, fs_args=args, index_url=index_url,
                                max_bytes=limit, expected_sha256=job.sha256)
                top, files = read_archive(fetched.path, label=label, max_bytes=limit)
                package = read_package(Staged(top, files), label)
                placements.append(place(project, job, package, fetched.source, fetched.sha256))
            except PiperackError as exc:
                message = redact(str(exc), secrets)
                if job.label:
                    message = f"{job.label}: {message}"
                raise PiperackError(message) from None
        plan = finish_plan(project, placements)
        if dry_run:
            _report(project, plan, dry_run=True)
            return plan
        apply(project, plan)
    _report(project, plan, dry_run=False)
    return plan


def _report(project, plan: Plan, dry_run: bool) -> None:
    from . import ui

    for warning in plan.warnings:
        ui.warn(warning)
    if dry_run:
        ui.info("dry run: nothing written. A pull would:")
        for rel in plan.removes:
            ui.info(f"  remove  {rel}  (--force replaces it)")
        for rel in sorted(plan.files, key=str):
            ui.info(f"  write   {rel}")
        for rel in plan.changes:
            verb = "create" if (rel.name == "requirements.in" and plan.created_requirements_in) else "change"
            ui.info(f"  {verb}  {rel}")
        return
    for p in plan.placements:
        alias = f" as {p.module.rpartition('.')[2]}" if p.job.alias else ""
        ui.info(f"pulled {p.package.dist_name} {p.package.version}{alias} from {p.source} (sha256 {p.sha256[:12]}…)")
        code_files = sum(1 for f in p.files if str(f).startswith(str(p.code_dir) + "/"))
        test_files = sum(1 for f in p.files if str(f).startswith(str(p.tests_dir) + "/"))
        replaced = " (replaced)" if p.removes else ""
        ui.info(f"  code        {p.code_dir}/ ({code_files} files){replaced}")
        for param in p.params:
            ui.info(f"  parameters  {param}")
        if test_files:
            ui.info(f"  tests       {p.tests_dir}/ ({test_files} files)")
    if plan.added_requirements:
        created = " (created from requirements.txt)" if plan.created_requirements_in else ""
        ui.info(f"requirements.in{created}: added {', '.join(plan.added_requirements)}")
        ui.info("next: run `invoke build-reqs` to re-pin requirements.txt")
    ui.info(f"recorded in {project.pyproject.name} [tool.piperack.pulled]")
