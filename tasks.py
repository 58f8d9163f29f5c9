"""The kit's own tasks. Run them through `bash scripts/kit.sh TASK`, which sets up .venv first."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from invoke import task
from invoke.exceptions import Exit

KIT = Path(__file__).resolve().parent


@task(
    help={
        "output": "Folder to bake the demo project into (default: build/demo).",
        "project_name": "project_name answer for the demo project.",
    }
)
def demo(c, output="build/demo", project_name="Demo Project"):
    """Bake a demo project, install it as its README says, run its ingest pipeline, show the table.

    The project's piperack comes from a wheel of this checkout (build/wheelhouse), as a released
    piperack would come from a package index.
    """
    from scripts import kitlib

    wheelhouse = kitlib.default_wheelhouse()
    print(f"Built the piperack wheel into {wheelhouse.relative_to(KIT)}/")
    project = kitlib.bake(KIT / output, find_links=wheelhouse, project_name=project_name)
    print(f"Baked {project}")
    venv = kitlib.project_venv(project, wheelhouse)
    print(f"Project virtualenv: {venv}")
    code = subprocess.run(
        [str(venv / "bin" / "invoke"), "run", "--pipeline", "ingest"],
        cwd=project,
        env=kitlib.invoke_env(venv, wheelhouse),
    ).returncode
    if code:
        raise Exit(f"error: the demo pipeline failed (exit {code})", code=code)
    import duckdb

    database = project / "data" / "ingest.duckdb"
    with duckdb.connect(str(database), read_only=True) as con:
        rows = con.execute("SELECT count(*) FROM cities").fetchall()[0][0]
        sample = con.execute(
            "SELECT city_name, country, population FROM cities ORDER BY population DESC LIMIT 3"
        ).fetchall()
    print(f"\nDuckDB file: {database}")
    print(f"Rows loaded into table 'cities': {rows}")
    for city, country, population in sample:
        print(f"  {city:<12} {country:<10} {population:>10,}")


HOG = """
import os, sys, time
parent, ends = os.getppid(), time.monotonic() + float(sys.argv[1])
while time.monotonic() < ends and os.getppid() == parent:
    for _ in range(200_000):
        pass
"""


@task(
    help={
        "args": "Extra pytest arguments, e.g. --args='-k pull -x'.",
        "under-load": "Run the suite while a CPU hog keeps every core busy (one busy process per core, "
        "stopped when the suite ends): the verdict must be the same as on an idle machine.",
        "hog-limit": "With --under-load: the hog's own time limit in seconds, should this task die without "
        "stopping it (default: 7200).",
    }
)
def test(c, args="", under_load=False, hog_limit=7200):
    """Run the whole test suite: library unit tests and template tests (bake → install → invoke → files)."""
    import shlex

    hogs = []
    if under_load:
        count = os.cpu_count() or 2
        hogs = [subprocess.Popen([sys.executable, "-c", HOG, str(hog_limit)]) for _ in range(count)]
        print(f"under load: {count} busy processes (pids {', '.join(str(h.pid) for h in hogs)})", flush=True)
    try:
        cmd = [sys.executable, "-m", "pytest", "tests", *shlex.split(args)]
        code = subprocess.run(cmd, cwd=KIT).returncode
    finally:
        for hog in hogs:
            hog.terminate()
        for hog in hogs:
            hog.wait()
        if hogs:
            print(f"under load: stopped the {len(hogs)} busy processes", flush=True)
    if code:
        raise Exit(code=code)


@task(help={"fix": "Apply ruff's fixes and its formatter instead of only reporting."})
def lint(c, fix=False):
    """Lint and check the formatting of the kit's Python with ruff (the test suite runs this too)."""
    ruff = [sys.executable, "-m", "ruff"]
    config = ["--config", "pyproject.toml", "."]  # --config: the template's own pyproject.toml is Jinja
    steps = (
        [[*ruff, "check", "--fix", *config], [*ruff, "format", *config]]
        if fix
        else [
            [*ruff, "check", *config],
            [*ruff, "format", "--check", *config],
        ]
    )
    failed = 0
    for step in steps:
        failed |= subprocess.run(step, cwd=KIT).returncode
    if failed:
        raise Exit("error: ruff found problems (see above); `bash scripts/kit.sh lint --fix` fixes what it can", code=1)


@task(
    help={
        "name": "Benchmark to run: the NAME of a benchmarks/bench_NAME.py (docker, floors, ingest, package, pull, "
        "pull_scale, reqs, scale, startup); default: all of them."
    }
)
def bench(c, name=""):
    """Run the benchmarks in benchmarks/ and update docs/benchmarks.md."""
    names = [name] if name else sorted(p.stem.removeprefix("bench_") for p in (KIT / "benchmarks").glob("bench_*.py"))
    for bench_name in names:
        script = KIT / "benchmarks" / f"bench_{bench_name}.py"
        if not script.exists():
            raise Exit(f"error: no benchmark {bench_name!r} ({script} not found)", code=1)
        print(f"== {bench_name}", flush=True)
        code = subprocess.run(
            [sys.executable, "-m", f"benchmarks.bench_{bench_name}"], cwd=KIT, env=dict(os.environ)
        ).returncode
        if code:
            raise Exit(code=code)


@task(
    help={
        "dist": "Folder for the sdist and wheel (default: dist).",
        "allow-dirty": "Build even with uncommitted changes (the files are then not what the tag names).",
    }
)
def release(c, dist="dist", allow_dirty=False):
    """Build piperack's sdist and wheel into dist/ and check them with `twine check --strict`.

    Refuses a dirty work tree and a version that is already tagged (v<version>): bump [project]
    version in pyproject.toml first. Publishing and tagging stay manual: docs/releasing.md.
    """
    from scripts import kitlib

    version = kitlib.kit_version()

    def git(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(["git", *args], cwd=KIT, capture_output=True, text=True)

    if git("rev-parse", "--git-dir").returncode:
        raise Exit("error: not a git checkout: a release is built from a tagged commit of the kit", code=1)
    dirty = git("status", "--porcelain", "--untracked-files=no").stdout.strip()
    if dirty and not allow_dirty:
        raise Exit(f"error: uncommitted changes ({len(dirty.splitlines())} file(s)): commit them first", code=1)
    if git("rev-parse", "-q", "--verify", f"refs/tags/v{version}").returncode == 0:
        raise Exit(f"error: v{version} is already tagged: raise [project] version in pyproject.toml first", code=1)
    out = (KIT / dist).resolve()
    stale = sorted(out.glob(f"piperack-{version}*")) if out.is_dir() else []
    for path in stale:
        path.unlink()
    code = subprocess.run([sys.executable, "-m", "build", "--outdir", str(out), str(KIT)]).returncode
    if code:
        raise Exit(f"error: the build failed (exit {code})", code=code)
    built = sorted(out.glob(f"piperack-{version}*"))
    code = subprocess.run([sys.executable, "-m", "twine", "check", "--strict", *map(str, built)]).returncode
    if code:
        raise Exit(f"error: twine check failed (exit {code})", code=code)
    for path in built:
        print(f"{path.relative_to(KIT) if path.is_relative_to(KIT) else path}  {path.stat().st_size} bytes")
    print(f"next: twine upload {out}/piperack-{version}*  then  git tag v{version} && git push --tags")
