"""airflow-dag / airflow-test: the project's pipelines as one Apache Airflow DAG, in the project's image.

``airflow-dag`` writes ``airflow/dags/<package>.py`` (``--output DIR``): one task per pipeline, each
running ``python -m <package> run --pipeline <p> --env <env>`` in the image ``invoke docker-build``
builds, with Airflow 3's ``airflow.sdk`` and either the docker provider's DockerOperator (``--target
docker``: docker-run's mounts, user and network) or the cncf-kubernetes provider's
KubernetesPodOperator (``--target kubernetes``). Settings come from conf/base/airflow.yml deep-merged
with conf/<env>/airflow.yml, like every other config. The file imports nothing from piperack or the
project, has no timestamps (the same inputs give the same bytes) and ``--check`` names what a stale
file differs in.

``airflow-test`` runs that file once with a real Airflow kept in its own cached virtualenv
(``ensure_venv``), SQLite metadata in a temporary AIRFLOW_HOME: the import check, then ``airflow dags
test`` on the local Docker engine (docker target) or each task's pod validated against the
Kubernetes API schema (kubernetes target, no cluster needed).

The package: ``config`` (airflow.yml read and checked), ``dag`` (the DagPlan: pipelines, order,
settings), ``targets`` (DockerTarget, KubernetesTarget), ``dagfile`` (the file's text, the stale
check, writing it), ``venv`` (the cached Airflow virtualenv), ``dagtest`` (airflow-test's Airflow).
Only the standard library is imported at module top (yaml inside functions), so ``invoke --list``
stays fast.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from .. import ui
from ..errors import PiperackError
from .config import CONFIG_NAME, Config, deep_merge, load_config, parse_date, read_config_file
from .dag import (
    DEFAULT_ENV,
    DEFAULT_OUTPUT,
    DEFAULT_TARGET,
    DagPlan,
    Task,
    discover_pipelines,
    minutes_to_seconds,
    plan,
    project_label,
)
from .dagfile import (
    Lines,
    py,
    regenerate_command,
    render,
    stale_diff,
    stale_labels,
    stale_message,
    summary,
    task_variable,
    timedelta_code,
    write_dag_file,
)
from .dagtest import KUBERNETES_VERSION, check_imports, import_errors, inspect_dag, start_airflow, task_states
from .targets import TARGETS, DockerTarget, KubernetesTarget, kubernetes_name, memory_for_docker
from .venv import airflow_env, cache_root, ensure_virtualenv, virtualenv_key

# The Airflow of airflow-test, in its own virtualenv (ensure_venv below).
AIRFLOW_REQUIREMENTS = (
    "apache-airflow==3.3.2",
    "apache-airflow-providers-docker==4.6.1",
    "apache-airflow-providers-cncf-kubernetes==10.25.0",
    "kubernetes-validate==1.37.0",
)
CONSTRAINTS = Path(__file__).parent.parent / "airflow_constraints.txt"  # package data of piperack

__all__ = [
    "AIRFLOW_REQUIREMENTS",
    "CONFIG_NAME",
    "CONSTRAINTS",
    "DEFAULT_ENV",
    "DEFAULT_OUTPUT",
    "KUBERNETES_VERSION",
    "TARGETS",
    "Config",
    "DagPlan",
    "DockerTarget",
    "KubernetesTarget",
    "Lines",
    "Task",
    "airflow_dag",
    "airflow_env",
    "airflow_test",
    "cache_root",
    "deep_merge",
    "discover_pipelines",
    "ensure_venv",
    "import_errors",
    "inspect_dag",
    "load_config",
    "plan",
    "py",
    "read_config_file",
    "render",
    "stale_labels",
    "task_states",
    "task_variable",
    "venv_key",
    "write_dag_file",
]

# The helpers' names from when this package was one module (the unit tests still use them).
_timedelta = timedelta_code
_seconds = minutes_to_seconds
_memory_for_docker = memory_for_docker
_k8s_name = kubernetes_name


def venv_key(python: str) -> str:
    """The folder name, under cache_root(), of the Airflow virtualenv made for ``python``."""
    return virtualenv_key(python, AIRFLOW_REQUIREMENTS, CONSTRAINTS)


def ensure_venv(venv: str | Path | None = None, python: str | None = None) -> Path:
    """The Airflow virtualenv of airflow-test: ``venv`` (or $PIPERACK_AIRFLOW_VENV) as given, else the
    pinned Airflow made once under ~/.cache/piperack-airflow/<venv_key>/ and reused."""
    return ensure_virtualenv(AIRFLOW_REQUIREMENTS, CONSTRAINTS, venv, python)


def airflow_dag(
    project,
    target: str = DEFAULT_TARGET,
    env: str | None = None,
    pipelines=None,
    image: str | None = None,
    network: str | None = None,
    output: str | None = None,
    check: bool = False,
) -> Path:
    """Write (or with ``check``, compare) the DAG file. Returns its path."""
    p = plan(project, target=target, env=env, pipelines=pipelines, image=image, network=network, output=output)
    rendered = render(p)
    text = rendered.text()
    label = project_label(project, p.path)
    current = p.path.read_text(encoding="utf-8", errors="replace") if p.path.is_file() else None
    if check:
        if current is None:
            raise PiperackError(f"{label} does not exist; write it with: {regenerate_command(p)}")
        if current != text:
            diff = stale_diff(current, text, label)
            for line in diff[:60]:
                ui.info(line)
            if len(diff) > 60:
                ui.info(f"... ({len(diff) - 60} more diff lines)")
            raise PiperackError(stale_message(p, label, stale_labels(rendered, current)))
        _notices(p)
        ui.info(f"{label} is up to date (DAG {p.dag_id}: {summary(p)})")
        return p.path
    _notices(p)
    if current == text:
        ui.info(f"{label} is unchanged (DAG {p.dag_id}: {summary(p)})")
        return p.path
    write_dag_file(project, p.path, text)
    ui.info(f"wrote {label}: DAG {p.dag_id}, {p.target.name} target, {summary(p)}")
    return p.path


def _notices(p) -> None:
    """The plan's warnings, shown once the command is known to succeed (an error stays one line)."""
    for notice in p.notices:
        ui.warn(notice)


def check_run_conf(conf: str | None) -> None:
    """--conf: a JSON object whose "params", if any, map "<pipeline>.<key>" to values."""
    import json

    if conf is None:
        return
    try:
        data = json.loads(conf)
    except (ValueError, RecursionError):
        raise PiperackError(
            'invalid --conf: not JSON; expected an object such as \'{"params": {"ingest.table": "x"}}\''
        ) from None
    if not isinstance(data, dict):
        raise PiperackError(f"invalid --conf: expected a JSON object, got {type(data).__name__}")
    if not isinstance(data.get("params", {}), dict):
        raise PiperackError('invalid --conf: "params" must be an object of "<pipeline>.<key>": value')


def airflow_test(
    project,
    target: str = DEFAULT_TARGET,
    env: str | None = None,
    pipelines=None,
    image: str | None = None,
    network: str | None = None,
    output: str | None = None,
    date: str | None = None,
    venv: str | None = None,
    conf: str | None = None,
) -> int:
    """Run the DAG file once in a throwaway Airflow; returns 0 when every task succeeded. ``conf``: the
    run's conf (a JSON object), as `airflow dags trigger --conf` gives it."""
    p = plan(project, target=target, env=env, pipelines=pipelines, image=image, network=network, output=output)
    rendered = render(p)
    label = project_label(project, p.path)
    if not p.path.is_file():
        raise PiperackError(f"{label} does not exist; write it first with: {regenerate_command(p)}")
    current = p.path.read_text(encoding="utf-8", errors="replace")
    if current != rendered.text():
        raise PiperackError(stale_message(p, label, stale_labels(rendered, current)))
    if date is not None:
        try:
            parse_date(date)
        except ValueError:
            raise PiperackError(f"invalid --date {date!r}: use YYYY-MM-DD or an ISO date-time") from None
    check_run_conf(conf)
    p.target.check_before_test(p)
    _notices(p)
    airflow_venv = ensure_venv(venv)
    with tempfile.TemporaryDirectory(prefix="piperack-airflow-") as tmp:
        airflow = start_airflow(airflow_venv, Path(tmp), p.path.parent)
        check_imports(airflow, p.path, label)
        ui.info(f"{label} imports cleanly: DAG {p.dag_id}, tasks {', '.join(t.pipeline for t in p.tasks)}")
        return p.target.test(airflow, project, p, date, conf)
