"""Issue 12 at the level the user acts: a baked project, its `invoke` tasks and its runner, after
hostile or nested pulls, signals and closed pipes."""

from __future__ import annotations

import signal
import subprocess

import pytest

from tests.pull_support import StallingServer, add_slow_pipeline, interrupt_when, temporary_files, write_sdist


def one_line_error(result, *fragments):
    assert result.returncode != 0, result.stdout
    assert "Traceback" not in result.stdout + result.stderr, result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, result.stderr
    for fragment in fragments:
        assert fragment in errors[0], errors[0]
    return errors[0]


def test_nested_destination_keeps_the_project_working(project_copy, run_invoke, tmp_path):
    """pipelines.shared groups pipelines: the runner finds shared.cleaner, run and test work."""
    sdist = write_sdist(tmp_path / "d", "cleaner")
    result = run_invoke(project_copy, "pull", str(sdist), "--destination", "pipelines.shared")
    assert result.returncode == 0, result.stderr
    assert "catalog" not in result.stdout  # its pipeline reads no catalog key
    ran = run_invoke(project_copy, "run", "--pipeline", "shared.cleaner")
    assert ran.returncode == 0, ran.stderr
    assert "pipeline shared.cleaner: done" in ran.stderr
    everything = run_invoke(project_copy, "run")  # ingest and shared.cleaner, and the grouping folder is no error
    assert everything.returncode == 0, everything.stderr
    assert "pipeline ingest: done" in everything.stderr and "pipeline shared.cleaner: done" in everything.stderr
    tests = run_invoke(project_copy, "test", "--args", "src/tests/pipelines/shared")
    assert tests.returncode == 0, tests.stdout + tests.stderr
    assert "1 passed" in tests.stdout


def test_runner_reads_parameters_by_exact_name(project_copy, run_invoke):
    params = project_copy / "conf" / "base" / "parameters"
    (params / "ingest_backup.yml").write_text("source: samples/no-such-file.csv\ntable: wrong\n")
    (params / "ingestion.yml").write_text(": not yaml at all [\n")
    ran = run_invoke(project_copy, "run", "--pipeline", "ingest")
    assert ran.returncode == 0, ran.stderr


def test_pulled_pipeline_names_its_catalog_needs(project_copy, run_invoke, tmp_path):
    code = {
        "__init__.py": "",
        "pipeline.py": "def run(params, catalog):\n    return catalog['raw'], catalog['database']\n",
    }
    (project_copy / "conf/base/catalog/feed.yml").write_text("raw: data/feed.csv\n")
    result = run_invoke(project_copy, "pull", str(write_sdist(tmp_path / "d", "feed", code=code)))
    assert result.returncode == 0, result.stderr
    assert "it reads database, raw from its catalog: add database to conf/base/catalog/feed.yml" in result.stdout


def test_a_closed_pipe_ends_a_dry_run_quietly(project_copy, venv, user_env, tmp_path):
    many = {"__init__.py": "", **{f"m{i}.py": "x = 1\n" for i in range(300)}}
    sdist = write_sdist(tmp_path / "d", "wide", code=many)
    shell = f"{venv / 'bin' / 'invoke'} pull --dry-run {sdist} | head -2"
    result = subprocess.run(
        ["bash", "-o", "pipefail", "-c", shell], cwd=project_copy, env=user_env(), capture_output=True, text=True
    )
    assert len(result.stdout.splitlines()) == 2
    assert "Traceback" not in result.stderr and "BrokenPipe" not in result.stderr, result.stderr


def test_an_os_error_while_writing_is_one_line_and_nothing_changes(project_copy, run_invoke, tmp_path, tree_hash):
    long_name = "n" * 300 + ".py"  # over the filesystem's 255-byte limit: ENAMETOOLONG at write time
    sdist = write_sdist(tmp_path / "d", "cleaner", code={"__init__.py": "", long_name: "x = 1\n"})
    before = tree_hash(project_copy)
    result = run_invoke(project_copy, "pull", str(sdist))
    one_line_error(result, "name too long", "nothing was changed")
    assert tree_hash(project_copy) == before


@pytest.mark.parametrize(
    "content, fragment",
    [
        (b"pandas>=2.1\n\x00\xff\xfe binary\n", "requirements.in"),
        (b"pandas[sql>=2\n", "requirements.in"),
        (b"pandas>=2.1 \\\n", "requirements.in"),
        (b"-r other-file-that-does-not-exist.txt\n", "requirements.in"),
    ],
)
def test_build_reqs_with_broken_requirements_is_one_line(project_copy, run_invoke, tree_hash, content, fragment):
    (project_copy / "requirements.in").write_bytes(content)
    before = tree_hash(project_copy)
    result = run_invoke(project_copy, "build-reqs")
    assert result.returncode != 0
    assert "Traceback" not in result.stdout + result.stderr, result.stderr
    assert result.stderr.startswith("error:") and fragment in result.stderr.splitlines()[0]
    assert tree_hash(project_copy) == before


SLOW_PIPELINE = """import os
import signal
import time
from pathlib import Path


def run(params, catalog):
    marker = Path(params["marker"])

    def stopped(signum, frame):
        marker.write_text(f"got {signum}")
        raise SystemExit(143)

    signal.signal(signal.SIGTERM, stopped)
    marker.write_text("running")
    time.sleep(60)
"""


def test_invoke_run_forwards_sigterm_to_the_pipeline(project_copy, venv, user_env, tmp_path):
    marker = tmp_path / "marker"
    add_slow_pipeline(project_copy, SLOW_PIPELINE, marker)
    result = interrupt_when(  # "sigterm": to invoke alone, as a scheduler stops it
        [str(venv / "bin" / "invoke"), "run", "--pipeline", "slow"],
        lambda: marker.exists() and marker.read_text() == "running",
        "the pipeline started",
        "sigterm",
        cwd=project_copy,
        env=user_env(),
        timeout=60,
    )
    assert marker.read_text() == f"got {signal.SIGTERM.value}", result.stderr
    assert result.returncode == 143, result.stderr  # the pipeline's own SystemExit(143) is the task's status


@pytest.mark.parametrize(
    "how, attempt", [("ctrl-c", 0), ("ctrl-c", 1), ("ctrl-c", 2), ("sigterm", 0)], ids=["c1", "c2", "c3", "term"]
)
def test_ctrl_c_or_sigterm_during_a_pull_is_one_line(project_copy, venv, user_env, tmp_path, tree_hash, how, attempt):
    """Ctrl-C (SIGINT to the whole process group, as a terminal sends it) or SIGTERM (to invoke, as a
    scheduler sends it) while the archive downloads from a server that stalls: 130 or 143, one line,
    nothing changed, no temporary files. Ctrl-C is repeated: the verdict must not depend on the moment."""
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    with StallingServer() as server:
        before = tree_hash(project_copy)
        result = interrupt_when(
            [str(venv / "bin" / "invoke"), "pull", f"{server.url}/x-0.1.0.tar.gz"],
            server.arrived.is_set,
            "the download reached the server",
            how,
            cwd=project_copy,
            env=user_env(TMPDIR=str(tmp)),
            timeout=60,
        )
    expected = {
        "ctrl-c": (130, "interrupted: nothing was left half-done\n"),
        "sigterm": (143, "terminated: nothing was left half-done\n"),
    }
    assert (result.returncode, result.stderr) == expected[how]
    assert tree_hash(project_copy) == before
    assert temporary_files(tmp) == []


@pytest.mark.parametrize("target", ["requirements.in", "pyproject.toml"])
def test_an_immutable_file_makes_the_pull_roll_back(project_copy, run_invoke, tmp_path, tree_hash, target):
    """The last writes of a pull fail (chattr +i: even root cannot replace the file): one line, and
    everything written before is undone."""
    import shutil

    if not shutil.which("chattr") or subprocess.run(["chattr", "+i", str(project_copy / target)]).returncode:
        pytest.skip("chattr +i is not available on this filesystem")
    try:
        before = tree_hash(project_copy)
        sdist = write_sdist(tmp_path / "d", "cleaner", requires=["scipy>=1.10"])
        result = run_invoke(project_copy, "pull", str(sdist))
        one_line_error(result, "Operation not permitted", "nothing was changed")
        assert tree_hash(project_copy) == before
    finally:
        subprocess.run(["chattr", "-i", str(project_copy / target)])
