"""The cookiecutter template this piperack carries: where it is and what it asks.

A wheel carries it as package data (piperack/template/); an editable install of a kit checkout
uses the checkout itself. ``piperack new`` bakes from it; ``update-project`` renders it.
"""

from __future__ import annotations

from pathlib import Path

from .errors import PiperackError

TEMPLATE_FILE = "cookiecutter.json"


def template_dir() -> Path:
    """The folder holding this piperack's cookiecutter template."""
    here = Path(__file__).resolve().parent
    packaged = here / "template"
    if (packaged / TEMPLATE_FILE).is_file():
        return packaged
    checkout = here.parents[1]  # src/piperack -> the kit root (editable install)
    if (checkout / TEMPLATE_FILE).is_file() and (checkout / "pyproject.toml").is_file():
        return checkout
    raise PiperackError(f"this piperack has no template ({packaged} is missing): reinstall piperack")


def template_questions(template: Path | None = None) -> dict:
    """The public questions of cookiecutter.json and their defaults (lists: the first choice)."""
    import json

    data = json.loads(((template or template_dir()) / TEMPLATE_FILE).read_text(encoding="utf-8"))
    return {key: value for key, value in data.items() if not key.startswith("_")}
