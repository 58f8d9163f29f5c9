"""Issue 23's goals in one run, each as a ratio against its floor, measured side by side.

- ingest, 10M rows (goal 1): `invoke run --pipeline ingest` on a generated 10,000,000-row CSV against a
  Python process loading the same file into DuckDB with read_csv: time, and peak memory of the whole
  process tree (invoke and the runner it starts);
- ingest, 1M rows (goal 2): the same on the kit's benchmark shape and on a simpler one (numbers,
  short strings, ISO dates);
- memory as the input grows (goal 1): the pipeline once at each of --sizes rows;
- package and pull (goal 4): `invoke package --all` / `invoke pull --all` of 50 pipelines against
  `tar czf` / `tar xzf` of the same files (benchmarks.bench_floors);
- build-reqs (goal 5): `invoke build-reqs` against `uv pip compile` of the same requirements.in with
  the same options (benchmarks.bench_reqs' resolver command), both against the same local index.

Every command runs as a whole process after one untimed warm-up, alternating with its floor, --runs
times (median, range beside it). Before any ingest time is reported, the table the pipeline wrote is
checked against the generator's own list of the rows it must keep: the same number of rows, the same
column types, the same values (a hash of every row, summed), so a faster ingest that loses or
changes a row reports an error instead of a time.
Usage: python -m benchmarks.bench_scale [--runs 3] [--rows 1000000] [--big 10000000]
       [--sizes 1000000,10000000,30000000] [--only ingest,sizes,package,pull,reqs] [--no-write]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.bench_ingest import FLOOR, LAUNCHER, cities, random_days, with_flaws
from benchmarks.report import write_section
from scripts import kitlib

PAGE = os.sysconf("SC_PAGE_SIZE")
GOALS = {"big": 2.0, "big_mb": 1024, "kit": 1.5, "simple": 1.5, "package": 1.3, "pull": 1.5, "reqs": 1.3}
SHAPES = {
    # name: (header, column types, required columns, DuckDB types of the table)
    "kit": (
        "City Name,Country,Population,Area (km2),Founded",
        {"city_name": "string", "country": "string", "population": "int", "area_km2": "float", "founded": "date"},
        ["city_name", "country", "population"],
        "city_name VARCHAR, country VARCHAR, population BIGINT, area_km2 DOUBLE, founded TIMESTAMP",
    ),
    "simple": (
        "id,code,amount,quantity,day",
        {"id": "int", "code": "string", "amount": "float", "quantity": "int", "day": "date"},
        ["id", "quantity"],
        "id BIGINT, code VARCHAR, amount DOUBLE, quantity BIGINT, day TIMESTAMP",
    ),
}
CHUNK = 1_000_000


def _chunk(shape: str, rows: int, seed: int, offset: int):
    """One generated chunk: (the CSV's frame, the kept rows' frame), with bench_ingest.with_flaws'
    invalid and duplicate rows."""
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)
    days = random_days(rng, rows)
    if shape == "kit":
        return with_flaws(cities(rng, rows, founded=days), rng, "Population")
    codes = np.array(["ab", "cd", "ef", "gh", "ij", "kl"])
    frame = pd.DataFrame(
        {
            "id": np.arange(offset, offset + rows).astype(str),
            "code": codes[rng.integers(0, len(codes), rows)],
            "amount": np.round(rng.uniform(0, 1000, rows), 3),
            "quantity": rng.integers(0, 100, rows).astype(str),
            "day": days,
        }
    )
    return with_flaws(frame, rng, "quantity")


def make_csv(path: Path, expected: Path, rows: int, shape: str) -> None:
    """The CSV at ``path`` and, at ``expected``, the rows the pipeline must keep (as plain text)."""
    header = SHAPES[shape][0]
    with open(path, "w") as raw, open(expected, "w") as keep:
        raw.write(header + "\n")
        keep.write(header + "\n")
        for start in range(0, rows, CHUNK):
            size = min(CHUNK, rows - start)
            frame, kept = _chunk(shape, size, 42 + start // CHUNK, start)
            frame.to_csv(raw, index=False, header=False)
            kept.to_csv(keep, index=False, header=False)


CHECK = """
import sys, duckdb
con = duckdb.connect(sys.argv[1], read_only=True)
con.execute("SET enable_progress_bar = false")
schema = ", ".join(f"{n} {t}" for n, t, *_ in con.execute(f'DESCRIBE "{sys.argv[2]}"').fetchall())
names = [n for n, t, *_ in con.execute(f'DESCRIBE "{sys.argv[2]}"').fetchall()]
types = dict(zip(names, [t for _, t in (c.split(" ") for c in sys.argv[4].split(", "))]))
cols = ", ".join(names)
got = con.execute(f'SELECT count(*), sum(hash({cols})::HUGEINT) FROM "{sys.argv[2]}"').fetchone()
wanted = con.execute(
    f"SELECT count(*), sum(hash({cols})::HUGEINT) FROM read_csv(?, header = true, columns = {types!r}, "
    "auto_detect = false)", [sys.argv[3]]).fetchone()
print(schema)
print(got[0], got[1] == wanted[1], wanted[0])
"""


def check_table(python: Path, database: Path, table: str, expected: Path, schema: str, env: dict) -> int:
    """The table's row count, after checking its types, its rows and their values against ``expected``."""
    cmd = [str(python), "-c", CHECK, str(database), table, str(expected), schema]
    out = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if out.returncode:
        raise SystemExit(f"error: cannot check {table} in {database}: {out.stderr[-2000:]}")
    found, counts = out.stdout.splitlines()
    rows, same, wanted = counts.split()
    if found != schema or same != "True" or rows != wanted:
        raise SystemExit(
            f"error: the pipeline's table is not the expected one: {rows} rows ({found}), values "
            f"{'the same' if same == 'True' else 'different'}; expected {wanted} rows ({schema})"
        )
    return int(rows)


def tree_run(cmd, cwd, env) -> tuple[float, float, str]:
    """Run ``cmd``: (wall seconds, peak resident memory in MiB of its whole process tree, stderr).

    The tree's resident sets are summed every 20 ms (processes that run side by side count together);
    the kernel's high-water mark of the largest process (wait4, through bench_ingest's small
    launcher, so the figure is not the benchmark's own) is the least that figure can be."""
    err = tempfile.TemporaryFile()
    launcher = [sys.executable, "-S", "-c", LAUNCHER, *map(str, cmd)]
    proc = subprocess.Popen(launcher, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=err)
    peak = 0
    while proc.poll() is None:
        peak = max(peak, _tree_rss(proc.pid))
        time.sleep(0.02)
    err.seek(0)
    stderr, _, last = err.read().decode(errors="replace").rpartition("\npeak-rss-kib ")
    if proc.returncode or not last:
        raise SystemExit(f"benchmark command failed: {' '.join(map(str, cmd))}\n{stderr[-3000:]}")
    kib, wall = last.split()
    return float(wall), max(peak, int(kib) * 1024) / 2**20, stderr


def _tree_rss(pid: int) -> int:
    total, todo = 0, [pid]
    while todo:
        current = todo.pop()
        try:
            with open(f"/proc/{current}/statm") as f:
                total += int(f.read().split()[1]) * PAGE
            for task in os.listdir(f"/proc/{current}/task"):
                with open(f"/proc/{current}/task/{task}/children") as f:
                    todo += [int(child) for child in f.read().split()]
        except (FileNotFoundError, ProcessLookupError):
            continue
    return total


def alternate(first, second, runs: int) -> tuple[list, list]:
    """Each command once untimed, then ``runs`` times each, alternating."""
    first(), second()
    ours, floors = [], []
    for _ in range(runs):
        ours.append(first())
        floors.append(second())
    return ours, floors


def summary(ours: list, floors: list) -> dict:
    seconds = [r[0] for r in ours]
    floor_seconds = [r[0] for r in floors]
    return {
        "ours": statistics.median(seconds),
        "ours_range": (min(seconds), max(seconds)),
        "floor": statistics.median(floor_seconds),
        "floor_range": (min(floor_seconds), max(floor_seconds)),
        "ours_mb": statistics.median(r[1] for r in ours),
        "floor_mb": statistics.median(r[1] for r in floors),
    }


class Ingest:
    """A baked project whose ingest pipeline reads generated CSVs, and the DuckDB floor beside it."""

    def __init__(self, work: Path):
        self.work = work
        self.project = kitlib.bake(work)
        self.venv = kitlib.project_venv(self.project)
        self.python = self.venv / "bin" / "python"
        self.env = kitlib.invoke_env(self.venv)
        self.env.pop("PYTHONDONTWRITEBYTECODE", None)  # a user's shell: bytecode written once, then reused

    def prepare(self, shape: str, rows: int) -> tuple[Path, Path]:
        csv, expected = self.work / f"{shape}-{rows}.csv", self.work / f"{shape}-{rows}.expected.csv"
        if not csv.exists():
            make_csv(csv, expected, rows, shape)
        _, columns, required, _ = SHAPES[shape]
        lines = [f"source: {csv}", "table: bench", "columns:"]
        lines += [f"  {name}: {kind}" for name, kind in columns.items()]
        lines.append(f"required: [{', '.join(required)}]")
        (self.project / "conf" / "base" / "parameters" / "ingest.yml").write_text("\n".join(lines) + "\n")
        return csv, expected

    def pipeline(self):
        cmd = [str(self.venv / "bin" / "invoke"), "run", "--pipeline", "ingest"]
        return tree_run(cmd, self.project, self.env)

    def floor(self, csv: Path):
        return tree_run([str(self.python), "-c", FLOOR, str(csv), str(self.work / "floor.duckdb")], self.work, self.env)

    def check(self, shape: str, expected: Path) -> int:
        database = self.project / "data" / "ingest.duckdb"
        return check_table(self.python, database, "bench", expected, SHAPES[shape][3], self.env)

    def ratio(self, shape: str, rows: int, runs: int) -> dict:
        csv, expected = self.prepare(shape, rows)
        ours, floors = alternate(self.pipeline, lambda: self.floor(csv), runs)
        return summary(ours, floors) | {
            "rows": self.check(shape, expected),
            "size_mb": csv.stat().st_size / 1e6,
            "steps": ours[-1][2],
        }

    def once(self, shape: str, rows: int) -> dict:
        csv, expected = self.prepare(shape, rows)
        wall, mb, _ = self.pipeline()
        print(f"  invoke run: {wall:.1f} s, peak {mb:,.0f} MiB", flush=True)
        kept = self.check(shape, expected)
        floor_wall, floor_mb, _ = self.floor(csv)
        for path in (csv, expected):
            path.unlink()
        return {"rows": rows, "kept": kept, "ours": wall, "ours_mb": mb, "floor": floor_wall, "floor_mb": floor_mb}


def reqs_ratio(work: Path, runs: int) -> dict:
    """`invoke build-reqs` in a generated project against the exact `uv pip compile` it runs
    (piperack.buildreqs.resolver_command), with the same uv, the same environment and a warm cache;
    the pins of both are checked to be the same."""
    from piperack import buildreqs

    project = kitlib.bake(work)
    venv = kitlib.project_venv(project)
    env = kitlib.invoke_env(venv) | {"UV_CACHE_DIR": str(work / "uv-cache")}
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    python = venv / "bin" / "python"
    floor_out = work / "floor-requirements.txt"
    uv_cmd = buildreqs.resolver_command("uv", [str(venv / "bin" / "uv")], "requirements.in", str(floor_out))
    uv_cmd[uv_cmd.index("--python") + 1] = str(python)  # the project's Python, as build-reqs runs it

    def ours():
        return tree_run([venv / "bin" / "invoke", "build-reqs"], project, env)

    pinned = (project / "requirements.txt").read_text()

    def floor():  # the current pins are the preferences, as build-reqs gives them to uv
        floor_out.write_text(pinned)
        return tree_run(uv_cmd, project, env)

    mine, floors = alternate(ours, floor, runs)
    ours_pins = buildreqs.pins((project / "requirements.txt").read_text())
    if ours_pins != buildreqs.pins(floor_out.read_text()):
        raise SystemExit("error: invoke build-reqs and uv pip compile pinned different versions")
    shown = ["uv", *uv_cmd[1:]]
    shown[shown.index("--python") + 1] = "<venv>/bin/python"
    shown[shown.index("--output-file") + 1] = "<tmp>/requirements.txt"
    return summary(mine, floors) | {"floor_command": " ".join(shown), "pins": len(ours_pins)}


class Startup:
    """invoke's own start-up (`python -c "import invoke"` in a generated project's virtualenv), timed
    right after each goal's runs: the least any `invoke <task>` adds to the work it does, so
    ``(floor + start-up) / floor`` is the best ratio a task run through invoke can reach."""

    def __init__(self, work: Path, runs: int):
        self.venv = kitlib.project_venv(kitlib.bake(work))
        self.env = kitlib.invoke_env(self.venv)
        self.env.pop("PYTHONDONTWRITEBYTECODE", None)
        self.work, self.runs = work, runs

    def beside(self, result: dict) -> dict:
        cmd = [str(self.venv / "bin" / "python"), "-c", "import invoke"]
        times = [tree_run(cmd, self.work, self.env)[0] for _ in range(self.runs + 1)][1:]
        return result | {"startup": statistics.median(times)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3, help="timed runs of each side (median reported)")
    parser.add_argument("--rows", type=int, default=1_000_000, help="rows of the small ingest (goal 2)")
    parser.add_argument("--big", type=int, default=10_000_000, help="rows of the large ingest (goal 1)")
    parser.add_argument("--sizes", default="1000000,10000000,30000000", help="rows for memory as input grows")
    parser.add_argument("--n", type=int, default=50, help="pipelines packaged and pulled (goal 4)")
    parser.add_argument("--only", default="ingest,sizes,package,pull,reqs", help="which goals to measure")
    parser.add_argument("--no-write", action="store_true", help="print only; leave docs/benchmarks.md alone")
    args = parser.parse_args()
    only = set(args.only.split(","))
    results: dict = {}
    with tempfile.TemporaryDirectory(prefix="piperack-bench-scale-") as tmp:
        work = Path(tmp)
        startup = Startup(work / "startup", args.runs)
        if only & {"ingest", "sizes"}:
            ingest = Ingest(work / "ingest")
        if "ingest" in only:
            for shape in ("kit", "simple"):
                print(f"ingest {shape}, {args.rows:,} rows …", flush=True)
                results[shape] = startup.beside(ingest.ratio(shape, args.rows, args.runs))
            print(f"ingest kit, {args.big:,} rows …", flush=True)
            results["big"] = startup.beside(ingest.ratio("kit", args.big, args.runs))
        if "sizes" in only:
            results["sizes"] = []
            for rows in (int(n) for n in args.sizes.split(",") if n):
                print(f"ingest kit once, {rows:,} rows …", flush=True)
                results["sizes"].append(ingest.once("kit", rows))
        if "package" in only or "pull" in only:
            from benchmarks import bench_floors

            if "package" in only:
                print(f"package --all, N={args.n} …", flush=True)
                results["package"] = bench_floors.package_ratio(work / "package", args.n, args.runs)
            if "pull" in only:
                print(f"pull --all, N={args.n} …", flush=True)
                results["pull"] = bench_floors.pull_ratio(work / "pull", args.n, args.runs)
        if "reqs" in only:
            print("build-reqs …", flush=True)
            results["reqs"] = startup.beside(reqs_ratio(work / "reqs", args.runs))
    body = report(args, results)
    print(body)
    if not args.no_write:
        write_section("scale", body)


def report(args, results: dict) -> str:
    command = "python -m benchmarks.bench_scale " + " ".join(
        f"--{k} {v}" for k, v in (("runs", args.runs), ("rows", args.rows), ("big", args.big), ("sizes", args.sizes))
    )
    if args.only != parser_default("only"):
        command += f" --only {args.only}"
    lines = [
        "## Issue 23: scale, each goal against its floor in one run",
        "",
        f"`{command}` (`bash scripts/kit.sh bench --name scale` runs it with these defaults) — each",
        "command as a whole process, after one untimed warm-up, alternating with its floor run by run;",
        f"median of {args.runs} runs, range in brackets. Peak memory: the resident sets of the whole process",
        "tree (invoke and the runner it starts) summed every 20 ms, at least the kernel's high-water mark.",
        "",
        "| goal | piperack | the floor | **ratio** | goal | | least through invoke |",
        "|---|---:|---:|---:|---:|---|---:|",
    ]
    verdicts = []

    def row(label, key, r, floor_label, unit="s"):
        ratio = r["ours"] / r["floor"]
        met = ratio <= GOALS[key]
        verdicts.append(met)
        ours = f"{r['ours']:.2f} s ({r['ours_range'][0]:.2f}–{r['ours_range'][1]:.2f})"
        floor = f"{r['floor']:.2f} s ({r['floor_range'][0]:.2f}–{r['floor_range'][1]:.2f})"
        if "ours_mb" in r:
            ours += f", peak {r['ours_mb']:,.0f} MiB"
            floor += f", peak {r['floor_mb']:,.0f} MiB"
        least = (r["floor"] + r["startup"]) / r["floor"] if "startup" in r else None
        verdict = "met" if met else "NOT met"
        if not met and least is not None and least > GOALS[key]:
            verdict += ": out of reach through invoke"
        bound = f"{least:.2f}x (start-up {r['startup']:.2f} s)" if least is not None else ""
        lines.append(
            f"| {label} | {ours} | {floor_label}: {floor} | **{ratio:.2f}x** | ≤ {GOALS[key]:g}x | {verdict} | {bound} |"
        )

    floor_label = "DuckDB `read_csv` of the file into a table"
    names = {"kit": "the kit's CSV", "simple": "a simpler CSV (numbers, short strings, ISO dates)"}
    if "big" in results:
        r = results["big"]
        row(f"1. `invoke run --pipeline ingest`, {args.big:,} rows ({r['size_mb']:,.0f} MB)", "big", r, floor_label)
        met = r["ours_mb"] < GOALS["big_mb"]
        verdicts.append(met)
        lines.append(
            f"| 1. … its peak memory (whole process tree) | {r['ours_mb']:,.0f} MiB | | | < 1 GiB | "
            f"{'met' if met else 'NOT met'} | |"
        )
    for shape in ("kit", "simple"):
        if shape in results:
            r = results[shape]
            label = f"2. `invoke run --pipeline ingest`, {args.rows:,} rows, {names[shape]} ({r['size_mb']:.0f} MB)"
            row(label, shape, r, floor_label)
    if "package" in results:
        row(
            f"4. `invoke package --all`, {args.n} pipelines",
            "package",
            results["package"],
            "`tar czf` of the same files",
        )
    if "pull" in results:
        row(f"4. `invoke pull --all`, those {args.n} sdists", "pull", results["pull"], "`tar xzf` of the same archives")
    if "reqs" in results:
        r = results["reqs"]
        row("5. `invoke build-reqs` (the generated project)", "reqs", r, f"`{r['floor_command']}`")
    if "sizes" in results:
        lines += [
            "",
            "Memory as the input grows (goal 1: flat), the pipeline once at each size, the floor beside it:",
            "",
            "| rows in the CSV | rows kept | `invoke run` | peak memory (process tree) | DuckDB read_csv | its peak |",
            "|---:|---:|---:|---:|---:|---:|",
        ]
        for s in results["sizes"]:
            lines.append(
                f"| {s['rows'] + s['rows'] // 100:,} | {s['kept']:,} | {s['ours']:.1f} s | {s['ours_mb']:,.0f} MiB | "
                f"{s['floor']:.1f} s | {s['floor_mb']:,.0f} MiB |"
            )
    lines += [
        "",
        "What changed for goals 1–3 (the template's `pipelines/ingest/nodes.py`): pandas used to read the",
        "whole CSV, type it, drop invalid rows and duplicates, then hand the frame to DuckDB — about 3 GB",
        "and 5x DuckDB's time at 10 million rows. Now DuckDB reads the CSV as text and types it in SQL",
        "with pandas' rules (exact integers, whole floats such as `1e3` as integers, pandas' missing-value",
        "markers, dates of any year), streaming into a staging table within `MEMORY_LIMIT` (500 MB, spilled",
        "to disk beyond); duplicates are found among rows whose hash repeats only, and the staging table",
        "replaces the old one in the same transaction. pandas reads only the rare date spellings DuckDB",
        "does not (a year alone, `10661014`, a UTC offset), and runs a team's own `step=` per chunk.",
        "`src/tests/pipelines/ingest/test_nodes.py` and tests/test_example_pandas.py (pandas 2.1, the",
        "requirement floors and the newest) check the values; one change: a `string` column keeps its text",
        "as written (`007`, where pandas' type guess made it `7`).",
        "",
        "The last column is the least any task run through invoke can reach: the floor plus invoke's own",
        'start-up (`python -c "import invoke"` in the generated project\'s virtualenv, timed right after',
        "that goal's runs). invoke 3 imports unittest.mock, asyncio and importlib.metadata before it reads",
        "a task, and `invoke` is the command the projects are driven by; where that sum is above the goal,",
        "no change inside piperack can meet it, and the row says so. It is given where piperack runs the",
        "floor's own work inside the task (the same `uv pip compile`; DuckDB reading the same file), not for",
        "package and pull, whose floor is 50 separate `tar` processes that piperack need not repeat.",
        "",
        "Goal 2, beyond invoke's start-up, found with `python -X importtime` and cProfile in a generated",
        "project: a second interpreter for the runner (Python, argparse, logging, PyYAML, the runner;",
        "OmegaConf is imported only when a value has `${...}` to resolve), then the checks the example makes",
        "and the floor does not (every value typed with pandas' rules, invalid rows counted, duplicates",
        "found, the previous table kept until the new one is whole). The usual spellings of an int or a",
        "date (`123`, `2024-01-31`) are typed by a cast alone, checked by writing the value back; the",
        "patterns run only on the other spellings. Running the runner inside invoke's process would save",
        "the second interpreter, but a second Ctrl-C could then no longer stop a pipeline stuck in native",
        "code, as it does today: not done.",
        "",
        "Goal 4, pull, found with cProfile of one `invoke pull --all`: besides invoke's start-up, most of",
        "the time is CPython's own parser reading each file that names the package (the rewrite of its",
        "imports and the check that no file CPython refuses reaches libcst both need the tree), then",
        "reading the archives, the record in pyproject.toml and writing the files. The rewrite now walks",
        "only the parts of a tree whose lines name the package, and planning shares the packages between",
        "two processes as they free up.",
        "",
        "Goal 5: `invoke build-reqs` runs the same `uv pip compile`; besides invoke's start-up it reads",
        "and checks requirements.in and requirements.txt (packaging) and writes the header and the pins.",
    ]
    checked = [results[k]["rows"] for k in ("big", "kit", "simple") if k in results]
    lines.append("")
    if checked:
        lines.append(
            "Each ingest table was checked before its time was reported: the rows the generator says must stay "
            f"(invalid ones and duplicates dropped; {', '.join(f'{n:,}' for n in checked)} rows), the column types "
            "of the pipeline before this work, and every value (a summed hash of the rows)."
        )
    lines += [
        f"1-minute load average at the end: {os.getloadavg()[0]:.2f}. "
        f"{'All goals met' if all(verdicts) else 'Not every goal met'} in this run.",
    ]
    return "\n".join(lines)


def parser_default(name: str) -> str:
    return {"only": "ingest,sizes,package,pull,reqs"}[name]


if __name__ == "__main__":
    main()
