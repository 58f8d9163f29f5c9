"""extract → transform → load, configured by conf/*/parameters/ingest.yml and conf/*/catalog/ingest.yml.

DuckDB does the heavy work of transform, streaming: memory stays flat whatever the size of the CSV.
"""

from __future__ import annotations

import logging
from pathlib import Path

from {{ cookiecutter.python_package }}.pipelines.ingest import nodes

log = logging.getLogger(__name__)
NAME = __name__.split(".")[-2]  # this pipeline's folder: "ingest", or the name it was pulled under


class ConfigError(Exception):
    pass


def _where(where: str) -> str:
    return f"conf/<env>/{where}/{NAME}.yml"


def _require(config: dict, key: str, where: str):
    if key not in config or config[key] in (None, ""):
        raise ConfigError(f"missing {where} key {key!r} ({_where(where)})")
    return _shaped(config, key, where, str)


SHAPES = {
    str: ("a string", lambda v: isinstance(v, str)),
    int: ("a whole number", lambda v: isinstance(v, int) and not isinstance(v, bool)),
    float: ("a number", lambda v: isinstance(v, (int, float)) and not isinstance(v, bool)),
    dict: (
        "a mapping of column names to types",
        lambda v: isinstance(v, dict) and all(isinstance(k, str) and isinstance(t, str) for k, t in v.items()),
    ),
    list: ("a list of column names", lambda v: isinstance(v, list) and all(isinstance(i, str) for i in v)),
}


def _shaped(config: dict, key: str, where: str, kind: type, default=None):
    """``config[key]`` (``default`` when absent or empty) if it has the shape the pipeline needs,
    else one line naming the key, its file and the shape expected."""
    value = config.get(key)
    if value is None:
        return default
    expected, fits = SHAPES[kind]
    if kind in (int, float) and isinstance(value, str):  # from ${oc.env:VAR}: a number as text
        try:
            return kind(value.strip())
        except ValueError:
            pass
    if not fits(value):
        got = {dict: "a mapping", list: "a list", str: "a string", bool: "true/false"}.get(type(value), "a number")
        raise ConfigError(f"{where} key {key!r}: expected {expected}, got {got} ({_where(where)})")
    return value


def _data_path(catalog: dict, key: str) -> str:
    """A catalog path: relative to the project root, inside it (an absolute path may point anywhere)."""
    path = _require(catalog, key, "catalog")
    if not Path(path).is_absolute() and ".." in Path(path).parts:
        raise ConfigError(
            f"catalog key {key!r}: {path!r} leaves the project; give an absolute path to use a folder "
            f"outside it ({_where('catalog')})"
        )
    return path


def run(params: dict, catalog: dict) -> dict:
    # Every setting is checked before any work: a wrong one stops the run with nothing written.
    source = _require(params, "source", "parameters")
    table = _require(params, "table", "parameters")
    raw_path = _data_path(catalog, "raw")
    database = _data_path(catalog, "database")
    columns = _shaped(params, "columns", "parameters", dict, {})
    required = _shaped(params, "required", "parameters", list, [])
    fetch_options = dict(
        timeout=_shaped(params, "timeout", "parameters", float, 30),
        retries=_shaped(params, "retries", "parameters", int, 3),
        backoff=_shaped(params, "backoff", "parameters", float, 0.5),
        deadline=_shaped(params, "deadline", "parameters", float, nodes.DEADLINE),
        max_bytes=_shaped(params, "max_bytes", "parameters", int, nodes.MAX_BYTES),
    )

    fetched = nodes.extract(source, raw_path, **fetch_options)
    log.info("extract: %s bytes from %s to %s in %.2f s", fetched["bytes"], source, raw_path, fetched["seconds"])

    # transform and load share one DuckDB transaction: until load commits, the old table stands.
    with nodes.database(database) as con:
        # To change the rows with pandas, pass step=your_function: it gets the typed, valid rows as
        # DataFrames of nodes.CHUNK_ROWS rows and returns what to keep (before duplicates are dropped).
        stats = nodes.transform(con, raw_path, columns, required)
        log.info(
            "transform: %d rows read, %d invalid dropped, %d duplicates dropped, %d kept in %.2f s",
            stats["rows_read"],
            stats["invalid"],
            stats["duplicates"],
            stats["rows_out"],
            stats["seconds"],
        )
        loaded = nodes.load(con, table)
    log.info("load: %d rows into %s in %s in %.2f s", loaded["rows"], table, database, loaded["seconds"])
    return {"extract": fetched, "transform": stats, "load": loaded}
