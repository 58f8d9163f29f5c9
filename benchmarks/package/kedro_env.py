"""Kedro 0.18.14 in a throwaway, cached virtualenv, and minimal Kedro projects to run it in.

Kedro is never a dependency of the kit: the package benchmark and the Kedro round-trip test
install it here, once (cached under ~/.cache/piperack-bench/ or $PIPERACK_KEDRO_VENV), with uv
when available. ``kedro_project()`` writes the smallest project `kedro micropkg` accepts.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

from scripts import kitlib

KEDRO_VERSION = "0.18.14"
# Kedro 0.18.14 supports Python 3.7-3.11.
KEDRO_PYTHON = os.environ.get("PIPERACK_KEDRO_PYTHON", "3.11")


def venv_path() -> Path:
    override = os.environ.get("PIPERACK_KEDRO_VENV")
    if override:
        return Path(override)
    return Path.home() / ".cache" / "piperack-bench" / f"kedro-{KEDRO_VERSION}-py{KEDRO_PYTHON}"


def kedro_venv() -> Path:
    """The virtualenv holding Kedro 0.18.14 (created on first use; a lock guards parallel callers)."""
    python = shutil.which(f"python{KEDRO_PYTHON}") or sys.executable
    return kitlib.cached_venv(venv_path(), python, [f"kedro=={KEDRO_VERSION}", "setuptools<70"])


def kedro_env(venv: Path) -> dict:
    return kitlib.invoke_env(venv)


def run_kedro(venv: Path, root: Path, *args: str, timeout: float = 3600) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(venv / "bin" / "kedro"), *args],
        cwd=root,
        env=kedro_env(venv),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def kedro_project(root: Path, package: str = "kproj", manifest: dict[str, dict] | None = None) -> Path:
    """A minimal Kedro 0.18 project at ``root`` (src layout, conf/base + conf/local, empty registry)."""
    (root / "conf" / "base" / "parameters").mkdir(parents=True, exist_ok=True)
    (root / "conf" / "local").mkdir(parents=True, exist_ok=True)
    pkg = root / "src" / package
    (pkg / "pipelines").mkdir(parents=True, exist_ok=True)
    (root / "src" / "tests" / "pipelines").mkdir(parents=True, exist_ok=True)
    for init in (
        pkg / "__init__.py",
        pkg / "pipelines" / "__init__.py",
        root / "src" / "tests" / "__init__.py",
        root / "src" / "tests" / "pipelines" / "__init__.py",
    ):
        if not init.exists():
            init.write_text("")
    (pkg / "__init__.py").write_text('__version__ = "0.1"\n')
    (pkg / "settings.py").write_text("")
    (pkg / "pipeline_registry.py").write_text(
        textwrap.dedent(
            """\
            def register_pipelines():
                return {}
            """
        )
    )
    (root / "src" / "requirements.txt").write_text("kedro==0.18.14\n")
    lines = [
        "[tool.kedro]",
        f'package_name = "{package}"',
        f'project_name = "{package}"',
        f'kedro_init_version = "{KEDRO_VERSION}"',
        "",
    ]
    if manifest:
        lines.append("[tool.kedro.micropkg.package]")
        for key, options in manifest.items():
            inner = ", ".join(f'{k} = "{v}"' for k, v in options.items())
            lines.append(f'"{key}" = {{{inner}}}')
    (root / "pyproject.toml").write_text("\n".join(lines) + "\n")
    return root
