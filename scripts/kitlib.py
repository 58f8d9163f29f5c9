"""Helpers shared by the kit's tasks.py and its tests: bake a project, give it a virtualenv."""
from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

KIT = Path(__file__).resolve().parents[1]
TEMPLATE = KIT / "{{cookiecutter.repo_name}}"
CACHE = Path(os.environ.get("PIPERACK_KIT_CACHE", KIT / ".cache"))


def bake(output_dir: Path, **context) -> Path:
    """Generate a project from the kit (no prompts) and return its folder."""
    from cookiecutter.main import cookiecutter

    output_dir.mkdir(parents=True, exist_ok=True)
    extra = {k: v for k, v in context.items()}
    return Path(cookiecutter(str(KIT), no_input=True, output_dir=str(output_dir), extra_context=extra, overwrite_if_exists=True))


def uv() -> list[str]:
    found = shutil.which("uv", path=str(Path(sys.executable).parent)) or shutil.which("uv")
    return [found] if found else [sys.executable, "-m", "uv"]


def project_venv(project: Path, python: str | None = None) -> Path:
    """A virtualenv with the project's requirements-dev.txt (and so requirements.txt) installed.

    Cached under .cache/venvs/ by the hash of those files and the Python version, so a second
    session (and every test in a session) reuses it. The project itself is not installed: its tasks
    put src/ on the path.
    """
    python = python or sys.executable
    digest = hashlib.sha256()
    for name in ("requirements-dev.txt", "requirements.txt"):
        digest.update((project / name).read_bytes())
    version = subprocess.run([python, "-c", "import sys; print(sys.version)"], capture_output=True, text=True, check=True).stdout
    digest.update(version.encode())
    return cached_venv(CACHE / "venvs" / digest.hexdigest()[:16], python, ["-r", "requirements-dev.txt"], cwd=project)


def cached_venv(venv: Path, python: str, install_args: list[str], cwd: Path | None = None) -> Path:
    """A virtualenv at ``venv`` with ``uv pip install INSTALL_ARGS`` done, built once.

    A `.complete` marker says it is whole; a file lock lets parallel callers wait for one builder.
    """
    import fcntl

    venv.parent.mkdir(parents=True, exist_ok=True)
    with open(venv.parent / f".{venv.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (venv / ".complete").exists():
            shutil.rmtree(venv, ignore_errors=True)
            subprocess.run([*uv(), "venv", "--quiet", "--seed", "--python", python, str(venv)], check=True)
            subprocess.run(
                [*uv(), "pip", "install", "--quiet", "--python", str(venv / "bin" / "python"), *install_args],
                cwd=cwd, check=True,
            )
            (venv / ".complete").write_text("")
    return venv


def invoke_env(venv: Path) -> dict:
    env = dict(os.environ)
    env["PATH"] = os.pathsep.join([str(venv / "bin"), env.get("PATH", "")])
    env["VIRTUAL_ENV"] = str(venv)
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    env.pop("PYTHONPATH", None)
    return env
