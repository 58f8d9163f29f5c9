"""piperack as a versioned library: the wheel, `piperack new`, `invoke release`, `cruft create`, and a
generated project that pins piperack instead of carrying a copy of it."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from scripts import kitlib
from scripts.kitlib import KIT, TEMPLATE

VERSION = kitlib.kit_version()


def tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


# -- the distribution ---------------------------------------------------------------------------


def test_version_is_written_once(kit_repo):
    """[project] version in pyproject.toml is the only place: no other file of the kit spells it."""
    needle = f'"{VERSION}"'
    holders = [
        p.relative_to(kit_repo).as_posix()
        for p in kit_repo.rglob("*")
        if p.is_file()
        and p.suffix in {".py", ".toml", ".json", ".cfg", ".txt"}
        and needle in p.read_text(errors="ignore")
        and not {"tests", "benchmarks"} & set(p.relative_to(kit_repo).parts)
    ]
    assert holders == ["pyproject.toml"]


def test_wheel_carries_the_engine_the_template_and_metadata(wheelhouse):
    wheel = next(wheelhouse.glob(f"piperack-{VERSION}-py3-none-any.whl"))
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        metadata = archive.read(f"piperack-{VERSION}.dist-info/METADATA").decode()
        entry_points = archive.read(f"piperack-{VERSION}.dist-info/entry_points.txt").decode()
    for module in ("tasks.py", "cli.py", "bake.py", "fsutil.py", "options.py", "pull/plan.py", "pull/apply.py"):
        assert f"piperack/{module}" in names
    template = {name.removeprefix("piperack/template/") for name in names if name.startswith("piperack/template/")}
    expected = {
        p.relative_to(TEMPLATE.parent).as_posix()
        for p in TEMPLATE.rglob("*")
        if p.is_file() and "__pycache__" not in p.parts
    }
    expected |= {"cookiecutter.json", "local_extensions.py", "hooks/pre_gen_project.py", "hooks/post_gen_project.py"}
    assert template == expected
    assert "{{cookiecutter.repo_name}}/.github/workflows/ci.yml" in template
    assert not any(".pyc" in name or "__pycache__" in name for name in names)
    for field in (
        "Name: piperack",
        f"Version: {VERSION}",
        "Requires-Python: >=3.11",
        "License-Expression: MIT",
        "Classifier: Programming Language :: Python :: 3.11",
        "Summary: ",
    ):
        assert field in metadata
    assert "piperack = piperack.cli:main" in entry_points


def test_pip_wheel_at_the_kit_root_builds_the_wheel(kit_repo, tmp_path):
    out = tmp_path / "out"
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "-w", str(out), "."],
        cwd=kit_repo,
        capture_output=True,
        text=True,
    )
    assert built.returncode == 0, built.stderr
    assert [p.name for p in out.iterdir()] == [f"piperack-{VERSION}-py3-none-any.whl"]


def test_release_builds_checks_and_refuses_dirty_or_tagged(kit_repo, tmp_path):
    repo = tmp_path / "kit"
    shutil.copytree(kit_repo, repo)
    invoke = [sys.executable, "-m", "invoke"]
    released = subprocess.run([*invoke, "release"], cwd=repo, capture_output=True, text=True)
    assert released.returncode == 0, released.stdout + released.stderr
    assert sorted(p.name for p in (repo / "dist").iterdir()) == [
        f"piperack-{VERSION}-py3-none-any.whl",
        f"piperack-{VERSION}.tar.gz",
    ]
    assert "PASSED" in released.stdout  # twine check --strict on both
    with zipfile.ZipFile(repo / "dist" / f"piperack-{VERSION}-py3-none-any.whl") as archive:
        assert "piperack/template/cookiecutter.json" in archive.namelist()

    (repo / "README.md").write_text("changed\n")
    dirty = subprocess.run([*invoke, "release"], cwd=repo, capture_output=True, text=True)
    assert dirty.returncode == 1
    assert dirty.stderr == "error: uncommitted changes (1 file(s)): commit them first\n"
    subprocess.run(["git", "checkout", "-q", "README.md"], cwd=repo, check=True)

    subprocess.run(["git", "tag", f"v{VERSION}"], cwd=repo, check=True)
    tagged = subprocess.run([*invoke, "release"], cwd=repo, capture_output=True, text=True)
    assert tagged.returncode == 1
    assert tagged.stderr == f"error: v{VERSION} is already tagged: raise [project] version in pyproject.toml first\n"


# -- baking without the kit -----------------------------------------------------------------------


def test_piperack_new_from_the_installed_wheel_bakes_what_cookiecutter_bakes(venv, user_env, bake, tmp_path):
    """The wheel's template gives byte-for-byte the project `cookiecutter <kit>` gives, although
    installing it wrote bytecode into the template's folders (pip does by default, kitlib too)."""
    installed = next(venv.glob("lib/python*/site-packages/piperack/template"))
    assert any(installed.rglob("__pycache__/*.pyc")), "the installed template should hold bytecode, as pip leaves it"
    answers = {"project_name": "Sales Data", "python_version": "3.12", "description": "Daily sales"}
    made = subprocess.run(
        [
            str(venv / "bin" / "piperack"),
            "new",
            "--no-input",
            "--output-dir",
            str(tmp_path / "new"),
            *(f"{k}={v}" for k, v in answers.items()),
        ],
        cwd=tmp_path,
        env=user_env(),
        capture_output=True,
        text=True,
    )
    assert made.returncode == 0, made.stderr
    assert "Next steps" in made.stdout
    from_wheel = tree(tmp_path / "new" / "sales-data")
    from_kit = tree(bake(**answers))
    assert from_wheel == from_kit
    record = json.loads(from_wheel[".piperack.json"])
    assert record["piperack_version"] == VERSION
    assert record["answers"] == {
        "project_name": "Sales Data",
        "repo_name": "sales-data",
        "python_package": "sales_data",
        "author_name": "Your Name",
        "description": "Daily sales",
        "python_version": "3.12",
        "include_example": True,
    }


def test_piperack_version_and_help(venv, user_env):
    version = subprocess.run(
        [str(venv / "bin" / "piperack"), "--version"], env=user_env(), capture_output=True, text=True
    )
    assert (version.returncode, version.stdout) == (0, f"piperack {VERSION}\n")
    helped = subprocess.run(
        [str(venv / "bin" / "piperack"), "new", "--help"], env=user_env(), capture_output=True, text=True
    )
    assert helped.returncode == 0 and "--no-input" in helped.stdout and "--output-dir" in helped.stdout


QUESTIONS = "project_name, repo_name, python_package, author_name, description, python_version, include_example"


@pytest.mark.parametrize(
    "args, message",
    [
        (["python_package=json"], "error: python_package 'json' shadows the standard library module of that name"),
        (["colour=red"], f"error: unknown answer 'colour': the template asks for {QUESTIONS}"),
        (["project_name"], f"error: expected key=value, got 'project_name' (keys: {QUESTIONS})"),
        (
            ["python_version=2.7"],
            "error: 2.7 provided for choice variable python_version, but the choices are ['3.11', '3.12', '3.13'].",
        ),
    ],
)
def test_piperack_new_refuses_bad_answers_in_one_line_and_writes_nothing(venv, user_env, tmp_path, args, message):
    out = tmp_path / "out"
    out.mkdir()
    result = subprocess.run(
        [str(venv / "bin" / "piperack"), "new", "--no-input", "-o", str(out), *args],
        env=user_env(),
        capture_output=True,
        text=True,
    )
    assert result.returncode == 1
    assert result.stderr == message + "\n"
    assert "Traceback" not in result.stdout
    assert list(out.iterdir()) == []


def test_piperack_new_asks_the_template_questions(venv, user_env, tmp_path):
    answers = "Weather Feed\n\n\nAnn Author\nHourly weather\n2\nn\n"
    result = subprocess.run(
        [str(venv / "bin" / "piperack"), "new", "-o", str(tmp_path)],
        input=answers,
        env=user_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    record = json.loads((tmp_path / "weather-feed" / ".piperack.json").read_text())
    assert record["answers"]["python_version"] == "3.12" and record["answers"]["include_example"] is False


def test_piperack_new_refuses_an_existing_project_folder(venv, user_env, tmp_path):
    (tmp_path / "demo-project").mkdir()
    (tmp_path / "demo-project" / "mine.txt").write_text("keep\n")
    result = subprocess.run(
        [str(venv / "bin" / "piperack"), "new", "--no-input", "-o", str(tmp_path)],
        env=user_env(),
        capture_output=True,
        text=True,
    )
    assert result.returncode == 1
    assert result.stderr == (
        f'error: "{tmp_path / "demo-project"}" already exists: pass -f to write the template\'s files into it '
        "(the other files there stay), or choose another folder with -o\n"
    )
    assert sorted(p.name for p in (tmp_path / "demo-project").iterdir()) == ["mine.txt"]


def test_cruft_create_bakes_from_the_kit_repository(kit_repo, tmp_path):
    cruft = Path(sys.executable).parent / "cruft"
    made = subprocess.run(
        [
            str(cruft),
            "create",
            "--no-input",
            "--output-dir",
            str(tmp_path),
            str(kit_repo),
            "--extra-context",
            json.dumps({"project_name": "Cruft Made"}),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert made.returncode == 0, made.stdout + made.stderr
    root = tmp_path / "cruft-made"
    assert (root / "src" / "cruft_made" / "pipelines" / "ingest" / "nodes.py").is_file()
    assert json.loads((root / ".piperack.json").read_text())["piperack_version"] == VERSION
    assert f"piperack=={VERSION}" in (root / "requirements-dev.txt").read_text()
    refused = subprocess.run(
        [
            str(cruft),
            "create",
            "--no-input",
            "--output-dir",
            str(tmp_path / "bad"),
            str(kit_repo),
            "--extra-context",
            json.dumps({"python_package": "json"}),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert refused.returncode == 1, refused.stdout + refused.stderr
    assert refused.stderr == "error: python_package 'json' shadows the standard library module of that name\n"
    assert not (tmp_path / "bad" / "demo-project").exists()


# -- a generated project depends on piperack ------------------------------------------------------


def test_project_pins_piperack_and_carries_no_engine(project):
    assert f"piperack=={VERSION}\n" in (project / "requirements-dev.txt").read_text()
    assert not (project / "scripts").exists()
    outside_src = [p for p in project.rglob("*.py") if "src" not in p.relative_to(project).parts]
    lines = sum(len(p.read_text().splitlines()) for p in outside_src)
    assert [p.relative_to(project).as_posix() for p in outside_src] == ["tasks.py"]
    assert lines < 400
    assert len((project / "tasks.py").read_text().splitlines()) < 30


@pytest.fixture(scope="session")
def venv_without_piperack(tmp_path_factory) -> Path:
    return kitlib.small_venv(tmp_path_factory.mktemp("no-piperack") / "venv", ["invoke>=2.2"])


@pytest.mark.parametrize("args", [["--list"], ["run"], ["package", "pipelines.ingest"], ["--help", "pull"]])
def test_without_piperack_every_task_says_how_to_install_it(project, venv_without_piperack, args):
    env = kitlib.invoke_env(venv_without_piperack)
    result = subprocess.run(
        [str(venv_without_piperack / "bin" / "invoke"), *args], cwd=project, env=env, capture_output=True, text=True
    )
    assert result.returncode == 1
    assert result.stderr == (
        "error: piperack is not installed in this environment: run `pip install -r requirements-dev.txt`\n"
    )
    assert result.stdout == ""


def test_tasks_find_the_project_from_elsewhere(project_copy, run_invoke, tmp_path):
    """`invoke -r PROJECT` from another folder works on that project (not on the working directory)."""
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    result = run_invoke(elsewhere, "-r", str(project_copy), "package", "pipelines.ingest")
    assert result.returncode == 0, result.stderr
    assert (project_copy / "dist" / "ingest-0.1.0.tar.gz").is_file()
    assert not (elsewhere / "dist").exists()


def test_a_team_task_added_next_to_the_collection(project_copy, run_invoke):
    """The recipe in tasks.py's docstring works as written."""
    tasks = project_copy / "tasks.py"
    doc = tasks.read_text().split('"""')[1]
    recipe = "\n".join(line[4:] for line in doc.splitlines() if line.startswith("    "))
    tasks.write_text(tasks.read_text() + "\n" + recipe + "\n")
    listing = run_invoke(project_copy, "--list")
    assert listing.returncode == 0, listing.stderr
    assert "clean" in listing.stdout and "package" in listing.stdout
    (project_copy / "dist").mkdir()
    assert run_invoke(project_copy, "clean", "--keep-data").returncode == 0
    assert not (project_copy / "dist").exists()


def test_unit_tests_import_the_installed_package():
    """The library's tests see piperack as installed (editable in the kit's venv), never through sys.path."""
    import piperack

    assert Path(piperack.__file__).resolve().is_relative_to(KIT / "src")
    offenders = [
        p
        for p in [
            *KIT.glob("tests/**/*.py"),
            *KIT.glob("benchmarks/**/*.py"),
            *KIT.glob("scripts/*.py"),
            KIT / "tasks.py",
            *TEMPLATE.rglob("*.py"),
        ]
        if p.resolve() != Path(__file__).resolve() and re.search(r"sys\.path(\.insert|\.append|\[)", p.read_text())
    ]
    assert offenders == []
    assert "pythonpath" not in (KIT / "pytest.ini").read_text()


def test_piperack_new_says_how_pip_finds_a_piperack_installed_from_a_wheel_file(wheelhouse, user_env, tmp_path):
    """Installed from a wheel file (PEP 610's direct_url.json records it), piperack new's next steps
    name that wheel's folder as --find-links; the steps run as printed in a new virtualenv, without
    any find-links of the user's (pip resolves everything, piperack from there: --dry-run)."""
    wheel = next(wheelhouse.glob(f"piperack-{VERSION}-*.whl"))
    venv = kitlib.small_venv(tmp_path / "venv", [str(wheel), "pip"])
    env = {k: v for k, v in user_env().items() if k not in {"PIP_FIND_LINKS", "UV_FIND_LINKS"}}
    env |= {"PATH": f"{venv / 'bin'}:{env['PATH']}", "VIRTUAL_ENV": str(venv)}
    made = subprocess.run(
        [str(venv / "bin" / "piperack"), "new", "--no-input", "--output-dir", str(tmp_path)],
        env=env,
        capture_output=True,
        text=True,
    )
    assert made.returncode == 0, made.stderr
    steps = made.stdout.splitlines()
    line = f"  pip install -r requirements-dev.txt -e . --find-links {wheelhouse}"
    assert steps[steps.index(line) - 2 : steps.index(line) + 1] == [
        "  python3 -m venv .venv && . .venv/bin/activate",
        f"  # piperack {VERSION} is not on a package index: pip takes it from where it was installed",
        line,
    ]
    assert not [step for step in steps if re.search(r"python3\.\d+", step)]
    resolved = subprocess.run(
        ["bash", "-c", f"{steps[steps.index(line) - 2].strip()} && {line.strip()} --dry-run --quiet --report -"],
        cwd=tmp_path / "demo-project",
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert resolved.returncode == 0, resolved.stderr
    report = json.loads(resolved.stdout)
    versions = {item["metadata"]["name"]: item["metadata"]["version"] for item in report["install"]}
    assert versions["piperack"] == VERSION
