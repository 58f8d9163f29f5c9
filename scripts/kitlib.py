"""Helpers shared by the kit's tasks.py, its tests and its benchmarks: bake a project, build the
piperack wheel, give a project a virtualenv with that wheel installed.

Imported as ``scripts.kitlib`` from the kit root (the kit's tasks.py, `python -m pytest`, and
`python -m benchmarks.bench_NAME` all run there), never through sys.path edits.
"""

from __future__ import annotations

import functools
import hashlib
import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

KIT = Path(__file__).resolve().parents[1]
TEMPLATE = KIT / "{{cookiecutter.repo_name}}"
CACHE = Path(os.environ.get("PIPERACK_KIT_CACHE", KIT / ".cache"))


def kit_version() -> str:
    return tomllib.loads((KIT / "pyproject.toml").read_text(encoding="utf-8"))["project"]["version"]


def bake(output_dir: Path, find_links: Path | None = None, **context) -> Path:
    """Generate a project from the kit checkout (no prompts) and return its folder; its next steps
    install piperack from ``find_links`` when given (the demo's wheelhouse)."""
    from piperack.bake import bake as piperack_bake

    return piperack_bake(Path(output_dir), context, no_input=True, overwrite=True, template=KIT, find_links=find_links)


def uv() -> list[str]:
    found = shutil.which("uv", path=str(Path(sys.executable).parent)) or shutil.which("uv")
    return [found] if found else [sys.executable, "-m", "uv"]


def build_wheel(dest: Path) -> Path:
    """Build the piperack wheel of this kit checkout into ``dest`` (a find-links folder) and return it."""
    dest.mkdir(parents=True, exist_ok=True)
    subprocess.run([*uv(), "build", "--quiet", "--wheel", "--out-dir", str(dest), str(KIT)], check=True)
    wheels = sorted(dest.glob(f"piperack-{kit_version()}-*.whl"))
    if not wheels:
        raise RuntimeError(f"uv build wrote no piperack wheel into {dest}")
    return wheels[-1]


@functools.cache
def default_wheelhouse() -> Path:
    """build/wheelhouse with this checkout's wheel, built once per process (benchmarks, the demo)."""
    folder = KIT / "build" / "wheelhouse"
    build_wheel(folder)
    return folder


def install_piperack(
    venv: Path, wheelhouse: Path, version: str | None = None, with_deps: bool = False, kit: Path = KIT
) -> None:
    """(Re)install piperack into ``venv`` from ``wheelhouse`` only: never from a public index.

    ``with_deps`` first installs the dependencies listed in ``kit``'s pyproject.toml (from the index).
    """
    python = str(venv / "bin" / "python")
    if with_deps:
        deps = tomllib.loads((kit / "pyproject.toml").read_text(encoding="utf-8"))["project"]["dependencies"]
        subprocess.run([*uv(), "pip", "install", "--quiet", "--python", python, *deps], check=True)
    subprocess.run(
        [
            *uv(),
            "pip",
            "install",
            "--quiet",
            "--python",
            python,
            "--no-index",
            "--find-links",
            str(wheelhouse),
            "--no-deps",
            "--compile-bytecode",
            "--reinstall-package",
            "piperack",
            f"piperack=={version or kit_version()}",
        ],
        check=True,
    )


def small_venv(venv: Path, packages: list[str], wheelhouse: Path | None = None) -> Path:
    """A fresh virtualenv holding only ``packages`` (and piperack from ``wheelhouse``, without its
    dependencies, when given): a half-installed environment for the missing-tool tests."""
    python = str(venv / "bin" / "python")
    subprocess.run([*uv(), "venv", "--quiet", "--python", sys.executable, str(venv)], check=True)
    if packages:
        subprocess.run([*uv(), "pip", "install", "--quiet", "--python", python, *packages], check=True)
    if wheelhouse is not None:
        install_piperack(venv, wheelhouse)
    return venv


def project_venv(project: Path, wheelhouse: Path | None = None, python: str | None = None) -> Path:
    """A virtualenv with the project's requirements-dev.txt installed, piperack from ``wheelhouse``
    (default: ``default_wheelhouse()``).

    Cached under .cache/venvs/ by the hash of the requirement files, piperack's own dependencies and
    the Python version, so every test in a session and later sessions reuse it; piperack itself is
    reinstalled from the session's wheel each time (its code changes under one version). The
    project is not installed: its tasks put src/ on the path.
    """
    python = python or sys.executable
    wheelhouse = wheelhouse or default_wheelhouse()
    digest = hashlib.sha256()
    for path in (project / "requirements-dev.txt", project / "requirements.txt", KIT / "pyproject.toml"):
        digest.update(path.read_bytes())
    version = subprocess.run(
        [python, "-c", "import sys; print(sys.version)"], capture_output=True, text=True, check=True
    ).stdout
    digest.update(version.encode())
    venv = CACHE / "venvs" / digest.hexdigest()[:16]

    def install(target: Path) -> None:
        install_piperack(target, wheelhouse)  # first, so the index is never asked for piperack
        subprocess.run(
            [
                *uv(),
                "pip",
                "install",
                "--quiet",
                "--python",
                str(target / "bin" / "python"),
                "-r",
                "requirements-dev.txt",
            ],
            cwd=project,
            check=True,
        )

    cached_venv(venv, python, install)
    install_piperack(venv, wheelhouse)
    return venv


def cached_venv(venv: Path, python: str, install) -> Path:
    """A virtualenv at ``venv`` made once: ``install(venv)`` fills it (a list is `uv pip install` args).

    A `.complete` marker says it is whole, and `.compiled` that its bytecode is written
    (``compile_bytecode``); a file lock lets parallel callers wait for one builder.
    """
    import fcntl

    venv.parent.mkdir(parents=True, exist_ok=True)
    with open(venv.parent / f".{venv.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (venv / ".complete").exists():
            shutil.rmtree(venv, ignore_errors=True)
            subprocess.run([*uv(), "venv", "--quiet", "--seed", "--python", python, str(venv)], check=True)
            if callable(install):
                install(venv)
            else:
                subprocess.run(
                    [*uv(), "pip", "install", "--quiet", "--python", str(venv / "bin" / "python"), *install], check=True
                )
            (venv / ".complete").write_text("")
        if not (venv / ".compiled").exists():
            compile_bytecode(venv)
            (venv / ".compiled").write_text("")
    return venv


def compile_bytecode(venv: Path) -> None:
    """Write the .pyc files of everything installed in ``venv``, as `pip install` does by default
    (uv does not, and this machine sets PYTHONDONTWRITEBYTECODE): without them every process that
    imports pandas compiles it from source again (1.3 s instead of 0.45 s here). Files that do not
    compile (some packages ship Python 2 fixtures) are skipped, as pip skips them."""
    subprocess.run(
        [
            str(venv / "bin" / "python"),
            "-m",
            "compileall",
            "-q",
            "-j",
            "0",
            *map(str, venv.glob("lib/python*/site-packages")),
        ],
        stdout=subprocess.DEVNULL,
        check=False,
    )


def invoke_env(venv: Path, wheelhouse: Path | None = None) -> dict:
    """The environment of a user working in ``venv``; pip and uv also look in ``wheelhouse``."""
    wheelhouse = wheelhouse or default_wheelhouse()
    env = dict(os.environ)
    env["PATH"] = os.pathsep.join([str(venv / "bin"), env.get("PATH", "")])
    env["VIRTUAL_ENV"] = str(venv)
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    env.pop("PYTHONPATH", None)
    env["PIP_FIND_LINKS"] = " ".join(filter(None, [str(wheelhouse), os.environ.get("PIP_FIND_LINKS")]))
    env["UV_FIND_LINKS"] = str(wheelhouse)
    return env


def airflow_venv() -> Path:
    """The Airflow virtualenv of the airflow tests: $PIPERACK_TEST_AIRFLOW_VENV (.ci/airflow.sh sets it),
    else the one piperack makes once under ~/.cache/piperack-airflow/ (``piperack.airflow.ensure_venv``)."""
    from piperack.airflow import ensure_venv

    return ensure_venv(os.environ.get("PIPERACK_TEST_AIRFLOW_VENV") or None, python=sys.executable)
