"""Lint and format (issue 15, items 3 and 4): a generated project passes its own `invoke lint` on
day one, after `invoke new-pipeline` and after a pull; its CI workflow is valid for GitHub Actions
and does what teams expect; the kit itself is ruff-clean."""

from __future__ import annotations

import subprocess
import sys

import pytest
import yaml

from scripts.kitlib import KIT


@pytest.mark.parametrize("answers", [{}, {"include_example": "no", "python_version": "3.13"}], ids=["example", "bare"])
def test_a_fresh_project_passes_its_own_lint(bake, run_invoke, answers):
    root = bake(**answers)
    result = run_invoke(root, "lint")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "All checks passed" in result.stdout and "already formatted" in result.stdout


def test_lint_after_new_pipeline_and_after_a_pull(bake, run_invoke, project_copy):
    root = bake(include_example="no")
    assert run_invoke(root, "new-pipeline", "weather").returncode == 0
    assert run_invoke(project_copy, "package", "pipelines.ingest", "--alias", "cities").returncode == 0
    pulled = run_invoke(root, "pull", str(project_copy / "dist" / "cities-0.1.0.tar.gz"))
    assert pulled.returncode == 0, pulled.stderr
    result = run_invoke(root, "lint")
    assert result.returncode == 0, result.stdout + result.stderr


def test_lint_reports_in_one_error_line_and_fix_repairs(project_copy, run_invoke):
    bad = project_copy / "src" / "demo_project" / "pipelines" / "ingest" / "messy.py"
    bad.write_text("import os,sys\nx=[1,2 ,3]\n")
    result = run_invoke(project_copy, "lint")
    assert result.returncode == 1
    assert [line for line in result.stderr.splitlines() if line.startswith("error:")] == [
        "error: ruff found problems (see above); `invoke lint --fix` fixes what it can"
    ]
    assert "Traceback" not in result.stderr
    assert run_invoke(project_copy, "lint", "--fix").returncode == 0
    assert bad.read_text() == "x = [1, 2, 3]\n"
    assert run_invoke(project_copy, "lint").returncode == 0


def test_the_ci_workflow_is_valid_and_complete(project):
    workflow = project / ".github" / "workflows" / "ci.yml"
    checked = subprocess.run(
        [sys.executable, "-m", "check_jsonschema", "--builtin-schema", "vendor.github-workflows", str(workflow)],
        capture_output=True,
        text=True,
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    data = yaml.safe_load(workflow.read_text())
    assert data["permissions"] == {"contents": "read"}
    assert data["concurrency"]["cancel-in-progress"] is True and "github.ref" in data["concurrency"]["group"]
    steps = [step for job in data["jobs"].values() for step in job["steps"]]
    runs = " ".join(step.get("run", "") for step in steps)
    for command in (
        "invoke lint",
        "invoke test",
        "invoke build-reqs --check",
        "invoke docker-build",
        "invoke update-project --check",
        "invoke outdated --check",
        "invoke viz",
    ):
        assert command in runs, command
    setups = [step for step in steps if step.get("uses", "").startswith("actions/setup-python")]
    assert setups and all(step["with"]["cache"] == "pip" for step in setups)


def test_the_pre_commit_config_is_valid(project):
    config = project / ".pre-commit-config.yaml"
    checked = subprocess.run(
        [sys.executable, "-m", "pre_commit", "validate-config", str(config)], capture_output=True, text=True
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    hooks = {hook["id"] for repo in yaml.safe_load(config.read_text())["repos"] for hook in repo["hooks"]}
    assert {"ruff-check", "ruff-format"} <= hooks


def test_the_kit_is_ruff_clean():
    for args in (["check"], ["format", "--check"]):
        result = subprocess.run(
            [sys.executable, "-m", "ruff", *args, "--config", "pyproject.toml", "."],
            cwd=KIT,
            capture_output=True,
            text=True,
        )
        assert result.returncode == 0, result.stdout + result.stderr
