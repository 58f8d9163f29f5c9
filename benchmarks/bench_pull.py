"""Benchmark of `invoke pull --all` against Kedro 0.18.14's `kedro micropkg pull --all`.

The same N micro-packages (N = 1, 10, 50, 200 by default) are pulled into a fresh project by each
tool, in the same run:
- the packages: N copies of the example `ingest` pipeline (p000, p001, …) in a baked project,
  packaged with the real `invoke package --all` (sdists Kedro 0.18 can pull too);
- piperack: a freshly baked project (no example) whose [tool.piperack.pull] lists the N sdists;
  timed: `invoke pull --all` (the project's virtualenv, wall clock, process start included);
- Kedro: a minimal Kedro 0.18.14 project (benchmarks/package/kedro_env.py) whose
  [tool.kedro.micropkg.pull] lists the same sdists; timed: `kedro micropkg pull --all`. Kedro
  builds each package's metadata in an isolated environment (about 4 s a package), so above
  --kedro-max (default 50) its time is extrapolated from the per-package time measured at the
  largest N measured, and the table says so.
Both results are checked (every package's code folder exists) before a time is reported.
Results: the "## invoke pull" section of docs/benchmarks.md.

Run: bash scripts/kit.sh bench --name pull   (or: python -m benchmarks.bench_pull [--sizes 1,10] [--kedro-max 50])
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import shutil
import statistics
import subprocess
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from benchmarks.package.kedro_env import KEDRO_VERSION, kedro_project, kedro_venv, run_kedro
from benchmarks.report import write_section
from scripts import kitlib

KIT = Path(__file__).resolve().parents[1]

SECTION = "## invoke pull"
COMMAND = "bash scripts/kit.sh bench --name pull"


def user_env(venv: Path) -> dict:
    """A user's shell in ``venv``: bytecode caches are written (and reused after the warm-up run), as
    the warm-up intends; kitlib.invoke_env turns them off, which would compile piperack every run."""
    env = kitlib.invoke_env(venv)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env


def invoke(venv: Path, root: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(venv / "bin" / "invoke"), *args],
        cwd=root,
        env=user_env(venv),
        capture_output=True,
        text=True,
        timeout=7200,
    )


def check(result: subprocess.CompletedProcess, what: str) -> None:
    if result.returncode:
        raise SystemExit(
            f"error: {what} failed ({result.returncode}):\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
        )


def make_packages(work: Path, count: int) -> tuple[list[Path], Path]:
    """``count`` sdists made by `invoke package --all` from copies of the example pipeline."""
    source = kitlib.bake(work / "source")
    venv = kitlib.project_venv(source)
    pkg = next(p.name for p in (source / "src").iterdir() if (p / "runner.py").exists())
    code = source / "src" / pkg / "pipelines" / "ingest"
    tests = source / "src" / "tests" / "pipelines" / "ingest"
    params = source / "conf" / "base" / "parameters" / "ingest.yml"
    names = [f"p{i:03d}" for i in range(count)]
    for name in names:
        for src, dst in ((code, code.parent / name), (tests, tests.parent / name)):
            shutil.copytree(src, dst, ignore=shutil.ignore_patterns("__pycache__"))
            for py in dst.rglob("*.py"):
                py.write_text(py.read_text().replace(f"{pkg}.pipelines.ingest", f"{pkg}.pipelines.{name}"))
        shutil.copy2(params, params.with_name(f"{name}.yml"))
    pyproject = source / "pyproject.toml"
    text = pyproject.read_text()
    entries = "".join(f'"pipelines.{name}" = {{}}\n' for name in names)
    text = re.sub(
        r"(\[tool\.piperack\.package\]\n)(?:\"pipelines\.ingest\" = \{\}\n)?",
        lambda m: m.group(1) + entries,
        text,
        count=1,
    )
    pyproject.write_text(text)
    check(invoke(venv, source, "package", "--all"), "invoke package --all")
    sdists = [source / "dist" / f"{name}-0.1.0.tar.gz" for name in names]
    missing = [s.name for s in sdists if not s.exists()]
    if missing:
        raise SystemExit(f"error: invoke package --all did not write {missing[:5]}")
    return sdists, venv


def run_piperack(work: Path, sdists: list[Path], venv: Path) -> float:
    project = kitlib.bake(work, project_name="Bench Pull", include_example=False)
    pyproject = project / "pyproject.toml"
    entries = "".join(f'"{s}" = {{}}\n' for s in sdists)
    text = pyproject.read_text()
    assert "[tool.piperack.pull]\n" in text
    pyproject.write_text(text.replace("[tool.piperack.pull]\n", "[tool.piperack.pull]\n" + entries, 1))
    start = time.perf_counter()
    result = invoke(venv, project, "pull", "--all")
    seconds = time.perf_counter() - start
    check(result, f"invoke pull --all (N={len(sdists)})")
    pkg = "bench_pull"
    missing = [
        s.name for s in sdists if not (project / "src" / pkg / "pipelines" / s.name.split("-")[0] / "nodes.py").exists()
    ]
    if missing:
        raise SystemExit(f"error: invoke pull --all did not place {missing[:5]}")
    return seconds


def tar_floor(work: Path, sdists: list[Path]) -> float:
    """Seconds of one shell running `tar xzf` of each archive into a fresh folder (the issue's floor)."""
    shutil.rmtree(work, ignore_errors=True)
    (work / "out").mkdir(parents=True)
    script = work / "floor.sh"
    script.write_text("set -e\n" + "".join(f"tar xzf {s} -C {work / 'out'}\n" for s in sdists))
    start = time.perf_counter()
    result = subprocess.run(["bash", str(script)], capture_output=True, text=True)
    seconds = time.perf_counter() - start
    check(result, "tar xzf")
    return seconds


PROFILE = """
import cProfile, io, pstats
from invoke import Program
from piperack.tasks import namespace
prof = cProfile.Profile()
prof.enable()
try:
    Program(namespace=namespace).run(["invoke", "pull", "--all"], exit=False)
finally:
    prof.disable()
out = io.StringIO()
pstats.Stats(prof, stream=out).sort_stats("cumulative").print_stats(15)
print(out.getvalue())
"""


def profile_pull(work: Path, sdists: list[Path], venv: Path) -> str:
    """cProfile top 15 (cumulative) of one in-process `invoke pull --all` (tasks already imported)."""
    project = kitlib.bake(work, project_name="Bench Pull", include_example=False)
    pyproject = project / "pyproject.toml"
    entries = "".join(f'"{s}" = {{}}\n' for s in sdists)
    pyproject.write_text(pyproject.read_text().replace("[tool.piperack.pull]\n", "[tool.piperack.pull]\n" + entries, 1))
    result = subprocess.run(
        [str(venv / "bin" / "python"), "-c", PROFILE],
        cwd=project,
        env=user_env(venv) | {"PIPERACK_WORKERS": "1"},  # the profiler sees only its own process
        capture_output=True,
        text=True,
    )
    check(result, "profiled pull")
    text = result.stdout
    text = text[text.rfind("\n", 0, max(text.find("function calls"), 0)) + 1 :]
    keep = [line.rstrip().replace(str(venv), "<venv>") for line in text.splitlines() if line.strip()]
    return "\n".join(keep[:19])


def run_kedro_pull(work: Path, sdists: list[Path], venv: Path) -> float:
    root = kedro_project(work / "kproj")
    lines = ["", "[tool.kedro.micropkg.pull]"] + [f'"{s}" = {{}}' for s in sdists]
    with open(root / "pyproject.toml", "a") as handle:
        handle.write("\n".join(lines) + "\n")
    start = time.perf_counter()
    result = run_kedro(venv, root, "micropkg", "pull", "--all")
    seconds = time.perf_counter() - start
    check(result, f"kedro micropkg pull --all (N={len(sdists)})")
    missing = [s.name for s in sdists if not (root / "src" / "kproj" / s.name.split("-")[0]).is_dir()]
    if missing:
        raise SystemExit(f"error: kedro micropkg pull --all did not place {missing[:5]}")
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1,10,50,200", help="comma-separated N values")
    parser.add_argument(
        "--kedro-max", type=int, default=50, help="largest N Kedro is measured at; above: extrapolated (0: no Kedro)"
    )
    parser.add_argument("--runs", type=int, default=3, help="piperack runs per N (the median is reported)")
    parser.add_argument("--profile-n", type=int, default=50, help="N of the cProfile'd in-process run (0: none)")
    parser.add_argument("--no-write", action="store_true", help="print only; leave docs/benchmarks.md alone")
    args = parser.parse_args()
    sizes = sorted({int(s) for s in args.sizes.split(",") if s.strip()})
    use_kedro = args.kedro_max > 0
    kvenv = kedro_venv() if use_kedro else None
    rows = []
    profile = ""
    with tempfile.TemporaryDirectory(prefix="piperack-bench-pull-") as tmp:
        work = Path(tmp)
        print(f"making {max(sizes)} packages with invoke package --all …", flush=True)
        sdists, venv = make_packages(work / "make", max(sizes))
        # One untimed pull each first, so neither tool pays for cold .pyc files or caches in a row.
        run_piperack(work / "warm-piperack", sdists[:1], venv)
        tar_floor(work / "warm-tar", sdists[:1])
        if use_kedro:
            run_kedro_pull(work / "warm-kedro", sdists[:1], kvenv)
        per_package = None
        for n in sizes:
            runs, floors = [], []
            for r in range(args.runs):
                runs.append(run_piperack(work / f"piperack-{n}-{r}", sdists[:n], venv))
                floors.append(tar_floor(work / f"tar-{n}-{r}", sdists[:n]))
            ours, floor = statistics.median(runs), statistics.median(floors)
            theirs, measured = None, False
            if use_kedro and n <= args.kedro_max:
                theirs = run_kedro_pull(work / f"kedro-{n}", sdists[:n], kvenv)
                per_package = theirs / n
                measured = True
            elif per_package is not None:
                theirs = per_package * n
            if n == args.profile_n:
                profile = profile_pull(work / f"profile-{n}", sdists[:n], venv)
            rows.append((n, ours, floor, theirs, measured, runs, floors))
            kedro_text = "" if theirs is None else f"   kedro {theirs:8.1f} s{'' if measured else ' (extrapolated)'}"
            print(
                f"N={n:4d}  piperack {ours:7.2f} s   tar xzf {floor:6.3f} s   ratio {ours / floor:4.1f}x{kedro_text}",
                flush=True,
            )
    table = [
        SECTION,
        "",
        "`invoke pull --all` of N micro-packages (copies of the example `ingest` pipeline made by "
        "`invoke package --all`) into a fresh project, side by side in the same run with the floor: one shell "
        "running `tar xzf` of each of the same N archives into a fresh folder"
        + (
            f", and Kedro {KEDRO_VERSION} `kedro micropkg pull --all` of the same sdists"
            if use_kedro
            else " (Kedro not run)"
        )
        + ". Wall clock including process start, after one untimed warm-up pull each; piperack and tar: median of "
        f"{args.runs} runs, each into a fresh project/folder; Kedro: one run (it builds each package's metadata "
        "in an isolated build environment; piperack reads PKG-INFO statically).",
        "",
        "| N | invoke pull --all (range) | tar xzf, the floor (range) | **pull / tar** | kedro micropkg pull --all "
        "| speed-up vs Kedro |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    for n, ours, floor, theirs, measured, runs, floors in rows:
        if theirs is None:
            kedro_cells = "– | –"
        else:
            note = "" if measured else f" (extrapolated: {theirs / n:.2f} s/package × {n})"
            kedro_cells = f"{theirs:.1f} s{note} | {theirs / ours:.0f}x"
        table.append(
            f"| {n} | {ours:.2f} s ({min(runs):.2f}–{max(runs):.2f}) | {floor:.3f} s ({min(floors):.3f}–{max(floors):.3f}) "
            f"| **{ours / floor:.1f}x** | {kedro_cells} |"
        )
    table += [
        "",
        "Goal (issue 14): at N = 50, at most 2x `tar xzf` of the 50 archives. Both sides are mostly file creation "
        "on the shared disk, and the floor moves between benchmark runs far more than within one (the ranges); "
        "a ratio from a single run is not a verdict.",
        "",
    ]
    if profile:
        table += [
            f"cProfile of one in-process `invoke pull --all` at N = {args.profile_n} (tasks already imported; one process, PIPERACK_WORKERS=1), "
            "top 15 by cumulative time:",
            "",
            "```",
            profile,
            "```",
            "",
        ]
    table += [
        f"Measured {datetime.now(UTC):%Y-%m-%d %H:%M} UTC on {platform.system()} {platform.machine()}, "
        f"{os.cpu_count()} CPUs, Python {platform.python_version()}. Command: "
        f"`python -m benchmarks.bench_pull --sizes {','.join(map(str, sizes))} --kedro-max {args.kedro_max} "
        f"--runs {args.runs}` (`{COMMAND}` runs the defaults); 1-minute load average at the end: "
        f"{os.getloadavg()[0]:.2f}.",
        "",
    ]
    text = "\n".join(table)
    print(text)
    if not args.no_write:
        write_section("pull", text)


if __name__ == "__main__":
    main()
