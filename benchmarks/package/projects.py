"""Equivalent piperack and Kedro projects with N generated pipelines, for the package benchmark.

Each pipeline ``p0000``… is what a real one looks like: a few modules (nodes, helpers, pipeline
with an absolute import of its own module), a SQL file, a requirements.txt, a parameter file
and tests that import the module absolutely and mock.patch it by its dotted name.
"""

from __future__ import annotations

from pathlib import Path

NODES = '''"""Nodes of pipeline {name}."""
from __future__ import annotations

import re

from .helpers import clean_name, ratio


def extract(rows: list[dict]) -> list[dict]:
    return [dict(row) for row in rows if row]


def transform(rows: list[dict], factor: float) -> list[dict]:
    out = []
    for row in rows:
        name = clean_name(row.get("name", ""))
        if not re.match(r"^[a-z_]+$", name):
            continue
        out.append({{"name": name, "value": ratio(row.get("value", 0), factor)}})
    return out


def load(rows: list[dict], table: str) -> dict:
    return {{"table": table, "rows": len(rows)}}
'''

HELPERS = '''"""Helpers of pipeline {name}."""


def clean_name(value: str) -> str:
    return str(value).strip().lower().replace(" ", "_")


def ratio(value, factor: float) -> float:
    try:
        return float(value) / float(factor)
    except (TypeError, ValueError, ZeroDivisionError):
        return 0.0
'''

PIPELINE = '''"""extract -> transform -> load for {name}."""
from __future__ import annotations

from {package}.pipelines.{name} import nodes


def run(params: dict, catalog: dict) -> dict:
    rows = nodes.extract(params.get("rows", []))
    rows = nodes.transform(rows, params.get("factor", 1))
    return nodes.load(rows, params.get("table", "{name}"))
'''

TEST = """from unittest import mock

import {package}.pipelines.{name}.helpers
from {package}.pipelines.{name} import nodes


def test_transform_cleans_names():
    rows = nodes.transform([{{"name": " A b ", "value": 4}}], 2)
    assert rows == [{{"name": "a_b", "value": 2.0}}]


def test_ratio_is_patchable():
    with mock.patch("{package}.pipelines.{name}.nodes.ratio", return_value=1.0):
        assert nodes.transform([{{"name": "x", "value": 4}}], 2)[0]["value"] == 1.0
    assert {package}.pipelines.{name}.helpers.ratio(1, 0) == 0.0
"""


def add_pipelines(root: Path, package: str, count: int, version: str = "0.1.0") -> list[str]:
    """Write ``count`` pipelines into the project at ``root``; return their module paths."""
    modules = []
    for index in range(count):
        name = f"p{index:04d}"
        code = root / "src" / package / "pipelines" / name
        tests = root / "src" / "tests" / "pipelines" / name
        params = root / "conf" / "base" / "parameters"
        for folder in (code / "queries", tests, params):
            folder.mkdir(parents=True, exist_ok=True)
        (code / "__init__.py").write_text(f'"""Pipeline {name}."""\n\n__version__ = "{version}"\n')
        (code / "nodes.py").write_text(NODES.format(name=name))
        (code / "helpers.py").write_text(HELPERS.format(name=name))
        (code / "pipeline.py").write_text(PIPELINE.format(name=name, package=package))
        (code / "queries" / "select.sql").write_text(f"select * from {name} where value > 0;\n")
        (code / "requirements.txt").write_text("# what this pipeline needs\nrequests>=2.31\npyyaml>=6  # config\n")
        (tests / "__init__.py").write_text("")
        (tests / "test_nodes.py").write_text(TEST.format(name=name, package=package))
        (params / f"{name}.yml").write_text(f"table: {name}\nfactor: 2\nrows: []\n")
        modules.append(f"pipelines.{name}")
    return modules
