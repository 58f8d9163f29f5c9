"""The `piperack` command as a user types it (issue 24, item 4): no command, --help at each level,
and `piperack new -f/--overwrite` into a project that already exists. Run from the project's
virtualenv (piperack installed from this checkout's wheel); tests/test_every_option.py keeps every
option of the command covered."""

from __future__ import annotations

import json
import subprocess
import tomllib
from pathlib import Path

from tests.options_support import one_error_line, output


def _piperack(venv: Path, env: dict, cwd: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(venv / "bin" / "piperack"), *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=120
    )


def _words(text: str) -> str:
    """Help text with argparse's line wrapping undone."""
    return " ".join(text.split())


def test_piperack_alone_prints_the_help_and_exits_2(venv, user_env, tmp_path):
    helped = subprocess.run(
        [str(venv / "bin" / "piperack"), "--help"], cwd=tmp_path, env=user_env(), capture_output=True, text=True
    )
    assert (helped.returncode, helped.stderr) == (0, ""), output(helped)
    assert helped.stdout.startswith("usage: piperack [-h] [--version] COMMAND ...\n")
    words = _words(helped.stdout)
    assert "new bake a new project from the template of this piperack" in words
    assert "update merge the installed piperack's template into the project here (= invoke update-project)" in words
    assert "--version print piperack's version and exit" in words
    short = subprocess.run(
        [str(venv / "bin" / "piperack"), "-h"], cwd=tmp_path, env=user_env(), capture_output=True, text=True
    )
    assert (short.returncode, short.stdout) == (0, helped.stdout)

    bare = subprocess.run(
        [str(venv / "bin" / "piperack")], cwd=tmp_path, env=user_env(), capture_output=True, text=True
    )
    # A command is needed: the same help, on stdout, and exit 2 (argparse's status for a usage error).
    assert (bare.returncode, bare.stdout, bare.stderr) == (2, helped.stdout, "")
    assert list(tmp_path.iterdir()) == []


def test_piperack_update_help_gives_each_option_the_help_of_invoke_update_project(venv, user_env, project):
    from piperack.options import UPDATE_HELP as HELP

    helped = subprocess.run(
        [str(venv / "bin" / "piperack"), "update", "--help"],
        cwd=project,
        env=user_env(),
        capture_output=True,
        text=True,
    )
    assert (helped.returncode, helped.stderr) == (0, ""), output(helped)
    assert helped.stdout.startswith("usage: piperack update [-h] [--check] [--dry-run] [--diff]")
    words = _words(helped.stdout)
    metavars = {"from": " PATH_OR_URL", "from-version": " X"}
    for option, text in HELP.items():
        assert f"--{option}{metavars.get(option, '')} {_words(text)}" in words, option
    # the same words `invoke --help update-project` shows for the same options
    invoked = subprocess.run(
        [str(venv / "bin" / "invoke"), "--help", "update-project"],
        cwd=project,
        env=user_env(),
        capture_output=True,
        text=True,
    )
    assert invoked.returncode == 0, output(invoked)
    for option, text in HELP.items():
        metavar = "=STRING" if option in metavars else ""
        assert f"--{option}{metavar} {_words(text)}" in _words(invoked.stdout), option


def test_piperack_new_overwrite_rewrites_the_template_files_and_keeps_the_others(venv, user_env, tmp_path):
    env = user_env()
    made = _piperack(venv, env, tmp_path, "new", "--no-input", "-o", str(tmp_path))
    assert made.returncode == 0, output(made)
    root = tmp_path / "demo-project"
    readme, tasks = (root / "README.md").read_bytes(), (root / "tasks.py").read_bytes()
    (root / "README.md").write_text("our own readme\n")
    (root / "tasks.py").unlink()
    (root / "notes.txt").write_text("the team's notes\n")
    (root / "data").mkdir(exist_ok=True)
    (root / "data" / "keep.csv").write_text("a,b\n1,2\n")

    refused = _piperack(venv, env, tmp_path, "new", "--no-input", "-o", str(tmp_path))
    assert one_error_line(refused) == (
        f'error: "{root}" already exists: pass -f to write the template\'s files into it '
        "(the other files there stay), or choose another folder with -o"
    )
    assert (root / "README.md").read_text() == "our own readme\n" and not (root / "tasks.py").exists()

    forced = _piperack(venv, env, tmp_path, "new", "-f", "--no-input", "-o", str(tmp_path))
    assert (forced.returncode, forced.stderr) == (0, ""), output(forced)
    assert forced.stdout == made.stdout  # the same next steps
    assert (root / "README.md").read_bytes() == readme  # the template's file, back
    assert (root / "tasks.py").read_bytes() == tasks
    assert (root / "notes.txt").read_text() == "the team's notes\n"  # not the template's: kept
    assert (root / "data" / "keep.csv").read_text() == "a,b\n1,2\n"

    # The long spelling, with a new answer: the files that hold it are rendered again.
    again = _piperack(
        venv, env, tmp_path, "new", "--overwrite", "--no-input", "-o", str(tmp_path), "description=Hourly"
    )
    assert (again.returncode, again.stderr) == (0, ""), output(again)
    assert tomllib.loads((root / "pyproject.toml").read_text())["project"]["description"] == "Hourly"
    assert json.loads((root / ".piperack.json").read_text())["answers"]["description"] == "Hourly"
    assert (root / "notes.txt").read_text() == "the team's notes\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["demo-project"]
