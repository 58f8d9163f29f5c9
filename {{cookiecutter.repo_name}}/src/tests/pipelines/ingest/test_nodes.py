import re
from pathlib import Path

import duckdb
import pandas as pd
import pytest

from {{ cookiecutter.python_package }}.pipelines.ingest import nodes

COLUMNS = {"name": "string", "population": "int", "founded": "date"}


@pytest.fixture
def raw_csv(tmp_path):
    path = tmp_path / "raw.csv"
    path.write_text(
        " Name ,Population,Founded\n"
        "Lisbon,545796,1147-01-01\n"
        "Lisbon,545796,1147-01-01\n"
        "Porto,not a number,0868-01-01\n"
        ",100,2000-01-01\n"
        "Oslo,697010,1040-01-01\n"
    )
    return path


def test_extract_copies_plain_paths_and_file_urls(raw_csv, tmp_path):
    for source in (str(raw_csv), raw_csv.as_uri()):
        out = nodes.extract(source, tmp_path / "out" / "copy.csv")
        assert (tmp_path / "out" / "copy.csv").read_bytes() == raw_csv.read_bytes()
        assert out["bytes"] == raw_csv.stat().st_size


def test_extract_missing_file_is_a_clear_error_and_leaves_nothing(tmp_path):
    with pytest.raises(nodes.ExtractError, match="cannot read .*missing.csv"):
        nodes.extract(str(tmp_path / "missing.csv"), tmp_path / "out.csv")
    assert list(tmp_path.iterdir()) == []


def test_transform_cleans_types_and_counts(raw_csv):
    frame, stats = nodes.transform(raw_csv, COLUMNS, ["name", "population"])
    assert list(frame.columns) == ["name", "population", "founded"]
    assert list(frame["name"]) == ["Lisbon", "Oslo"]
    assert stats == {**stats, "rows_read": 5, "invalid": 2, "duplicates": 1, "rows_out": 2}
    assert str(frame["population"].dtype) == "Int64"


def test_integers_are_exact_and_only_whole_numbers_pass(tmp_path):
    """Plain integers keep every digit (above 2**53 too); "1e3" and "12.0" are whole numbers;
    fractions, infinities and values beyond int64 make the row invalid instead of failing the run."""
    path = tmp_path / "raw.csv"
    path.write_text(
        "name,population\n"
        "big,99999999999999999\n"
        "signed,+7\n"
        "negative,-12\n"
        "exponent,1e3\n"
        "point,12.0\n"
        "fraction,1.5\n"
        "infinite,inf\n"
        "huge,1e30\n"
        "words,many\n"
        "empty,\n"
    )
    frame, stats = nodes.transform(path, {"name": "string", "population": "int"}, ["name"])
    assert str(frame["population"].dtype) == "Int64"
    kept = dict(zip(frame["name"], frame["population"].astype(object), strict=True))
    assert kept == {
        "big": 99999999999999999,
        "signed": 7,
        "negative": -12,
        "exponent": 1000,
        "point": 12,
        "empty": pd.NA,
    }
    assert stats["invalid"] == 4  # fraction, infinite, huge, words


def test_drop_duplicates_is_pandas_own_on_awkward_values():
    """The fast path (a selective column first) keeps exactly the rows pandas' drop_duplicates keeps:
    missing values, -0.0 and 0.0, NaN, text, dates, booleans, in their first-seen order."""
    import numpy as np

    rng = np.random.default_rng(7)
    size = 4_000
    frame = pd.DataFrame(
        {
            "text": pd.array(rng.choice(["a", "b", None, "ç"], size), dtype="string"),
            "count": pd.array(rng.choice([1, 2, None], size), dtype="Int64"),
            "ratio": pd.array(rng.choice([0.0, -0.0, 1.5, None], size), dtype="Float64"),
            "raw": rng.choice([np.nan, 0.0, -0.0, 2.0], size),
            "when": rng.choice(np.array(["2024-01-01", "NaT", "1066-10-14"], dtype="datetime64[us]"), size),
            "flag": pd.array(rng.choice([True, False, None], size), dtype="boolean"),
        }
    )
    frame = pd.concat([frame, frame.sample(500, random_state=1)], ignore_index=True)
    expected = frame.drop_duplicates(ignore_index=True)
    fast = nodes.drop_duplicates(frame, min_rows=1)
    pd.testing.assert_frame_equal(fast, expected)
    assert len(expected) < len(frame)


def test_dates_of_any_year_are_kept(tmp_path):
    """Dates before 1677 and after 2262 (outside pandas' nanoseconds) parse like any other, on every pandas."""
    path = tmp_path / "raw.csv"
    path.write_text(
        "name,founded\n"
        "Hastings,1066-10-14\n"
        "Aachen,0800-12-25\n"
        "Rome,0753-04-21 12:30\n"
        "Colony,2300-01-01T08:00:00.5\n"
        "Leap,2024-02-29\n"
        "Impossible,1066-02-30\n"
        "Garbled,not a date\n"
        "Unknown,\n"
    )
    frame, stats = nodes.transform(path, {"name": "string", "founded": "date"}, ["name"])
    assert str(frame["founded"].dtype) == "datetime64[us]"
    assert stats["invalid"] == 2  # Impossible and Garbled; Unknown has no date, which is allowed
    founded = dict(zip(frame["name"], frame["founded"].to_numpy().astype(str), strict=True))
    assert founded == {
        "Hastings": "1066-10-14T00:00:00.000000",
        "Aachen": "0800-12-25T00:00:00.000000",
        "Rome": "0753-04-21T12:30:00.000000",
        "Colony": "2300-01-01T08:00:00.500000",
        "Leap": "2024-02-29T00:00:00.000000",
        "Unknown": "NaT",
    }


def test_old_dates_load_as_timestamps(tmp_path):
    path = tmp_path / "raw.csv"
    path.write_text("name,founded\nAachen,0800-12-25\nBerlin,1237-01-01\n")
    frame, _ = nodes.transform(path, {"name": "string", "founded": "date"}, ["name"])
    db = tmp_path / "out.duckdb"
    assert nodes.load(frame, db, "cities")["rows"] == 2
    with duckdb.connect(str(db)) as con:
        kind = con.execute("SELECT data_type FROM information_schema.columns WHERE column_name = 'founded'").fetchall()
        assert kind == [("TIMESTAMP",)]
        assert [str(r[0]) for r in con.execute("SELECT founded FROM cities ORDER BY name").fetchall()] == [
            "0800-12-25 00:00:00",
            "1237-01-01 00:00:00",
        ]


def test_load_replaces_the_table(tmp_path):
    db = tmp_path / "out.duckdb"
    nodes.load(pd.DataFrame({"a": [1, 2]}), db, "t")
    result = nodes.load(pd.DataFrame({"a": [3, 4, 5]}), db, "t")
    assert result["rows"] == 3
    with duckdb.connect(str(db)) as con:
        assert con.execute("select sum(a) from t").fetchall()[0][0] == 12


def test_failed_load_keeps_the_previous_table(tmp_path):
    db = tmp_path / "out.duckdb"
    nodes.load(pd.DataFrame({"a": [1, 2]}), db, "t")
    unloadable = pd.DataFrame({"a": [1 + 2j, 3j]})  # DuckDB has no complex type
    with pytest.raises(nodes.LoadError, match="previous table kept"):
        nodes.load(unloadable, db, "t")
    with duckdb.connect(str(db)) as con:
        assert con.execute("select a from t order by a").fetchall() == [(1,), (2,)]


def test_a_missing_key_names_the_pipelines_own_config_file():
    """Pulled under another name (invoke pull --alias), the message names that name's file."""
    from {{ cookiecutter.python_package }}.pipelines.ingest import pipeline

    name = re.escape(Path(__file__).parent.name)  # "ingest" here; the name it was pulled under elsewhere
    with pytest.raises(pipeline.ConfigError, match=rf"missing catalog key 'raw' \(conf/<env>/catalog/{name}\.yml\)"):
        pipeline.run({"source": "x.csv", "table": "t"}, {})


COLUMNS_KEY = "parameters key 'columns'"


@pytest.mark.parametrize(
    "params, catalog, message",
    [
        ({"required": "name"}, {}, "parameters key 'required': expected a list of column names, got a string"),
        ({"columns": ["name"]}, {}, f"{COLUMNS_KEY}: expected a mapping of column names to types, got a list"),
        ({"columns": {"name": ["string"]}}, {}, f"{COLUMNS_KEY}: expected a mapping of column names to types"),
        ({"timeout": "soon"}, {}, "parameters key 'timeout': expected a number, got a string"),
        ({"retries": 2.5}, {}, "parameters key 'retries': expected a whole number, got a number"),
        ({"table": {"name": "t"}}, {}, "parameters key 'table': expected a string, got a mapping"),
        ({}, {"raw": ["a.csv"]}, "catalog key 'raw': expected a string, got a list"),
        ({}, {"database": "../../far.duckdb"}, "catalog key 'database': '../../far.duckdb' leaves the project"),
    ],
)
def test_config_of_the_wrong_shape_is_one_line_naming_the_key(tmp_path, params, catalog, message):
    from {{ cookiecutter.python_package }}.pipelines.ingest import pipeline

    params = {"source": str(tmp_path / "missing.csv"), "table": "t", **params}
    catalog = {"raw": str(tmp_path / "raw.csv"), "database": str(tmp_path / "db.duckdb"), **catalog}
    with pytest.raises(pipeline.ConfigError) as caught:
        pipeline.run(params, catalog)
    assert str(caught.value).startswith(message) and "\n" not in str(caught.value)
    assert not (tmp_path / "db.duckdb").exists()


def test_numbers_from_environment_variables_are_read_as_numbers(tmp_path, raw_csv):
    from {{ cookiecutter.python_package }}.pipelines.ingest import pipeline

    params = {"source": str(raw_csv), "table": "t", "timeout": "30", "retries": " 2", "required": ["name"]}
    result = pipeline.run(params, {"raw": str(tmp_path / "raw2.csv"), "database": str(tmp_path / "db.duckdb")})
    assert result["load"]["rows"] == 3  # Lisbon (twice), Porto, Oslo; the row without a name dropped
