"""The example pipeline `ingest` on the lowest and the highest pandas its requirements allow.

pandas before 3.0 parses strings to nanoseconds, which hold no date before 1677-09-21: the sample's
cities were all founded earlier, and a pulled package that pulls pandas down must not turn them
into invalid rows. Each side gets its own virtualenv (no piperack: only what the pipeline needs),
cached under the kit cache (.cache/venvs/example-pandas-<version>-<hash>) by the exact versions the
resolver picks, so a new release gets a new one:

- lowest: pandas at the release series of its floor in requirements.in (``pandas>=2.1`` ->
  ``pandas==2.1.*``, the newest patch with a wheel), ``numpy<2`` while that pandas predates numpy 2,
  the rest as the resolver picks them: what `invoke build-reqs` gives when a pulled package caps pandas;
- floors: every requirement at the release series of its floor (duckdb 1.0, pyarrow 15, ...);
- highest: requirements.in as it is (the newest of everything).

In each: the project's own tests, then `python -m <pkg> run --pipeline ingest` on the sample and on
a file of date variants; the DuckDB tables (rows and column types) must be the same on every side.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from scripts import kitlib

PACKAGE = "demo_project"
NUMPY_2_SINCE = "2.2.2"  # the first pandas built against numpy 2

DATE_VARIANTS = {  # city -> founded, as a CSV may spell it
    "Hastings": "1066-10-14",
    "Aachen": "0800-12-25",
    "Rome": "0753-04-21 12:30",
    "Zero": "0000-01-01",
    "Caesar": "-0044-03-15",
    "Compact": "10661014",
    "Year": "1066",
    "Month": "1066-10",
    "Fraction": "1066-10-14T12:30:15.123456",
    "Nanos": "1066-10-14T12:30:15.123456789",
    "Edge before": "1677-09-21",
    "Edge after": "2262-04-12",
    "Far": "9999-12-31T23:59:59",
    "Modern": "2024-02-29T08:00:00.5",
    "Impossible": "1066-02-30",
    "Garbled": "not a date",
    "Empty": "",
}
DATES = "City Name,Country,Population,Area (km2),Founded\n" + "".join(
    f"{city},Somewhere,1000,1.5,{founded}\n" for city, founded in DATE_VARIANTS.items()
)
DATES_PARAMS = "source: samples/dates.csv\ntable: dates\n"
DUMP = """
import json, sys
import duckdb, numpy, pandas
con = duckdb.connect(sys.argv[1], read_only=True)
out = {"pandas": pandas.__version__, "numpy": numpy.__version__, "duckdb": duckdb.__version__}
for table in sys.argv[2:]:
    types = con.execute("SELECT column_name, data_type FROM information_schema.columns WHERE table_name = ? "
                        "ORDER BY ordinal_position", [table]).fetchall()
    # As DuckDB spells them: Python's datetime has no year 0 or before.
    rows = con.execute(f'SELECT COLUMNS(*)::VARCHAR FROM "{table}" ORDER BY ALL').fetchall()
    out[table] = {"types": [list(t) for t in types], "rows": [[str(v) for v in row] for row in rows]}
print(json.dumps(out))
"""


def requirements(project: Path) -> list:
    from packaging.requirements import Requirement

    lines = (project / "requirements.in").read_text(encoding="utf-8").splitlines()
    return [Requirement(line.split("#", 1)[0].strip()) for line in lines if line.split("#", 1)[0].strip()]


def floor(requirement):
    """The version a ``>=`` floor names, or None."""
    from packaging.version import Version

    floors = [Version(spec.version) for spec in requirement.specifier if spec.operator == ">="]
    return max(floors) if floors else None


def floor_pin(requirement) -> list[str]:
    """The requirement pinned to the release series its floor names (``>=2.1`` -> ``==2.1.*``)."""
    from packaging.version import Version

    low = floor(requirement)
    assert low is not None, f"requirements.in: {requirement} has no floor to test"
    pins = [f"{requirement.name}=={'.'.join(map(str, low.release))}.*"]
    if requirement.name == "pandas" and low < Version(NUMPY_2_SINCE):
        pins.append("numpy<2")
    return pins


def side_pins(project: Path, side: str) -> list[str]:
    pins = []
    for requirement in requirements(project):
        if side == "floors" or (side == "lowest" and requirement.name == "pandas"):
            pins += floor_pin(requirement)
        else:
            pins.append(str(requirement))
    return pins


def resolve(pins: list[str]) -> list[str]:
    """The exact versions (``name==x.y.z``) the resolver picks today for ``pins`` and pytest, wheels only."""
    compiled = subprocess.run(
        [
            *kitlib.uv(),
            "pip",
            "compile",
            "-",
            "--quiet",
            "--no-header",
            "--no-annotate",
            "--only-binary",
            ":all:",
            "--python",
            sys.executable,
        ],
        input="\n".join([*pins, "pytest>=8"]) + "\n",
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert compiled.returncode == 0, f"cannot resolve {pins}: {compiled.stderr[-2000:]}"
    return [line.strip() for line in compiled.stdout.splitlines() if "==" in line]


def example_venv(pins: list[str]) -> Path:
    """A virtualenv holding exactly what ``pins`` resolve to, cached by those versions (a new pandas
    release makes a new one)."""
    resolved = resolve(pins)
    pandas = next(line for line in resolved if line.lower().startswith("pandas==")).partition("==")[2]
    digest = hashlib.sha256(json.dumps([resolved, sys.version]).encode()).hexdigest()[:12]
    return kitlib.cached_venv(
        kitlib.CACHE / "venvs" / f"example-pandas-{pandas}-{digest}",
        sys.executable,
        ["--only-binary", ":all:", "--no-deps", *resolved],
    )


def run(python: Path, root: Path, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in {"PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME"}}
    env |= {"PYTHONPATH": str(root / "src"), "PYTHONDONTWRITEBYTECODE": "1"}
    return subprocess.run([str(python), *args], cwd=root, env=env, capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def example(tmp_path_factory) -> Path:
    return kitlib.bake(tmp_path_factory.mktemp("example-pandas"))


@pytest.fixture(scope="module")
def outcome(example, tmp_path_factory):
    """outcome(label) -> the DuckDB tables the pipeline wrote in that side's virtualenv (run once)."""
    done = {}

    def _outcome(label: str) -> dict:
        if label in done:
            return done[label]
        python = example_venv(side_pins(example, label)) / "bin" / "python"
        root = tmp_path_factory.mktemp(label) / example.name
        shutil.copytree(example, root)
        (root / "samples" / "dates.csv").write_text(DATES)

        tests = run(python, root, "-m", "pytest", "-q", "-p", "no:cacheprovider", "src/tests")
        assert tests.returncode == 0, (
            f"{label}: the project's tests failed\n{tests.stdout[-3000:]}{tests.stderr[-2000:]}"
        )
        ran = run(python, root, "-m", PACKAGE, "run", "--pipeline", "ingest")
        assert ran.returncode == 0, f"{label}: {ran.stderr[-3000:]}"
        (root / "conf" / "local" / "parameters").mkdir(parents=True, exist_ok=True)
        (root / "conf" / "local" / "parameters" / "ingest.yml").write_text(DATES_PARAMS)
        dated = run(python, root, "-m", PACKAGE, "run", "--pipeline", "ingest")
        assert dated.returncode == 0, f"{label}: {dated.stderr[-3000:]}"
        dumped = run(python, root, "-c", DUMP, "data/ingest.duckdb", "cities", "dates")
        assert dumped.returncode == 0, dumped.stderr
        done[label] = json.loads(dumped.stdout) | {"log": ran.stderr + dated.stderr}
        return done[label]

    return _outcome


SIDES = ["lowest", "floors", "highest"]


def test_sides_follow_requirements_in(example):
    from packaging.requirements import Requirement

    lowest, floors = side_pins(example, "lowest"), side_pins(example, "floors")
    assert "pandas==2.1.*" in lowest and "numpy<2" in lowest and "duckdb>=1.0" in lowest
    assert {"pandas==2.1.*", "numpy<2", "duckdb==1.0.*", "pyarrow==15.*"} <= set(floors)
    assert side_pins(example, "highest") == [str(r) for r in requirements(example)]
    # The pipeline's own requirements (what `invoke package` ships) allow the same pandas.
    own = (example / "src" / PACKAGE / "pipelines" / "ingest" / "requirements.txt").read_text().splitlines()
    pandas = [Requirement(line) for line in own if line.startswith("pandas")]
    assert [str(r.specifier) for r in pandas] == [str(r.specifier) for r in requirements(example) if r.name == "pandas"]


@pytest.mark.parametrize("label", SIDES)
def test_ingest_keeps_every_city_on_the_allowed_pandas(outcome, example, label):
    result = outcome(label)
    if label == "highest":
        assert int(result["pandas"].split(".")[0]) >= 3, result["pandas"]
    else:
        wanted = next(p for p in side_pins(example, label) if p.startswith("pandas==")).removeprefix("pandas==")
        assert result["pandas"].startswith(wanted.rstrip("*")), result["pandas"]
        assert result["numpy"].startswith("1."), result["numpy"]
    if label == "floors":
        assert result["duckdb"].startswith("1.0."), result["duckdb"]
    assert "transform: 27 rows read, 3 invalid dropped, 2 duplicates dropped, 22 kept" in result["log"]
    cities = result["cities"]
    assert dict(cities["types"])["founded"] == "TIMESTAMP"
    assert len(cities["rows"]) == 22
    founded = {row[0]: row[-1] for row in cities["rows"]}
    assert founded["Barcelona"] == "0015-01-01 00:00:00"  # before 1677: out of pandas 2's nanoseconds
    assert founded["Rome"] == "0753-04-21 00:00:00"
    assert founded["Helsinki"] == "1550-06-12 00:00:00"
    dates = {row[0]: row[-1] for row in result["dates"]["rows"]}
    assert dict(result["dates"]["types"])["founded"] == "TIMESTAMP"
    assert dates["Hastings"] == "1066-10-14 00:00:00" and dates["Aachen"] == "0800-12-25 00:00:00"
    assert dates["Rome"] == "0753-04-21 12:30:00"
    assert dates["Fraction"] == "1066-10-14 12:30:15.123456"
    assert dates["Far"] == "9999-12-31 23:59:59"
    assert dates["Empty"] == "None"  # a missing date is allowed: founded is not required
    assert "Impossible" not in dates and "Garbled" not in dates


def test_every_side_loads_identical_tables(outcome):
    first, *others = [outcome(side) for side in SIDES]
    for other in others:
        for table in ("cities", "dates"):
            assert other[table]["types"] == first[table]["types"], (other["pandas"], table)
            assert other[table]["rows"] == first[table]["rows"], (other["pandas"], table)
