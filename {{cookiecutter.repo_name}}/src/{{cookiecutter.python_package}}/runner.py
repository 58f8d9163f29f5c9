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
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import signal
import sys
import time
from pathlib import Path

log = logging.getLogger(__package__)

DEFAULT_ENV = "local"


class RunError(Exception):
    """A problem with what the user asked for or configured: printed as one line, no traceback."""


SECRETS: list[str] = []  # credential values: replaced by *** in every log line and error


def redact(text: str) -> str:
    for secret in sorted(SECRETS, key=len, reverse=True):
        text = text.replace(secret, "***")
    return text


class RedactSecrets(logging.Filter):
    """Installed on every handler: a credential never reaches the console or a log file."""

    def filter(self, record: logging.LogRecord) -> bool:
        if SECRETS:
            record.msg, record.args = redact(record.getMessage()), None
        return True


def deep_merge(base: dict, override: dict) -> dict:
    """A new dict: ``override`` over ``base``, merging nested mappings key by key (OmegaConf's merge)."""
    from omegaconf import OmegaConf

    return OmegaConf.to_container(OmegaConf.merge(base, override))


def read_yaml(path: Path) -> dict:
    import yaml

    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise RunError(f"{path}: malformed YAML{where}: {problem}") from None
    except OSError as exc:
        raise RunError(f"{path}: cannot read: {exc.strerror}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise RunError(f"{path}: expected a mapping of keys to values, got {type(data).__name__}")
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


def _resolved(parts: list[dict], where: str) -> dict:
    """The OmegaConf merge of ``parts`` with every interpolation resolved; errors are one line."""
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    try:
        merged = OmegaConf.merge(*[OmegaConf.create(part) for part in parts]) if parts else OmegaConf.create({})
        return OmegaConf.to_container(merged, resolve=True)
    except OmegaConfBaseException as exc:
        key = getattr(exc, "full_key", "") or ""
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise RunError(redact(f"{where}{': ' + key if key else ''}: {message}")) from None


def load_config(conf: Path, env: str, kind: str, name: str, overrides: dict | None = None) -> dict:
    """conf/base then conf/<env> files of one pipeline, merged, then ``overrides``; resolved."""
    envs = ["base"] if env == "base" else ["base", env]
    parts = [read_yaml(path) for env_name in envs for path in config_files(conf / env_name, kind, name)]
    if overrides:
        parts.append(overrides)
    return _resolved(parts, f"{conf}/<{'|'.join(envs)}>/{kind}/{name}.yml")


def load_credentials(conf: Path, env: str) -> dict:
    """credentials.yml of conf/base and conf/<env>, merged; every value is remembered as a secret."""
    envs = ["base"] if env == "base" else ["base", env]
    parts = [read_yaml(conf / e / "credentials.yml") for e in envs if (conf / e / "credentials.yml").is_file()]
    credentials = _resolved(parts, f"{conf}/<{'|'.join(envs)}>/credentials.yml")

    def collect(value) -> None:
        if isinstance(value, dict):
            for inner in value.values():
                collect(inner)
        elif isinstance(value, list):
            for inner in value:
                collect(inner)
        elif value is not None and len(str(value)) >= 3:
            SECRETS.append(str(value))

    collect(credentials)
    return credentials


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
            value = yaml.safe_load(raw) if raw.strip() else ""
        except yaml.YAMLError:
            value = raw
        if isinstance(value, (dict, list)) and raw.strip()[:1] not in "[{":
            value = raw
        node = result.setdefault(owner, {})
        *parents, leaf = key[len(owner) + 1 :].split(".")
        for part in parents:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise RunError(f"--params {key!r}: {part!r} is given both as a value and as a group")
        node[leaf] = value
    return result


def _refuse_links(path: Path) -> None:
    """A log file inside the project is never written through a linked folder (it could point
    anywhere, another user's files included): OSError, so logging goes to the console only."""
    here = Path.cwd()
    full = path if path.is_absolute() else here / path
    if not full.is_relative_to(here):
        return
    folder = here
    for part in full.relative_to(here).parts[:-1]:
        folder = folder / part
        if folder.is_symlink():
            raise OSError(40, f"{folder.relative_to(here)} is a symbolic link")


def setup_logging(conf: Path, env: str, level: str | None) -> None:
    """conf/base/logging.yml merged with conf/<env>/logging.yml (dictConfig), else plain console
    logging; ``level`` (or $PIPERACK_LOG_LEVEL) overrides the root level. A log file that cannot be
    opened (a read-only image) is dropped with a warning: logging never stops a run."""
    import logging.config

    envs = ["base"] if env == "base" else ["base", env]
    files = [conf / e / "logging.yml" for e in envs if (conf / e / "logging.yml").is_file()]
    level = (level or os.environ.get("PIPERACK_LOG_LEVEL") or "").upper() or None
    if level and level not in {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}:
        raise RunError(f"--log-level {level!r}: expected DEBUG, INFO, WARNING, ERROR or CRITICAL")
    if files:
        config = _resolved([read_yaml(path) for path in files], f"{conf}/<{'|'.join(envs)}>/logging.yml")
        dropped = []
        for name, handler in dict(config.get("handlers") or {}).items():
            filename = handler.get("filename") if isinstance(handler, dict) else None
            if filename:
                try:
                    _refuse_links(Path(filename))
                    Path(filename).parent.mkdir(parents=True, exist_ok=True)
                    with open(filename, "a", encoding="utf-8"):
                        pass
                except OSError as exc:
                    dropped.append(f"{filename} ({exc.strerror})")
                    del config["handlers"][name]
                    for logger in [config.get("root") or {}, *(config.get("loggers") or {}).values()]:
                        if isinstance(logger, dict) and name in (logger.get("handlers") or []):
                            logger["handlers"].remove(name)
        try:
            logging.config.dictConfig(config)
        except (ValueError, TypeError, AttributeError, ImportError) as exc:
            raise RunError(f"{files[-1]}: not a valid logging configuration ({str(exc).splitlines()[0]})") from None
        for path in dropped:
            log.warning("logging: cannot write %s; logging to the console only", path)
    else:
        logging.basicConfig(level="INFO", format="%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    root = logging.getLogger()
    if level:
        root.setLevel(level)
    loggers = [root, *(obj for obj in logging.Logger.manager.loggerDict.values() if isinstance(obj, logging.Logger))]
    for handler in {handler for logger in loggers for handler in logger.handlers}:
        handler.addFilter(RedactSecrets())


def check_env(conf: Path, env: str) -> None:
    if not conf.is_dir():
        raise RunError(f"{conf}: the configuration folder is missing (run from the project root)")
    if not (conf / "base").is_dir():
        raise RunError(f"{conf / 'base'}: the base configuration folder is missing")
    if env in {".", ".."} or "/" in env or "\\" in env:
        raise RunError(f"invalid env {env!r}: an env is a folder name under conf/")
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


def run(pipelines: list[str] | None, env: str, conf: Path, params: str | None = None) -> None:
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
    for name in chosen:
        started = time.perf_counter()
        log.info("pipeline %s: starting (env %s)", name, env)
        try:
            run_pipeline(name, conf, env, overrides.get(name))
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
    try:
        if args.command == "list":
            print("\n".join(available_pipelines()))
            return 0
        check_env(Path(args.conf), args.env)
        setup_logging(Path(args.conf), args.env, args.log_level)
        run(args.pipeline, args.env, Path(args.conf), args.params)
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
