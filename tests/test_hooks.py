"""The pre-generation hook: every bad answer stops with one line naming it, and nothing is written."""

import re
import subprocess
import sys

import pytest

from scripts.kitlib import KIT, TEMPLATE

IDENTIFIER = "is not a Python identifier: use ASCII letters, digits and '_', not starting with a digit"
FOLDER = "is not a valid folder name: use letters, digits, '.', '_' or '-', starting and ending with a letter or digit"

# (answers, the one error line without its "error: ")
BAD_ANSWERS = [
    ({"python_package": "class"}, "python_package 'class' is a Python keyword: choose another name"),
    ({"python_package": "match"}, "python_package 'match' is a Python keyword: choose another name"),
    ({"python_package": "json"}, "python_package 'json' shadows the standard library module of that name"),
    ({"python_package": "os"}, "python_package 'os' shadows the standard library module of that name"),
    ({"python_package": "pandas"}, "python_package 'pandas' shadows the dependency 'pandas'"),
    ({"python_package": "duckdb"}, "python_package 'duckdb' shadows the dependency 'duckdb'"),
    ({"python_package": "requests"}, "python_package 'requests' shadows the dependency 'requests'"),
    ({"python_package": "tasks"}, "python_package 'tasks' shadows the dependency 'tasks'"),
    ({"python_package": "1st_project"}, f"python_package '1st_project' {IDENTIFIER}"),
    ({"python_package": "my-project"}, f"python_package 'my-project' {IDENTIFIER}"),
    ({"python_package": "café"}, f"python_package 'café' {IDENTIFIER}"),
    (
        {"python_package": "__init__"},
        "python_package '__init__' is a dunder name (__x__), reserved by Python: choose another name",
    ),
    ({"description": "two\nlines"}, "description must be one line: 'two\\nlines' holds a line break (U+000A)"),
    ({"project_name": "{{ 7*7 }}"}, "project_name '{{ 7*7 }}' contains '{{': an answer is text, not a template"),
    ({"repo_name": "bad/name"}, f"repo_name 'bad/name' {FOLDER}"),
    ({"repo_name": ".."}, f"repo_name '..' {FOLDER}"),
    ({"repo_name": "-dash-first"}, f"repo_name '-dash-first' {FOLDER}"),
    ({"repo_name": "has space"}, f"repo_name 'has space' {FOLDER}"),
]


def run_cookiecutter(out, **answers):
    args = [f"{k}={v}" for k, v in answers.items()]
    return subprocess.run(
        [sys.executable, "-m", "cookiecutter", "--no-input", "--output-dir", str(out), str(KIT), *args],
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.parametrize("answers, message", BAD_ANSWERS, ids=[str(a) for a, _ in BAD_ANSWERS])
def test_bad_answer_stops_with_one_line_and_writes_nothing(tmp_path, answers, message):
    out = tmp_path / "out"
    out.mkdir()
    result = run_cookiecutter(out, **answers)
    assert result.returncode == 1, result.stdout + result.stderr
    assert result.stderr == f"error: {message}\n"
    assert "Traceback" not in result.stdout
    assert list(out.iterdir()) == []


def test_good_answers_with_capitals_spaces_and_dashes_are_accepted(tmp_path):
    result = run_cookiecutter(tmp_path, project_name="My Big-Data Project")
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "my-big-data-project" / "src" / "my_big_data_project" / "__init__.py").is_file()
    assert result.stdout.startswith("\nCreated my-big-data-project/. Next steps:\n"), result.stdout
    assert "  invoke run " in result.stdout  # the next steps name the first command to try


def test_pre_gen_hook_itself_refuses_bad_answers(tmp_path):
    """The hook repeats the check for callers of cookiecutter's API that skip the answer rendering,
    and needs no private cookiecutter context (no _repo_dir: cruft and other front ends lack it)."""
    from jinja2 import Environment

    from local_extensions import PiperackValidation

    source = (KIT / "hooks" / "pre_gen_project.py").read_text()
    assert "_repo_dir" not in source
    env = Environment(extensions=[PiperackValidation])
    rendered = env.from_string(source).render(cookiecutter={"repo_name": "ok", "python_package": "json"})
    hook = tmp_path / "hook.py"
    hook.write_text(rendered)
    result = subprocess.run([sys.executable, str(hook)], cwd=tmp_path, capture_output=True, text=True)
    assert result.returncode == 1
    assert result.stderr.strip() == "error: python_package 'json' shadows the standard library module of that name"
    good = env.from_string(source).render(cookiecutter={"repo_name": "ok", "python_package": "ok_pkg"})
    hook.write_text(good)
    assert subprocess.run([sys.executable, str(hook)], cwd=tmp_path).returncode == 0


def test_no_template_file_uses_private_cookiecutter_context():
    """`cruft create` and cookiecutter's API give no _repo_dir/_template/_output_dir: nothing may need them."""
    private = re.compile(r"cookiecutter\._(repo_dir|template|output_dir|checkout|replay_dir)")
    for path in [KIT / "cookiecutter.json", *(KIT / "hooks").glob("*.py"), *TEMPLATE.rglob("*")]:
        if path.is_file():
            assert not private.search(path.read_text(encoding="utf-8")), path
