"""viz's picture without a project: layout, Mermaid, the page, and that page in headless Chromium."""

from __future__ import annotations

import json
import random
import re

import pytest

from piperack import viz
from tests.browser import Elements, dump_dom, screenshot

HOSTILE = ['<script>alert("p")</script>', 'x"] --> y; click x call alert()\nz', "a#quot;&amp;`b`|c"]


def three() -> viz.Picture:
    """ingest and cleaning share the raw CSV; aggregate runs after both and reads ingest's database."""
    return viz.make_picture(
        "demo",
        ["cleaning", "ingest", "aggregate"],
        {"aggregate": ["cleaning", "ingest"]},
        {
            "ingest": [("raw", "data/01_raw/cities.csv", "path"), ("database", "data/ingest.duckdb", "path")],
            "cleaning": [("source", "data/01_raw/cities.csv", "path")],
            "aggregate": [("database", "data/ingest.duckdb", "path")],
        },
    )


def generated(count: int = 50, seed: int = 7) -> viz.Picture:
    """``count`` pipelines, each after up to two of the six before it, each naming its own output
    and its first upstream's; a few hostile names among them."""
    rng = random.Random(seed)
    names = [f"pipeline_{i:02d}" for i in range(count - len(HOSTILE))] + HOSTILE
    depends = {
        name: sorted({names[j] for j in rng.sample(range(max(0, i - 6), i), min(i, 2))}) for i, name in enumerate(names)
    }
    for i in range(0, count, 5):  # every fifth pipeline starts a new line of work
        depends[names[i]] = []
    index = {name: i for i, name in enumerate(names)}
    data = {
        name: [("out", f"data/{i:02d}/{name}.parquet", "path")]
        + [("in", f"data/{index[up]:02d}/{up}.parquet", "path") for up in depends[name][:1]]
        for i, name in enumerate(names)
    }
    return viz.make_picture("fifty <b>", names, depends, data)


ENTITIES = {"quot": '"', "35": "#", "amp": "&", "lt": "<", "gt": ">", "96": "`", "59": ";"}
NODE = re.compile(r'    (\w+)(\["([^"]*)"\]|\[\("([^"]*)"\)\])')
EDGE = re.compile(r"    (\w+) (-->|-\.-) (\w+)")


def parse_mermaid(text: str) -> tuple[dict[str, tuple[str, str]], list[tuple[str, str, str]]]:
    """Nodes (id -> kind, decoded label) and edges of viz's Mermaid; any other line fails the test."""
    lines = text.splitlines()
    assert lines[0] == "flowchart LR"
    nodes, edges = {}, []
    for line in lines[1:]:
        node, edge = NODE.fullmatch(line), EDGE.fullmatch(line)
        assert node or edge, f"not a node or an edge: {line!r}"
        if node:
            label = re.sub(r"#(\w+);", lambda m: ENTITIES[m.group(1)], node.group(3) or node.group(4) or "")
            assert node.group(1) not in nodes
            nodes[node.group(1)] = ("pipeline" if node.group(3) is not None else "dataset", label)
        else:
            assert edge.group(1) in nodes and edge.group(3) in nodes, line
            edges.append((edge.group(1), edge.group(2), edge.group(3)))
    return nodes, edges


def test_mermaid_of_three_pipelines_sharing_a_dataset():
    text = viz.mermaid(three())
    nodes, edges = parse_mermaid(text)
    assert sorted(label for kind, label in nodes.values() if kind == "pipeline") == ["aggregate", "cleaning", "ingest"]
    assert sorted(label for kind, label in nodes.values() if kind == "dataset") == [
        "data/01_raw/cities.csv",
        "data/ingest.duckdb",
    ]
    assert "    ingest --> aggregate" in text.splitlines()
    assert sorted(e for e in edges if e[1] == "-->") == [
        ("cleaning", "-->", "aggregate"),
        ("ingest", "-->", "aggregate"),
    ]
    assert len([e for e in edges if e[1] == "-.-"]) == 4  # the CSV links two pipelines, the database two


def test_mermaid_keeps_hostile_names_inside_their_labels():
    picture = generated()
    nodes, edges = parse_mermaid(viz.mermaid(picture))
    labels = {label for kind, label in nodes.values() if kind == "pipeline"}
    assert labels == {name.replace("\n", " ") for name in picture.pipelines}
    assert len([n for n in nodes.values() if n[0] == "dataset"]) == len(picture.datasets) == 50
    assert len([e for e in edges if e[1] == "-->"]) == sum(len(v) for v in picture.depends_on.values())
    assert len([e for e in edges if e[1] == "-.-"]) == 50 + sum(1 for v in picture.depends_on.values() if v)
    assert "click" not in [line.split()[0] for line in viz.mermaid(picture).splitlines()]
    # Mermaid's own words and names shaped like viz's ids are not used as identifiers.
    special = viz.make_picture("t", ["end", "d0", "p1", "ok"], {"ok": ["end", "d0", "p1"]}, {})
    assert parse_mermaid(viz.mermaid(special))[0] == {
        "p0": ("pipeline", "end"),
        "p1": ("pipeline", "d0"),
        "p2": ("pipeline", "p1"),
        "ok": ("pipeline", "ok"),
    }


def test_layout_puts_each_pipeline_right_of_what_it_depends_on_and_nothing_overlaps():
    picture = generated()
    plan = viz.layout(picture)
    by_name = {node.name: node for node in plan.nodes.values() if node.kind == "pipeline"}
    for name, ups in picture.depends_on.items():
        for up in ups:
            assert by_name[up].x + viz.BOX_W < by_name[name].x
    spots = [(node.x, node.y) for node in plan.nodes.values()]
    assert len(spots) == len(set(spots)) == 100
    for node in plan.nodes.values():
        assert 0 <= node.x and node.x + viz.BOX_W <= plan.width and 0 <= node.y and node.y + viz.BOX_H <= plan.height
    shared = viz.layout(three())
    csv = next(n for n in shared.nodes.values() if n.name == "data/01_raw/cities.csv")
    assert (csv.col, sorted(shared.nodes[i].name for i in csv.links)) == (1, ["cleaning", "ingest"])


def test_last_run_is_the_last_complete_line(tmp_path):
    assert viz.last_run(tmp_path) is None
    (tmp_path / "logs").mkdir()
    first = {"start": "a", "env": "local", "pipelines": [{"name": "ingest", "status": "success", "seconds": 1.5}]}
    second = {"start": "b", "env": "prod", "pipelines": [{"name": "ingest", "status": "failed", "seconds": 0.25}]}
    (tmp_path / viz.RUNS_FILE).write_text(json.dumps(first) + "\n" + json.dumps(second) + '\n{"start": "c", "pipe')
    assert viz.last_run(tmp_path) == second
    picture = viz.make_picture("t", ["ingest", "other"], {}, {}, viz.last_run(tmp_path))
    assert viz.status_of(picture, "ingest") == ("failed", "\u2717 failed \u00b7 0.25 s")
    assert viz.status_of(picture, "other") == ("", "not in the last run")
    alone = viz.html(viz.make_picture("t", ["ingest"], {"ingest": []}, {"ingest": [("raw", "a.csv", "path")]}))
    assert "<h1>t: 1 pipeline, 1 dataset</h1>" in alone and "No run recorded yet" in alone


def test_last_run_is_not_read_through_a_link(tmp_path, capsys):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "runs.jsonl").write_text(json.dumps({"pipelines": []}) + "\n")
    root = tmp_path / "project"
    root.mkdir()
    (root / "logs").symlink_to(elsewhere)
    assert viz.last_run(root) is None
    assert capsys.readouterr().err.startswith("warning: logs/runs.jsonl: ")
    (root / "logs").unlink()
    (root / "logs").mkdir()
    (root / "logs" / "runs.jsonl").symlink_to(elsewhere / "runs.jsonl")
    assert viz.last_run(root) is None
    assert capsys.readouterr().err == (
        "warning: logs/runs.jsonl: a symbolic link; the page shows no run (piperack reads nothing through a link)\n"
    )


def test_the_page_names_everything_escaped_and_allows_only_its_own_script_and_style():
    page = viz.html(generated())
    assert page.count("<script") == 1 and page.count("<style") == 1
    assert "&lt;script&gt;alert(&quot;p&quot;)&lt;/script&gt;" in page
    assert not re.search(r"\b(src|href)=", page), "the page loads something"
    assert re.findall(r"https?://[^\s\"']+", page) == ["http://www.w3.org/2000/svg"]
    policy = re.search(r'Content-Security-Policy" content="([^"]+)"', page).group(1)
    assert f"script-src '{viz._sha256(viz.SCRIPT)}'" in policy and "default-src 'none'" in policy


@pytest.mark.parametrize("picture", [three, generated], ids=["three", "fifty"])
def test_chromium_renders_every_pipeline_and_dataset(picture, tmp_path):
    picture = picture()
    page = tmp_path / "pipelines.html"
    page.write_text(viz.html(picture), encoding="utf-8")
    dom = Elements(dump_dom(page))
    assert [attrs for attrs, _, _ in dom.tags("html")][0].get("data-script") == "ran", "the page's script did not run"
    rows = {(parent["data-node"][0], text) for attrs, text, parent in dom.tags("th") if attrs.get("scope") == "row"}
    assert {text for kind, text in rows if kind == "p"} == set(picture.pipelines)
    assert {text for kind, text in rows if kind == "d"} == {d.name for d in picture.datasets}
    assert len(dom.tags("script")) == 1 and not dom.tags("img")
    drawn = [attrs for attrs, _, _ in dom.tags("g") if "node" in attrs.get("class", "").split()]
    assert len(drawn) == len(picture.pipelines) + len(picture.datasets)
    png = screenshot(page, tmp_path / "pipelines.png")
    assert png.stat().st_size > 10_000
