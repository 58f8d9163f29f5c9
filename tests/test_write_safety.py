"""The write session at the level the user acts: nothing is written, read or deleted through a
linked folder of the project, by a task or by the project's runner."""

from __future__ import annotations

import shutil


def test_the_runner_writes_no_log_through_a_linked_logs_folder(project_copy, run_invoke, tmp_path, tree_hash):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    shutil.rmtree(project_copy / "logs", ignore_errors=True)  # a run of the session's project may have made it
    (project_copy / "logs").symlink_to(elsewhere, target_is_directory=True)
    ran = run_invoke(project_copy, "run", "--pipeline", "ingest")
    assert ran.returncode == 0, ran.stderr
    warnings = [line for line in ran.stderr.splitlines() if "logging:" in line]
    assert len(warnings) == 1 and warnings[0].endswith(
        "logging: cannot write logs/run.log (logs is a symbolic link); logging to the console only"
    ), ran.stderr
    assert list(elsewhere.iterdir()) == []


def test_new_pipeline_writes_nothing_through_a_linked_folder(project_copy, run_invoke, tmp_path, tree_hash):
    elsewhere = tmp_path / "elsewhere"
    (project_copy / "src" / "tests").rename(elsewhere)
    (project_copy / "src" / "tests").symlink_to(elsewhere, target_is_directory=True)
    before, outside = tree_hash(project_copy), tree_hash(elsewhere)
    result = run_invoke(project_copy, "new-pipeline", "fresh")
    assert (result.returncode, result.stderr) == (
        1,
        "error: src/tests/pipelines/fresh/__init__.py: src/tests is a symbolic link; piperack writes, reads and "
        "deletes nothing through a link (replace it with a folder)\n",
    )
    assert tree_hash(project_copy) == before and tree_hash(elsewhere) == outside


def test_airflow_dag_writes_nothing_through_a_linked_folder(project_copy, run_invoke, tmp_path, tree_hash):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (project_copy / "airflow").symlink_to(elsewhere, target_is_directory=True)
    before = tree_hash(project_copy)
    result = run_invoke(project_copy, "airflow-dag")
    assert (result.returncode, result.stderr) == (
        1,
        "error: --output airflow/dags: airflow is a symbolic link; piperack writes, reads and compares nothing "
        "through a link in the project (to write where it leads, give that folder as an absolute path)\n",
    )
    assert tree_hash(project_copy) == before and list(elsewhere.iterdir()) == []
