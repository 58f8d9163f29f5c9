"""The minimal project the in-process pull tests write into (no bake, no virtualenv)."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

PYPROJECT = textwrap.dedent(
    """\
    [project]
    name = "demo"
    version = "0.1.0"

    [tool.piperack]
    python_package = "demo"  # keep this comment

    [tool.piperack.pull]
    """
)


@pytest.fixture
def mini(tmp_path) -> Path:
    root = tmp_path / "proj"
    for rel, text in {
        "pyproject.toml": PYPROJECT,
        "requirements.txt": "pandas==2.2.0\n    # via -r requirements.in\n",
        "requirements.in": "pandas>=2.1\n",
        "src/demo/__init__.py": "",
        "src/demo/pipelines/__init__.py": "",
        "src/tests/__init__.py": "",
        "src/tests/pipelines/__init__.py": "",
        "conf/base/parameters/other.yml": "a: 1\n",
    }.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root
