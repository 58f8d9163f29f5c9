"""Progress on long work (issue 15, item 5) and missing tools (item 7), as a person at a terminal
sees them: progress shows on a terminal (a pseudo-terminal here), never with --quiet, never in a pipe."""

from __future__ import annotations

import os
import pty
import subprocess
from pathlib import Path

import pytest

from scripts import kitlib
from tests.pull_support import write_sdist


def on_a_terminal(cmd: list[str], cwd: Path, env: dict, timeout: float = 600) -> tuple[int, str]:
    """Run ``cmd`` with a pseudo-terminal as stdin, stdout and stderr; (exit code, what it printed)."""
    master, slave = pty.openpty()
    proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdin=slave, stdout=slave, stderr=slave, close_fds=True)
    os.close(slave)
    chunks = []
    while True:
        try:
            data = os.read(master, 65536)
        except OSError:  # EIO: the other side closed
            break
        if not data:
            break
        chunks.append(data)
    os.close(master)
    return proc.wait(timeout=timeout), b"".join(chunks).decode("utf-8", "replace")


@pytest.fixture
def two_entries(project_copy, tmp_path):
    for name in ("alpha", "beta"):
        write_sdist(tmp_path / "d", name)
    text = (
        (project_copy / "pyproject.toml")
        .read_text()
        .replace(
            "[tool.piperack.pull]\n",
            f'[tool.piperack.pull]\n"{tmp_path}/d/alpha-0.1.0.tar.gz" = {{}}\n'
            f'"{tmp_path}/d/beta-0.1.0.tar.gz" = {{}}\n',
        )
    )
    (project_copy / "pyproject.toml").write_text(text)
    return project_copy


def test_pull_all_shows_a_line_per_module_on_a_terminal_only(two_entries, venv, user_env, run_invoke):
    invoke = str(venv / "bin" / "invoke")
    code, seen = on_a_terminal([invoke, "pull", "--all", "--dry-run"], two_entries, user_env())
    assert code == 0, seen
    assert "pulling [1/2]" in seen and "pulling [2/2]" in seen and "alpha-0.1.0.tar.gz" in seen
    code, quiet = on_a_terminal([invoke, "pull", "--all", "--dry-run", "--quiet"], two_entries, user_env())
    assert code == 0 and "pulling [" not in quiet and "dry run" in quiet
    piped = run_invoke(two_entries, "pull", "--all", "--dry-run")
    assert piped.returncode == 0 and "pulling [" not in piped.stdout + piped.stderr


def test_build_reqs_streams_the_resolvers_progress_on_a_terminal(project_copy, venv, user_env, run_invoke):
    invoke = str(venv / "bin" / "invoke")
    code, seen = on_a_terminal([invoke, "build-reqs"], project_copy, user_env())
    assert code == 0, seen
    assert "resolve | selecting pandas==" in seen and "resolve | Resolved " in seen
    code, quiet = on_a_terminal([invoke, "build-reqs", "--quiet"], project_copy, user_env())
    assert code == 0 and "resolve |" not in quiet
    piped = run_invoke(project_copy, "build-reqs")
    assert piped.returncode == 0 and "resolve |" not in piped.stdout + piped.stderr
    assert "DEBUG" not in (project_copy / "requirements.txt").read_text()


@pytest.fixture(scope="module")
def venv_without_dev_tools(tmp_path_factory, wheelhouse):
    """piperack and invoke, but not pytest nor libcst (a half-installed environment)."""
    venv = tmp_path_factory.mktemp("bare") / "venv"
    return kitlib.small_venv(venv, ["invoke>=2.2", "packaging>=24", "pyyaml>=6"], wheelhouse)


@pytest.mark.parametrize(
    "args, missing",
    [
        (["test"], "pytest is not installed in this environment: run `pip install -r requirements-dev.txt`"),
        (
            ["pull", "SDIST"],
            "the Python package 'tomlkit' is not installed in this environment: "
            "run `pip install -r requirements-dev.txt`",
        ),
    ],
)
def test_a_missing_development_tool_is_one_line(project_copy, venv_without_dev_tools, tmp_path, args, missing):
    sdist = write_sdist(tmp_path / "d", "cleaner")
    args = [str(sdist) if arg == "SDIST" else arg for arg in args]
    env = kitlib.invoke_env(venv_without_dev_tools)
    result = subprocess.run(
        [str(venv_without_dev_tools / "bin" / "invoke"), *args],
        cwd=project_copy,
        env=env,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 1
    assert result.stderr == f"error: {missing}\n"


def test_a_missing_runtime_requirement_is_one_line(project_copy, venv_without_dev_tools):
    env = kitlib.invoke_env(venv_without_dev_tools) | {"PYTHONPATH": str(project_copy / "src")}
    result = subprocess.run(
        [str(venv_without_dev_tools / "bin" / "python"), "-m", "demo_project", "run"],
        cwd=project_copy,
        env=env,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 1
    assert result.stderr == (
        "error: the Python package 'omegaconf' is not installed in this environment: "
        "run `pip install -r requirements.txt`\n"
    )
