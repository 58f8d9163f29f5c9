"""Planning a pull, in memory: where each package's files land, what they conflict with, the
new requirements.in and the pull record. Nothing in the project is touched here."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import PurePosixPath

from ..errors import PiperackError
from ..options import Job
from ..sdist import CONFIG_DIR, TESTS_DIR
from .read import Package

DEFAULT_DESTINATION = "pipelines"


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
    from ..rewrite import rewrite_references

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
        if rel.parts[0] == CONFIG_DIR:
            continue
        if rel.suffix == ".py":
            data = _rewrite(data, f"{name}/{rel.as_posix()}", name, full, placement.warnings)
        files[code_dir / rel.as_posix()] = data
    for rel, data in staged.walk(f"{name}/{CONFIG_DIR}"):
        target = env_rel / _param_target(rel, name, new_name)
        if target in files:
            raise PiperackError(f"{source}: two parameter files of the package would both land at {target}")
        files[target] = data
        placement.params.append(target)
    test_files = list(staged.walk(TESTS_DIR))
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
    from .. import requirements as reqs_mod
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
