"""Answer validation, run while cookiecutter renders the answers (before anything is written).

cookiecutter.json renders a private variable through the ``piperack_validate`` filter once every
answer is known; a bad answer prints one line and exits 1 there. Stopping here rather than only in
the pre-generation hook keeps cookiecutter from printing its own traceback, and writes nothing.
hooks/pre_gen_project.py runs the same check again for API users that skip the rendering.
"""
import keyword
import re
import sys

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


def validate(context) -> str:
    reason = problem(str(context.get("repo_name", "")), str(context.get("python_package", "")))
    if reason:
        print(f"error: {reason}", file=sys.stderr)
        sys.exit(1)
    return "ok"


class PiperackValidation(Extension):
    def __init__(self, environment):
        super().__init__(environment)
        environment.filters["piperack_validate"] = validate
