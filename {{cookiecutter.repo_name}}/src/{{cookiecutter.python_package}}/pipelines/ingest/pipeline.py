"""extract → transform → load, configured by conf/*/parameters/ingest.yml and conf/*/catalog/ingest.yml.

DuckDB does the heavy work of transform, streaming: memory stays flat whatever the size of the CSV.
"""

from __future__ import annotations

import logging

from {{ cookiecutter.python_package }}.pipelines.ingest import nodes

log = logging.getLogger(__name__)
NAME = __name__.split(".")[-2]  # this pipeline's folder: "ingest", or the name it was pulled under


class ConfigError(Exception):
    pass


def _require(config: dict, key: str, where: str):
    if key not in config or config[key] in (None, ""):
        raise ConfigError(f"missing {where} key {key!r} (conf/<env>/{where}/{NAME}.yml)")
    return config[key]


def run(params: dict, catalog: dict) -> dict:
    source = _require(params, "source", "parameters")
    table = _require(params, "table", "parameters")
    raw_path = _require(catalog, "raw", "catalog")
    database = _require(catalog, "database", "catalog")

    fetched = nodes.extract(
        source,
        raw_path,
        timeout=float(params.get("timeout", 30)),
        retries=int(params.get("retries", 3)),
        backoff=float(params.get("backoff", 0.5)),
        deadline=float(params.get("deadline", nodes.DEADLINE)),
        max_bytes=int(params.get("max_bytes", nodes.MAX_BYTES)),
    )
    log.info("extract: %s bytes from %s to %s in %.2f s", fetched["bytes"], source, raw_path, fetched["seconds"])

    # transform and load share one DuckDB transaction: until load commits, the old table stands.
    with nodes.database(database) as con:
        # To change the rows with pandas, pass step=your_function: it gets the typed, valid rows as
        # DataFrames of nodes.CHUNK_ROWS rows and returns what to keep (before duplicates are dropped).
        stats = nodes.transform(con, raw_path, params.get("columns") or {}, params.get("required") or [])
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
