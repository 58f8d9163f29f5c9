"""Compatibility: a micro-package made by `invoke package` pulls cleanly into a Kedro 0.18.14 project
with `kedro micropkg pull`: code, parameters and tests in their places, requirements appended.

Kedro is installed once into a cached virtualenv (benchmarks/package/kedro_env.py), never into the
kit's or the project's environment.
"""

from __future__ import annotations

import subprocess

import pytest

from benchmarks.package import kedro_env

pytestmark = pytest.mark.slow

PKG = "demo_project"


@pytest.fixture(scope="module")
def kedro():
    return kedro_env.kedro_venv()


def test_kedro_micropkg_pull_places_code_parameters_and_tests(project_copy, run_invoke, kedro, tmp_path):
    root = project_copy
    (root / "src" / PKG / "pipelines/ingest/sql").mkdir()
    (root / "src" / PKG / "pipelines/ingest/sql/clean.sql").write_text("select 1;\n")
    (root / "conf/base/parameters/ingest").mkdir()
    (root / "conf/base/parameters/ingest/extra.yml").write_text("extra: 1\n")
    made = run_invoke(root, "package", "pipelines.ingest")
    assert made.returncode == 0, made.stderr
    archive = root / "dist" / "ingest-0.1.0.tar.gz"

    kp = kedro_env.kedro_project(tmp_path / "kp", package="kproj")
    pulled = kedro_env.run_kedro(kedro, kp, "micropkg", "pull", str(archive), "--destination", "pipelines")
    assert pulled.returncode == 0, pulled.stdout + pulled.stderr
    assert "pulled and unpacked" in pulled.stdout

    code = kp / "src/kproj/pipelines/ingest"
    source = root / "src" / PKG / "pipelines/ingest"
    for name in ("nodes.py", "requirements.txt", "sql/clean.sql", "__init__.py"):
        assert (code / name).read_bytes() == (source / name).read_bytes(), name
    assert "from kproj.pipelines.ingest import nodes" in (code / "pipeline.py").read_text()
    assert not (code / "config").exists()
    # parameters in conf/base/parameters, byte for byte
    for name in ("ingest.yml", "ingest/extra.yml"):
        assert (kp / "conf/base/parameters" / name).read_bytes() == (root / "conf/base/parameters" / name).read_bytes()
    # tests beside the project's tests, imports pointing at the pulled module
    test_file = kp / "src/tests/pipelines/ingest/test_nodes.py"
    assert "from kproj.pipelines.ingest import nodes" in test_file.read_text()
    # requirements appended to the Kedro project's src/requirements.txt
    reqs = (kp / "src/requirements.txt").read_text()
    declared = [line.split("#")[0].strip() for line in (source / "requirements.txt").read_text().splitlines()]
    assert [r for r in declared if r]
    for req in filter(None, declared):
        assert req in reqs
    # nothing of ours leaked as a top-level `tests` package or a stray folder
    assert sorted(p.name for p in (kp / "src").iterdir()) == ["kproj", "requirements.txt", "tests"]
    # and the pulled code imports in Kedro's interpreter
    probe = subprocess.run(
        [
            str(kedro / "bin" / "python"),
            "-c",
            "import kproj.pipelines.ingest.nodes as n; print(n.normalise_column(' Area (km2) '))",
        ],
        cwd=kp / "src",
        capture_output=True,
        text=True,
    )
    assert probe.returncode == 0, probe.stderr
    assert probe.stdout.strip() == "area_km2"


def test_kedro_pulls_an_aliased_package_under_its_alias(project_copy, run_invoke, kedro, tmp_path):
    root = project_copy
    made = run_invoke(root, "package", "pipelines.ingest", "--alias", "cities")
    assert made.returncode == 0, made.stderr
    kp = kedro_env.kedro_project(tmp_path / "kp", package="kproj")
    pulled = kedro_env.run_kedro(kedro, kp, "micropkg", "pull", str(root / "dist/cities-0.1.0.tar.gz"))
    assert pulled.returncode == 0, pulled.stdout + pulled.stderr
    assert "from kproj.cities import nodes" in (kp / "src/kproj/cities/pipeline.py").read_text()
    assert (kp / "conf/base/parameters/cities.yml").read_bytes() == (
        root / "conf/base/parameters/ingest.yml"
    ).read_bytes()
    assert "from kproj.cities import nodes" in (kp / "src/tests/cities/test_nodes.py").read_text()
