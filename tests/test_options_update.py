"""`invoke update-project --ask` and every option of `piperack update`, as a team runs them
(issue 24, item 4).

A project is baked with piperack A (this checkout) and committed; piperack C, a clone of the kit
with a bumped version whose template asks one new question (team_email, shown in README.md), is
installed in its own virtualenv and updates it. The old template comes from the kit checkout
(--from), so no package index is needed.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from scripts import kitlib
from tests.options_support import one_error_line, output

A = kitlib.kit_version()
C = ".".join([A.split(".")[0], str(int(A.split(".")[1]) + 1), "0"])
LINK = "Made with piperack: its tasks come from the `piperack` library pinned in `requirements-dev.txt`."
PROMPT = "Team e-mail (for the README)"
DEFAULT_EMAIL = "data-team@example.com"
GIT = ["git", "-c", "user.name=Team", "-c", "user.email=team@example.invalid"]


def _replace(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, f"{path}: {old!r} not found"
    path.write_text(text.replace(old, new, 1))


@pytest.fixture(scope="module")
def kit_c(kit_repo, tmp_path_factory) -> Path:
    """Version C of the kit: A with a bumped version and a new question, team_email, used in README.md."""
    repo = tmp_path_factory.mktemp("kit-c") / "piperack"
    subprocess.run(["git", "clone", "-q", str(kit_repo), str(repo)], check=True)
    _replace(repo / "pyproject.toml", f'version = "{A}"', f'version = "{C}"')
    questions = json.loads((repo / "cookiecutter.json").read_text())
    asked = {}
    for key, value in questions.items():  # the new question goes after the others, before the private keys
        if key == "__prompts__":
            asked["team_email"] = DEFAULT_EMAIL
            value = {**value, "team_email": PROMPT}
        asked[key] = value
    (repo / "cookiecutter.json").write_text(json.dumps(asked, indent=2) + "\n")
    _replace(
        repo / "{{cookiecutter.repo_name}}" / "README.md", LINK, LINK + "\nContact: {{ cookiecutter.team_email }}."
    )
    return repo


@pytest.fixture(scope="module")
def venv_c(kit_c, tmp_path_factory) -> Path:
    """A team's virtualenv after `pip install piperack==C` (piperack from a find-links folder only)."""
    wheels = tmp_path_factory.mktemp("wheelhouse-c")
    subprocess.run([*kitlib.uv(), "build", "--quiet", "--wheel", "--out-dir", str(wheels), str(kit_c)], check=True)
    venv = tmp_path_factory.mktemp("venv-c") / "venv"
    subprocess.run([*kitlib.uv(), "venv", "--quiet", "--seed", "--python", sys.executable, str(venv)], check=True)
    kitlib.install_piperack(venv, wheels, version=C, with_deps=True, kit=kit_c)
    return venv


@pytest.fixture
def made_with_a(bake) -> Path:
    """A project baked with piperack A, committed."""
    root = bake()
    git(root, "init", "-q")
    git(root, "add", "-A")
    git(root, "commit", "-qm", "baked with piperack A")
    return root


def git(root: Path, *args: str) -> str:
    return subprocess.run([*GIT, *args], cwd=root, check=True, capture_output=True, text=True).stdout


def run_c(venv_c: Path, wheelhouse: Path, root: Path, argv: list[str], input: str | None = None):
    """``argv`` (its first word `invoke` or `piperack`) run from venv C in ``root``."""
    return subprocess.run(
        [str(venv_c / "bin" / argv[0]), *argv[1:]],
        cwd=root,
        env=kitlib.invoke_env(venv_c, wheelhouse),
        input=input,
        capture_output=True,
        text=True,
        timeout=300,
    )


def _contact(root: Path) -> str:
    return next(line for line in (root / "README.md").read_text().splitlines() if line.startswith("Contact: "))


# -- --ask ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "argv",
    [
        ["invoke", "update-project", "--ask", "--from", "KIT"],
        ["piperack", "update", "--ask", "--from", "KIT"],
    ],
    ids=["invoke", "piperack"],
)
def test_ask_asks_the_new_question_and_renders_the_answer(made_with_a, venv_c, wheelhouse, kit_repo, tree_hash, argv):
    root = made_with_a
    argv = [str(kit_repo) if word == "KIT" else word for word in argv]
    before = tree_hash(root)
    closed = run_c(venv_c, wheelhouse, root, argv, input="")  # stdin at its end: nobody can answer
    assert one_error_line(closed) == (
        "error: --ask: no answer for 'team_email' on standard input (it is closed): answer on a terminal, "
        "or leave out --ask to take the new questions' defaults"
    )
    assert tree_hash(root) == before
    shut = subprocess.run(  # no standard input at all (`<&-`): Python has no sys.stdin
        ["sh", "-c", 'exec "$0" "$@" <&-', str(venv_c / "bin" / argv[0]), *argv[1:]],
        cwd=root,
        env=kitlib.invoke_env(venv_c, wheelhouse),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert one_error_line(shut) == one_error_line(closed)
    assert tree_hash(root) == before

    answered = run_c(venv_c, wheelhouse, root, argv, input="ops@example.org\n")
    assert (answered.returncode, answered.stderr) == (0, ""), output(answered)
    assert f"{PROMPT} [{DEFAULT_EMAIL}]: " in answered.stdout  # only the new question is asked
    assert answered.stdout.count("]: ") == 1, answered.stdout
    assert _contact(root) == "Contact: ops@example.org."
    record = json.loads((root / ".piperack.json").read_text())
    assert (record["piperack_version"], record["answers"]["team_email"]) == (C, "ops@example.org")


def test_without_ask_the_new_question_takes_its_default(made_with_a, venv_c, wheelhouse, kit_repo):
    root = made_with_a
    updated = run_c(venv_c, wheelhouse, root, ["invoke", "update-project", "--from", str(kit_repo)], input="x\n")
    assert (updated.returncode, updated.stderr) == (0, ""), output(updated)
    assert "]: " not in updated.stdout  # nothing asked, stdin not read
    assert _contact(root) == f"Contact: {DEFAULT_EMAIL}."


# -- piperack update's other options ------------------------------------------------------------------


def test_piperack_update_check_diff_from_and_allow_dirty(made_with_a, venv_c, wheelhouse, kit_repo, tree_hash):
    root = made_with_a
    checked = run_c(venv_c, wheelhouse, root, ["piperack", "update", "--check"])
    assert one_error_line(checked) == f"error: made with piperack {A}, {C} is installed: run invoke update-project"
    assert checked.stdout == ""

    before = tree_hash(root)
    diffed = run_c(venv_c, wheelhouse, root, ["piperack", "update", "--diff", "--from", str(kit_repo)])
    assert (diffed.returncode, diffed.stderr) == (0, ""), output(diffed)
    assert f"\n+Contact: {DEFAULT_EMAIL}.\n" in diffed.stdout
    assert f"\n-piperack=={A}\n" in diffed.stdout and f"\n+piperack=={C}\n" in diffed.stdout
    assert tree_hash(root) == before  # --diff writes nothing

    missing = run_c(venv_c, wheelhouse, root, ["piperack", "update", "--from", str(root / "nowhere.whl")])
    assert one_error_line(missing) == f"error: --from {root / 'nowhere.whl'}: no such file or folder"

    dev = root / "requirements-dev.txt"
    dev.write_text(dev.read_text() + "ipython\n")  # the team's change, not committed yet
    dirty = tree_hash(root)
    refused = run_c(venv_c, wheelhouse, root, ["piperack", "update", "--from", str(kit_repo)])
    assert one_error_line(refused) == (
        "error: uncommitted changes in 1 file(s) the update would touch: requirements-dev.txt "
        "(commit or stash them, or pass --allow-dirty)"
    )
    assert tree_hash(root) == dirty
    allowed = run_c(venv_c, wheelhouse, root, ["piperack", "update", "--allow-dirty", "--from", str(kit_repo)])
    assert (allowed.returncode, allowed.stderr) == (0, ""), output(allowed)
    assert "  merge     requirements-dev.txt  (uncommitted changes)\n" in allowed.stdout
    requirements_dev = dev.read_text()
    assert f"piperack=={C}\n" in requirements_dev and requirements_dev.endswith("ipython\n")
    assert _contact(root) == f"Contact: {DEFAULT_EMAIL}."

    done = run_c(venv_c, wheelhouse, root, ["piperack", "update", "--check"])
    assert (done.returncode, done.stdout, done.stderr) == (
        0,
        f"made with piperack {C}, the installed version: up to date\n",
        "",
    )


def test_piperack_update_from_version_for_a_record_without_one(made_with_a, venv_c, wheelhouse, kit_repo, tree_hash):
    root = made_with_a
    record = json.loads((root / ".piperack.json").read_text())
    del record["piperack_version"]
    (root / ".piperack.json").write_text(json.dumps(record, indent=2) + "\n")
    git(root, "commit", "-qam", "a record from before versions were recorded")
    before = tree_hash(root)
    refused = run_c(venv_c, wheelhouse, root, ["piperack", "update", "--from", str(kit_repo)])
    assert one_error_line(refused) == (
        "error: .piperack.json records no piperack version: pass --from-version X, the piperack version "
        "that made the project (see its requirements-dev.txt)"
    )
    assert tree_hash(root) == before
    bad = run_c(venv_c, wheelhouse, root, ["piperack", "update", "--from-version", "one", "--from", str(kit_repo)])
    assert one_error_line(bad) == "error: --from-version 'one' is not a version"

    updated = run_c(venv_c, wheelhouse, root, ["piperack", "update", "--from-version", A, "--from", str(kit_repo)])
    assert (updated.returncode, updated.stderr) == (0, ""), output(updated)
    assert updated.stdout.startswith(f"fetching the piperack {A} template …\n")
    assert f"updating from piperack {A} to {C}:\n" in updated.stdout
    assert _contact(root) == f"Contact: {DEFAULT_EMAIL}."
    assert json.loads((root / ".piperack.json").read_text())["piperack_version"] == C
