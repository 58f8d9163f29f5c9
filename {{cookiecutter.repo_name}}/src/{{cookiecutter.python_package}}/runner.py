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
overrides parameters for one run (dotted keys, YAML-typed values). Logging comes from
conf/base/logging.yml (``logging.config.dictConfig``, overridable per env); ``--log-level`` sets
the level.

What the runner reads and writes is treated with care: every YAML file is checked for depth and
alias expansion before it is built; credentials are masked in every form they can take in output
(URL-encoded, escaped, line by line), and so are passwords and token-like query values of any URL;
a log file is never written through a symbolic link, nor outside the project unless its path is
absolute.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
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
    mask_all_output,
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


def _resolved(parts: list[tuple[str, dict]], where: str) -> dict:
    """The merge of ``parts`` with every interpolation resolved; errors are one line."""
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    merged = merge_parts(parts)
    try:
        return OmegaConf.to_container(OmegaConf.create(merged), resolve=True)
    except OmegaConfBaseException as exc:
        key = getattr(exc, "full_key", "") or ""
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise RunError(redact(f"{where}{': ' + key if key else ''}: {message}")) from None
    except RecursionError:
        raise RunError(f"{where}: interpolations nested too deeply") from None


def _where(conf: Path, envs: list[str], name: str) -> str:
    return f"{conf}/<{'|'.join(envs)}>/{name}"


def load_config(conf: Path, env: str, kind: str, name: str, overrides: dict | None = None) -> dict:
    """conf/base then conf/<env> files of one pipeline, merged, then ``overrides``; resolved."""
    envs = ["base"] if env == "base" else ["base", env]
    parts = [(str(path), read_yaml(path)) for e in envs for path in config_files(conf / e, kind, name)]
    if overrides:
        parts.append(("--params", overrides))
    return _resolved(parts, _where(conf, envs, f"{kind}/{name}.yml"))


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


def register_credentials(credentials: dict) -> None:
    """``${credentials:a.b}`` in any config reads ``a.b`` from the merged credentials."""
    from omegaconf import OmegaConf

    def lookup(path: str) -> object:
        node = credentials
        for part in str(path).split("."):
            if not isinstance(node, dict) or part not in node:
                raise KeyError(f"no credential {path!r} in credentials.yml")
            node = node[part]
        return node

    OmegaConf.register_resolver("credentials", lookup, replace=True)


def parse_params(text: str, pipelines: list[str]) -> dict[str, dict]:
    """Parameter overrides by pipeline: ``"ingest.timeout=5,ingest.source=data/x.csv"`` gives the
    ``ingest`` pipeline ``timeout: 5`` and ``source: data/x.csv``.

    Keys are ``<pipeline>.<parameter path>``; values are read as YAML scalars (``5`` is an int,
    ``true`` a bool); a piece without ``=`` continues the previous value (a comma inside it)."""
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
        key = key.strip()
        if not sep or not key or any(not part for part in key.split(".")) or "." not in key:
            raise RunError(f"--params {piece.strip()!r}: expected <pipeline>.<key>=<value>, e.g. ingest.timeout=5")
        owner = max((p for p in pipelines if key.startswith(p + ".")), key=len, default=None)
        if owner is None:
            raise RunError(
                f"--params {key!r}: no pipeline {key.split('.')[0]!r} (available: {', '.join(pipelines) or 'none'})"
            )
        try:
            value = bounded_yaml(raw) if raw.strip() else ""
        except yaml.YAMLError:
            value = raw
        except ValueError as exc:
            raise RunError(f"--params {key!r}: refused: {exc}") from None
        if isinstance(value, (dict, list)) and raw.strip()[:1] not in "[{":
            value = raw
        node = result.setdefault(owner, {})
        *parents, leaf = key[len(owner) + 1 :].split(".")
        if len(parents) >= MAX_DEPTH:
            raise RunError(f"--params {key[:60]!r}…: refused: nested more than {MAX_DEPTH} levels deep")
        for part in parents:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise RunError(f"--params {key!r}: {part!r} is given both as a value and as a group")
        node[leaf] = value
    return result


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


def pipeline_config(name: str, conf: Path, env: str, overrides: dict | None = None) -> tuple[dict, dict]:
    """The parameters and the catalog of pipeline ``name`` (files named by its last part)."""
    leaf = name.rpartition(".")[2]
    return load_config(conf, env, "parameters", leaf, overrides), load_config(conf, env, "catalog", leaf)


def run_pipeline(name: str, params: dict, catalog: dict) -> dict:
    try:
        module = importlib.import_module(f"{pipelines_package()}.{name}.pipeline")
    except ModuleNotFoundError as exc:
        raise RunError(f"pipeline {name!r} has no pipeline.py ({exc})") from None
    if not hasattr(module, "run"):
        raise RunError(f"{module.__file__}: a pipeline module must define run(params, catalog)")
    return module.run(params, catalog)


def run(
    pipelines: list[str] | None, env: str, conf: Path, params: str | None = None, log_level: str | None = None
) -> None:
    """Run the pipelines. All configuration is read and checked first: a refused run writes nothing,
    not even a log file."""
    check_env(conf, env)
    register_credentials(load_credentials(conf, env))
    available = available_pipelines()
    overrides = parse_params(params, available) if params else {}
    chosen = pipelines or available
    if not chosen:
        raise RunError("this project has no pipelines yet: create one with `invoke new-pipeline NAME`")
    unknown = [p for p in chosen if p not in available]
    if unknown:
        raise RunError(
            f"unknown pipeline {', '.join(map(repr, unknown))} (available: {', '.join(available) or 'none'})"
        )
    configs = {name: pipeline_config(name, conf, env, overrides.get(name)) for name in chosen}
    setup_logging(conf, env, log_level)
    for name in chosen:
        started = time.perf_counter()
        log.info("pipeline %s: starting (env %s)", name, env)
        try:
            run_pipeline(name, *configs[name])
        except RunError:
            raise
        except Exception as exc:  # a failing pipeline: say which, and why, in one line
            if os.environ.get("PIPERACK_DEBUG"):
                raise
            message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise RunError(
                redact(f"pipeline {name!r} failed: {message} (set PIPERACK_DEBUG=1 for the traceback)")
            ) from None
        log.info("pipeline %s: done in %.2f s", name, time.perf_counter() - started)


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
    run_parser.add_argument("--pipeline", action="append", help="pipeline to run (repeatable; default: all)")
    run_parser.add_argument("--env", default=DEFAULT_ENV, help="config env merged over conf/base (default: local)")
    run_parser.add_argument("--conf", default="conf", help="configuration folder (default: ./conf)")
    run_parser.add_argument("--params", help='parameter overrides for this run: "ingest.timeout=5,ingest.source=x.csv"')
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
        run(args.pipeline, args.env, Path(args.conf), args.params, args.log_level)
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
