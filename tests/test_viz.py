"""`invoke viz` in a baked project, as a user runs it: three pipelines sharing data, the page opened
in headless Chromium, Mermaid parsed, and bad input refused in one line with the project unchanged."""

from __future__ import annotations

import json
import re

from tests.browser import Elements, dump_dom, screenshot
from tests.unit.test_viz import parse_mermaid

HOSTILE = "data/<script>alert(1)</script>.csv"
RUN = {
    "start": "2026-12-05T05:00:00+00:00",
    "end": "2026-12-05T05:00:04+00:00",
    "env": "local",
    "params": {},
    "commit": "0123456789abcdef0123",
    "pipelines": [
        {"name": "cleaning", "status": "failed", "seconds": 0.5, "stats": {}},
        {"name": "ingest", "status": "success", "seconds": 1.5, "stats": {"rows": 3}},
        {"name": "aggregate", "status": "skipped", "seconds": 0, "stats": {}},
    ],
}


def three_pipelines(root, run_invoke):
    """The example ingest, plus cleaning (reads ingest's raw CSV) and aggregate (after both, reads
    ingest's database)."""
    for name in ("cleaning", "aggregate"):
        assert run_invoke(root, "new-pipeline", name).returncode == 0
    catalog = root / "conf" / "base" / "catalog"
    (catalog / "cleaning.yml").write_text(f"source: data/01_raw/cities.csv\nrejects: '{HOSTILE}'\n")
    (catalog / "aggregate.yml").write_text("database: ./data/ingest.duckdb\n")
    with open(root / "conf" / "base" / "pipelines.yml", "a") as out:
        out.write("aggregate:\n  depends_on: [ingest, cleaning]\n")


def rows(dom: Elements) -> dict[str, dict[str, str]]:
    """p|d -> {name in the row's header cell: the text of its last cell}."""
    found: dict[str, dict[str, str]] = {"p": {}, "d": {}}
    for index, (name, attrs, _, _) in enumerate(dom.found):
        if name == "tr" and attrs.get("data-node"):
            cells = [text for _, _, text, parent in dom.found if parent == index]
            found[attrs["data-node"][0]][cells[0]] = cells[-1]
    return found


def test_viz_draws_three_pipelines_their_shared_data_and_the_last_run(project_copy, run_invoke, tree_hash, tmp_path):
    root = project_copy
    three_pipelines(root, run_invoke)
    before = tree_hash(root)
    done = run_invoke(root, "viz")
    assert (done.returncode, done.stdout, done.stderr) == (0, "wrote build/pipelines.html\n", "")
    after = tree_hash(root)
    assert set(after) - set(before) == {"build/", "build/pipelines.html"}
    assert {k: v for k, v in after.items() if k in before} == before
    dom = Elements(dump_dom(root / "build" / "pipelines.html"))
    found = rows(dom)
    assert sorted(found["p"]) == ["aggregate", "cleaning", "ingest"]
    assert sorted(found["d"]) == sorted(["data/01_raw/cities.csv", "data/ingest.duckdb", HOSTILE])
    assert len(dom.tags("script")) == 1
    assert [text for attrs, text, _ in dom.tags("p") if attrs.get("id") == "run"][0].startswith("No run recorded yet")

    (root / "logs").mkdir(exist_ok=True)
    (root / "logs" / "runs.jsonl").write_text(json.dumps(RUN) + "\n")
    done = run_invoke(root, "viz", "--output", "docs/pipelines.html", "--format", "html")
    assert (done.returncode, done.stdout) == (0, "wrote docs/pipelines.html\n")
    page = root / "docs" / "pipelines.html"
    found = rows(Elements(dump_dom(page)))
    assert found["p"] == {
        "ingest": "\u2713 success \u00b7 1.50 s",
        "cleaning": "\u2717 failed \u00b7 0.50 s",
        "aggregate": "\u2013 skipped \u00b7 0.00 s",
    }
    assert screenshot(page, tmp_path / "viz.png").stat().st_size > 10_000


def test_viz_mermaid_and_env(project_copy, run_invoke):
    root = project_copy
    three_pipelines(root, run_invoke)
    done = run_invoke(root, "viz", "--format", "mermaid")
    assert done.returncode == 0, done.stderr
    assert "    ingest --> aggregate" in done.stdout.splitlines()
    nodes, edges = parse_mermaid(done.stdout)
    assert sorted(label for kind, label in nodes.values() if kind == "dataset") == sorted(
        ["data/01_raw/cities.csv", "data/ingest.duckdb", HOSTILE]
    )
    assert (len(nodes), len(edges)) == (6, 2 + 5)
    assert not (root / "build").exists()

    prod = root / "conf" / "prod" / "catalog"
    prod.mkdir(parents=True)
    (prod / "aggregate.yml").write_text("database: data/prod.duckdb\n")
    done = run_invoke(root, "viz", "--format", "mermaid", "--env", "prod", "--output", "build/pipelines.mmd")
    assert (done.returncode, done.stdout) == (0, "wrote build/pipelines.mmd\n")
    nodes, edges = parse_mermaid((root / "build" / "pipelines.mmd").read_text())
    assert "data/prod.duckdb" in {label for _, label in nodes.values()}
    assert (len(nodes), len(edges)) == (7, 2 + 5)  # the prod database is aggregate's own


def test_viz_refuses_bad_input_in_one_line_and_writes_nothing(project_copy, run_invoke, tree_hash):
    root = project_copy
    three_pipelines(root, run_invoke)
    with open(root / "conf" / "base" / "pipelines.yml", "a") as out:
        out.write("cleaning:\n  depends_on: [aggregate]\n")
    before = tree_hash(root)
    for args, message in [
        (["--format", "svg"], "error: unknown --format 'svg': choose html or mermaid\n"),
        ([], "error: conf/base/pipelines.yml: cycle: aggregate -> cleaning -> aggregate\n"),
    ]:
        done = run_invoke(root, "viz", *args)
        assert (done.returncode, done.stdout, done.stderr) == (1, "", message)
    assert tree_hash(root) == before


def test_viz_shows_what_invoke_run_recorded(project_copy, run_invoke):
    """A real run: cleaning fails, so aggregate (after it) is skipped; ingest succeeds."""
    root = project_copy
    three_pipelines(root, run_invoke)
    failing = next(root.glob("src/*/pipelines/cleaning/pipeline.py"))
    failing.write_text("def run(params, catalog):\n    raise ValueError('no source today')\n")
    ran = run_invoke(root, "run")
    assert ran.returncode == 1, ran.stderr
    done = run_invoke(root, "viz")
    assert done.returncode == 0, done.stderr
    dom = Elements(dump_dom(root / "build" / "pipelines.html"))
    statuses = rows(dom)["p"]
    assert re.fullmatch(r"\u2713 success \u00b7 \d+\.\d\d s", statuses.pop("ingest"))
    assert re.fullmatch(r"\u2717 failed \u00b7 \d+\.\d\d s", statuses.pop("cleaning"))
    assert statuses == {"aggregate": "\u2013 skipped \u00b7 0.00 s"}
    summary = [text for attrs, text, _ in dom.tags("p") if attrs.get("id") == "run"][0]
    assert summary.startswith("Last run (logs/runs.jsonl): ")
    assert summary.endswith(", env local: 1 failed, 1 skipped, 1 success.")


def test_viz_output_outside_the_project_leaves_the_project_as_it_was(project_copy, run_invoke, tree_hash, tmp_path):
    root = project_copy
    three_pipelines(root, run_invoke)
    before = tree_hash(root)
    page = tmp_path / "artifacts" / "pipelines.html"
    done = run_invoke(root, "viz", "--output", str(page))
    assert (done.returncode, done.stdout, done.stderr) == (0, f"wrote {page}\n", "")
    assert tree_hash(root) == before
    assert sorted(rows(Elements(dump_dom(page)))["p"]) == ["aggregate", "cleaning", "ingest"]
