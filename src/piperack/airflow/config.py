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

from ..errors import PiperackError, first_line

CONFIG_NAME = "airflow.yml"
MAX_CONFIG_BYTES = 1024 * 1024

QUANTITY = re.compile(r"^[0-9]+(\.[0-9]+)?(m|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei)?$")
RESOURCE_NAMES = ("cpu", "memory", "ephemeral-storage")


@dataclass(frozen=True)
class Spec:
    """How one configuration value is checked: kind, and for mappings the keys it may hold."""

    kind: str  # str, bool, int, number, list_str, mapping, date, secrets, quantity, pipelines
    keys: dict | None = None
    nullable: bool = True
    minimum: float | None = None


def resources_spec() -> Spec:
    """``requests`` and ``limits`` of a pod, each a mapping of resource names to quantities."""
    amounts = Spec("mapping", {name: Spec("quantity") for name in RESOURCE_NAMES})
    return Spec("mapping", {"requests": amounts, "limits": amounts})


PIPELINE_KEYS = {
    "depends_on": Spec("list_str"),
    "retries": Spec("int", minimum=0),
    "retry_delay_minutes": Spec("number", minimum=0),
    "resources": resources_spec(),
}
DAG_KEYS = {
    "dag_id": Spec("str"),
    "schedule": Spec("str"),
    "start_date": Spec("date"),
    "catchup": Spec("bool"),
    "retries": Spec("int", minimum=0),
    "retry_delay_minutes": Spec("number", minimum=0),
    "owner": Spec("str"),
    "tags": Spec("list_str"),
    "max_active_runs": Spec("int", minimum=1),
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


def check_value(where: str, key: str, value, spec: Spec) -> None:
    """Raise ``<file>: <key>: <problem>`` unless ``value`` fits ``spec`` (nested mappings checked too)."""

    def bad(expected: str):
        shown = value if isinstance(value, (str, int, float, bool)) or value is None else type_name(value)
        raise PiperackError(f"{where}: {key}: expected {expected}, got {shown!r}")

    if value is None:
        if spec.nullable:
            return
        bad("a value")
    kind = spec.kind
    if kind == "str":
        if not isinstance(value, str) or not value.strip():
            bad("a non-empty string")
    elif kind == "bool":
        if not isinstance(value, bool):
            bad("true or false")
    elif kind == "int":
        if isinstance(value, bool) or not isinstance(value, int):
            bad("an integer" if spec.minimum is None else f"an integer >= {spec.minimum:g}")
        if spec.minimum is not None and value < spec.minimum:
            bad(f"an integer >= {spec.minimum:g}")
    elif kind == "number":
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            bad("a number")
        if spec.minimum is not None and value < spec.minimum:
            bad(f"a number >= {spec.minimum:g}")
    elif kind == "list_str":
        if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
            bad("a list of strings")
    elif kind == "secrets":
        if not (isinstance(value, str) and value.strip()) and not (
            isinstance(value, list) and all(isinstance(v, str) and v.strip() for v in value)
        ):
            bad("a Secret name or a list of them")
    elif kind == "quantity":
        if isinstance(value, bool) or not isinstance(value, (str, int, float)) or not QUANTITY.match(str(value)):
            bad("a Kubernetes quantity such as 500m, 2, 512Mi or 1Gi")
    elif kind == "date":
        if isinstance(value, str):
            try:
                parse_date(value)
            except ValueError:
                bad("a date such as 2026-01-01 (or an ISO date-time)")
        elif not isinstance(value, (_dt.date, _dt.datetime)):
            bad("a date such as 2026-01-01")
    elif kind == "mapping":
        if not isinstance(value, dict):
            bad("a mapping")
        check_mapping(where, key + ".", value, spec.keys)
    elif kind == "pipelines":
        if not isinstance(value, dict):
            bad("a mapping of pipeline names to their settings")
        _check_pipelines(where, key, value)


def _check_pipelines(where: str, key: str, value: dict) -> None:
    for name, settings in value.items():
        if not isinstance(name, str):
            raise PiperackError(f"{where}: {key}: pipeline names must be strings, got {name!r}")
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
            raise PiperackError(f"{where}: {prefix}{key}: unknown key{suggestion}")
        check_value(where, prefix + key, value, keys[key])


def parse_date(text: str) -> _dt.datetime:
    text = text.strip()
    try:
        day = _dt.date.fromisoformat(text)
        return _dt.datetime(day.year, day.month, day.day)
    except ValueError:
        return _dt.datetime.fromisoformat(text.replace("Z", "+00:00"))


def read_config_file(path: Path, label: str, keys: dict) -> dict:
    """One airflow.yml, parsed as hostile input (safe loader, size-capped) and checked key by key."""
    import yaml

    try:
        size = path.stat().st_size
        if size > MAX_CONFIG_BYTES:
            raise PiperackError(f"{label}: {size} bytes is too large for a config file (limit {MAX_CONFIG_BYTES})")
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise PiperackError(f"{label}: not UTF-8 text") from None
    except OSError as exc:
        raise PiperackError(f"{label}: cannot read: {exc.strerror}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or first_line(exc)
        raise PiperackError(f"{label}: malformed YAML{at}: {problem}") from None
    except RecursionError:
        raise PiperackError(f"{label}: malformed YAML: nested too deeply") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise PiperackError(f"{label}: expected a mapping of settings, got {type_name(data)}")
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
