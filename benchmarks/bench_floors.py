"""Issue 14's three ratios in one run, each against the physical floor of the same work.

- package: `invoke package --all` of N = 50 pipelines against one shell running `tar czf` once per
  package on exactly the files the packages hold (benchmarks.bench_package);
- pull: `invoke pull --all` of those kinds of sdists (N = 50 copies of the example pipeline) into a
  fresh project against one shell running `tar xzf` of each archive (benchmarks.bench_pull);
- ingest: `invoke run --pipeline ingest` on a 1,000,000-row CSV against a Python process loading
  the same file into DuckDB with read_csv, peak memory beside it (benchmarks.bench_ingest).

Every command runs as a whole process (start-up included), alternating with its floor run by run,
after one untimed warm-up; the median of --runs is reported with the range. The detailed tables
(profiles, Kedro, more sizes) come from each benchmark on its own.
Usage: python -m benchmarks.bench_floors [--runs 5] [--n 50] [--rows 1000000] [--no-write]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import tempfile
from pathlib import Path

from benchmarks import bench_ingest, bench_package, bench_pull
from benchmarks.report import write_section

GOALS = {"package": 2.0, "pull": 2.0, "ingest": 3.0}


def package_ratio(work: Path, n: int, runs: int) -> dict:
    ours = bench_package.bench_piperack(work, n, runs)
    return {
        "ours": ours["median"],
        "floor": ours["per_archive"],
        "ours_range": (min(ours["times"]), max(ours["times"])),
        "floor_range": (min(ours["per_archives"]), max(ours["per_archives"])),
    }


def pull_ratio(work: Path, n: int, runs: int) -> dict:
    sdists, venv = bench_pull.make_packages(work / "make", n)
    bench_pull.run_piperack(work / "warm", sdists, venv)
    bench_pull.tar_floor(work / "warm-tar", sdists)
    ours, floors = [], []
    for r in range(runs):
        ours.append(bench_pull.run_piperack(work / f"pull-{r}", sdists, venv))
        floors.append(bench_pull.tar_floor(work / "tar", sdists))
        shutil.rmtree(work / f"pull-{r}", ignore_errors=True)
    return {
        "ours": statistics.median(ours),
        "floor": statistics.median(floors),
        "ours_range": (min(ours), max(ours)),
        "floor_range": (min(floors), max(floors)),
    }


def ingest_ratio(work: Path, rows: int, runs: int) -> dict:
    m = bench_ingest.measure(work, rows, runs, extras=False)
    return {
        "ours": m["pipeline"],
        "floor": m["floor"],
        "ours_range": m["pipeline_range"],
        "floor_range": m["floor_range"],
        "ours_mb": m["pipeline_mb"],
        "floor_mb": m["floor_mb"],
        "rows": m["rows"],
        "schema": m["schema"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="timed runs of each side (median reported)")
    parser.add_argument("--n", type=int, default=50, help="pipelines packaged and pulled")
    parser.add_argument("--rows", type=int, default=1_000_000, help="rows of the ingested CSV")
    parser.add_argument("--no-write", action="store_true", help="print only; leave docs/benchmarks.md alone")
    args = parser.parse_args()
    results = {}
    with tempfile.TemporaryDirectory(prefix="piperack-bench-floors-") as tmp:
        work = Path(tmp)
        print(f"package --all, N={args.n} …", flush=True)
        results["package"] = package_ratio(work / "package", args.n, args.runs)
        print(f"pull --all, N={args.n} …", flush=True)
        results["pull"] = pull_ratio(work / "pull", args.n, args.runs)
        print(f"ingest, {args.rows:,} rows …", flush=True)
        results["ingest"] = ingest_ratio(work / "ingest", args.rows, args.runs)
    load = os.getloadavg()[0]
    what = {
        "package": (f"`invoke package --all`, {args.n} pipelines", f"{args.n} × `tar czf` of the same files"),
        "pull": (f"`invoke pull --all`, those {args.n} sdists", f"{args.n} × `tar xzf` of the same archives"),
        "ingest": (
            f"`invoke run --pipeline ingest`, {args.rows:,}-row CSV",
            "a Python process: DuckDB `read_csv` of the file into a table",
        ),
    }
    lines = [
        "## Issue 14: the three ratios in one run",
        "",
        f"`python -m benchmarks.bench_floors --runs {args.runs} --n {args.n} --rows {args.rows}` — each command",
        "as a whole process (start-up included), alternating with its floor run by run after one untimed",
        f"warm-up; median of {args.runs} runs, range in brackets. Details, profiles and Kedro: the sections below.",
        "",
        "| | piperack | the floor | **ratio** | goal | |",
        "|---|---:|---:|---:|---:|---|",
    ]
    verdicts = []
    for key in ("package", "pull", "ingest"):
        r = results[key]
        ratio = r["ours"] / r["floor"]
        met = ratio <= GOALS[key]
        verdicts.append(met)
        ours_text = f"{r['ours']:.2f} s ({r['ours_range'][0]:.2f}–{r['ours_range'][1]:.2f})"
        floor_text = f"{r['floor']:.3f} s ({r['floor_range'][0]:.3f}–{r['floor_range'][1]:.3f})"
        if key == "ingest":
            ours_text += f", peak {r['ours_mb']:,.0f} MB"
            floor_text += f", peak {r['floor_mb']:,.0f} MB"
        lines.append(
            f"| {what[key][0]} | {ours_text} | {what[key][1]}: {floor_text} | **{ratio:.2f}x** | "
            f"≤ {GOALS[key]:g}x | {'met' if met else 'NOT met'} |"
        )
    lines += [
        "",
        f"The ingest table: {results['ingest']['rows']:,} rows, `{results['ingest']['schema']}` (checked: the same "
        "rows and types as before this work). 1-minute load average at the end: "
        f"{load:.2f}. All three goals {'met' if all(verdicts) else 'NOT met'} in this run.",
    ]
    body = "\n".join(lines)
    print(body)
    if not args.no_write:
        write_section("floors", body)


if __name__ == "__main__":
    main()
