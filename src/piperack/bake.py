"""Baking a project from the cookiecutter template this piperack carries (``piperack new``).

The template is the kit's: cookiecutter.json, hooks/, local_extensions.py and the
``{{cookiecutter.repo_name}}`` folder. A wheel carries it as package data (piperack/template/); an
editable install of a kit checkout uses the checkout itself.
"""

from __future__ import annotations

from pathlib import Path

from .errors import PiperackError, first_line

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


def parse_answers(items: list[str], template: Path | None = None) -> dict[str, str]:
    """``key=value`` words -> answers; unknown keys and words without ``=`` are refused by name."""
    questions = template_questions(template)
    answers: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise PiperackError(f"expected key=value, got {item!r} (keys: {', '.join(questions)})")
        if key not in questions:
            raise PiperackError(f"unknown answer {key!r}: the template asks for {', '.join(questions)}")
        answers[key] = value
    return answers


def bake(
    output_dir: Path,
    answers: dict | None = None,
    *,
    no_input: bool = True,
    overwrite: bool = False,
    template: Path | None = None,
) -> Path:
    """Generate a project into ``output_dir`` and return its folder.

    Validation is the template's own (local_extensions.py): a bad answer prints one ``error:`` line
    and exits 1 before anything is written. Other cookiecutter failures become a PiperackError.
    """
    from cookiecutter.exceptions import CookiecutterException
    from cookiecutter.main import cookiecutter

    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    try:
        made = cookiecutter(
            str(template or template_dir()),
            no_input=no_input,
            output_dir=str(output_dir),
            extra_context=dict(answers or {}),
            overwrite_if_exists=overwrite,
        )
    except CookiecutterException as exc:
        raise PiperackError(first_line(exc)) from None
    except ValueError as exc:  # an answer that is not one of a question's choices
        raise PiperackError(first_line(exc)) from None
    return Path(made)
