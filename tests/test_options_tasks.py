"""Task options that had no test at the level the user acts (issue 24, item 4), each run as
`invoke TASK --option` in a baked project and checked by its effect: what is printed, what is
written, what is refused. No Docker engine or Airflow needed; tests/test_every_option.py keeps
every option covered."""

from __future__ import annotations

import ast
import hashlib
import re
import tomllib
from pathlib import Path

from tests.options_support import on_a_terminal, one_error_line, output
from tests.pull_support import NODES, write_sdist

PACKAGE = "demo_project"


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _pulled(root: Path) -> dict:
    return tomllib.loads((root / "pyproject.toml").read_text())["tool"]["piperack"]["pulled"]


# -- run --log-level -------------------------------------------------------------------------------


def test_run_refuses_an_unknown_log_level_in_one_line_before_running(project_copy, run_invoke, tree_hash):
    before = tree_hash(project_copy)
    refused = run_invoke(project_copy, "run", "--log-level", "NOPE")
    assert one_error_line(refused) == "error: --log-level 'NOPE': expected DEBUG, INFO, WARNING, ERROR or CRITICAL"
    assert refused.stdout == ""
    assert tree_hash(project_copy) == before  # nothing ran: no database, no log file
    # The level names are the contract, not their case: `error` is ERROR, and the INFO records go.
    quiet = run_invoke(project_copy, "run", "--log-level", "error")
    assert (quiet.returncode, quiet.stderr) == (0, ""), output(quiet)
    assert (project_copy / "data" / "ingest.duckdb").is_file()


# -- package --quiet -------------------------------------------------------------------------------


def test_package_quiet_on_a_terminal_still_prints_each_result_and_errors(project_copy, venv, user_env):
    invoke = str(venv / "bin" / "invoke")
    code, seen = on_a_terminal([invoke, "package", "--all", "--quiet"], project_copy, user_env(), timeout=120)
    assert code == 0, seen
    sdist = project_copy / "dist" / "ingest-0.1.0.tar.gz"
    size = sdist.stat().st_size
    lines = seen.splitlines()
    assert lines[0] == f"[1/1] pipelines.ingest -> dist/ingest-0.1.0.tar.gz  {size} bytes  sha256:{_sha256(sdist)}"
    assert re.fullmatch(rf"packaged 1 of 1 micro-package\(s\), {size} bytes, in \d+\.\d\d s", lines[1]), seen
    assert len(lines) == 2, seen

    code, seen = on_a_terminal([invoke, "package", "pipelines.nope", "--quiet"], project_copy, user_env(), timeout=120)
    assert (code, seen) == (
        1,
        f"error: no module {PACKAGE}.pipelines.nope: src/{PACKAGE}/pipelines/nope/ does not exist\n",
    )


# -- pull --sha256, --allow-conflicts, --allow-direct-references ----------------------------------


def test_pull_with_the_archives_own_sha256_pulls_it_and_another_digest_is_refused(
    project_copy, run_invoke, tmp_path, tree_hash
):
    sdist = write_sdist(tmp_path / "d", "cleaner")
    digest = _sha256(sdist)
    other = _sha256(write_sdist(tmp_path / "e", "cleaner", "0.2.0"))
    before = tree_hash(project_copy)
    refused = run_invoke(project_copy, "pull", str(sdist), "--sha256", other)
    assert one_error_line(refused) == f"error: {sdist}: sha256 is {digest}, expected {other}; refused"
    assert tree_hash(project_copy) == before

    pulled = run_invoke(project_copy, "pull", str(sdist), "--sha256", digest)
    assert pulled.returncode == 0, output(pulled)
    assert pulled.stdout.startswith(f"pulled cleaner 0.1.0 from {sdist} (sha256 {digest[:12]}…)\n")
    nodes = project_copy / "src" / PACKAGE / "pipelines" / "cleaner" / "nodes.py"
    # the archive's own code, its absolute import of itself rewritten to where it now lives
    assert nodes.read_text() == NODES.format(name="cleaner").replace(
        "from cleaner.helpers", f"from {PACKAGE}.pipelines.cleaner.helpers"
    )
    assert _pulled(project_copy)["pipelines.cleaner"] == {
        "source": str(sdist),
        "version": "0.1.0",
        "sha256": digest,
        "package": "cleaner",
    }


def test_pull_allow_conflicts_adds_a_requirement_no_version_can_satisfy(project_copy, run_invoke, tmp_path, tree_hash):
    sdist = write_sdist(tmp_path / "d", "legacy", requires=["pandas<1"])
    before = tree_hash(project_copy)
    refused = run_invoke(project_copy, "pull", str(sdist))
    assert one_error_line(refused) == (
        "error: nothing pulled: no version satisfies both pandas<1 (the package) vs pandas>=2.1 (requirements.in); "
        "pass --allow-conflicts to add it anyway (then `invoke build-reqs` will say what to do)"
    )
    assert tree_hash(project_copy) == before

    requirements_in = (project_copy / "requirements.in").read_text()
    allowed = run_invoke(project_copy, "pull", str(sdist), "--allow-conflicts")
    assert allowed.returncode == 0, output(allowed)
    assert allowed.stderr == (
        "warning: requirement 'pandas<1' conflicts with requirements.in line 'pandas>=2.1'; added anyway\n"
    )
    assert "requirements.in: added pandas<1\n" in allowed.stdout
    assert (project_copy / "requirements.in").read_text() == requirements_in + "pandas<1\n"
    assert (project_copy / "src" / PACKAGE / "pipelines" / "legacy" / "nodes.py").is_file()


def test_pull_allow_direct_references_takes_a_name_at_url_requirement(project_copy, run_invoke, tmp_path, tree_hash):
    reference = "tinylib @ https://example.invalid/tinylib-1.0-py3-none-any.whl"
    sdist = write_sdist(tmp_path / "d", "fetcher", requires=[reference])
    before = tree_hash(project_copy)
    refused = run_invoke(project_copy, "pull", str(sdist))
    assert one_error_line(refused) == (
        f"error: nothing pulled: the package requires direct references ({reference}), which pip would fetch "
        "from wherever they point; pass --allow-direct-references to take them"
    )
    assert tree_hash(project_copy) == before

    requirements_in = (project_copy / "requirements.in").read_text()
    allowed = run_invoke(project_copy, "pull", str(sdist), "--allow-direct-references")
    assert (allowed.returncode, allowed.stderr) == (0, ""), output(allowed)
    assert f"requirements.in: added {reference}\n" in allowed.stdout
    assert (project_copy / "requirements.in").read_text() == requirements_in + reference + "\n"
    assert (project_copy / "src" / PACKAGE / "pipelines" / "fetcher" / "nodes.py").is_file()


# -- airflow-dag --pipeline --------------------------------------------------------------------------


def test_airflow_dag_pipeline_writes_a_dag_of_only_the_named_pipelines(project_copy, run_invoke):
    assert run_invoke(project_copy, "new-pipeline", "report").returncode == 0
    dag = project_copy / "airflow" / "dags" / f"{PACKAGE}.py"
    everything = run_invoke(project_copy, "airflow-dag")
    assert everything.returncode == 0, output(everything)
    assert _task_ids(dag) == ["ingest", "report"]

    only = run_invoke(project_copy, "airflow-dag", "--pipeline", "report")
    assert only.returncode == 0, output(only)
    assert only.stdout.startswith(f"wrote airflow/dags/{PACKAGE}.py: DAG {PACKAGE}, docker target, tasks report;")
    assert _task_ids(dag) == ["report"]
    assert "#     invoke airflow-dag --pipeline report\n" in dag.read_text()
    # The DAG now answers for that selection only: --check without it says the file is stale.
    assert run_invoke(project_copy, "airflow-dag", "--check", "--pipeline", "report").returncode == 0
    assert run_invoke(project_copy, "airflow-dag", "--check").returncode == 1

    unknown = run_invoke(project_copy, "airflow-dag", "--pipeline", "nope")
    assert one_error_line(unknown) == "error: unknown pipeline 'nope' (available: ingest, report)"


def _task_ids(dag: Path) -> list[str]:
    """The pipelines the DAG file makes a task of (its `_pipeline_operator("<name>")` calls), in file order."""
    calls = [
        node
        for node in ast.walk(ast.parse(dag.read_text()))
        if isinstance(node, ast.Call) and getattr(node.func, "id", "") == "_pipeline_operator"
    ]
    return [call.args[0].value for call in sorted(calls, key=lambda c: c.lineno)]


# -- airflow-test --date, --venv: refused before Airflow runs ------------------------------------------


def test_airflow_test_refuses_a_bad_date_and_a_venv_without_airflow(project_copy, run_invoke, tmp_path, tree_hash):
    # the kubernetes target needs no engine and no image: the checks come straight after the DAG file's
    options = ["--target", "kubernetes"]
    assert run_invoke(project_copy, "airflow-dag", *options).returncode == 0
    before = tree_hash(project_copy)
    dated = run_invoke(project_copy, "airflow-test", *options, "--date", "someday")
    assert one_error_line(dated) == "error: invalid --date 'someday': use YYYY-MM-DD or an ISO date-time"
    empty = tmp_path / "empty-venv"
    empty.mkdir()
    no_airflow = run_invoke(project_copy, "airflow-test", *options, "--date", "2026-03-15", "--venv", str(empty))
    assert one_error_line(no_airflow) == (
        f"error: {empty} is not an Airflow virtualenv (no bin/airflow); "
        "leave --venv and PIPERACK_AIRFLOW_VENV unset to have one made"
    )
    assert tree_hash(project_copy) == before
