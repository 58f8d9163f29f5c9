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

Only the standard library is imported at module top (yaml inside functions), so ``invoke --list``
stays fast.
"""

from __future__ import annotations

import datetime as _dt
import difflib
import hashlib
import json
import math
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from .errors import PiperackError, first_line

CONFIG_NAME = "airflow.yml"
DEFAULT_OUTPUT = "airflow/dags"
DEFAULT_ENV = "local"
TARGETS = ("docker", "kubernetes")
CONTAINER_ROOT = "/app"  # as piperack.docker.CONTAINER_ROOT (not imported: that module is heavier to read)
MAX_CONFIG_BYTES = 1024 * 1024

# The Airflow of airflow-test: its own virtualenv, pinned by airflow_constraints.txt (package data).
AIRFLOW_REQUIREMENTS = (
    "apache-airflow==3.3.2",
    "apache-airflow-providers-docker==4.6.1",
    "apache-airflow-providers-cncf-kubernetes==10.25.0",
    "kubernetes-validate==1.37.0",
)
CONSTRAINTS = Path(__file__).with_name("airflow_constraints.txt")
KUBERNETES_VERSION = "1.33"  # the API schema the kubernetes target's pods are validated against

SCHEDULE_PRESETS = {
    "@once",
    "@continuous",
    "@hourly",
    "@daily",
    "@weekly",
    "@monthly",
    "@quarterly",
    "@yearly",
    "@annually",
}
CRON_FIELD = re.compile(r"^[0-9A-Za-z*?/,#LW-]+$")
DAG_ID = re.compile(r"^[A-Za-z0-9_.-]{1,250}$")
IMAGE_REF = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/:@-]*$")
NETWORK = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]*$")
DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$")
QUANTITY = re.compile(r"^[0-9]+(\.[0-9]+)?(m|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei)?$")
USER_SPEC = re.compile(r"^[0-9]+(:[0-9]+)?$")
RESOURCE_NAMES = ("cpu", "memory", "ephemeral-storage")
PULL_POLICIES = ("Always", "IfNotPresent", "Never")


# --- discovery ------------------------------------------------------------------------------


def discover_pipelines(project) -> list[str]:
    """The project's pipelines, found as its runner finds them, without importing project code: every
    package under src/<package>/pipelines/ holding a pipeline.py, by dotted name (``shared.ingest_b``);
    a package without one only groups pipelines."""
    found: list[str] = []

    def walk(folder: Path, prefix: str) -> None:
        for child in sorted(folder.iterdir()):
            if not child.is_dir() or not child.name.isidentifier() or not (child / "__init__.py").is_file():
                continue
            name = f"{prefix}{child.name}"
            if (child / "pipeline.py").is_file():
                found.append(name)
            else:
                walk(child, f"{name}.")

    folder = project.package_dir / "pipelines"
    if folder.is_dir():
        walk(folder, "")
    return sorted(set(found))


def task_variable(pipeline: str) -> str:
    """The DAG file's variable for a pipeline's task: ``shared.ingest_b`` -> ``shared__ingest_b_task``."""
    return pipeline.replace(".", "__") + "_task"


# --- configuration --------------------------------------------------------------------------


@dataclass(frozen=True)
class Spec:
    """How one configuration value is checked: kind, and for mappings the keys it may hold."""

    kind: str  # str, bool, int, number, list_str, mapping, date, secrets, quantity, any-key mapping
    keys: dict | None = None
    nullable: bool = True
    minimum: float | None = None


def _resources_spec() -> Spec:
    amounts = Spec("mapping", {name: Spec("quantity") for name in RESOURCE_NAMES})
    return Spec("mapping", {"requests": amounts, "limits": amounts})


PIPELINE_KEYS = {
    "depends_on": Spec("list_str"),
    "retries": Spec("int", minimum=0),
    "retry_delay_minutes": Spec("number", minimum=0),
    "resources": _resources_spec(),
}
DOCKER_KEYS = {
    "data_dir": Spec("str"),
    "conf_local_dir": Spec("str"),
    "network": Spec("str"),
    "user": Spec("str"),
    "docker_url": Spec("str"),
}
KUBERNETES_KEYS = {
    "namespace": Spec("str"),
    "service_account": Spec("str"),
    "image_pull_policy": Spec("str"),
    "image_pull_secrets": Spec("list_str"),
    "env_from_secret": Spec("secrets"),
    "data_volume_claim": Spec("str"),
    "resources": _resources_spec(),
    "run_as_user": Spec("int", minimum=0),
    "run_as_group": Spec("int", minimum=0),
    "fs_group": Spec("int", minimum=0),
    "conn_id": Spec("str"),
    "in_cluster": Spec("bool"),
}
TOP_KEYS = {
    "dag_id": Spec("str"),
    "schedule": Spec("str"),
    "start_date": Spec("date"),
    "catchup": Spec("bool"),
    "retries": Spec("int", minimum=0),
    "retry_delay_minutes": Spec("number", minimum=0),
    "owner": Spec("str"),
    "tags": Spec("list_str"),
    "max_active_runs": Spec("int", minimum=1),
    "image": Spec("str"),
    "pipelines": Spec("pipelines"),
    "docker": Spec("mapping", DOCKER_KEYS),
    "kubernetes": Spec("mapping", KUBERNETES_KEYS),
}
DEFAULTS = {
    "schedule": None,
    "start_date": None,
    "catchup": False,
    "retries": 0,
    "retry_delay_minutes": 5,
    "owner": "airflow",
    "tags": [],
    "max_active_runs": 1,
}


def _type_name(value) -> str:
    return "null" if value is None else type(value).__name__


def _check_value(where: str, key: str, value, spec: Spec) -> None:
    """Raise ``<file>: <key>: <problem>`` unless ``value`` fits ``spec`` (nested mappings checked too)."""

    def bad(expected: str):
        shown = value if isinstance(value, (str, int, float, bool)) or value is None else _type_name(value)
        raise PiperackError(f"{where}: {key}: expected {expected}, got {shown!r}")

    if value is None:
        if spec.nullable:
            return
        bad("a value")
    kind = spec.kind
    if kind == "str":
        if not isinstance(value, str) or not value.strip():
            bad("a non-empty string")
    elif kind == "bool":
        if not isinstance(value, bool):
            bad("true or false")
    elif kind == "int":
        if isinstance(value, bool) or not isinstance(value, int):
            bad("an integer" if spec.minimum is None else f"an integer >= {spec.minimum:g}")
        if spec.minimum is not None and value < spec.minimum:
            bad(f"an integer >= {spec.minimum:g}")
    elif kind == "number":
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            bad("a number")
        if spec.minimum is not None and value < spec.minimum:
            bad(f"a number >= {spec.minimum:g}")
    elif kind == "list_str":
        if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
            bad("a list of strings")
    elif kind == "secrets":
        if not (isinstance(value, str) and value.strip()) and not (
            isinstance(value, list) and all(isinstance(v, str) and v.strip() for v in value)
        ):
            bad("a Secret name or a list of them")
    elif kind == "quantity":
        if isinstance(value, bool) or not isinstance(value, (str, int, float)) or not QUANTITY.match(str(value)):
            bad("a Kubernetes quantity such as 500m, 2, 512Mi or 1Gi")
    elif kind == "date":
        if isinstance(value, str):
            try:
                _parse_date(value)
            except ValueError:
                bad("a date such as 2026-01-01 (or an ISO date-time)")
        elif not isinstance(value, (_dt.date, _dt.datetime)):
            bad("a date such as 2026-01-01")
    elif kind == "mapping":
        if not isinstance(value, dict):
            bad("a mapping")
        _check_mapping(where, key + ".", value, spec.keys)
    elif kind == "pipelines":
        if not isinstance(value, dict):
            bad("a mapping of pipeline names to their settings")
        for name, settings in value.items():
            if not isinstance(name, str):
                raise PiperackError(f"{where}: {key}: pipeline names must be strings, got {name!r}")
            if settings is None:
                continue
            if not isinstance(settings, dict):
                raise PiperackError(
                    f"{where}: {key}.{name}: expected a mapping (depends_on, retries, retry_delay_minutes, "
                    f"resources), got {_type_name(settings)}"
                )
            _check_mapping(where, f"{key}.{name}.", settings, PIPELINE_KEYS)


def _check_mapping(where: str, prefix: str, data: dict, keys: dict) -> None:
    for key, value in data.items():
        if not isinstance(key, str) or key not in keys:
            hint = difflib.get_close_matches(str(key), list(keys), n=1)
            suggestion = f"; did you mean {hint[0]!r}?" if hint else f" (known: {', '.join(sorted(keys))})"
            raise PiperackError(f"{where}: {prefix}{key}: unknown key{suggestion}")
        _check_value(where, prefix + key, value, keys[key])


def _parse_date(text: str) -> _dt.datetime:
    text = text.strip()
    try:
        day = _dt.date.fromisoformat(text)
        return _dt.datetime(day.year, day.month, day.day)
    except ValueError:
        return _dt.datetime.fromisoformat(text.replace("Z", "+00:00"))


def read_config_file(path: Path, label: str) -> dict:
    """One airflow.yml, parsed as hostile input (safe loader, size-capped) and checked key by key."""
    import yaml

    try:
        size = path.stat().st_size
        if size > MAX_CONFIG_BYTES:
            raise PiperackError(f"{label}: {size} bytes is too large for a config file (limit {MAX_CONFIG_BYTES})")
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise PiperackError(f"{label}: not UTF-8 text") from None
    except OSError as exc:
        raise PiperackError(f"{label}: cannot read: {exc.strerror}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or first_line(exc)
        raise PiperackError(f"{label}: malformed YAML{at}: {problem}") from None
    except RecursionError:
        raise PiperackError(f"{label}: malformed YAML: nested too deeply") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise PiperackError(f"{label}: expected a mapping of settings, got {_type_name(data)}")
    _check_mapping(label, "", data, TOP_KEYS)
    return data


def deep_merge(base: dict, override: dict) -> dict:
    """``override`` over ``base``, nested mappings merged key by key (as the project's runner does)."""
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


@dataclass
class Config:
    values: dict
    files: list  # [(label, data)] in merge order

    def source(self, *keys: str) -> str:
        """The last file (in merge order) that sets ``keys``: the one an error about them names."""
        for label, data in reversed(self.files):
            node = data
            for key in keys:
                if not isinstance(node, dict) or key not in node:
                    break
                node = node[key]
            else:
                return label
        return self.files[-1][0] if self.files else f"conf/base/{CONFIG_NAME}"

    def get(self, *keys: str, default=None):
        node = self.values
        for key in keys:
            if not isinstance(node, dict) or node.get(key) is None:
                return default
            node = node[key]
        return node


def load_config(project, env: str) -> Config:
    """conf/base/airflow.yml, then conf/<env>/airflow.yml over it (``--env base``: base only)."""
    files = []
    for name in ["base"] if env == "base" else ["base", env]:
        path = project.conf / name / CONFIG_NAME
        if path.is_file():
            label = f"conf/{name}/{CONFIG_NAME}"
            files.append((label, read_config_file(path, label)))
    merged: dict = {}
    for _, data in files:
        merged = deep_merge(merged, data)
    return Config(merged, files)


# --- the plan: everything the DAG file says, checked -------------------------------------------


@dataclass
class Task:
    pipeline: str
    upstream: list[str]
    retries: int | None = None
    retry_delay_seconds: float | None = None
    resources: dict = field(default_factory=dict)


@dataclass
class Plan:
    target: str
    package: str
    project_name: str
    env: str
    dag_id: str
    schedule: str | None
    start_date: _dt.datetime | None
    catchup: bool
    max_active_runs: int
    tags: list[str]
    owner: str
    retries: int
    retry_delay_seconds: float
    image: str
    tasks: list[Task]  # in topological order
    path: Path
    output_label: str
    sources: list[str]
    command: list[str]  # the airflow-dag command that regenerates the file
    docker: dict = field(default_factory=dict)
    kubernetes: dict = field(default_factory=dict)
    project_relative: str | None = None  # output folder -> project root, when inside the project


def _rel(project, path: Path) -> str:
    try:
        return Path(path).resolve().relative_to(project.root.resolve()).as_posix()
    except ValueError:
        return str(path)


def _check_schedule(label: str, schedule: str) -> str:
    schedule = schedule.strip()
    if schedule.startswith("@"):
        if schedule not in SCHEDULE_PRESETS:
            raise PiperackError(
                f"{label}: schedule: unknown preset {schedule!r} "
                f"(use one of {', '.join(sorted(SCHEDULE_PRESETS))}, a cron expression or null)"
            )
        return schedule
    fields = schedule.split()
    if len(fields) not in (5, 6) or not all(CRON_FIELD.match(f) for f in fields):
        raise PiperackError(
            f"{label}: schedule: {schedule!r} is not a cron expression (5 fields, e.g. '0 2 * * *'), "
            "a preset such as @daily, or null"
        )
    return " ".join(fields)


def _as_datetime(value) -> _dt.datetime:
    if isinstance(value, _dt.datetime):
        moment = value
    elif isinstance(value, _dt.date):
        moment = _dt.datetime(value.year, value.month, value.day)
    else:
        moment = _parse_date(str(value))
    if moment.tzinfo is not None:
        moment = moment.astimezone(_dt.UTC).replace(tzinfo=None)
    return moment


def _topological(config: Config, chosen: list[str], edges: dict[str, list[str]]) -> list[str]:
    """The pipelines in an order that runs each after what it depends on (ties by name); a cycle is
    one line naming the file and key."""
    state: dict[str, int] = {}
    order: list[str] = []

    def visit(name: str, trail: list[str]) -> None:
        if state.get(name) == 2:
            return
        if state.get(name) == 1:
            cycle = trail[trail.index(name) :] + [name]
            raise PiperackError(
                f"{config.source('pipelines', name, 'depends_on')}: pipelines.{name}.depends_on: "
                f"cycle {' -> '.join(cycle)}"
            )
        state[name] = 1
        for upstream in sorted(edges.get(name, [])):
            visit(upstream, trail + [name])
        state[name] = 2
        order.append(name)

    for name in sorted(edges):
        visit(name, [])
    return [name for name in order if name in chosen]


def _seconds(minutes) -> float:
    seconds = float(minutes) * 60
    return int(seconds) if seconds == int(seconds) else round(seconds, 3)


def _resources(config: Config, pipeline: str | None) -> dict:
    base = config.get("kubernetes", "resources", default={})
    own = config.get("pipelines", pipeline, "resources", default={}) if pipeline else {}
    merged = deep_merge(base, own)
    return {
        kind: {name: str(amount) for name, amount in sorted(amounts.items()) if amount is not None}
        for kind, amounts in sorted(merged.items())
        if isinstance(amounts, dict) and any(a is not None for a in amounts.values())
    }


def _k8s_name(text: str) -> str:
    name = re.sub(r"[^a-z0-9-]+", "-", text.lower()).strip("-")
    return name[:50].rstrip("-") or "pipeline"


def plan(
    project,
    target: str = "docker",
    env: str | None = None,
    pipelines=None,
    image: str | None = None,
    network: str | None = None,
    output: str | None = None,
) -> Plan:
    """Read and check everything the DAG file depends on; nothing is written."""
    target = target or "docker"
    if target not in TARGETS:
        raise PiperackError(f"unknown --target {target!r}: use docker or kubernetes")
    env = env or DEFAULT_ENV
    project.env_dir(env, must_exist=env not in {DEFAULT_ENV, "base"})
    available = discover_pipelines(project)
    if not available:
        raise PiperackError(
            f"{_rel(project, project.package_dir / 'pipelines')}: no pipelines (a folder with "
            "__init__.py and pipeline.py); create one with `invoke new-pipeline NAME`"
        )
    wanted = list(dict.fromkeys(pipelines or []))
    unknown = [p for p in wanted if p not in available]
    if unknown:
        raise PiperackError(f"unknown pipeline {', '.join(map(repr, unknown))} (available: {', '.join(available)})")
    chosen = sorted(wanted) if wanted else available
    variables: dict[str, str] = {}
    for name in available:
        other = variables.setdefault(task_variable(name), name)
        if other != name:
            raise PiperackError(
                f"pipelines {other!r} and {name!r} would share the DAG file's name {task_variable(name)!r}: rename one"
            )

    config = load_config(project, env)
    sources = [label for label, _ in config.files]
    label = config.source

    configured = config.get("pipelines", default={})
    for name in configured:
        if name not in available:
            raise PiperackError(
                f"{label('pipelines', name)}: pipelines.{name}: no such pipeline (available: {', '.join(available)})"
            )
    edges: dict[str, list[str]] = {name: [] for name in available}
    for name in available:
        depends = config.get("pipelines", name, "depends_on", default=[])
        for upstream in depends:
            if upstream not in available:
                raise PiperackError(
                    f"{label('pipelines', name, 'depends_on')}: pipelines.{name}.depends_on: unknown "
                    f"pipeline {upstream!r} (available: {', '.join(available)})"
                )
        edges[name] = list(dict.fromkeys(depends))
    order = _topological(config, chosen, edges)

    from . import ui

    tasks = []
    for name in order:
        upstream = [u for u in edges[name] if u in chosen]
        for left_out in sorted(set(edges[name]) - set(chosen)):
            ui.warn(f"{name} depends on {left_out}, which is not in this DAG (--pipeline): that order is dropped")
        delay = config.get("pipelines", name, "retry_delay_minutes")
        tasks.append(
            Task(
                pipeline=name,
                upstream=sorted(upstream),
                retries=config.get("pipelines", name, "retries"),
                retry_delay_seconds=None if delay is None else _seconds(delay),
                resources=_resources(config, name) if config.get("pipelines", name, "resources") else {},
            )
        )

    dag_id = config.get("dag_id", default=project.package)
    if not DAG_ID.match(dag_id):
        raise PiperackError(
            f"{label('dag_id')}: dag_id: {dag_id!r} may hold only letters, digits, '_', '.' and '-' (at most 250)"
        )
    schedule = config.get("schedule")
    if schedule is not None:
        schedule = _check_schedule(label("schedule"), schedule)
    start = config.get("start_date")
    start_date = _as_datetime(start) if start is not None else None
    if schedule not in (None, "@once") and start_date is None:
        raise PiperackError(
            f"{label('schedule')}: start_date: required when a schedule is set (e.g. start_date: 2026-01-01)"
        )
    tags = list(dict.fromkeys(config.get("tags", default=DEFAULTS["tags"])))
    owner = config.get("owner", default=DEFAULTS["owner"])

    image_source = "--image" if image else label("image")
    image = image or config.get("image")
    if image is None:
        from .docker import default_tag

        image = default_tag(project)
    if not IMAGE_REF.match(image):
        raise PiperackError(
            f"{image_source}: image: {image!r} is not an image reference (e.g. registry.example.com/team/demo:1.0)"
        )

    output_dir = Path(output) if output else Path(DEFAULT_OUTPUT)
    if not output_dir.is_absolute():
        output_dir = project.root / output_dir
    output_dir = Path(os.path.normpath(output_dir))
    path = output_dir / f"{project.package}.py"
    try:
        inside = output_dir.relative_to(project.root)
        project_relative = os.path.relpath(project.root, output_dir) if inside.parts else "."
        output_label = inside.as_posix() if inside.parts else "."
    except ValueError:
        project_relative, output_label = None, str(output_dir)
    if path.exists() and not path.is_file():
        raise PiperackError(f"{_rel(project, path)} exists and is not a file")

    command = ["invoke", "airflow-dag"]
    if target != "docker":
        command += ["--target", target]
    if env != DEFAULT_ENV:
        command += ["--env", env]
    for name in sorted(wanted):
        command += ["--pipeline", name]
    if image_source == "--image":
        command += ["--image", image]
    if network:
        command += ["--network", network]
    if output_label != DEFAULT_OUTPUT:
        command += ["--output", output_label]

    result = Plan(
        target=target,
        package=project.package,
        project_name=re.sub(
            r"[^A-Za-z0-9._ -]+", "-", str(project.pyproject_data.get("project", {}).get("name") or project.package)
        ),
        env=env,
        dag_id=dag_id,
        schedule=schedule,
        start_date=start_date,
        catchup=config.get("catchup", default=DEFAULTS["catchup"]),
        max_active_runs=config.get("max_active_runs", default=DEFAULTS["max_active_runs"]),
        tags=tags,
        owner=owner.strip(),
        retries=config.get("retries", default=DEFAULTS["retries"]),
        retry_delay_seconds=_seconds(config.get("retry_delay_minutes", default=DEFAULTS["retry_delay_minutes"])),
        image=image,
        tasks=tasks,
        path=path,
        output_label=output_label,
        sources=sources,
        command=command,
        project_relative=project_relative,
    )
    if target == "docker":
        result.docker = _docker_settings(config, network)
        result.docker["project_root"] = str(project.root)
    else:
        result.kubernetes = _kubernetes_settings(config)
    return result


def _docker_settings(config: Config, network: str | None) -> dict:
    label = config.source
    settings = {}
    for key in ("data_dir", "conf_local_dir"):
        value = config.get("docker", key)
        if value is not None and not os.path.isabs(value):
            raise PiperackError(
                f"{label('docker', key)}: docker.{key}: {value!r} must be an absolute path on the "
                "Docker host (leave it out for the project's own folder)"
            )
        settings[key] = os.path.normpath(value) if value else None
    source = "--network" if network else label("docker", "network")
    network = network or config.get("docker", "network")
    if network is not None and not NETWORK.match(network):
        raise PiperackError(f"{source}: network: {network!r} is not a Docker network name (e.g. none, host, bridge)")
    settings["network"] = network
    user = config.get("docker", "user")
    if user is not None and not USER_SPEC.match(user.strip()):
        raise PiperackError(f"{label('docker', 'user')}: docker.user: {user!r} must be UID or UID:GID, e.g. 1000:1000")
    settings["user"] = user.strip() if user else None
    settings["docker_url"] = config.get("docker", "docker_url")
    return settings


def _kubernetes_settings(config: Config) -> dict:
    label = config.source
    get = config.get
    namespace = get("kubernetes", "namespace", default="default")
    if not DNS_LABEL.match(namespace):
        raise PiperackError(
            f"{label('kubernetes', 'namespace')}: kubernetes.namespace: {namespace!r} is not a "
            "Kubernetes name (lower-case letters, digits and '-')"
        )
    policy = get("kubernetes", "image_pull_policy", default="IfNotPresent")
    if policy not in PULL_POLICIES:
        raise PiperackError(
            f"{label('kubernetes', 'image_pull_policy')}: kubernetes.image_pull_policy: {policy!r} "
            f"(use one of {', '.join(PULL_POLICIES)})"
        )
    secrets = get("kubernetes", "env_from_secret", default=[])
    secrets = [secrets] if isinstance(secrets, str) else list(secrets)
    names = {
        "service_account": [get("kubernetes", "service_account")],
        "data_volume_claim": [get("kubernetes", "data_volume_claim")],
        "env_from_secret": secrets,
        "image_pull_secrets": get("kubernetes", "image_pull_secrets", default=[]),
    }
    for key, values in names.items():
        for value in values:
            if value is not None and not DNS_SUBDOMAIN.match(value):
                raise PiperackError(
                    f"{label('kubernetes', key)}: kubernetes.{key}: {value!r} is not a Kubernetes "
                    "name (lower-case letters, digits, '-' and '.')"
                )
    return {
        "namespace": namespace,
        "image_pull_policy": policy,
        "service_account": get("kubernetes", "service_account"),
        "data_volume_claim": get("kubernetes", "data_volume_claim"),
        "env_from_secret": list(dict.fromkeys(secrets)),
        "image_pull_secrets": list(dict.fromkeys(names["image_pull_secrets"])),
        "resources": _resources(config, None),
        "run_as_user": get("kubernetes", "run_as_user"),
        "run_as_group": get("kubernetes", "run_as_group"),
        "fs_group": get("kubernetes", "fs_group"),
        "conn_id": get("kubernetes", "conn_id"),
        "in_cluster": get("kubernetes", "in_cluster"),
    }


# --- rendering ------------------------------------------------------------------------------


def py(value) -> str:
    """A Python literal for ``value``, double-quoted strings, deterministic."""
    if isinstance(value, str):
        text = repr(value)
        if text.startswith("'") and '"' not in value:
            text = '"' + text[1:-1].replace("\\'", "'") + '"'
        return text
    if isinstance(value, bool) or value is None or isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, list):
        return "[" + ", ".join(py(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{py(k)}: {py(v)}" for k, v in value.items()) + "}"
    raise TypeError(type(value))


def _timedelta(seconds: float) -> str:
    if seconds and seconds % 60 == 0:
        return f"datetime.timedelta(minutes={int(seconds // 60)})"
    return f"datetime.timedelta(seconds={seconds!r})"


def _datetime(moment: _dt.datetime) -> str:
    parts = [moment.year, moment.month, moment.day, moment.hour, moment.minute, moment.second]
    while len(parts) > 3 and parts[-1] == 0:
        parts.pop()
    return f"datetime.datetime({', '.join(map(str, parts))}, tzinfo=datetime.timezone.utc)"


def _memory_for_docker(quantity: str) -> str | int:
    """A Kubernetes memory quantity as docker's mem_limit (bytes, or 512m / 2g when exact)."""
    units = {
        "": 1,
        "k": 10**3,
        "M": 10**6,
        "G": 10**9,
        "T": 10**12,
        "P": 10**15,
        "E": 10**18,
        "Ki": 2**10,
        "Mi": 2**20,
        "Gi": 2**30,
        "Ti": 2**40,
        "Pi": 2**50,
        "Ei": 2**60,
        "m": 10**-3,
    }
    match = QUANTITY.match(quantity)
    number, unit = match.group(0)[: len(match.group(0)) - len(match.group(2) or "")], match.group(2) or ""
    if unit in {"Ki", "Mi", "Gi"} and "." not in number:
        return f"{number}{unit[0].lower()}"
    return int(float(number) * units[unit])


class Lines:
    """The file's lines, each tagged with the setting it shows (what --check names when it differs)."""

    def __init__(self):
        self.items: list[tuple[str, str]] = []

    def add(self, label: str, *lines: str) -> None:
        for line in lines:
            for part in line.split("\n"):
                self.items.append((label, part))

    def text(self) -> str:
        return "\n".join(line for _, line in self.items).rstrip("\n") + "\n"


def render(p: Plan) -> Lines:
    out = Lines()
    regenerate = " ".join(shlex.quote(a) for a in p.command)
    sources = " over ".join(reversed(p.sources)) if p.sources else f"the defaults (no conf/base/{CONFIG_NAME})"
    operator = "DockerOperator" if p.target == "docker" else "KubernetesPodOperator"
    out.add(
        "header",
        f"# Generated by piperack (invoke airflow-dag) from {sources}",
        f"# and the pipelines in src/{p.package}/pipelines/. Do not edit: change the config, then regenerate with",
    )
    out.add(
        "command-line options",
        f"#     {regenerate}",
        f"# (`{regenerate} --check` exits 1 while this file is stale; CI can run it.)",
    )
    out.add(
        "header",
        f'"""{p.project_name}: its pipelines as the Airflow DAG {p.dag_id!r}, one {operator} task each,',
        f"in the image {p.image}.",
        "",
        f"Each task runs `python -m {p.package} run --pipeline <name> --env {p.env}` in the image; a task that",
        "exits non-zero fails (and is retried as configured). This file imports only Airflow, its providers",
        "and the standard library.",
        '"""',
    )
    out.add("imports", "from __future__ import annotations", "", "import datetime")
    if p.target == "docker":
        out.add(
            "imports",
            "import os",
            "",
            "from airflow.providers.docker.operators.docker import DockerOperator",
            "from airflow.sdk import DAG",
        )
    else:
        out.add(
            "imports",
            "",
            "from airflow.providers.cncf.kubernetes.operators.pod import KubernetesPodOperator",
            "from airflow.sdk import DAG",
            "from kubernetes.client import models as k8s",
        )
    out.add("", "")
    out.add("image", f"IMAGE = {py(p.image)}")
    out.add(
        "env", f"ENV = {py(p.env)}  # the config environment the pipelines run with (conf/{p.env}/ over conf/base/)"
    )
    if p.target == "docker":
        _render_docker(out, p)
    else:
        _render_kubernetes(out, p)
    _render_dag(out, p)
    return out


def _render_docker(out: Lines, p: Plan) -> None:
    d = p.docker
    if not (d["data_dir"] and d["conf_local_dir"]):
        out.add(
            "data_dir",
            "# The host folders mounted into each container, as `invoke docker-run` mounts them. Unless airflow.yml",
            "# sets docker.data_dir and docker.conf_local_dir, those of the project holding this file.",
        )
        if p.project_relative is not None:
            parts = ", ".join(py(part) for part in Path(p.project_relative).parts) if p.project_relative != "." else ""
            joined = f"os.path.join(os.path.dirname(os.path.abspath(__file__)){', ' + parts if parts else ''})"
            out.add("data_dir", f"PROJECT_DIR = os.path.normpath({joined})")
        else:  # written outside the project: its absolute path
            out.add("data_dir", f"PROJECT_DIR = {py(p.docker['project_root'])}")
    out.add("data_dir", "DATA_DIR = " + (py(d["data_dir"]) if d["data_dir"] else 'os.path.join(PROJECT_DIR, "data")'))
    out.add(
        "conf_local_dir",
        "CONF_LOCAL_DIR = "
        + (py(d["conf_local_dir"]) if d["conf_local_dir"] else 'os.path.join(PROJECT_DIR, "conf", "local")'),
    )
    if d["user"]:
        out.add("user", f"USER = {py(d['user'])}  # docker.user in airflow.yml")
    else:
        out.add(
            "user",
            "# Containers run as the user running the task (set docker.user in airflow.yml to pick one),",
            "# so what they write under DATA_DIR belongs to that user, as with `invoke docker-run`.",
            'USER = f"{os.getuid()}:{os.getgid()}"',
        )
    out.add("network", f"NETWORK = {py(d['network'])}  # as `invoke docker-run --network`; None: Docker's default")
    out.add("", "", "")
    out.add(
        "operator",
        "def _pipeline_operator(pipeline: str, **settings) -> DockerOperator:",
        f'    """One pipeline, one container: `python -m {p.package} run --pipeline <pipeline> --env <ENV>`."""',
        "    return DockerOperator(",
        "        task_id=pipeline,",
        "        image=IMAGE,",
        f'        command=["python", "-m", {py(p.package)}, "run", "--pipeline", pipeline, "--env", ENV],',
        "        user=USER,",
        "        mounts=[",
        f'            {{"type": "bind", "source": DATA_DIR, "target": "{CONTAINER_ROOT}/data", "read_only": False}},',
        f'            {{"type": "bind", "source": CONF_LOCAL_DIR, "target": "{CONTAINER_ROOT}/conf/local", '
        '"read_only": True},',
        "        ],",
        "        network_mode=NETWORK,",
    )
    if d["docker_url"]:
        out.add("docker_url", f"        docker_url={py(d['docker_url'])},")
    out.add(
        "operator",
        '        auto_remove="force",  # like docker run --rm',
        "        mount_tmp_dir=False,",
        "        do_xcom_push=False,",
        "        **settings,",
        "    )",
    )


def _render_kubernetes(out: Lines, p: Plan) -> None:
    k = p.kubernetes
    out.add("namespace", f"NAMESPACE = {py(k['namespace'])}")
    out.add("", "", "")
    out.add(
        "operator",
        "def _pipeline_operator(pipeline: str, pod_name: str, resources: dict | None, **settings) "
        "-> KubernetesPodOperator:",
        f'    """One pipeline, one pod: `python -m {p.package} run --pipeline <pipeline> --env <ENV>`."""',
        "    return KubernetesPodOperator(",
        "        task_id=pipeline,",
        "        name=pod_name,",
        "        namespace=NAMESPACE,",
        "        image=IMAGE,",
        f"        image_pull_policy={py(k['image_pull_policy'])},",
        f'        cmds=["python", "-m", {py(p.package)}, "run"],',
        '        arguments=["--pipeline", pipeline, "--env", ENV],',
    )
    if k["image_pull_secrets"]:
        refs = ", ".join(f"k8s.V1LocalObjectReference(name={py(n)})" for n in k["image_pull_secrets"])
        out.add("image_pull_secrets", f"        image_pull_secrets=[{refs}],")
    if k["service_account"]:
        out.add("service_account", f"        service_account_name={py(k['service_account'])},")
    if k["env_from_secret"]:
        out.add("env_from_secret", "        env_from=[")
        for name in k["env_from_secret"]:
            out.add(
                "env_from_secret",
                f"            k8s.V1EnvFromSource(secret_ref=k8s.V1SecretEnvSource(name={py(name)})),",
            )
        out.add("env_from_secret", "        ],")
    if k["data_volume_claim"]:
        out.add(
            "data_volume_claim",
            "        volumes=[",
            "            k8s.V1Volume(",
            '                name="data",',
            "                persistent_volume_claim=k8s.V1PersistentVolumeClaimVolumeSource("
            f"claim_name={py(k['data_volume_claim'])}),",
            "            ),",
            "        ],",
            f'        volume_mounts=[k8s.V1VolumeMount(name="data", mount_path="{CONTAINER_ROOT}/data")],',
        )
    context = {key: k[key] for key in ("run_as_user", "run_as_group", "fs_group") if k[key] is not None}
    if context:
        args = ", ".join(f"{key}={value}" for key, value in context.items())
        out.add("security_context", f"        security_context=k8s.V1PodSecurityContext({args}),")
    if k["conn_id"]:
        out.add("conn_id", f"        kubernetes_conn_id={py(k['conn_id'])},")
    if k["in_cluster"] is not None:
        out.add("in_cluster", f"        in_cluster={k['in_cluster']!r},")
    out.add(
        "operator",
        "        container_resources=k8s.V1ResourceRequirements(**resources) if resources else None,",
        "        get_logs=True,",
        '        on_finish_action="delete_pod",',
        "        **settings,",
        "    )",
    )


def _render_dag(out: Lines, p: Plan) -> None:
    out.add("", "", "")
    out.add("dag", "with DAG(")
    out.add("dag_id", f"    dag_id={py(p.dag_id)},")
    out.add("schedule", f"    schedule={py(p.schedule)},")
    out.add("start_date", f"    start_date={_datetime(p.start_date) if p.start_date else 'None'},")
    out.add("catchup", f"    catchup={p.catchup!r},")
    out.add("max_active_runs", f"    max_active_runs={p.max_active_runs!r},")
    out.add("tags", f"    tags={py(p.tags)},")
    out.add("dag", "    default_args={")
    out.add("owner", f'        "owner": {py(p.owner)},')
    out.add("retries", f'        "retries": {p.retries!r},')
    out.add("retry_delay", f'        "retry_delay": {_timedelta(p.retry_delay_seconds)},')
    out.add("dag", "    },", ") as dag:")
    for task in p.tasks:
        args = [py(task.pipeline)]
        if p.target == "kubernetes":
            resources = _resources_for(p, task)
            args += [py(_k8s_name(f"{p.dag_id}-{task.pipeline}")), py(resources) if resources else "None"]
        elif task.resources.get("limits", {}).get("memory"):
            args.append(f"mem_limit={py(_memory_for_docker(task.resources['limits']['memory']))}")
        if task.retries is not None:
            args.append(f"retries={task.retries!r}")
        if task.retry_delay_seconds is not None:
            args.append(f"retry_delay={_timedelta(task.retry_delay_seconds)}")
        out.add(f"task {task.pipeline}", f"    {task_variable(task.pipeline)} = _pipeline_operator({', '.join(args)})")
    edges = [(u, t.pipeline) for t in p.tasks for u in t.upstream]
    if edges:
        out.add(
            "order", "", "    # Order, from depends_on in airflow.yml: each task starts once those before it succeeded."
        )
        for upstream, downstream in edges:
            out.add("order", f"    {task_variable(upstream)} >> {task_variable(downstream)}")


def _resources_for(p: Plan, task: Task) -> dict:
    return (
        deep_merge(p.kubernetes.get("resources", {}), task.resources)
        if (p.kubernetes.get("resources") or task.resources)
        else {}
    )


# --- the verb -------------------------------------------------------------------------------


def stale_labels(expected: Lines, actual_text: str) -> list[str]:
    """The settings (labels) whose lines differ between the expected rendering and the file's text."""
    want = [line for _, line in expected.items]
    have = actual_text.rstrip("\n").split("\n") if actual_text else []
    labels: list[str] = []

    def note(label: str) -> None:
        if label and label not in labels:
            labels.append(label)

    task_line = re.compile(r"^\s+(\w+)_task = _pipeline_operator\(")
    for op, i1, i2, j1, j2 in difflib.SequenceMatcher(None, want, have, autojunk=False).get_opcodes():
        if op == "equal":
            continue
        for i in range(i1, i2):
            note(expected.items[i][0] or "layout")
        for line in have[j1:j2]:
            match = task_line.match(line)
            if match:
                note(f"task {match.group(1).replace('__', '.')}")
        if i1 == i2 and not any(task_line.match(line) for line in have[j1:j2]):  # lines only on disk
            neighbour = expected.items[min(i1, len(expected.items) - 1)][0] if expected.items else ""
            note(neighbour or "layout")
    real = [label for label in labels if label != "layout"]
    return real or labels


def _stale_message(p: Plan, path_label: str, labels: list[str]) -> str:
    regenerate = " ".join(shlex.quote(a) for a in p.command)
    shown = ", ".join(labels[:8]) + (f" and {len(labels) - 8} more" if len(labels) > 8 else "")
    return f"{path_label} is stale against the config and pipelines ({shown} differ); regenerate it with: {regenerate}"


def airflow_dag(
    project,
    target: str = "docker",
    env: str | None = None,
    pipelines=None,
    image: str | None = None,
    network: str | None = None,
    output: str | None = None,
    check: bool = False,
) -> Path:
    """Write (or with ``check``, compare) the DAG file. Returns its path."""
    from . import ui
    from .fsutil import atomic_write

    p = plan(project, target=target, env=env, pipelines=pipelines, image=image, network=network, output=output)
    rendered = render(p)
    text = rendered.text()
    label = _rel(project, p.path)
    current = p.path.read_text(encoding="utf-8", errors="replace") if p.path.is_file() else None
    if check:
        if current is None:
            raise PiperackError(f"{label} does not exist; write it with: {' '.join(shlex.quote(a) for a in p.command)}")
        if current != text:
            diff = list(
                difflib.unified_diff(
                    current.splitlines(),
                    text.splitlines(),
                    f"{label} (on disk)",
                    f"{label} (from the config)",
                    lineterm="",
                    n=1,
                )
            )
            for line in diff[:60]:
                ui.info(line)
            if len(diff) > 60:
                ui.info(f"... ({len(diff) - 60} more diff lines)")
            raise PiperackError(_stale_message(p, label, stale_labels(rendered, current)))
        ui.info(f"{label} is up to date (DAG {p.dag_id}: {_summary(p)})")
        return p.path
    if current == text:
        ui.info(f"{label} is unchanged (DAG {p.dag_id}: {_summary(p)})")
        return p.path
    p.path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(p.path, text)
    ui.info(f"wrote {label}: DAG {p.dag_id}, {p.target} target, {_summary(p)}")
    return p.path


def _summary(p: Plan) -> str:
    order = ", ".join(f"{u} -> {t.pipeline}" for t in p.tasks for u in t.upstream)
    tasks = ", ".join(t.pipeline for t in p.tasks)
    return (
        f"tasks {tasks}"
        + (f"; order {order}" if order else "")
        + f"; schedule {p.schedule or 'none (manual runs)'}; image {p.image}"
    )


# --- the Airflow virtualenv -------------------------------------------------------------------


def _uv() -> list[str]:
    from .buildreqs import find_uv

    cmd = find_uv()
    if not cmd:
        raise PiperackError("uv is not installed (it comes with piperack): `pip install uv`, then retry")
    return cmd


def cache_root() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "piperack-airflow"


def venv_key(python: str) -> str:
    version = subprocess.run(
        [python, "-c", "import sys, platform; print(sys.version, platform.machine())"], capture_output=True, text=True
    )
    if version.returncode != 0:
        raise PiperackError(f"cannot run {python} for the Airflow virtualenv: {first_line(version.stderr) or 'failed'}")
    digest = hashlib.sha256()
    digest.update("\n".join(AIRFLOW_REQUIREMENTS).encode())
    digest.update(CONSTRAINTS.read_bytes())
    digest.update(version.stdout.encode())
    return digest.hexdigest()[:16]


def ensure_venv(venv: str | Path | None = None, python: str | None = None) -> Path:
    """The Airflow virtualenv: ``venv`` (or $PIPERACK_AIRFLOW_VENV) as given, else one made once under
    ~/.cache/piperack-airflow/<key>/ (a lock lets parallel callers wait; ``.complete`` marks it whole)."""
    from . import ui

    given = venv or os.environ.get("PIPERACK_AIRFLOW_VENV")
    if given:
        path = Path(given).expanduser()
        if not (path / "bin" / "airflow").is_file():
            raise PiperackError(
                f"{path} is not an Airflow virtualenv (no bin/airflow); leave --venv and "
                "PIPERACK_AIRFLOW_VENV unset to have one made"
            )
        return path
    python = python or os.environ.get("PIPERACK_AIRFLOW_PYTHON") or sys.executable
    path = cache_root() / venv_key(python)
    if (path / ".complete").is_file():
        return path
    import fcntl

    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.parent / f".{path.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if (path / ".complete").is_file():
            return path
        ui.info(f"making the Airflow virtualenv {path} (once; {', '.join(AIRFLOW_REQUIREMENTS[:3])})")
        shutil.rmtree(path, ignore_errors=True)
        uv = _uv()
        steps = [
            [*uv, "venv", "--quiet", "--python", python, str(path)],
            [
                *uv,
                "pip",
                "install",
                "--quiet",
                "--python",
                str(path / "bin" / "python"),
                "--constraint",
                str(CONSTRAINTS),
                *AIRFLOW_REQUIREMENTS,
            ],
        ]
        for step in steps:
            proc = subprocess.run(step, capture_output=True, text=True)
            if proc.returncode != 0:
                shutil.rmtree(path, ignore_errors=True)
                lines = [line for line in proc.stderr.splitlines() if line.strip()]
                reason = next((line for line in lines if "error" in line.lower()), lines[-1] if lines else "failed")
                raise PiperackError(f"cannot make the Airflow virtualenv ({reason.strip()[:200]})")
        (path / ".complete").write_text(json.dumps({"requirements": AIRFLOW_REQUIREMENTS}) + "\n")
    return path


# --- airflow-test -----------------------------------------------------------------------------


def airflow_env(venv: Path, home: Path, dags_folder: Path) -> dict:
    """A private Airflow: SQLite under ``home``, no examples; the caller's Airflow settings left out."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("AIRFLOW__") and k not in {"AIRFLOW_HOME", "AIRFLOW_CONFIG", "PYTHONPATH", "PYTHONHOME"}
    }
    env.update(
        {
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(dags_folder),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
            "AIRFLOW__LOGGING__LOGGING_LEVEL": "INFO",
            "VIRTUAL_ENV": str(venv),
            "PATH": os.pathsep.join([str(venv / "bin"), os.environ.get("PATH", "")]),
            "PYTHONDONTWRITEBYTECODE": "1",
            "NO_COLOR": "1",
        }
    )
    return env


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


def _airflow(venv: Path, env: dict, *args: str, stream: bool = False) -> subprocess.CompletedProcess:
    cmd = [str(venv / "bin" / "airflow"), *args]
    if stream:
        return subprocess.run(cmd, env=env, cwd=env["AIRFLOW_HOME"], text=True)
    return subprocess.run(cmd, env=env, cwd=env["AIRFLOW_HOME"], capture_output=True, text=True)


def _json_from(output: str):
    """The JSON document in a CLI's output (Airflow may log lines before it)."""
    for start in (i for i, ch in enumerate(output) if ch in "[{"):
        try:
            return json.loads(output[start:])
        except ValueError:
            continue
    return None


def import_errors(venv: Path, env: dict, path: Path) -> list[str]:
    proc = _airflow(venv, env, "dags", "list-import-errors", "--local", "--output", "json")
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


def airflow_test(
    project,
    target: str = "docker",
    env: str | None = None,
    pipelines=None,
    image: str | None = None,
    network: str | None = None,
    output: str | None = None,
    date: str | None = None,
    venv: str | None = None,
) -> int:
    """Run the DAG file once in a throwaway Airflow; returns 0 when every task succeeded."""
    from . import ui

    p = plan(project, target=target, env=env, pipelines=pipelines, image=image, network=network, output=output)
    rendered = render(p)
    label = _rel(project, p.path)
    command = " ".join(shlex.quote(a) for a in p.command)
    if not p.path.is_file():
        raise PiperackError(f"{label} does not exist; write it first with: {command}")
    current = p.path.read_text(encoding="utf-8", errors="replace")
    if current != rendered.text():
        raise PiperackError(_stale_message(p, label, stale_labels(rendered, current)))
    if date is not None:
        try:
            _parse_date(date)
        except ValueError:
            raise PiperackError(f"invalid --date {date!r}: use YYYY-MM-DD or an ISO date-time") from None
    if p.target == "docker":
        from .docker import _image_id, check_engine

        if not p.docker.get("docker_url"):
            exe = check_engine()
            if not _image_id(exe, p.image):
                raise PiperackError(
                    f"no image {p.image!r} in the local engine; build it first: invoke docker-build --tag {p.image}"
                )
    airflow_venv = ensure_venv(venv)
    with tempfile.TemporaryDirectory(prefix="piperack-airflow-") as tmp:
        home = Path(tmp)
        environ = airflow_env(airflow_venv, home, p.path.parent)
        ui.info(f"Airflow home {home} (SQLite); migrating the metadata database")
        proc = _airflow(airflow_venv, environ, "db", "migrate")
        if proc.returncode != 0:
            sys.stderr.write(proc.stderr[-3000:])
            last = [line for line in proc.stderr.splitlines() if line.strip()]
            raise PiperackError(f"airflow db migrate failed: {last[-1].strip()[:200] if last else 'no output'}")
        errors = import_errors(airflow_venv, environ, p.path)
        if errors:
            sys.stderr.write(errors[0][-3000:] + "\n")
            last = [line for line in errors[0].splitlines() if line.strip()]
            raise PiperackError(f"{label} does not import in Airflow: {last[-1].strip() if last else 'import error'}")
        ui.info(f"{label} imports cleanly: DAG {p.dag_id}, tasks {', '.join(t.pipeline for t in p.tasks)}")
        if p.target == "kubernetes":
            dags = inspect_dag(airflow_venv, p.path, environ, validate=True)
            bad = [
                (task_id, info.get("problem"))
                for dag in dags
                for task_id, info in dag["tasks"].items()
                if not info.get("valid")
            ]
            if bad:
                raise PiperackError(
                    f"the pod of task {bad[0][0]} is not valid for Kubernetes {KUBERNETES_VERSION}: {bad[0][1]}"
                )
            ui.info(
                f"every task's pod is valid for the Kubernetes {KUBERNETES_VERSION} API (strict); "
                "no cluster was used, so nothing ran"
            )
            return 0
        if p.project_relative is not None:  # docker-run makes its mount folders first, owned by the user
            if not p.docker["data_dir"]:
                (project.root / "data").mkdir(exist_ok=True)
            if not p.docker["conf_local_dir"]:
                (project.root / "conf" / "local").mkdir(parents=True, exist_ok=True)
        args = ["dags", "test", p.dag_id]
        if date:
            args.append(date)
        ui.info(f"airflow dags test {p.dag_id}{' ' + date if date else ''}")
        proc = _airflow(airflow_venv, environ, *args, stream=True)
        states = task_states(home, p.dag_id)
        if states is None:
            ui.warn("could not read the run's state back from Airflow's database")
            return proc.returncode or 1
        run_state, by_task = states
        shown = ", ".join(
            f"{task} {state}" + (f" after {tries} tries" if (tries or 0) > 1 else "")
            for task, (state, tries) in sorted(by_task.items())
        )
        ui.info(f"DAG {p.dag_id}: {run_state} ({shown})")
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
