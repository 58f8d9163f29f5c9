"""The docker-build, docker-run, docker-cmd and airflow-test options no other test ran as a user
runs them (issue 24, item 4), each checked by its effect on the image, the container or the run.

One project (the example, a scaffolded second pipeline `greet`, a conf/prod that writes its own
database, a Dockerfile that turns a build argument into a label) is built once on the offline base
image with every docker-build option a build takes; a second, --no-cache build on a terminal shows
what --no-cache and --quiet change. The same image then runs docker-run, docker-cmd and one Airflow
DAG test. Without an engine (or Airflow) the tests skip with the reason, except under CI=true.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import uuid
from pathlib import Path

import pytest

from tests.options_support import on_a_terminal, one_error_line, output
from tests.test_airflow import airflow_venv  # noqa: F401 - the module's fixture
from tests.test_docker import BUILD_TIMEOUT, _docker, _run_steps, base_image, engine  # noqa: F401 - the module's fixtures

PACKAGE = "demo_project"
UID, GID = "4321", "4322"
NOTE_ARG = "ARG PIPERACK_NOTE=unset\nLABEL piperack.note=$PIPERACK_NOTE\n"


def _rows(database: Path, table: str) -> int:
    import duckdb

    with duckdb.connect(str(database), read_only=True) as con:
        return con.execute(f'SELECT count(*) FROM "{table}"').fetchone()[0]


def _build_options(state: dict) -> list[str]:
    return [
        "--tag",
        state["tag"],
        "--base-image",
        state["base"],
        "--uid",
        UID,
        "--gid",
        GID,
        "--build-arg",
        "PIPERACK_NOTE=from-build-arg",
        "--docker-args=--label piperack.test=from-docker-args",
    ]


def _image_id(tag: str) -> str:
    return _docker("image", "inspect", "--format", "{{.Id}}", tag).stdout.strip()


@pytest.fixture(scope="module")
def image(engine, base_image, project, run_invoke, tmp_path_factory):  # noqa: F811
    """The project built once with --uid, --gid, --build-arg and --docker-args; removed afterwards."""
    root = tmp_path_factory.mktemp("docker-options") / project.name
    shutil.copytree(project, root, symlinks=True)
    assert run_invoke(root, "new-pipeline", "greet").returncode == 0
    prod = root / "conf" / "prod"
    (prod / "catalog").mkdir(parents=True, exist_ok=True)
    (prod / "catalog" / "ingest.yml").write_text("database: data/prod.duckdb\n")
    (prod / "parameters" / "ingest.yml").write_text("table: cities_prod\n")
    dockerfile = root / "docker" / "Dockerfile"
    dockerfile.write_text(dockerfile.read_text() + NOTE_ARG)  # the last stage, the image's
    state = {"root": root, "tag": f"piperack-test-options-{uuid.uuid4().hex[:10]}:latest", "base": base_image}
    proc = run_invoke(root, "docker-build", *_build_options(state), timeout=BUILD_TIMEOUT)
    assert proc.returncode == 0, output(proc)
    state["build"] = proc
    state["images"] = {_image_id(state["tag"])}
    yield state
    for image_id in state["images"]:
        _docker("rmi", "--force", image_id, check=False)


def test_build_uid_gid_build_arg_and_docker_args_shape_the_image(image):
    tag = image["tag"]
    assert f"building {tag} on {image['base']} (user {UID}:{GID})\n" in image["build"].stdout
    config = json.loads(_docker("image", "inspect", "--format", "{{json .Config}}", tag).stdout)
    assert config["User"] == f"{UID}:{GID}"  # --uid, --gid: the image's user
    labels = config["Labels"] or {}
    assert labels.get("piperack.note") == "from-build-arg"  # --build-arg reached the Dockerfile's ARG
    assert labels.get("piperack.test") == "from-docker-args"  # --docker-args reached `docker build`
    owner = _docker("run", "--rm", "--network", "none", "--entrypoint", "stat", tag, "-c", "%u:%g", "/app/data")
    assert owner.stdout.strip() == f"{UID}:{GID}"  # the folder the image's user writes


def test_build_no_cache_and_quiet_on_a_terminal(image, venv, user_env):
    """--no-cache re-downloads the wheelhouse and runs every step although all are cached; --quiet
    hides the download's progress, which a terminal otherwise shows, while docker's output streams."""
    root, tag = image["root"], image["tag"]
    invoke = str(venv / "bin" / "invoke")
    # Without --quiet the download streams (the engine then refuses an unknown option: nothing built).
    code, loud = on_a_terminal(
        [invoke, "docker-build", "--tag", tag, "--base-image", image["base"], "--no-cache", "--docker-args=--nope"],
        root,
        user_env(),
        timeout=BUILD_TIMEOUT,
    )
    assert code != 0 and "unknown flag: --nope" in loud, loud
    assert re.search(r"^  pip download \| ", loud, re.M), loud
    assert "filling .docker/wheelhouse/ for Python " in loud, loud  # --no-cache: although it was up to date

    code, quiet = on_a_terminal(
        [invoke, "docker-build", *_build_options(image), "--no-cache", "--quiet"],
        root,
        user_env(),
        timeout=BUILD_TIMEOUT,
    )
    image["images"].add(_image_id(tag))
    assert code == 0, quiet
    assert "filling .docker/wheelhouse/ for Python " in quiet, quiet
    assert "pip download |" not in quiet, quiet
    # docker's own output still streams, and no step came from the cache, though the first build left one
    first = _run_steps(image["build"].stdout + image["build"].stderr)
    assert first and not all(first.values()), output(image["build"])  # the first build took steps from the cache
    steps = _run_steps(quiet)
    assert len(steps) == len(first) and all(steps.values()), quiet
    assert f"built {tag}; run it with: invoke docker-run --tag {tag}\n" in quiet


def test_run_env_takes_that_config_environment_from_the_image(image, run_invoke):
    root, tag = image["root"], image["tag"]
    shutil.rmtree(root / "data", ignore_errors=True)
    ran = run_invoke(root, "docker-run", "--tag", tag, "--network", "none", "--env", "prod", "--pipeline", "ingest")
    assert ran.returncode == 0, output(ran)
    assert "INFO demo_project: pipeline ingest: starting (env prod)" in ran.stderr, output(ran)
    assert _rows(root / "data" / "prod.duckdb", "cities_prod") == 22  # conf/prod's catalog and parameters
    assert not (root / "data" / "ingest.duckdb").exists()

    unknown = run_invoke(root, "docker-run", "--tag", tag, "--network", "none", "--env", "staging")
    assert (
        one_error_line(unknown)
        == "error: no such env 'staging': conf/staging/ does not exist (available: base, local, prod)"
    )


def test_run_and_cmd_docker_args_reach_docker_run(image, run_invoke):
    root, tag = image["root"], image["tag"]
    override = root / "conf" / "local" / "parameters" / "ingest.yml"
    override.parent.mkdir(parents=True, exist_ok=True)
    override.write_text("table: ${oc.env:CITIES_TABLE,cities}\n")  # conf/local is mounted, not built in
    try:
        ran = run_invoke(
            root,
            "docker-run",
            "--tag",
            tag,
            "--network",
            "none",
            "--pipeline",
            "ingest",
            "--docker-args=-e CITIES_TABLE=from_docker_args",
        )
        assert ran.returncode == 0, output(ran)
        assert _rows(root / "data" / "ingest.duckdb", "from_docker_args") == 22
    finally:
        override.unlink()

    probe = 'echo "$PROBE in $(pwd)"'
    cmd = run_invoke(
        root,
        "docker-cmd",
        "--tag",
        tag,
        "--network",
        "none",
        "--docker-args=-e PROBE=hello --workdir /app/conf",
        "--",
        "sh",
        "-c",
        probe,
    )
    assert (cmd.returncode, cmd.stdout) == (0, "hello in /app/conf\n"), output(cmd)


def test_airflow_test_date_venv_and_pipeline(image, run_invoke, airflow_venv, tmp_path):  # noqa: F811
    """One DAG run: only the selected pipeline, at the given logical date, in the given Airflow
    virtualenv (PIPERACK_AIRFLOW_VENV names a folder without Airflow, so only --venv can work)."""
    root, tag = image["root"], image["tag"]
    options = ["--image", tag, "--network", "none", "--pipeline", "ingest"]
    wrote = run_invoke(root, "airflow-dag", *options)
    assert wrote.returncode == 0, output(wrote)
    not_airflow = tmp_path / "not-airflow"
    not_airflow.mkdir()
    env = {"PIPERACK_AIRFLOW_VENV": str(not_airflow)}
    without = run_invoke(root, "airflow-test", *options, "--date", "2026-03-15", env=env)
    assert one_error_line(without) == (
        f"error: {not_airflow} is not an Airflow virtualenv (no bin/airflow); "
        "leave --venv and PIPERACK_AIRFLOW_VENV unset to have one made"
    )
    shutil.rmtree(root / "data", ignore_errors=True)
    ran = run_invoke(
        root, "airflow-test", *options, "--date", "2026-03-15", "--venv", str(airflow_venv), env=env, timeout=900
    )
    assert ran.returncode == 0, output(ran)
    assert f"airflow dags test {PACKAGE} 2026-03-15\n" in ran.stdout
    assert f"DAG {PACKAGE}: success (ingest success)\n" in ran.stdout, output(ran)  # not greet
    # Airflow's own account of the run it made
    assert f"DagRun Finished: dag_id={PACKAGE}, logical_date=2026-03-15 00:00:00+00:00, " in ran.stdout, output(ran)
    assert _rows(root / "data" / "ingest.duckdb", "cities") == 22
    assert os.stat(root / "data" / "ingest.duckdb").st_uid == os.getuid()
