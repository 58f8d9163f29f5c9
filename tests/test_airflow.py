"""invoke airflow-dag / airflow-test with a real Airflow 3.3 and the real local Docker engine.

One project with two pipelines (ingest, and report, which reads what ingest loaded) is built once
as a unique image tag; its DAG runs with `airflow dags test` through `invoke airflow-test`, in the
Airflow virtualenv of .ci/airflow.sh (PIPERACK_TEST_AIRFLOW_VENV) or the cached one piperack makes.
The Kubernetes target's pods are built by the operator itself in that virtualenv and validated
against the Kubernetes API schema (kubernetes-validate, strict). Without Airflow or an engine the
tests skip with the reason, except under CI=true, where they fail.
"""

from __future__ import annotations

import ast
import json
import os
import shlex
import shutil
import subprocess
import uuid
from pathlib import Path

import pytest

from tests.test_docker import BUILD_TIMEOUT, _docker, _output, base_image, engine  # noqa: F401

IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}
KUBERNETES_IMAGE = "registry.example.com/team/demo-project:1.2.3"
KUBERNETES_VERSION = "1.33"  # the Kubernetes API schema airflow-test validates pods against (its output says so)

AIRFLOW_YML = """\
schedule: "0 3 * * *"
start_date: 2026-01-01
catchup: false
max_active_runs: 1
owner: data-team
tags: [piperack, nightly]
retries: 2
retry_delay_minutes: 5
pipelines:
  report:
    depends_on: [ingest]
    retries: 3
"""

REPORT_PIPELINE = '''"""The report pipeline: counts the rows ingest loaded, so it can only run after ingest."""
from __future__ import annotations

import json
from pathlib import Path


def run(params: dict, catalog: dict) -> dict:
    import duckdb

    with duckdb.connect(catalog["database"], read_only=True) as con:
        rows = con.execute(f'SELECT count(*) FROM "{params["table"]}"').fetchone()[0]
    summary = Path(catalog["summary"])
    summary.parent.mkdir(parents=True, exist_ok=True)
    summary.write_text(json.dumps({"rows": rows, **({"label": params["label"]} if "label" in params else {})}))
    return {"rows": rows}
'''


def _unavailable(reason: str):
    if IN_CI:
        pytest.fail(f"{reason} (CI=true: the airflow tests must run, not skip)")
    pytest.skip(reason)


@pytest.fixture(scope="module")
def airflow_venv() -> Path:
    from scripts import kitlib

    try:
        venv = kitlib.airflow_venv()
    except Exception as exc:  # no network for the first build, no uv, ...
        _unavailable(f"no Airflow virtualenv ({exc}); .ci/airflow.sh start makes one")
    proc = subprocess.run([str(venv / "bin" / "airflow"), "version"], capture_output=True, text=True)
    if proc.returncode != 0 or not proc.stdout.strip().startswith("3.3."):
        pytest.fail(f"{venv} has no Airflow 3.3: {_output(proc)}")
    return venv


def _package(root: Path) -> str:
    import tomllib

    return tomllib.loads((root / "pyproject.toml").read_text())["tool"]["piperack"]["python_package"]


def add_report_pipeline(root: Path, run_invoke) -> None:
    proc = run_invoke(root, "new-pipeline", "report")
    assert proc.returncode == 0, _output(proc)
    package = _package(root)
    (root / "src" / package / "pipelines" / "report" / "pipeline.py").write_text(REPORT_PIPELINE)
    (root / "conf" / "base" / "parameters" / "report.yml").write_text("table: cities\n")
    (root / "conf" / "base" / "catalog" / "report.yml").write_text(
        "database: data/ingest.duckdb\nsummary: data/report/summary.json\n"
    )
    shutil.rmtree(root / "src" / "tests" / "pipelines" / "report")  # its scaffolded test expects the greeting
    (root / "conf" / "base" / "airflow.yml").write_text(AIRFLOW_YML)


@pytest.fixture(scope="module")
def two_pipelines(project, run_invoke, tmp_path_factory) -> Path:
    """A private copy of the session project with a second pipeline, report, after ingest."""
    root = tmp_path_factory.mktemp("airflow") / project.name
    shutil.copytree(project, root, symlinks=True)
    add_report_pipeline(root, run_invoke)
    return root


@pytest.fixture(scope="module")
def built(engine, base_image, two_pipelines, run_invoke, airflow_venv):  # noqa: F811
    """That project's image, built once as a unique tag (removed afterwards), and its DAG written."""
    root = two_pipelines
    tag = f"piperack-test-airflow-{uuid.uuid4().hex[:10]}:latest"
    proc = run_invoke(root, "docker-build", "--tag", tag, "--base-image", base_image, timeout=BUILD_TIMEOUT)
    assert proc.returncode == 0, _output(proc)
    try:
        yield {"root": root, "tag": tag, "options": ("--image", tag, "--network", "none")}
    finally:
        _docker("rmi", "--force", tag, check=False)


def _airflow_invoke(run_invoke, venv: Path, root: Path, *args: str):
    return run_invoke(root, *args, env={"PIPERACK_AIRFLOW_VENV": str(venv)}, timeout=900)


def _one_error_line(proc) -> str:
    assert proc.returncode == 1, _output(proc)
    assert "Traceback" not in proc.stderr, _output(proc)
    errors = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(errors) == 1 and errors[0].startswith("error: "), _output(proc)
    return errors[0]


def _airflow_env(venv: Path, home: Path, dags: Path) -> dict:
    """A private Airflow for reading a DAG file: its own home and SQLite database, no examples, none
    of the caller's Airflow settings (written here, not taken from piperack)."""
    home.mkdir(parents=True, exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW") and k not in {"PYTHONPATH", "PYTHONHOME"}}
    return env | {
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(dags),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
        "VIRTUAL_ENV": str(venv),
        "PATH": os.pathsep.join([str(venv / "bin"), os.environ.get("PATH", "")]),
    }


# Airflow's own reading of a DAG folder: its DagBag (what the scheduler's DAG processor uses), in
# the Airflow virtualenv, where neither piperack nor the project is installed.
DAGBAG = r"""
import json, sys
import attrs
from airflow.dag_processing.dagbag import DagBag
bag = DagBag(dag_folder=sys.argv[1])
dags = {}
for dag_id, dag in bag.dags.items():
    tasks = {}
    for task in dag.tasks:
        tasks[task.task_id] = {
            "operator": type(task).__name__, "upstream": sorted(task.upstream_task_ids), "retries": task.retries,
            "retry_delay": task.retry_delay.total_seconds(), "owner": task.owner, "image": task.image,
            "command": task.command, "user": task.user, "network_mode": task.network_mode,
            "mounts": [dict(m) for m in task.mounts],
        }
    timetable = dag.timetable
    dags[dag_id] = {
        "fileloc": dag.fileloc, "schedule": dag.schedule, "timetable": type(timetable).__name__,
        "cron": attrs.asdict(timetable).get("expression") if attrs.has(type(timetable)) else None,
        "start_date": dag.start_date.isoformat() if dag.start_date else None, "catchup": dag.catchup,
        "max_active_runs": dag.max_active_runs, "tags": sorted(dag.tags), "tasks": tasks,
    }
errors = {str(path): str(error) for path, error in bag.import_errors.items()}
print("DAGBAG " + json.dumps({"import_errors": errors, "dags": dags}, default=str))
"""


def dagbag(venv: Path, folder: Path, home: Path) -> dict:
    """What Airflow's DagBag reads from ``folder``: {"import_errors": {...}, "dags": {dag_id: {...}}}."""
    env = _airflow_env(venv, home, folder)
    proc = subprocess.run(
        [str(venv / "bin" / "python"), "-c", DAGBAG, str(folder)],
        capture_output=True,
        text=True,
        env=env,
        cwd=env["AIRFLOW_HOME"],
    )
    assert proc.returncode == 0, _output(proc)
    [line] = [line for line in proc.stdout.splitlines() if line.startswith("DAGBAG ")]
    return json.loads(line.removeprefix("DAGBAG "))


# --- the docker target, run by Airflow on the local engine ------------------------------------


def test_dag_file_is_plain_airflow_python_that_matches_the_config(built, run_invoke, airflow_venv, tmp_path):
    root, options = built["root"], built["options"]
    proc = run_invoke(root, "airflow-dag", *options)
    assert proc.returncode == 0, _output(proc)
    package = _package(root)
    path = root / "airflow" / "dags" / f"{package}.py"
    first = path.read_bytes()
    summary = f"tasks ingest, report; order ingest -> report; schedule 0 3 * * *; image {built['tag']}"
    assert proc.stdout.splitlines() == [f"wrote airflow/dags/{path.name}: DAG {package}, docker target, {summary}"]

    # Regenerating with nothing changed: identical bytes; --check agrees.
    proc = run_invoke(root, "airflow-dag", *options)
    assert proc.returncode == 0, _output(proc)
    assert proc.stdout.splitlines() == [f"airflow/dags/{path.name} is unchanged (DAG {package}: {summary})"]
    assert path.read_bytes() == first
    proc = run_invoke(root, "airflow-dag", "--check", *options)
    assert proc.returncode == 0, _output(proc)
    assert proc.stdout.splitlines() == [f"airflow/dags/{path.name} is up to date (DAG {package}: {summary})"]

    text = first.decode()
    assert text.startswith("# Generated by piperack (invoke airflow-dag) from conf/base/airflow.yml\n")
    assert f"#     invoke airflow-dag --image {built['tag']} --network none\n" in text
    tree = ast.parse(text)
    modules = {n.module.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    modules |= {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    assert modules == {"__future__", "airflow", "datetime", "json", "os"}, modules

    # What Airflow itself reads from the folder: its DagBag, in the Airflow virtualenv.
    bag = dagbag(airflow_venv, path.parent, tmp_path / "home")
    assert bag["import_errors"] == {}
    assert sorted(bag["dags"]) == [package]
    dag = bag["dags"][package]
    assert dag["fileloc"] == str(path)
    assert (dag["schedule"], dag["timetable"], dag["cron"]) == ("0 3 * * *", "CronTriggerTimetable", "0 3 * * *")
    assert dag["start_date"] == "2026-01-01T00:00:00+00:00"
    assert dag["catchup"] is False and dag["max_active_runs"] == 1
    assert dag["tags"] == ["nightly", "piperack"]
    tasks = dag["tasks"]
    assert sorted(tasks) == ["ingest", "report"]
    assert tasks["ingest"]["upstream"] == [] and tasks["report"]["upstream"] == ["ingest"]
    assert (tasks["ingest"]["retries"], tasks["report"]["retries"]) == (2, 3)
    assert tasks["ingest"]["retry_delay"] == tasks["report"]["retry_delay"] == 300
    assert {t["owner"] for t in tasks.values()} == {"data-team"}
    for name, task in tasks.items():
        assert task["operator"] == "DockerOperator"
        assert task["image"] == built["tag"]
        assert task["command"] == ["python", "-m", package, "run", "--pipeline", name, "--env", "local"]
        assert task["user"] == f"{os.getuid()}:{os.getgid()}"
        assert task["network_mode"] == "none"
        mounts = {m["target"]: (m["source"], m["read_only"], m["type"]) for m in task["mounts"]}
        assert mounts == {
            "/app/data": (str(root / "data"), False, "bind"),
            "/app/conf/local": (str(root / "conf" / "local"), True, "bind"),
        }


def test_airflow_runs_the_dag_and_the_rows_land_in_duckdb_on_the_host(built, run_invoke, airflow_venv):
    import duckdb

    root, options = built["root"], built["options"]
    assert run_invoke(root, "airflow-dag", *options).returncode == 0
    shutil.rmtree(root / "data")  # airflow-test makes the mount folders first, as docker-run does
    proc = _airflow_invoke(run_invoke, airflow_venv, root, "airflow-test", *options)
    assert proc.returncode == 0, _output(proc)
    package = _package(root)
    lines = proc.stdout.splitlines()
    assert f"DAG {package}: success (ingest success, report success)" in lines, _output(proc)
    assert f"airflow/dags/{package}.py imports cleanly: DAG {package}, tasks ingest, report" in lines, _output(proc)

    database = root / "data" / "ingest.duckdb"
    for path in (database, root / "data" / "01_raw" / "cities.csv", root / "data" / "report" / "summary.json"):
        stat = path.stat()
        assert (stat.st_uid, stat.st_gid) == (os.getuid(), os.getgid()), path
    with duckdb.connect(str(database), read_only=True) as con:
        rows = con.execute("SELECT count(*) FROM cities").fetchone()[0]
    assert rows > 0
    # report ran after ingest: it counted what ingest had loaded.
    assert json.loads((root / "data" / "report" / "summary.json").read_text()) == {"rows": rows}


LABEL = "{{ 7 * 7 }} ${oc.env:HOME} $(id) '; \"`"


def test_a_run_conf_params_reach_the_pipelines_as_data(built, run_invoke, airflow_venv):
    """`airflow dags test --conf` (as `airflow dags trigger --conf` or the UI's trigger form): its
    "params" reach the pipelines as --params does, as JSON data: a Jinja expression, an OmegaConf
    interpolation and shell syntax all stay text."""
    import duckdb

    root, options = built["root"], built["options"]
    assert run_invoke(root, "airflow-dag", *options).returncode == 0
    conf = json.dumps({"params": {"ingest.table": "towns", "report.table": "towns", "+report.label": LABEL}})
    proc = _airflow_invoke(run_invoke, airflow_venv, root, "airflow-test", *options, "--conf", conf)
    assert proc.returncode == 0, _output(proc)
    assert f"DAG {_package(root)}: success (ingest success, report success)" in proc.stdout.splitlines(), _output(proc)
    with duckdb.connect(str(root / "data" / "ingest.duckdb"), read_only=True) as con:
        rows = con.execute("SELECT count(*) FROM towns").fetchone()[0]
    assert json.loads((root / "data" / "report" / "summary.json").read_text()) == {"rows": rows, "label": LABEL}

    # A mistyped key fails the task with the runner's one line (no retries here: the project's 2 retries
    # 5 minutes apart would only repeat the same refusal).
    no_retries = root / "conf" / "local" / "airflow.yml"
    no_retries.write_text("retries: 0\n")
    try:
        assert run_invoke(root, "airflow-dag", *options).returncode == 0
        typo = json.dumps({"params": {"ingest.tabel": "towns"}})
        proc = _airflow_invoke(run_invoke, airflow_venv, root, "airflow-test", *options, "--conf", typo)
        assert proc.returncode == 1, _output(proc)
        refused = (
            "error: $PIPERACK_PARAMS 'ingest.tabel': the parameters of 'ingest' have no key 'tabel'; "
            "did you mean 'table'? (to add it on purpose: +ingest.tabel=...)"
        )
        assert refused in proc.stdout + proc.stderr, _output(proc)
    finally:
        no_retries.unlink()
    assert run_invoke(root, "airflow-dag", *options).returncode == 0


def test_changing_the_config_makes_check_fail_naming_it(built, run_invoke, airflow_venv, tree_hash):
    root, options = built["root"], built["options"]
    assert run_invoke(root, "airflow-dag", *options).returncode == 0
    config = root / "conf" / "base" / "airflow.yml"
    original = config.read_text()
    try:
        config.write_text(original.replace('"0 3 * * *"', '"30 4 * * 1-5"').replace("retries: 3", "retries: 4"))
        before = tree_hash(root)
        error = _one_error_line(run_invoke(root, "airflow-dag", "--check", *options))
        assert error == (
            f"error: airflow/dags/{_package(root)}.py is stale against the config and pipelines "
            f"(schedule, task report differ); regenerate it with: invoke airflow-dag --image {built['tag']} "
            "--network none"
        )
        # airflow-test refuses to run a stale file, with the same line.
        assert _one_error_line(_airflow_invoke(run_invoke, airflow_venv, root, "airflow-test", *options)) == error
        assert tree_hash(root) == before
    finally:
        config.write_text(original)
    assert run_invoke(root, "airflow-dag", "--check", *options).returncode == 0


def test_a_failing_pipeline_fails_the_run_after_its_retries(built, run_invoke, airflow_venv):
    root, options = built["root"], built["options"]
    local = root / "conf" / "local"
    overrides = [local / "parameters" / "ingest.yml", local / "airflow.yml"]
    overrides[0].parent.mkdir(parents=True, exist_ok=True)
    overrides[0].write_text("source: samples/no-such-file.csv\n")
    overrides[1].write_text("retries: 1\nretry_delay_minutes: 0.02\n")  # one retry, 1.2 s later
    try:
        proc = run_invoke(root, "airflow-dag", *options)
        assert proc.returncode == 0, _output(proc)
        text = (root / "airflow" / "dags" / f"{_package(root)}.py").read_text()
        assert '"retries": 1,' in text and '"retry_delay": datetime.timedelta(seconds=1.2),' in text
        proc = _airflow_invoke(run_invoke, airflow_venv, root, "airflow-test", *options)
        assert proc.returncode == 1, _output(proc)
        out = proc.stdout + proc.stderr
        assert f"DAG {_package(root)}: failed (ingest failed after 2 tries, report upstream_failed)" in proc.stdout, out
        assert out.count("[DAG TEST] starting task_id=ingest") == 2, out  # the first try and its retry
        # the container's own error line, in the task's log, once per try
        runner_error = (
            "error: pipeline 'ingest' failed: cannot read samples/no-such-file.csv: No such file or directory "
            "(set PIPERACK_DEBUG=1 for the traceback)"
        )
        assert out.count(runner_error) >= 2, out
        assert "[DAG TEST] starting task_id=report" not in out
    finally:
        for path in overrides:
            path.unlink()
    assert run_invoke(root, "airflow-dag", *options).returncode == 0


# --- the kubernetes target: the operator's own pods, validated against the API schema ------------

VALIDATE_PODS = r"""
import importlib.util, json, sys
import kubernetes_validate
from kubernetes.client import ApiClient
spec = importlib.util.spec_from_file_location("dag_under_test", sys.argv[1])
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
pods = {}
for task in module.dag.tasks:
    pod = ApiClient().sanitize_for_serialization(task.build_pod_request_obj(context=None, dry_run=True))
    kubernetes_validate.validate(pod, sys.argv[2], strict=True)  # raises ValidationError
    pods[task.task_id] = pod
# Strict validation is real: an unknown field in a pod is refused.
broken = json.loads(json.dumps(pods[sorted(pods)[0]]))
broken["spec"]["containers"][0]["imagePullPolicyy"] = "Always"
try:
    kubernetes_validate.validate(broken, sys.argv[2], strict=True)
    pods["strict"] = "accepted an unknown field"
except kubernetes_validate.ValidationError:
    pods["strict"] = "refused an unknown field"
print("PODS " + json.dumps(pods))
"""

KUBERNETES_YML = """\
pipelines:
  ingest:
    resources: {requests: {cpu: "1"}, limits: {memory: 2Gi}}
kubernetes:
  namespace: data-jobs
  service_account: pipeline-runner
  image_pull_policy: Always
  image_pull_secrets: [registry-credentials]
  env_from_secret: demo-project-env
  data_volume_claim: demo-project-data
  fs_group: 1000
  resources: {requests: {cpu: 250m, memory: 512Mi}, limits: {memory: 1Gi}}
"""


def test_kubernetes_pods_validate_strictly_and_use_the_given_image(two_pipelines, run_invoke, airflow_venv, tmp_path):
    root = tmp_path / two_pipelines.name
    shutil.copytree(two_pipelines, root, symlinks=True, ignore=shutil.ignore_patterns("airflow", "data", ".docker"))
    (root / "conf" / "prod").mkdir(exist_ok=True)
    (root / "conf" / "prod" / "airflow.yml").write_text(KUBERNETES_YML)
    options = ("--target", "kubernetes", "--env", "prod", "--image", KUBERNETES_IMAGE, "--output", "airflow/k8s")
    proc = run_invoke(root, "airflow-dag", *options)
    assert proc.returncode == 0, _output(proc)
    path = root / "airflow" / "k8s" / f"{_package(root)}.py"
    assert run_invoke(root, "airflow-dag", "--check", *options).returncode == 0

    env = _airflow_env(airflow_venv, tmp_path / "home", path.parent)
    proc = subprocess.run(
        [str(airflow_venv / "bin" / "python"), "-c", VALIDATE_PODS, str(path), KUBERNETES_VERSION],
        capture_output=True,
        text=True,
        env=env,
        cwd=env["AIRFLOW_HOME"],
    )
    assert proc.returncode == 0, _output(proc)
    pods = json.loads(next(line for line in proc.stdout.splitlines() if line.startswith("PODS "))[5:])
    assert pods.pop("strict") == "refused an unknown field"
    assert sorted(pods) == ["ingest", "report"]
    package = _package(root)
    for name, pod in pods.items():
        spec = pod["spec"]
        [container] = spec["containers"]
        assert container["image"] == KUBERNETES_IMAGE
        assert container["imagePullPolicy"] == "Always"
        assert container["command"] + container["args"] == [
            "python",
            "-m",
            package,
            "run",
            "--pipeline",
            name,
            "--env",
            "prod",
        ]
        assert pod["metadata"]["namespace"] == "data-jobs"
        assert pod["metadata"]["name"].startswith(f"{package.replace('_', '-')}-{name}-")
        assert spec["serviceAccountName"] == "pipeline-runner"
        assert spec["imagePullSecrets"] == [{"name": "registry-credentials"}]
        assert spec["restartPolicy"] == "Never"
        assert spec["securityContext"] == {"fsGroup": 1000}
        assert container["envFrom"] == [{"secretRef": {"name": "demo-project-env"}}]
        assert spec["volumes"] == [{"name": "data", "persistentVolumeClaim": {"claimName": "demo-project-data"}}]
        assert container["volumeMounts"] == [{"mountPath": "/app/data", "name": "data"}]
    assert pods["ingest"]["spec"]["containers"][0]["resources"] == {
        "requests": {"cpu": "1", "memory": "512Mi"},
        "limits": {"memory": "2Gi"},
    }
    assert pods["report"]["spec"]["containers"][0]["resources"] == {
        "requests": {"cpu": "250m", "memory": "512Mi"},
        "limits": {"memory": "1Gi"},
    }

    # The user's way to the same check: no cluster, nothing runs.
    proc = _airflow_invoke(run_invoke, airflow_venv, root, "airflow-test", *options)
    assert proc.returncode == 0, _output(proc)
    assert f"every task's pod is valid for the Kubernetes {KUBERNETES_VERSION} API (strict)" in proc.stdout


# --- refusals through invoke, as a user sees them (no Airflow needed) -----------------------------


@pytest.mark.parametrize(
    "config, message",
    [
        ("retries: 2\nretry: 3\n", "error: conf/base/airflow.yml: retry: unknown key; did you mean 'retries'?"),
        (
            "pipelines:\n  ingest: {depends_on: [nope]}\n",
            "error: conf/base/airflow.yml: pipelines.ingest.depends_on: unknown pipeline 'nope' (available: ingest)",
        ),
        (
            "pipelines:\n  ingest: {depends_on: [ingest]}\n",
            "error: conf/base/airflow.yml: pipelines.ingest.depends_on: cycle ingest -> ingest",
        ),
        ("just a string\n", "error: conf/base/airflow.yml: expected a mapping, got str"),
    ],
)
def test_bad_config_is_one_line_and_leaves_the_dag_file_byte_for_byte(
    project_copy, run_invoke, tree_hash, config, message
):
    assert run_invoke(project_copy, "airflow-dag").returncode == 0
    (project_copy / "conf" / "base" / "airflow.yml").write_text(config)
    before = tree_hash(project_copy)
    assert _one_error_line(run_invoke(project_copy, "airflow-dag")) == message
    assert _one_error_line(run_invoke(project_copy, "airflow-dag", "--check")) == message
    assert tree_hash(project_copy) == before


def test_airflow_test_without_the_dag_file_says_how_to_write_it(project_copy, run_invoke, tree_hash):
    before = tree_hash(project_copy)
    error = _one_error_line(
        run_invoke(
            project_copy, "airflow-test", "--target", "kubernetes", env={"PIPERACK_AIRFLOW_VENV": "/nonexistent"}
        )
    )
    assert error == (
        "error: airflow/dags/demo_project.py does not exist; write it first with: "
        "invoke airflow-dag --target kubernetes"
    )
    assert _one_error_line(run_invoke(project_copy, "airflow-dag", "--target", "swarm")) == (
        "error: unknown --target 'swarm': use docker or kubernetes"
    )
    assert tree_hash(project_copy) == before


# --- generated code: what reaches the file means exactly what was given, or is refused ----------


def test_odd_values_reach_airflow_exactly_as_given(project_copy, run_invoke, airflow_venv, tmp_path):
    """Quotes, backslashes and non-ASCII in airflow.yml and --output, the largest accepted numbers and a
    start date with microseconds and an offset: Airflow's DagBag reads back exactly those values."""
    root = project_copy
    owner, tags = 'O\'Brien "the" \\ team ☃', ["it's", "a \\n b", "x" * 100]
    (root / "conf" / "base" / "airflow.yml").write_text(
        f"owner: {json.dumps(owner)}\ntags: {json.dumps(tags)}\nschedule: '0 3 * * *'\n"
        "start_date: 2026-01-02T03:04:05.678901+02:00\nretries: 1000\nretry_delay_minutes: 527040\n"
        "max_active_runs: 2147483647\ndag_id: odd.dag-1\n"
    )
    output = "dags for 'O Brien' ☃"
    proc = run_invoke(root, "airflow-dag", "--output", output, "--network", "host")
    assert proc.returncode == 0, _output(proc)
    path = root / output / f"{_package(root)}.py"
    text = path.read_text()
    assert f"#     invoke airflow-dag --network host --output {shlex.quote(output)}\n" in text
    bag = dagbag(airflow_venv, path.parent, tmp_path / "home")
    assert bag["import_errors"] == {}
    dag = bag["dags"]["odd.dag-1"]
    assert dag["start_date"] == "2026-01-02T01:04:05.678901+00:00"
    assert dag["max_active_runs"] == 2147483647 and dag["tags"] == sorted(tags)
    [task] = dag["tasks"].values()
    assert (task["owner"], task["retries"], task["retry_delay"]) == (owner, 1000, 527040 * 60)
    assert task["network_mode"] == "host"
    assert [m["source"] for m in task["mounts"]] == [str(root / "data"), str(root / "conf" / "local")]


BILLION_LAUGHS = (
    "".join(f"l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * 9) if i else 'lol'}]\n" for i in range(10)) + "tags: *l9\n"
)


@pytest.mark.parametrize(
    "args, config, message",
    [
        (
            ("--output", "dags\nimport os; os.system('touch pwned')"),
            None,
            "error: --output \"dags\\nimport os; os.system('touch pwned')\": control characters are not "
            "accepted in a folder name",
        ),
        (
            ("--image", "img:1\n"),
            None,
            "error: --image: image: 'img:1\\n' is not an image reference (e.g. registry.example.com/team/demo:1.0)",
        ),
        (
            (),
            'owner: "data\\rimport os"\n',
            "error: conf/base/airflow.yml: owner: expected a one-line string without control characters, "
            "got 'data\\rimport os'",
        ),
        (
            (),
            "retries: 1000000000000000000000000000000\n",
            "error: conf/base/airflow.yml: retries: expected an integer from 0 to 1000, got a 100-bit integer",
        ),
        (
            (),
            "schedule: '@daily'\nstart_date: 0001-01-01T00:00:00+05:00\n",
            "error: conf/base/airflow.yml: start_date: expected a date from 1970-01-01 to 9998-12-31, such as "
            "2026-01-01 (or an ISO date-time), got 'datetime'",
        ),
        (
            (),
            BILLION_LAUGHS,
            "error: conf/base/airflow.yml: its aliases expand to more than 100000 values",
        ),
        ((), "tags:\n" + "- " * 50_000 + "x\n", "error: conf/base/airflow.yml: nested more than 100 levels deep"),
        (
            ("--output", "../dags"),
            None,
            "error: --output ../dags: outside the project; to write there on purpose, give it as an absolute "
            "path ({parent}/dags)",
        ),
    ],
    ids=[
        "output-newline",
        "image-newline",
        "owner-cr",
        "retries-huge",
        "start-year-1",
        "billion-laughs",
        "deep",
        "output-outside",
    ],
)
def test_hostile_values_are_one_line_and_change_nothing(project_copy, run_invoke, tree_hash, args, config, message):
    root = project_copy
    if config is not None:
        (root / "conf" / "base" / "airflow.yml").write_text(config)
    before, around = tree_hash(root), sorted(os.listdir(root.parent))
    assert _one_error_line(run_invoke(root, "airflow-dag", *args)) == message.format(parent=root.parent)
    assert tree_hash(root) == before and sorted(os.listdir(root.parent)) == around


def test_a_linked_dags_folder_is_never_written_through(project_copy, run_invoke, tree_hash, tmp_path):
    root, elsewhere = project_copy, tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "keep.txt").write_text("kept\n")
    shutil.rmtree(root / "airflow", ignore_errors=True)
    (root / "airflow").symlink_to(elsewhere, target_is_directory=True)
    before = tree_hash(root)
    assert _one_error_line(run_invoke(root, "airflow-dag")) == (
        "error: --output airflow/dags: airflow is a symbolic link; piperack writes, reads and compares nothing "
        "through a link in the project (to write where it leads, give that folder as an absolute path)"
    )
    assert tree_hash(root) == before and sorted(os.listdir(elsewhere)) == ["keep.txt"]
    # Given on purpose as an absolute path, the folder outside is written (atomically, there).
    proc = run_invoke(root, "airflow-dag", "--output", str(elsewhere / "dags"))
    assert proc.returncode == 0, _output(proc)
    assert (elsewhere / "dags" / f"{_package(root)}.py").is_file()
    assert tree_hash(root) == before


def test_pipeline_names_python_reads_as_one_name_are_refused(project_copy, run_invoke, tree_hash):
    """'ﬁle' (with the U+FB01 ligature) and 'file' are two folders but one Python name once NFKC-normalised:
    their task variables would silently be one, so the DAG is refused."""
    pipelines = project_copy / "src" / _package(project_copy) / "pipelines"
    for name in ("ﬁle", "file"):
        (pipelines / name).mkdir()
        (pipelines / name / "__init__.py").write_text("")
        (pipelines / name / "pipeline.py").write_text("def run(params, catalog):\n    return {}\n")
    before = tree_hash(project_copy)
    assert _one_error_line(run_invoke(project_copy, "airflow-dag")) == (
        "error: pipelines 'file' and 'ﬁle' would share the DAG file's name 'file_task' (Python reads names "
        "NFKC-normalised): rename one"
    )
    assert tree_hash(project_copy) == before
