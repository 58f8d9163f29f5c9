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
