"""Where the DAG's tasks run: ``DockerTarget`` (the docker provider's DockerOperator, on the Airflow
worker's Docker engine) or ``KubernetesTarget`` (the cncf-kubernetes provider's
KubernetesPodOperator, one pod per task).

A target class holds everything that is its own: its section of airflow.yml (``keys``), the
settings read and checked from it (``from_config``: an instance is those settings), the lines it
adds to the DAG file (``imports``, ``render_settings``: its constants and ``_pipeline_operator``
factory, ``task_arguments``) and its part of airflow-test (``check_before_test`` before Airflow
starts, ``test`` once the file imports). ``target_named`` is the one place ``--target`` is read.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from ..docker_engine import CONTAINER_ROOT, check_engine, image_id
from ..errors import PiperackError
from .config import INT32_MAX, QUANTITY, Config, Spec, deep_merge, quantity_value, resources_spec
from .dagfile import Lines, py
from .dagtest import AirflowHome, dags_test, validate_pods

# Matched with fullmatch: ``$`` would let a trailing newline through into the DAG file.
NETWORK = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,254}")
USER_SPEC = re.compile(r"[0-9]{1,10}(:[0-9]{1,10})?")
DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")
DNS_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?")
PULL_POLICIES = ("Always", "IfNotPresent", "Never")


def pipeline_resources(config: Config, pipeline: str | None) -> dict:
    """A pipeline's pod resources: ``kubernetes.resources`` with ``pipelines.<p>.resources`` over
    them (``pipeline`` None: the defaults alone), amounts as strings, empty kinds left out."""
    base = config.get("kubernetes", "resources", default={})
    own = config.get("pipelines", pipeline, "resources", default={}) if pipeline else {}
    merged = deep_merge(base, own)
    return {
        kind: {name: str(amount) for name, amount in sorted(amounts.items()) if amount is not None}
        for kind, amounts in sorted(merged.items())
        if isinstance(amounts, dict) and any(a is not None for a in amounts.values())
    }


def memory_for_docker(quantity: str) -> str | int:
    """A Kubernetes memory quantity as docker's mem_limit (bytes, or 512m / 2g when exact)."""
    match = QUANTITY.fullmatch(quantity)
    whole, fraction, unit = match.group(1), match.group(2), match.group(3) or ""
    if unit in {"Ki", "Mi", "Gi"} and not fraction:
        return f"{whole}{unit[0].lower()}"
    return int(quantity_value(quantity))


def kubernetes_name(text: str) -> str:
    """``text`` as a Kubernetes object name (a pod's): lower case, letters, digits and '-', at most 50."""
    name = re.sub(r"[^a-z0-9-]+", "-", text.lower()).strip("-")
    return name[:50].rstrip("-") or "pipeline"


def render_conf_params(out: Lines, setter: str) -> None:
    """The DAG file's ``_params_from_conf``: a run's conf ``{"params": {...}}`` handed to the task as
    JSON in $PIPERACK_PARAMS, once Airflow has rendered the templates, so it is data: no shell and no
    Jinja ever reads it. The project's runner checks it as it checks --params."""
    out.add(
        "params",
        "",
        "",
        'PARAMS_ENV = "PIPERACK_PARAMS"',
        "",
        "",
        "def _params_from_conf(context) -> None:",
        '    """A run\'s conf {"params": {"ingest.table": "x"}} reaches the pipelines as `--params` does: as JSON',
        '    in $PIPERACK_PARAMS, set after Airflow rendered the templates (data, never a template or a shell)."""',
        '    params = (context["dag_run"].conf or {}).get("params")',
        "    if params is not None:",
        '        task = context["task"]',
        f"        {setter}",
    )


class Target:
    """What a target class provides (DockerTarget, KubernetesTarget). In the methods, ``p`` is the
    DagPlan being rendered or tested (dag.py) and ``task`` one of its Tasks."""

    name: ClassVar[str]  # the --target value
    operator: ClassVar[str]  # the Airflow operator of each task
    keys: ClassVar[dict[str, Spec]]  # its section of airflow.yml, under ``name``
    imports: ClassVar[tuple[str, ...]]  # the DAG file's import lines for it, after ``import datetime``

    @classmethod
    def from_config(cls, config: Config, project, network: str | None) -> Target:
        raise NotImplementedError

    def render_settings(self, out: Lines, p) -> None:
        """Its constants and the ``_pipeline_operator`` factory every task line calls."""
        raise NotImplementedError

    def task_arguments(self, p, task) -> list[str]:
        """The arguments of ``task``'s ``_pipeline_operator`` call after the pipeline's name."""
        raise NotImplementedError

    def check_before_test(self, p) -> None:
        """airflow-test: what must hold before an Airflow is made (nothing by default)."""

    def test(self, airflow: AirflowHome, project, p, date: str | None, conf: str | None = None) -> int:
        """airflow-test once the file imports in ``airflow``: 0 when it passed."""
        raise NotImplementedError


@dataclass(frozen=True)
class DockerTarget(Target):
    """Each task ``invoke docker-run``'s container: data/ and conf/local mounted, the user, the network."""

    data_dir: str | None  # absolute host folders, or None: the project's own (found from the file)
    conf_local_dir: str | None
    network: str | None
    user: str | None
    docker_url: str | None
    project_root: str

    name: ClassVar[str] = "docker"
    operator: ClassVar[str] = "DockerOperator"
    keys: ClassVar[dict[str, Spec]] = {
        "data_dir": Spec("str"),
        "conf_local_dir": Spec("str"),
        "network": Spec("str"),
        "user": Spec("str"),
        "docker_url": Spec("str"),
    }
    imports: ClassVar[tuple[str, ...]] = (
        "import os",
        "",
        "from airflow.providers.docker.operators.docker import DockerOperator",
        "from airflow.sdk import DAG",
    )

    @classmethod
    def from_config(cls, config: Config, project, network: str | None) -> DockerTarget:
        label = config.source
        folders = {}
        for key in ("data_dir", "conf_local_dir"):
            value = config.get("docker", key)
            if value is not None and not os.path.isabs(value):
                raise PiperackError(
                    f"{label('docker', key)}: docker.{key}: {value!r} must be an absolute path on the "
                    "Docker host (leave it out for the project's own folder)"
                )
            folders[key] = os.path.normpath(value) if value else None
        source = "--network" if network else label("docker", "network")
        network = network or config.get("docker", "network")
        if network is not None and not NETWORK.fullmatch(network):
            raise PiperackError(
                f"{source}: network: {network!r} is not a Docker network name (e.g. none, host, bridge)"
            )
        user = config.get("docker", "user")
        if user is not None and not USER_SPEC.fullmatch(user.strip()):
            raise PiperackError(
                f"{label('docker', 'user')}: docker.user: {user!r} must be UID or UID:GID, e.g. 1000:1000"
            )
        return cls(
            **folders,
            network=network,
            user=user.strip() if user else None,
            docker_url=config.get("docker", "docker_url"),
            project_root=str(project.root),
        )

    def render_settings(self, out: Lines, p) -> None:
        if not (self.data_dir and self.conf_local_dir):
            out.add(
                "data_dir",
                "# The host folders mounted into each container, as `invoke docker-run` mounts them. "
                "Unless airflow.yml",
                "# sets docker.data_dir and docker.conf_local_dir, those of the project holding this file.",
            )
            if p.project_relative is not None:
                relative = Path(p.project_relative).parts if p.project_relative != "." else ()
                parts = ", ".join(py(part) for part in relative)
                joined = f"os.path.join(os.path.dirname(os.path.abspath(__file__)){', ' + parts if parts else ''})"
                out.add("data_dir", f"PROJECT_DIR = os.path.normpath({joined})")
            else:  # written outside the project: its absolute path
                out.add("data_dir", f"PROJECT_DIR = {py(self.project_root)}")
        data_dir = py(self.data_dir) if self.data_dir else 'os.path.join(PROJECT_DIR, "data")'
        conf_local_dir = (
            py(self.conf_local_dir) if self.conf_local_dir else 'os.path.join(PROJECT_DIR, "conf", "local")'
        )
        out.add("data_dir", f"DATA_DIR = {data_dir}")
        out.add("conf_local_dir", f"CONF_LOCAL_DIR = {conf_local_dir}")
        if self.user:
            out.add("user", f"USER = {py(self.user)}  # docker.user in airflow.yml")
        else:
            out.add(
                "user",
                "# Containers run as the user running the task (set docker.user in airflow.yml to pick one),",
                "# so what they write under DATA_DIR belongs to that user, as with `invoke docker-run`.",
                'USER = f"{os.getuid()}:{os.getgid()}"',
            )
        out.add("network", f"NETWORK = {py(self.network)}  # as `invoke docker-run --network`; None: Docker's default")
        render_conf_params(out, "task.environment = {**(task.environment or {}), PARAMS_ENV: json.dumps(params)}")
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
            f'            {{"type": "bind", "source": DATA_DIR, "target": "{CONTAINER_ROOT}/data", '
            '"read_only": False},',
            f'            {{"type": "bind", "source": CONF_LOCAL_DIR, "target": "{CONTAINER_ROOT}/conf/local", '
            '"read_only": True},',
            "        ],",
            "        network_mode=NETWORK,",
            "        pre_execute=_params_from_conf,",
        )
        if self.docker_url:
            out.add("docker_url", f"        docker_url={py(self.docker_url)},")
        out.add(
            "operator",
            '        auto_remove="force",  # like docker run --rm',
            "        mount_tmp_dir=False,",
            "        do_xcom_push=False,",
            "        **settings,",
            "    )",
        )

    def task_arguments(self, p, task) -> list[str]:
        memory = task.resources.get("limits", {}).get("memory")
        return [f"mem_limit={py(memory_for_docker(memory))}"] if memory else []

    def check_before_test(self, p) -> None:
        """The tasks run on the local engine (unless docker.docker_url names another): the image must be there."""
        if not self.docker_url:
            exe = check_engine()
            if not image_id(exe, p.image):
                raise PiperackError(
                    f"no image {p.image!r} in the local engine; build it first: invoke docker-build --tag {p.image}"
                )

    def test(self, airflow: AirflowHome, project, p, date: str | None, conf: str | None = None) -> int:
        if p.project_relative is not None:  # docker-run makes its mount folders first, owned by the user
            if not self.data_dir:
                (project.root / "data").mkdir(exist_ok=True)
            if not self.conf_local_dir:
                (project.root / "conf" / "local").mkdir(parents=True, exist_ok=True)
        return dags_test(airflow, p.dag_id, date, conf)


@dataclass(frozen=True)
class KubernetesTarget(Target):
    """Each task one pod in ``namespace``: its service account, secrets, data volume and resources."""

    namespace: str
    image_pull_policy: str
    service_account: str | None
    data_volume_claim: str | None
    env_from_secret: list[str]
    image_pull_secrets: list[str]
    resources: dict  # every pod's default requests/limits (pipeline_resources of no pipeline)
    run_as_user: int | None
    run_as_group: int | None
    fs_group: int | None
    conn_id: str | None
    in_cluster: bool | None

    name: ClassVar[str] = "kubernetes"
    operator: ClassVar[str] = "KubernetesPodOperator"
    keys: ClassVar[dict[str, Spec]] = {
        "namespace": Spec("str"),
        "service_account": Spec("str"),
        "image_pull_policy": Spec("str"),
        "image_pull_secrets": Spec("list_str"),
        "env_from_secret": Spec("secrets"),
        "data_volume_claim": Spec("str"),
        "resources": resources_spec(),
        "run_as_user": Spec("int", minimum=0, maximum=INT32_MAX),
        "run_as_group": Spec("int", minimum=0, maximum=INT32_MAX),
        "fs_group": Spec("int", minimum=0, maximum=INT32_MAX),
        "conn_id": Spec("str"),
        "in_cluster": Spec("bool"),
    }
    imports: ClassVar[tuple[str, ...]] = (
        "",
        "from airflow.providers.cncf.kubernetes.operators.pod import KubernetesPodOperator",
        "from airflow.sdk import DAG",
        "from kubernetes.client import models as k8s",
    )

    @classmethod
    def from_config(cls, config: Config, project, network: str | None) -> KubernetesTarget:
        label = config.source
        get = config.get
        namespace = get("kubernetes", "namespace", default="default")
        if not DNS_LABEL.fullmatch(namespace):
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
                if value is not None and not DNS_SUBDOMAIN.fullmatch(value):
                    raise PiperackError(
                        f"{label('kubernetes', key)}: kubernetes.{key}: {value!r} is not a Kubernetes "
                        "name (lower-case letters, digits, '-' and '.')"
                    )
        return cls(
            namespace=namespace,
            image_pull_policy=policy,
            service_account=get("kubernetes", "service_account"),
            data_volume_claim=get("kubernetes", "data_volume_claim"),
            env_from_secret=list(dict.fromkeys(secrets)),
            image_pull_secrets=list(dict.fromkeys(names["image_pull_secrets"])),
            resources=pipeline_resources(config, None),
            run_as_user=get("kubernetes", "run_as_user"),
            run_as_group=get("kubernetes", "run_as_group"),
            fs_group=get("kubernetes", "fs_group"),
            conn_id=get("kubernetes", "conn_id"),
            in_cluster=get("kubernetes", "in_cluster"),
        )

    def render_settings(self, out: Lines, p) -> None:
        out.add("namespace", f"NAMESPACE = {py(self.namespace)}")
        render_conf_params(
            out, "task.env_vars = [*(task.env_vars or []), k8s.V1EnvVar(name=PARAMS_ENV, value=json.dumps(params))]"
        )
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
            f"        image_pull_policy={py(self.image_pull_policy)},",
            f'        cmds=["python", "-m", {py(p.package)}, "run"],',
            '        arguments=["--pipeline", pipeline, "--env", ENV],',
        )
        self._render_pod_options(out)
        out.add(
            "operator",
            "        container_resources=k8s.V1ResourceRequirements(**resources) if resources else None,",
            "        get_logs=True,",
            "        pre_execute=_params_from_conf,",
            '        on_finish_action="delete_pod",',
            "        **settings,",
            "    )",
        )

    def _render_pod_options(self, out: Lines) -> None:
        """The operator's arguments for the optional settings: each only when set."""
        if self.image_pull_secrets:
            refs = ", ".join(f"k8s.V1LocalObjectReference(name={py(n)})" for n in self.image_pull_secrets)
            out.add("image_pull_secrets", f"        image_pull_secrets=[{refs}],")
        if self.service_account:
            out.add("service_account", f"        service_account_name={py(self.service_account)},")
        if self.env_from_secret:
            out.add("env_from_secret", "        env_from=[")
            for name in self.env_from_secret:
                out.add(
                    "env_from_secret",
                    f"            k8s.V1EnvFromSource(secret_ref=k8s.V1SecretEnvSource(name={py(name)})),",
                )
            out.add("env_from_secret", "        ],")
        if self.data_volume_claim:
            out.add(
                "data_volume_claim",
                "        volumes=[",
                "            k8s.V1Volume(",
                '                name="data",',
                "                persistent_volume_claim=k8s.V1PersistentVolumeClaimVolumeSource("
                f"claim_name={py(self.data_volume_claim)}),",
                "            ),",
                "        ],",
                f'        volume_mounts=[k8s.V1VolumeMount(name="data", mount_path="{CONTAINER_ROOT}/data")],',
            )
        context = {
            key: value
            for key, value in (
                ("run_as_user", self.run_as_user),
                ("run_as_group", self.run_as_group),
                ("fs_group", self.fs_group),
            )
            if value is not None
        }
        if context:
            args = ", ".join(f"{key}={value}" for key, value in context.items())
            out.add("security_context", f"        security_context=k8s.V1PodSecurityContext({args}),")
        if self.conn_id:
            out.add("conn_id", f"        kubernetes_conn_id={py(self.conn_id)},")
        if self.in_cluster is not None:
            out.add("in_cluster", f"        in_cluster={self.in_cluster!r},")

    def task_arguments(self, p, task) -> list[str]:
        resources = deep_merge(self.resources, task.resources) if (self.resources or task.resources) else {}
        return [py(kubernetes_name(f"{p.dag_id}-{task.pipeline}")), py(resources) if resources else "None"]

    def test(self, airflow: AirflowHome, project, p, date: str | None, conf: str | None = None) -> int:
        """No cluster: each task's pod is validated against the Kubernetes API schema instead."""
        return validate_pods(airflow, p.path)


TARGETS: dict[str, type[Target]] = {target.name: target for target in (DockerTarget, KubernetesTarget)}


def target_named(name: str) -> type[Target]:
    """The target class of ``--target name``."""
    if name not in TARGETS:
        raise PiperackError(f"unknown --target {name!r}: use {' or '.join(TARGETS)}")
    return TARGETS[name]
