"""`invoke update-project`, as a team meets it: a project baked with piperack A (this checkout),
edited and committed, then piperack B (a clone of the kit with a bumped version and a changed
template, built into a wheel) installed and the update run. The old template comes from a real
package index (pypiserver) through pip, as a released piperack would."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from scripts import kitlib

A = kitlib.kit_version()
_parts = A.split(".")
B = ".".join([_parts[0], str(int(_parts[1]) + 1), "0"])
CONFLICT_IN_README = (
    f"error: updated to piperack {B} with conflicts in 1 file(s): README.md: resolve them (<<<<<<< markers), "
    "then commit\n"
)
LINK = "Made with piperack: its tasks come from the `piperack` library pinned in `requirements-dev.txt`."
TEMPLATE = "{{cookiecutter.repo_name}}"
GIT = ["git", "-c", "user.name=Team", "-c", "user.email=team@example.invalid"]


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, f"{path}: {old!r} not found"
    path.write_text(text.replace(old, new, 1))


@pytest.fixture(scope="session")
def kit_b(kit_repo, tmp_path_factory) -> Path:
    """Version B of the kit: a git clone of A with a bumped version and a changed template."""
    repo = tmp_path_factory.mktemp("kit-b") / "piperack"
    subprocess.run(["git", "clone", "-q", str(kit_repo), str(repo)], check=True)
    _edit(repo / "pyproject.toml", f'version = "{A}"', f'version = "{B}"')
    tpl = repo / TEMPLATE
    _edit(tpl / "README.md", LINK, LINK + " Template B: now with an update task.")
    _edit(
        tpl / "docker" / "Dockerfile",
        "ARG BASE_IMAGE=",
        "# Template B: the base image is a build argument.\nARG BASE_IMAGE=",
    )
    (tpl / ".gitignore").write_text((tpl / ".gitignore").read_text() + "# Template B: logs\n/logs/\n")
    (tpl / ".editorconfig").write_text("root = true\n\n[*]\nend_of_line = lf\n")
    (tpl / "docker" / "README.md").unlink()
    (tpl / "src" / "tests" / "test_runner.py").unlink()
    _edit(tpl / "requirements.in", "duckdb>=1.0", "duckdb>=1.1")
    _edit(tpl / "tasks.py", "Add your own next to them:", "Add your own tasks next to them:")
    subprocess.run([*GIT, "commit", "-qam", "B"], cwd=repo, check=True)
    subprocess.run([*GIT, "add", "-A"], cwd=repo, check=True)
    subprocess.run([*GIT, "commit", "-qm", "B: new file"], cwd=repo, check=True)
    return repo


@pytest.fixture(scope="session")
def wheelhouse_b(kit_b, tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("wheelhouse-b")
    subprocess.run([*kitlib.uv(), "build", "--quiet", "--wheel", "--out-dir", str(folder), str(kit_b)], check=True)
    assert list(folder.glob(f"piperack-{B}-*.whl"))
    return folder


@pytest.fixture(scope="session")
def venv_b(tmp_path_factory, wheelhouse_b, kit_b) -> Path:
    """A team's virtualenv after `pip install piperack==B` (piperack from the find-links folder only)."""
    venv = tmp_path_factory.mktemp("venv-b") / "venv"
    subprocess.run([*kitlib.uv(), "venv", "--quiet", "--seed", "--python", sys.executable, str(venv)], check=True)
    kitlib.install_piperack(venv, wheelhouse_b, version=B, with_deps=True, kit=kit_b)
    return venv


@pytest.fixture(scope="session")
def index_with_a(index, wheelhouse):
    """The package index, holding the wheel of piperack A (what a release would have put there)."""
    url, folder = index
    for wheel in wheelhouse.glob(f"piperack-{A}-*.whl"):
        shutil.copy2(wheel, folder / wheel.name)
    return url


def git(root: Path, *args: str) -> str:
    return subprocess.run([*GIT, *args], cwd=root, check=True, capture_output=True, text=True).stdout


@pytest.fixture
def team_project(bake, run_invoke) -> Path:
    """A project baked with A, then edited and committed as a team would."""
    root = bake()
    _edit(root / "README.md", LINK, "Our team's monorepo for city data.")
    dockerfile = root / "docker" / "Dockerfile"
    dockerfile.write_text(dockerfile.read_text() + "# Team: nightly image\n")
    (root / "requirements.in").write_text((root / "requirements.in").read_text() + "scipy>=1.11\n")
    _edit(
        root / "src" / "tests" / "test_runner.py",
        "def ",
        "# Team: our runner checks\ndef ",
    )
    _edit(root / "conf" / "base" / "parameters" / "ingest.yml", "timeout", "# team tuned\ntimeout")
    assert run_invoke(root, "new-pipeline", "weather").returncode == 0
    git(root, "init", "-q")
    git(root, "add", "-A")
    git(root, "commit", "-qm", "baked with piperack A, then ours")
    return root


def invoke_b(venv_b, root: Path, *args: str, index_url: str | None = None, **env) -> subprocess.CompletedProcess:
    full = kitlib.invoke_env(venv_b) | env
    full.pop("PIP_FIND_LINKS", None)
    full.pop("UV_FIND_LINKS", None)
    if index_url:
        full["PIP_INDEX_URL"] = index_url
        full["PIP_NO_CACHE_DIR"] = "1"
    return subprocess.run(
        [str(venv_b / "bin" / "invoke"), *args], cwd=root, env=full, capture_output=True, text=True, timeout=600
    )


def team_tree(root: Path, tree_hash) -> dict:
    """What the team owns: pipelines, their tests, conf/, data/, requirements.txt."""
    return {
        k: v
        for k, v in tree_hash(root).items()
        if k.startswith(("src/demo_project/pipelines/", "src/tests/pipelines/", "conf/", "data/", "samples/"))
        or k == "requirements.txt"
    }


def test_update_merges_the_template_and_keeps_the_team_edits(team_project, venv_b, index_with_a, tree_hash):
    root = team_project
    checked = invoke_b(venv_b, root, "update-project", "--check")
    assert checked.returncode == 1
    assert checked.stderr == f"error: made with piperack {A}, {B} is installed: run invoke update-project\n"

    before = tree_hash(root)
    dry = invoke_b(venv_b, root, "update-project", "--dry-run", index_url=index_with_a)
    assert dry.returncode == 0, dry.stderr
    plan = {line.split()[1]: line.split()[0] for line in dry.stdout.splitlines() if line.startswith("  ")}
    assert plan == {
        ".editorconfig": "add",
        ".gitignore": "update",
        ".piperack.json": "update",
        "README.md": "conflict",
        "docker/Dockerfile": "merge",
        "docker/README.md": "delete",
        "requirements-dev.txt": "update",
        "requirements.in": "merge",
        "src/tests/test_runner.py": "keep",
        "tasks.py": "update",
    }
    assert tree_hash(root) == before

    diffed = invoke_b(venv_b, root, "update-project", "--diff", index_url=index_with_a)
    assert diffed.returncode == 0, diffed.stderr
    assert "+/logs/" in diffed.stdout and f"-piperack=={A}" in diffed.stdout and f"+piperack=={B}" in diffed.stdout
    assert tree_hash(root) == before

    team_before = team_tree(root, tree_hash)
    updated = invoke_b(venv_b, root, "update-project", index_url=index_with_a)
    assert updated.returncode == 1  # one conflict, marked inline
    assert updated.stderr == CONFLICT_IN_README

    readme = (root / "README.md").read_text()
    assert "<<<<<<< project\nOur team's monorepo for city data.\n=======\n" in readme
    assert f"{LINK} Template B: now with an update task.\n>>>>>>> piperack {B}\n" in readme
    dockerfile = (root / "docker" / "Dockerfile").read_text()
    assert "# Template B: the base image is a build argument." in dockerfile and "# Team: nightly image" in dockerfile
    assert "<<<<<<<" not in dockerfile
    assert (root / ".gitignore").read_text().endswith("/logs/\n")
    assert (root / ".editorconfig").read_text() == "root = true\n\n[*]\nend_of_line = lf\n"
    assert not (root / "docker" / "README.md").exists()
    assert "# Team: our runner checks" in (root / "src" / "tests" / "test_runner.py").read_text()
    requirements_in = (root / "requirements.in").read_text()
    assert "duckdb>=1.1\n" in requirements_in and requirements_in.endswith("scipy>=1.11\n")
    assert f"piperack=={B}\n" in (root / "requirements-dev.txt").read_text()
    assert "Add your own tasks next to them:" in (root / "tasks.py").read_text()
    assert team_tree(root, tree_hash) == team_before  # pipelines, tests, conf, data, requirements.txt untouched
    record = json.loads((root / ".piperack.json").read_text())
    assert record["piperack_version"] == B and record["answers"]["project_name"] == "Demo Project"
    assert invoke_b(venv_b, root, "update-project", "--check").returncode == 0
    assert "next: requirements.in changed: run `invoke build-reqs`" in updated.stdout
    assert not list(root.glob(".piperack-backup-*"))


def test_update_refuses_uncommitted_changes_in_files_it_touches(team_project, venv_b, index_with_a, tree_hash):
    root = team_project
    (root / "docker" / "Dockerfile").write_text((root / "docker" / "Dockerfile").read_text() + "# not committed\n")
    (root / "conf" / "base" / "catalog" / "ingest.yml").write_text("# also not committed, but not touched\n")
    before = tree_hash(root)
    refused = invoke_b(venv_b, root, "update-project", index_url=index_with_a)
    assert refused.returncode == 1
    assert refused.stderr == (
        "error: uncommitted changes in 1 file(s) the update would touch: docker/Dockerfile "
        "(commit or stash them, or pass --allow-dirty)\n"
    )
    assert tree_hash(root) == before
    allowed = invoke_b(venv_b, root, "update-project", "--allow-dirty", index_url=index_with_a)
    assert allowed.returncode == 1
    assert allowed.stderr == CONFLICT_IN_README
    assert "# not committed" in (root / "docker" / "Dockerfile").read_text()


def test_dry_run_and_diff_mark_uncommitted_files_and_warn_of_the_refusal(team_project, venv_b, wheelhouse, tree_hash):
    """A preview shows what the real run would refuse: each file with uncommitted changes it would
    touch is marked, and the refusal ends the output as a warning; exit 0, nothing written."""
    root = team_project
    wheel = next(wheelhouse.glob(f"piperack-{A}-*.whl"))
    (root / "docker" / "Dockerfile").write_text((root / "docker" / "Dockerfile").read_text() + "# not committed\n")
    (root / "conf" / "base" / "catalog" / "ingest.yml").write_text("# also not committed, but not touched\n")
    before = tree_hash(root)
    refusal = (
        "uncommitted changes in 1 file(s) the update would touch: docker/Dockerfile "
        "(commit or stash them, or pass --allow-dirty)"
    )
    for preview in ("--dry-run", "--diff"):
        shown = invoke_b(venv_b, root, "update-project", preview, "--from", str(wheel))
        assert shown.returncode == 0, shown.stderr
        assert "  merge     docker/Dockerfile  (uncommitted changes)\n" in shown.stdout
        assert "  conflict  README.md  (1 conflict(s) marked inline)\n" in shown.stdout
        assert "  update    tasks.py\n" in shown.stdout
        assert shown.stderr.splitlines() == [f"warning: {refusal}"]
        assert tree_hash(root) == before
    assert "+# Template B: the base image is a build argument.\n" in shown.stdout  # the --diff
    refused = invoke_b(venv_b, root, "update-project", "--from", str(wheel))
    assert (refused.returncode, refused.stderr) == (1, f"error: {refusal}\n")
    assert tree_hash(root) == before


def test_update_without_the_old_template_says_where_it_looked(team_project, venv_b, index, tree_hash, tmp_path):
    root = team_project
    empty = tmp_path / "empty-index"
    empty.mkdir()
    before = tree_hash(root)
    missing = invoke_b(venv_b, root, "update-project", PIP_INDEX_URL=f"file://{empty}", PIP_CONFIG_FILE="/dev/null")
    assert missing.returncode == 1
    assert missing.stderr == (
        f"error: piperack=={A} (the version that made this project) was not found by pip (index-url file://{empty}): "
        f"pass --from PATH_OR_URL (a kit checkout, a wheel or an sdist of piperack {A})\n"
    )
    bad = invoke_b(venv_b, root, "update-project", "--from", str(tmp_path / "nowhere.whl"))
    assert (bad.returncode, bad.stderr) == (1, f"error: --from {tmp_path / 'nowhere.whl'}: no such file or folder\n")
    assert tree_hash(root) == before


def test_update_from_a_wheel_a_kit_checkout_and_without_a_record(team_project, venv_b, wheelhouse, kit_repo):
    root = team_project
    wheel = next(wheelhouse.glob(f"piperack-{A}-*.whl"))
    dry = invoke_b(venv_b, root, "update-project", "--dry-run", "--from", str(wheel))
    assert dry.returncode == 0, dry.stderr
    assert "  conflict  README.md" in dry.stdout

    (root / ".piperack.json").unlink()
    git(root, "commit", "-qam", "a project from before the record")
    refused = invoke_b(venv_b, root, "update-project")
    assert refused.returncode == 1
    assert refused.stderr == (
        "error: .piperack.json records no piperack version: pass --from-version X, the piperack version that made "
        "the project (see its requirements-dev.txt)\n"
    )
    checked = invoke_b(venv_b, root, "update-project", "--check")
    assert checked.returncode == 1
    assert checked.stderr == (
        f"error: .piperack.json records no piperack version ({B} is installed): "
        "run invoke update-project --from-version X\n"
    )
    done = invoke_b(venv_b, root, "update-project", "--from-version", A, "--from", str(kit_repo))
    assert done.returncode == 1
    assert done.stderr == CONFLICT_IN_README
    assert json.loads((root / ".piperack.json").read_text())["piperack_version"] == B
    assert (root / ".editorconfig").is_file()


def test_update_refuses_an_older_installed_piperack_and_hostile_records(team_project, venv_b, tree_hash):
    root = team_project
    record = root / ".piperack.json"
    data = json.loads(record.read_text())
    cases = [
        (
            {**data, "piperack_version": "99.0"},
            f"error: made with piperack 99.0, but the older {B} is installed: "
            "upgrade piperack first (pip install -r requirements-dev.txt)",
        ),
        (
            {**data, "piperack_version": "not a version"},
            "error: .piperack.json: piperack_version 'not a version' is not a version",
        ),
        ({**data, "answers": ["x"]}, "error: .piperack.json: answers must be an object of question = answer"),
        (
            {**data, "answers": {"project_name": {"$ref": 1}}},
            "error: .piperack.json: answer 'project_name' must be a string or true/false, got {'$ref': 1}",
        ),
        ([1, 2], "error: .piperack.json: expected an object with piperack_version and answers"),
    ]
    for content, message in cases:
        record.write_text(json.dumps(content))
        before = tree_hash(root)
        result = invoke_b(venv_b, root, "update-project")
        assert result.returncode == 1, content
        assert result.stderr == message + "\n"
        assert tree_hash(root) == before
    record.write_text("{not json")
    result = invoke_b(venv_b, root, "update-project", "--check")
    assert result.returncode == 1
    assert result.stderr == (
        "error: .piperack.json: not valid JSON (Expecting property name enclosed in double quotes: "
        "line 1 column 2 (char 1))\n"
    )


def test_piperack_update_is_the_same_engine(team_project, venv_b, index_with_a):
    env = kitlib.invoke_env(venv_b) | {"PIP_INDEX_URL": index_with_a}
    env.pop("PIP_FIND_LINKS")
    result = subprocess.run(
        [str(venv_b / "bin" / "piperack"), "update", "--dry-run"],
        cwd=team_project / "src",
        env=env,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    assert f"dry run: nothing written. Updating from piperack {A} to {B} would:" in result.stdout
    assert "  merge     docker/Dockerfile" in result.stdout


def test_generated_ci_warns_when_the_template_is_behind(project):
    workflow = (project / ".github" / "workflows" / "ci.yml").read_text()
    step = workflow.split("Template is up to date", 1)[1].split("- name:", 1)[0]
    assert "invoke update-project --check" in step and "::warning" in step
