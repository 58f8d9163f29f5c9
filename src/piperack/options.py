"""One options model for package and pull: a ``Job`` per module or source, from the command
line or from the [tool.piperack.package] / [tool.piperack.pull] manifests in pyproject.toml."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .errors import PiperackError
from .project import Project

# The options each verb takes, on the command line and in its manifest (``-`` spelled ``_``).
OPTIONS = {
    "package": {"alias", "destination", "env"},
    "pull": {"alias", "destination", "env", "fs_args", "force", "sha256"},
}
_STRING_OPTIONS = {"alias", "destination", "env", "fs_args", "sha256"}


@dataclass
class Job:
    """One unit of work: a module to package, or a source to pull, with its options."""

    # What the job works on: package, a module path such as pipelines.ingest; pull, a source (a path,
    # URL or package name).
    subject: str
    alias: str | None = None
    destination: str | None = None
    env: str = "base"
    label: str = ""  # how errors name this job ("--all" jobs name their manifest key)
    # pull only
    fs_args: str | None = None
    force: bool = False
    sha256: str | None = None
    base: Path | None = None  # where relative paths (source, fs-args) are resolved


def _nested_key(key: str, value: dict, allowed: set[str]) -> str | None:
    """If ``value`` looks like a table TOML made from an unquoted dotted key, the key it meant."""
    for sub, subvalue in value.items():
        if sub not in allowed and sub.replace("-", "_") not in allowed:
            if isinstance(subvalue, dict):
                inner = _nested_key(sub, subvalue, allowed)
                return f"{key}.{inner}" if inner else f"{key}.{sub}"
    return None


def read_manifest(project: Project, section: str, allowed: set[str]) -> dict[str, dict]:
    """A mapping key -> options from [tool.piperack.<section>], option names with ``-`` read as ``_``.

    Errors name the key: a missing or empty section, an unknown option, and an unquoted dotted key
    (``pipelines.ingest = {}`` is a nested table in TOML: it must be written ``"pipelines.ingest" = {}``).
    """
    where = f"{project.pyproject.name} [tool.piperack.{section}]"
    table = project.tool(section)
    if not table:
        raise PiperackError(
            f"{where} is missing or empty: add entries like "
            + ('"pipelines.ingest" = {}' if section == "package" else '"dist/ingest-0.1.0.tar.gz" = {}')
        )
    if not isinstance(table, dict):
        raise PiperackError(f"{where} must be a table of entries")
    entries: dict[str, dict] = {}
    for key, value in table.items():
        if not isinstance(value, dict):
            raise PiperackError(f'{where} "{key}": expected a table of options such as ' + "{}" + f", got {value!r}")
        meant = _nested_key(key, value, allowed)
        if meant:
            raise PiperackError(
                f'{where}: "{meant}" became a nested table because its key is not quoted; '
                f'write it as "{meant}" = ' + "{...}"
            )
        options = {}
        for name, option in value.items():
            norm = name.replace("-", "_")
            if norm not in allowed:
                raise PiperackError(f'{where} "{key}": unknown option {name!r} (allowed: {", ".join(sorted(allowed))})')
            options[norm] = option
        entries[key] = options
    return entries


def jobs_from_manifest(project: Project, verb: str) -> list[Job]:
    """The jobs of ``[tool.piperack.<verb>]``; option types are checked here, values by the verb."""
    where = f"{project.pyproject.name} [tool.piperack.{verb}]"
    jobs = []
    for key, options in read_manifest(project, verb, allowed=OPTIONS[verb]).items():
        for name, value in options.items():
            if name in _STRING_OPTIONS and (not isinstance(value, str) or not value):
                raise PiperackError(f'{where} "{key}": option {name!r} must be a non-empty string, got {value!r}')
            if name == "force" and not isinstance(value, bool):
                raise PiperackError(f"{where} \"{key}\": option 'force' must be true or false, got {value!r}")
        options.setdefault("env", "base")
        jobs.append(
            Job(
                subject=key,
                label=f'[tool.piperack.pull] "{key}"' if verb == "pull" else key,
                base=project.root,
                **options,
            )
        )
    return jobs
