"""`invoke package` as a user runs it: bake, package, look at dist/, install the result."""

from __future__ import annotations

import hashlib
import re
import subprocess
import sys
import tarfile
import tomllib
from email.parser import Parser
from pathlib import Path

import pytest
import yaml

PKG = "demo_project"  # the default bake's python_package


def members(path: Path) -> dict[str, bytes]:
    """{path inside <top>/: content} of the files of a .tar.gz."""
    with tarfile.open(path, "r:gz") as tar:
        return {m.name.split("/", 1)[1]: tar.extractfile(m).read() for m in tar.getmembers() if m.isfile()}


def top_dirs(path: Path) -> set[str]:
    with tarfile.open(path, "r:gz") as tar:
        return {m.name.split("/", 1)[0] for m in tar.getmembers()}


def declared(root: Path) -> list[str]:
    """The requirement lines of the example pipeline's requirements.txt (comments and blanks dropped)."""
    text = (root / "src" / PKG / "pipelines/ingest/requirements.txt").read_text()
    return [line.split("#")[0].strip() for line in text.splitlines() if line.split("#")[0].strip()]


def ok(result: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
    assert result.returncode == 0, f"stdout:\n{result.stdout}\nstderr:\n{result.stderr}"
    return result


def set_manifest(root: Path, body: str) -> None:
    """Replace the [tool.piperack.package] section of the project's pyproject.toml with ``body``."""
    path = root / "pyproject.toml"
    text = path.read_text()
    start = text.index("[tool.piperack.package]")
    end = text.index("[tool.piperack.pull]")
    path.write_text(text[:start] + body + "\n\n" + text[end:])


def add_module(root: Path, files: dict[str, str]) -> None:
    for rel, content in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content)


# -- one package ------------------------------------------------------------------------------------


def test_package_writes_code_params_tests_and_requirements(project_copy, run_invoke, tree_hash):
    root = project_copy
    module = root / "src" / PKG / "pipelines" / "ingest"
    tests = root / "src" / "tests" / "pipelines" / "ingest"
    # Every file of the module goes in; caches and compiled files stay out (and stay in the project).
    add_module(
        root,
        {
            f"src/{PKG}/pipelines/ingest/sql/clean.sql": "select 1;\n",
            f"src/{PKG}/pipelines/ingest/schema.json": '{"a": 1}\n',
            f"src/{PKG}/pipelines/ingest/templates/report.j2": "Hello {{ name }}\n",
            f"src/{PKG}/pipelines/ingest/__pycache__/nodes.cpython-311.pyc": "compiled",
            f"src/{PKG}/pipelines/ingest/.ipynb_checkpoints/x.py": "cache",
            "src/tests/pipelines/ingest/__pycache__/t.cpython-311.pyc": "compiled",
            "src/tests/pipelines/ingest/test_patch.py": (
                "from unittest import mock\n\nimport demo_project.pipelines.ingest.nodes\n\n\n"
                "def test_patch():\n"
                '    with mock.patch("demo_project.pipelines.ingest.nodes.CHUNK", 3):\n'
                "        assert demo_project.pipelines.ingest.nodes.CHUNK == 3\n"
            ),
            "conf/base/parameters/ingest_extra.yml": "extra: 1\n",
            "conf/base/parameters/ingest/nested/more.yml": "more: 2\n",
        },
    )
    before = tree_hash(root)

    result = ok(run_invoke(root, "package", "pipelines.ingest"))

    archive = root / "dist" / "ingest-0.1.0.tar.gz"
    data = archive.read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    assert f"dist/ingest-0.1.0.tar.gz  {len(data)} bytes  sha256:{digest}" in result.stdout
    assert (root / "dist" / "SHA256SUMS").read_text() == f"{digest}  ingest-0.1.0.tar.gz\n"
    # the project itself is untouched (only dist/ is new), __pycache__ included
    after = tree_hash(root)
    assert {k: v for k, v in after.items() if not k.startswith("dist/")} == before

    assert top_dirs(archive) == {"ingest-0.1.0"}
    files = members(archive)
    assert sorted(files) == sorted(
        [
            "PKG-INFO",
            "README.md",
            "pyproject.toml",
            "ingest/__init__.py",
            "ingest/nodes.py",
            "ingest/pipeline.py",
            "ingest/requirements.txt",
            "ingest/sql/clean.sql",
            "ingest/schema.json",
            "ingest/templates/report.j2",
            "ingest/config/parameters/ingest.yml",  # not ingest_extra.yml: parameter files match by exact name
            "ingest/config/parameters/ingest/nested/more.yml",
            "tests/__init__.py",
            "tests/test_nodes.py",
            "tests/test_patch.py",
        ]
    )
    assert not any("catalog" in name for name in files)  # catalog files never
    assert files["ingest/config/parameters/ingest.yml"] == (root / "conf/base/parameters/ingest.yml").read_bytes()
    assert files["ingest/requirements.txt"] == (module / "requirements.txt").read_bytes()
    assert files["ingest/nodes.py"] == (module / "nodes.py").read_bytes()  # no references: byte-identical
    # absolute imports of the module are the sdist name now, in code and tests
    assert b"from ingest import nodes" in files["ingest/pipeline.py"]
    assert PKG.encode() not in files["ingest/pipeline.py"]
    assert b"from ingest import nodes" in files["tests/test_nodes.py"]
    assert files["tests/test_patch.py"].decode() == (
        "from unittest import mock\n\nimport ingest.nodes\n\n\n"
        "def test_patch():\n"
        '    with mock.patch("ingest.nodes.CHUNK", 3):\n'
        "        assert ingest.nodes.CHUNK == 3\n"
    )
    assert files["tests/__init__.py"] == (tests / "__init__.py").read_bytes()

    meta = Parser().parsestr(files["PKG-INFO"].decode())
    assert meta["Name"] == "ingest" and meta["Version"] == "0.1.0"
    assert meta.get_all("Requires-Dist") == declared(root)
    assert "pandas>=2.1" in declared(root)
    doc = tomllib.loads(files["pyproject.toml"].decode())
    assert doc["tool"]["piperack"]["module"] == "pipelines.ingest"
    assert doc["project"]["dependencies"] == meta.get_all("Requires-Dist")


def test_same_inputs_same_bytes_across_runs_and_fresh_bakes(bake, run_invoke):
    first, second = bake(), bake()
    ok(run_invoke(first, "package", "pipelines.ingest"))
    one = (first / "dist/ingest-0.1.0.tar.gz").read_bytes()
    # again in the same project, after touching every file: same bytes, reported unchanged
    for path in (first / "src").rglob("*"):
        path.touch()
    again = ok(run_invoke(first, "package", "pipelines.ingest"))
    assert "(unchanged)" in again.stdout
    assert (first / "dist/ingest-0.1.0.tar.gz").read_bytes() == one
    # a second, independent bake of the same project
    ok(run_invoke(second, "package", "pipelines.ingest"))
    assert (second / "dist/ingest-0.1.0.tar.gz").read_bytes() == one
    assert (second / "dist/SHA256SUMS").read_text() == (first / "dist/SHA256SUMS").read_text()


def test_alias_destination_and_env(project_copy, run_invoke):
    root = project_copy
    add_module(
        root,
        {
            "conf/local/parameters/ingest.yml": "table: local_cities\n",
            "conf/local/parameters/ingest_more.yml": "more: 1\n",
        },
    )
    result = ok(
        run_invoke(root, "package", "pipelines.ingest", "--alias", "ingest_tools", "-d", "out/shared", "--env", "local")
    )
    archive = root / "out/shared/ingest_tools-0.1.0.tar.gz"
    assert "out/shared/ingest_tools-0.1.0.tar.gz" in result.stdout
    assert not (root / "dist").exists()
    assert (root / "out/shared/SHA256SUMS").read_text().endswith("  ingest_tools-0.1.0.tar.gz\n")
    assert top_dirs(archive) == {"ingest_tools-0.1.0"}
    files = members(archive)
    params = sorted(name for name in files if "/config/" in name)
    # base's parameters with the env's merged over them, renamed to the alias; ingest_more.yml is
    # another name: never taken
    assert params == ["ingest_tools/config/parameters/ingest_tools.yml"]
    packed = files["ingest_tools/config/parameters/ingest_tools.yml"].decode()
    assert packed.splitlines()[0] == (
        "# conf/base/parameters/ingest.yml with conf/local/parameters/ingest.yml merged over it "
        "(invoke package --env local)"
    )
    base = yaml.safe_load((root / "conf/base/parameters/ingest.yml").read_text())
    assert yaml.safe_load(packed) == base | {"table": "local_cities"}
    assert b"from ingest_tools import nodes" in files["ingest_tools/pipeline.py"]
    assert b"from ingest_tools import nodes" in files["tests/test_nodes.py"]
    meta = Parser().parsestr(files["PKG-INFO"].decode())
    assert meta["Name"] == "ingest_tools"


def test_any_module_path_under_the_package(project_copy, run_invoke):
    root = project_copy
    add_module(
        root,
        {
            f"src/{PKG}/utils/__init__.py": "",
            f"src/{PKG}/utils/cleaning/__init__.py": "from demo_project.utils.cleaning.text import strip\n",
            f"src/{PKG}/utils/cleaning/text.py": "def strip(s):\n    return s.strip()\n",
            "src/tests/utils/cleaning/test_text.py": "from demo_project.utils.cleaning.text import strip\n",
        },
    )
    ok(run_invoke(root, "package", "utils.cleaning"))
    files = members(root / "dist/cleaning-0.1.0.tar.gz")  # the project's version: the module has none
    assert files["cleaning/__init__.py"] == b"from cleaning.text import strip\n"
    assert files["tests/test_text.py"] == b"from cleaning.text import strip\n"
    assert Parser().parsestr(files["PKG-INFO"].decode()).get_all("Requires-Dist") is None


# -- --all ------------------------------------------------------------------------------------------


def test_all_packages_every_manifest_entry_with_its_options(project_copy, run_invoke):
    root = project_copy
    add_module(
        root,
        {
            f"src/{PKG}/utils/__init__.py": "",
            f"src/{PKG}/utils/cleaning/__init__.py": "",
            "conf/uat/parameters/ingest.yml": "table: uat\n",
        },
    )
    set_manifest(
        root,
        (
            "[tool.piperack.package]\n"
            '"pipelines.ingest" = {alias = "ingest_tools", destination = "dist/shared", env = "uat"}\n'
            '"utils.cleaning" = {}\n'
        ),
    )
    result = ok(run_invoke(root, "package", "--all"))
    lines = result.stdout.splitlines()
    assert lines[0].startswith("[1/2] pipelines.ingest -> dist/shared/ingest_tools-0.1.0.tar.gz")
    assert lines[1].startswith("[2/2] utils.cleaning -> dist/cleaning-0.1.0.tar.gz")
    assert re.match(r"packaged 2 of 2 micro-package\(s\), \d+ bytes, in [\d.]+ s", lines[-1])
    files = members(root / "dist/shared/ingest_tools-0.1.0.tar.gz")
    packed = yaml.safe_load(files["ingest_tools/config/parameters/ingest_tools.yml"])
    assert packed == yaml.safe_load((root / "conf/base/parameters/ingest.yml").read_text()) | {"table": "uat"}
    assert (root / "dist/cleaning-0.1.0.tar.gz").is_file()
    for folder in (root / "dist", root / "dist/shared"):
        sums = (folder / "SHA256SUMS").read_text().splitlines()
        for line in sums:
            digest, name = line.split("  ")
            assert hashlib.sha256((folder / name).read_bytes()).hexdigest() == digest


def test_all_keeps_going_reports_failures_and_exits_non_zero(project_copy, run_invoke):
    root = project_copy
    set_manifest(
        root, ('[tool.piperack.package]\n"pipelines.missing" = {}\n"pipelines.ingest" = {}\n"pipelines.ingest " = {}\n')
    )
    result = run_invoke(root, "package", "--all")
    assert result.returncode == 1, result.stdout + result.stderr
    missing = "no module demo_project.pipelines.missing: src/demo_project/pipelines/missing/ does not exist"
    spaced = "invalid module path 'pipelines.ingest ': expected a dotted Python module path such as 'pipelines.ingest'"
    data = (root / "dist/ingest-0.1.0.tar.gz").read_bytes()
    out = result.stdout.splitlines()
    assert out[:3] == [
        f"[1/3] pipelines.missing  FAILED: {missing}",
        f"[2/3] pipelines.ingest -> dist/ingest-0.1.0.tar.gz  {len(data)} bytes  "
        f"sha256:{hashlib.sha256(data).hexdigest()}",
        f"[3/3] pipelines.ingest   FAILED: {spaced}",
    ]
    assert re.fullmatch(rf"packaged 1 of 3 micro-package\(s\), {len(data)} bytes, in \d+\.\d\d s", out[3]), out
    assert len(out) == 4
    assert result.stderr.splitlines() == [
        f"  failed: pipelines.missing: {missing}",
        f"  failed: pipelines.ingest : {spaced}",
        "error: 2 of 3 package(s) failed: pipelines.missing, pipelines.ingest ",
    ]
    assert (root / "dist/SHA256SUMS").read_text().count("\n") == 1


# -- errors: one line, non-zero, nothing written ------------------------------------------------------


ERRORS = [  # (args, [tool.piperack.package] to write or None, the error line without "error: ")
    (
        ["package", "pipelines.nope"],
        None,
        "no module demo_project.pipelines.nope: src/demo_project/pipelines/nope/ does not exist",
    ),
    (
        ["package", "../x"],
        None,
        "invalid module path '../x': expected a dotted Python module path such as 'pipelines.ingest'",
    ),
    (
        ["package", "pipelines.ingest", "--alias", "2fast"],
        None,
        "invalid alias '2fast': it must be a Python identifier such as 'my_pipeline'",
    ),
    (
        ["package", "pipelines.ingest", "--alias", "json"],
        None,
        "alias 'json' collides with a module of Python's standard library: choose another name",
    ),
    (
        ["package", "pipelines.ingest", "--alias", PKG],
        None,
        f"alias '{PKG}' collides with the project's own package: choose another name",
    ),
    (
        ["package", "pipelines.ingest", "--env", "staging"],
        None,
        "no such env 'staging': conf/staging/ does not exist (available: base, local, prod)",
    ),
    (
        ["package", "pipelines.ingest", "--all"],
        None,
        "--all packages every entry of [tool.piperack.package] with its own options; give either a module path "
        "or --all, without --alias/--destination/--env",
    ),
    (
        ["package", "--all"],
        "",
        'pyproject.toml [tool.piperack.package] is missing or empty: add entries like "pipelines.ingest" = {}',
    ),
    (
        ["package", "--all"],
        "[tool.piperack.package]\npipelines.ingest = {}\n",
        'pyproject.toml [tool.piperack.package]: "pipelines.ingest" became a nested table because its key is not '
        'quoted; write it as "pipelines.ingest" = {...}',
    ),
    (
        ["package", "--all"],
        '[tool.piperack.package]\n"pipelines.ingest" = {version = "2"}\n',
        "pyproject.toml [tool.piperack.package] \"pipelines.ingest\": unknown option 'version' "
        "(allowed: alias, destination, env)",
    ),
]


@pytest.mark.parametrize(
    "args, manifest, message",
    ERRORS,
    ids=[" ".join(a) + (" (manifest)" if m is not None else "") for a, m, _ in ERRORS],
)
def test_errors_are_one_line_and_write_nothing(project_copy, run_invoke, tree_hash, args, manifest, message):
    root = project_copy
    if manifest is not None:
        set_manifest(root, manifest)
    before = tree_hash(root)
    result = run_invoke(root, *args)
    assert result.returncode == 1
    assert result.stderr == f"error: {message}\n"
    assert tree_hash(root) == before
    assert not (root / "dist").exists()


def test_no_module_and_no_all_is_refused(project, run_invoke):
    result = run_invoke(project, "package")
    assert result.returncode == 1
    # invoke's own line: the positional argument may only be left out with --all
    assert result.stderr == "'package' did not receive required positional arguments: 'module'\n"
    assert not (project / "dist").exists()


def test_requirement_option_lines_are_refused_naming_the_line(project_copy, run_invoke, tree_hash):
    root = project_copy
    reqs = root / "src" / PKG / "pipelines/ingest/requirements.txt"
    lines = reqs.read_text().splitlines()
    reqs.write_text("\n".join(lines) + "\n-e git+https://example.invalid/x.git#egg=x\n")
    before = tree_hash(root)
    result = run_invoke(root, "package", "pipelines.ingest")
    assert result.returncode == 1
    assert result.stderr == (
        f"error: src/{PKG}/pipelines/ingest/requirements.txt:{len(lines) + 1}: option lines are not supported here "
        "(-r, -c, -e, --index-url, --extra-index-url, --find-links, ...): "
        "'-e git+https://example.invalid/x.git#egg=x'; list plain requirements\n"
    )
    assert tree_hash(root) == before


# -- the archive is a real sdist -------------------------------------------------------------------------


def test_pip_installs_it_in_a_fresh_venv_and_twine_accepts_it(project_copy, run_invoke, tmp_path):
    root = project_copy
    add_module(root, {f"src/{PKG}/pipelines/ingest/sql/clean.sql": "select 1;\n"})
    ok(run_invoke(root, "package", "pipelines.ingest"))
    archive = root / "dist/ingest-0.1.0.tar.gz"

    twine = subprocess.run(
        [sys.executable, "-m", "twine", "check", "--strict", str(archive)], capture_output=True, text=True
    )
    assert twine.returncode == 0, twine.stdout + twine.stderr
    assert "PASSED" in twine.stdout

    venv = tmp_path / "fresh"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    py = venv / "bin" / "python"
    # --no-deps: the dependencies come from PyPI and are checked in the metadata below instead
    install = subprocess.run(
        [str(py), "-m", "pip", "install", "--quiet", "--no-deps", str(archive)], capture_output=True, text=True
    )
    assert install.returncode == 0, install.stdout + install.stderr
    probe = (
        "import importlib.metadata as md, importlib.util as u, pathlib, ingest, ingest.nodes as n\n"
        "print(n.normalise_column(' Area (km2) '))\n"
        "print(u.find_spec('tests') is None)\n"
        "base = pathlib.Path(ingest.__file__).parent\n"
        "print((base / 'config/parameters/ingest.yml').is_file(), (base / 'sql/clean.sql').is_file())\n"
        "print(sorted(md.requires('ingest')))\n"
    )
    out = subprocess.run([str(py), "-c", probe], capture_output=True, text=True, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == [
        "area_km2",
        "True",  # no top-level `tests` package leaked into site-packages
        "True True",
        str(sorted(declared(root))),
    ]
    site = next((venv / "lib").glob("python*/site-packages"))
    assert not (site / "tests").exists()
