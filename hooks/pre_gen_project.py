"""Validate the answers before anything is generated.

Cookiecutter renders this file with the answers, runs it, and on a non-zero exit removes whatever
it had started to write. Each failure is one line on stderr naming the answer and what is wrong.
"""
import keyword
import re
import sys

REPO_NAME = "{{ cookiecutter.repo_name }}"
PACKAGE = "{{ cookiecutter.python_package }}"

# Names the generated project imports or installs: a package called like one of them would shadow it.
DEPENDENCIES = {
    "pandas", "numpy", "duckdb", "requests", "urllib3", "yaml", "invoke", "tasks", "pytest",
    "tomlkit", "libcst", "fsspec", "packaging", "uv", "piptools", "hatchling", "setuptools",
    "pip", "wheel", "build", "twine", "s3fs", "piperack", "scripts", "tests", "src", "conf",
    "data", "docker", "dateutil", "pytz", "six", "certifi", "idna", "charset_normalizer",
}
# A distribution name (PEP 508) is also a safe folder name on every platform.
REPO_RE = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?$")


def fail(message: str) -> None:
    print(f"error: {message}", file=sys.stderr)
    sys.exit(1)


def main() -> None:
    if not REPO_RE.match(REPO_NAME) or REPO_NAME in {".", ".."}:
        fail(
            f"repo_name {REPO_NAME!r} is not a valid folder name: use letters, digits, '.', '_' "
            "or '-', starting and ending with a letter or digit"
        )
    if not PACKAGE.isidentifier() or not PACKAGE.isascii():
        fail(
            f"python_package {PACKAGE!r} is not a Python identifier: use ASCII letters, digits "
            "and '_', not starting with a digit"
        )
    if keyword.iskeyword(PACKAGE) or keyword.issoftkeyword(PACKAGE):
        fail(f"python_package {PACKAGE!r} is a Python keyword: choose another name")
    if PACKAGE in sys.stdlib_module_names:
        fail(f"python_package {PACKAGE!r} shadows the standard library module of that name")
    if PACKAGE.lower() in DEPENDENCIES:
        fail(f"python_package {PACKAGE!r} shadows the dependency {PACKAGE.lower()!r}")


main()
