"""The template's Jinja extension: answer validation, escaping, the kit version and the answers record.

- Validation runs while cookiecutter renders the answers (before anything is written):
  cookiecutter.json renders a private variable through the ``piperack_validate`` filter once every
  answer is known; a bad answer prints one line and exits 1 there. Stopping here rather than only
  in the pre-generation hook keeps cookiecutter from printing its own traceback, and writes
  nothing. hooks/pre_gen_project.py renders ``piperack_problem`` to check again for callers of
  cookiecutter's API that skip the answer rendering. ``answers_problem`` holds every rule.
- Answers are text, never templates. Cookiecutter renders each answer given on its command line
  or through its API (``key=value``, extra_context, a user's default_context) as a Jinja template
  before it asks anything, so ``{{ 7*7 }}`` would become 49 and worse could run code. Every string
  Jinja compiles passes through ``PiperackValidation.preprocess`` first: one holding ``{{``, ``{%``
  or ``{#`` must be the template's own (the default of the question being rendered, a hook, the
  project folder's name, a file of the template) or baking stops with one line naming the answer.
  Typed answers, which cookiecutter does not render, meet the same rule in ``answers_problem``.
- Free-text answers (project_name, author_name, description) must be one line of printable text:
  a line break, a control character or a bidirectional override could otherwise add a line of
  code, a Dockerfile instruction or a misleading line. Quotes and backslashes are fine: the
  ``toml_string``, ``py_string`` and ``py_docstring`` filters turn a value into a complete literal
  of the language it lands in, so it reads back exactly as typed.
- ``piperack_version`` (a global) is the version of the kit doing the baking: the kit checkout's
  pyproject.toml, else the metadata of the piperack wheel that carries this template.
- ``piperack_record`` renders .piperack.json: that version and every answer, which
  `invoke update-project` reads to re-render the template.

Nothing here depends on cookiecutter's private context (``_repo_dir`` and friends), so
``cruft create`` and other cookiecutter front ends bake the same project.
"""

import json
import keyword
import re
import sys
import tomllib
import unicodedata
from pathlib import Path

from jinja2.ext import Extension

HERE = Path(__file__).resolve().parent

# Names the generated project imports or installs: a package called like one of them would shadow it.
DEPENDENCIES = {
    "pandas",
    "numpy",
    "duckdb",
    "requests",
    "urllib3",
    "yaml",
    "invoke",
    "tasks",
    "pytest",
    "tomlkit",
    "libcst",
    "fsspec",
    "packaging",
    "uv",
    "piptools",
    "hatchling",
    "setuptools",
    "pip",
    "wheel",
    "build",
    "twine",
    "s3fs",
    "piperack",
    "scripts",
    "tests",
    "src",
    "conf",
    "data",
    "docker",
    "dateutil",
    "pytz",
    "six",
    "certifi",
    "idna",
    "charset_normalizer",
    "pyarrow",
}
# A distribution name (PEP 508) is also a safe folder name on every platform.
REPO_RE = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?$")
NAME_LIMIT = 100  # repo_name, python_package: folder and file names stay far below 255 bytes
# The free-text answers and the longest each may be (PyPI refuses a summary over 512 characters).
FREE_TEXT = {"project_name": 100, "author_name": 200, "description": 512}
PYTHON_VERSION_RE = re.compile(r"^3\.[0-9]{1,2}$")
JINJA_OPENERS = ("{{", "{%", "{#")
# Characters that end a line for Python, Markdown, YAML, Docker or an editor.
LINE_BREAKS = "\n\r\v\f\x1c\x1d\x1e\x85\u2028\u2029"
# Embeddings, overrides and isolates: they reorder how a line is shown ("trojan source").
BIDI_CONTROLS = "\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"


def shown(value) -> str:
    """A value for a one-line message: repr (escapes line breaks), shortened."""
    text = value if isinstance(value, str) else str(value)
    return repr(text if len(text) <= 60 else text[:57] + "...")


def template_problem(key: str, value: str):
    """Why ``value`` would be read as a Jinja template, or None."""
    for opener in JINJA_OPENERS:
        if opener in value:
            return f"{key} {shown(value)} contains {opener!r}: an answer is text, not a template"
    return None


def text_problem(key: str, value, limit: int):
    """The one-line reason a free-text answer can't be used, or None."""
    if not isinstance(value, str):
        return f"{key} must be text, got {type(value).__name__}"
    reason = template_problem(key, value)
    if reason:
        return reason
    for char in value:
        if char in LINE_BREAKS:
            return f"{key} must be one line: {shown(value)} holds a line break (U+{ord(char):04X})"
        category = unicodedata.category(char)
        if category in {"Cc", "Cs"} or char in BIDI_CONTROLS:
            kind = {"Cc": "a control character", "Cs": "a lone surrogate (not text)"}.get(
                category, "a direction override"
            )
            return f"{key} must be printable text: {shown(value)} holds U+{ord(char):04X}, {kind}"
    if len(value) > limit:
        return f"{key} is {len(value)} characters long: at most {limit}"
    if key == "project_name" and not value.strip():
        return "project_name must not be empty"
    return None


def problem(repo_name: str, package: str):
    """The one-line reason the names can't be used, or None."""
    if repo_name == "":
        return "repo_name is empty (project_name has no letter or digit to make it from): give repo_name"
    if not isinstance(repo_name, str) or not REPO_RE.match(repo_name) or repo_name in {".", ".."}:
        return (
            f"repo_name {shown(repo_name)} is not a valid folder name: use letters, digits, '.', '_' "
            "or '-', starting and ending with a letter or digit"
        )
    if len(repo_name) > NAME_LIMIT:
        return f"repo_name is {len(repo_name)} characters long: at most {NAME_LIMIT}"
    if not isinstance(package, str) or not package.isidentifier() or not package.isascii():
        return (
            f"python_package {shown(package)} is not a Python identifier: use ASCII letters, digits "
            "and '_', not starting with a digit"
        )
    if keyword.iskeyword(package) or keyword.issoftkeyword(package):
        return f"python_package {package!r} is a Python keyword: choose another name"
    if len(package) > 4 and package.startswith("__") and package.endswith("__"):
        return f"python_package {package!r} is a dunder name (__x__), reserved by Python: choose another name"
    if len(package) > NAME_LIMIT:
        return f"python_package is {len(package)} characters long: at most {NAME_LIMIT}"
    if package in sys.stdlib_module_names:
        return f"python_package {package!r} shadows the standard library module of that name"
    if package.lower() in DEPENDENCIES:
        return f"python_package {package!r} shadows the dependency {package.lower()!r}"
    return None


def answers_problem(context) -> str:
    """The one-line reason the answers in a cookiecutter context can't be used, or ''.

    Only the answers present are checked (a caller of the hook may pass a partial context).
    """
    for key, limit in FREE_TEXT.items():
        if key in context:
            reason = text_problem(key, context[key], limit)
            if reason:
                return reason
    reason = problem(context.get("repo_name", ""), context.get("python_package", ""))
    if reason:
        return reason
    if "python_version" in context:
        version = context["python_version"]
        if not isinstance(version, str) or not PYTHON_VERSION_RE.match(version):
            return f"python_version {shown(version)} is not a Python version such as '3.12'"
    if "include_example" in context and not isinstance(context["include_example"], bool):
        return f"include_example {shown(context['include_example'])} must be yes or no"
    for key, value in answers(context).items():  # the questions a later template may add
        if isinstance(value, str):
            reason = template_problem(key, value)
            if reason:
                return reason
    return ""


def validate(context) -> str:
    reason = answers_problem(context)
    if reason:
        refuse(reason)
    return "ok"


def refuse(reason: str):
    print(f"error: {reason}", file=sys.stderr)
    sys.exit(1)


# -- escaping: a value as a complete literal of the language it lands in ---------------------------


def _escaped(value: str, escape) -> str:
    return "".join(escape(char) for char in value)


def toml_string(value) -> str:
    """A TOML basic string (with its quotes) that reads back as ``value``."""
    simple = {'"': '\\"', "\\": "\\\\", "\b": "\\b", "\t": "\\t", "\n": "\\n", "\f": "\\f", "\r": "\\r"}

    def escape(char: str) -> str:
        if char in simple:
            return simple[char]
        code = ord(char)
        if 0xD800 <= code <= 0xDFFF:
            raise ValueError(f"U+{code:04X} (a lone surrogate) can't be written to TOML")
        if code < 0x20 or code == 0x7F or not char.isprintable():
            return f"\\u{code:04X}" if code <= 0xFFFF else f"\\U{code:08X}"
        return char

    return '"' + _escaped(str(value), escape) + '"'


def _py_escape(char: str) -> str:
    if char in '"\\':
        return "\\" + char
    if char.isprintable():
        return char
    return char.encode("unicode_escape").decode("ascii")  # \n, \x00, \u2028, \udcff …


def py_string(value) -> str:
    """A double-quoted Python string literal that evaluates to ``value``."""
    return '"' + _escaped(str(value), _py_escape) + '"'


def py_docstring(value) -> str:
    """A triple-quoted Python string literal (a docstring) that evaluates to ``value``: quotes and
    backslashes are escaped, so ``\"\"\"`` or a trailing backslash can't end it early."""
    return '"""' + _escaped(str(value), _py_escape) + '"""'


# -- the version and the record -------------------------------------------------------------------


def kit_version() -> str:
    """The version of the piperack kit this template belongs to."""
    pyproject = HERE / "pyproject.toml"
    if pyproject.is_file():  # a kit checkout: `cookiecutter <kit path or git URL>`, `cruft create`
        return tomllib.loads(pyproject.read_text(encoding="utf-8"))["project"]["version"]
    # The template packaged in a piperack wheel (installed): the wheel's own metadata sits two
    # folders up. (`invoke update-project` sets the version it renders instead of calling this.)
    for metadata in sorted(HERE.parents[1].glob("piperack-*.dist-info/METADATA")):
        for line in metadata.read_text(encoding="utf-8").splitlines():
            if line.startswith("Version:"):
                return line.partition(":")[2].strip()
    from importlib.metadata import version

    return version("piperack")


def answers(context) -> dict:
    """Every answer (the public keys of cookiecutter.json), in the order they were asked."""
    return {key: value for key, value in context.items() if not key.startswith("_")}


def record(context) -> str:
    """The text of .piperack.json: the kit version that baked the project and every answer."""
    data = {"piperack_version": kit_version(), "template": "piperack", "answers": answers(context)}
    return json.dumps(data, indent=2, ensure_ascii=False)


# -- which templates are the template's own --------------------------------------------------------


def _strings(value):
    if isinstance(value, str):
        yield value
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _strings(key)
            yield from _strings(item)


def own_templates() -> tuple[dict, set]:
    """(question -> its default's strings, every string of the template that Jinja may compile
    outside the file loader): cookiecutter.json's values, the hooks, the project folder's name."""
    try:
        questions = json.loads((HERE / "cookiecutter.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        questions = {}
    by_key = {key: set(_strings(value)) for key, value in questions.items()}
    everything = set().union(*by_key.values()) if by_key else set()
    hooks = HERE / "hooks"
    if hooks.is_dir():
        for hook in hooks.iterdir():
            if hook.is_file():
                try:
                    everything.add(hook.read_text(encoding="utf-8"))
                except (OSError, UnicodeDecodeError):
                    pass
    everything.update(path.name for path in HERE.iterdir() if "{{" in path.name)
    return by_key, everything


def prompted_question():
    """The question cookiecutter's prompt_for_config is rendering (its loop variable), or None."""
    frame = sys._getframe(1)
    while frame is not None:
        if frame.f_code.co_name == "prompt_for_config" and frame.f_globals.get("__name__", "").startswith(
            "cookiecutter"
        ):
            key = frame.f_locals.get("key")
            return key if isinstance(key, str) else None
        frame = frame.f_back
    return None


class PiperackValidation(Extension):
    def __init__(self, environment):
        super().__init__(environment)
        environment.filters["piperack_validate"] = validate
        environment.filters["piperack_problem"] = answers_problem
        environment.filters["piperack_record"] = record
        environment.filters["toml_string"] = toml_string
        environment.filters["py_string"] = py_string
        environment.filters["py_docstring"] = py_docstring
        environment.globals["piperack_version"] = kit_version()
        self.by_question, self.own = own_templates()

    def preprocess(self, source, name, filename=None):
        """Refuse, before Jinja compiles it, a string holding Jinja syntax that the template did
        not write: an answer that cookiecutter is about to render."""
        if name is not None or not any(opener in source for opener in JINJA_OPENERS):
            return source  # a template file (by name), or plain text
        question = prompted_question()
        if question is not None:  # rendering the answer (or the default) of one question
            if source in self.by_question.get(question, ()):
                return source
            refuse(template_problem(question, source))
        if self.environment.loader is not None or source in self.own:
            return source  # generating: file and folder names under the template folder
        refuse(template_problem("an answer", source))
