"""Unit tests of piperack.graph: pipelines on disk, pipelines.yml's order, the catalogs' datasets."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from piperack import graph
from piperack.errors import PiperackError
from piperack.project import find_project

PYPROJECT = '[project]\nname = "demo"\nversion = "0.1.0"\n\n[tool.piperack]\npython_package = "demo"\n'


def exact(message: str) -> str:
    return f"^{re.escape(message)}$"


def make(root: Path, pipelines=("aggregate", "ingest", "report"), files: dict[str, str] | None = None):
    (root / "pyproject.toml").write_text(PYPROJECT)
    (root / "conf" / "base").mkdir(parents=True)
    package = root / "src" / "demo" / "pipelines"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    for name in pipelines:
        folder = package.joinpath(*name.split("."))
        folder.mkdir(parents=True)
        (folder / "__init__.py").write_text("")
        (folder / "pipeline.py").write_text("def run(params, catalog):\n    return {}\n")
        parent = folder.parent
        while parent != package:
            (parent / "__init__.py").write_text("")
            parent = parent.parent
    for rel, text in (files or {}).items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    return find_project(root)


def test_discover_finds_packages_with_pipeline_py_by_dotted_name(tmp_path):
    project = make(tmp_path, ("ingest", "shared.clean", "zeta"))
    (project.package_dir / "pipelines" / "notes").mkdir()  # no __init__.py: not a pipeline
    assert graph.discover(project) == ["ingest", "shared.clean", "zeta"]


def test_order_without_pipelines_yml_is_by_name(tmp_path):
    project = make(tmp_path)
    g = graph.load(project)
    assert g.order() == ["aggregate", "ingest", "report"]
    assert g.files == []


def test_depends_on_orders_and_ties_go_by_name(tmp_path):
    project = make(
        tmp_path,
        ("aggregate", "ingest", "report", "zeta"),
        {"conf/base/pipelines.yml": "aggregate: {depends_on: [ingest]}\nreport:\n  depends_on: [aggregate, zeta]\n"},
    )
    g = graph.load(project)
    assert g.order() == ["ingest", "aggregate", "zeta", "report"]
    assert g.depends_on == {"aggregate": ["ingest"], "ingest": [], "report": ["aggregate", "zeta"], "zeta": []}
    assert g.upstream("report") == {"aggregate", "ingest", "zeta"}
    assert g.downstream("ingest") == {"aggregate", "report"}
    assert g.order(["report"]) == ["report"]
    assert g.order(["report"], with_deps=True) == ["ingest", "aggregate", "zeta", "report"]
    assert g.order(["aggregate", "zeta"], with_deps=True) == ["ingest", "aggregate", "zeta"]
    assert g.files == ["conf/base/pipelines.yml"]


def test_env_file_is_merged_over_base_and_base_env_reads_base_only(tmp_path):
    project = make(
        tmp_path,
        files={
            "conf/base/pipelines.yml": "aggregate: {depends_on: [ingest]}\n",
            "conf/prod/pipelines.yml": "aggregate: {depends_on: [report]}\n",
        },
    )
    assert graph.load(project, "prod").order() == ["ingest", "report", "aggregate"]
    assert graph.load(project, "prod").files == ["conf/base/pipelines.yml", "conf/prod/pipelines.yml"]
    assert graph.load(project, "base").order() == ["ingest", "aggregate", "report"]
    assert graph.load(project).order() == ["ingest", "aggregate", "report"]  # conf/local absent


def test_extra_edges_join_the_declared_ones(tmp_path):
    project = make(tmp_path, files={"conf/base/pipelines.yml": "aggregate: {depends_on: [ingest]}\n"})
    g = graph.load(project, extra={"aggregate": ["report"], "ingest": []})
    assert g.depends_on["aggregate"] == ["ingest", "report"]
    assert g.order() == ["ingest", "report", "aggregate"]


def test_a_cycle_is_one_line_naming_it(tmp_path):
    project = make(
        tmp_path,
        files={
            "conf/base/pipelines.yml": "ingest: {depends_on: [report]}\nreport: {depends_on: [aggregate]}\n"
            "aggregate: {depends_on: [ingest]}\n"
        },
    )
    cycle = "conf/base/pipelines.yml: cycle: aggregate -> ingest -> report -> aggregate"
    with pytest.raises(PiperackError, match=exact(cycle)):
        graph.load(project)


def test_a_cycle_through_two_files_names_both(tmp_path):
    project = make(
        tmp_path,
        files={
            "conf/base/pipelines.yml": "aggregate: {depends_on: [ingest]}\n",
            "conf/local/pipelines.yml": "ingest: {depends_on: [aggregate]}\n",
        },
    )
    with pytest.raises(
        PiperackError, match=exact("conf/<base|local>/pipelines.yml: cycle: aggregate -> ingest -> aggregate")
    ):
        graph.load(project)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "agregate: {depends_on: [ingest]}\n",
            "unknown pipeline 'agregate' (available: aggregate, ingest, report); did you mean 'aggregate'?",
        ),
        (
            "aggregate: {depends_on: [ingest, nope]}\n",
            "unknown pipeline 'nope' (available: aggregate, ingest, report)",
        ),
        ("aggregate: {depend_on: [ingest]}\n", "aggregate.depend_on: unknown key; did you mean 'depends_on'?"),
        ("aggregate: [ingest]\n", "aggregate: expected a mapping such as {depends_on: [ingest]}, got ['ingest']"),
        ("aggregate: {depends_on: 3}\n", "aggregate.depends_on: expected a list of pipeline names, got 3"),
        ("- ingest\n", "expected a mapping, got list"),
        ("a: [\n", "malformed YAML at line 2, column 1: expected the node content, but found '<stream end>'"),
        ("[" * 150 + "]" * 150, "nested more than 100 levels deep"),
    ],
)
def test_bad_pipelines_yml_is_one_line(tmp_path, text, message):
    project = make(tmp_path, files={"conf/base/pipelines.yml": text})
    with pytest.raises(PiperackError, match=exact(f"conf/base/pipelines.yml: {message}")):
        graph.load(project)


def test_asking_for_an_unknown_pipeline_suggests_one(tmp_path):
    g = graph.load(make(tmp_path))
    message = "unknown pipeline 'ingst' (available: aggregate, ingest, report); did you mean 'ingest'?"
    with pytest.raises(PiperackError, match=exact(message)):
        g.order(["ingst"])


def test_an_oversized_file_is_refused(tmp_path):
    project = make(tmp_path, files={"conf/base/pipelines.yml": "#" * (graph.MAX_CONFIG_BYTES + 1)})
    with pytest.raises(PiperackError, match="too large for a config file"):
        graph.load(project)


def test_datasets_per_pipeline_and_the_ones_they_share(tmp_path):
    project = make(
        tmp_path,
        files={
            "conf/base/catalog/ingest.yml": "raw: data/01_raw/cities.csv\ndatabase: data/ingest.duckdb\nretries: 3\n",
            "conf/base/catalog/aggregate.yml": "cities: ./data/01_raw/cities.csv\n"
            "summary: {type: pandas.CSVDataset, filepath: data/summary.csv}\n"
            "remote: s3://user:secret@bucket/x.parquet\n",
            "conf/base/catalog/report/extra.yml": "table: {database: data/ingest.duckdb, table: cities}\n",
            "conf/prod/catalog/ingest.yml": "database: data/prod.duckdb\n",
        },
    )
    found = graph.datasets(project)
    assert found == {
        "aggregate": [
            graph.Dataset("cities", "data/01_raw/cities.csv", "path"),
            graph.Dataset("summary.filepath", "data/summary.csv", "path"),
            graph.Dataset("remote", "s3://***@bucket/x.parquet", "url"),
        ],
        "ingest": [
            graph.Dataset("raw", "data/01_raw/cities.csv", "path"),
            graph.Dataset("database", "data/ingest.duckdb", "path"),
        ],
        "report": [graph.Dataset("table.database", "data/ingest.duckdb", "path")],
    }
    assert graph.shared(found) == {
        "data/01_raw/cities.csv": ["aggregate", "ingest"],
        "data/ingest.duckdb": ["ingest", "report"],
        "data/summary.csv": ["aggregate"],
        "s3://***@bucket/x.parquet": ["aggregate"],
    }
    assert graph.datasets(project, "prod")["ingest"][1] == graph.Dataset("database", "data/prod.duckdb", "path")


def test_topological_alone():
    assert graph.topological({"b": [], "a": ["c"], "c": []}) == ["b", "c", "a"]
    with pytest.raises(PiperackError, match=exact("cycle: a -> a")):
        graph.topological({"a": ["a"]})
