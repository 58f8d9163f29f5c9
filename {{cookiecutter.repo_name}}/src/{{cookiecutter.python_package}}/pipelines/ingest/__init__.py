"""Example ETL pipeline: download a CSV (requests), clean it (pandas), load it into DuckDB."""

__version__ = "0.1.0"
