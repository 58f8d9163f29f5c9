"""Runs the project's pipelines with their configuration.

Configuration lives in conf/<env>/: parameters/<pipeline>.yml and catalog/<pipeline>.yml (or
.yaml, plus a <pipeline>/ folder of more files), matched by exact name: ``retail`` never reads
``retail_banking.yml``. conf/base/ is read first and conf/<env>/ is deep-merged over it. A pipeline
is a package under pipelines/ whose pipeline.py defines ``run(params: dict, catalog: dict) -> dict``;
packages may group pipelines (pipelines/shared/ingest_b/ is the pipeline ``shared.ingest_b``, whose
configuration files are named by its last part, ``ingest_b``).

Configuration is OmegaConf: ``${oc.env:VAR}`` / ``${oc.env:VAR,default}`` read environment
variables, ``${credentials:name.key}`` reads conf/<env>/credentials.yml (git-ignored in conf/local;
its values are never printed: logs and errors show ``***``), and ``--params "ingest.timeout=5"``
overrides parameters for one run (dotted keys, YAML-typed values; a key the parameters do not
have is refused unless written ``+ingest.new=x``; $PIPERACK_PARAMS may hold the same as a JSON object,
``{"ingest.timeout": 5}``, as an Airflow run's conf passes them). Logging comes from
conf/base/logging.yml (``logging.config.dictConfig``, overridable per env); ``--log-level`` sets
the level.

Order: conf/base/pipelines.yml (``aggregate: {depends_on: [ingest]}``, conf/<env>/ merged over it)
says what runs after what; pipelines run in that order, ties by name. A failed pipeline skips those
depending on it; the others still run. Each run appends one JSON line to logs/runs.jsonl: start,
end, env, the overrides (credentials as ***), the git commit, and per pipeline its name, status
(success, failed, skipped), seconds and the stats its run() returned.

What the runner reads and writes is treated with care (safety.py): every YAML file is checked for
depth and alias expansion before it is built, and what its ``${...}`` would resolve to is
bounded before OmegaConf resolves it; credentials are masked in every form they can take
in output (URL-encoded, escaped, line by line), and so are passwords and token-like query values of
any URL; a log file is never written through a symbolic link, nor outside the project unless its
path is absolute.
"""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import os
import re
import signal
import stat
import sys
import time
from pathlib import Path

from .safety import (
    MAX_CONF_BYTES,
    MAX_DEPTH,
    MIN_SECRET,
    RedactSecrets,
    add_secret,
    bounded_yaml,
    check_interpolations,
    mask_all_output,
    nesting,
    redact,
    shape,
    writable_log_file,
)

log = logging.getLogger(__package__)

DEFAULT_ENV = "local"


class RunError(Exception):
    """A problem with what the user asked for or configured: printed as one line, no traceback."""


def read_yaml(path: Path) -> dict:
    """A YAML file that must hold a mapping (or nothing); every problem is one line naming it."""
    import yaml

    try:
        if path.stat().st_size > MAX_CONF_BYTES:
            raise RunError(f"{path}: larger than {MAX_CONF_BYTES // 2**20} MiB; refused")
        data = bounded_yaml(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise RunError(f"{path}: malformed YAML{where}: {problem}") from None
    except ValueError as exc:  # too deep, too many aliases, not UTF-8
        reason = "not UTF-8 text" if isinstance(exc, UnicodeDecodeError) else str(exc)
        raise RunError(f"{path}: refused: {reason}") from None
    except OSError as exc:
        raise RunError(f"{path}: cannot read: {exc.strerror}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise RunError(f"{path}: expected a mapping of keys to values, got {shape(data)}")
    return data


def config_files(env_dir: Path, kind: str, name: str) -> list[Path]:
    """The files of one pipeline in conf/<env>/<kind>/, in a fixed order."""
    folder = env_dir / kind
    if not folder.is_dir():
        return []
    files = {p for p in (folder / f"{name}.yml", folder / f"{name}.yaml") if p.is_file()}
    if (folder / name).is_dir():
        files.update(p for p in (folder / name).rglob("*.y*ml") if p.is_file())
    # <name>.yml first, then the rest by path, so the most specific files come last.
    return sorted(files, key=lambda p: (p.stem != name or p.parent != folder, str(p)))


def merge_parts(parts: list[tuple[str, dict]]) -> dict:
    """``(source, mapping)`` pairs deep-merged in order (later wins; mappings merge key by key, lists
    and values are replaced), as OmegaConf merges. A mapping given where an earlier file has a list
    (or the reverse) is one line naming the key and the file."""

    def merge(base: dict, over: dict, source: str, path: tuple) -> dict:
        result = dict(base)
        for key, value in over.items():
            old = result.get(key)
            if isinstance(old, dict) and isinstance(value, dict):
                result[key] = merge(old, value, source, (*path, key))
                continue
            if isinstance(old, (dict, list)) and isinstance(value, (dict, list)) and shape(old) != shape(value):
                name = ".".join(map(str, (*path, key)))
                raise RunError(f"{source}: {name}: expected {shape(old)} (as in the files before), got {shape(value)}")
            result[key] = value
        return result

    merged: dict = {}
    for source, data in parts:
        merged = merge(merged, data, source, ())
    return merged


def deep_merge(base: dict, override: dict) -> dict:
    """A new dict: ``override`` over ``base``, merging nested mappings key by key (OmegaConf's merge)."""
    return merge_parts([("base", base), ("override", override)])


def _plain(value) -> bool:
    """True when OmegaConf would give ``value`` back as it is: no ``${...}`` to resolve, no ``???``,
    only strings, numbers, booleans and None under string keys."""
    if isinstance(value, dict):
        return all(isinstance(key, str) and _plain(inner) for key, inner in value.items())
    if isinstance(value, list):
        return all(_plain(inner) for inner in value)
    if isinstance(value, str):
        return "${" not in value and value != "???"
    return value is None or type(value) in (int, float, bool)


def _resolved(parts: list[tuple[str, dict]], where: str) -> dict:
    """The merge of ``parts`` with every interpolation resolved; errors are one line.

    Configuration with nothing to resolve (the common case) skips OmegaConf: the same result,
    without importing it (about a third of a small run's start-up)."""
    merged = merge_parts(parts)
    if _plain(merged):
        import copy

        return copy.deepcopy(merged)
    _check_interpolations(parts, merged, where)
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    _register_credentials()
    try:
        return OmegaConf.to_container(OmegaConf.create(merged), resolve=True)
    except OmegaConfBaseException as exc:
        key = getattr(exc, "full_key", "") or ""
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise RunError(redact(f"{where}{': ' + key if key else ''}: {message}")) from None
    except RecursionError:
        raise RunError(f"{where}: interpolations nested too deeply") from None


def _check_interpolations(parts: list[tuple[str, dict]], merged: dict, where: str) -> None:
    """An interpolation bomb is refused, naming the file and key, before OmegaConf builds it."""
    try:
        check_interpolations(merged, _resolver_size)
    except ValueError as exc:
        source = next((s for s, data in reversed(parts) if _has_key(data, exc.key)), where)
        raise RunError(f"{source}: refused: {exc}") from None


def _resolver_size(name: str, argument: str | None) -> int:
    """The most characters ``${name:argument}`` can hand back, for check_interpolations (``argument``
    None: not known in advance)."""
    if name == "oc.env":
        if argument is None:
            return max(map(len, os.environ.values()), default=0)
        return len(os.environ.get(argument, ""))
    if name == "credentials" and CREDENTIALS:
        node = CREDENTIALS[0]
        for part in argument.split(".") if argument is not None else ():
            node = node.get(part) if isinstance(node, dict) else None
        return len(str(node)) if node is not None else 0
    return 0


def _where(conf: Path, envs: list[str], name: str) -> str:
    return f"{conf}/<{'|'.join(envs)}>/{name}"


def config_parts(conf: Path, env: str, kind: str, name: str, overrides: dict | None = None) -> list:
    """``(file, mapping)`` of conf/base then conf/<env> files of one pipeline, then ``overrides``,
    each read with limits and checked to merge (a list where a mapping was is one line)."""
    envs = ["base"] if env == "base" else ["base", env]
    parts = [(str(path), read_yaml(path)) for e in envs for path in config_files(conf / e, kind, name)]
    if overrides:
        parts.append(("--params", overrides))
    merged = merge_parts(parts)
    if not _plain(merged):
        _check_interpolations(parts, merged, _where(conf, envs, f"{kind}/{name}.yml"))
    return parts


def load_config(conf: Path, env: str, kind: str, name: str, overrides: dict | None = None) -> dict:
    """conf/base then conf/<env> files of one pipeline, merged, then ``overrides``; resolved."""
    envs = ["base"] if env == "base" else ["base", env]
    return _resolved(config_parts(conf, env, kind, name, overrides), _where(conf, envs, f"{kind}/{name}.yml"))


def load_credentials(conf: Path, env: str) -> dict:
    """credentials.yml of conf/base and conf/<env>, merged. Every value is a secret, masked in all
    output from now on; a value too short to mask safely is refused, naming its key."""
    envs = ["base"] if env == "base" else ["base", env]
    files = [conf / e / "credentials.yml" for e in envs if (conf / e / "credentials.yml").is_file()]
    parts = [(str(path), read_yaml(path)) for path in files]
    credentials = _resolved(parts, _where(conf, envs, "credentials.yml"))

    def collect(value, key: tuple) -> None:
        if isinstance(value, dict):
            for inner_key, inner in value.items():
                collect(inner, (*key, inner_key))
        elif isinstance(value, list):
            for index, inner in enumerate(value):
                collect(inner, (*key, index))
        elif value is not None and str(value) != "":
            text = str(value)
            if len(text.strip()) < MIN_SECRET:
                source = next((s for s, data in reversed(parts) if _has_key(data, key)), parts[-1][0])
                raise RunError(
                    f"{source}: credentials key {'.'.join(map(str, key))!r} is shorter than {MIN_SECRET} "
                    "characters: too short to keep out of logs safely (keep settings that are not "
                    "secret in the catalog or parameters)"
                )
            add_secret(text)

    collect(credentials, ())
    return credentials


def _has_key(data, key: tuple) -> bool:
    for part in key:
        if isinstance(data, dict) and part in data:
            data = data[part]
        elif isinstance(data, list) and isinstance(part, int) and part < len(data):
            data = data[part]
        else:
            return False
    return True


CREDENTIALS: list[dict] = []  # the merged credentials ${credentials:...} reads


def register_credentials(credentials: dict) -> None:
    """``${credentials:a.b}`` in any config reads ``a.b`` from the merged credentials (OmegaConf's
    resolver, installed now if OmegaConf is loaded, else when a configuration first needs it)."""
    CREDENTIALS[:] = [credentials]
    if "omegaconf" in sys.modules:
        _register_credentials()


def _register_credentials() -> None:
    from omegaconf import OmegaConf

    if not CREDENTIALS:
        return
    credentials = CREDENTIALS[0]

    def lookup(path: str) -> object:
        node = credentials
        for part in str(path).split("."):
            if not isinstance(node, dict) or part not in node:
                raise KeyError(f"no credential {path!r} in credentials.yml")
            node = node[part]
        return node

    OmegaConf.register_resolver("credentials", lookup, replace=True)


def parse_params(
    text: str, pipelines: list[str], added: set[str] | None = None, flat: dict | None = None
) -> dict[str, dict]:
    """Parameter overrides by pipeline: ``"ingest.timeout=5,ingest.source=data/x.csv"`` gives the
    ``ingest`` pipeline ``timeout: 5`` and ``source: data/x.csv``.

    Keys are ``<pipeline>.<parameter path>``; values are read as YAML scalars (``5`` is an int,
    ``true`` a bool); a piece without ``=`` continues the previous value (a comma inside it). A key
    with a leading ``+`` (``+ingest.note=x``) adds a parameter on purpose: it goes into ``added``.
    ``flat`` receives each key as given with its value (the run's record)."""
    import yaml

    pieces: list[str] = []
    for piece in text.split(","):
        if "=" in piece or not pieces:
            pieces.append(piece)
        else:
            pieces[-1] += "," + piece
    result: dict[str, dict] = {}
    for piece in pieces:
        key, sep, raw = piece.partition("=")
        key = given = key.strip()
        if key.startswith("+"):
            key = key[1:].strip()
            if added is not None:
                added.add(key)
        if not sep or not key or any(not part for part in key.split(".")) or "." not in key:
            raise RunError(f"--params {piece.strip()!r}: expected <pipeline>.<key>=<value>, e.g. ingest.timeout=5")
        try:
            value = bounded_yaml(raw) if raw.strip() else ""
        except yaml.YAMLError:
            value = raw
        except ValueError as exc:
            raise RunError(f"--params {key!r}: refused: {exc}") from None
        if isinstance(value, (dict, list)) and raw.strip()[:1] not in "[{":
            value = raw
        place_override(result, key, value, pipelines, "--params")
        if flat is not None:
            flat[given] = value
    return result


def place_override(result: dict[str, dict], key: str, value, pipelines: list[str], source: str) -> None:
    """Put ``<pipeline>.<a>.<b>=value`` into ``result[pipeline]["a"]["b"]``; the longest pipeline
    name that prefixes the key owns it (``shared.ingest_b.x`` belongs to ``shared.ingest_b``)."""
    owner = max((p for p in pipelines if key.startswith(p + ".")), key=len, default=None)
    if owner is None:
        raise RunError(
            f"{source} {key!r}: no pipeline {key.split('.')[0]!r} (available: {', '.join(pipelines) or 'none'})"
        )
    node = result.setdefault(owner, {})
    *parents, leaf = key[len(owner) + 1 :].split(".")
    if len(parents) >= MAX_DEPTH:
        raise RunError(f"{source} {key[:60]!r}…: refused: nested more than {MAX_DEPTH} levels deep")
    for part in parents:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise RunError(f"{source} {key!r}: {part!r} is given both as a value and as a group")
    node[leaf] = value


def _check_logging_shapes(config: dict, parts: list[tuple[str, dict]]) -> None:
    """dictConfig's sections have the shapes it expects, or one line naming the key and its file."""

    def refuse(key: tuple, expected: str, value) -> None:
        source = next((s for s, data in reversed(parts) if _has_key(data, key)), parts[-1][0])
        raise RunError(f"{source}: {'.'.join(map(str, key))}: expected {expected}, got {shape(value)}")

    for section in ("formatters", "filters", "handlers", "loggers"):
        items = config.get(section)
        if items is not None and not isinstance(items, dict):
            refuse((section,), "a mapping of names to settings", items)
        for name, item in (items or {}).items():
            if not isinstance(item, dict):
                refuse((section, name), "a mapping of settings", item)
    if config.get("root") is not None and not isinstance(config["root"], dict):
        refuse(("root",), "a mapping of settings", config["root"])
    users = [(("root",), config.get("root") or {})]
    users += [(("loggers", n), v) for n, v in (config.get("loggers") or {}).items()]
    users += [(("handlers", n), v) for n, v in (config.get("handlers") or {}).items()]
    for key, item in users:
        for field in ("handlers", "filters"):
            names = item.get(field)
            if names is not None and not (isinstance(names, list) and all(isinstance(n, str) for n in names)):
                refuse((*key, field), f"a list of {field[:-1]} names", names)
    for name, handler in (config.get("handlers") or {}).items():
        filename = handler.get("filename")
        if filename is not None and not isinstance(filename, str):
            refuse(("handlers", name, "filename"), "a path", filename)


def _drop_unsafe_log_files(config: dict) -> list[str]:
    """Handlers whose log file cannot be written safely are removed from ``config``; what was dropped."""
    dropped = []
    for name, handler in dict(config.get("handlers") or {}).items():
        if handler.get("filename"):
            try:
                writable_log_file(handler["filename"])
            except OSError as exc:
                dropped.append(f"{handler['filename']} ({exc.strerror})")
                del config["handlers"][name]
                for logger in [config.get("root") or {}, *(config.get("loggers") or {}).values()]:
                    if name in (logger.get("handlers") or []):
                        logger["handlers"].remove(name)
    return dropped


def _all_handlers() -> set[logging.Handler]:
    loggers = [logging.getLogger()]
    loggers += [obj for obj in logging.Logger.manager.loggerDict.values() if isinstance(obj, logging.Logger)]
    return {handler for logger in loggers for handler in logger.handlers}


def _close_swapped_log_files() -> list[str]:
    """A file handler whose open file is not the regular file now at its path (swapped for a link
    between the check and the open) is closed and removed; the files dropped."""
    dropped = []
    for handler in _all_handlers():
        if not isinstance(handler, logging.FileHandler) or handler.stream is None:
            continue
        try:
            now, opened = os.lstat(handler.baseFilename), os.fstat(handler.stream.fileno())
            same = stat.S_ISREG(now.st_mode) and (now.st_dev, now.st_ino) == (opened.st_dev, opened.st_ino)
        except OSError:
            same = False
        if not same:
            handler.close()
            for logger in [logging.getLogger(), *logging.Logger.manager.loggerDict.values()]:
                if isinstance(logger, logging.Logger) and handler in logger.handlers:
                    logger.removeHandler(handler)
            dropped.append(f"{handler.baseFilename} (it changed while it was opened)")
    return dropped


def setup_logging(conf: Path, env: str, level: str | None) -> None:
    """conf/base/logging.yml merged with conf/<env>/logging.yml (dictConfig), else plain console
    logging; ``level`` (or $PIPERACK_LOG_LEVEL) overrides the root level. A log file that cannot be
    written safely (a read-only image, a link) is dropped with a warning: logging never stops a run.
    Every record is redacted (see mask_all_output)."""
    import logging.config

    mask_all_output()
    envs = ["base"] if env == "base" else ["base", env]
    files = [conf / e / "logging.yml" for e in envs if (conf / e / "logging.yml").is_file()]
    level = (level or os.environ.get("PIPERACK_LOG_LEVEL") or "").upper() or None
    if level and level not in {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}:
        raise RunError(f"--log-level {level!r}: expected DEBUG, INFO, WARNING, ERROR or CRITICAL")
    if files:
        parts = [(str(path), read_yaml(path)) for path in files]
        config = _resolved(parts, _where(conf, envs, "logging.yml"))
        _check_logging_shapes(config, parts)
        dropped = _drop_unsafe_log_files(config)
        try:
            logging.config.dictConfig(config)
        except (ValueError, TypeError, AttributeError, ImportError) as exc:
            raise RunError(f"{files[-1]}: not a valid logging configuration ({str(exc).splitlines()[0]})") from None
        for path in dropped + _close_swapped_log_files():
            log.warning("logging: cannot write %s; logging to the console only", path)
    else:
        logging.basicConfig(level="INFO", format="%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    if level:
        logging.getLogger().setLevel(level)
    for handler in _all_handlers():
        handler.addFilter(RedactSecrets())


def check_env(conf: Path, env: str) -> None:
    if not conf.is_dir():
        raise RunError(f"{conf}: the configuration folder is missing (run from the project root)")
    if not (conf / "base").is_dir():
        raise RunError(f"{conf / 'base'}: the base configuration folder is missing")
    if not env or env in {".", ".."} or any(c in env for c in "/\\") or not env.isprintable():
        raise RunError(f"--env {env!r}: expected the name of a folder under {conf}/ (such as local or prod)")
    if not (conf / env).is_dir() and env != DEFAULT_ENV:
        raise RunError(f"{conf / env}: no such config environment")


def pipelines_package() -> str:
    return f"{__package__}.pipelines"


def available_pipelines() -> list[str]:
    """Every package under pipelines/ holding a pipeline.py, by dotted name (``shared.ingest_b``).

    Found on disk, without importing them; a folder that only groups pipelines is not one."""
    package = importlib.import_module(pipelines_package())
    found = []

    def walk(folder: Path, prefix: str) -> None:
        for child in sorted(folder.iterdir()):
            if not child.is_dir() or not child.name.isidentifier() or not (child / "__init__.py").is_file():
                continue
            name = f"{prefix}{child.name}"
            if (child / "pipeline.py").is_file():
                found.append(name)
            else:
                walk(child, f"{name}.")

    for root in package.__path__:
        walk(Path(root), "")
    return sorted(set(found))


def run_pipeline(name: str, conf: Path, env: str, overrides: dict | None = None) -> dict:
    try:
        module = importlib.import_module(f"{pipelines_package()}.{name}.pipeline")
    except ModuleNotFoundError as exc:
        raise RunError(f"pipeline {name!r} has no pipeline.py ({exc})") from None
    if not hasattr(module, "run"):
        raise RunError(f"{module.__file__}: a pipeline module must define run(params, catalog)")
    leaf = name.rpartition(".")[2]
    params = load_config(conf, env, "parameters", leaf, overrides)
    catalog = load_config(conf, env, "catalog", leaf)
    return module.run(params, catalog)


# --- the order of the pipelines: conf/base/pipelines.yml (conf/<env>/ merged over it) --------------

ORDER_FILE = "pipelines.yml"


def _unknown_pipelines(names: list[str], available: list[str]) -> str:
    import difflib

    hint = difflib.get_close_matches(names[0], available, n=1)
    suggestion = f"; did you mean {hint[0]!r}?" if hint else ""
    return f"unknown pipeline {', '.join(map(repr, names))} (available: {', '.join(available) or 'none'}){suggestion}"


def read_order(conf: Path, env: str, available: list[str]) -> dict[str, list[str]]:
    """Each pipeline's depends_on, from conf/base/pipelines.yml with conf/<env>/pipelines.yml over
    it (``<pipeline>: {depends_on: [<pipeline>, ...]}``); unknown names and cycles are one line."""
    envs = ["base"] if env == "base" else ["base", env]
    files = [conf / e / ORDER_FILE for e in envs if (conf / e / ORDER_FILE).is_file()]
    merged: dict = {}
    for path in files:
        for name, entry in read_yaml(path).items():
            merged[name] = deep_merge(merged.get(name) or {}, entry) if isinstance(entry, dict) else entry
    where = str(files[-1]) if len(files) == 1 else f"{conf}/<{'|'.join(envs)}>/{ORDER_FILE}"
    depends_on: dict[str, list[str]] = {name: [] for name in available}
    for name, entry in merged.items():
        if entry is not None and (not isinstance(entry, dict) or set(entry) - {"depends_on"}):
            example = "{depends_on: [ingest]}"
            raise RunError(f"{where}: {name}: expected a mapping such as {example}, got {entry!r}")
        ups = (entry or {}).get("depends_on") or []
        ups = [ups] if isinstance(ups, str) else ups
        if not isinstance(ups, list) or not all(isinstance(up, str) and up for up in ups):
            raise RunError(f"{where}: {name}.depends_on: expected a list of pipeline names, got {ups!r}")
        unknown = [n for n in dict.fromkeys([str(name), *ups]) if n not in depends_on]
        if unknown:
            raise RunError(f"{where}: {_unknown_pipelines(unknown, available)}")
        depends_on[name] = sorted(set(ups))
    running_order(depends_on, where)
    return depends_on


def running_order(depends_on: dict[str, list[str]], where: str = ORDER_FILE) -> list[str]:
    """Every pipeline after all it depends on; among those ready, the first by name. A cycle is one line."""
    import heapq

    waiting = {name: set(ups) for name, ups in depends_on.items()}
    ready = sorted(name for name, ups in waiting.items() if not ups)
    order: list[str] = []
    while ready:
        name = heapq.heappop(ready)
        order.append(name)
        for other, ups in waiting.items():
            if name in ups:
                ups.discard(name)
                if not ups:
                    heapq.heappush(ready, other)
    blocked = {name: ups for name, ups in waiting.items() if ups}
    if blocked:
        trail = [min(blocked)]
        while True:
            step = min(up for up in blocked[trail[-1]] if up in blocked)
            if step in trail:
                raise RunError(f"{where}: cycle: {' -> '.join(trail[trail.index(step) :] + [step])}")
            trail.append(step)
    return order


def upstream_of(name: str, depends_on: dict[str, list[str]]) -> set[str]:
    seen: set[str] = set()
    stack = list(depends_on.get(name, []))
    while stack:
        up = stack.pop()
        if up not in seen:
            seen.add(up)
            stack.extend(depends_on.get(up, []))
    return seen


def choose(asked: list[str] | None, with_deps: bool, depends_on: dict[str, list[str]]) -> list[str]:
    """What this run runs, in order: every pipeline, or those asked for (plus their upstreams when
    ``with_deps``)."""
    available = sorted(depends_on)
    unknown = [name for name in dict.fromkeys(asked or []) if name not in depends_on]
    if unknown:
        raise RunError(_unknown_pipelines(unknown, available))
    if not asked:
        return running_order(depends_on)
    chosen = set(asked)
    if with_deps:
        for name in asked:
            chosen |= upstream_of(name, depends_on)
    return [name for name in running_order(depends_on) if name in chosen]


# --- --params and $PIPERACK_PARAMS: overrides of keys the parameters have --------------------------

PARAMS_ENV = "PIPERACK_PARAMS"  # a JSON object {"<pipeline>.<key>": value}: an Airflow run's conf params
MAX_PARAMS_BYTES = 1024 * 1024


def params_from_env(pipelines: list[str], added: set[str]) -> tuple[dict[str, dict], dict]:
    """The overrides $PIPERACK_PARAMS holds, as data (JSON, never evaluated), and its flat mapping."""
    text = os.environ.get(PARAMS_ENV, "").strip()
    if not text:
        return {}, {}
    example = '{"ingest.table": "x"}'
    if len(text) > MAX_PARAMS_BYTES:
        raise RunError(f"${PARAMS_ENV}: {len(text)} bytes is too large (limit {MAX_PARAMS_BYTES})")
    try:
        data = json.loads(text)
    except (ValueError, RecursionError):
        raise RunError(f"${PARAMS_ENV}: not JSON; expected an object such as {example}") from None
    if not isinstance(data, dict):
        raise RunError(f"${PARAMS_ENV}: expected a JSON object such as {example}, got {type(data).__name__}")
    if nesting(data) > MAX_DEPTH:
        raise RunError(f"${PARAMS_ENV}: refused: nested more than {MAX_DEPTH} levels deep")
    result: dict[str, dict] = {}
    for raw in data:
        key = raw.strip()
        if key.startswith("+"):
            key = key[1:].strip()
            added.add(key)
        if "." not in key or any(not part for part in key.split(".")):
            raise RunError(f"${PARAMS_ENV}: {raw!r}: expected keys <pipeline>.<key>, as in {example}")
        place_override(result, key, as_data(data[raw]), pipelines, f"${PARAMS_ENV}")
    return result, data


def as_data(value):
    """``value`` with OmegaConf's interpolations escaped (``${oc.env:X}`` stays that text): what an
    Airflow run's conf passes is data, never a lookup of the worker's environment or credentials."""
    if isinstance(value, str):
        return value.replace("${", "\\${")
    if isinstance(value, dict):
        return {key: as_data(inner) for key, inner in value.items()}
    if isinstance(value, list):
        return [as_data(inner) for inner in value]
    return value


def check_overrides(
    conf: Path, env: str, overrides: dict[str, dict], added: set[str], from_env: set[str] | None = None
) -> None:
    """Refuse an override of a key the pipeline's parameters do not have (a typo would be silently
    ignored), suggesting the nearest; ``+<pipeline>.<key>`` adds a key on purpose."""
    import difflib

    def check(pipeline: str, have, given: dict, path: str) -> None:
        for key, value in given.items():
            dotted = f"{path}.{key}"
            if any(new == dotted or new.startswith(dotted + ".") for new in added):
                continue
            keys = [str(k) for k in have] if isinstance(have, dict) else []
            if key not in keys:
                hint = difflib.get_close_matches(key, keys, n=1)
                env_given = any(k == dotted or k.startswith(dotted + ".") for k in from_env or ())
                source = f"${PARAMS_ENV}" if env_given else "--params"
                raise RunError(
                    f"{source} {dotted!r}: the parameters of {pipeline!r} have no key {key!r}"
                    + (f"; did you mean {hint[0]!r}?" if hint else "")
                    + f" (to add it on purpose: +{dotted}=...)"
                )
            if isinstance(value, dict):
                check(pipeline, have[key], value, dotted)

    for pipeline, given in overrides.items():
        check(pipeline, load_config(conf, env, "parameters", pipeline.rpartition(".")[2]), given, pipeline)


def merge_overrides(*parts: dict[str, dict]) -> dict[str, dict]:
    result: dict[str, dict] = {}
    for part in parts:
        for pipeline, values in part.items():
            result[pipeline] = deep_merge(result.get(pipeline, {}), values)
    return result


# --- a record of each run: logs/runs.jsonl ---------------------------------------------------------

RUNS_LOG = Path("logs") / "runs.jsonl"
RUNS_KEEP_LINES = 1000  # past this many lines or bytes, runs.jsonl becomes runs.jsonl.1 (one kept)
RUNS_KEEP_BYTES = 1024 * 1024
SECRET_KEY = re.compile(r"pass|secret|token|credential|api_?key|auth", re.IGNORECASE)


def params_given(flat: dict) -> dict:
    """The overrides as the user gave them (``{"ingest.table": "x"}``), credentials shown as ***."""

    def hidden(key: str, value):
        if SECRET_KEY.search(key.rpartition(".")[2]):
            return "***"
        return redact(value) if isinstance(value, str) else value

    return {str(key): hidden(str(key), value) for key, value in flat.items()}


def git_commit() -> str | None:
    """The project's current commit (with ``-dirty`` when it has changes), else None."""
    import subprocess

    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10)
        if head.returncode:
            return None
        status = subprocess.run(["git", "status", "--porcelain"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return head.stdout.strip() + ("-dirty" if status.returncode == 0 and status.stdout.strip() else "")


def _json_default(value):
    return str(value)


def write_run_record(record: dict, path: Path = RUNS_LOG) -> None:
    """Append ``record`` as one JSON line: a single write of the whole line with O_APPEND, so runs
    at once never interleave; past RUNS_KEEP_LINES lines or RUNS_KEEP_BYTES the file becomes
    runs.jsonl.1 first. A log that cannot be written (a read-only image) is a warning, never a failure."""
    line = (redact(json.dumps(record, default=_json_default, sort_keys=False)) + "\n").encode("utf-8")
    try:
        writable_log_file(str(path))  # no link, no FIFO, not outside the project
        if path.is_file():
            size = path.stat().st_size
            if size + len(line) > RUNS_KEEP_BYTES or (size and path.read_bytes().count(b"\n") >= RUNS_KEEP_LINES):
                try:
                    os.replace(path, path.with_name(path.name + ".1"))
                except FileNotFoundError:  # another run rotated it first
                    pass
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0), 0o644)
        try:
            os.write(fd, line)
        finally:
            os.close(fd)
    except OSError as exc:
        log.warning("cannot record the run in %s (%s)", path, exc.strerror or exc)


def _now() -> str:
    import datetime

    return datetime.datetime.now(datetime.UTC).isoformat(timespec="milliseconds")


# --- running them -----------------------------------------------------------------------------------


def _failure(name: str, exc: Exception) -> str:
    """One line for a pipeline that raised: its own exceptions (defined in this project) by their
    message, any other (KeyError, a library's) with its type: ``KeyError: 'database'``."""
    if isinstance(exc, RunError):
        return str(exc)
    message = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    own = type(exc).__module__.split(".")[0] == __package__.split(".")[0]
    reason = message if own and message else f"{type(exc).__name__}: {message}" if message else type(exc).__name__
    return f"pipeline {name!r} failed: {reason} (set PIPERACK_DEBUG=1 for the traceback)"


def run_in_order(chosen: list[str], depends_on: dict, conf: Path, env: str, overrides: dict, results: list) -> None:
    """Run ``chosen`` in order, appending ``{name, status, seconds, stats}`` to ``results``; a failure
    skips what depends on it (directly or not) and the others go on; RunError at the end names them."""
    failures: list[str] = []
    stopped: dict[str, str] = {}  # pipeline -> the failed pipeline it waited for
    for name in chosen:
        blocker = next((stopped[up] for up in depends_on.get(name, []) if up in stopped), None)
        if blocker:
            stopped[name] = blocker
            log.warning("pipeline %s: skipped (it depends on %s, which failed)", name, blocker)
            results.append({"name": name, "status": "skipped", "seconds": 0.0, "stats": None})
            continue
        started = time.perf_counter()
        entry = {"name": name, "status": "failed", "seconds": 0.0, "stats": None}
        results.append(entry)
        log.info("pipeline %s: starting (env %s)", name, env)
        try:
            entry["stats"] = run_pipeline(name, conf, env, overrides.get(name))
            entry["status"] = "success"
        except Exception as exc:  # a failing pipeline: say which, and why, in one line
            if os.environ.get("PIPERACK_DEBUG"):
                raise
            failures.append(redact(_failure(name, exc)))
            stopped[name] = name
            log.error("pipeline %s: failed", name)
        finally:
            entry["seconds"] = round(time.perf_counter() - started, 3)
        if entry["status"] == "success":
            log.info("pipeline %s: done in %.2f s", name, entry["seconds"])
    if failures:
        skipped = [r["name"] for r in results if r["status"] == "skipped"]
        message = failures[0]
        if skipped:
            message += f"; skipped, as they depend on a failed pipeline: {', '.join(skipped)}"
        if len(failures) > 1:
            message += f"; {len(failures) - 1} more failed (see the log)"
        raise RunError(message)


def prepare(
    pipelines: list[str] | None, env: str, conf: Path, params: str | None = None, with_deps: bool = False
) -> dict:
    """Everything a run checks before it starts (pipelines, order, overrides), writing nothing: what
    ``execute`` runs. A mistake is a RunError, one line, and the project is left as it was."""
    import importlib.util

    if importlib.util.find_spec("omegaconf") is None:  # a requirement even when no file needs it yet
        raise ModuleNotFoundError("No module named 'omegaconf'", name="omegaconf")
    check_env(conf, env)
    register_credentials(load_credentials(conf, env))
    available = available_pipelines()
    if not available:
        raise RunError("this project has no pipelines yet: create one with `invoke new-pipeline NAME`")
    added: set[str] = set()
    from_env, flat = params_from_env(available, added)
    flat = dict(flat)
    overrides = merge_overrides(from_env, parse_params(params, available, added, flat) if params else {})
    depends_on = read_order(conf, env, available)
    chosen = choose(pipelines, with_deps, depends_on)
    for name in chosen:  # every file read and checked now (bombs, shapes): a refused run writes nothing
        config_parts(conf, env, "parameters", name.rpartition(".")[2], overrides.get(name))
        config_parts(conf, env, "catalog", name.rpartition(".")[2])
    check_overrides(conf, env, overrides, added, {key.lstrip("+").strip() for key in from_env_keys(flat, params)})
    return {"env": env, "conf": conf, "chosen": chosen, "depends_on": depends_on, "overrides": overrides, "flat": flat}


def from_env_keys(flat: dict, params: str | None) -> list[str]:
    """The override keys only $PIPERACK_PARAMS gave (errors about them name it, not --params)."""
    given = {piece.partition("=")[0].strip() for piece in (params or "").split(",")}
    return [key for key in flat if key not in given]


def execute(plan: dict) -> None:
    """Run a prepared plan and append its record to logs/runs.jsonl, whatever happens."""
    record = {"start": _now(), "end": None, "env": plan["env"], "params": params_given(plan["flat"])}
    record["git_commit"] = git_commit()
    results: list[dict] = []
    chosen = plan["chosen"]
    try:
        run_in_order(chosen, plan["depends_on"], plan["conf"], plan["env"], plan["overrides"], results)
    finally:
        done = {r["name"] for r in results}
        results += [{"name": n, "status": "skipped", "seconds": 0.0, "stats": None} for n in chosen if n not in done]
        record["end"] = _now()
        record["pipelines"] = results
        write_run_record(record)


def run(pipelines: list[str] | None, env: str, conf: Path, params: str | None = None, with_deps: bool = False) -> None:
    execute(prepare(pipelines, env, conf, params, with_deps))


class Stopped(KeyboardInterrupt):
    """Ctrl-C or SIGTERM: the run stops where it is; the exit status is 128 + the signal number."""

    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = signum


def _stop(signum, frame):
    # One stop per run: a terminal's Ctrl-C and the same signal passed on by `invoke run` are one.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    raise Stopped(signum)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=f"python -m {__package__}", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    run_parser = sub.add_parser("run", help="run pipelines")
    run_parser.add_argument(
        "--pipeline", action="append", help="pipeline to run (repeatable; default: all, in pipelines.yml's order)"
    )
    run_parser.add_argument("--with-deps", action="store_true", help="also run what the --pipeline ones depend on")
    run_parser.add_argument("--env", default=DEFAULT_ENV, help="config env merged over conf/base (default: local)")
    run_parser.add_argument("--conf", default="conf", help="configuration folder (default: ./conf)")
    run_parser.add_argument(
        "--params",
        help='parameter overrides for this run: "ingest.timeout=5,ingest.source=x.csv" (+ingest.new=x adds a key)',
    )
    run_parser.add_argument("--log-level", help="DEBUG, INFO, WARNING, ERROR or CRITICAL (default: logging.yml's)")
    sub.add_parser("list", help="list the pipelines")
    args = parser.parse_args(argv)
    signal.signal(signal.SIGINT, _stop)
    signal.signal(signal.SIGTERM, _stop)
    mask_all_output()
    try:
        if args.command == "list":
            print("\n".join(available_pipelines()))
            return 0
        check_env(Path(args.conf), args.env)
        plan = prepare(args.pipeline, args.env, Path(args.conf), args.params, args.with_deps)
        setup_logging(Path(args.conf), args.env, args.log_level)
        execute(plan)
    except RunError as exc:
        print(f"error: {redact(str(exc))}", file=sys.stderr)
        return 1
    except ModuleNotFoundError as exc:  # the project's requirements are not installed here
        print(
            f"error: the Python package {exc.name!r} is not installed in this environment: "
            "run `pip install -r requirements.txt`",
            file=sys.stderr,
        )
        return 1
    except KeyboardInterrupt as exc:
        signum = getattr(exc, "signum", signal.SIGINT)
        word = "interrupted" if signum == signal.SIGINT else "terminated"
        print(f"{word}: the run stopped ({signal.Signals(signum).name})", file=sys.stderr)
        return 128 + signum
    return 0
