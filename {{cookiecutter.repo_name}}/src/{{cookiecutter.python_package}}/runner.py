"""Runs the project's pipelines with their configuration.

Configuration lives in conf/<env>/: parameters/<pipeline>.yml and catalog/<pipeline>.yml (or
.yaml, plus a <pipeline>/ folder of more files), matched by exact name: ``retail`` never reads
``retail_banking.yml``. conf/base/ is read first and conf/<env>/ is deep-merged over it. A pipeline
is a package under pipelines/ whose pipeline.py defines ``run(params: dict, catalog: dict) -> dict``;
packages may group pipelines (pipelines/shared/ingest_b/ is the pipeline ``shared.ingest_b``, whose
configuration files are named by its last part, ``ingest_b``).
"""
from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
import time
from pathlib import Path

log = logging.getLogger(__package__)

DEFAULT_ENV = "local"


class RunError(Exception):
    """A problem with what the user asked for or configured: printed as one line, no traceback."""


def deep_merge(base: dict, override: dict) -> dict:
    """A new dict: ``override`` over ``base``, merging nested mappings key by key."""
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


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


def load_config(conf: Path, env: str, kind: str, name: str) -> dict:
    merged: dict = {}
    envs = ["base"] if env == "base" else ["base", env]
    for env_name in envs:
        for path in config_files(conf / env_name, kind, name):
            merged = deep_merge(merged, read_yaml(path))
    return merged


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


def run_pipeline(name: str, conf: Path, env: str) -> dict:
    try:
        module = importlib.import_module(f"{pipelines_package()}.{name}.pipeline")
    except ModuleNotFoundError as exc:
        raise RunError(f"pipeline {name!r} has no pipeline.py ({exc})") from None
    if not hasattr(module, "run"):
        raise RunError(f"{module.__file__}: a pipeline module must define run(params, catalog)")
    leaf = name.rpartition(".")[2]
    params = load_config(conf, env, "parameters", leaf)
    catalog = load_config(conf, env, "catalog", leaf)
    return module.run(params, catalog)


def run(pipelines: list[str] | None, env: str, conf: Path) -> None:
    check_env(conf, env)
    available = available_pipelines()
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
            run_pipeline(name, conf, env)
        except RunError:
            raise
        except Exception as exc:  # a failing pipeline: say which, and why, in one line
            if os.environ.get("PIPERACK_DEBUG"):
                raise
            message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise RunError(
                f"pipeline {name!r} failed: {message} (set PIPERACK_DEBUG=1 for the traceback)"
            ) from None
        log.info("pipeline %s: done in %.2f s", name, time.perf_counter() - started)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=f"python -m {__package__}", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    run_parser = sub.add_parser("run", help="run pipelines")
    run_parser.add_argument("--pipeline", action="append", help="pipeline to run (repeatable; default: all)")
    run_parser.add_argument("--env", default=DEFAULT_ENV, help="config env merged over conf/base (default: local)")
    run_parser.add_argument("--conf", default="conf", help="configuration folder (default: ./conf)")
    sub.add_parser("list", help="list the pipelines")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=os.environ.get("PIPERACK_LOG_LEVEL", "INFO"),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )
    try:
        if args.command == "list":
            print("\n".join(available_pipelines()))
            return 0
        run(args.pipeline, args.env, Path(args.conf))
    except RunError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0
