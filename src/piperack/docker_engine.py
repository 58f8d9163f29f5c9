"""The local Docker engine and the project's image, as docker-build/-run and airflow-test both meet them.

A core (like fsutil or project): the docker verbs and the airflow verbs import it, it imports no
verb. ``docker_exe()`` the docker command, ``check_engine()`` whether an engine answers,
``image_id()`` an image's id on it, ``default_tag()`` the tag docker-build gives the project's
image, ``CONTAINER_ROOT`` where the project lives in that image.
"""

from __future__ import annotations

import re
import shutil
import subprocess

from .errors import PiperackError

CONTAINER_ROOT = "/app"

ENGINE_HINT = (
    "start one (Docker Desktop; `sudo systemctl start docker`; or "
    "`sudo dockerd --bridge=none --iptables=false &`) and retry"
)


def go_format(field: str) -> str:
    """A docker --format template for one field (spelt so that no Jinja marker is in this file)."""
    return "{" * 2 + field + "}" * 2


def docker_exe() -> str:
    exe = shutil.which("docker")
    if not exe:
        raise PiperackError(f"the docker command is not installed (not on PATH); install Docker, then {ENGINE_HINT}")
    return exe


def check_engine() -> str:
    """The docker executable, once an engine answers; else one clear line saying how to start one."""
    exe = docker_exe()
    try:
        proc = subprocess.run(
            [exe, "version", "--format", go_format(".Server.Version")],
            capture_output=True,
            text=True,
            timeout=30,
        )
    except subprocess.TimeoutExpired:
        raise PiperackError(f"the Docker engine did not answer within 30 s; {ENGINE_HINT}") from None
    if proc.returncode != 0 or not proc.stdout.strip():
        raise PiperackError(f"no Docker engine answers; {ENGINE_HINT}")
    return exe


def image_id(exe: str, image: str) -> str:
    """``image``'s id on the engine ``exe`` talks to, or "" when it does not have it (or does not answer)."""
    try:
        proc = subprocess.run(
            [exe, "image", "inspect", "--format", go_format(".Id"), image], capture_output=True, text=True, timeout=30
        )
    except subprocess.TimeoutExpired:
        raise PiperackError(f"the Docker engine did not answer within 30 s; {ENGINE_HINT}") from None
    return proc.stdout.strip() if proc.returncode == 0 else ""


def default_tag(project) -> str:
    """``<project name>:latest``, lower-cased into a valid image reference."""
    name = str(project.pyproject_data.get("project", {}).get("name") or project.root.name)
    name = re.sub(r"[^a-z0-9._-]+", "-", name.lower()).strip("._-") or "piperack-project"
    return f"{name}:latest"
