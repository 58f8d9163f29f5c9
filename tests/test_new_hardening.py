"""`piperack new` as a careless user or an attacker meets it (issue 20, kind 9; shapes, kind 10): a
`-o` that is a file or lies below one, `-f` over a project holding symbolic links, an existing
folder, and cookiecutter's own config file of the wrong shape. Each refusal is one line, exit 1,
with the folders and files around byte-for-byte as they were and nothing left in HOME."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.conftest import tree_hash
from tests.options_support import one_error_line, output


def _new(venv: Path, env: dict, cwd: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(venv / "bin" / "piperack"), "new", "--no-input", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture
def home(tmp_path) -> Path:
    """An empty HOME: piperack new leaves nothing in it (cookiecutter's replay file included)."""
    folder = tmp_path / "home"
    folder.mkdir()
    return folder


def test_o_naming_a_file_or_a_path_below_one_is_one_line(venv, user_env, tmp_path, home):
    env = user_env(HOME=str(home))
    (tmp_path / "afile").write_text("mine\n")
    before = tree_hash(tmp_path)
    assert one_error_line(_new(venv, env, tmp_path, "-o", "afile")) == (
        "error: -o afile is a file, not a folder; nothing written"
    )
    assert one_error_line(_new(venv, env, tmp_path, "-o", "afile/sub/deeper")) == (
        "error: -o afile/sub/deeper: afile is a file, not a folder; nothing written"
    )
    (tmp_path / "a\nfile").write_text("mine\n")
    before = tree_hash(tmp_path)
    assert one_error_line(_new(venv, env, tmp_path, "-o", "a\nfile/sub")) == (
        "error: -o 'a\\nfile/sub': 'a\\nfile' is a file, not a folder; nothing written"
    )
    (tmp_path / "dangling").symlink_to(tmp_path / "nowhere")
    before = tree_hash(tmp_path)
    assert one_error_line(_new(venv, env, tmp_path, "-o", "dangling/sub")) == (
        "error: -o dangling/sub: dangling is a link to nothing; nothing written"
    )
    # A refused answer takes back the folders -o made for it.
    assert one_error_line(_new(venv, env, tmp_path, "-o", "new/deeper", "project_name=")) == (
        "error: project_name must not be empty"
    )
    assert tree_hash(tmp_path) == before


def test_an_existing_folder_says_how_to_proceed_once(venv, user_env, tmp_path, home):
    env = user_env(HOME=str(home))
    (tmp_path / "demo-project").mkdir()
    (tmp_path / "demo-project" / "mine.txt").write_text("keep\n")
    (tmp_path / "other").write_text("a file where the project would go\n")
    before = tree_hash(tmp_path)
    refused = _new(venv, env, tmp_path)
    assert refused.stderr == (
        'error: "demo-project" already exists: pass -f to write the template\'s files into it '
        "(the other files there stay), or choose another folder with -o\n"
    )
    assert refused.returncode == 1 and "Error:" not in refused.stderr
    assert one_error_line(_new(venv, env, tmp_path, "-f", "repo_name=other")) == (
        'error: "other" exists and is not a folder (a file or a link); nothing written'
    )
    (tmp_path / "linked").symlink_to(tmp_path / "demo-project", target_is_directory=True)
    before = tree_hash(tmp_path)
    assert one_error_line(_new(venv, env, tmp_path, "-f", "repo_name=linked")) == (
        'error: "linked" exists and is not a folder (a file or a link); nothing written'
    )
    assert tree_hash(tmp_path) == before and sorted(p.name for p in home.iterdir()) == []


def test_f_over_a_project_holding_links_never_writes_through_them(venv, user_env, tmp_path, home):
    env = user_env(HOME=str(home))
    made = _new(venv, env, tmp_path)
    assert made.returncode == 0, output(made)
    root, victim = tmp_path / "demo-project", tmp_path / "victim"
    victim.mkdir()
    (victim / "README.md").write_text("the victim's own file\n")
    (victim / "Dockerfile").write_text("FROM the-victims-image\n")
    (root / "README.md").unlink()
    (root / "README.md").symlink_to(victim / "README.md")
    before, victim_before = tree_hash(root), tree_hash(victim)
    assert one_error_line(_new(venv, env, tmp_path, "-f")) == (
        "error: README.md: a symbolic link; piperack writes nothing through a link"
    )
    assert tree_hash(root) == before and tree_hash(victim) == victim_before

    (root / "README.md").unlink()
    (root / "README.md").write_text("ours\n")
    docker = root / "docker"
    for child in docker.iterdir():
        child.unlink()
    docker.rmdir()
    docker.symlink_to(victim, target_is_directory=True)
    before = tree_hash(root)
    assert one_error_line(_new(venv, env, tmp_path, "-f")) == (
        "error: docker/Dockerfile: docker is a symbolic link; piperack writes, reads and deletes nothing "
        "through a link (replace it with a folder)"
    )
    assert tree_hash(root) == before and tree_hash(victim) == victim_before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["demo-project", "home", "victim"]


@pytest.mark.parametrize(
    "config, message",
    [
        ("default_context: abc\n", "default_context: expected a mapping of names to values, got str"),
        ("default_context: [a, b]\n", "default_context: expected a mapping of names to values, got list"),
        ("abbreviations: gh\n", "abbreviations: expected a mapping of names to values, got str"),
        (
            "default_context: {python_version: ['3.12']}\n",
            "default_context.python_version: expected a single value (a string, number or true/false), got list",
        ),
        (
            "default_context: {include_example: {a: 1}}\n",
            "default_context.include_example: expected a single value (a string, number or true/false), got dict",
        ),
        ("cookiecutters_dir: [a]\n", "cookiecutters_dir: expected a folder path (a string), got list"),
        ("- a\n", "the file: expected a mapping (default_context, abbreviations, ...), got list"),
        ("a:\n" + "  - " * 50_000 + "x\n", "malformed YAML: nested more than 100 levels deep"),
    ],
    ids=["context-str", "context-list", "abbrev-str", "value-list", "value-dict", "dir-list", "top-list", "deep"],
)
def test_cookiecutter_config_of_the_wrong_shape_is_one_line_naming_the_key(
    venv, user_env, tmp_path, home, config, message
):
    path = tmp_path / "cookiecutter.yml"
    path.write_text(config)
    before = tree_hash(tmp_path)
    env = user_env(HOME=str(home), COOKIECUTTER_CONFIG=str(path))
    assert one_error_line(_new(venv, env, tmp_path)) == f"error: {path}: {message}"
    assert tree_hash(tmp_path) == before


def test_the_users_cookiecutter_defaults_still_apply_and_nothing_lands_in_home(venv, user_env, tmp_path, home):
    path = tmp_path / "cookiecutter.yml"
    path.write_text("default_context:\n  project_name: Zed Data\n  include_example: false\n")
    made = _new(venv, user_env(HOME=str(home), COOKIECUTTER_CONFIG=str(path)), tmp_path)
    assert made.returncode == 0, output(made)
    assert (tmp_path / "zed-data" / "pyproject.toml").is_file()
    assert not (tmp_path / "zed-data" / "src" / "zed_data" / "pipelines" / "ingest").exists()
    assert sorted(p.name for p in home.iterdir()) == []  # no ~/.cookiecutter_replay


def test_nothing_is_left_in_the_temporary_folder(venv, user_env, tmp_path, home):
    """cookiecutter writes each rendered hook to a temporary file it never removes: piperack gives it
    a folder of its own inside the staging folder, so a bake leaves the system's TMPDIR as it was."""
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    made = _new(venv, user_env(HOME=str(home), TMPDIR=str(scratch)), tmp_path, "project_name=Tidy")
    assert made.returncode == 0, output(made)
    assert (tmp_path / "tidy" / "pyproject.toml").is_file()
    assert sorted(p.name for p in scratch.iterdir()) == []
    refused = _new(venv, user_env(HOME=str(home), TMPDIR=str(scratch)), tmp_path, "project_name=Tidy")
    assert refused.returncode == 1, output(refused)
    assert sorted(p.name for p in scratch.iterdir()) == []
