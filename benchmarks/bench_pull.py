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


def invoke(venv: Path, root: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(venv / "bin" / "invoke"), *args],
        cwd=root,
        env=kitlib.invoke_env(venv),
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
    parser.add_argument("--kedro-max", type=int, default=50, help="largest N Kedro is measured at; above: extrapolated")
    parser.add_argument("--runs", type=int, default=3, help="piperack runs per N (the median is reported)")
    parser.add_argument("--no-write", action="store_true", help="print only; leave docs/benchmarks.md alone")
    args = parser.parse_args()
    sizes = sorted({int(s) for s in args.sizes.split(",") if s.strip()})
    kvenv = kedro_venv()
    rows = []
    with tempfile.TemporaryDirectory(prefix="piperack-bench-pull-") as tmp:
        work = Path(tmp)
        print(f"making {max(sizes)} packages with invoke package --all …", flush=True)
        sdists, venv = make_packages(work / "make", max(sizes))
        # One untimed pull each first, so neither tool pays for cold .pyc files or caches in a row.
        run_piperack(work / "warm-piperack", sdists[:1], venv)
        run_kedro_pull(work / "warm-kedro", sdists[:1], kvenv)
        per_package = None
        for n in sizes:
            runs = [run_piperack(work / f"piperack-{n}-{r}", sdists[:n], venv) for r in range(args.runs)]
            ours = statistics.median(runs)
            if n <= args.kedro_max:
                theirs = run_kedro_pull(work / f"kedro-{n}", sdists[:n], kvenv)
                per_package = theirs / n
                measured = True
            else:
                if per_package is None:
                    raise SystemExit(
                        "error: no Kedro measurement to extrapolate from (lower --kedro-max or add a smaller N)"
                    )
                theirs = per_package * n
                measured = False
            rows.append((n, ours, theirs, measured))
            print(
                f"N={n:4d}  piperack {ours:7.2f} s   kedro {theirs:8.1f} s{'' if measured else ' (extrapolated)'}"
                f"   {theirs / ours:6.0f}x",
                flush=True,
            )
    table = [
        SECTION,
        "",
        f"`invoke pull --all` vs Kedro {KEDRO_VERSION} `kedro micropkg pull --all` of the same N micro-packages "
        "(copies of the example `ingest` pipeline made by `invoke package --all`) into a fresh project, "
        "same run, wall clock including process start, after one untimed warm-up pull each; "
        f"piperack: median of {args.runs} runs, each into a fresh project; Kedro: one run. Kedro builds each package's metadata in an isolated "
        "build environment; piperack reads PKG-INFO statically.",
        "",
        "| N | invoke pull --all | kedro micropkg pull --all | speed-up |",
        "|---:|---:|---:|---:|",
    ]
    for n, ours, theirs, measured in rows:
        note = "" if measured else f" (extrapolated: {theirs / n:.2f} s/package × {n})"
        table.append(f"| {n} | {ours:.2f} s | {theirs:.1f} s{note} | {theirs / ours:.0f}x |")
    table += [
        "",
        f"Measured {datetime.now(UTC):%Y-%m-%d %H:%M} UTC on {platform.system()} {platform.machine()}, "
        f"{os.cpu_count()} CPUs, Python {platform.python_version()}. Command: `{COMMAND}` "
        f"(`python -m benchmarks.bench_pull --sizes {','.join(map(str, sizes))} --kedro-max {args.kedro_max} "
        f"--runs {args.runs}`); 1-minute load average at the end: {os.getloadavg()[0]:.1f}.",
        "",
    ]
    text = "\n".join(table)
    print(text)
    if not args.no_write:
        write_section("pull", text)


if __name__ == "__main__":
    main()
