"""The template's Jinja extension: answer validation, the kit version and the answers record.

- Validation runs while cookiecutter renders the answers (before anything is written):
  cookiecutter.json renders a private variable through the ``piperack_validate`` filter once every
  answer is known; a bad answer prints one line and exits 1 there. Stopping here rather than only
  in the pre-generation hook keeps cookiecutter from printing its own traceback, and writes
  nothing. hooks/pre_gen_project.py renders ``piperack_problem`` to check again for callers of
  cookiecutter's API that skip the answer rendering.
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
from pathlib import Path

from jinja2.ext import Extension

# Names the generated project imports or installs: a package called like one of them would shadow it.
DEPENDENCIES = {
    "pandas", "numpy", "duckdb", "requests", "urllib3", "yaml", "invoke", "tasks", "pytest",
    "tomlkit", "libcst", "fsspec", "packaging", "uv", "piptools", "hatchling", "setuptools",
    "pip", "wheel", "build", "twine", "s3fs", "piperack", "scripts", "tests", "src", "conf",
    "data", "docker", "dateutil", "pytz", "six", "certifi", "idna", "charset_normalizer",
}
# A distribution name (PEP 508) is also a safe folder name on every platform.
REPO_RE = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?$")


def problem(repo_name: str, package: str):
    """The one-line reason the answers can't be used, or None."""
    if not REPO_RE.match(repo_name) or repo_name in {".", ".."}:
        return (
            f"repo_name {repo_name!r} is not a valid folder name: use letters, digits, '.', '_' "
            "or '-', starting and ending with a letter or digit"
        )
    if not package.isidentifier() or not package.isascii():
        return (
            f"python_package {package!r} is not a Python identifier: use ASCII letters, digits "
            "and '_', not starting with a digit"
        )
    if keyword.iskeyword(package) or keyword.issoftkeyword(package):
        return f"python_package {package!r} is a Python keyword: choose another name"
    if package in sys.stdlib_module_names:
        return f"python_package {package!r} shadows the standard library module of that name"
    if package.lower() in DEPENDENCIES:
        return f"python_package {package!r} shadows the dependency {package.lower()!r}"
    return None


def answers_problem(context) -> str:
    """The one-line reason the answers in a cookiecutter context can't be used, or ''."""
    return problem(str(context.get("repo_name", "")), str(context.get("python_package", ""))) or ""


def validate(context) -> str:
    reason = answers_problem(context)
    if reason:
        print(f"error: {reason}", file=sys.stderr)
        sys.exit(1)
    return "ok"


def kit_version() -> str:
    """The version of the piperack kit this template belongs to."""
    here = Path(__file__).resolve().parent
    pyproject = here / "pyproject.toml"
    if pyproject.is_file():  # a kit checkout: `cookiecutter <kit path or git URL>`, `cruft create`
        return tomllib.loads(pyproject.read_text(encoding="utf-8"))["project"]["version"]
    # The template packaged in a piperack wheel (installed, or unpacked by `invoke update-project`
    # to re-render an older version): the wheel's own metadata sits two folders up.
    for metadata in sorted(here.parents[1].glob("piperack-*.dist-info/METADATA")):
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


class PiperackValidation(Extension):
    def __init__(self, environment):
        super().__init__(environment)
        environment.filters["piperack_validate"] = validate
        environment.filters["piperack_problem"] = answers_problem
        environment.filters["piperack_record"] = record
        environment.globals["piperack_version"] = kit_version()
