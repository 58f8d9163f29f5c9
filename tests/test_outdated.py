"""`invoke outdated` against a real index: project A publishes 0.1.0 then 0.2.0 of a pipeline to the
authenticated pypiserver; project B pulled it by name (bare and pinned) and from a file."""

from __future__ import annotations

import subprocess
import uuid
from pathlib import Path

import pytest
import yaml

from tests.pull_support import StallingServer, free_port, interrupt_when

HEADER = ["module", "package", "recorded", "allowed", "newest"]


def _ok(result):
    assert result.returncode == 0, result.stdout + result.stderr
    return result


def _cells(stdout: str) -> list[list[str]]:
    """The table, a list of cells per line (the status is the sixth cell, spaces kept)."""
    return [line.split(None, 5) for line in stdout.splitlines()]


def _pkg(root: Path) -> str:
    return next(p.name for p in (root / "src").iterdir() if p.name != "tests" and (p / "__init__.py").exists())


@pytest.fixture
def shared(project_copy, bake, run_invoke, upload_index):
    """(A, B, name): A published <name> 0.1.0; B pulled it bare, pinned (==0.1.0, as `pinned`) and as a file."""
    a, b, name = project_copy, bake(project_name="Team B", include_example="no"), f"out{uuid.uuid4().hex[:12]}"
    creds = {"TWINE_USERNAME": upload_index.user, "TWINE_PASSWORD": upload_index.password}
    _ok(run_invoke(a, "package", "pipelines.ingest", "--alias", name))
    _ok(run_invoke(a, "publish", "--repository-url", upload_index.url, env=creds))
    _ok(run_invoke(b, "pull", name, "--index-url", upload_index.simple))
    _ok(run_invoke(b, "pull", f"{name}==0.1.0", "--alias", "pinned", "--index-url", upload_index.simple))
    _ok(run_invoke(b, "pull", str(a / "dist" / f"{name}-0.1.0.tar.gz"), "--alias", "local"))
    return a, b, name, creds


def test_outdated_after_a_new_version_is_published(shared, run_invoke, upload_index, tree_hash, user_env):
    a, b, name, creds = shared
    local = f"cannot be checked: pulled from a file or URL ({a / 'dist' / f'{name}-0.1.0.tar.gz'})"
    before = tree_hash(b)
    now = _ok(run_invoke(b, "outdated", "--check"))
    assert _cells(now.stdout) == [
        HEADER,
        [f"pipelines.{name}", name, "0.1.0", "0.1.0", "0.1.0", "up to date"],
        ["pipelines.pinned", name, "0.1.0", "0.1.0", "0.1.0", "up to date"],
        ["pipelines.local", "-", "0.1.0", "-", "-", local],
    ]

    init = a / "src" / _pkg(a) / "pipelines" / "ingest" / "__init__.py"
    init.write_text(init.read_text(encoding="utf-8").replace('"0.1.0"', '"0.2.0"'), encoding="utf-8")
    _ok(run_invoke(a, "package", "pipelines.ingest", "--alias", name))
    _ok(run_invoke(a, "publish", "--repository-url", upload_index.url, env=creds))

    later = _ok(run_invoke(b, "outdated"))
    rows = [
        HEADER,
        [f"pipelines.{name}", name, "0.1.0", "0.2.0", "0.2.0", f"behind: invoke pull --upgrade {name}"],
        ["pipelines.pinned", name, "0.1.0", "0.1.0", "0.2.0", "up to date within its range (newer outside it)"],
        ["pipelines.local", "-", "0.1.0", "-", "-", local],
    ]
    assert _cells(later.stdout) == rows
    checked = run_invoke(b, "outdated", "--check")
    assert checked.returncode == 1
    assert _cells(checked.stdout) == rows
    assert checked.stderr == f"error: 1 pulled pipeline(s) behind their index: pipelines.{name} (0.1.0 -> 0.2.0)\n"
    assert tree_hash(b) == before

    # The generated CI's step, as written in its workflow: a warning annotation, and the job goes on.
    step = _ci_step(b, "invoke outdated --check")
    runner_temp = b.parent / "runner-temp"
    runner_temp.mkdir()
    ci = subprocess.run(
        ["bash", "-e", "-c", step], cwd=b, env=user_env(RUNNER_TEMP=str(runner_temp)), capture_output=True, text=True
    )
    assert ci.returncode == 0, ci.stderr
    assert ci.stdout.splitlines()[-1] == (
        f"::warning title=piperack::1 pulled pipeline(s) behind their index: pipelines.{name} (0.1.0 -> 0.2.0)"
    )


def _ci_step(root: Path, command: str) -> str:
    workflow = yaml.safe_load((root / ".github" / "workflows" / "ci.yml").read_text(encoding="utf-8"))
    runs = [step.get("run", "") for job in workflow["jobs"].values() for step in job["steps"]]
    (found,) = [run for run in runs if command in run]
    return found


def _point_record_at(root: Path, module: str, index: str) -> None:
    text = (root / "pyproject.toml").read_text(encoding="utf-8")
    head, sep, rest = text.partition(f'"{module}" = {{')
    line, nl, tail = rest.partition("\n")
    old = line.split('index = "', 1)[1].split('"', 1)[0]
    (root / "pyproject.toml").write_text(head + sep + line.replace(old, index) + nl + tail, encoding="utf-8")


def test_an_index_that_fails_or_stalls_is_reported_per_pipeline(shared, run_invoke):
    """A dead index, then one that never finishes its answer: each row says so, the deadline holds,
    and --check fails naming them."""
    _, b, name, _ = shared
    dead = f"http://127.0.0.1:{free_port()}/simple/"
    _point_record_at(b, f"pipelines.{name}", dead)
    result = run_invoke(b, "outdated", "--check")
    assert result.returncode == 1
    assert _cells(result.stdout)[1:3] == [
        [
            f"pipelines.{name}",
            name,
            "0.1.0",
            "-",
            "-",
            f"cannot be checked: {dead}{name}/: request failed (ConnectionError) after 3 retries",
        ],
        ["pipelines.pinned", name, "0.1.0", "0.1.0", "0.1.0", "up to date"],
    ]
    assert result.stderr == f"error: 1 could not be checked: pipelines.{name}\n"
    with StallingServer(prefix=b"<html><body>", content_type="text/html") as stalling:
        _point_record_at(b, "pipelines.pinned", stalling.url + "/simple/")
        result = run_invoke(b, "outdated", "--check", env={"PIPERACK_OUTDATED_TIMEOUT": "1"})
    assert result.returncode == 1
    assert _cells(result.stdout)[2] == [
        "pipelines.pinned",
        name,
        "0.1.0",
        "-",
        "-",
        f"no answer from {stalling.url}/simple/ within 1 s",
    ]
    assert result.stderr == f"error: 2 could not be checked: pipelines.{name}, pipelines.pinned\n"


def test_nothing_pulled(project_copy, run_invoke):
    result = _ok(run_invoke(project_copy, "outdated", "--check"))
    assert result.stdout == "no pulled pipelines ([tool.piperack.pulled] in pyproject.toml is empty)\n"


@pytest.mark.parametrize(("how", "status", "line"), [("ctrl-c", 130, "interrupted"), ("sigterm", 143, "terminated")])
def test_outdated_stopped_while_its_index_stalls(project_copy, venv, user_env, tree_hash, how, status, line):
    """Ctrl-C (to the process group, as a terminal sends it) or SIGTERM while the threads wait on an
    index: one line, the signal's status, the project unchanged."""
    with StallingServer(prefix=b"<html><body>", content_type="text/html") as stalling:
        with open(project_copy / "pyproject.toml", "a", encoding="utf-8") as handle:
            handle.write(
                '\n[tool.piperack.pulled]\n"pipelines.shared" = {source = "shared~=0.1", version = "0.1.0", '
                f'sha256 = "00", index = "{stalling.url}/simple/"}}\n'
            )
        before = tree_hash(project_copy)
        result = interrupt_when(
            [str(venv / "bin" / "invoke"), "outdated"],
            stalling.arrived.is_set,
            "outdated asked the index",
            how,
            cwd=project_copy,
            env=user_env(),
        )
    assert (result.returncode, result.stderr, result.stdout) == (status, f"{line}: nothing was left half-done\n", "")
    assert tree_hash(project_copy) == before
