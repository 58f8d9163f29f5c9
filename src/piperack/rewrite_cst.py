"""The libcst half of rewrite.py: the visitor and the transformer that rename a module in a libcst tree.

This module imports libcst at its top, so only rewrite.py imports it, and only when a span or a file
needs libcst (``import piperack.rewrite`` never imports libcst). Each class is given the rename as
an object with ``old``, ``new`` (dotted module paths), ``swap(dotted)`` (``dotted`` renamed, or
None when it is not ``old`` nor inside it) and ``swap_string(value)`` (the same for a string
literal, which must also read as a module path): rewrite.py's ``Rename``.
"""

from __future__ import annotations

import libcst as cst


def rewrite_module(source: str, rename, binds: bool | None) -> str:
    """The rewrite of ``source`` (a whole module, a run of top-level statements or one statement);
    ``binds`` None: find out from the source itself whether a plain import binds the module."""
    module = cst.parse_module(source)
    if binds is None:
        binder = Binder(rename)
        module.visit(binder)
        binds = binder.binds
    return module.visit(Rewriter(rename, rewrite_chains=binds)).code


def rewrite_expression(source: str, rename, binds: bool) -> str:
    """The rewrite of one expression (a string literal, an f-string, a dotted chain)."""
    node = cst.parse_expression(source).visit(Rewriter(rename, rewrite_chains=binds))
    return cst.Module(body=[]).code_for_node(node)


def dotted_name(node) -> str | None:
    """``a.b.c`` for a Name/Attribute chain, else None."""
    if isinstance(node, cst.Name):
        return node.value
    if isinstance(node, cst.Attribute):
        left = dotted_name(node.value)
        return None if left is None else f"{left}.{node.attr.value}"
    return None


def dotted_expression(dotted: str) -> cst.BaseExpression:
    """A Name/Attribute expression spelling ``dotted``."""
    parts = dotted.split(".")
    expr: cst.BaseExpression = cst.Name(parts[0])
    for part in parts[1:]:
        expr = cst.Attribute(value=expr, attr=cst.Name(part))
    return expr


class Binder(cst.CSTVisitor):
    """Finds whether a plain ``import old[.x]`` binds old's first name in this file."""

    def __init__(self, rename) -> None:
        super().__init__()
        self.rename = rename
        self.binds = False

    def visit_Import(self, node) -> bool:
        for alias in node.names:
            name = dotted_name(alias.name)
            if alias.asname is None and name is not None and self.rename.swap(name) is not None:
                self.binds = True
        return False


class Rewriter(cst.CSTTransformer):
    """Spells ``old`` as ``new`` in absolute imports, string literals that read as module paths and
    f-strings starting with ``old.``; with ``rewrite_chains`` (a plain import binds the module), in
    dotted chains of code too. Names being bound (parameters, assignment targets…) are left alone."""

    def __init__(self, rename, rewrite_chains: bool) -> None:
        super().__init__()
        self.rename = rename
        self.old, self.new = rename.old, rename.new
        self.old_parent, _, self.old_last = rename.old.rpartition(".")
        self.new_parent, _, self.new_last = rename.new.rpartition(".")
        self.old_is_dotted = "." in rename.old
        self.rewrite_chains = rewrite_chains
        self.skip_names: set[int] = set()
        self._fstring_heads: set[int] = set()

    # -- imports ---------------------------------------------------------------------------------
    def visit_Import(self, node) -> bool:
        return False

    def leave_Import(self, original_node, updated_node):
        names = []
        changed = False
        for alias in updated_node.names:
            name = dotted_name(alias.name)
            swapped = None if name is None else self.rename.swap(name)
            if swapped is not None:
                alias = alias.with_changes(name=dotted_expression(swapped))
                changed = True
            names.append(alias)
        return updated_node.with_changes(names=names) if changed else updated_node

    def visit_ImportFrom(self, node) -> bool:
        return False

    def leave_ImportFrom(self, original_node, updated_node):
        if updated_node.relative or updated_node.module is None:
            return updated_node  # relative imports stay as they are
        module = dotted_name(updated_node.module)
        if module is None:
            return updated_node
        swapped = self.rename.swap(module)
        if swapped is not None:
            return updated_node.with_changes(module=dotted_expression(swapped))
        if module != self.old_parent or isinstance(updated_node.names, cst.ImportStar):
            return updated_node
        return self._import_of_old_from_its_parent(updated_node)

    def _import_of_old_from_its_parent(self, updated_node):
        """``from parent import last [as z]`` where parent.last is old itself: old's names move to a
        statement of their own importing ``new`` (the others stay in the first)."""
        kept, moved = [], []
        for alias in updated_node.names:
            (moved if dotted_name(alias.name) == self.old_last else kept).append(alias)
        if not moved:
            return updated_node
        statements = []
        if kept:
            last = kept[-1].with_changes(comma=cst.MaybeSentinel.DEFAULT)
            statements.append(updated_node.with_changes(names=[*kept[:-1], last]))
        for alias in moved:
            bound = alias.asname.name.value if alias.asname is not None else self.old_last
            if self.new_parent:
                asname = None if bound == self.new_last else cst.AsName(name=cst.Name(bound))
                statements.append(
                    cst.ImportFrom(
                        module=dotted_expression(self.new_parent),
                        names=[cst.ImportAlias(name=cst.Name(self.new_last), asname=asname)],
                    )
                )
            else:
                asname = None if bound == self.new else cst.AsName(name=cst.Name(bound))
                statements.append(cst.Import(names=[cst.ImportAlias(name=cst.Name(self.new), asname=asname)]))
        if len(statements) == 1:
            return statements[0]
        return cst.FlattenSentinel(statements)

    # -- dotted chains in code -------------------------------------------------------------------
    def visit_Attribute(self, node) -> bool:
        self.skip_names.add(id(node.attr))
        return True

    def _skip(self, name_node) -> None:
        if name_node is not None:
            self.skip_names.add(id(name_node))

    def visit_FunctionDef(self, node) -> bool:
        self._skip(node.name)
        return True

    def visit_ClassDef(self, node) -> bool:
        self._skip(node.name)
        return True

    def visit_Param(self, node) -> bool:
        self._skip(node.name)
        return True

    def visit_AsName(self, node) -> bool:
        if isinstance(node.name, cst.Name):
            self._skip(node.name)
        return True

    def visit_NameItem(self, node) -> bool:
        self._skip(node.name)
        return True

    # bare names being bound (``ingest = ...``) are not module references
    def visit_AssignTarget(self, node) -> bool:
        self._skip(node.target if isinstance(node.target, cst.Name) else None)
        return True

    def visit_AnnAssign(self, node) -> bool:
        self._skip(node.target if isinstance(node.target, cst.Name) else None)
        return True

    def visit_AugAssign(self, node) -> bool:
        self._skip(node.target if isinstance(node.target, cst.Name) else None)
        return True

    def visit_NamedExpr(self, node) -> bool:
        self._skip(node.target if isinstance(node.target, cst.Name) else None)
        return True

    def visit_For(self, node) -> bool:
        self._skip(node.target if isinstance(node.target, cst.Name) else None)
        return True

    def visit_CompFor(self, node) -> bool:
        self._skip(node.target if isinstance(node.target, cst.Name) else None)
        return True

    def visit_Arg(self, node) -> bool:
        if node.keyword is not None:
            self._skip(node.keyword)
        return True

    def leave_Attribute(self, original_node, updated_node):
        if self.rewrite_chains and self.old_is_dotted and dotted_name(original_node) == self.old:
            return dotted_expression(self.new).with_changes(lpar=updated_node.lpar, rpar=updated_node.rpar)
        return updated_node

    def leave_Name(self, original_node, updated_node):
        if (
            self.rewrite_chains
            and not self.old_is_dotted
            and original_node.value == self.old
            and id(original_node) not in self.skip_names
        ):
            return dotted_expression(self.new).with_changes(lpar=updated_node.lpar, rpar=updated_node.rpar)
        return updated_node

    # -- strings ---------------------------------------------------------------------------------
    def visit_ConcatenatedString(self, node) -> bool:
        # 'a' 'b' is one value; its parts are not targets on their own
        for part in (node.left, node.right):
            self.skip_names.add(id(part))
        return True

    def leave_SimpleString(self, original_node, updated_node):
        if id(original_node) in self.skip_names:
            return updated_node
        try:
            value = original_node.evaluated_value
        except Exception:  # noqa: BLE001 - an odd literal is simply not a target
            return updated_node
        if not isinstance(value, str):
            return updated_node  # bytes
        swapped = self.rename.swap_string(value)
        if swapped is None:
            return updated_node
        prefix = original_node.prefix
        quote = original_node.quote
        inner = original_node.value[len(prefix) + len(quote) : len(original_node.value) - len(quote)]
        if inner != value:
            return updated_node  # escapes or line continuations: leave it alone
        return updated_node.with_changes(value=f"{prefix}{quote}{swapped}{quote}")

    def leave_FormattedStringText(self, original_node, updated_node):
        # f"old.nodes.{name}": only the text at the start of the f-string counts.
        if id(original_node) not in self._fstring_heads:
            return updated_node
        text = original_node.value
        if text.startswith(self.old + "."):
            return updated_node.with_changes(value=self.new + text[len(self.old) :])
        return updated_node

    def visit_FormattedString(self, node) -> bool:
        if id(node) in self.skip_names:
            return True  # a part of 'a' f'b': not a target on its own
        if node.parts and isinstance(node.parts[0], cst.FormattedStringText):
            self._fstring_heads.add(id(node.parts[0]))
        return True
