import re
import sys
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


def ingest(path, columns, required, step=None, table="t"):
    """transform + load into a DuckDB file beside the CSV: (the stats, the table's types, its rows as
    text in table order, as DuckDB spells them: Python's datetime has no year 0)."""
    database = path.with_suffix(".duckdb")
    with nodes.database(database) as con:
        stats = nodes.transform(con, path, columns, required, step=step)
        nodes.load(con, table)
    return stats, *table_of(database, table)


def table_of(database, table="t"):
    with duckdb.connect(str(database), read_only=True) as con:
        types = {name: kind for name, kind, *_ in con.execute(f'DESCRIBE "{table}"').fetchall()}
        rows = con.execute(f'SELECT COLUMNS(*)::VARCHAR FROM "{table}"').fetchall()
    return types, rows


def test_transform_cleans_types_and_counts(raw_csv):
    stats, types, rows = ingest(raw_csv, COLUMNS, ["name", "population"])
    assert types == {"name": "VARCHAR", "population": "BIGINT", "founded": "TIMESTAMP"}
    assert rows == [("Lisbon", "545796", "1147-01-01 00:00:00"), ("Oslo", "697010", "1040-01-01 00:00:00")]
    assert stats == {**stats, "rows_read": 5, "invalid": 2, "duplicates": 1, "rows_out": 2}


def test_integers_are_exact_and_only_whole_numbers_pass(tmp_path):
    """Plain integers keep every digit (above 2**53 too); "1e3" and "12.0" are whole numbers;
    fractions, infinities, values beyond int64 and "1_000" make the row invalid instead of failing the run."""
    path = tmp_path / "raw.csv"
    path.write_text(
        "name,population\n"
        "big,99999999999999999\n"
        "largest,9223372036854775807\n"
        "signed,+7\n"
        "negative,-12\n"
        "exponent,1e3\n"
        "point,12.0\n"
        "fraction,1.5\n"
        "infinite,inf\n"
        "huge,1e30\n"
        "beyond,9223372036854775808\n"
        "underscore,1_000\n"
        "words,many\n"
        "empty,\n"
        "marker,n/a\n"
    )
    stats, types, rows = ingest(path, {"name": "string", "population": "int"}, ["name"])
    assert types["population"] == "BIGINT"
    assert dict(rows) == {
        "big": "99999999999999999",
        "largest": "9223372036854775807",
        "signed": "7",
        "negative": "-12",
        "exponent": "1000",
        "point": "12",
        "empty": None,
        "marker": None,
    }
    assert stats["invalid"] == 6  # fraction, infinite, huge, beyond, underscore, words


def test_usual_and_other_spellings_of_one_value_type_alike(tmp_path):
    """The usual spelling of an int or a date ("7", "2024-01-05") is typed by a cast alone, the
    others by patterns: both give the same value, and a near miss is still judged as before."""
    path = tmp_path / "raw.csv"
    path.write_text(
        "name,count,day\n"
        "usual,7,2024-01-05\n"
        "zeros,007,2024-01-05 00:00:00\n"
        "signed,+7,2024-01-05T00:00\n"
        "spaced, 7,20240105\n"
        "whole,7.0,2024-01-05\n"
        "exponent,7e0,2024-01-05\n"
        "minus zero,-0,0001-01-01\n"
        "last day,-9223372036854775808,9999-12-31\n"
        "short month,7,2024-1-05\n"
        "five digit year,7,10000-01-01\n"
        "no such day,7,2023-02-29\n"
    )
    stats, types, rows = ingest(path, {"name": "string", "count": "int", "day": "date"}, ["name"])
    assert types == {"name": "VARCHAR", "count": "BIGINT", "day": "TIMESTAMP"}
    same = ("7", "2024-01-05 00:00:00")
    assert dict((name, (count, day)) for name, count, day in rows) == {
        "usual": same,
        "zeros": same,
        "signed": same,
        "spaced": same,
        "whole": same,
        "exponent": same,
        "minus zero": ("0", "0001-01-01 00:00:00"),
        "last day": ("-9223372036854775808", "9999-12-31 00:00:00"),
        "short month": same,
    }
    assert stats["invalid"] == 2  # a five-digit year and 2023-02-29 are no dates


def test_floats_booleans_and_text(tmp_path):
    path = tmp_path / "raw.csv"
    path.write_text(
        "name,ratio,flag,code\na,1.5,true,007\nb,-0.0,No,1.50\nc,inf,1,x\nd,NaN,YES,\ne,NAN,maybe, padded\nf,1_0,0,y\n"
    )
    columns = {"name": "string", "ratio": "float", "flag": "bool", "code": "string"}
    stats, types, rows = ingest(path, columns, ["name"])
    assert types == {"name": "VARCHAR", "ratio": "DOUBLE", "flag": "BOOLEAN", "code": "VARCHAR"}
    # "NaN" is a missing-value marker; "NAN" and "1_0" are no numbers; "maybe" is no boolean.
    assert rows == [
        ("a", "1.5", "true", "007"),
        ("b", "-0.0", "false", "1.50"),
        ("c", "inf", "true", "x"),
        ("d", None, "true", None),
    ]
    assert stats["invalid"] == 2


def test_drop_duplicates_is_pandas_own_on_awkward_values(tmp_path):
    """The rows that stay are exactly those pandas' drop_duplicates keeps, in the same order:
    missing values, -0.0 and 0.0, text, dates, booleans."""
    import numpy as np

    rng = np.random.default_rng(7)
    size = 4_000
    frame = pd.DataFrame(
        {
            "text": pd.array(rng.choice(["a", "b", None, "ç"], size), dtype="string"),
            "count": pd.array(rng.choice([1, 2, None], size), dtype="Int64"),
            "ratio": pd.array(rng.choice([0.0, -0.0, 1.5, None], size), dtype="Float64"),
            "when": rng.choice(np.array(["2024-01-01", "NaT", "1066-10-14"], dtype="datetime64[us]"), size),
            "flag": pd.array(rng.choice([True, False, None], size), dtype="boolean"),
        }
    )
    frame = pd.concat([frame, frame.sample(500, random_state=1)], ignore_index=True)
    expected = frame.drop_duplicates(ignore_index=True)
    with duckdb.connect(str(tmp_path / "dupes.duckdb")) as con:
        con.execute("CREATE TABLE t AS SELECT * FROM frame")
        con.execute("CREATE TABLE e AS SELECT * FROM expected")
        dropped = nodes.drop_duplicates(con, "t")
        kept, wanted = (con.execute(f"SELECT COLUMNS(*)::VARCHAR FROM {t}").fetchall() for t in "te")
    assert dropped == len(frame) - len(expected) > 0
    assert kept == wanted


@pytest.mark.parametrize("step", [None, lambda frame: frame], ids=["duckdb", "through-a-pandas-step"])
def test_dates_of_any_year_are_kept(tmp_path, step):
    """Dates before 1677 and after 2262 (outside pandas' nanoseconds), and the spellings DuckDB does
    not read itself (a year alone, 10661014, a UTC offset), parse as pandas parses them."""
    path = tmp_path / "raw.csv"
    path.write_text(
        "name,founded\n"
        "Hastings,1066-10-14\n"
        "Aachen,0800-12-25\n"
        "Rome,0753-04-21 12:30\n"
        "Colony,2300-01-01T08:00:00.5\n"
        "Leap,2024-02-29\n"
        "Year,1066\n"
        "Compact,10661014\n"
        "Offset,2024-01-01T10:00:00+02:00\n"
        "Impossible,1066-02-30\n"
        "Garbled,not a date\n"
        "Unknown,\n"
    )
    stats, types, rows = ingest(path, {"name": "string", "founded": "date"}, ["name"], step=step)
    assert types["founded"] == "TIMESTAMP"
    assert stats["invalid"] == 2  # Impossible and Garbled; Unknown has no date, which is allowed
    assert dict(rows) == {
        "Hastings": "1066-10-14 00:00:00",
        "Aachen": "0800-12-25 00:00:00",
        "Rome": "0753-04-21 12:30:00",
        "Colony": "2300-01-01 08:00:00.5",
        "Leap": "2024-02-29 00:00:00",
        "Year": "1066-01-01 00:00:00",
        "Compact": "1066-10-14 00:00:00",
        "Offset": "2024-01-01 08:00:00",
        "Unknown": None,
    }


@pytest.mark.parametrize("arrow", [True, False], ids=["through-arrow", "without-pyarrow"])
def test_a_pandas_step_sees_typed_chunks(raw_csv, monkeypatch, arrow):
    """step= gets the valid rows as DataFrames of CHUNK_ROWS rows, with pandas' nullable types, and
    what it returns is loaded (duplicates dropped after it); also where pyarrow cannot load."""
    monkeypatch.setattr(nodes, "CHUNK_ROWS", 2)
    if not arrow:
        monkeypatch.setitem(sys.modules, "pyarrow", None)  # import pyarrow raises ImportError
    seen = []

    def step(frame):
        seen.append((len(frame), {name: str(kind) for name, kind in frame.dtypes.items()}))
        return frame.assign(big=frame["population"] > 600_000)

    stats, types, rows = ingest(raw_csv, COLUMNS, ["name", "population"], step=step)
    assert types == {"name": "VARCHAR", "population": "BIGINT", "founded": "TIMESTAMP", "big": "BOOLEAN"}
    assert rows == [
        ("Lisbon", "545796", "1147-01-01 00:00:00", "false"),
        ("Oslo", "697010", "1040-01-01 00:00:00", "true"),
    ]
    assert stats == {**stats, "rows_read": 5, "invalid": 2, "duplicates": 1, "rows_out": 2}
    kinds = {"name": "string", "population": "Int64", "founded": "datetime64[us]"}
    assert [size for size, _ in seen] == [2, 0, 1] and all(dtypes == kinds for _, dtypes in seen)


def test_a_failed_transform_keeps_the_previous_table(raw_csv, tmp_path):
    database = tmp_path / "out.duckdb"
    with nodes.database(database) as con:
        nodes.transform(con, raw_csv, COLUMNS, ["name"])
        nodes.load(con, "cities")
    before = table_of(database, "cities")
    broken = tmp_path / "broken.csv"
    broken.write_text("name,population,founded\nLisbon,1,2000-01-01\nPorto,2,2000-01-01,extra\n")
    with pytest.raises(nodes.TransformError, match=r"broken.csv: not a readable CSV: .*Line: 3"):
        with nodes.database(database) as con:
            nodes.transform(con, broken, COLUMNS, ["name"])
            nodes.load(con, "cities")
    assert table_of(database, "cities") == before
    with pytest.raises(nodes.TransformError, match="not a readable CSV"):  # and no file where there was none
        with nodes.database(tmp_path / "new.duckdb") as con:
            nodes.transform(con, broken, COLUMNS, ["name"])
    assert not (tmp_path / "new.duckdb").exists()


def test_load_replaces_the_table_or_keeps_it(raw_csv, tmp_path):
    database = tmp_path / "out.duckdb"
    for required, kept in ((["name"], 2), ([], 3)):
        with nodes.database(database) as con:
            nodes.transform(con, raw_csv, COLUMNS, required)
            assert nodes.load(con, "cities")["rows"] == kept
        assert len(table_of(database, "cities")[1]) == kept
    with duckdb.connect(str(database)) as con:
        con.execute("CREATE VIEW v AS SELECT 1 AS one")
    with pytest.raises(nodes.LoadError, match="previous table kept"):  # a view of that name: no table replaces it
        with nodes.database(database) as con:
            nodes.transform(con, raw_csv, COLUMNS, [])
            nodes.load(con, "v")
    assert table_of(database, "v")[1] == [("1",)]
    assert len(table_of(database, "cities")[1]) == 3


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
        ({"columns": dict(name=["string"])}, {}, f"{COLUMNS_KEY}: expected a mapping of column names to types"),
        ({"timeout": "soon"}, {}, "parameters key 'timeout': expected a number, got a string"),
        ({"retries": 2.5}, {}, "parameters key 'retries': expected a whole number, got a number"),
        ({"table": dict(name="t")}, {}, "parameters key 'table': expected a string, got a mapping"),
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
