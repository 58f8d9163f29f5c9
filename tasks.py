"""The kit's own tasks. Run them through `bash scripts/kit.sh TASK`, which sets up .venv first."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from invoke import task
from invoke.exceptions import Exit

KIT = Path(__file__).resolve().parent
sys.path.insert(0, str(KIT / "scripts"))


@task(help={
    "output": "Folder to bake the demo project into (default: build/demo).",
    "project_name": "project_name answer for the demo project.",
})
def demo(c, output="build/demo", project_name="Demo Project"):
    """Bake a demo project, run its ingest pipeline on the sample data, and show the DuckDB table."""
    import kitlib

    project = kitlib.bake(KIT / output, project_name=project_name)
    print(f"Baked {project}")
    venv = kitlib.project_venv(project)
    print(f"Project virtualenv: {venv}")
    code = subprocess.run([str(venv / "bin" / "invoke"), "run", "--pipeline", "ingest"], cwd=project,
                          env=kitlib.invoke_env(venv)).returncode
    if code:
        raise Exit(f"error: the demo pipeline failed (exit {code})", code=code)
    import duckdb

    database = project / "data" / "ingest.duckdb"
    with duckdb.connect(str(database), read_only=True) as con:
        rows = con.execute("SELECT count(*) FROM cities").fetchall()[0][0]
        sample = con.execute("SELECT city_name, country, population FROM cities ORDER BY population DESC LIMIT 3").fetchall()
    print(f"\nDuckDB file: {database}")
    print(f"Rows loaded into table 'cities': {rows}")
    for city, country, population in sample:
        print(f"  {city:<12} {country:<10} {population:>10,}")


@task(help={
    "args": "Extra pytest arguments, e.g. --args='-k pull -x'.",
})
def test(c, args=""):
    """Run the whole test suite: template tests (bake → invoke → files) and engine unit tests."""
    import shlex

    cmd = [sys.executable, "-m", "pytest", "tests", *shlex.split(args)]
    code = subprocess.run(cmd, cwd=KIT).returncode
    if code:
        raise Exit(code=code)


@task(help={"name": "Benchmark to run: ingest, package, pull, reqs, docker (default: all of them)."})
def bench(c, name=""):
    """Run the benchmarks in benchmarks/ and update docs/benchmarks.md."""
    names = [name] if name else sorted(p.stem.removeprefix("bench_") for p in (KIT / "benchmarks").glob("bench_*.py"))
    for bench_name in names:
        script = KIT / "benchmarks" / f"bench_{bench_name}.py"
        if not script.exists():
            raise Exit(f"error: no benchmark {bench_name!r} ({script} not found)", code=1)
        print(f"== {bench_name}", flush=True)
        code = subprocess.run([sys.executable, str(script)], cwd=KIT, env=dict(os.environ)).returncode
        if code:
            raise Exit(code=code)
