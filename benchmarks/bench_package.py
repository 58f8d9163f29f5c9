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


def tar_floor_per_archive(root: Path, groups: list[list[str]], out: Path) -> float:
    """Seconds of one shell running `tar czf` once per package (N archives, as piperack writes)."""
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    lines = []
    for index, files in enumerate(groups):
        listing = out / f"{index}.list"
        listing.write_text("\n".join(files) + "\n")
        lines.append(f"tar czf {out}/{index}.tar.gz -C {root} -T {listing}")
    script = out / "floor.sh"
    script.write_text("set -e\n" + "\n".join(lines) + "\n")
    seconds, _ = timed(["bash", str(script)], root, dict(os.environ))
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
    # One process (PIPERACK_WORKERS=1): the profiler sees only its own process, not a forked one.
    _, result = timed([str(venv / "bin" / "python"), "-c", PROFILE], root, env | {"PIPERACK_WORKERS": "1"})
    text = result.stdout
    text = text[text.rfind("\n", 0, max(text.find("function calls"), 0)) + 1 :]
    keep = [line.rstrip().replace(str(venv), "<venv>") for line in text.splitlines() if line.strip()]
    return "\n".join(keep[:19])


def bench_piperack(work: Path, n: int, runs: int, profile: bool = False) -> dict:
    root = kitlib.bake(work / f"piperack-{n}", project_name="Bench Project", include_example="no")
    modules = projects.add_pipelines(root, PKG, n)
    set_manifest(root, modules)
    venv = kitlib.project_venv(root)
    env = kitlib.invoke_env(venv)
    env.pop("PYTHONDONTWRITEBYTECODE", None)  # as in a user's shell (both tools alike)
    files = packaged_files(root, modules)
    groups = [packaged_files(root, [m]) for m in modules]
    times, floors, per_archive = [], [], []
    for _ in range(runs):
        shutil.rmtree(root / "dist", ignore_errors=True)
        seconds, result = timed([str(venv / "bin" / "invoke"), "package", "--all"], root, env)
        times.append(seconds)
        floors.append(tar_floor(root, files, work / f"floor-{n}.tar.gz"))
        per_archive.append(tar_floor_per_archive(root, groups, work / f"floor-{n}"))
    made = sorted((root / "dist").glob("*.tar.gz"))
    if len(made) != n:
        raise SystemExit(f"error: piperack made {len(made)} archives for {n} pipelines")
    size = sum(p.stat().st_size for p in made)
    return {
        "first": times[0],
        "median": statistics.median(times),
        "times": times,
        "per_archives": per_archive,
        "files": len(made),
        "bytes": size,
        "floor": statistics.median(floors),
        "per_archive": statistics.median(per_archive),
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
    parser.add_argument("--kedro-max", type=int, default=50, help="largest N Kedro is actually run for (0: skip Kedro)")
    parser.add_argument("--runs", type=int, default=5, help="piperack runs per size (median reported)")
    parser.add_argument("--profile-n", type=int, default=50, help="N of the cProfile'd in-process run (0: none)")
    parser.add_argument("--no-write", action="store_true", help="print the table, leave docs/ alone")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    use_kedro = args.kedro_max > 0

    venv = None
    if use_kedro:
        print("Kedro 0.18.14 virtualenv ...", flush=True)
        venv = kedro_env.kedro_venv()
    rows = []
    profile = ""
    per_package = None
    with tempfile.TemporaryDirectory(prefix="piperack-bench-package-") as tmp:
        work = Path(tmp)
        for n in sizes:
            ours = bench_piperack(work, n, args.runs, profile=n == args.profile_n)
            profile = ours["profile"] or profile
            print(
                f"N={n}: piperack {ours['median']:.2f} s (first {ours['first']:.2f} s), "
                f"tar czf {ours['floor']:.3f} s (ratio {ours['median'] / ours['floor']:.1f}x), "
                f"{n} x tar czf {ours['per_archive']:.3f} s (ratio {ours['median'] / ours['per_archive']:.1f}x)",
                flush=True,
            )
            kedro_s, note = None, ""
            if use_kedro and n <= args.kedro_max:
                theirs = bench_kedro(work, n, venv)
                kedro_s = theirs["seconds"]
                per_package = kedro_s / n
                print(f"N={n}: kedro {kedro_s:.1f} s", flush=True)
            elif per_package is not None:
                kedro_s, note = per_package * n, " (extrapolated)"
                print(f"N={n}: kedro ~{kedro_s:.0f} s extrapolated from {per_package:.2f} s/package", flush=True)
            rows.append((n, ours, kedro_s, note))

    command = f"python -m benchmarks.bench_package --sizes {args.sizes} --kedro-max {args.kedro_max} --runs {args.runs}"
    lines = [
        "## invoke package",
        "",
        "`invoke package --all` on a project with N pipelines (each: nodes, helpers and pipeline modules with an",
        "absolute import of itself, a SQL file, requirements.txt, a parameter file, tests with absolute imports and",
        "a `mock.patch` target), side by side in the same run with two floors: one `tar czf` process archiving",
        "exactly the files the N packages contain (module code, tests, parameter file) into one archive, and one",
        "shell running `tar czf` once per package (N archives of the same files, as piperack writes), and"
        + (
            " Kedro 0.18.14 `kedro micropkg package --all` on an equivalent project." if use_kedro else " no Kedro run."
        ),
        "Wall-clock time of the whole command, CLI start-up included; piperack and tar: median of "
        f"{args.runs} runs (piperack's first run in brackets); Kedro: one run.",
        "",
        "| N | files | piperack | one tar czf | piperack / one tar | N x tar czf | **piperack / N x tar** "
        "| Kedro 0.18.14 | speed-up vs Kedro | piperack per package |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for n, ours, kedro_s, note in rows:
        kedro_cell = f"{kedro_s:.1f} s{note}" if kedro_s is not None else "–"
        speed = f"{kedro_s / ours['median']:.0f}x" if kedro_s is not None else "–"
        lines.append(
            f"| {n} | {ours['members']} | {ours['median']:.2f} s ({ours['first']:.2f} s) | {ours['floor']:.3f} s | "
            f"{ours['median'] / ours['floor']:.1f}x | {ours['per_archive']:.3f} s | "
            f"**{ours['median'] / ours['per_archive']:.1f}x** | {kedro_cell} | {speed} | {ours['median'] / n * 1000:.0f} ms |"
        )
    lines += [
        "",
        "Goal (issue 14): at N = 50, at most 2x `tar czf` (the bold column: tar making the same N archives; one tar "
        "process archiving every file at once is shown for reference: it takes less than Python's own start-up).",
        "",
    ]
    if use_kedro:
        lines += [
            f"Kedro is run for N ≤ {args.kedro_max}; larger N are extrapolated from its measured per-package time "
            "at the largest measured N (per package it runs a `python -m build` subprocess with an "
            "isolated virtualenv, plus rope refactoring).",
            "",
        ]
    if profile:
        lines += [
            f"cProfile of one in-process `invoke package --all` at N = {args.profile_n} (tasks already imported; one process, PIPERACK_WORKERS=1), "
            "top 15 by cumulative time:",
            "",
            "```",
            profile,
            "```",
            "",
        ]
    lines += [
        f"Command: `{command}` (`{COMMAND}` runs the defaults); 1-minute load average at the end: "
        f"{os.getloadavg()[0]:.2f}",
    ]
    body = "\n".join(lines)
    print(body)
    if not args.no_write:
        report.write_section("package", body)


if __name__ == "__main__":
    main()
