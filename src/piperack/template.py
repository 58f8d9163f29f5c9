"""The template this piperack carries: where it is, what it asks, and rendering any version as data.

A wheel carries it as package data (piperack/template/); an editable install of a kit checkout
uses the checkout itself. ``piperack new`` bakes from it with cookiecutter; ``update-project``
renders two versions of it (the project's old one and this one) with ``render``: the template's
files are data read into memory, rendered in a sandboxed Jinja environment with *this* piperack's
extension filters and pruned by *this* piperack's post-generation rules. Neither version's hooks
nor its local Jinja extensions run, and nothing is written to disk.
"""

from __future__ import annotations

import json
from pathlib import Path, PurePosixPath

from .errors import PiperackError, first_line

TEMPLATE_FILE = "cookiecutter.json"
# cookiecutter's own Jinja extensions (code of the installed cookiecutter, not of a template).
COOKIECUTTER_EXTENSIONS = (
    "cookiecutter.extensions.JsonifyExtension",
    "cookiecutter.extensions.RandomStringExtension",
    "cookiecutter.extensions.SlugifyExtension",
    "cookiecutter.extensions.TimeExtension",
    "cookiecutter.extensions.UUIDExtension",
)
# What hooks/post_gen_project.py removes when include_example is false ({pkg}: python_package);
# tests/unit/test_update_engine.py checks the two lists agree.
EXAMPLE_PATHS = (
    "src/{pkg}/pipelines/ingest",
    "src/tests/pipelines/ingest",
    "conf/base/parameters/ingest.yml",
    "conf/base/catalog/ingest.yml",
    "conf/prod/parameters",
    "samples",
)
# Top-level folders of a kit checkout that are no part of the template (tools' caches, builds).
NOT_TEMPLATE = frozenset(
    {".git", ".venv", "venv", ".tox", ".nox", ".cache", "build", "dist", "node_modules", "__pycache__"}
    | {".mypy_cache", ".pytest_cache", ".ruff_cache"}
)
MAX_TEMPLATE_BYTES = 100 * 1024 * 1024  # a piperack wheel or sdist is well under 1 MB


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
    data = json.loads(((template or template_dir()) / TEMPLATE_FILE).read_text(encoding="utf-8"))
    return {key: value for key, value in data.items() if not key.startswith("_")}


# -- reading a template as data ---------------------------------------------------------------------


def project_folder(names) -> str | None:
    """The template's project folder among top-level ``names`` (cookiecutter's rule), or None."""
    found = sorted(name for name in names if "cookiecutter" in name and "{{" in name and "}}" in name)
    return found[0] if found else None


def template_files(files: dict[PurePosixPath, bytes], label: str) -> dict[PurePosixPath, bytes]:
    """Of a template's files, what rendering reads: cookiecutter.json and the project folder."""
    if PurePosixPath(TEMPLATE_FILE) not in files:
        raise PiperackError(f"{label}: carries no piperack template ({TEMPLATE_FILE} at its top)")
    top = project_folder({path.parts[0] for path in files if len(path.parts) > 1})
    if top is None:
        raise PiperackError(f"{label}: carries no project folder ({{{{cookiecutter.…}}}}) next to {TEMPLATE_FILE}")
    return {
        path: data
        for path, data in files.items()
        if path == PurePosixPath(TEMPLATE_FILE)
        or (path.parts[0] == top and "__pycache__" not in path.parts and path.suffix != ".pyc")
    }


def _wanted(rel: PurePosixPath) -> bool:
    return rel == PurePosixPath(TEMPLATE_FILE) or (len(rel.parts) > 1 and project_folder([rel.parts[0]]) is not None)


def read_template_folder(folder: Path, label: str | None = None) -> dict[PurePosixPath, bytes]:
    """A template folder (a kit checkout, or this piperack's own), checked as pull checks an
    archive (no link anywhere in it, …) and read into memory."""
    from .archive import read_folder

    label = label or str(folder)
    files = read_folder(folder, label, max_bytes=MAX_TEMPLATE_BYTES, skip=NOT_TEMPLATE, wanted=_wanted)
    return template_files(files, label)


# -- rendering with this piperack's code ------------------------------------------------------------


def _extensions(version: str) -> list:
    """This piperack's template extensions (its cookiecutter.json ``_extensions``, loaded from its
    own template folder) with ``kit_version`` answering ``version``: the version being rendered."""
    import importlib.util

    here = template_dir()
    names = json.loads((here / TEMPLATE_FILE).read_text(encoding="utf-8")).get("_extensions", [])
    loaded = []
    for name in names:
        module_name, _, attr = name.rpartition(".")
        spec = importlib.util.spec_from_file_location(f"_piperack_template_{module_name}", here / f"{module_name}.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        if hasattr(module, "kit_version"):
            module.kit_version = lambda: version
        loaded.append((module, getattr(module, attr)))
    return loaded


def _answer(key: str, default, value, label: str):
    """An answer as cookiecutter takes it over a question's default (text is never rendered)."""
    if isinstance(default, bool) and isinstance(value, str):
        words = {"1": True, "true": True, "t": True, "yes": True, "y": True, "on": True}
        words |= {"0": False, "false": False, "f": False, "no": False, "n": False, "off": False}
        if value.strip().lower() not in words:
            raise PiperackError(f"{label}: the answer {key}={value!r} is not yes or no")
        return words[value.strip().lower()]
    if isinstance(default, list) and value not in default:
        choices = ", ".join(str(choice) for choice in default)
        raise PiperackError(f"{label}: the answer {key}={value!r} is not one of its choices ({choices})")
    return value


def _rendered(env, raw, context: dict):
    if raw is None or isinstance(raw, bool):
        return raw
    if isinstance(raw, dict):
        return {_rendered(env, k, context): _rendered(env, v, context) for k, v in raw.items()}
    if isinstance(raw, list):
        return [_rendered(env, item, context) for item in raw]
    return env.from_string(str(raw)).render(cookiecutter=context)


def _context(env, questions: dict, answers: dict, label: str) -> dict:
    """The ``cookiecutter`` variable: answers over the questions' defaults, as cookiecutter builds it
    without prompting (defaults are rendered in order; dictionaries in a second pass)."""
    context: dict = {}
    for key, raw in questions.items():
        if key == "__prompts__" or isinstance(raw, dict):
            continue
        if key.startswith("_") and not key.startswith("__"):
            context[key] = raw
        elif key in answers and not key.startswith("_"):
            context[key] = _answer(key, raw, answers[key], label)
        elif isinstance(raw, list):
            context[key] = _rendered(env, raw[0], context) if raw else ""
        else:
            context[key] = _rendered(env, raw, context)
    for key, raw in questions.items():
        if key != "__prompts__" and isinstance(raw, dict) and not (key.startswith("_") and not key.startswith("__")):
            context[key] = _rendered(env, raw, context)
    return context


def _newline(text: str) -> str | None:
    first = text.splitlines(keepends=True)[:1]
    if not first:
        return None
    line = first[0]
    return "\r\n" if line.endswith("\r\n") else "\r" if line.endswith("\r") else "\n" if line.endswith("\n") else None


def _safe_output(rel: str, label: str) -> PurePosixPath | None:
    path = PurePosixPath(rel)
    if rel.endswith("/") or not path.parts:
        return None  # cookiecutter skips a file whose rendered name is empty
    if path.is_absolute() or ".." in path.parts or "\\" in rel or "\x00" in rel:
        raise PiperackError(f"{label}: the template file {rel!r} renders to a path outside the project; refused")
    return path


def render(files: dict[PurePosixPath, bytes], answers: dict, version: str, label: str) -> dict[str, bytes]:
    """Every file the template in ``files`` makes with ``answers``: ``{POSIX path in the project: bytes}``.

    The template is data: its Jinja runs in a sandbox with this piperack's extensions (whatever
    the old cookiecutter.json names in ``_extensions``), ``piperack_version`` and the record say
    ``version``, answers are validated by this piperack's rules, hooks are never run and the
    example is pruned by this piperack's rule (``EXAMPLE_PATHS``).
    """
    import fnmatch

    from binaryornot.helpers import is_binary_string
    from jinja2 import DictLoader, StrictUndefined, TemplateError
    from jinja2.sandbox import SandboxedEnvironment

    try:
        questions = json.loads(files[PurePosixPath(TEMPLATE_FILE)].decode("utf-8"))
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise PiperackError(f"{label}: {TEMPLATE_FILE} is not valid JSON ({first_line(exc)})") from None
    if not isinstance(questions, dict):
        raise PiperackError(f"{label}: {TEMPLATE_FILE} must be an object of questions")
    top = project_folder({path.parts[0] for path in files if len(path.parts) > 1})
    texts, binary = {}, {}
    for path, data in files.items():
        if len(path.parts) > 1 and path.parts[0] == top:
            inner = PurePosixPath(*path.parts[1:]).as_posix()
            try:
                texts[inner] = None if is_binary_string(data[:1024]) else data.decode("utf-8")
            except UnicodeDecodeError:
                texts[inner] = None
            if texts[inner] is None:
                binary[inner] = data
    loaded = _extensions(version)
    problem = next((m.answers_problem for m, _ in loaded if hasattr(m, "answers_problem")), None)

    def validate(context) -> str:
        reason = problem(context) if problem else ""
        if reason:
            raise PiperackError(f"{label}: {reason}")
        return "ok"

    env = SandboxedEnvironment(
        undefined=StrictUndefined,
        keep_trailing_newline=True,
        extensions=[*COOKIECUTTER_EXTENSIONS, *(ext for _, ext in loaded)],
        loader=DictLoader({name: text for name, text in texts.items() if text is not None}),
    )
    env.filters["piperack_validate"] = validate
    where = TEMPLATE_FILE
    try:
        context = _context(env, questions, answers, label)
        validate(context)
        rendered: dict[str, bytes] = {}
        budget = [MAX_TEMPLATE_BYTES]  # what all rendered files together may hold
        copy_only = [p for p in context.get("_copy_without_render") or [] if isinstance(p, str)]
        new_lines = context.get("_new_lines") if isinstance(context.get("_new_lines"), str) else None
        for inner, text in sorted(texts.items()):
            where = inner
            out = _safe_output(env.from_string(inner).render(cookiecutter=context), label)
            if out is None:
                continue
            if text is None or any(fnmatch.fnmatch(inner, pattern) for pattern in copy_only):
                data = binary.get(inner, text.encode("utf-8") if text is not None else b"")
            else:
                body = _bounded(env.get_template(inner).generate(cookiecutter=context), budget, label)
                newline = new_lines or _newline(text)
                if newline and newline != "\n":
                    body = body.replace("\n", newline)
                data = body.encode("utf-8")
            rendered[out.as_posix()] = data
    except PiperackError:
        raise
    except (TemplateError, RecursionError, ValueError, TypeError, KeyError, AttributeError) as exc:
        raise PiperackError(
            f"the {label} template could not be rendered with the recorded answers ({where}): {first_line(exc)}"
        ) from None
    return _pruned(rendered, context)


def _bounded(pieces, budget: list[int], label: str) -> str:
    """A rendered file, refused once the render as a whole outgrows ``budget`` (a template that
    loops out gigabytes is stopped, not held in memory)."""
    parts = []
    for piece in pieces:
        budget[0] -= len(piece)
        if budget[0] < 0:
            raise PiperackError(f"{label}: the template renders to more than {MAX_TEMPLATE_BYTES} bytes; refused")
        parts.append(piece)
    return "".join(parts)


def _pruned(rendered: dict[str, bytes], context: dict) -> dict[str, bytes]:
    """What this piperack's post-generation hook leaves: the example goes when include_example is false."""
    if context.get("include_example") is not False:
        return rendered
    gone = [PurePosixPath(path.format(pkg=context.get("python_package", ""))) for path in EXAMPLE_PATHS]
    return {
        rel: data
        for rel, data in rendered.items()
        if not any(PurePosixPath(rel) == g or g in PurePosixPath(rel).parents for g in gone)
    }
