"""How fast the generated project's `invoke --list` answers (goal: under 0.5 s).

Runs `invoke --list` 10 times in a freshly baked project with its virtualenv, after one warm-up
run, and reports the median and the slowest; also the time to import tasks.py plus every engine
module. Usage: python -m benchmarks.bench_startup
"""

from __future__ import annotations

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


def main() -> None:
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
    median = statistics.median(times)
    body = f"""## `invoke --list` start-up

`python -m benchmarks.bench_startup` — 10 runs in a freshly baked project, after a warm-up.

| | median | slowest |
|---|---:|---:|
| `invoke --list` (whole process) | {median:.3f} s | {max(times):.3f} s |
| importing tasks.py and every engine module | {statistics.median(imports):.3f} s | {max(imports):.3f} s |

Goal: under 0.5 s — {"met" if median < 0.5 else "not met"}. tests/test_template.py checks that no heavy
module (pandas, DuckDB, libcst, fsspec, requests, tomlkit, …) is imported on this path.
"""
    print(body)
    write_section("startup", body)


if __name__ == "__main__":
    main()
