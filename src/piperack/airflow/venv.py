"""The Airflow of airflow-test: its own virtualenv, made once with uv and cached, and a private
environment to run it in.

The pins (``AIRFLOW_REQUIREMENTS``, ``CONSTRAINTS``: piperack/airflow_constraints.txt) are set in
the package (``piperack.airflow``) and read from there when a function here is called, so they have
one home. ``ensure_venv`` is also what the kit's scripts/kitlib.py and .ci/airflow.sh use.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from .. import ui
from ..errors import PiperackError, first_line


def _uv() -> list[str]:
    from ..buildreqs import find_uv

    cmd = find_uv()
    if not cmd:
        raise PiperackError("uv is not installed (it comes with piperack): `pip install uv`, then retry")
    return cmd


def cache_root() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "piperack-airflow"


def venv_key(python: str) -> str:
    """The cached virtualenv's folder name: a digest of the pins, the constraints file and ``python``."""
    from . import AIRFLOW_REQUIREMENTS, CONSTRAINTS

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
        if not (path / ".complete").is_file():
            _make_venv(path, python)
    return path


def _make_venv(path: Path, python: str) -> None:
    """Install the pinned Airflow into a new virtualenv at ``path`` (removed again if that fails)."""
    from . import AIRFLOW_REQUIREMENTS, CONSTRAINTS

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
