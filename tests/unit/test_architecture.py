"""The layout's rules, read from the code (scripts/modulemap.py): imports keep the rules, the module
map in docs/architecture.md is the code's, no module or function outgrows the limits."""

from __future__ import annotations

import ast

from scripts import modulemap

MAX_MODULE_LINES = 700
MAX_FUNCTION_LINES = 100


def test_imports_keep_the_rules():
    """No cycle, no verb importing another verb, no core importing a verb or a surface, no private
    name of another module (the way pip-tools guards its imports)."""
    assert modulemap.violations() == []


def test_the_rules_catch_what_they_forbid(tmp_path):
    """The checker itself: a made-up graph with each kind of break is reported, once each."""
    mods = {
        name: modulemap.Module(name, tmp_path / "x.py", "", set(imports))
        for name, imports in {
            "piperack.errors": [],
            "piperack.fsutil": ["piperack.pull"],  # a core importing a verb
            "piperack.pull": ["piperack.update", "piperack.errors"],  # a verb importing a verb
            "piperack.update": ["piperack.pull"],  # ... and a cycle
        }.items()
    }
    mods["piperack.errors"].private.append("piperack.ui._secret")
    assert modulemap.violations(mods) == [
        "import cycle: piperack.pull -> piperack.update -> piperack.pull",
        "piperack.errors uses piperack.ui._secret, a private name of another module",
        "the core piperack.fsutil imports the verb piperack.pull",
        "piperack.pull imports another verb, piperack.update",
        "piperack.update imports another verb, piperack.pull",
    ]


def test_the_documented_module_map_is_the_code_s():
    """docs/architecture.md's map lists every module, and only those, with its imports as they are
    (python -m scripts.modulemap --write regenerates it)."""
    assert modulemap.documented() == modulemap.render()


def test_no_module_or_function_outgrows_the_limits():
    too_long = []
    for name, module in modulemap.read_modules().items():
        text = module.path.read_text(encoding="utf-8")
        if len(text.splitlines()) > MAX_MODULE_LINES:
            too_long.append(f"{name}: {len(text.splitlines())} lines")
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                length = node.end_lineno - node.lineno + 1
                if length > MAX_FUNCTION_LINES:
                    too_long.append(f"{name}.{node.name}: {length} lines")
    assert too_long == []
