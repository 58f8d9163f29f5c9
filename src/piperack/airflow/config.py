"""conf/<env>/airflow.yml: read as hostile input, checked key by key, deep-merged over conf/base/.

A ``Spec`` says how one value is checked; ``DAG_KEYS`` and ``PIPELINE_KEYS`` are the DAG's own keys,
and each target class (targets.py) brings the keys of its section (``docker:``, ``kubernetes:``);
``dag.CONFIG_KEYS`` puts them together. Every refusal is one line naming the file and the key.
"""

from __future__ import annotations

import datetime as _dt
import difflib
import math
import re
from dataclasses import dataclass
from pathlib import Path

from ..errors import PiperackError

CONFIG_NAME = "airflow.yml"

# Matched with fullmatch (``$`` would let a trailing newline through).
QUANTITY = re.compile(r"([0-9]{1,18})(\.[0-9]{1,9})?(m|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei)?")
QUANTITY_UNITS = {
    "": 1,
    "m": 10**-3,
    "k": 10**3,
    "M": 10**6,
    "G": 10**9,
    "T": 10**12,
    "P": 10**15,
    "E": 10**18,
    "Ki": 2**10,
    "Mi": 2**20,
    "Gi": 2**30,
    "Ti": 2**40,
    "Pi": 2**50,
    "Ei": 2**60,
}
RESOURCE_NAMES = ("cpu", "memory", "ephemeral-storage")

# Ranges, so that every value fits where Airflow and Kubernetes keep it (32-bit integer columns,
# timedelta and datetime arithmetic when runs are scheduled): refused here in one line rather than
# an OverflowError now or when Airflow imports the file.
INT32_MAX = 2**31 - 1
MAX_RETRIES = 1000
MAX_RETRY_DELAY_MINUTES = 366 * 24 * 60  # a year
MAX_QUANTITY = 2**63 - 1  # Kubernetes quantities are int64 (bytes, or millicores)
FIRST_YEAR, LAST_YEAR = 1970, 9998  # the next run after start_date must still be a datetime
MAX_TEXT = 500  # Airflow keeps an owner in 500 characters; paths and URLs are shorter in practice
MAX_TAG = 100  # Airflow's own limit (TAG_MAX_LEN)


@dataclass(frozen=True)
class Spec:
    """How one configuration value is checked: kind, and for mappings the keys it may hold."""

    kind: str  # str, bool, int, number, list_str, mapping, date, secrets, quantity, pipelines
    keys: dict | None = None
    nullable: bool = True
    minimum: float | None = None
    maximum: float | None = None  # for int and number; for str and list_str, the longest text


def resources_spec() -> Spec:
    """``requests`` and ``limits`` of a pod, each a mapping of resource names to quantities."""
    amounts = Spec("mapping", {name: Spec("quantity") for name in RESOURCE_NAMES})
    return Spec("mapping", {"requests": amounts, "limits": amounts})


PIPELINE_KEYS = {
    "depends_on": Spec("list_str"),
    "retries": Spec("int", minimum=0, maximum=MAX_RETRIES),
    "retry_delay_minutes": Spec("number", minimum=0, maximum=MAX_RETRY_DELAY_MINUTES),
    "resources": resources_spec(),
}
DAG_KEYS = {
    "dag_id": Spec("str"),
    "schedule": Spec("str"),
    "start_date": Spec("date"),
    "catchup": Spec("bool"),
    "retries": Spec("int", minimum=0, maximum=MAX_RETRIES),
    "retry_delay_minutes": Spec("number", minimum=0, maximum=MAX_RETRY_DELAY_MINUTES),
    "owner": Spec("str"),
    "tags": Spec("list_str", maximum=MAX_TAG),
    "max_active_runs": Spec("int", minimum=1, maximum=INT32_MAX),
    "image": Spec("str"),
    "pipelines": Spec("pipelines"),
}
DEFAULTS = {
    "schedule": None,
    "start_date": None,
    "catchup": False,
    "retries": 0,
    "retry_delay_minutes": 5,
    "owner": "airflow",
    "tags": [],
    "max_active_runs": 1,
}


def type_name(value) -> str:
    return "null" if value is None else type(value).__name__


def shown_key(key) -> str:
    """A key as an error shows it: as written when printable, else escaped (one line, always)."""
    text = str(key)
    return text if text.isprintable() else repr(text)


def one_line(value) -> bool:
    """A non-empty string of printable characters: no newline, tab, control or format character,
    nothing that would end a comment line or a statement in the DAG file."""
    return isinstance(value, str) and bool(value.strip()) and value.isprintable()


def _number(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else f"{x:g}"


def _range(kind: str, spec: Spec) -> str:
    low = f" >= {_number(spec.minimum)}" if spec.minimum is not None else ""
    if spec.maximum is None:
        return f"{kind}{low}"
    high = _number(spec.maximum)
    return f"{kind} from {_number(spec.minimum)} to {high}" if low else f"{kind} <= {high}"


def _text_problem(value, longest: float) -> str | None:
    """What is wrong with ``value`` as a one-line string of at most ``longest`` characters, or None."""
    if not isinstance(value, str) or not value.strip():
        return "a non-empty string"
    if not value.isprintable():
        return "a one-line string without control characters"
    if len(value) > longest:
        return f"a string of at most {_number(longest)} characters"
    return None


def check_value(where: str, key: str, value, spec: Spec) -> None:
    """Raise ``<file>: <key>: <problem>`` unless ``value`` fits ``spec`` (nested mappings checked too)."""

    def bad(expected: str):
        shown = value if isinstance(value, (str, int, float, bool)) or value is None else type_name(value)
        if isinstance(shown, str) and len(shown) > 80:
            shown = shown[:77] + "..."
        if isinstance(shown, int) and not isinstance(shown, bool) and abs(shown) > 10**18:
            raise PiperackError(f"{where}: {key}: expected {expected}, got a {shown.bit_length()}-bit integer")
        raise PiperackError(f"{where}: {key}: expected {expected}, got {shown!r}")

    if value is None:
        if spec.nullable:
            return
        bad("a value")
    kind = spec.kind
    longest = spec.maximum or MAX_TEXT
    if kind == "str":
        problem = _text_problem(value, longest)
        if problem:
            bad(problem)
    elif kind == "bool":
        if not isinstance(value, bool):
            bad("true or false")
    elif kind in ("int", "number"):
        _check_number(value, spec, bad)
    elif kind == "list_str":
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            bad("a list of strings")
        problem = next(filter(None, (_text_problem(v, longest) for v in value)), None)
        if problem:
            bad(f"a list of strings, each {problem}")
    elif kind == "secrets":
        if not one_line(value) and not (isinstance(value, list) and all(one_line(v) for v in value)):
            bad("a Secret name or a list of them")
    elif kind == "quantity":
        if isinstance(value, bool) or not isinstance(value, (str, int, float)) or quantity_value(value) is None:
            bad("a Kubernetes quantity such as 500m, 2, 512Mi or 1Gi")
    elif kind == "date":
        _check_date(value, bad)
    elif kind == "mapping":
        if not isinstance(value, dict):
            bad(f"a mapping ({', '.join(spec.keys)})" if spec.keys else "a mapping")
        check_mapping(where, key + ".", value, spec.keys)
    elif kind == "pipelines":
        if not isinstance(value, dict):
            bad("a mapping of pipeline names to their settings")
        _check_pipelines(where, key, value)


def _check_number(value, spec: Spec, bad) -> None:
    if spec.kind == "int":
        if isinstance(value, bool) or not isinstance(value, int):
            bad(_range("an integer", spec))
    elif isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        bad(_range("a number", spec))
    if (spec.minimum is not None and value < spec.minimum) or (spec.maximum is not None and value > spec.maximum):
        bad(_range("an integer" if spec.kind == "int" else "a number", spec))


def _check_date(value, bad) -> None:
    expected = f"a date from {FIRST_YEAR}-01-01 to {LAST_YEAR}-12-31, such as 2026-01-01 (or an ISO date-time)"
    if isinstance(value, str):
        try:
            value = parse_date(value)
        except (ValueError, OverflowError):
            bad(expected)
    elif not isinstance(value, (_dt.date, _dt.datetime)):
        bad(expected)
    if not FIRST_YEAR <= value.year <= LAST_YEAR:
        bad(expected)


def quantity_value(value) -> float | None:
    """A Kubernetes quantity's amount (bytes, or cores), or None when ``value`` is not one or is
    beyond what Kubernetes keeps (an int64)."""
    match = QUANTITY.fullmatch(str(value))
    if not match:
        return None
    amount = float(match.group(1) + (match.group(2) or "")) * QUANTITY_UNITS[match.group(3) or ""]
    return amount if amount * (1000 if match.group(3) != "m" else 1) <= MAX_QUANTITY else None


def _check_pipelines(where: str, key: str, value: dict) -> None:
    for name, settings in value.items():
        if not isinstance(name, str) or not one_line(name):
            raise PiperackError(f"{where}: {key}: pipeline names must be one-line strings, got {name!r}")
        if settings is None:
            continue
        if not isinstance(settings, dict):
            raise PiperackError(
                f"{where}: {key}.{name}: expected a mapping (depends_on, retries, retry_delay_minutes, "
                f"resources), got {type_name(settings)}"
            )
        check_mapping(where, f"{key}.{name}.", settings, PIPELINE_KEYS)


def check_mapping(where: str, prefix: str, data: dict, keys: dict) -> None:
    for key, value in data.items():
        if not isinstance(key, str) or key not in keys:
            hint = difflib.get_close_matches(str(key), list(keys), n=1)
            suggestion = f"; did you mean {hint[0]!r}?" if hint else f" (known: {', '.join(sorted(keys))})"
            raise PiperackError(f"{where}: {prefix}{shown_key(key)}: unknown key{suggestion}")
        check_value(where, prefix + key, value, keys[key])


def parse_date(text: str) -> _dt.datetime:
    text = text.strip()
    try:
        day = _dt.date.fromisoformat(text)
        return _dt.datetime(day.year, day.month, day.day)
    except ValueError:
        return _dt.datetime.fromisoformat(text.replace("Z", "+00:00"))


def read_config_file(path: Path, label: str, keys: dict) -> dict:
    """One airflow.yml, read as hostile input (graph.read_mapping: the shared bounded loader, size
    cap, nesting limit) and checked key by key."""
    from ..graph import read_mapping

    data = read_mapping(path, label)
    check_mapping(label, "", data, keys)
    return data


def deep_merge(base: dict, override: dict) -> dict:
    """``override`` over ``base``, nested mappings merged key by key (as the project's runner does)."""
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


@dataclass
class Config:
    """The merged settings, and the files they came from (for errors that name the right one)."""

    values: dict
    files: list  # [(label, data)] in merge order

    def source(self, *keys: str) -> str:
        """The last file (in merge order) that sets ``keys``: the one an error about them names."""
        for label, data in reversed(self.files):
            node = data
            for key in keys:
                if not isinstance(node, dict) or key not in node:
                    break
                node = node[key]
            else:
                return label
        return self.files[-1][0] if self.files else f"conf/base/{CONFIG_NAME}"

    def get(self, *keys: str, default=None):
        node = self.values
        for key in keys:
            if not isinstance(node, dict) or node.get(key) is None:
                return default
            node = node[key]
        return node


def load_config(project, env: str, keys: dict) -> Config:
    """conf/base/airflow.yml, then conf/<env>/airflow.yml over it (``--env base``: base only), each
    checked against ``keys``."""
    files = []
    for name in ["base"] if env == "base" else ["base", env]:
        path = project.conf / name / CONFIG_NAME
        if path.is_file():
            label = f"conf/{name}/{CONFIG_NAME}"
            files.append((label, read_config_file(path, label, keys)))
    merged: dict = {}
    for _, data in files:
        merged = deep_merge(merged, data)
    return Config(merged, files)
