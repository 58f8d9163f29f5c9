"""How fast the generated project's `invoke --list` answers (goal, issue 14: under 0.3 s).

Runs `invoke --list` 10 times in a freshly baked project with its virtualenv, after one warm-up
run, and reports the median and the slowest; also the time to import tasks.py plus every engine
module, and `invoke run --pipeline ingest` start-up: from the command's start to the runner's
"pipeline ingest: starting" log line (conf loaded, the first node next), median of 5.
Usage: python -m benchmarks.bench_startup [--no-write]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from benchmarks.report import write_section
from scripts import kitlib

IMPORT_ALL = (
    "import time; t = time.perf_counter(); import sys, importlib, pkgutil\n"
    "import tasks, piperack\n"
    "for m in pkgutil.walk_packages(piperack.__path__, 'piperack.'):\n"
    "    if m.name != 'piperack.__main__': importlib.import_module(m.name)\n"
    "print(time.perf_counter() - t)"
)


def first_node(invoke: Path, project: Path, env: dict) -> float:
    """Seconds from starting `invoke run --pipeline ingest` to the runner's "starting" line."""
    started = time.perf_counter()
    proc = subprocess.Popen(
        [str(invoke), "run", "--pipeline", "ingest"],
        cwd=project,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    seen = None
    for line in proc.stdout:
        if seen is None and "pipeline ingest: starting" in line:
            seen = time.perf_counter() - started
    if proc.wait() or seen is None:
        raise SystemExit(
            f"error: invoke run --pipeline ingest failed or printed no start line (exit {proc.returncode})"
        )
    return seen


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--no-write", action="store_true", help="print only; leave docs/benchmarks.md alone")
    args = parser.parse_args()
    project = kitlib.bake(Path(tempfile.mkdtemp(prefix="bench-startup-")))
    venv = kitlib.project_venv(project)
    env = kitlib.invoke_env(venv)
    invoke = [str(venv / "bin" / "invoke"), "--list"]
    subprocess.run(invoke, cwd=project, env=env, capture_output=True, check=True)
    times = []
    for _ in range(10):
        started = time.perf_counter()
        subprocess.run(invoke, cwd=project, env=env, capture_output=True, check=True)
        times.append(time.perf_counter() - started)
    imports = [
        float(
            subprocess.run(
                [str(venv / "bin" / "python"), "-c", IMPORT_ALL],
                cwd=project,
                env=env,
                capture_output=True,
                text=True,
                check=True,
            ).stdout
        )
        for _ in range(5)
    ]
    runs = [first_node(venv / "bin" / "invoke", project, env) for _ in range(6)][1:]  # the first one warms up
    median = statistics.median(times)
    body = f"""## `invoke --list` start-up

`python -m benchmarks.bench_startup` — 10 runs in a freshly baked project, after a warm-up.

| | median | slowest |
|---|---:|---:|
| `invoke --list` (whole process) | {median:.3f} s | {max(times):.3f} s |
| importing tasks.py and every engine module | {statistics.median(imports):.3f} s | {max(imports):.3f} s |
| `invoke run --pipeline ingest` to its first node ("pipeline ingest: starting"; median of 5) \
| {statistics.median(runs):.3f} s | {max(runs):.3f} s |

Goal (issue 14): `invoke --list` under 0.3 s — {"met" if median < 0.3 else "not met"}. tests/test_template.py checks
that no heavy module (pandas, DuckDB, libcst, fsspec, requests, tomlkit, …) is imported on this path. The
run start-up is reported, not a goal. 1-minute load average at the end: {os.getloadavg()[0]:.2f}.
"""
    print(body)
    if not args.no_write:
        write_section("startup", body)


if __name__ == "__main__":
    main()
