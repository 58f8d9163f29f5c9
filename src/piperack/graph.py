"""The project's pipelines as a graph: which pipelines exist, the one declared order between them
(conf/base/pipelines.yml), and the datasets each one's catalog names.

What it reads, never imports or runs: src/<package>/pipelines/ on disk, conf/base/pipelines.yml with
conf/<env>/pipelines.yml deep-merged over it, and conf/<base|env>/catalog/<pipeline>.yml (plus
``<pipeline>.yaml`` and a ``<pipeline>/`` folder), every file through ``yamlload`` with a size cap.
The project's runner (template runner.py) reads pipelines.yml its own small way, in the same order.

pipelines.yml::

    aggregate:
      depends_on: [ingest]      # aggregate runs once ingest succeeded

API (every problem is one ``PiperackError`` line naming the file and the names at fault):

- ``discover(project) -> list[str]``: every pipeline, a package under pipelines/ holding a
  pipeline.py, by dotted name (``shared.ingest_b``), sorted.
- ``load(project, env="local", extra=None) -> Graph``: the pipelines and their ``depends_on``
  (pipelines.yml, plus ``extra``: more edges from an older source, airflow.yml's); an unknown name
  or a cycle is refused.
- ``Graph.order(names=None, with_deps=False) -> list[str]``: the pipelines (or ``names``, with what
  they depend on when ``with_deps``) in running order: each after what it depends on, ties by name.
- ``Graph.upstream(name)`` / ``Graph.downstream(name)``: every pipeline it depends on / that
  depends on it, directly or not.
- ``topological(depends_on) -> list[str]``: that order for any mapping of names to upstreams.
- ``datasets(project, env="local") -> dict[str, list[Dataset]]``: per pipeline, the datasets its
  merged catalog names. A top-level string entry is one dataset; a mapping entry is one dataset
  named by its first ``filepath``, ``path``, ``uri``, ``url``, ``location``, ``database`` or
  ``table`` value. A ``Dataset`` has the catalog ``key``, a ``name`` (relative paths normalised,
  ``./data/x.csv`` is ``data/x.csv``; a URL's user and password replaced by ``***``) and a
  ``kind`` (path, url or table): the same ``name`` in two pipelines is one shared dataset.
- ``shared(datasets) -> dict[str, list[str]]``: dataset name -> the pipelines naming it.
"""

from __future__ import annotations

import difflib
import heapq
import posixpath
import re
from dataclasses import dataclass, field
from pathlib import Path

from .errors import PiperackError, first_line

PIPELINES_FILE = "pipelines.yml"
DEFAULT_ENV = "local"  # as options.RUN_ENV: the env merged over conf/base unless --env says otherwise
MAX_CONFIG_BYTES = 1024 * 1024
ENTRY_KEYS = ("depends_on",)
LOCATION_KEYS = ("filepath", "path", "uri", "url", "location", "database", "table")
_USERINFO = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*://)[^/@]*@")


# --- reading config -------------------------------------------------------------------------------


def envs(env: str) -> list[str]:
    """The config envs merged, in order: base, then ``env`` (``base`` alone for env base)."""
    return ["base"] if env == "base" else ["base", env]


def read_mapping(path: Path, label: str) -> dict:
    """One YAML file of the project's config (anchors allowed, nesting and size bounded): a mapping."""
    from .yamlload import load_yaml

    try:
        size = path.stat().st_size
        if size > MAX_CONFIG_BYTES:
            raise PiperackError(f"{label}: {size} bytes is too large for a config file (limit {MAX_CONFIG_BYTES})")
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise PiperackError(f"{label}: not UTF-8 text") from None
    except OSError as exc:
        raise PiperackError(f"{label}: cannot read: {exc.strerror}") from None
    import yaml

    try:
        data = load_yaml(text, allow_anchors=True)
    except ValueError as exc:  # NestedTooDeeply
        raise PiperackError(f"{label}: {exc}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or first_line(exc)
        raise PiperackError(f"{label}: malformed YAML{at}: {problem}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise PiperackError(f"{label}: expected a mapping, got {type(data).__name__}")
    return data


def merge(base: dict, override: dict) -> dict:
    """``override`` over ``base``: mappings merged key by key, anything else (lists too) replaced."""
    merged = dict(base)
    for key, value in override.items():
        both = isinstance(value, dict) and isinstance(merged.get(key), dict)
        merged[key] = merge(merged[key], value) if both else value
    return merged


def _label(project, path: Path) -> str:
    return path.relative_to(project.root).as_posix()


def _env_dirs(project, env: str) -> list[Path]:
    project.env_dir(env, must_exist=env not in {DEFAULT_ENV, "base"})
    return [project.conf / name for name in envs(env)]


# --- pipelines and their order ---------------------------------------------------------------------


def discover(project) -> list[str]:
    """Every pipeline on disk, as the runner finds them: a package under src/<package>/pipelines/
    holding a pipeline.py, by dotted name; a package without one only groups pipelines."""
    found: list[str] = []

    def walk(folder: Path, prefix: str) -> None:
        for child in sorted(folder.iterdir()):
            if not child.is_dir() or not child.name.isidentifier() or not (child / "__init__.py").is_file():
                continue
            name = f"{prefix}{child.name}"
            if (child / "pipeline.py").is_file():
                found.append(name)
            else:
                walk(child, f"{name}.")

    folder = project.package_dir / "pipelines"
    if folder.is_dir():
        walk(folder, "")
    return sorted(set(found))


def topological(depends_on: dict[str, list[str]]) -> list[str]:
    """Every name of ``depends_on`` after all it depends on; among those ready, the first by name.

    A cycle raises ``PiperackError`` naming it (``cycle: a -> b -> a``)."""
    waiting = {name: set(ups) for name, ups in depends_on.items()}
    downstream: dict[str, list[str]] = {name: [] for name in depends_on}
    for name, ups in waiting.items():
        for up in ups:
            downstream.setdefault(up, []).append(name)
    ready = [name for name, ups in waiting.items() if not ups]
    heapq.heapify(ready)
    order: list[str] = []
    while ready:
        name = heapq.heappop(ready)
        order.append(name)
        for down in downstream.get(name, []):
            waiting[down].discard(name)
            if not waiting[down]:
                heapq.heappush(ready, down)
    if len(order) < len(waiting):
        raise PiperackError(f"cycle: {' -> '.join(_a_cycle({n: waiting[n] for n in waiting if waiting[n]}))}")
    return order


def _a_cycle(blocked: dict[str, set[str]]) -> list[str]:
    """One cycle among pipelines that never became ready, walked from the first by name."""
    trail = [min(blocked)]
    while True:
        nxt = min(up for up in blocked[trail[-1]] if up in blocked)
        if nxt in trail:
            return trail[trail.index(nxt) :] + [nxt]
        trail.append(nxt)


@dataclass(frozen=True)
class Graph:
    pipelines: list[str]  # every pipeline on disk, sorted
    depends_on: dict[str, list[str]]  # every pipeline -> its direct upstreams, sorted
    files: list[str] = field(default_factory=list)  # the pipelines.yml files read, in merge order

    def upstream(self, name: str) -> set[str]:
        seen: set[str] = set()
        stack = list(self.depends_on.get(name, []))
        while stack:
            up = stack.pop()
            if up not in seen:
                seen.add(up)
                stack.extend(self.depends_on.get(up, []))
        return seen

    def downstream(self, name: str) -> set[str]:
        return {other for other in self.pipelines if name in self.upstream(other)}

    def order(self, names: list[str] | None = None, with_deps: bool = False) -> list[str]:
        """``names`` (default: every pipeline), plus their upstreams when ``with_deps``, in running order."""
        if names is None:
            return topological(self.depends_on)
        unknown = [name for name in names if name not in self.depends_on]
        if unknown:
            raise PiperackError(_unknown(unknown, self.pipelines))
        chosen = set(names)
        if with_deps:
            for name in names:
                chosen |= self.upstream(name)
        return [name for name in topological(self.depends_on) if name in chosen]


def _unknown(names: list[str], available: list[str]) -> str:
    hint = difflib.get_close_matches(names[0], available, n=1)
    suggestion = f"; did you mean {hint[0]!r}?" if hint else ""
    return f"unknown pipeline {', '.join(map(repr, names))} (available: {', '.join(available) or 'none'}){suggestion}"


def _check_entry(label: str, name, entry) -> list[str]:
    """One pipelines.yml entry: ``<name>: {depends_on: [...]}`` (or empty); its upstreams."""
    if not isinstance(name, str):
        raise PiperackError(f"{label}: pipeline names must be strings, got {name!r}")
    if entry is None:
        return []
    if not isinstance(entry, dict):
        raise PiperackError(f"{label}: {name}: expected a mapping such as {{depends_on: [ingest]}}, got {entry!r}")
    for key in entry:
        if key not in ENTRY_KEYS:
            hint = difflib.get_close_matches(str(key), ENTRY_KEYS, n=1)
            suggestion = f"; did you mean {hint[0]!r}?" if hint else " (known: depends_on)"
            raise PiperackError(f"{label}: {name}.{key}: unknown key{suggestion}")
    depends = entry.get("depends_on") or []
    if isinstance(depends, str):
        depends = [depends]
    if not isinstance(depends, list) or not all(isinstance(up, str) and up for up in depends):
        raise PiperackError(f"{label}: {name}.depends_on: expected a list of pipeline names, got {depends!r}")
    return depends


def load(project, env: str = DEFAULT_ENV, extra: dict[str, list[str]] | None = None) -> Graph:
    """The pipelines on disk and their order: conf/base/pipelines.yml, conf/<env>/pipelines.yml
    merged over it, plus ``extra`` edges; unknown names and cycles refused, naming the file."""
    pipelines = discover(project)
    merged: dict = {}
    files = []
    for folder in _env_dirs(project, env):
        path = folder / PIPELINES_FILE
        if path.is_file():
            files.append(_label(project, path))
            merged = merge(merged, read_mapping(path, files[-1]))
    label = files[-1] if len(files) == 1 else f"conf/<{'|'.join(envs(env))}>/{PIPELINES_FILE}" if files else ""
    edges: dict[str, list[str]] = {name: [] for name in pipelines}
    for name, entry in merged.items():
        depends = _check_entry(label, name, entry)
        unknown = [n for n in [name, *depends] if n not in edges]
        if unknown:
            raise PiperackError(f"{label}: {_unknown(list(dict.fromkeys(unknown)), pipelines)}")
        edges[name] = depends
    for name, depends in (extra or {}).items():
        edges[name] = [*edges.get(name, []), *depends]
    edges = {name: sorted(set(ups)) for name, ups in edges.items()}
    try:
        topological(edges)
    except PiperackError as exc:
        raise PiperackError(f"{label or 'depends_on'}: {exc}") from None
    return Graph(pipelines=pipelines, depends_on=edges, files=files)


# --- datasets -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Dataset:
    key: str  # the catalog entry (``raw``; ``cities.filepath`` for a mapping entry)
    name: str  # what identifies it across pipelines: a normalised path, a URL or a table
    kind: str  # path, url or table


def catalog_files(folder: Path, name: str) -> list[Path]:
    """One pipeline's catalog files in one env, in the runner's order: <name>.yml/.yaml, then its
    folder's files by path."""
    catalog = folder / "catalog"
    files = [p for p in (catalog / f"{name}.yml", catalog / f"{name}.yaml") if p.is_file()]
    if (catalog / name).is_dir():
        files += sorted(p for p in (catalog / name).rglob("*.y*ml") if p.is_file())
    return files


def dataset_name(value: str) -> str:
    """How a location is shown and compared: relative paths normalised, credentials of URLs hidden."""
    value = value.strip()
    if "://" in value:
        return _USERINFO.sub(r"\1***@", value)
    if value.startswith("${"):
        return value
    normal = posixpath.normpath(value.replace("\\", "/"))
    return normal


def _dataset(key: str, value) -> Dataset | None:
    if isinstance(value, dict):
        for location in LOCATION_KEYS:
            if isinstance(value.get(location), str) and value[location].strip():
                inner = _dataset(f"{key}.{location}", value[location])
                return Dataset(inner.key, inner.name, "table" if location == "table" else inner.kind)
        return None
    if not isinstance(value, str) or not value.strip():
        return None
    name = dataset_name(value)
    return Dataset(key, name, "url" if "://" in name else "path")


def datasets(project, env: str = DEFAULT_ENV) -> dict[str, list[Dataset]]:
    """Per pipeline (every one on disk), the datasets its merged catalog names, by catalog key."""
    folders = _env_dirs(project, env)
    result: dict[str, list[Dataset]] = {}
    for pipeline in discover(project):
        leaf = pipeline.rpartition(".")[2]
        catalog: dict = {}
        for folder in folders:
            for path in catalog_files(folder, leaf):
                catalog = merge(catalog, read_mapping(path, _label(project, path)))
        found = [_dataset(str(key), value) for key, value in catalog.items()]
        result[pipeline] = [entry for entry in found if entry is not None]
    return result


def shared(by_pipeline: dict[str, list[Dataset]]) -> dict[str, list[str]]:
    """Dataset name -> the pipelines whose catalogs name it (sorted; a name used by two links them)."""
    users: dict[str, set[str]] = {}
    for pipeline, entries in by_pipeline.items():
        for entry in entries:
            users.setdefault(entry.name, set()).add(pipeline)
    return {name: sorted(pipelines) for name, pipelines in sorted(users.items())}
