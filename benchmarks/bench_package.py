"""Benchmark of `invoke package --all` against Kedro 0.18.14's `kedro micropkg package --all`.

For N = 1, 10, 50, 200 pipelines (benchmarks/package/projects.py: each a few modules, a SQL file,
parameters, tests, a requirements.txt), builds a baked piperack project and an equivalent Kedro
project, and times both commands end to end (wall clock, CLI start-up included) in the same run.
piperack: median of --runs runs (the first one is also reported). Kedro: one run; above
--kedro-max pipelines Kedro is not run, its time is extrapolated from the measured per-package
time of the largest measured N (marked "extrapolated" in the table).

Kedro is installed into a throwaway cached virtualenv (benchmarks/package/kedro_env.py), never
into the kit. Results: the "## invoke package" section of docs/benchmarks.md.

Run: bash scripts/kit.sh bench --name package
     (or: .venv/bin/python -m benchmarks.bench_package [--sizes 1,10,50,200] [--kedro-max 50] [--runs 3])
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from benchmarks import report
from benchmarks.package import kedro_env, projects
from scripts import kitlib

KIT = Path(__file__).resolve().parents[1]
HERE = Path(__file__).resolve().parent

COMMAND = "bash scripts/kit.sh bench --name package"
PKG = "bench_project"


def set_manifest(root: Path, modules: list[str]) -> None:
    path = root / "pyproject.toml"
    text = path.read_text()
    start = text.index("[tool.piperack.package]")
    end = text.index("[tool.piperack.pull]")
    entries = "".join(f'"{m}" = {{}}\n' for m in modules)
    path.write_text(text[:start] + "[tool.piperack.package]\n" + entries + "\n" + text[end:])


def timed(cmd: list[str], cwd: Path, env: dict) -> tuple[float, subprocess.CompletedProcess]:
    started = time.perf_counter()
    result = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if result.returncode:
        raise SystemExit(f"error: {' '.join(cmd)} failed in {cwd}:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    return seconds, result


def packaged_files(root: Path, modules: list[str]) -> list[str]:
    """The project files the packages contain (module code, tests, parameter file), relative to root."""
    out = []
    for module in modules:
        name = module.rsplit(".", 1)[-1]
        for folder in (root / "src" / PKG / "pipelines" / name, root / "src" / "tests" / "pipelines" / name):
            out += sorted(
                str(p.relative_to(root)) for p in folder.rglob("*") if p.is_file() and "__pycache__" not in p.parts
            )
        out.append(f"conf/base/parameters/{name}.yml")
    return out


def tar_floor(root: Path, files: list[str], out: Path) -> float:
    """Seconds of one `tar czf` process archiving exactly ``files`` (the floor of the issue)."""
    listing = out.with_suffix(".list")
    listing.write_text("\n".join(files) + "\n")
    out.unlink(missing_ok=True)
    seconds, _ = timed(["tar", "czf", str(out), "-C", str(root), "-T", str(listing)], root, dict(os.environ))
    return seconds


PROFILE = """
import cProfile, io, pstats, sys
from invoke import Program
from piperack.tasks import namespace
prof = cProfile.Profile()
prof.enable()
try:
    Program(namespace=namespace).run(["invoke", "package", "--all", "--quiet"], exit=False)
finally:
    prof.disable()
out = io.StringIO()
pstats.Stats(prof, stream=out).sort_stats("cumulative").print_stats(15)
print(out.getvalue())
"""


def profile_all(root: Path, venv: Path, env: dict) -> str:
    """cProfile top 15 (cumulative) of one in-process `invoke package --all` (imports of the tasks excluded)."""
    shutil.rmtree(root / "dist", ignore_errors=True)
    _, result = timed([str(venv / "bin" / "python"), "-c", PROFILE], root, env)
    text = result.stdout
    start = text.find("   Ordered by")
    lines = [line.rstrip() for line in text[text.find("function calls") - 20 if start < 0 else 0 :].splitlines()]
    keep = [line.replace(str(venv), "<venv>") for line in lines if line.strip()]
    return "\n".join(keep[:20])


def bench_piperack(work: Path, n: int, runs: int, profile: bool = False) -> dict:
    root = kitlib.bake(work / f"piperack-{n}", project_name="Bench Project", include_example="no")
    modules = projects.add_pipelines(root, PKG, n)
    set_manifest(root, modules)
    venv = kitlib.project_venv(root)
    env = kitlib.invoke_env(venv)
    env.pop("PYTHONDONTWRITEBYTECODE", None)  # as in a user's shell (both tools alike)
    files = packaged_files(root, modules)
    times, floors = [], []
    for _ in range(runs):
        shutil.rmtree(root / "dist", ignore_errors=True)
        seconds, result = timed([str(venv / "bin" / "invoke"), "package", "--all"], root, env)
        times.append(seconds)
        floors.append(tar_floor(root, files, work / f"floor-{n}.tar.gz"))
    made = sorted((root / "dist").glob("*.tar.gz"))
    if len(made) != n:
        raise SystemExit(f"error: piperack made {len(made)} archives for {n} pipelines")
    size = sum(p.stat().st_size for p in made)
    return {
        "first": times[0],
        "median": statistics.median(times),
        "files": len(made),
        "bytes": size,
        "floor": statistics.median(floors),
        "members": len(files),
        "profile": profile_all(root, venv, env) if profile else "",
    }


def bench_kedro(work: Path, n: int, venv: Path) -> dict:
    root = kedro_env.kedro_project(work / f"kedro-{n}", package="kproj")
    modules = projects.add_pipelines(root, "kproj", n)
    kedro_env.kedro_project(root, package="kproj", manifest={m: {} for m in modules})
    env = kedro_env.kedro_env(venv)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    seconds, _ = timed([str(venv / "bin" / "kedro"), "micropkg", "package", "--all"], root, env)
    made = sorted((root / "dist").glob("*.tar.gz"))
    if len(made) != n:
        raise SystemExit(f"error: Kedro made {len(made)} archives for {n} pipelines")
    return {"seconds": seconds, "files": len(made), "bytes": sum(p.stat().st_size for p in made)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1,10,50,200")
    parser.add_argument("--kedro-max", type=int, default=50, help="largest N Kedro is actually run for")
    parser.add_argument("--runs", type=int, default=5, help="piperack runs per size (median reported)")
    parser.add_argument("--no-write", action="store_true", help="print the table, leave docs/ alone")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]

    print("Kedro 0.18.14 virtualenv ...", flush=True)
    venv = kedro_env.kedro_venv()
    rows = []
    per_package = None
    with tempfile.TemporaryDirectory(prefix="piperack-bench-package-") as tmp:
        work = Path(tmp)
        for n in sizes:
            ours = bench_piperack(work, n, args.runs)
            print(f"N={n}: piperack {ours['median']:.2f} s (first {ours['first']:.2f} s)", flush=True)
            if n <= args.kedro_max:
                theirs = bench_kedro(work, n, venv)
                kedro_s, note = theirs["seconds"], ""
                per_package = kedro_s / n
                print(f"N={n}: kedro {kedro_s:.1f} s", flush=True)
            else:
                kedro_s, note = per_package * n, " (extrapolated)"
                print(f"N={n}: kedro ~{kedro_s:.0f} s extrapolated from {per_package:.2f} s/package", flush=True)
            rows.append((n, ours, kedro_s, note))

    lines = [
        "## invoke package",
        "",
        "`invoke package --all` vs Kedro 0.18.14 `kedro micropkg package --all` on equivalent projects with",
        "N pipelines (each: nodes, helpers and pipeline modules with an absolute import of itself, a SQL",
        "file, requirements.txt, a parameter file, tests with absolute imports and a `mock.patch` target).",
        "Wall-clock time of the whole command, CLI start-up included; piperack: median of "
        f"{args.runs} runs (first run in brackets); Kedro: one run.",
        "",
        "| N | piperack | Kedro 0.18.14 | speed-up | piperack per package | Kedro per package |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    for n, ours, kedro_s, note in rows:
        lines.append(
            f"| {n} | {ours['median']:.2f} s ({ours['first']:.2f} s) | {kedro_s:.1f} s{note} | "
            f"{kedro_s / ours['median']:.0f}x | {ours['median'] / n * 1000:.0f} ms | {kedro_s / n:.2f} s{note} |"
        )
    lines += [
        "",
        f"Kedro is run for N ≤ {args.kedro_max}; larger N are extrapolated from its measured per-package time "
        "at the largest measured N (per package it runs a `python -m build` subprocess with an "
        "isolated virtualenv, plus rope refactoring). piperack builds every archive in-process (tarfile + gzip; "
        "libcst only on the exact spans `ast` finds mentioning the module). The machine is shared with other "
        "jobs, so single timings wobble; the 1-minute load average at the end is given.",
        "",
        f"Command: `{COMMAND}` (1-minute load average at the end: {os.getloadavg()[0]:.1f})",
    ]
    body = "\n".join(lines)
    print(body)
    if not args.no_write:
        report.write_section("package", body)


if __name__ == "__main__":
    main()
