"""The ``[tool.piperack.pulled]`` record in pyproject.toml: module path -> where a pull came from.

It is the lock of the project's pulled pipelines (``pull --all`` installs exactly what it records,
``pull --upgrade`` merges from it, ``outdated`` reads it). One inline table per pulled module,
keyed by the module path under the project package (``"pipelines.common"``: the alias, as pulled):

- ``source``: what was pulled, credentials stripped: a path, a URL, or a requirement such as
  ``shared~=0.1`` (the manifest key, when pulled with ``--all``);
- ``version``: the package's version (PEP 440, as its metadata says);
- ``sha256``: of the archive; a different archive behind the same version is refused;
- ``index``: the package index that served it (index pulls only; the one consulted again);
- ``specifier``: the version range of an index pull (PEP 440, e.g. ``~=0.1``, ``>=0.2,<1``;
  absent when the source named no range): what ``--upgrade`` and ``outdated`` stay within;
- ``package``: the distribution name (``shared``), so ``--upgrade NAME`` finds it by either name;
- ``env``: the config environment its parameters went to, when not ``base``;
- ``pre``: ``true`` when it was pulled with ``--pre`` (pre-releases allowed in its range).

``with_pulled(text, entries)`` returns the new pyproject.toml text (tomlkit keeps comments and
formatting); it writes nothing, so a pull can apply it inside its transaction. ``read_pulled``
reads the record back, checked as input a person may have edited.
"""

from __future__ import annotations

FIELDS = ("source", "version", "sha256", "index", "specifier", "package", "env", "pre")


def with_pulled(pyproject_text: str, entries: dict[str, dict]) -> str:
    """``pyproject_text`` with ``[tool.piperack.pulled]."<module>" = {source, version, sha256, …}``
    set for every entry (an existing record of the same module is replaced)."""
    import tomlkit

    doc = tomlkit.parse(pyproject_text)
    if "tool" not in doc:
        doc["tool"] = tomlkit.table(is_super_table=True)
    tool = doc["tool"]
    if "piperack" not in tool:
        tool["piperack"] = tomlkit.table()
    piperack = tool["piperack"]
    if "pulled" not in piperack:
        pulled = tomlkit.table()
        pulled.add(tomlkit.comment("Written by `invoke pull`: module path = where it came from."))
        piperack["pulled"] = pulled
    pulled = piperack["pulled"]
    for module, record in entries.items():
        value = tomlkit.inline_table()
        for key in FIELDS:
            item = record.get(key)
            if item is None or item == "" or item is False:
                continue
            value[key] = True if item is True else str(item)
        pulled[module] = value
    text = tomlkit.dumps(doc)
    return text if text.endswith("\n") else text + "\n"


def read_pulled(project) -> dict[str, dict]:
    """``[tool.piperack.pulled]``: module path -> its record (string fields, ``pre`` a bool).
    An entry that is not a table, or a field of the wrong type, is one error naming it."""
    from ..errors import PiperackError

    table = project.tool("pulled") or {}
    where = f"{project.pyproject.name} [tool.piperack.pulled]"
    if not isinstance(table, dict):
        raise PiperackError(f"{where} must be a table of pulled modules")
    records: dict[str, dict] = {}
    for module, value in table.items():
        if not isinstance(value, dict):
            raise PiperackError(f'{where} "{module}": expected a table such as {{source = …, version = …}}')
        record = {}
        for key, item in value.items():
            if key not in FIELDS:
                continue  # a field a newer piperack wrote: not ours to judge
            wanted = bool if key == "pre" else str
            if not isinstance(item, wanted):
                raise PiperackError(f'{where} "{module}": {key} must be a {wanted.__name__}, got {item!r}')
            record[key] = item
        records[module] = record
    return records
