"""The three steps of the ingest pipeline. Each returns what it did, for logging and tests.

- extract: stream the source (URL or path) to a file, replaced atomically;
- transform: DuckDB reads that CSV, types and checks every value, and drops invalid rows and
  duplicates into a staging table. It streams, so memory stays flat however big the file is;
  pandas takes over for your own per-chunk step (``step=``), a DataFrame of CHUNK_ROWS rows at a time;
- load: the staging table replaces the old one, in the same transaction.

Earlier versions read the whole file with pandas: 3 GB of memory for a 10-million-row CSV.
"""

from __future__ import annotations

import csv
import os
import re
import shutil
import sys
import tempfile
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import unquote, urlparse

CHUNK = 1024 * 1024
RETRY_STATUSES = (500, 502, 503, 504)
DEADLINE = 600.0  # seconds for a whole download, however slowly the bytes come
MAX_BYTES = 2 * 1024**3
TYPES = {"string", "int", "float", "date", "bool"}
# An ISO 8601 date, optionally with a time (no UTC offset): the shape _dates() parses itself.
ISO_DATE = r"-?[0-9]{4}(?:-[0-9]{2}(?:-[0-9]{2}(?:[T ][0-9]{2}(?::[0-9]{2}(?::[0-9]{2}(?:\.[0-9]+)?)?)?)?)?)?"
# The date spellings every DuckDB from 1.0 reads exactly as pandas does (any year, seconds if a time,
# at most microseconds, no UTC offset); the others ("1066", "10661014", "12:30", "+02:00") go to pandas.
DUCKDB_DATE = r"-?[0-9]{4}-[0-9]{2}-[0-9]{2}(?:[T ](?:[01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](?:\.[0-9]{1,6})?)?"
# Fields that are missing values, not invalid ones: pandas' read_csv defaults.
# fmt: off
NA_VALUES = ("", "#N/A", "#N/A N/A", "#NA", "-1.#IND", "-1.#QNAN", "-NaN", "-nan", "1.#IND", "1.#QNAN", "<NA>", "N/A",
             "NA", "NULL", "NaN", "None", "n/a", "nan", "null")
# fmt: on
# A date-time that ends with a UTC offset ("...T10:00+02:00", "...Z").
OFFSET = r"[T ][0-9]{2}:[0-9]{2}.*(?:Z|[+-][0-9]{2}(?::?[0-9]{2})?)$"
CHUNK_ROWS = 100_000  # rows per DataFrame handed to a pandas step
STAGING = "_ingest_staging"
# DuckDB's working memory: beyond it, it spills to a folder beside the database file. At 10 million
# rows this halves the peak (1.2 GB without a limit) at the same speed.
MEMORY_LIMIT = "500MB"
# The first and last microsecond a nanosecond datetime can hold (pandas < 3 parses strings to those).
NS_RANGE = ("1677-09-21T00:12:43.145225", "2262-04-11T23:47:16.854775")


class ExtractError(Exception):
    pass


class TransformError(Exception):
    pass


class LoadError(Exception):
    pass


def _atomic_target(dest: Path):
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".part", dir=dest.parent)
    return os.fdopen(fd, "wb"), Path(tmp)


def _session(retries: int, backoff: float):
    import requests
    from requests.adapters import HTTPAdapter
    from urllib3.util.retry import Retry

    retry = Retry(
        total=retries,
        connect=retries,
        read=retries,
        status=retries,
        backoff_factor=backoff,
        status_forcelist=RETRY_STATUSES,
        allowed_methods=frozenset({"GET"}),
        raise_on_status=False,
    )
    session = requests.Session()
    session.mount("http://", HTTPAdapter(max_retries=retry))
    session.mount("https://", HTTPAdapter(max_retries=retry))
    return session


def _download(
    url: str, out, timeout: float, retries: int, backoff: float, deadline: float = DEADLINE, max_bytes: int = MAX_BYTES
) -> None:
    """Stream ``url`` into ``out``. A download that is cut short never passes for a whole file: the
    Content-Length is checked, and without one (nor chunked encoding, which marks its own end) the
    body must end with a line break, as a whole CSV does."""
    import requests

    try:
        with _session(retries, backoff) as session:
            with session.get(url, stream=True, timeout=timeout) as response:
                if response.status_code >= 400:
                    retried = f" after {retries} retries" if response.status_code in RETRY_STATUSES else ""
                    raise ExtractError(f"cannot download {url}: HTTP {response.status_code} {response.reason}{retried}")
                ends = time.monotonic() + deadline
                size, last = 0, b""
                for chunk in response.iter_content(CHUNK):
                    size += len(chunk)
                    if size > max_bytes:
                        raise ExtractError(f"cannot download {url}: larger than {max_bytes} bytes (max_bytes)")
                    if time.monotonic() > ends:
                        raise ExtractError(f"cannot download {url}: took longer than {deadline:g} s (deadline)")
                    out.write(chunk)
                    last = chunk[-1:] or last
                length = response.headers.get("Content-Length", "")
                chunked = "chunked" in response.headers.get("Transfer-Encoding", "").lower()
                encoded = response.headers.get("Content-Encoding", "identity").lower() not in {"", "identity"}
                if length.isdigit() and not encoded and size != int(length):
                    raise ExtractError(f"cannot download {url}: got {size} of {length} bytes (cut short)")
                if not length and not chunked and size and last not in {b"\n", b"\r"}:
                    raise ExtractError(
                        f"cannot download {url}: it may be cut short (no Content-Length, and it does not end "
                        "with a line break); the table is left as it was"
                    )
    except requests.exceptions.ChunkedEncodingError:  # urllib3 reads fewer bytes than announced
        raise ExtractError(f"cannot download {url}: the connection closed early (cut short)") from None
    except requests.exceptions.RetryError:
        raise ExtractError(f"cannot download {url}: server errors persisted after {retries} retries") from None
    except requests.exceptions.Timeout:
        raise ExtractError(f"cannot download {url}: timed out after {timeout:g} s") from None
    except requests.exceptions.ConnectionError:
        raise ExtractError(f"cannot download {url}: connection failed after {retries} retries") from None
    except requests.exceptions.RequestException as exc:
        raise ExtractError(f"cannot download {url}: {type(exc).__name__}") from None


def extract(
    source: str,
    dest: str | Path,
    timeout: float = 30,
    retries: int = 3,
    backoff: float = 0.5,
    deadline: float = DEADLINE,
    max_bytes: int = MAX_BYTES,
) -> dict:
    """Fetch ``source`` (http(s) URL, file:// URL or path) to ``dest``, streamed, replacing it atomically."""
    started = time.perf_counter()
    dest = Path(dest)
    scheme = urlparse(str(source)).scheme.lower()
    out, tmp = _atomic_target(dest)
    try:
        with out:
            if scheme in {"http", "https"}:
                _download(str(source), out, timeout, retries, backoff, deadline, max_bytes)
            else:
                path = Path(unquote(urlparse(source).path)) if scheme == "file" else Path(source)
                if scheme not in {"", "file"} and not re.match(r"^[a-zA-Z]$", scheme):
                    raise ExtractError(
                        f"cannot read {source}: unsupported scheme {scheme!r} (use http, https, file or a path)"
                    )
                try:
                    with path.open("rb") as src:
                        shutil.copyfileobj(src, out, CHUNK)
                except OSError as exc:
                    raise ExtractError(f"cannot read {source}: {exc.strerror}") from None
        os.replace(tmp, dest)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return {"bytes": dest.stat().st_size, "path": str(dest), "seconds": time.perf_counter() - started}


def normalise_column(name: str) -> str:
    """'  Area (km2) ' → 'area_km2'"""
    return re.sub(r"[^0-9a-z]+", "_", str(name).strip().lower()).strip("_")


@contextmanager
def database(path: str | Path):
    """A connection to the DuckDB file, inside one transaction: nothing transform() stages is
    visible until load() commits, and a failure anywhere leaves the file as it was (and no file
    where there was none)."""
    import duckdb

    path = Path(path)
    existed = path.exists()
    path.parent.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect(str(path))
    try:
        con.execute("SET enable_progress_bar = false").fetchall()  # keep stdout for the logs
        con.execute(f"SET memory_limit = '{MEMORY_LIMIT}'").fetchall()
        con.begin()
        yield con
    except BaseException:
        con.close()
        if not existed:
            for leftover in (path, path.with_name(path.name + ".wal")):
                leftover.unlink(missing_ok=True)
        raise
    con.close()


def transform(con, raw_path: str | Path, columns: dict, required: list, step=None) -> dict:
    """Clean the CSV into the staging table: normalised names, typed columns, invalid rows and
    duplicates dropped and counted.

    ``columns`` maps normalised names to string/int/float/date/bool; those columns are kept, in that
    order (with none, every column is kept, typed as DuckDB guesses). Empty fields (and the usual
    markers such as "n/a") are missing values. A row is invalid when a required column is missing or
    a typed value is present but does not parse. ``step``, if given, is your own pandas function:
    it gets the valid rows CHUNK_ROWS at a time as a DataFrame and returns the rows to keep.
    """
    started = time.perf_counter()
    names = _header(raw_path)
    unknown = {k: v for k, v in columns.items() if v not in TYPES}
    if unknown:
        raise TransformError(f"unknown column types {unknown} (use one of {sorted(TYPES)})")
    missing = [c for c in columns if c not in names]
    if missing:
        raise TransformError(f"{raw_path}: missing columns {missing} (found {names})")
    missing_required = [c for c in required if c not in (columns or names)]
    if missing_required:
        raise TransformError(f"{raw_path}: required columns {missing_required} not found")
    query = _typed_rows(raw_path, names, columns, required)
    dates = [name for name, kind in columns.items() if kind == "date"]
    try:
        if step is None:
            _with_progress(con, raw_path, f'CREATE OR REPLACE TABLE "{STAGING}" AS {query}')
            _staged_dates(con, dates)
            rows_read, invalid = con.execute(f'SELECT count(*), count(*) FILTER (_invalid) FROM "{STAGING}"').fetchone()
            con.execute(f'DELETE FROM "{STAGING}" WHERE _invalid').fetchall()
            for name in ["_invalid", *(f"_text_{name}" for name in dates)]:
                con.execute(f'ALTER TABLE "{STAGING}" DROP COLUMN "{name}"').fetchall()
        else:
            rows_read, invalid = _stage_through(con, query, dates, step)
        duplicates = drop_duplicates(con, STAGING)
    except Exception as exc:  # DuckDB's errors: an unreadable file, a row with too many fields
        if type(exc).__module__.partition(".")[0] not in {"duckdb", "_duckdb"}:
            raise
        lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
        detail = "; ".join(line for line in lines[:3] if not line.startswith("Possible fixes"))
        what = "not a readable CSV" if "CSV" in detail or "unicode" in detail.lower() else "cannot transform it"
        raise TransformError(f"{raw_path}: {what}: {detail}") from None
    return {
        "rows_read": rows_read,
        "invalid": invalid,
        "duplicates": duplicates,
        "rows_out": rows_read - invalid - duplicates,
        "seconds": time.perf_counter() - started,
    }


def _header(raw_path) -> list:
    """The normalised column names, as pandas names them (a repeated "x" becomes "x.1", then x_1)."""
    try:
        with open(raw_path, newline="", encoding="utf-8-sig") as f:
            header = next(csv.reader(f, skipinitialspace=True), [])
    except (UnicodeDecodeError, csv.Error) as exc:
        raise TransformError(f"{raw_path}: not a readable CSV: {exc}") from None
    if not header:
        raise TransformError(f"{raw_path}: not a readable CSV: No columns to parse from file")
    seen, names = {}, []
    for name in header:
        count = seen.get(name, 0)
        seen[name] = count + 1
        names.append(normalise_column(f"{name}.{count}" if count else name))
    return names


def _sql_text(value) -> str:
    return "'" + str(value).replace("'", "''") + "'"


def _typed_rows(raw_path, names: list, columns: dict, required: list) -> str:
    """The SELECT that reads the CSV and types it: one row per CSV row, in file order, with a
    column ``_invalid`` (a typed value that does not parse, or a required one missing), and for each
    date column a ``_text_<name>`` holding the spellings left to pandas (_pandas_dates)."""
    nullstr = "[" + ", ".join(_sql_text(v) for v in NA_VALUES) + "]"  # DuckDB's reader drops them fastest
    if not columns:  # every column, as DuckDB types it
        quoted = ", ".join(_sql_text(n) for n in names)
        source = f"read_csv({_sql_text(raw_path)}, header = true, names = [{quoted}], nullstr = {nullstr}, "
        source += "null_padding = true)"
        bad = " OR ".join(f'"{name}" IS NULL' for name in required) or "false"
        return f"SELECT *, {bad} AS _invalid FROM {source}"
    # Every field as text, typed below with pandas' rules rather than DuckDB's guesses.
    fields = "{" + ", ".join(f"'c{i}': 'VARCHAR'" for i in range(len(names))) + "}"
    source = f"read_csv({_sql_text(raw_path)}, header = true, columns = {fields}, auto_detect = false, "
    source += f"delim = ',', quote = '\"', escape = '\"', null_padding = true, nullstr = {nullstr})"
    # A field starting with spaces loses them (pandas' skipinitialspace), then may be a marker ("  n/a").
    na = _sql_text("|".join(re.escape(v) for v in NA_VALUES))  # not IN (...): DuckDB makes a long one a join
    spaced = "CASE WHEN regexp_full_match(ltrim(c{i}), {na}) THEN NULL ELSE ltrim(c{i}) END"
    texts = ", ".join(
        f"CASE WHEN starts_with(c{i}, ' ') THEN {spaced.format(i=i, na=na)} ELSE c{i} END AS t{i}"
        for i in sorted({names.index(name) for name in columns})
    )
    text = {name: f"t{names.index(name)}" for name in columns}
    values, bad = [], []
    for name, kind in columns.items():
        values.append(f'{_typed(kind, text[name])} AS "{name}"')
        later = ""
        if kind == "date":  # a spelling DuckDB leaves to pandas is judged once pandas has read it
            odd = f"NOT {_fast_date(text[name])} AND regexp_matches({text[name]}, '^-?[0-9]')"
            plain = _plain("date", text[name])
            values.append(f'CASE WHEN {plain} THEN NULL WHEN {odd} THEN {text[name]} END AS "_text_{name}"')
            later = f' AND "_text_{name}" IS NULL'
        if kind != "string":
            bad.append(f'("{name}" IS NULL AND {text[name]} IS NOT NULL{later})')
        if name in required:
            bad.append(f'("{name}" IS NULL{later})')
    kept = ", ".join(f'"{name}"' for name in columns) + "".join(
        f', "_text_{name}"' for name, kind in columns.items() if kind == "date"
    )
    return (
        f"SELECT {kept}, {' OR '.join(bad) or 'false'} AS _invalid FROM "
        f"(SELECT {', '.join(values)}, {', '.join(text.values())} FROM (SELECT {texts} FROM {source}))"
    )


def _fast_date(text: str) -> str:
    return f"regexp_full_match({text}, {_sql_text(DUCKDB_DATE)})"


def _plain(kind: str, text: str) -> str:
    """SQL true where ``text`` is the usual spelling of an int or a date: the very text DuckDB writes
    back for the value it casts ("123", "2024-01-31"). Those are typed by the cast alone, and the
    patterns below run only on the other spellings (the cast is several times faster)."""
    if kind == "int":
        return f"CAST(TRY_CAST({text} AS BIGINT) AS VARCHAR) = {text}"
    return f"(length({text}) = 10 AND CAST(TRY_CAST({text} AS DATE) AS VARCHAR) = {text})"


def _typed(kind: str, text: str) -> str:
    """SQL for the column ``text`` as ``kind``; NULL where a value does not parse. The same values
    parse as with pandas: integers exactly (a whole number such as "1e3" or "12.0" too, within
    int64), floats as to_numeric reads them, dates of any year, booleans from true/false/yes/no/1/0."""
    number = f"(CASE WHEN strpos({text}, '_') = 0 THEN TRY_CAST({text} AS DOUBLE) END)"  # "1_000" is no number
    if kind == "int":
        whole = f"isfinite({number}) AND {number} = trunc({number}) AND abs({number}) < 9223372036854775808.0"
        return (
            f"CASE WHEN {_plain(kind, text)} THEN TRY_CAST({text} AS BIGINT) "
            f"WHEN regexp_full_match({text}, '[+-]?[0-9]+ *') THEN TRY_CAST({text} AS BIGINT) "
            f"WHEN {whole} THEN CAST({number} AS BIGINT) END"
        )
    if kind == "float":
        return f"CASE WHEN NOT isnan({number}) THEN {number} END"
    if kind == "date":
        return (
            f"CASE WHEN {_plain(kind, text)} THEN CAST(TRY_CAST({text} AS DATE) AS TIMESTAMP) "
            f"WHEN {_fast_date(text)} THEN TRY_CAST({text} AS TIMESTAMP) END"
        )
    if kind == "bool":
        spelled = "WHEN 'true' THEN true WHEN 'yes' THEN true WHEN '1' THEN true"
        spelled += " WHEN 'false' THEN false WHEN 'no' THEN false WHEN '0' THEN false"
        return f"CASE lower({text}) {spelled} END"
    return text


def _staged_dates(con, dates: list) -> None:
    """Fill the date columns of the staging table where DuckDB left the spelling to pandas (a year
    alone, 10661014, a UTC offset...), each distinct spelling read once; rows whose date pandas
    cannot read either become invalid. Nothing to do, and pandas not even loaded, on most files."""
    for name in dates:
        odd = f'"_text_{name}"'
        found = con.execute(f'SELECT DISTINCT {odd} FROM "{STAGING}" WHERE {odd} IS NOT NULL').fetchall()
        spellings = [row[0] for row in found]
        if not spellings:
            continue
        import pandas as pd

        ingest_spellings = pd.DataFrame({"spelling": spellings, "value": _pandas_dates(spellings)})
        con.register("ingest_spellings", ingest_spellings)
        con.execute(
            f'UPDATE "{STAGING}" SET "{name}" = s.value, _invalid = _invalid OR s.value IS NULL '
            f"FROM ingest_spellings AS s WHERE {odd} = s.spelling"
        ).fetchall()
        con.unregister("ingest_spellings")


def _pandas_dates(spellings):
    """Date spellings (a list of text) as pandas reads them, those with a UTC offset as UTC: a
    numpy array of microsecond datetimes, NaT where a spelling is no date."""
    import numpy as np
    import pandas as pd

    series = pd.Series(spellings, dtype="string")
    offset = series.str.contains(OFFSET).fillna(False).to_numpy(dtype=bool)
    found = np.full(len(series), np.datetime64("NaT"), dtype="datetime64[us]")
    if offset.any():
        utc = pd.to_datetime(series[offset], errors="coerce", format="ISO8601", utc=True)
        found[offset] = utc.dt.tz_convert(None).dt.as_unit("us").to_numpy(dtype="datetime64[us]")
    if not offset.all():
        parsed = _dates(series[~offset])
        if parsed.dtype.kind == "M" and not isinstance(parsed.dtype, pd.DatetimeTZDtype):
            found[~offset] = parsed.to_numpy(dtype="datetime64[us]")
    return found


def _dates(series):
    """ISO 8601 dates and date-times of any year, as microsecond datetimes (DuckDB TIMESTAMP);
    values that do not parse become NaT.

    pandas parses strings to nanoseconds before 3.0, and nanoseconds end before 1677-09-21 and
    after 2262-04-11: there, older and later dates (founded 0753-04-21) come back as NaT. Those
    values alone are parsed again by numpy, whose microseconds reach any year, so every pandas
    from 2.1 on gives the same column.
    """
    import numpy as np
    import pandas as pd

    if pd.api.types.is_integer_dtype(series):  # a column of years: parse "1066", not 1066 ns after 1970
        series = series.astype("string")
    parsed = pd.to_datetime(series, errors="coerce", format="ISO8601")
    if parsed.dtype.kind != "M":
        return parsed  # mixed UTC offsets: left as pandas gives them
    parsed = parsed.dt.as_unit("us")
    lost = (parsed.isna() & series.notna()).to_numpy(dtype=bool)
    if isinstance(parsed.dtype, pd.DatetimeTZDtype) or not lost.any():
        return parsed
    positions = np.flatnonzero(lost)
    text = series.iloc[positions].astype("string").str.strip()
    text = text.str.replace(r"^(-?[0-9]{4})([0-9]{2})([0-9]{2})$", r"\1-\2-\3", regex=True)  # 10661014
    shaped = text.str.fullmatch(ISO_DATE).fillna(False).to_numpy(dtype=bool)
    positions, strings = positions[shaped], text.to_numpy(dtype=object)[shaped]
    if not len(strings):
        return parsed
    try:
        found = strings.astype("datetime64[us]")
    except ValueError:  # an impossible date (1066-02-30) among them: one by one
        found = np.array([_date_or_nat(value) for value in strings], dtype="datetime64[us]")
    low, high = (np.datetime64(bound, "us") for bound in NS_RANGE)
    outside = (found < low) | (found > high)  # inside the range, pandas' own answer stands
    values = parsed.to_numpy(dtype="datetime64[us]", copy=True)
    values[positions[outside]] = found[outside]
    return pd.Series(values, index=series.index, name=series.name)


def _date_or_nat(text: str):
    import numpy as np

    try:
        return np.datetime64(text, "us")
    except ValueError:
        return np.datetime64("NaT", "us")


def _stage_through(con, query: str, dates: list, step) -> tuple:
    """Stage the valid rows of ``query`` through ``step``, a pandas function, CHUNK_ROWS at a time:
    (rows read, invalid rows). The CSV is read by a second, in-memory DuckDB connection, as the
    staging connection cannot stream one query while it writes another's result."""
    import duckdb
    import pandas as pd

    rows_read = invalid = 0
    reader = duckdb.connect()
    try:
        for number, frame in enumerate(_frames(reader, query)):
            for name in dates:  # the spellings DuckDB left to pandas
                text = frame.pop(f"_text_{name}")
                odd = text.notna().to_numpy(dtype=bool)
                if odd.any():
                    values = frame[name].to_numpy(dtype="datetime64[us]", copy=True)
                    values[odd] = _pandas_dates(text[odd].tolist())
                    frame[name] = values
                    frame.loc[odd & pd.isna(values), "_invalid"] = True
            bad = frame.pop("_invalid").to_numpy(dtype=bool)
            rows_read, invalid = rows_read + len(frame), invalid + int(bad.sum())
            con.register("ingest_chunk", step(frame[~bad].reset_index(drop=True)))
            verb = f'CREATE OR REPLACE TABLE "{STAGING}" AS' if number == 0 else f'INSERT INTO "{STAGING}"'
            con.execute(f"{verb} SELECT * FROM ingest_chunk").fetchall()
            con.unregister("ingest_chunk")
    finally:
        reader.close()
    return rows_read, invalid


def _frames(reader, query: str):
    """The rows of ``query`` as DataFrames of CHUNK_ROWS rows (at least one, maybe empty) with
    pandas' nullable types: through Arrow, or DuckDB's own DataFrames where pyarrow cannot load (a
    pyarrow built for another numpy)."""
    import pandas as pd

    rows = reader.sql(query)
    try:
        import pyarrow as pa
    except ImportError:
        pa = None
    if pa is None:
        kinds = {"BIGINT": "Int64", "DOUBLE": "Float64", "VARCHAR": pd.StringDtype("python"), "BOOLEAN": "boolean"}
        kinds = {
            name: kinds[str(kind)] for name, kind in zip(rows.columns, rows.types, strict=True) if str(kind) in kinds
        }
        reader.execute(query)
        vectors = -(-CHUNK_ROWS // 2048)  # DuckDB hands DataFrames over in vectors of 2048 rows
        frame = reader.fetch_df_chunk(vectors).astype(kinds)
        if not len(frame):
            yield frame
        while len(frame):
            for start in range(0, len(frame), CHUNK_ROWS):
                yield frame.iloc[start : start + CHUNK_ROWS].reset_index(drop=True)
            frame = reader.fetch_df_chunk(vectors).astype(kinds)
        return
    nullable = {pa.int64(): pd.Int64Dtype(), pa.float64(): pd.Float64Dtype(), pa.string(): pd.StringDtype()}
    nullable |= {pa.bool_(): pd.BooleanDtype(), pa.large_string(): pd.StringDtype()}
    names = ("to_arrow_reader", "fetch_record_batch", "record_batch")  # DuckDB 1.4+, 1.1+, 1.0
    batches = next(getattr(rows, name) for name in names if hasattr(rows, name))(CHUNK_ROWS)
    empty = True
    for batch in batches:
        empty = False
        yield batch.to_pandas(types_mapper=nullable.get)
    if empty:
        yield batches.schema.empty_table().to_pandas(types_mapper=nullable.get)


def drop_duplicates(con, table: str) -> int:
    """Delete the rows of ``table`` that repeat an earlier row exactly (missing values equal, as in
    pandas' drop_duplicates; the first stays): how many went.

    Only rows whose hash repeats can be duplicates, so the row-by-row comparison runs on those alone,
    and the rows that stay keep the file's order.
    """
    names = [row[0] for row in con.execute(f'DESCRIBE "{table}"').fetchall()]
    cols = ", ".join(f'"{name}"' for name in names)
    repeated = f'SELECT hash({cols}) FROM "{table}" GROUP BY 1 HAVING count(*) > 1'
    later = (
        f"SELECT r FROM (SELECT rowid AS r, row_number() OVER (PARTITION BY {cols} ORDER BY rowid) AS k "
        f'FROM "{table}" WHERE hash({cols}) IN ({repeated})) WHERE k > 1'
    )
    return con.execute(f'DELETE FROM "{table}" WHERE rowid IN ({later})').fetchone()[0]


def _with_progress(con, raw_path, statement: str) -> None:
    """Run ``statement``; on a terminal, show how far the CSV is read (rows so far, estimated from
    the bytes read and the length of the first rows) every half second."""
    if not (sys.stderr.isatty() and hasattr(con, "query_progress")):
        con.execute(statement).fetchall()
        return
    size = max(Path(raw_path).stat().st_size, 1)
    with open(raw_path, "rb") as f:
        head = f.read(1024 * 1024)
    per_row = len(head) / max(head.count(b"\n"), 1)
    done = threading.Event()

    def report():
        while not done.wait(0.5):
            share = con.query_progress()
            if share > 0:
                rows = int(share / 100 * size / per_row)
                sys.stderr.write(f"\r  transform: about {rows:,} rows read ({share:.0f}% of {size / 1e6:,.0f} MB)")
                sys.stderr.flush()

    con.execute("SET enable_progress_bar = true").fetchall()  # tracked, not printed (enable_progress_bar_print)
    con.execute("SET enable_progress_bar_print = false").fetchall()
    thread = threading.Thread(target=report, daemon=True)
    thread.start()
    try:
        con.execute(statement).fetchall()
    finally:
        done.set()
        thread.join()
        sys.stderr.write("\r\033[K")
        con.execute("SET enable_progress_bar = false").fetchall()


def load(con, table: str) -> dict:
    """Replace ``table`` with the staging table and commit. A failure rolls back: the previous table
    stays exactly as it was."""
    if not re.match(r"^[A-Za-z_][A-Za-z0-9_]*$", str(table)):
        raise LoadError(f"invalid table name {table!r}: use letters, digits and '_'")
    started = time.perf_counter()
    try:
        con.execute(f'DROP TABLE IF EXISTS "{table}"').fetchall()
        con.execute(f'ALTER TABLE "{STAGING}" RENAME TO "{table}"').fetchall()
        rows = con.execute(f'SELECT count(*) FROM "{table}"').fetchone()[0]
        con.commit()
    except Exception as exc:
        con.rollback()
        raise LoadError(f"loading {table!r} failed, previous table kept: {exc}") from None
    return {"rows": rows, "table": table, "seconds": time.perf_counter() - started}
