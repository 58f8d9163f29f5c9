"""Unit tests of the micro-package format writer (piperack.sdist) and the package planner
(piperack.package.build) on small projects written straight to disk (no baking)."""

from __future__ import annotations

import gzip
import io
import re
import tarfile
import tomllib
from email.parser import Parser
from pathlib import Path

import pytest

from piperack import sdist
from piperack.errors import PiperackError
from piperack.options import Job, jobs_from_manifest
from piperack.package import build, update_sums
from piperack.project import find_project

# What the format promises (docs/architecture.md, "The sdist format"), written out here rather than
# read from piperack.sdist: every member and the gzip header carry 2000-01-01T00:00:00Z unless
# SOURCE_DATE_EPOCH (1980 or later) says otherwise; [tool.piperack] format = 1; setuptools>=64.
FIXED_MTIME = 946684800  # int(datetime(2000, 1, 1, tzinfo=UTC).timestamp())
FORMAT_VERSION = 1


def exact(message: str) -> str:
    """A ``match=`` pattern for exactly this one-line message."""
    return f"^{re.escape(message)}$"


def _spec(**over) -> sdist.SdistSpec:
    base = dict(
        name="ingest",
        version="0.1.0",
        summary="Micro-package ingest",
        requires=["pandas>=2.1", 'requests[socks]>=2.31; python_version >= "3.9"'],
        requires_python=">=3.11",
        files={
            "ingest/__init__.py": b"",
            "ingest/nodes.py": b"def f():\n    return 1\n",
            "ingest/sub/__init__.py": b"",
            "ingest/sql/query.sql": b"select 1\n",
            "ingest/config/parameters/ingest.yml": b"a: 1\n",
            "tests/__init__.py": b"",
            "tests/test_nodes.py": b"from ingest import nodes\n",
        },
        executable={"ingest/nodes.py"},
        tool={"module": "pipelines.ingest", "tests": True, "parameters": ["ingest/config/parameters/ingest.yml"]},
        readme='# ingest\n\nText with "quotes" and ünïcode.\n',
    )
    base.update(over)
    return sdist.SdistSpec(**base)


def _members(data: bytes) -> list[tarfile.TarInfo]:
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        return tar.getmembers()


def _read(data: bytes, name: str) -> bytes:
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        return tar.extractfile(name).read()


def test_build_is_byte_identical_and_independent_of_dict_order():
    one = sdist.build_sdist(_spec())
    spec = _spec()
    spec.files = dict(reversed(list(spec.files.items())))
    two = sdist.build_sdist(spec)
    assert one == two
    assert sdist.build_sdist(_spec(version="0.1.1")) != one


def test_archive_layout_owners_modes_and_times(monkeypatch):
    monkeypatch.delenv("SOURCE_DATE_EPOCH", raising=False)
    data = sdist.build_sdist(_spec())  # the default time: the format's fixed one
    members = _members(data)
    names = [m.name for m in members]
    assert names == sorted(names, key=lambda n: n.split("/"))
    assert names[0] == "ingest-0.1.0"
    assert {
        "ingest-0.1.0/PKG-INFO",
        "ingest-0.1.0/pyproject.toml",
        "ingest-0.1.0/README.md",
        "ingest-0.1.0/ingest/config/parameters/ingest.yml",
        "ingest-0.1.0/tests/test_nodes.py",
    } <= set(names)
    assert all(n.startswith("ingest-0.1.0") for n in names)
    for m in members:
        assert (m.uid, m.gid, m.uname, m.gname) == (0, 0, "", "")
        assert m.mtime == FIXED_MTIME
        if m.isdir():
            assert m.mode == 0o755
        elif m.name.endswith("nodes.py") and "/ingest/" in m.name:
            assert m.mode == 0o755
        else:
            assert m.mode == 0o644
    # gzip header: no file name, the fixed time
    assert data[:3] == b"\x1f\x8b\x08"
    assert data[3] == 0  # FLG: no FNAME
    assert int.from_bytes(data[4:8], "little") == FIXED_MTIME
    assert gzip.decompress(data)  # valid stream


def test_fixed_time_is_the_start_of_2000():
    from datetime import UTC, datetime

    assert datetime.fromtimestamp(FIXED_MTIME, UTC) == datetime(2000, 1, 1, tzinfo=UTC)


def test_source_date_epoch(monkeypatch):
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
    assert {m.mtime for m in _members(sdist.build_sdist(_spec()))} == {1700000000}
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "12")  # before 1980: wheels could not be built from it
    assert {m.mtime for m in _members(sdist.build_sdist(_spec()))} == {FIXED_MTIME}


def test_pyproject_is_valid_toml_with_origin_and_only_the_package_installed():
    data = sdist.build_sdist(_spec())
    doc = tomllib.loads(_read(data, "ingest-0.1.0/pyproject.toml").decode())
    assert doc["build-system"] == {"requires": ["setuptools>=64"], "build-backend": "setuptools.build_meta"}
    assert doc["project"]["name"] == "ingest"
    assert doc["project"]["version"] == "0.1.0"
    assert doc["project"]["dependencies"] == _spec().requires
    assert doc["project"]["requires-python"] == ">=3.11"
    assert doc["tool"]["setuptools"]["packages"] == ["ingest", "ingest.sub"]
    assert "tests" not in doc["tool"]["setuptools"]["packages"]
    assert doc["tool"]["setuptools"]["package-data"] == {"ingest": ["**/*"]}
    assert doc["tool"]["piperack"]["module"] == "pipelines.ingest"
    assert doc["tool"]["piperack"]["format"] == FORMAT_VERSION
    assert doc["tool"]["piperack"]["tests"] is True


def test_pkg_info_is_core_metadata():
    data = sdist.build_sdist(_spec())
    text = _read(data, "ingest-0.1.0/PKG-INFO").decode()
    msg = Parser().parsestr(text)
    assert msg["Metadata-Version"] == "2.1"
    assert msg["Name"] == "ingest" and msg["Version"] == "0.1.0"
    assert msg.get_all("Requires-Dist") == _spec().requires
    assert msg["Requires-Python"] == ">=3.11"
    assert msg.get_payload() == _spec().readme
    assert _read(data, "ingest-0.1.0/README.md").decode() == _spec().readme


def test_no_dependencies_and_generated_file_clash():
    doc = tomllib.loads(sdist.pyproject_toml(_spec(requires=[], requires_python=None)))
    assert doc["project"]["dependencies"] == []
    assert "requires-python" not in doc["project"]
    with pytest.raises(ValueError, match=exact("generated files cannot be given: ['PKG-INFO']")):
        sdist.build_sdist(_spec(files={"PKG-INFO": b"x"}))


# -- package.build on hand-made projects ------------------------------------------------------------


def write(root: Path, files: dict[str, str | bytes]) -> None:
    for rel, content in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content)


PYPROJECT = """\
[project]
name = "demo"
version = "1.2.0"
requires-python = ">=3.11"

[tool.piperack]
python_package = "demo"
"""


@pytest.fixture
def proj(tmp_path):
    root = tmp_path / "demo"
    write(
        root,
        {
            "pyproject.toml": PYPROJECT,
            "src/demo/__init__.py": "",
            "src/demo/pipelines/__init__.py": "",
            "src/demo/pipelines/ingest/__init__.py": '"""Ingest."""\n__version__ = "0.3"\n',
            "src/demo/pipelines/ingest/nodes.py": "from demo.pipelines.ingest.helpers import x\n",
            "src/demo/pipelines/ingest/helpers.py": "x = 1\n",
            "src/demo/pipelines/ingest/queries/select.sql": "select 1\n",
            "src/demo/pipelines/ingest/requirements.txt": "# deps\n\npandas>=2.1  # frames\nrequests\n",
            "src/demo/pipelines/ingest/__pycache__/nodes.cpython-311.pyc": b"\x00",
            "src/demo/pipelines/ingestion/__init__.py": "",
            "src/tests/pipelines/ingest/__init__.py": "",
            "src/tests/pipelines/ingest/test_nodes.py": (
                "from unittest import mock\nimport demo.pipelines.ingest.nodes\n\n"
                "@mock.patch('demo.pipelines.ingest.helpers.x', 2)\ndef test():\n"
                "    assert demo.pipelines.ingest.nodes.x == 2\n"
            ),
            "src/tests/pipelines/ingest/.pytest_cache/v/x": "cache",
            "conf/base/parameters/ingest.yml": "a: 1\n",
            "conf/base/parameters/ingest_extra.yml": "b: 2\n",
            "conf/base/parameters/ingest/deep/more.yml": "c: 3\n",
            "conf/base/parameters/other.yml": "o: 1\n",
            "conf/base/catalog/ingest.yml": "raw: data/raw.csv\n",
            "conf/local/parameters/ingest.yml": "a: 9\n",
        },
    )
    return find_project(root)


def names(built) -> dict[str, bytes]:
    with tarfile.open(fileobj=io.BytesIO(built.data), mode="r:gz") as tar:
        return {m.name.split("/", 1)[1]: tar.extractfile(m).read() for m in tar.getmembers() if m.isfile()}


def test_build_collects_code_params_tests_and_requirements(proj):
    built = build(proj, Job("pipelines.ingest"))
    assert built.filename == "ingest-0.3.tar.gz"  # the module's own __version__
    assert built.dest_dir == proj.root / "dist"
    files = names(built)
    assert sorted(files) == sorted(
        [
            "PKG-INFO",
            "README.md",
            "pyproject.toml",
            "ingest/__init__.py",
            "ingest/nodes.py",
            "ingest/helpers.py",
            "ingest/queries/select.sql",
            "ingest/requirements.txt",
            "ingest/config/parameters/ingest.yml",  # never ingest_extra.yml: exact names only
            "ingest/config/parameters/ingest/deep/more.yml",
            "tests/__init__.py",
            "tests/test_nodes.py",
        ]
    )
    assert files["ingest/nodes.py"] == b"from ingest.helpers import x\n"
    assert files["tests/test_nodes.py"].decode() == (
        "from unittest import mock\nimport ingest.nodes\n\n"
        "@mock.patch('ingest.helpers.x', 2)\ndef test():\n    assert ingest.nodes.x == 2\n"
    )
    meta = Parser().parsestr(files["PKG-INFO"].decode())
    assert meta.get_all("Requires-Dist") == ["pandas>=2.1", "requests"]
    assert not (proj.root / "dist").exists()  # build() writes nothing
    # the project's caches are left alone
    assert (proj.package_dir / "pipelines/ingest/__pycache__/nodes.cpython-311.pyc").exists()


def test_env_alias_and_destination(proj):
    built = build(proj, Job("pipelines.ingest", alias="ingest_tools", env="local", destination="out/pk"))
    assert built.filename == "ingest_tools-0.3.tar.gz"
    assert built.dest_dir == proj.root / "out/pk"
    files = names(built)
    assert files["ingest_tools/config/parameters/ingest_tools.yml"] == (
        b"# conf/base/parameters/ingest.yml with conf/local/parameters/ingest.yml merged over it "
        b"(invoke package --env local)\na: 9\n"
    )
    assert not any("config/parameters/ingest.yml" in f or "ingest_extra" in f for f in files)
    assert files["ingest_tools/nodes.py"] == b"from ingest_tools.helpers import x\n"
    assert b"ingest_tools.helpers.x" in files["tests/test_nodes.py"]


def test_alias_renames_every_parameter_entry(proj):
    files = names(build(proj, Job("pipelines.ingest", alias="feed")))
    params = sorted(f for f in files if "/config/" in f)
    assert params == [
        "feed/config/parameters/feed.yml",
        "feed/config/parameters/feed/deep/more.yml",
    ]


def test_project_version_when_module_has_none(proj):
    write(proj.root, {"src/demo/utils/cleaning/__init__.py": "", "src/demo/utils/__init__.py": ""})
    built = build(proj, Job("utils.cleaning"))
    assert built.filename == "cleaning-1.2.0.tar.gz"
    assert set(names(built)) == {"PKG-INFO", "README.md", "pyproject.toml", "cleaning/__init__.py"}


def test_missing_init_is_added(proj):
    write(proj.root, {"src/demo/utils/nsmod/helper.py": "x = 1\n"})
    files = names(build(proj, Job("utils.nsmod")))
    assert files["nsmod/__init__.py"] == b""


IDENTIFIER = "expected a dotted Python module path such as 'pipelines.ingest'"
ALIAS = "it must be a Python identifier such as 'my_pipeline'"
ENV = "an env is a folder name directly under conf/ (letters, digits, '_', '-', '.')"


@pytest.mark.parametrize(
    "job, message",
    [
        (Job("pipelines.nope"), "no module demo.pipelines.nope: src/demo/pipelines/nope/ does not exist"),
        (Job("../x"), f"invalid module path '../x': {IDENTIFIER}"),
        (Job("pipelines/ingest"), f"invalid module path 'pipelines/ingest': {IDENTIFIER}"),
        (Job("pipelines.ingest", alias="1abc"), f"invalid alias '1abc': {ALIAS}"),
        (Job("pipelines.ingest", alias="class"), f"invalid alias 'class': it is a Python keyword; {ALIAS}"),
        (
            Job("pipelines.ingest", alias="json"),
            "alias 'json' collides with a module of Python's standard library: choose another name",
        ),
        (
            Job("pipelines.ingest", alias="demo"),
            "alias 'demo' collides with the project's own package: choose another name",
        ),
        (
            Job("pipelines.ingest", alias="tests"),
            "alias 'tests' collides with the sdist's tests/ folder: choose another name",
        ),
        (
            Job("pipelines.ingest", alias="ingestion"),
            "alias 'ingestion' collides with the existing module src/demo/pipelines/ingestion: choose another name",
        ),
        (
            Job("pipelines.ingest", env="prod"),
            "no such env 'prod': conf/prod/ does not exist (available: base, local)",
        ),
        (Job("pipelines.ingest", env="../x"), f"invalid env '../x': {ENV}"),
    ],
)
def test_errors(proj, job, message):
    with pytest.raises(PiperackError, match=exact(message)):
        build(proj, job)


def test_module_named_tests_needs_an_alias_and_stdlib_names_warn(proj):
    write(proj.root, {"src/demo/utils/tests/__init__.py": "", "src/demo/utils/email/__init__.py": ""})
    with pytest.raises(
        PiperackError,
        match=exact(
            "demo.utils.tests: a micro-package cannot be named 'tests' (the sdist's tests/ folder); "
            "package it with --alias NAME"
        ),
    ):
        build(proj, Job("utils.tests"))
    assert build(proj, Job("utils.tests", alias="checks")).filename == "checks-1.2.0.tar.gz"
    built = build(proj, Job("utils.email"))
    assert built.warnings == [
        "'email' is also a standard-library module: pip-installing the package would shadow it "
        "(pulling it into a project is fine); --alias NAME avoids that"
    ]
    assert not build(proj, Job("utils.email", alias="mailer")).warnings


def test_requirement_option_lines_are_refused_naming_the_line(proj):
    write(proj.root, {"src/demo/pipelines/ingest/requirements.txt": "pandas\n-r ../../other.txt\n"})
    with pytest.raises(
        PiperackError,
        match=exact(
            "src/demo/pipelines/ingest/requirements.txt:2: option lines are not supported here (-r, -c, -e, "
            "--index-url, --extra-index-url, --find-links, ...): '-r ../../other.txt'; list plain requirements"
        ),
    ):
        build(proj, Job("pipelines.ingest"))


def test_single_file_module_and_config_folder_and_outside_links(proj, tmp_path):
    write(proj.root, {"src/demo/utils/single.py": "x = 1\n"})
    with pytest.raises(
        PiperackError,
        match=exact(
            "demo.utils.single is a single-file module (src/demo/utils/single.py); micro-packages are folders: "
            "move it to src/demo/utils/single/__init__.py"
        ),
    ):
        build(proj, Job("utils.single"))
    write(proj.root, {"src/demo/pipelines/ingest/config/x.yml": "a: 1\n"})
    with pytest.raises(
        PiperackError,
        match=exact(
            "src/demo/pipelines/ingest/config/: the micro-package format keeps parameters in <name>/config/, "
            "so the module cannot have its own config/ folder; rename it"
        ),
    ):
        build(proj, Job("pipelines.ingest"))
    (proj.root / "src/demo/pipelines/ingest/config/x.yml").unlink()
    (proj.root / "src/demo/pipelines/ingest/config").rmdir()
    outside = tmp_path / "secret.txt"
    outside.write_text("secret")
    (proj.root / "src/demo/pipelines/ingest/leak.txt").symlink_to(outside)
    with pytest.raises(
        PiperackError,
        match=exact(
            "src/demo/pipelines/ingest/leak.txt: a symbolic link to something outside the project cannot be packaged"
        ),
    ):
        build(proj, Job("pipelines.ingest"))


def test_invalid_python_is_a_clear_error(proj):
    write(proj.root, {"src/demo/pipelines/ingest/broken.py": "import demo.pipelines.ingest as\n"})
    with pytest.raises(
        PiperackError,
        match=exact(
            "src/demo/pipelines/ingest/broken.py: not valid Python, cannot rewrite its imports "
            "(invalid syntax (line 1))"
        ),
    ):
        build(proj, Job("pipelines.ingest"))


def test_manifest_jobs(proj):
    text = PYPROJECT + (
        '\n[tool.piperack.package]\n"pipelines.ingest" = {alias = "feed", destination = "dist/shared", env = "local"}\n'
        '"utils.cleaning" = {}\n'
    )
    (proj.root / "pyproject.toml").write_text(text)
    jobs = jobs_from_manifest(find_project(proj.root), "package")
    assert [(j.subject, j.alias, j.destination, j.env) for j in jobs] == [
        ("pipelines.ingest", "feed", "dist/shared", "local"),
        ("utils.cleaning", None, None, "base"),
    ]
    (proj.root / "pyproject.toml").write_text(PYPROJECT + '\n[tool.piperack.package]\n"x" = {alias = 3}\n')
    with pytest.raises(
        PiperackError,
        match=exact("pyproject.toml [tool.piperack.package] \"x\": option 'alias' must be a non-empty string, got 3"),
    ):
        jobs_from_manifest(find_project(proj.root), "package")


def test_all_refuses_two_entries_writing_the_same_file(proj, capsys):
    from piperack.package import _package_all

    write(proj.root, {"src/demo/utils/ingest/__init__.py": '__version__ = "0.3"\n'})
    with pytest.raises(PiperackError, match=exact("1 of 2 package(s) failed: utils.ingest")):
        _package_all(
            proj, [Job("pipelines.ingest", label="pipelines.ingest"), Job("utils.ingest", label="utils.ingest")]
        )
    out = capsys.readouterr().out
    assert "[2/2] utils.ingest  FAILED: writes dist/ingest-0.3.tar.gz, as 'pipelines.ingest' did" in out
    assert (proj.root / "dist/ingest-0.3.tar.gz").is_file()


def test_update_sums_keeps_existing_files_only(tmp_path):
    (tmp_path / "a-1.tar.gz").write_bytes(b"a")
    (tmp_path / "SHA256SUMS").write_text("11  a-1.tar.gz\n22  gone-1.tar.gz\n")
    (tmp_path / "b-1.tar.gz").write_bytes(b"b")
    update_sums(tmp_path, {"b-1.tar.gz": "33"})
    assert (tmp_path / "SHA256SUMS").read_text() == "11  a-1.tar.gz\n33  b-1.tar.gz\n"


def test_interpolations_are_packaged_as_text_never_resolved(proj):
    """piperack resolves no ${...} (only the project's runner does, with its limit): an interpolation
    bomb merged by `package --env` stays the few bytes it was written as."""
    import yaml

    levels = {"l0": "xxxxxxxx"} | {f"l{i}": f"${{l{i - 1}}}" * 4 for i in range(1, 21)}
    bomb = "".join(f'{key}: "{value}"\n' for key, value in levels.items())
    write(proj.root, {"conf/base/parameters/ingest.yml": bomb, "conf/local/parameters/ingest.yml": "l0: y\n"})
    params = names(build(proj, Job("pipelines.ingest", env="local")))["ingest/config/parameters/ingest.yml"]
    assert yaml.safe_load(params) == levels | {"l0": "y"}
    assert len(params) < 2 * len(bomb)
