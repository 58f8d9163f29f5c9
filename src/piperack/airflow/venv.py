"""A cached virtualenv holding a pinned Airflow, made once with uv, and a private environment to run
that Airflow in.

The functions take the pins (requirements and a constraints file) as arguments; the package
(``piperack.airflow``) holds the pins of airflow-test and binds them in its ``ensure_venv`` and
``venv_key``, which the kit's scripts/kitlib.py and .ci/airflow.sh use too.
"""

from __future__ import annotations

import contextlib
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
    from ..tools import find_uv

    cmd = find_uv()
    if not cmd:
        raise PiperackError("uv is not installed (it comes with piperack): `pip install uv`, then retry")
    return cmd


def cache_root() -> Path:
    """Where the Airflow virtualenvs are kept: ~/.cache/piperack-airflow (or $XDG_CACHE_HOME's) when this
    user can write there, else this user's private folder in the temporary directory (tools.user_cache_dir)."""
    from ..tools import user_cache_dir

    return user_cache_dir("piperack-airflow")


@contextlib.contextmanager
def cache_lock(path: Path):
    """An exclusive flock on ``path`` (made if missing). A lock file another user made in a shared cache
    (mode 0644) is opened read-only, which flock takes just as well: one user never locks out another."""
    import fcntl

    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_NOFOLLOW", 0), 0o666)
    except PermissionError:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_NOFOLLOW", 0))
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def virtualenv_key(python: str, requirements: tuple[str, ...], constraints: Path) -> str:
    """The cached virtualenv's folder name: a digest of the requirements, the constraints file and ``python``."""
    version = subprocess.run(
        [python, "-c", "import sys, platform; print(sys.version, platform.machine())"], capture_output=True, text=True
    )
    if version.returncode != 0:
        raise PiperackError(f"cannot run {python} for the Airflow virtualenv: {first_line(version.stderr) or 'failed'}")
    digest = hashlib.sha256()
    digest.update("\n".join(requirements).encode())
    digest.update(constraints.read_bytes())
    digest.update(version.stdout.encode())
    return digest.hexdigest()[:16]


def ensure_virtualenv(
    requirements: tuple[str, ...], constraints: Path, venv: str | Path | None = None, python: str | None = None
) -> Path:
    """The Airflow virtualenv: ``venv`` (or $PIPERACK_AIRFLOW_VENV) as given, else one with
    ``requirements`` made once under ~/.cache/piperack-airflow/<key>/ (a lock lets parallel callers
    wait; ``.complete`` marks it whole)."""
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
    path = cache_root() / virtualenv_key(python, requirements, constraints)
    if (path / ".complete").is_file():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    with cache_lock(path.parent / f".{path.name}.lock"):
        if not (path / ".complete").is_file():
            _make_virtualenv(path, python, requirements, constraints)
    return path


def _make_virtualenv(path: Path, python: str, requirements: tuple[str, ...], constraints: Path) -> None:
    """Install the pinned Airflow into a new virtualenv at ``path`` (removed again if that fails)."""
    ui.info(f"making the Airflow virtualenv {path} (once; {', '.join(requirements[:3])})")
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
            str(constraints),
            *requirements,
        ],
    ]
    from ..tools import tool_env

    env = tool_env(os.environ)
    for step in steps:
        proc = subprocess.run(step, capture_output=True, text=True, env=env)
        if proc.returncode != 0:
            shutil.rmtree(path, ignore_errors=True)
            lines = [line for line in proc.stderr.splitlines() if line.strip()]
            reason = next((line for line in lines if "error" in line.lower()), lines[-1] if lines else "failed")
            raise PiperackError(f"cannot make the Airflow virtualenv ({reason.strip()[:200]})")
    (path / ".complete").write_text(json.dumps({"requirements": requirements}) + "\n")


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
