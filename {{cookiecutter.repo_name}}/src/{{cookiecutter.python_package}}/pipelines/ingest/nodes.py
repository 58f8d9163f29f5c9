"""The three steps of the ingest pipeline. Each returns what it did, for logging and tests."""

from __future__ import annotations

import os
import re
import shutil
import tempfile
import time
from pathlib import Path
from urllib.parse import unquote, urlparse

CHUNK = 1024 * 1024
RETRY_STATUSES = (500, 502, 503, 504)
DEADLINE = 600.0  # seconds for a whole download, however slowly the bytes come
MAX_BYTES = 2 * 1024**3
TYPES = {"string", "int", "float", "date", "bool"}
# An ISO 8601 date, optionally with a time (no UTC offset): the shape _dates() parses itself.
ISO_DATE = r"-?[0-9]{4}(?:-[0-9]{2}(?:-[0-9]{2}(?:[T ][0-9]{2}(?::[0-9]{2}(?::[0-9]{2}(?:\.[0-9]+)?)?)?)?)?)?"
# An integer that to_numeric reads exactly and int64 holds (at most 18 digits).
PLAIN_INT = r"[+-]?[0-9]{1,18}"
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


def _coerce(series, kind: str):
    """The column as ``kind``; values that do not parse become missing (NA)."""
    import pandas as pd

    if kind == "int":
        if pd.api.types.is_integer_dtype(series):
            return series.astype("Int64")
        return _integers(series)
    if kind == "float":
        return pd.to_numeric(series, errors="coerce").astype("Float64")
    if kind == "date":
        return _dates(series)
    if kind == "bool":
        mapped = (
            series.astype("string")
            .str.lower()
            .map(dict(true=True, yes=True, false=False, no=False) | {"1": True, "0": False})
        )
        return mapped.astype("boolean")
    return series.astype("string")


def _integers(series):
    """The column as Int64; a value that is not a whole number within int64 becomes missing.

    Plain integers ("545796", "-12", "+7") are converted directly and exactly; only the other
    values go through ``pd.to_numeric`` ("1e3" and "12.0" are whole numbers too). That is twice as
    fast on a million rows, and keeps integers above 2**53 exact, which a pass through floats rounds.
    """
    import numpy as np
    import pandas as pd

    text = series.astype("string")
    valid = text.str.fullmatch(PLAIN_INT).fillna(False).to_numpy(dtype=bool)
    values = np.zeros(len(series), dtype="int64")
    values[valid] = text[valid].to_numpy(dtype=object).astype("int64")
    others = np.flatnonzero(~valid)
    if len(others):
        numbers = pd.to_numeric(series.iloc[others], errors="coerce").to_numpy(dtype="float64", na_value=np.nan)
        with np.errstate(invalid="ignore"):
            whole = np.isfinite(numbers) & (np.mod(numbers, 1) == 0) & (np.abs(numbers) < 2.0**63)
        values[others[whole]] = numbers[whole].astype("int64")
        valid[others[whole]] = True
    return pd.Series(pd.arrays.IntegerArray(values, ~valid), index=series.index, name=series.name)


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


def transform(raw_path: str | Path, columns: dict, required: list) -> tuple:
    """Clean the CSV: normalised names, typed columns, invalid rows and duplicates dropped and counted.

    ``columns`` maps normalised names to string/int/float/date/bool; those columns are kept, in that
    order. Empty fields (and the usual markers such as "n/a") are missing values. A row is invalid
    when a required column is missing or a typed value is present but does not parse.
    """
    import pandas as pd

    started = time.perf_counter()
    try:
        frame = pd.read_csv(raw_path, skipinitialspace=True)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise TransformError(f"{raw_path}: not a readable CSV: {str(exc).strip().splitlines()[0]}") from None
    frame.columns = [normalise_column(c) for c in frame.columns]
    rows_read = len(frame)
    if columns:
        unknown = {k: v for k, v in columns.items() if v not in TYPES}
        if unknown:
            raise TransformError(f"unknown column types {unknown} (use one of {sorted(TYPES)})")
        missing = [c for c in columns if c not in frame.columns]
        if missing:
            raise TransformError(f"{raw_path}: missing columns {missing} (found {list(frame.columns)})")
        frame = frame[list(columns)]
    missing_required = [c for c in required if c not in frame.columns]
    if missing_required:
        raise TransformError(f"{raw_path}: required columns {missing_required} not found")

    bad = pd.Series(False, index=frame.index)
    typed = {}
    for name in frame.columns:
        original = frame[name]
        value = _coerce(original, columns[name]) if name in columns else original
        bad |= value.isna() & original.notna()  # present, but not a valid value of its type
        typed[name] = value
    frame = pd.DataFrame(typed, index=frame.index)
    for name in required:
        bad |= frame[name].isna()
    invalid = int(bad.sum())
    frame = frame[~bad]
    before = len(frame)
    frame = drop_duplicates(frame)
    duplicates = before - len(frame)
    return frame, {
        "rows_read": rows_read,
        "invalid": invalid,
        "duplicates": duplicates,
        "rows_out": len(frame),
        "seconds": time.perf_counter() - started,
    }


def drop_duplicates(frame, min_rows: int = 50_000):
    """``frame.drop_duplicates(ignore_index=True)``, three times faster on a million rows.

    Rows that are exact duplicates share every value, so only rows whose value in one column
    repeats can be duplicates: the full comparison of whole rows runs on those alone. The column
    is the one with the most distinct values in a sample (numbers and dates before text, which is
    slower to compare); whatever it is, the result is the same, only the time changes.
    """
    import numpy as np

    if len(frame) < min_rows or frame.shape[1] < 2 or not frame.columns.is_unique:
        return frame.drop_duplicates(ignore_index=True)
    sample = frame.iloc[:: max(1, len(frame) // 10_000)]

    def selectivity(name):
        kind = frame[name].dtype.kind
        return sample[name].nunique(dropna=False), kind in "biufcmMb"

    key = max(frame.columns, key=selectivity)
    maybe = frame.duplicated(subset=[key], keep=False).to_numpy(dtype=bool)
    duplicate = np.zeros(len(frame), dtype=bool)
    if maybe.any():
        duplicate[maybe] = frame[maybe].duplicated().to_numpy(dtype=bool)
    return frame[~duplicate].reset_index(drop=True)


def load(frame, database: str | Path, table: str) -> dict:
    """Replace ``table`` in the DuckDB file with ``frame`` in one transaction.

    A failure anywhere rolls back: the previous table stays exactly as it was.
    """
    import duckdb

    if not re.match(r"^[A-Za-z_][A-Za-z0-9_]*$", str(table)):
        raise LoadError(f"invalid table name {table!r}: use letters, digits and '_'")
    started = time.perf_counter()
    database = Path(database)
    database.parent.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect(str(database))
    con.execute("SET enable_progress_bar = false").fetchall()  # keep stdout for the logs
    try:
        con.begin()
        try:
            con.register("incoming_frame", _as_arrow(frame))
            # DuckDB wants every result consumed before the next statement on a connection.
            con.execute(f'CREATE OR REPLACE TABLE "{table}" AS SELECT * FROM incoming_frame').fetchall()
            rows = con.execute(f'SELECT count(*) FROM "{table}"').fetchall()[0][0]
            con.unregister("incoming_frame")
            con.commit()
        except Exception as exc:
            con.rollback()
            raise LoadError(f"loading {table!r} into {database} failed, previous table kept: {exc}") from None
    finally:
        con.close()
    return {"rows": rows, "table": table, "database": str(database), "seconds": time.perf_counter() - started}


def _as_arrow(frame):
    """``frame`` as an Arrow table, which DuckDB scans without converting each value (a third faster
    than reading pandas' nullable columns on a million rows); the same column types either way. A
    frame Arrow cannot hold (complex numbers, mixed objects), or a pyarrow that cannot load next to
    this numpy, leaves the frame to DuckDB as it is: this is a shortcut, never a requirement."""
    try:
        import pyarrow as pa

        return pa.Table.from_pandas(frame, preserve_index=False)
    except Exception:  # noqa: BLE001 - any failure here only means the slower, general path
        return frame
