"""Ctrl-C and SIGTERM at the level the user acts: during a download, a resolver run, a template
fetch, a pipeline run and a prompt, every task (and the `piperack` command) ends with 130 or 143,
one line, the project unchanged and no temporary files.

Ctrl-C is sent as a terminal sends it, to the whole process group (the tools piperack started get
it too); SIGTERM as a scheduler sends it, to the one process. Every signal is sent once a state is
reached (the server saw the request, the pipeline wrote its marker), never after a guessed sleep.
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading

import pytest

from tests.pull_support import StallingServer, add_slow_pipeline, interrupt_when, temporary_files, wait_until

INTERRUPTED = "interrupted: nothing was left half-done\n"
TERMINATED = "terminated: nothing was left half-done\n"
EXPECTED = {"ctrl-c": (130, INTERRUPTED), "sigterm": (143, TERMINATED)}


@pytest.mark.parametrize("how", ["ctrl-c", "sigterm"])
def test_a_resolver_run_stopped_leaves_the_requirements_as_they_were(
    project_copy, venv, user_env, tmp_path, tree_hash, how
):
    """build-reqs while the resolver waits on an index that stalls."""
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    before = tree_hash(project_copy)
    with StallingServer(prefix=b"<!DOCTYPE html><html><body>", content_type="text/html") as index:
        result = interrupt_when(
            [str(venv / "bin" / "invoke"), "build-reqs", "--upgrade", f"--args=--index-url {index.url}/simple/"],
            index.arrived.is_set,
            "the resolver asked the index",
            how,
            cwd=project_copy,
            env=user_env(TMPDIR=str(tmp), UV_NO_CACHE="1", UV_FIND_LINKS="", PIP_FIND_LINKS=""),
        )
    assert (result.returncode, result.stderr) == EXPECTED[how]
    assert tree_hash(project_copy) == before
    assert temporary_files(tmp) == []


@pytest.mark.parametrize("command", ["invoke", "piperack"])
def test_update_stopped_while_fetching_the_template_is_the_same_line_from_both_commands(
    project_copy, venv, user_env, tmp_path, tree_hash, command
):
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    before = tree_hash(project_copy)
    args = ["invoke", "update-project"] if command == "invoke" else ["piperack", "update"]
    with StallingServer() as server:
        result = interrupt_when(
            [str(venv / "bin" / args[0]), args[1], "--allow-dirty", "--from", f"{server.url}/piperack-9.9.tar.gz"],
            server.arrived.is_set,
            "the template download reached the server",
            "ctrl-c",
            cwd=project_copy,
            env=user_env(TMPDIR=str(tmp)),
        )
    assert (result.returncode, result.stderr) == (130, INTERRUPTED)
    assert tree_hash(project_copy) == before
    assert temporary_files(tmp) == []


SLOW_PIPELINE = """import time
from pathlib import Path


def run(params, catalog):
    Path(params["marker"]).write_text("running")
    time.sleep(120)
"""


@pytest.mark.parametrize("how", ["ctrl-c", "sigterm"])
def test_a_pipeline_run_stopped_is_one_line_with_the_signal_status(project_copy, venv, user_env, tmp_path, how):
    """The runner (the pipeline's own process) says it stopped; invoke adds nothing and passes its status on."""
    marker = tmp_path / "marker"
    add_slow_pipeline(project_copy, SLOW_PIPELINE, marker)
    result = interrupt_when(
        [str(venv / "bin" / "invoke"), "run", "--pipeline", "slow"],
        marker.exists,
        "the pipeline started",
        how,
        cwd=project_copy,
        env=user_env(),
    )
    err = result.stderr
    status = 130 if how == "ctrl-c" else 143
    line = "interrupted: the run stopped (SIGINT)" if how == "ctrl-c" else "terminated: the run stopped (SIGTERM)"
    assert result.returncode == status, err
    assert "Traceback" not in err
    assert [x for x in err.splitlines() if not x.split(" ", 1)[-1].startswith("INFO ")] == [line], err


def test_ctrl_c_at_a_question_of_piperack_new_writes_nothing(venv, user_env, tmp_path):
    """`piperack new` asks on a terminal-less stdin that stays open: Ctrl-C at the first question."""
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    env = user_env(PYTHONUNBUFFERED="1")  # the question is written without a newline
    proc = subprocess.Popen(
        [str(venv / "bin" / "piperack"), "new", "-o", str(out_dir)],
        cwd=tmp_path,
        env=env,
        stdin=subprocess.PIPE,  # open, and no terminal: the question waits on it
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # its own process group, so "Ctrl-C" reaches exactly its tree
    )
    seen: list[str] = []
    reader = threading.Thread(target=lambda: seen.extend(iter(lambda: proc.stdout.read(1), "")), daemon=True)
    reader.start()
    wait_until(lambda: "[1/7] Project name" in "".join(seen), "the first question was asked", proc=proc)
    os.killpg(proc.pid, signal.SIGINT)
    proc.wait(timeout=60)
    reader.join(timeout=10)
    err = proc.stderr.read()
    proc.stdin.close()
    assert (proc.returncode, err) == (130, INTERRUPTED)
    assert list(out_dir.iterdir()) == []


def test_piperack_new_with_a_closed_standard_input_is_one_line_and_writes_nothing(venv, user_env, tmp_path):
    out_dir = tmp_path / "out"
    result = subprocess.run(
        [str(venv / "bin" / "piperack"), "new", "-o", str(out_dir)],
        env=user_env(),
        input="",
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert (result.returncode, result.stderr) == (
        1,
        "error: no answer on standard input (it is closed): pass --no-input for the defaults, and key=value "
        "for the answers you want\n",
    )
    assert not out_dir.exists()  # the folder -o would have made is taken back
