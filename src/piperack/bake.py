"""Baking a project from the cookiecutter template this piperack carries (``piperack new``).

The template is the kit's: cookiecutter.json, hooks/, local_extensions.py and the
``{{cookiecutter.repo_name}}`` folder. A wheel carries it as package data (piperack/template/); an
editable install of a kit checkout uses the checkout itself.
"""

from __future__ import annotations

from pathlib import Path

from .errors import PiperackError, first_line
from .template import template_dir, template_questions


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

    The project is rendered into a staging folder beside it first, then moved into place in one
    rename, so a failure or Ctrl-C leaves nothing half-made. With ``overwrite`` an existing project
    folder gets the template's files through the write session (lock, journal, no write through a
    linked folder): all of them or none; the files the template does not make stay.

    Validation is the template's own (local_extensions.py): a bad answer prints one ``error:`` line
    and exits 1 before anything is written. Other cookiecutter failures become a PiperackError.
    """
    import os
    import shutil
    import tempfile

    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".piperack-new-", dir=output_dir)).resolve()
    os.environ["PIPERACK_NEW_STAGING"] = str(staging)  # the post-generation hook leaves its message there
    try:
        made = _render(template or template_dir(), staging / "render", answers, no_input)
        target = output_dir / made.name
        if not (target.exists() or target.is_symlink()):
            made.rename(target)
        elif not overwrite:
            raise PiperackError(f'"{target}" already exists: pass -f to write the template\'s files into it')
        elif target.is_symlink() or not target.is_dir():
            raise PiperackError(f"{target}: not a folder (a file or a link); nothing written")
        else:
            _write_into(target, made)
        message = staging / "next-steps.txt"
        if message.is_file():
            print(message.read_text(encoding="utf-8"), end="", flush=True)
    finally:
        os.environ.pop("PIPERACK_NEW_STAGING", None)
        shutil.rmtree(staging, ignore_errors=True)
    return target


def _render(template: Path, staging: Path, answers: dict | None, no_input: bool) -> Path:
    from cookiecutter.exceptions import CookiecutterException
    from cookiecutter.main import cookiecutter

    try:
        made = cookiecutter(
            str(template), no_input=no_input, output_dir=str(staging), extra_context=dict(answers or {})
        )
    except CookiecutterException as exc:
        raise PiperackError(first_line(exc)) from None
    except ValueError as exc:  # an answer that is not one of a question's choices
        raise PiperackError(first_line(exc)) from None
    except EOFError:
        raise PiperackError(
            "no answer on standard input (it is closed): pass --no-input for the defaults, "
            "and key=value for the answers you want"
        ) from None
    return Path(made)


def _write_into(target: Path, made: Path) -> None:
    """``piperack new -f``: the rendered files over an existing project, as one transaction."""
    from .fsutil import transaction, write_session

    files = sorted(p for p in made.rglob("*") if p.is_file() and not p.is_symlink())
    with write_session(target, "new"), transaction(target) as tx:
        for path in files:
            tx.change(path.relative_to(made), path.read_bytes())
