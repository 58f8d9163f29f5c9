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
    config = user_config()
    made_from = _make_output_dir(output_dir)
    try:
        staging = Path(tempfile.mkdtemp(prefix=".piperack-new-", dir=output_dir)).resolve()
    except BaseException:
        _remove_made(output_dir, made_from)
        raise
    os.environ["PIPERACK_NEW_STAGING"] = str(staging)  # the post-generation hook leaves its message there
    done = False
    try:
        config["replay_dir"] = str(staging / "replay")  # cookiecutter's replay file: nothing in ~
        made = _render(template or template_dir(), staging / "render", answers, no_input, config, staging / "tmp")
        target = output_dir / made.name
        if not (target.exists() or target.is_symlink()):
            made.rename(target)
        elif target.is_symlink() or not target.is_dir():
            raise PiperackError(f'"{target}" exists and is not a folder (a file or a link); nothing written')
        elif not overwrite:
            raise PiperackError(
                f'"{target}" already exists: pass -f to write the template\'s files into it '
                "(the other files there stay), or choose another folder with -o"
            )
        else:
            _write_into(target, made)
        message = staging / "next-steps.txt"
        if message.is_file():
            print(with_install_line(message.read_text(encoding="utf-8"), find_links), end="", flush=True)
        done = True
    finally:
        os.environ.pop("PIPERACK_NEW_STAGING", None)
        shutil.rmtree(staging, ignore_errors=True)
        if not done:
            _remove_made(output_dir, made_from)
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


def _make_output_dir(output_dir: Path) -> Path | None:
    """Make ``-o DIR`` (and its missing parents); returns the topmost folder made, or None. A file in
    the way is one line, before anything is made."""
    missing = []
    folder = output_dir
    while not (folder.exists() or folder.is_symlink()) and folder != folder.parent:
        missing.append(folder)
        folder = folder.parent
    if not folder.is_dir():
        shown = [str(p) if str(p).isprintable() else repr(str(p)) for p in (output_dir, folder)]
        what = "a link to nothing" if folder.is_symlink() and not folder.exists() else "a file, not a folder"
        where = f" is {what}" if folder == output_dir else f": {shown[1]} is {what}"
        raise PiperackError(f"-o {shown[0]}{where}; nothing written")
    output_dir.mkdir(parents=True, exist_ok=True)
    return missing[-1] if missing else None


def _remove_made(output_dir: Path, top: Path | None) -> None:
    """A refused or failed ``piperack new`` takes back the folders ``-o`` made (when still empty)."""
    if top is None:
        return
    folder = output_dir
    while True:
        try:
            folder.rmdir()
        except OSError:
            return
        if folder == top:
            return
        folder = folder.parent


def user_config() -> dict:
    """cookiecutter's user config ($COOKIECUTTER_CONFIG, else ~/.cookiecutterrc when present), read
    with piperack's bounded YAML loader and checked for shape, so a wrong one is one line naming the
    file and key (cookiecutter would fail with ``'str' object has no attribute 'items'``)."""
    import os

    from cookiecutter.config import USER_CONFIG_PATH

    given = os.environ.get("COOKIECUTTER_CONFIG")
    path = Path(given or USER_CONFIG_PATH)
    if not given and not path.exists():
        return {}
    import yaml

    from .yamlload import load_yaml

    try:
        data = load_yaml(path.read_text(encoding="utf-8"), allow_anchors=True)
    except UnicodeDecodeError:
        raise PiperackError(f"{path}: not UTF-8 text") from None
    except OSError as exc:
        raise PiperackError(f"{path}: cannot read cookiecutter's config: {exc.strerror}") from None
    except (ValueError, yaml.YAMLError) as exc:
        raise PiperackError(f"{path}: malformed YAML: {first_line(exc)}") from None
    return _checked_config(path, data or {})


SCALARS = (str, int, float, bool)


def _checked_config(path: Path, data) -> dict:
    def refuse(key: str, expected: str, value) -> None:
        raise PiperackError(f"{path}: {key}: expected {expected}, got {type(value).__name__}")

    if not isinstance(data, dict):
        refuse("the file", "a mapping (default_context, abbreviations, ...)", data)
    config = {}
    for key, value in data.items():
        if key in ("default_context", "abbreviations"):
            if not isinstance(value, dict):
                refuse(key, "a mapping of names to values", value)
            for name, item in value.items():
                if not isinstance(name, str) or not isinstance(item, SCALARS):
                    refuse(f"{key}.{name}", "a single value (a string, number or true/false)", item)
            config[key] = {name: str(item) if key == "abbreviations" else item for name, item in value.items()}
        elif key in ("cookiecutters_dir", "replay_dir"):
            if not isinstance(value, str):
                refuse(key, "a folder path (a string)", value)
            config[key] = value
    return config


def _render(template: Path, staging: Path, answers: dict | None, no_input: bool, config: dict, scratch: Path) -> Path:
    """cookiecutter's rendering into ``staging``. Its temporary files go to ``scratch`` (removed
    with the staging folder): it writes each rendered hook to one and never removes it."""
    import tempfile

    from cookiecutter.exceptions import CookiecutterException
    from cookiecutter.main import cookiecutter

    scratch.mkdir()
    previous, tempfile.tempdir = tempfile.tempdir, str(scratch)
    try:
        made = cookiecutter(
            str(template),
            no_input=no_input,
            output_dir=str(staging),
            extra_context=dict(answers or {}),
            default_config=config,
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
    finally:
        tempfile.tempdir = previous
    return Path(made)


def _write_into(target: Path, made: Path) -> None:
    """``piperack new -f``: the rendered files over an existing project, as one transaction."""
    from .fsutil import transaction, write_session

    files = sorted(p for p in made.rglob("*") if p.is_file() and not p.is_symlink())
    with write_session(target, "new"), transaction(target) as tx:
        for path in files:
            tx.change(path.relative_to(made), path.read_bytes())
