"""The [tool.piperack.package] and [tool.piperack.pull] manifests in pyproject.toml."""
from __future__ import annotations

from .errors import PiperackError
from .project import Project


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
                raise PiperackError(
                    f'{where} "{key}": unknown option {name!r} (allowed: {", ".join(sorted(allowed))})'
                )
            options[norm] = option
        entries[key] = options
    return entries
