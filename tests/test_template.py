"""Bake the meaningful answer combinations and check what a user gets, file by file."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib

import pytest

from scripts.kitlib import KIT, TEMPLATE

DOCKER = sorted(p.name for p in (TEMPLATE / "docker").iterdir() if p.is_file())

COMMON = {
    ".dockerignore",
    ".gitignore",
    ".github/workflows/ci.yml",
    ".piperack.json",
    ".pre-commit-config.yaml",
    "README.md",
    "pyproject.toml",
    "requirements.in",
    "requirements.txt",
    "requirements-dev.txt",
    "tasks.py",
    "conf/README.md",
    "conf/base/airflow.yml",
    "conf/base/logging.yml",
    "conf/base/pipelines.yml",
    "conf/local/.gitkeep",
    "conf/prod/README.md",
    "data/.gitkeep",
    "src/{pkg}/__init__.py",
    "src/{pkg}/__main__.py",
    "src/{pkg}/runner.py",
    "src/{pkg}/safety.py",
    "src/{pkg}/pipelines/__init__.py",
    "src/tests/__init__.py",
    "src/tests/pipelines/__init__.py",
    "src/tests/test_runner.py",
    *(f"docker/{name}" for name in DOCKER),
}
EXAMPLE = {
    "conf/base/parameters/ingest.yml",
    "conf/base/catalog/ingest.yml",
    "conf/prod/parameters/ingest.yml",
    "samples/cities.csv",
    "src/{pkg}/pipelines/ingest/__init__.py",
    "src/{pkg}/pipelines/ingest/pipeline.py",
    "src/{pkg}/pipelines/ingest/nodes.py",
    "src/{pkg}/pipelines/ingest/requirements.txt",
    "src/tests/pipelines/ingest/__init__.py",
    "src/tests/pipelines/ingest/test_nodes.py",
}


def template_files(include_example: bool) -> set[str]:
    """Everything under the template folder (with or without the example pipeline)."""
    files = {
        p.relative_to(TEMPLATE).as_posix().replace("{{cookiecutter.python_package}}", "{pkg}")
        for p in TEMPLATE.rglob("*")
        if p.is_file() and "__pycache__" not in p.parts
    }
    return files if include_example else files - EXAMPLE


CASES = [
    # (answers, repo folder, package)
    ({}, "demo-project", "demo_project"),
    ({"include_example": "no"}, "demo-project", "demo_project"),
    ({"project_name": "My Big-Data Project", "python_version": "3.12"}, "my-big-data-project", "my_big_data_project"),
    ({"project_name": "Sales Data", "python_version": "3.13", "include_example": "no"}, "sales-data", "sales_data"),
    ({"project_name": "ACME Ops", "repo_name": "acme-ops", "python_package": "acme_ops"}, "acme-ops", "acme_ops"),
]


@pytest.mark.parametrize("answers, folder, package", CASES, ids=[str(c[0]) for c in CASES])
def test_bake_gives_exactly_the_expected_files(bake, answers, folder, package):
    root = bake(**answers)
    assert root.name == folder
    include = answers.get("include_example", "yes") == "yes"
    expected = {f.replace("{pkg}", package) for f in (COMMON | (EXAMPLE if include else set()))}
    actual = {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()}
    assert actual == expected
    # Nothing in the template is left out of the expectation, so a new template file needs a decision here.
    assert {f.replace("{pkg}", package) for f in template_files(include)} == expected
    for path in root.rglob("*"):
        if path.is_file():
            text = path.read_text(encoding="utf-8")
            if path.suffix in {".yml", ".yaml"} and ".github" in path.parts:
                text = re.sub(r"\$\{\{ [a-z.]+ \}\}", "", text)  # GitHub Actions expressions are meant to stay
            for token in ("{{", "}}", "{%", "%}", "cookiecutter"):
                assert token not in text, f"{path.relative_to(root)} still holds {token!r}"
    pyproject = tomllib.loads((root / "pyproject.toml").read_text())
    version = answers.get("python_version", "3.11")
    assert pyproject["project"]["name"] == folder
    assert pyproject["project"]["requires-python"] == f">={version}"
    assert pyproject["tool"]["piperack"]["python_package"] == package
    assert f'python-version: "{version}"' in (root / ".github/workflows/ci.yml").read_text()
    assert set(pyproject["tool"]["piperack"]["package"]) == ({"pipelines.ingest"} if include else set())


def test_interactive_answers_are_used(tmp_path):
    answers = "Weather Feed\n\n\nAnn Author\nHourly weather\n2\nn\n"
    result = subprocess.run(
        [sys.executable, "-m", "cookiecutter", "--output-dir", str(tmp_path), str(KIT)],
        input=answers,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    root = tmp_path / "weather-feed"
    pyproject = tomllib.loads((root / "pyproject.toml").read_text())
    assert pyproject["project"]["authors"] == [{"name": "Ann Author"}]
    assert pyproject["project"]["description"] == "Hourly weather"
    assert pyproject["project"]["requires-python"] == ">=3.12"
    assert (root / "src/weather_feed/runner.py").is_file()
    assert not (root / "src/weather_feed/pipelines/ingest").exists()


def test_engine_and_tasks_import_nothing_heavy(project, venv):
    """`invoke --list` stays fast: tasks.py and every piperack module import only light modules.
    rewrite_cst is libcst's half of rewrite, imported by nothing at import time (checked here)."""
    code = (
        "import sys, importlib, pkgutil; import tasks, piperack\n"
        "for m in pkgutil.walk_packages(piperack.__path__, 'piperack.'):\n"
        "    if m.name not in ('piperack.__main__', 'piperack.rewrite_cst'): importlib.import_module(m.name)\n"
        "heavy = {'pandas', 'duckdb', 'numpy', 'libcst', 'fsspec', 'requests', 'tomlkit', 's3fs', 'pip',\n"
        "         'cookiecutter', 'jinja2', 'twine', 'keyring', 'rich', 'piperack.rewrite_cst'}\n"
        "print(sorted(heavy & set(sys.modules)))"
    )
    result = subprocess.run([str(venv / "bin" / "python"), "-c", code], cwd=project, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_invoke_list_and_help_describe_every_task(project, run_invoke):
    listing = run_invoke(project, "--list")
    assert listing.returncode == 0, listing.stderr
    tasks = [line.split()[0] for line in listing.stdout.splitlines() if line.startswith("  ") and line[2:3].strip()]
    assert {"run", "test", "new-pipeline"} <= set(tasks)
    for name in tasks:
        help_text = run_invoke(project, "--help", name)
        assert help_text.returncode == 0, help_text.stderr
        assert "Docstring:" in help_text.stdout and "none" not in help_text.stdout.split("Docstring:")[1].split("\n")[1]
        option_lines = [line for line in help_text.stdout.splitlines() if re.match(r"^  -", line)]
        for line in option_lines:
            assert re.search(r"\S\s{2,}\S", line.strip()), f"{name}: option without help: {line}"
