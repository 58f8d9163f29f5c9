"""Planning a pull, in memory: where each package's files land, what they conflict with, the
new requirements.in and the pull record. Nothing in the project is touched here."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import PurePosixPath

from ..errors import PiperackError
from ..options import BASE_ENV, Job
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
    catalog_keys: list = field(default_factory=list)  # what its pipeline.py reads from the catalog
    index: str | None = None  # the package index it came from (index pulls)
    specifier: str | None = None  # the version range an index pull asked for (``~=0.1``)


@dataclass
class PullPlan:
    """What a pull writes, all packages together: new files, removals, changed shared files."""

    placements: list = field(default_factory=list)
    files: dict = field(default_factory=dict)  # rel path -> bytes (new files)
    removes: list = field(default_factory=list)  # rel paths (files or folders) to remove first
    changes: dict = field(default_factory=dict)  # rel path -> (new text) for existing/created shared files
    created_requirements_in: bool = False
    added_requirements: list = field(default_factory=list)
    warnings: list = field(default_factory=list)


# Names a pulled module may not take directly under the project package: the project's own machinery.
RESERVED = frozenset({"runner", "safety", "__main__", "__init__", "settings", "pipelines", "tests", "conftest"})
YAML_SUFFIXES = (".yml", ".yaml")


def _rewrite_or_copy_unchanged(data: bytes, rel: str, old: str, new: str, warnings: list, targets=None) -> bytes:
    """``data`` with its references to ``old`` spelled ``new``; a file that is not UTF-8 or not valid
    Python is copied as it is, with a warning in ``warnings``, and the pull goes on."""
    from ..rewrite import rewrite_references

    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        warnings.append(f"{rel}: not UTF-8; copied without rewriting its imports")
        return data
    try:
        out = rewrite_references(text, old, new, targets)
    except ModuleNotFoundError:
        raise  # libcst missing: the task says how to install it
    except Exception as exc:  # noqa: BLE001 - NotPython, libcst errors: the file is copied as it is
        from ..errors import first_line

        warnings.append(f"{rel}: not valid Python ({first_line(exc, 120)}); copied without rewriting its imports")
        return data
    return out.encode("utf-8")


def _param_target(rel: PurePosixPath, name: str, new_name: str) -> PurePosixPath | None:
    """A file under the package's config/ -> its path under conf/<env>/ (renamed on alias), or None
    when it does not belong to the pipeline ``name``: only ``parameters/<name>.yml`` (``.yaml``),
    ``parameters/<name>/**`` and Kedro 0.18's ``parameters_<name>.yml`` do, by exact name."""
    parts = list(rel.parts)
    if len(parts) == 1 and parts[0] in {f"parameters_{name}{s}" for s in YAML_SUFFIXES}:
        parts = ["parameters", parts[0][len("parameters_") :]]  # Kedro: parameters_<name>.yml
    if len(parts) < 2 or parts[0] != "parameters":
        return None
    if len(parts) == 2 and parts[1] in {f"{name}{s}" for s in YAML_SUFFIXES}:
        parts[1] = new_name + parts[1][len(name) :]
    elif len(parts) > 2 and parts[1] == name:
        parts[1] = new_name
    else:
        return None
    return PurePosixPath(*parts)


def _yaml_mapping(data: bytes, where: str):
    """The mapping in a pulled YAML file (anchors and aliases refused: they can expand without bound)."""
    import yaml

    from ..yamlload import AnchorsRefused, NestedTooDeeply, load_yaml_refusing_anchors

    try:
        value = load_yaml_refusing_anchors(data.decode("utf-8"))
    except AnchorsRefused:
        raise PiperackError(f"{where}: YAML anchors and aliases are not accepted in pulled config; refused") from None
    except NestedTooDeeply as exc:
        raise PiperackError(f"{where}: {exc}; refused") from None
    except PiperackError:
        raise
    except (UnicodeDecodeError, yaml.YAMLError, RecursionError) as exc:
        raise PiperackError(f"{where}: not valid YAML ({type(exc).__name__}); refused") from None
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise PiperackError(f"{where}: expected a mapping of parameters, got {type(value).__name__}; refused")
    return value


def _paths_escaping(value, key: str = ""):
    """(key, value) of every string in a config value that names a local path outside the project."""
    import posixpath
    from urllib.parse import unquote, urlsplit

    if isinstance(value, dict):
        for sub, inner in value.items():
            yield from _paths_escaping(inner, f"{key}.{sub}" if key else str(sub))
    elif isinstance(value, list):
        for index, inner in enumerate(value):
            yield from _paths_escaping(inner, f"{key}[{index}]")
    elif isinstance(value, str):
        text = value.strip()
        if text.lower().startswith("file:"):
            text = unquote(urlsplit(text).path) or "/"
        elif "://" in text or "\n" in text:
            return  # a remote URL or prose, not a local path
        if text.startswith(("/", "~", "\\")) or (len(text) > 2 and text[1] == ":" and text[2] in "/\\"):
            yield key, value
        elif "/" in text or "\\" in text or text.startswith(".."):
            normal = posixpath.normpath(text.replace("\\", "/"))
            if normal == ".." or normal.startswith("../"):
                yield key, value


def _check_config(data: bytes, where: str) -> dict:
    mapping = _yaml_mapping(data, where)
    for key, value in _paths_escaping(mapping):
        raise PiperackError(f"{where}: {key} = {value!r} points outside the project; refused")
    return mapping


def _merge_parameter_files(first: tuple, second: tuple, target, source: str) -> bytes:
    """Kedro 0.18 may carry both config/parameters_<name>.yml and config/parameters/<name>.yml: one
    file with both, when their keys differ; refused by name when they share a key."""
    import yaml

    from ..yamlload import load_yaml_refusing_anchors

    (name_a, data_a, map_a), (name_b, data_b, map_b) = first, second
    shared = sorted(set(map_a) & set(map_b), key=str)
    if shared:
        raise PiperackError(
            f"{source}: {name_a} and {name_b} both set {', '.join(map(str, shared))} for {target}; "
            "refused (merge them in the package)"
        )
    text_a, text_b = data_a.decode("utf-8"), data_b.decode("utf-8")
    joined = f"# from {name_a}\n{text_a}{'' if text_a.endswith(chr(10)) else chr(10)}# from {name_b}\n{text_b}"
    try:
        if load_yaml_refusing_anchors(joined) == {**map_a, **map_b}:
            return joined.encode("utf-8")
    except (yaml.YAMLError, ValueError):
        pass
    return yaml.safe_dump({**map_a, **map_b}, sort_keys=False, allow_unicode=True).encode("utf-8")


def _package_inits(project, root_rel: PurePosixPath, dest_parts: list[str], files: dict) -> None:
    """Plan an empty __init__.py in each destination folder that does not exist yet."""
    here = root_rel
    for part in dest_parts:
        here = here / part
        if not (project.root / here).exists():
            files.setdefault(here / "__init__.py", b"")


def _check_shadowing(
    project, source: str, root_rel: PurePosixPath, dest_parts: list[str], new_name: str, what: str
) -> None:
    """Refuse a place where the pulled module would shadow the project's own machinery or modules."""
    parts = [*dest_parts, new_name]
    for part in parts:
        if part.startswith("__") and part.endswith("__"):
            raise PiperackError(f"{source}: {'.'.join(parts)}: {part!r} is a reserved (dunder) name; refused")
    if what == "code" and not dest_parts and new_name in RESERVED:
        raise PiperackError(
            f"{source}: {project.package}.{new_name} would shadow the project's own {new_name!r}; "
            "refused (pull it elsewhere with --destination, or rename it with --alias)"
        )
    here = root_rel
    for part in parts:
        here = here / part
        for suffix in (".py", ".pyi", ".so", ".pyd"):
            module_file = project.root / here.with_name(here.name + suffix)
            if module_file.is_file() or module_file.is_symlink():
                raise PiperackError(
                    f"{source}: {here}/ would shadow the module {here.with_name(here.name + suffix)}; refused "
                    "(use --destination or --alias)"
                )


def _catalog_keys(data: bytes | None) -> list[str]:
    """The catalog keys a pulled pipeline.py (``data``, as in the archive) reads (catalog["k"],
    catalog.get("k"), f(catalog, "k")), found statically; empty when it does not use a piperack
    catalog. The rewrite parsed the same text already (``check_parses`` keeps the tree)."""
    import ast
    import bisect

    from ..rewrite import check_parses

    if data is None:
        return []
    try:
        source = data.decode("utf-8")
        tree = check_parses(source)
    except Exception:  # noqa: BLE001
        return []
    keys: set[str] = set()
    # Only the lines that spell "catalog" can hold a reference: subtrees that span none are skipped.
    lines = [number for number, line in enumerate(source.splitlines(), 1) if "catalog" in line]

    def is_catalog(node) -> bool:
        return isinstance(node, ast.Name) and node.id == "catalog"

    def may_refer(node) -> bool:
        first = getattr(node, "lineno", None)
        if first is None:
            return True
        at = bisect.bisect_left(lines, first)
        return at < len(lines) and lines[at] <= (node.end_lineno or first)

    stack = [tree]
    while stack:
        node = stack.pop()
        stack.extend(child for child in ast.iter_child_nodes(node) if may_refer(child))
        if isinstance(node, ast.Subscript) and is_catalog(node.value):
            if isinstance(node.slice, ast.Constant) and isinstance(node.slice.value, str):
                keys.add(node.slice.value)
        elif isinstance(node, ast.Call):
            func = node.func
            if isinstance(func, ast.Attribute) and is_catalog(func.value) and func.attr in {"get", "pop", "setdefault"}:
                if node.args and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str):
                    keys.add(node.args[0].value)
            elif any(is_catalog(arg) for arg in node.args):
                strings = [a.value for a in node.args if isinstance(a, ast.Constant) and isinstance(a.value, str)]
                if strings:
                    keys.add(strings[0])
    return sorted(keys)


def _folders_in_the_way(project, files, removes) -> list[str]:
    """What stands where a folder must be created for ``files`` (a file named like the folder, or a
    link), as conflicts; ``removes`` (``--force``) are out of the way."""
    conflicts = []
    walked: set = set()  # files share folders: one met again was judged, with all above it, already
    for target in files:
        for parent in PurePosixPath(target).parents:
            if str(parent) in (".", ""):
                continue
            if parent in walked:
                break
            walked.add(parent)
            on_disk = project.root / parent
            if (on_disk.exists() and not on_disk.is_dir()) or on_disk.is_symlink():
                if parent not in removes:
                    conflicts.append(f"{parent} (a file where a folder is needed)")
            if on_disk.is_dir():
                break
    return conflicts


def place(project, job: Job, package: Package, source: str, sha256: str) -> Placement:
    """Map a staged package to project paths, rewriting its imports; detect conflicts."""
    from ..rewrite import importable_paths

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
    _check_shadowing(project, source, pkg_rel, dest_parts, new_name, "code")
    placement = Placement(
        job=job, package=package, source=source, sha256=sha256, module=module, code_dir=code_dir, tests_dir=tests_dir
    )
    files = placement.files

    _package_inits(project, pkg_rel, dest_parts, files)
    staged = package.top
    code = list(staged.walk(name))
    targets = importable_paths({rel.as_posix(): data for rel, data in code if rel.parts[0] != CONFIG_DIR})
    for rel, data in code:
        if rel.parts[0] == CONFIG_DIR:
            continue
        if rel.suffix == ".py":
            data = _rewrite_or_copy_unchanged(data, f"{name}/{rel.as_posix()}", name, full, placement.warnings, targets)
        files[code_dir / rel.as_posix()] = data
    landing: dict = {}  # target -> (config file name, bytes, mapping)
    for rel, data in staged.walk(f"{name}/{CONFIG_DIR}"):
        where = f"{source}: {name}/{CONFIG_DIR}/{rel.as_posix()}"
        mapped = _param_target(rel, name, new_name)
        if mapped is None:
            placement.warnings.append(
                f"{name}/{CONFIG_DIR}/{rel.as_posix()} not pulled: a package brings only its own parameters "
                f"(parameters/{name}.yml, parameters/{name}/)"
            )
            continue
        target = env_rel / mapped
        mapping = _check_config(data, where) if rel.suffix in YAML_SUFFIXES else None
        if target in landing:
            if mapping is None or landing[target][2] is None:
                raise PiperackError(f"{source}: two parameter files of the package would both land at {target}")
            merged = _merge_parameter_files(landing[target], (rel.as_posix(), data, mapping), target, source)
            landing[target] = (f"{landing[target][0]} + {rel.as_posix()}", merged, {**landing[target][2], **mapping})
            files[target] = merged
            continue
        landing[target] = (rel.as_posix(), data, mapping)
        files[target] = data
        placement.params.append(target)
    test_files = list(staged.walk(TESTS_DIR))
    if test_files:
        _check_shadowing(project, source, tests_rel, dest_parts, new_name, "tests")
        if (project.root / tests_rel).is_dir():
            _package_inits(project, tests_rel, dest_parts, files)
        for rel, data in test_files:
            if rel.suffix == ".py":
                data = _rewrite_or_copy_unchanged(
                    data, f"{TESTS_DIR}/{rel.as_posix()}", name, full, placement.warnings, targets
                )
            files[tests_dir / rel.as_posix()] = data
    placement.catalog_keys = _catalog_keys(staged.read(f"{name}/pipeline.py"))

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
    placement.conflicts += _folders_in_the_way(project, files, placement.removes)
    placement.conflicts = sorted(set(placement.conflicts))
    return placement


def _check_requires_python(project, placements: list[Placement]) -> None:
    """A package whose Requires-Python no version of the project's requires-python satisfies is refused."""
    from packaging.specifiers import InvalidSpecifier, SpecifierSet

    from ..requirements import specifiers_compatible

    ours = (
        project.pyproject_data.get("project", {}).get("requires-python")
        if isinstance(project.pyproject_data.get("project"), dict)
        else None
    )
    for placement in placements:
        theirs = placement.package.requires_python
        if not theirs:
            continue
        label = placement.job.label or placement.source
        try:
            SpecifierSet(theirs)
        except InvalidSpecifier:
            raise PiperackError(
                f"{label}: its Requires-Python {theirs!r} is not a version specifier; refused"
            ) from None
        if isinstance(ours, str):
            try:
                compatible = specifiers_compatible(ours, theirs)
            except InvalidSpecifier:
                continue  # the project's own value is for build-reqs and pip to judge
            if not compatible:
                raise PiperackError(
                    f"{label}: it requires Python {theirs}, which no Python the project allows ({ours}) "
                    "satisfies; refused"
                )


def finish_plan(
    project, placements: list[Placement], allow_conflicts: bool = False, allow_direct: bool = False
) -> PullPlan:
    """Combine placements: cross-package clashes, requirements.in and the pyproject record."""
    from .. import requirements as reqs_mod
    from .record import with_pulled

    plan = PullPlan(placements=placements)
    conflicts: list[str] = []
    owner: dict = {}
    for placement in placements:
        label = placement.job.label or placement.source
        for item in placement.conflicts:
            conflicts.append(f"{item} already exists (from {label})")
        for path, data in placement.files.items():
            if path in owner and owner[path] is not placement and not path.name == "__init__.py":
                conflicts.append(
                    f"{path} would be written by both {owner[path].job.label or owner[path].source} and {label}"
                )
            owner.setdefault(path, placement)
            plan.files.setdefault(path, data)
        for path in placement.removes:
            if path not in plan.removes:
                plan.removes.append(path)
        plan.warnings += [f"{label}: {w}" for w in placement.warnings]
    if conflicts:
        lines = "; ".join(conflicts)
        raise PiperackError(
            f"nothing pulled: {len(conflicts)} conflict(s): {lines} (use --force to replace the old module)"
        )

    # Requirements.
    wanted = [req for placement in placements for req in placement.package.requires]
    direct = [str(req) for req in wanted if req.url]
    if direct and not allow_direct:
        raise PiperackError(
            f"nothing pulled: the package requires direct references ({'; '.join(direct)}), which pip would "
            "fetch from wherever they point; pass --allow-direct-references to take them"
        )
    _check_requires_python(project, placements)
    if wanted:
        text, created = reqs_mod.plan_requirements_in(project)
        result = reqs_mod.merge_requirements(text, wanted)
        if result.conflicts and not allow_conflicts:
            lines = "; ".join(
                f"{new} (the package) vs {existing} (requirements.in)" for existing, new in result.conflicts
            )
            raise PiperackError(
                f"nothing pulled: no version satisfies both {lines}; pass --allow-conflicts to add it anyway "
                "(then `invoke build-reqs` will say what to do)"
            )
        merged = result.text
        for existing, new in result.conflicts:
            plan.warnings.append(
                f"requirement {str(new)!r} conflicts with requirements.in line {existing!r}; added anyway"
            )
            merged = (merged if merged.endswith("\n") or not merged else merged + "\n") + f"{new}\n"
        added = [str(r) for r in result.added] + [str(new) for _, new in result.conflicts]
        if added:
            plan.changes[PurePosixPath(reqs_mod.IN_FILE)] = merged
            plan.created_requirements_in = created
            plan.added_requirements = added

    # The pull record.
    entries = {
        p.module: {
            "source": p.source,
            "version": p.package.version,
            "sha256": p.sha256,
            "index": p.index,
            "specifier": p.specifier,
            "package": p.package.dist_name,
            "env": p.job.env if p.job.env != BASE_ENV else None,
            "pre": p.job.pre,
        }
        for p in placements
    }
    pyproject_text = project.pyproject.read_text(encoding="utf-8")
    plan.changes[PurePosixPath(project.pyproject.relative_to(project.root).as_posix())] = with_pulled(
        pyproject_text, entries
    )
    return plan
