"""The pipelines as a graph, as a user meets it: conf/base/pipelines.yml orders `invoke run`, a failure
skips what depends on it, each run is one line of logs/runs.jsonl, --params refuses a typo, and
new-pipeline scaffolds a catalog whose missing key is named."""

from __future__ import annotations

import json
from pathlib import Path

PACKAGE = "demo_project"

AGGREGATE = '''"""Counts the rows ingest loaded and the lines of the CSV it downloaded: runs after ingest."""

import duckdb


def run(params: dict, catalog: dict) -> dict:
    with duckdb.connect(catalog["database"], read_only=True) as con:
        rows = con.execute(f'SELECT count(*) FROM "{params["table"]}"').fetchone()[0]
    with open(catalog["cities"], encoding="utf-8") as handle:
        lines = sum(1 for _ in handle)
    return {"rows": rows, "csv_lines": lines}
'''


def add_pipeline(root: Path, name: str, code: str, params: str = "", catalog: str = "") -> None:
    folder = root / "src" / PACKAGE / "pipelines" / name
    folder.mkdir()
    (folder / "__init__.py").write_text("")
    (folder / "pipeline.py").write_text(code)
    (root / "conf" / "base" / "parameters" / f"{name}.yml").write_text(params)
    (root / "conf" / "base" / "catalog" / f"{name}.yml").write_text(catalog)


def with_aggregate(root: Path) -> Path:
    """aggregate (first by name) reads what ingest writes: the CSV both catalogs name, and the table."""
    add_pipeline(
        root,
        "aggregate",
        AGGREGATE,
        "table: cities\n",
        "database: data/ingest.duckdb\ncities: data/01_raw/cities.csv\n",
    )
    with (root / "conf" / "base" / "pipelines.yml").open("a") as handle:
        handle.write("aggregate:\n  depends_on: [ingest]\n")
    return root


def records(root: Path) -> list[dict]:
    return [json.loads(line) for line in (root / "logs" / "runs.jsonl").read_text().splitlines()]


def started(result) -> list[str]:
    """The pipelines in the order the runner started them (its log lines)."""
    marker = ": starting (env "
    return [line.split("pipeline ")[1].split(marker)[0] for line in result.stderr.splitlines() if marker in line]


def error_lines(result) -> list[str]:
    assert "Traceback" not in result.stderr + result.stdout
    return [line for line in result.stderr.splitlines() if line.startswith("error:")]


def test_run_follows_pipelines_yml_and_records_each_run(project_copy, run_invoke):
    root = with_aggregate(project_copy)
    everything = run_invoke(root, "run")
    assert everything.returncode == 0, everything.stderr
    assert started(everything) == ["ingest", "aggregate"]
    [record] = records(root)
    assert list(record) == ["start", "end", "env", "params", "git_commit", "pipelines"]
    assert record["start"] <= record["end"] and record["start"].endswith("+00:00")
    assert (record["env"], record["params"], record["git_commit"]) == ("local", {}, None)
    assert [(p["name"], p["status"]) for p in record["pipelines"]] == [("ingest", "success"), ("aggregate", "success")]
    assert record["pipelines"][1]["stats"] == {"rows": 22, "csv_lines": 28}
    assert record["pipelines"][0]["stats"]["load"]["rows"] == 22
    assert all(isinstance(p["seconds"], float) for p in record["pipelines"])

    alone = run_invoke(root, "run", "--pipeline", "aggregate")
    assert (alone.returncode, started(alone)) == (0, ["aggregate"]), alone.stderr
    deps = run_invoke(
        root, "run", "-p", "aggregate", "--with-deps", "--params", "ingest.table=towns,aggregate.table=towns"
    )
    assert (deps.returncode, started(deps)) == (0, ["ingest", "aggregate"]), deps.stderr
    last = records(root)[-1]
    assert last["params"] == {"ingest.table": "towns", "aggregate.table": "towns"}
    assert [p["name"] for p in last["pipelines"]] == ["ingest", "aggregate"]
    assert len(records(root)) == 3
    assert "/logs/" in (root / ".gitignore").read_text().splitlines()


def test_a_failure_skips_what_depends_on_it_and_says_so(project_copy, run_invoke):
    root = with_aggregate(project_copy)
    add_pipeline(root, "zeta", 'def run(params, catalog):\n    return {"ok": True}\n')
    local = root / "conf" / "local" / "parameters"
    local.mkdir(parents=True)
    (local / "ingest.yml").write_text("source: samples/nope.csv\n")
    result = run_invoke(root, "run")
    assert result.returncode == 1
    assert error_lines(result) == [
        "error: pipeline 'ingest' failed: cannot read samples/nope.csv: No such file or directory "
        "(set PIPERACK_DEBUG=1 for the traceback); skipped, as they depend on a failed pipeline: aggregate"
    ]
    assert "WARNING demo_project: pipeline aggregate: skipped (it depends on ingest, which failed)" in result.stderr
    [record] = records(root)
    assert [(p["name"], p["status"], p["stats"]) for p in record["pipelines"]] == [
        ("ingest", "failed", None),
        ("aggregate", "skipped", None),
        ("zeta", "success", {"ok": True}),  # it does not depend on ingest: it still runs
    ]


def test_an_unexpected_error_shows_its_type(project_copy, run_invoke):
    add_pipeline(project_copy, "broken", 'def run(params, catalog):\n    return {"db": catalog["database"]}\n')
    result = run_invoke(project_copy, "run", "--pipeline", "broken")
    assert result.returncode == 1
    assert error_lines(result) == [
        "error: pipeline 'broken' failed: KeyError: 'database' (set PIPERACK_DEBUG=1 for the traceback)"
    ]


def test_a_cycle_or_an_unknown_name_is_one_line_and_changes_nothing(project_copy, run_invoke, tree_hash):
    root = with_aggregate(project_copy)
    assert run_invoke(root, "run").returncode == 0  # logs/ exists from here on
    order = root / "conf" / "local" / "pipelines.yml"
    cases = {
        "ingest: {depends_on: [aggregate]}\n": "cycle: aggregate -> ingest -> aggregate",
        "ingest: {depends_on: [agregate]}\n": "unknown pipeline 'agregate' (available: aggregate, ingest); "
        "did you mean 'aggregate'?",
    }
    for text, line in cases.items():
        order.write_text(text)
        before = tree_hash(root)
        result = run_invoke(root, "run")
        assert (result.returncode, error_lines(result)) == (
            1,
            [f"error: conf/<base|local>/pipelines.yml: {line}"],
        ), result.stderr
        assert tree_hash(root) == before
    order.unlink()
    unknown = run_invoke(root, "run", "--pipeline", "ingset")
    assert error_lines(unknown) == [
        "error: unknown pipeline 'ingset' (available: aggregate, ingest); did you mean 'ingest'?"
    ]
    alone = run_invoke(root, "run", "--with-deps")
    assert error_lines(alone) == [
        "error: --with-deps adds what the --pipeline ones depend on: name at least one --pipeline"
    ]
    assert len(records(root)) == 1


def test_params_refuse_a_key_the_parameters_lack_and_plus_adds_one(project_copy, run_invoke, tree_hash):
    before = tree_hash(project_copy)  # a fresh project: the refusal makes no logs/ either
    typo = run_invoke(project_copy, "run", "--params", "ingest.tabel=towns")
    assert (typo.returncode, error_lines(typo)) == (
        1,
        [
            "error: --params 'ingest.tabel': the parameters of 'ingest' have no key 'tabel'; did you mean 'table'? "
            "(to add it on purpose: +ingest.tabel=...)"
        ],
    )
    nested = run_invoke(project_copy, "run", "--params", "ingest.columns.populaton=int")
    assert error_lines(nested) == [
        "error: --params 'ingest.columns.populaton': the parameters of 'ingest' have no key 'populaton'; "
        "did you mean 'population'? (to add it on purpose: +ingest.columns.populaton=...)"
    ]
    assert tree_hash(project_copy) == before
    added = run_invoke(project_copy, "run", "--params", "+ingest.note=nightly,ingest.api_token=abc123")
    assert error_lines(added) == [
        "error: --params 'ingest.api_token': the parameters of 'ingest' have no key 'api_token' "
        "(to add it on purpose: +ingest.api_token=...)"
    ]
    added = run_invoke(project_copy, "run", "--params", "+ingest.note=nightly,+ingest.api_token=abc123")
    assert added.returncode == 0, added.stderr
    assert records(project_copy)[-1]["params"] == {"+ingest.note": "nightly", "+ingest.api_token": "***"}


def test_new_pipeline_scaffolds_a_catalog_and_names_a_missing_key(project_copy, run_invoke):
    created = run_invoke(project_copy, "new-pipeline", "report")
    assert created.returncode == 0, created.stderr
    catalog = project_copy / "conf" / "base" / "catalog" / "report.yml"
    assert "  conf/base/catalog/report.yml" in created.stdout.splitlines()
    assert catalog.read_text().splitlines()[-1] == "greeting: data/report/greeting.txt"
    tests = run_invoke(project_copy, "test", "--args=src/tests/pipelines/report")
    assert tests.returncode == 0 and "3 passed" in tests.stdout, tests.stdout + tests.stderr
    ran = run_invoke(project_copy, "run", "--pipeline", "report")
    assert ran.returncode == 0, ran.stderr
    assert (project_copy / "data" / "report" / "greeting.txt").read_text() == "hello from report\n"
    catalog.write_text("# emptied\n")
    missing = run_invoke(project_copy, "run", "--pipeline", "report")
    assert error_lines(missing) == [
        "error: pipeline 'report' failed: missing catalog key 'greeting' (conf/<env>/catalog/report.yml) "
        "(set PIPERACK_DEBUG=1 for the traceback)"
    ]
