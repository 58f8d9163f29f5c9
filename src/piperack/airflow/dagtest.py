"""airflow-test's Airflow: a throwaway home with SQLite metadata, run from the cached virtualenv.

``start_airflow`` makes the home and migrates its database; ``check_imports`` asks Airflow for the
DAG file's import errors; then the target runs its own test: ``dags_test`` (docker: every task on
the local engine, the run's states read back) or ``validate_pods`` (kubernetes: each task's pod,
as the operator builds it, checked against the Kubernetes API schema; no cluster).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from .. import ui
from ..errors import PiperackError, first_line
from .venv import airflow_env

KUBERNETES_VERSION = "1.33"  # the API schema the kubernetes target's pods are validated against

# Runs in the Airflow virtualenv: import the DAG file as Airflow would, report what it holds.
INSPECT = r"""
import importlib.util, json, sys
from kubernetes.client import ApiClient
path, version, validate = sys.argv[1], sys.argv[2], sys.argv[3] == "1"
spec = importlib.util.spec_from_file_location("piperack_dag_under_test", path)
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
from airflow.sdk import DAG
dags = [v for v in vars(module).values() if isinstance(v, DAG)]
out = []
for dag in dags:
    tasks = {}
    for task in dag.tasks:
        info = {"upstream": sorted(task.upstream_task_ids), "retries": task.retries,
                "retry_delay": task.retry_delay.total_seconds(), "operator": type(task).__name__,
                "owner": task.owner}
        if hasattr(task, "build_pod_request_obj"):
            pod = ApiClient().sanitize_for_serialization(task.build_pod_request_obj(context=None, dry_run=True))
            info["pod"] = pod
            if validate:
                import kubernetes_validate
                try:
                    kubernetes_validate.validate(pod, version, strict=True)
                    info["valid"] = True
                except kubernetes_validate.ValidationError as exc:
                    info["valid"] = False
                    info["problem"] = str(exc).splitlines()[0]
        else:
            info.update(image=task.image, command=task.command, user=task.user, network_mode=task.network_mode,
                        mounts=[dict(m) for m in task.mounts], mem_limit=task.mem_limit)
        tasks[task.task_id] = info
    schedule = getattr(dag, "schedule", None)
    out.append({"dag_id": dag.dag_id, "schedule": schedule if isinstance(schedule, str) or schedule is None
                else type(schedule).__name__,
                "start_date": dag.start_date.isoformat() if dag.start_date else None, "catchup": dag.catchup,
                "max_active_runs": dag.max_active_runs, "tags": sorted(dag.tags), "tasks": tasks})
print("PIPERACK-INSPECT " + json.dumps(out, default=str))
"""


@dataclass(frozen=True)
class AirflowHome:
    """A private Airflow: its virtualenv, its AIRFLOW_HOME and the environment it runs with."""

    venv: Path
    home: Path
    env: dict


def airflow_cli(venv: Path, env: dict, *args: str, stream: bool = False) -> subprocess.CompletedProcess:
    cmd = [str(venv / "bin" / "airflow"), *args]
    if stream:
        return subprocess.run(cmd, env=env, cwd=env["AIRFLOW_HOME"], text=True)
    return subprocess.run(cmd, env=env, cwd=env["AIRFLOW_HOME"], capture_output=True, text=True)


def start_airflow(venv: Path, home: Path, dags_folder: Path) -> AirflowHome:
    """An Airflow home in ``home`` with its SQLite metadata database migrated."""
    airflow = AirflowHome(venv, home, airflow_env(venv, home, dags_folder))
    ui.info(f"Airflow home {home} (SQLite); migrating the metadata database")
    proc = airflow_cli(venv, airflow.env, "db", "migrate")
    if proc.returncode != 0:
        sys.stderr.write(proc.stderr[-3000:])
        last = [line for line in proc.stderr.splitlines() if line.strip()]
        raise PiperackError(f"airflow db migrate failed: {last[-1].strip()[:200] if last else 'no output'}")
    return airflow


def inspect_dag(venv: Path, path: Path, env: dict, validate: bool = False) -> list[dict]:
    """Import the DAG file in the Airflow virtualenv and describe its DAGs (and each pod, validated)."""
    proc = subprocess.run(
        [str(venv / "bin" / "python"), "-c", INSPECT, str(path), KUBERNETES_VERSION, "1" if validate else "0"],
        capture_output=True,
        text=True,
        env=env,
        cwd=env["AIRFLOW_HOME"],
    )
    marker = [line for line in proc.stdout.splitlines() if line.startswith("PIPERACK-INSPECT ")]
    if proc.returncode != 0 or not marker:
        sys.stderr.write(proc.stderr[-3000:])
        last = [line for line in proc.stderr.splitlines() if line.strip()]
        raise PiperackError(f"{path.name} does not import in Airflow: {last[-1].strip() if last else 'no output'}")
    return json.loads(marker[-1].removeprefix("PIPERACK-INSPECT "))


def _json_from(output: str):
    """The JSON document in a CLI's output (Airflow may log lines before it)."""
    for start in (i for i, ch in enumerate(output) if ch in "[{"):
        try:
            return json.loads(output[start:])
        except ValueError:
            continue
    return None


def import_errors(venv: Path, env: dict, path: Path) -> list[str]:
    proc = airflow_cli(venv, env, "dags", "list-import-errors", "--local", "--output", "json")
    errors = _json_from(proc.stdout)
    if errors is None:
        if proc.returncode != 0:
            raise PiperackError(f"airflow dags list-import-errors failed: {first_line(proc.stderr or proc.stdout)}")
        return []
    mine = []
    for item in errors if isinstance(errors, list) else []:
        where = str(item.get("filepath") or item.get("fileloc") or "")
        if not where or os.path.basename(where) == path.name:
            mine.append(str(item.get("error") or item).strip())
    return mine


def check_imports(airflow: AirflowHome, path: Path, label: str) -> None:
    """Refuse a DAG file Airflow reports an import error for (its last line; the whole error on stderr)."""
    errors = import_errors(airflow.venv, airflow.env, path)
    if errors:
        sys.stderr.write(errors[0][-3000:] + "\n")
        last = [line for line in errors[0].splitlines() if line.strip()]
        raise PiperackError(f"{label} does not import in Airflow: {last[-1].strip() if last else 'import error'}")


def dags_test(airflow: AirflowHome, dag_id: str, date: str | None, conf: str | None = None) -> int:
    """``airflow dags test``: one run of every task, its output streamed; then the run's states in one
    line. 0 when every task succeeded."""
    args = ["dags", "test", dag_id]
    if date:
        args.append(date)
    if conf is not None:
        args += ["--conf", conf]  # an argument, never a shell's: the conf is data
    ui.info(f"airflow dags test {dag_id}{' ' + date if date else ''}{' --conf …' if conf is not None else ''}")
    proc = airflow_cli(airflow.venv, airflow.env, *args, stream=True)
    states = task_states(airflow.home, dag_id)
    if states is None:
        ui.warn("could not read the run's state back from Airflow's database")
        return proc.returncode or 1
    run_state, by_task = states
    shown = ", ".join(
        f"{task} {state}" + (f" after {tries} tries" if (tries or 0) > 1 else "")
        for task, (state, tries) in sorted(by_task.items())
    )
    ui.info(f"DAG {dag_id}: {run_state} ({shown})")
    if run_state != "success" or proc.returncode != 0:
        return proc.returncode or 1
    return 0


def task_states(home: Path, dag_id: str):
    """(run state, {task: (state, tries)}) of the DAG's latest run, read from the SQLite metadata database."""
    import sqlite3

    try:
        with sqlite3.connect(f"file:{home / 'airflow.db'}?mode=ro", uri=True) as db:
            row = db.execute(
                "SELECT run_id, state FROM dag_run WHERE dag_id = ? ORDER BY id DESC LIMIT 1", (dag_id,)
            ).fetchone()
            if not row:
                return None
            tasks = db.execute(
                "SELECT task_id, state, try_number FROM task_instance WHERE dag_id = ? AND run_id = ?", (dag_id, row[0])
            ).fetchall()
    except sqlite3.Error:
        return None
    return row[1], {task: (state, tries) for task, state, tries in tasks}


def validate_pods(airflow: AirflowHome, path: Path) -> int:
    """Each task's pod, as its KubernetesPodOperator builds it, validated (strict) against the
    Kubernetes API schema; nothing runs. 0 when every pod is valid."""
    dags = inspect_dag(airflow.venv, path, airflow.env, validate=True)
    bad = [
        (task_id, info.get("problem"))
        for dag in dags
        for task_id, info in dag["tasks"].items()
        if not info.get("valid")
    ]
    if bad:
        task, problem = bad[0]
        raise PiperackError(f"the pod of task {task} is not valid for Kubernetes {KUBERNETES_VERSION}: {problem}")
    ui.info(
        f"every task's pod is valid for the Kubernetes {KUBERNETES_VERSION} API (strict); "
        "no cluster was used, so nothing ran"
    )
    return 0
