"""``invoke viz``: the project's pipelines as one offline HTML page, or as Mermaid text.

The picture shows every pipeline, the datasets its catalog names (one node per dataset: a path
named by two pipelines links them), the declared order (conf/base/pipelines.yml's ``depends_on``)
and the last run's status and duration per pipeline (the last line of logs/runs.jsonl).

- ``read(project, env) -> Picture``: the thin adapter over graph.py (pipelines, order, datasets)
  and the run record. Everything after it works on a ``Picture`` alone.
- ``layout(picture) -> Layout``: positions computed here, no JavaScript layout: pipelines in
  columns by topological depth (a pipeline one column right of its deepest upstream), each
  dataset in the column after the first pipeline naming it, rows ordered by their neighbours'.
- ``html(picture)``: one self-contained page: inline CSS, SVG and a few lines of JavaScript
  (hover highlights a node's links), nothing fetched; a Content-Security-Policy allows only that
  CSS and script (by hash) and no connection. Every name is HTML-escaped.
- ``mermaid(picture)``: ``flowchart LR`` text; names are labels in quotes with Mermaid's entity
  codes, never identifiers, so a hostile name cannot add nodes, links or directives.
- ``viz(project, ...)``: writes the file atomically (inside the project through the write
  session; default build/pipelines.html), or prints Mermaid.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from .errors import PiperackError
from .yamlload import load_json

FORMATS = ("html", "mermaid")
DEFAULT_OUTPUT = {"html": "build/pipelines.html", "mermaid": "-"}  # "-": standard output
RUNS_FILE = "logs/runs.jsonl"
RUN_TAIL_BYTES = 1024 * 1024  # the last run is the last line: only the file's tail is read
STATUSES = ("success", "failed", "skipped")

# Geometry of the drawing, in SVG user units (pixels at 100 %).
BOX_W, BOX_H, DATA_H = 190, 44, 30
COL_W, ROW_H, MARGIN = 236, 56, 24  # COL_W: one column (pipelines or datasets) and the gap after it
LABEL_CHARS = 21  # longer names are clipped with an ellipsis in the drawing (whole in its tooltip and tables)


@dataclass
class Dataset:
    """One dataset node: ``name`` identifies it (a normalised path, URL or table)."""

    name: str
    kind: str = "path"
    users: list[tuple[str, str]] = field(default_factory=list)  # (pipeline, catalog key)


@dataclass
class Picture:
    """What the picture shows, read from the project (or made by a test)."""

    title: str
    pipelines: list[str]  # in running order
    depends_on: dict[str, list[str]]  # pipeline -> its direct upstreams
    datasets: list[Dataset]
    run: dict | None = None  # the last run record, as logs/runs.jsonl holds it
    results: dict[str, dict] = field(default_factory=dict)  # pipeline -> its entry in that record


@dataclass
class Node:
    id: str  # p<N> or d<N>: names never become identifiers
    name: str
    kind: str  # pipeline | dataset
    col: int = 0
    row: float = 0.0
    x: float = 0.0
    y: float = 0.0
    links: list[str] = field(default_factory=list)


@dataclass
class Layout:
    nodes: dict[str, Node]  # by id
    order: list[str]  # pipeline ids then dataset ids, as listed on the page
    edges: list[tuple[str, str]]  # upstream pipeline id -> pipeline id
    uses: list[tuple[str, str]]  # dataset id -- pipeline id
    width: float
    height: float


def make_picture(
    title: str,
    order: list[str],
    depends_on: dict[str, list[str]],
    by_pipeline: dict[str, list[tuple[str, str, str]]],
    run: dict | None = None,
) -> Picture:
    """A Picture from plain data: ``by_pipeline`` maps a pipeline to its (key, dataset name, kind)."""
    shared: dict[str, Dataset] = {}
    for pipeline in order:
        for key, name, kind in by_pipeline.get(pipeline, []):
            shared.setdefault(name, Dataset(name, kind)).users.append((pipeline, key))
    results = {}
    if run:
        for entry in run.get("pipelines") or []:
            if isinstance(entry, dict) and isinstance(entry.get("name"), str):
                results[entry["name"]] = entry
    return Picture(title, list(order), dict(depends_on), list(shared.values()), run, results)


# --- reading the project ---------------------------------------------------------------------------


def read(project, env: str) -> Picture:
    """The project's pipelines, their order and datasets in ``env``, and its last run."""
    from . import graph

    pipelines = graph.load(project, env)
    by_pipeline = {
        name: [(d.key, d.name, d.kind) for d in found] for name, found in graph.datasets(project, env).items()
    }
    title = str(project.pyproject_data.get("project", {}).get("name") or project.package)
    return make_picture(title, pipelines.order(), pipelines.depends_on, by_pipeline, last_run(project.root))


def last_run(root: Path) -> dict | None:
    """The last complete JSON object line of logs/runs.jsonl, or None (no file, no run yet).

    Only the tail is read; a line cut short (a run still writing, a full disk) is passed over. A
    link (the file, or logs/ itself) is not followed: a warning, and no run."""
    from . import ui
    from .fsutil import confined

    try:
        path = confined(Path(root), RUNS_FILE)  # no linked folder on the way
        if path.is_symlink():
            raise PiperackError(f"{RUNS_FILE}: a symbolic link")
    except PiperackError as exc:
        ui.warn(f"{exc}; the page shows no run (piperack reads nothing through a link)")
        return None
    if not path.is_file():
        return None
    try:
        with open(path, "rb") as handle:
            size = handle.seek(0, 2)
            handle.seek(max(0, size - RUN_TAIL_BYTES))
            tail = handle.read()
    except OSError as exc:
        raise PiperackError(f"{RUNS_FILE}: cannot read: {exc.strerror}") from None
    for line in reversed(tail.splitlines()):
        try:
            record = load_json(line)
        except (ValueError, UnicodeDecodeError):
            continue
        if isinstance(record, dict) and isinstance(record.get("pipelines"), list):
            return record
    return None


# --- layout ----------------------------------------------------------------------------------------


def depths(order: list[str], depends_on: dict[str, list[str]]) -> dict[str, int]:
    """Topological depth: 0 without upstreams, else one more than the deepest upstream."""
    depth: dict[str, int] = {}
    for name in order:  # running order: upstreams come first
        depth[name] = 1 + max((depth[up] for up in depends_on.get(name, []) if up in depth), default=-1)
    return depth


def layout(picture: Picture) -> Layout:
    """Columns by depth (pipelines even, datasets odd), rows by the mean row of the neighbours."""
    depth = depths(picture.pipelines, picture.depends_on)
    nodes: dict[str, Node] = {}
    pid = {name: f"p{i}" for i, name in enumerate(picture.pipelines)}
    for name in picture.pipelines:
        nodes[pid[name]] = Node(pid[name], name, "pipeline", col=2 * depth[name])
    edges = [(pid[up], pid[name]) for name in picture.pipelines for up in picture.depends_on.get(name, []) if up in pid]
    uses = []
    for i, dataset in enumerate(picture.datasets):
        users = [pid[p] for p, _ in dataset.users if p in pid]
        node = Node(f"d{i}", dataset.name, "dataset", col=2 * min(depth[nodes[u].name] for u in users) + 1)
        nodes[node.id] = node
        uses += [(node.id, u) for u in dict.fromkeys(users)]
    for a, b in edges + uses:
        nodes[a].links.append(b)
        nodes[b].links.append(a)
    columns: dict[int, list[Node]] = {}
    for node in nodes.values():
        columns.setdefault(node.col, []).append(node)
    for col in sorted(columns):  # left to right: place each column by its left neighbours' rows
        placed = columns[col]

        def key(node: Node, col=col) -> tuple:
            left = [nodes[n].row for n in node.links if nodes[n].col < col]
            return (sum(left) / len(left) if left else -1.0, node.kind, node.name)

        placed.sort(key=key)
        for row, node in enumerate(placed):
            node.row = row
    tallest = max((len(c) for c in columns.values()), default=0)
    for col, placed in columns.items():
        offset = (tallest - len(placed)) / 2
        for node in placed:
            node.x = MARGIN + col * COL_W
            node.y = MARGIN + (node.row + offset) * ROW_H
    width = MARGIN * 2 + max(columns, default=0) * COL_W + BOX_W
    height = MARGIN * 2 + max(tallest - 1, 0) * ROW_H + BOX_H
    order = [pid[n] for n in picture.pipelines] + [f"d{i}" for i in range(len(picture.datasets))]
    return Layout(nodes, order, edges, uses, width, height)


# --- Mermaid ---------------------------------------------------------------------------------------

_MERMAID_ENTITIES = {'"': "#quot;", "#": "#35;", "&": "#amp;", "<": "#lt;", ">": "#gt;", "`": "#96;", ";": "#59;"}


def mermaid_label(text: str) -> str:
    """``text`` safe inside a quoted Mermaid label: its syntax characters as entity codes, control
    characters (a newline would start a statement) as spaces."""
    return "".join(_MERMAID_ENTITIES.get(ch, ch if ch.isprintable() else " ") for ch in text)


_MERMAID_WORDS = {
    "end",
    "subgraph",
    "graph",
    "flowchart",
    "style",
    "classdef",
    "class",
    "click",
    "linkstyle",
    "direction",
    "call",
    "href",
    "callback",
    "default",
    "interpolate",
    "acctitle",
    "accdescr",
    "tb",
    "td",
    "bt",
    "rl",
    "lr",
}


def mermaid_id(node: Node) -> str:
    """A pipeline's own name when it is a plain identifier Mermaid reads as one (``ingest --> aggregate``
    reads well in a pull request), else the node's p<N>/d<N>."""
    name = node.name
    plain = re.fullmatch(r"[A-Za-z][A-Za-z0-9_]*", name) and not re.fullmatch(r"[pd][0-9]+", name)
    return name if node.kind == "pipeline" and plain and name.casefold() not in _MERMAID_WORDS else node.id


def mermaid(picture: Picture) -> str:
    """``flowchart LR``: pipelines as boxes, datasets as cylinders, ``-->`` the declared order and
    ``-.-`` a pipeline's catalog naming a dataset. Structure only (no run status: it goes in READMEs)."""
    plan = layout(picture)
    ids = {node_id: mermaid_id(node) for node_id, node in plan.nodes.items()}
    lines = ["flowchart LR"]
    for node_id in plan.order:
        node = plan.nodes[node_id]
        label = mermaid_label(node.name)
        shape = f'["{label}"]' if node.kind == "pipeline" else f'[("{label}")]'
        lines.append(f"    {ids[node_id]}{shape}")
    lines += [f"    {ids[a]} --> {ids[b]}" for a, b in plan.edges]
    lines += [f"    {ids[b]} -.- {ids[a]}" for a, b in plan.uses]
    return "\n".join(lines) + "\n"


# --- HTML ------------------------------------------------------------------------------------------

CSS = """
body { font: 14px/1.4 system-ui, sans-serif; margin: 0; color: #1d2330; background: #f7f8fa; }
header, section { padding: 12px 24px; }
h1 { font-size: 20px; margin: 0 0 4px; } h2 { font-size: 16px; margin: 16px 0 8px; }
.run { margin: 0; color: #3c4454; }
figure { margin: 0; padding: 0 24px; overflow: auto; }
svg { background: #fff; border: 1px solid #d8dce3; border-radius: 6px; }
.node rect { stroke: #5b6475; stroke-width: 1.2; fill: #fff; }
.node.dataset rect { fill: #eef3fb; stroke: #7d93b8; }
.node.success rect { fill: #e3f5e6; stroke: #2f8a43; }
.node.failed rect { fill: #fde4e1; stroke: #c0392b; stroke-width: 2; }
.node.skipped rect { fill: #eceef1; stroke: #8a93a3; stroke-dasharray: 4 3; }
.node text { font: 13px ui-monospace, monospace; fill: #1d2330; }
.node text.status { font: 11px system-ui, sans-serif; fill: #3c4454; }
.node:focus { outline: none; } .node:focus rect { stroke-width: 3; }
.edge { fill: none; stroke: #4a5568; stroke-width: 1.4; }
.use { fill: none; stroke: #7d93b8; stroke-width: 1; stroke-dasharray: 3 3; }
.focus .node:not(.hi), .focus .edge:not(.hi), .focus .use:not(.hi) { opacity: .2; }
table { border-collapse: collapse; background: #fff; }
th, td { border: 1px solid #d8dce3; padding: 3px 8px; text-align: left; vertical-align: top; }
th.name, td.name { font-family: ui-monospace, monospace; word-break: break-all; }
tr.hi { background: #fff6d6; }
.success { color: #1f6b31; } .failed { color: #a12d22; font-weight: 600; } .skipped { color: #5b6475; }
"""

SCRIPT = """
(function () {
  var body = document.body;
  document.documentElement.setAttribute("data-script", "ran");
  function clear() {
    body.classList.remove("focus");
    document.querySelectorAll(".hi").forEach(function (el) { el.classList.remove("hi"); });
  }
  function show(id) {
    clear();
    var node = document.getElementById("n-" + id);
    if (!node) { return; }
    body.classList.add("focus");
    var ids = [id].concat(node.getAttribute("data-links").split(" ").filter(Boolean));
    ids.forEach(function (other) {
      document.querySelectorAll('[data-node="' + other + '"]').forEach(function (el) { el.classList.add("hi"); });
    });
    document.querySelectorAll("[data-ends]").forEach(function (edge) {
      if (edge.getAttribute("data-ends").split(" ").indexOf(id) >= 0) { edge.classList.add("hi"); }
    });
  }
  document.querySelectorAll("[data-node]").forEach(function (el) {
    var id = el.getAttribute("data-node");
    el.addEventListener("mouseenter", function () { show(id); });
    el.addEventListener("focus", function () { show(id); });
    el.addEventListener("mouseleave", clear);
    el.addEventListener("blur", clear);
  });
})();
"""

_MARKS = {"success": "\u2713", "failed": "\u2717", "skipped": "\u2013"}


def _e(value) -> str:
    from html import escape

    return escape(str(value), quote=True)


def _sha256(text: str) -> str:
    import base64
    import hashlib

    return "sha256-" + base64.b64encode(hashlib.sha256(text.encode("utf-8")).digest()).decode("ascii")


def duration(seconds) -> str:
    if not isinstance(seconds, (int, float)) or isinstance(seconds, bool) or seconds < 0:
        return ""
    if seconds < 10:
        return f"{seconds:.2f} s"
    if seconds < 600:
        return f"{seconds:.1f} s"
    minutes, rest = divmod(round(seconds), 60)
    return f"{minutes} min {rest} s"


def status_of(picture: Picture, pipeline: str) -> tuple[str, str]:
    """(css class, text) of a pipeline's last run: ``success``, ``failed``, ``skipped``, or none."""
    result = picture.results.get(pipeline)
    if result is None:
        return ("", "not in the last run" if picture.run else "")
    status = result.get("status") if result.get("status") in STATUSES else "unknown"
    took = duration(result.get("seconds"))
    text = f"{_MARKS.get(status, '?')} {status}" + (f" \u00b7 {took}" if took else "")
    return (status if status in STATUSES else "", text)


def run_summary(picture: Picture) -> str:
    """One sentence about the last run (escaped), or that there is none yet."""
    run = picture.run
    if not run:
        return f"No run recorded yet ({RUNS_FILE} holds none): <code>invoke run</code> records one."
    counts: dict[str, int] = {}
    for entry in picture.results.values():
        counts[str(entry.get("status"))] = counts.get(str(entry.get("status")), 0) + 1
    parts = [f"{n} {status}" for status, n in sorted(counts.items())]
    when = " \u2192 ".join(str(run[k]) for k in ("start", "end") if run.get(k))
    commit = run.get("commit") or run.get("git_commit")
    details = [f"env {run['env']}" if run.get("env") else "", f"commit {str(commit)[:12]}" if commit else ""]
    text = f"Last run ({RUNS_FILE}): {when}" + "".join(f", {d}" for d in details if d) + ": " + ", ".join(parts)
    return _e(text) + "."


def _clip(text: str, tail: bool = False) -> str:
    if len(text) <= LABEL_CHARS:
        return text
    if not tail:
        return text[: LABEL_CHARS - 1] + "\u2026"
    end = text[-(LABEL_CHARS - 1) :]  # a path's end says most; cut at a folder when there is one
    return "\u2026" + (end[end.index("/") :] if "/" in end[:-1] else end)


def _svg_node(picture: Picture, node: Node) -> str:
    links = " ".join(dict.fromkeys(node.links))
    head = (
        f'<g class="node {node.kind}{{cls}}" id="n-{node.id}" data-node="{node.id}" data-links="{links}" tabindex="0">'
    )
    if node.kind == "pipeline":
        cls, text = status_of(picture, node.name)
        tip = node.name + (f" ({text})" if text else "")
        return (
            head.replace("{cls}", f" {cls}" if cls else "")
            + f"<title>{_e(tip)}</title>"
            + f'<rect x="{node.x:g}" y="{node.y:g}" width="{BOX_W}" height="{BOX_H}" rx="6"/>'
            + f'<text x="{node.x + 10:g}" y="{node.y + 18:g}">{_e(_clip(node.name))}</text>'
            + f'<text class="status" x="{node.x + 10:g}" y="{node.y + 35:g}">{_e(text)}</text></g>'
        )
    top = node.y + (BOX_H - DATA_H) / 2
    return (
        head.replace("{cls}", "")
        + f"<title>{_e(node.name)}</title>"
        + f'<rect x="{node.x:g}" y="{top:g}" width="{BOX_W}" height="{DATA_H}" rx="{DATA_H / 2:g}"/>'
        + f'<text x="{node.x + 12:g}" y="{top + 19:g}">{_e(_clip(node.name, tail=True))}</text></g>'
    )


def _curve(a: Node, b: Node) -> str:
    """A path from ``a``'s right side to ``b``'s left side (or back, when ``b`` is left of ``a``)."""
    if b.col < a.col:
        a, b = b, a
    x1, y1, x2, y2 = a.x + BOX_W, a.y + BOX_H / 2, b.x, b.y + BOX_H / 2
    mid = (x1 + x2) / 2
    return f"M{x1:g},{y1:g} C{mid:g},{y1:g} {mid:g},{y2:g} {x2:g},{y2:g}"


def svg(picture: Picture, plan: Layout) -> str:
    nodes = plan.nodes
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {plan.width:g} {plan.height:g}" '
        f'width="{plan.width:g}" height="{plan.height:g}" role="img" aria-label="pipelines and datasets">',
        '<defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" markerHeight="7" '
        'orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" fill="#4a5568"/></marker></defs>',
    ]
    for d, p in plan.uses:
        parts.append(f'<path class="use" data-ends="{d} {p}" d="{_curve(nodes[d], nodes[p])}"/>')
    for a, b in plan.edges:
        parts.append(
            f'<path class="edge" data-ends="{a} {b}" marker-end="url(#arrow)" d="{_curve(nodes[a], nodes[b])}"/>'
        )
    parts += [_svg_node(picture, nodes[node_id]) for node_id in plan.order]
    parts.append("</svg>")
    return "\n".join(parts)


def _tables(picture: Picture, plan: Layout) -> str:
    ids = {node.name: node.id for node in plan.nodes.values() if node.kind == "pipeline"}
    uses: dict[str, list[str]] = {name: [] for name in picture.pipelines}
    for dataset in picture.datasets:
        for pipeline, key in dataset.users:
            uses.setdefault(pipeline, []).append(f"{key}: {dataset.name}")
    rows = ["<tr><th>pipeline</th><th>runs after</th><th>datasets (catalog key: dataset)</th><th>last run</th></tr>"]
    for name in picture.pipelines:
        cls, text = status_of(picture, name)
        rows.append(
            f'<tr data-node="{ids[name]}"><th scope="row" class="name">{_e(name)}</th>'
            f'<td class="name">{"<br>".join(_e(up) for up in picture.depends_on.get(name, []))}</td>'
            f'<td class="name">{"<br>".join(_e(use) for use in uses[name])}</td>'
            f'<td class="{cls}">{_e(text)}</td></tr>'
        )
    data_rows = ["<tr><th>dataset</th><th>kind</th><th>named by (pipeline: catalog key)</th></tr>"]
    for i, dataset in enumerate(picture.datasets):
        named = "<br>".join(_e(f"{p}: {k}") for p, k in dataset.users)
        data_rows.append(
            f'<tr data-node="d{i}"><th scope="row" class="name">{_e(dataset.name)}</th><td>{_e(dataset.kind)}</td>'
            f'<td class="name">{named}</td></tr>'
        )
    return (
        f'<section><h2>Pipelines ({len(picture.pipelines)})</h2><table id="pipelines">\n'
        + "\n".join(rows)
        + f'\n</table></section>\n<section><h2>Datasets ({len(picture.datasets)})</h2><table id="datasets">\n'
        + "\n".join(data_rows)
        + "\n</table></section>"
    )


def _count(items: list, noun: str) -> str:
    return f"{len(items)} {noun}" + ("" if len(items) == 1 else "s")


def html(picture: Picture) -> str:
    """The whole page: nothing in it loads anything, and its policy forbids loading anything."""
    plan = layout(picture)
    policy = (
        f"default-src 'none'; style-src '{_sha256(CSS)}'; script-src '{_sha256(SCRIPT)}'; "
        "img-src data:; base-uri 'none'; form-action 'none'"
    )
    shared = sum(1 for d in picture.datasets if len({p for p, _ in d.users}) > 1)
    legend = (
        "Boxes are pipelines (green: succeeded, red: failed, grey dashed: skipped in the last run), "
        f"arrows the declared order (conf/base/pipelines.yml); pills are datasets ({shared} shared), "
        "dashed lines the catalogs naming them. Hover or tab to a node to see its links."
    )
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f'<meta http-equiv="Content-Security-Policy" content="{policy}">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{_e(picture.title)}: pipelines</title>\n<style>{CSS}</style>\n</head>\n<body>\n"
        f"<header><h1>{_e(picture.title)}: {_count(picture.pipelines, 'pipeline')}, "
        f"{_count(picture.datasets, 'dataset')}</h1>\n"
        f'<p class="run" id="run">{run_summary(picture)}</p></header>\n'
        f"<figure>\n{svg(picture, plan)}\n<figcaption>{_e(legend)}</figcaption>\n</figure>\n"
        f"{_tables(picture, plan)}\n<script>{SCRIPT}</script>\n</body>\n</html>\n"
    )


# --- the verb --------------------------------------------------------------------------------------


def viz(project, output: str | None = None, fmt: str = "html", env: str = "local") -> Path | None:
    """Write the picture: ``output`` (relative to the project root; ``-`` prints it), by default
    build/pipelines.html, or Mermaid on standard output. Returns the file written, if any."""
    import os
    import sys

    if fmt not in FORMATS:
        raise PiperackError(f"unknown --format {fmt!r}: choose html or mermaid")
    output = output or DEFAULT_OUTPUT[fmt]
    picture = read(project, env)
    text = html(picture) if fmt == "html" else mermaid(picture)
    if output == "-":
        sys.stdout.write(text)
        sys.stdout.flush()
        return None
    from .fsutil import write_output

    path = Path(os.path.abspath(Path(project.root) / output))
    write_output(project.root, "viz", path, text)
    return path
