"""The ``[tool.piperack.pulled]`` record in pyproject.toml: module path -> where a pull came from.

``with_pulled(text, entries)`` returns the new pyproject.toml text (tomlkit keeps comments and
formatting); it writes nothing, so a pull can apply it inside its transaction.
"""

from __future__ import annotations


def with_pulled(pyproject_text: str, entries: dict[str, dict]) -> str:
    """``pyproject_text`` with ``[tool.piperack.pulled]."<module>" = {source, version, sha256, index}``
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
        for key in ("source", "version", "sha256", "index"):
            if record.get(key) is not None:
                value[key] = str(record[key])
        pulled[module] = value
    text = tomlkit.dumps(doc)
    return text if text.endswith("\n") else text + "\n"
