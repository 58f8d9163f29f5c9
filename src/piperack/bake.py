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
    find_links: Path | None = None,
) -> Path:
    """Generate a project into ``output_dir`` and return its folder.

    ``find_links``: the folder the project's piperack wheel comes from (the kit's demo); by default
    where this piperack was installed from, when that was not a package index (``install_line``).

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
            print(with_install_line(message.read_text(encoding="utf-8"), find_links), end="", flush=True)
    finally:
        os.environ.pop("PIPERACK_NEW_STAGING", None)
        shutil.rmtree(staging, ignore_errors=True)
    return target


PIP_LINE = "pip install -r requirements-dev.txt -e ."


def install_source() -> str | None:
    """Where the installed piperack came from when it was not a package index (PEP 610's
    direct_url.json): a wheel or sdist file, a folder (a kit checkout) or a URL; None for an index."""
    import json
    from importlib.metadata import PackageNotFoundError, distribution
    from urllib.parse import unquote, urlparse

    try:
        text = distribution("piperack").read_text("direct_url.json")
        record = json.loads(text) if text else None
    except (PackageNotFoundError, ValueError):
        return None
    url = record.get("url") if isinstance(record, dict) else None
    if not isinstance(url, str) or not url:
        return None
    if url.startswith("file://"):
        return unquote(urlparse(url).path)
    vcs = record.get("vcs_info")
    return f"{vcs.get('vcs', 'git')}+{url}" if isinstance(vcs, dict) else url


def install_line(find_links: Path | None = None) -> str | None:
    """The pip line that installs a new project's requirements-dev.txt (which pins piperack==<this
    version>) when this piperack is not on a package index; None when it came from one."""
    import shlex

    if find_links is not None:
        return f"{PIP_LINE} --find-links {shlex.quote(str(find_links))}"
    source = install_source()
    if source is None:
        return None
    path = Path(source)
    if "://" not in source and path.suffix in {".whl", ".gz", ".zip"}:
        return f"{PIP_LINE} --find-links {shlex.quote(str(path.parent))}"
    if "://" not in source:  # a kit checkout (editable or not): the same folder satisfies the pin
        return f"pip install -e {shlex.quote(source)} -r requirements-dev.txt -e ."
    return f"pip install {shlex.quote(source)} -r requirements-dev.txt -e ."


def with_install_line(message: str, find_links: Path | None = None) -> str:
    """The hook's next steps, their pip line replaced by one that finds this piperack."""
    line = install_line(find_links)
    if line is None or PIP_LINE not in message:
        return message
    from . import __version__

    note = f"# piperack {__version__} is not on a package index: pip takes it from where it was installed"
    return message.replace(f"  {PIP_LINE}", f"  {note}\n  {line}", 1)


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
