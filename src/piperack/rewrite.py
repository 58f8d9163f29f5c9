"""Rewrite absolute references to one module into another name (libcst).

Used by ``package`` (``<pkg>.pipelines.ingest`` -> ``ingest`` inside the sdist, or the alias)
and by ``pull`` (the sdist name -> its place in the receiving project).

What is rewritten, for a module ``old`` and its submodules ``old.x.y``:

- ``import old.x`` / ``import old.x as y`` -> ``import new.x`` / ``import new.x as y``;
- ``from old.x import y`` -> ``from new.x import y``;
- ``from parent import last`` where ``parent.last == old`` -> ``from new_parent import new_last as last``
  (or ``import new as last`` when ``new`` has no parent);
- dotted chains in code spelling ``old.x.f`` when the file binds them with a plain ``import old...``;
- string literals equal to ``old`` or starting with ``old.`` (``mock.patch("old.nodes.get")``) that
  read as a module path (not ``"ingest.yml"``, not a bare one-word ``"ingest"``, no spaces).

Relative imports, comments and formatting are left as they are. libcst is imported lazily: its
transformers are in rewrite_cst.py, imported only when a span needs them.
"""

from __future__ import annotations

import functools
import re

__all__ = ["rewrite_references", "is_identifier_path", "importable_paths", "check_parses", "NotPython"]

_DOTTED = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")


def is_identifier_path(dotted: str) -> bool:
    """True for a non-empty dotted path of Python identifiers (``a``, ``a.b_c``)."""
    return bool(_DOTTED.match(dotted or "")) and all(part.isidentifier() for part in dotted.split("."))


def _swap(dotted: str, old: str, new: str) -> str | None:
    """``dotted`` with its ``old`` prefix replaced by ``new``, or None when it does not start with old."""
    if dotted == old:
        return new
    if dotted.startswith(old + "."):
        return new + dotted[len(old) :]
    return None


# A string that ends in one of these names a file ("ingest.yml"), not a module attribute.
_FILE_SUFFIXES = frozenset("cfg csv db duckdb html ini j2 json log md parquet py sql toml txt xml yaml yml".split())


def _string_swap(value: str, old: str, new: str, targets: frozenset[str] | None = None) -> str | None:
    """Like ``_swap`` for a string literal, but a string is a target only when it reads as a module
    path: text with spaces or other characters, a bare one-word ``old`` (``"ingest"``, more often a
    key or a name than a module) and file names (``"ingest.yml"``) are left alone. With
    ``targets``, ``old.<rest>`` is renamed only when ``<rest>`` is, or is inside, one of them."""
    if not is_identifier_path(value) or (value == old and "." not in old):
        return None
    if "." in value and value.rsplit(".", 1)[1].lower() in _FILE_SUFFIXES:
        return None
    if targets is not None and value != old:
        rest = value[len(old) + 1 :] if value.startswith(old + ".") else None
        if rest is None or not any(rest == t or rest.startswith(t + ".") for t in targets if t):
            return None
    return _swap(value, old, new)


class NotPython(ValueError):
    """CPython's parser refuses the source (a syntax error, or nesting too deep to parse)."""


@functools.lru_cache(maxsize=16)
def check_parses(source: str):
    """Raise ``NotPython`` (one line) unless CPython's own parser accepts ``source``; return its ``ast``.

    Parsing is most of a pull's planning time, and a pull reads some files twice (the rewrite, then
    the catalog keys of pipeline.py): the last few trees are kept. Callers only read them."""
    import ast

    try:
        return ast.parse(source)
    except SyntaxError as exc:
        raise NotPython(f"{exc.msg} (line {exc.lineno})") from None
    except (MemoryError, RecursionError, ValueError) as exc:
        raise NotPython(f"cannot be parsed: {type(exc).__name__}: nested too deeply or malformed") from None


def importable_paths(files) -> frozenset[str]:
    """The dotted paths inside a package that a string can name: its modules and subpackages (from
    its file paths, relative to the package folder) and the top-level names of its ``__init__.py``.

    ``files`` maps relative POSIX paths (str or PurePath) to bytes (the ``__init__.py`` is read)."""
    import ast

    paths: set[str] = set()
    init = None
    for rel, data in files.items():
        parts = str(rel).replace("\\", "/").split("/")
        if not parts[-1].endswith((".py", ".pyi")):
            continue
        stem = parts[-1].rsplit(".", 1)[0]
        dotted = parts[:-1] if stem == "__init__" else [*parts[:-1], stem]
        if all(p.isidentifier() for p in dotted):
            paths.add(".".join(dotted))
        if parts == ["__init__.py"]:
            init = data
    if init is not None:
        try:
            tree = ast.parse(init.decode("utf-8") if isinstance(init, bytes) else init)
        except Exception:  # noqa: BLE001 - an unreadable __init__ names nothing
            tree = None
        for node in getattr(tree, "body", []):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                paths.add(node.name)
            elif isinstance(node, (ast.Assign, ast.AnnAssign)):
                for target in node.targets if isinstance(node, ast.Assign) else [node.target]:
                    if isinstance(target, ast.Name):
                        paths.add(target.id)
            elif isinstance(node, (ast.Import, ast.ImportFrom)):
                for alias in node.names:
                    paths.add((alias.asname or alias.name).split(".")[0])
    paths.discard("")
    return frozenset(paths)


def rewrite_references(source: str, old: str, new: str, targets: frozenset[str] | None = None) -> str:
    """Return ``source`` with absolute references to module ``old`` (and ``old.*``) spelled ``new``.

    A pure function: same input, same output; the source is returned unchanged (the same string)
    when it holds no reference. Raises ``ValueError`` when ``old``/``new`` are not dotted
    identifiers, and ``NotPython`` when CPython's parser refuses the source (libcst is never
    given such a file: deeply nested brackets crash its native parser).

    ``targets``, when given, limits which string literals are renamed: only those naming one of
    these paths inside ``old`` (``importable_paths``: its modules and the names its ``__init__``
    defines), or something inside one (``"old.nodes.requests.get"``). Other dotted strings that
    merely start with ``old.`` (Kedro dataset names such as ``"old.doubled"``) stay as they are.

    libcst does the rewriting. To keep packaging fast, the standard library's ``ast`` first finds
    the exact spans that hold a reference (import statements, strings, dotted chains), and only
    those go through libcst; everything else is kept as it is, byte for byte. Should a span not
    stand alone, the top-level statements holding references go through libcst instead, and when
    ``ast`` cannot read the file, the whole file does.
    """
    if not is_identifier_path(old) or not is_identifier_path(new):
        raise ValueError(f"not a dotted module path: {old!r} -> {new!r}")
    if old == new:
        return source
    # Fast path: every form we rewrite spells old's first component somewhere in the text (a plain
    # substring search first: the word-boundary pattern is ten times slower on a file without it).
    first = old.split(".")[0]
    if first not in source or not re.search(r"\b" + re.escape(first) + r"\b", source):
        return source
    # libcst never sees what CPython's own parser refuses (deep nesting crashes it); the tree is reused below
    tree = check_parses(source)
    found = _node_spans(source, old, tree)
    if found is not None:
        binds, spans = found
        if not spans:
            return source
        try:
            parts, end = [], len(source)
            for start, stop, kind in reversed(spans):
                if stop > end:
                    raise ValueError("overlapping spans")
                text = source[start:stop]
                fast = _rewrite_simple_span(text, kind, old, new, binds, targets)
                if fast is not None:
                    text = fast
                elif kind == "stmt":
                    text = _rewrite_cst(text, old, new, binds=binds, targets=targets)
                else:
                    text = _rewrite_cst_expression(text, old, new, binds=binds, targets=targets)
                parts += [source[stop:end], text]
                end = start
            parts.append(source[:end])
            result = "".join(reversed(parts))
            return source if result == source else result
        except Exception:  # noqa: BLE001 - an odd span (e.g. implicit concatenation): slower paths below
            pass
    spans = _statements_to_rewrite(source, old, tree)
    if spans is None:  # not parseable by ast, or odd line breaks: let libcst handle the whole file
        result = _rewrite_cst(source, old, new, binds=None, targets=targets)
        return source if result == source else result
    binds, ranges = spans
    if not ranges:
        return source
    lines = source.splitlines(keepends=True)
    for first, last in reversed(ranges):
        chunk = "".join(lines[first - 1 : last])
        lines[first - 1 : last] = [_rewrite_cst(chunk, old, new, binds=binds, targets=targets)]
    result = "".join(lines)
    return source if result == source else result


# The span shapes that need no libcst (importing it costs more than packaging 50 pipelines): a
# one-line import statement with plain names, a plain one-quote string literal without escapes or
# prefix, and a dotted chain spelled without spaces or brackets. Each gives exactly what libcst's
# rewrite of the same span gives (tests/unit/test_rewrite.py compares them); any other shape is None.
_NAME = r"[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*"
_FROM = re.compile(r"from([ \t]+)(" + _NAME + r")([ \t]+import[ \t]+[A-Za-z0-9_ \t,]+)")
_IMPORT_ITEM = re.compile(r"([ \t]*)(" + _NAME + r")((?:[ \t]+as[ \t]+[A-Za-z_][A-Za-z0-9_]*)?[ \t]*)")


def _rewrite_simple_span(
    text: str, kind: str, old: str, new: str, binds: bool, targets: frozenset[str] | None
) -> str | None:
    """The rewrite of one span found by ``_node_spans`` without libcst, or None (let libcst do it)."""
    if not text.isascii():
        return None
    if kind == "stmt":
        match = _FROM.fullmatch(text)
        if match:
            swapped = _swap(match.group(2), old, new)
            if swapped is None:
                return None  # ``from parent import last``: libcst splits the statement
            return f"from{match.group(1)}{swapped}{match.group(3)}"
        if not text.startswith("import") or text[6:7] not in (" ", "\t"):
            return None
        items = []
        for item in text[6:].split(","):
            match = _IMPORT_ITEM.fullmatch(item)
            if not match:
                return None
            swapped = _swap(match.group(2), old, new)
            items.append(item if swapped is None else f"{match.group(1)}{swapped}{match.group(3)}")
        return "import" + ",".join(items)
    if text == old and is_identifier_path(text):
        # a dotted chain (``_node_spans`` gives these only when a plain import binds the module)
        return new if binds else None
    if len(text) >= 2 and text[0] in "'\"" and text[-1] == text[0]:
        value = text[1:-1]
        if not value or "\\" in value or text[0] in value or not is_identifier_path(value):
            return None
        swapped = _string_swap(value, old, new, targets)
        return text if swapped is None else f"{text[0]}{swapped}{text[0]}"
    return None


# str.splitlines breaks lines at these characters and Python's tokenizer does not, so line numbers
# (and the offsets built from them) would disagree with the parser's: such sources are not indexed.
_LINE_BREAKS = "\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029"


def _index(source: str, old: str, refuse: str, tree=None, find_binds: bool = True):
    """What both ``ast`` indexers below start from: ``(tree, binds, dotted, matches, imports)``, or
    None when ``source`` holds a character of ``refuse`` or ``ast`` cannot parse it.

    ``dotted(node)`` spells a Name/Attribute chain (``a.b.c``) or gives None; ``matches(name)`` says
    whether a name is ``old`` or inside it; ``imports(node)`` whether an Import/ImportFrom statement
    refers to ``old`` absolutely; ``binds`` whether a plain ``import old[.x]`` binds old's first name.
    ``tree``: ``ast.parse(source)`` when the caller has it already (ast is only read, never changed).
    """
    import ast

    if any(ch in source for ch in refuse):
        return None
    if tree is None:
        try:
            tree = ast.parse(source)
        except (SyntaxError, ValueError):
            return None
    old_parent, _, old_last = old.rpartition(".")

    def dotted(node) -> str | None:  # a loop, not recursion: a recursive closure is a reference cycle
        parts = []
        while isinstance(node, ast.Attribute):
            parts.append(node.attr)
            node = node.value
        if not isinstance(node, ast.Name):
            return None
        parts.append(node.id)
        return ".".join(reversed(parts))

    def matches(name) -> bool:
        return isinstance(name, str) and (name == old or name.startswith(old + "."))

    def imports(node) -> bool:
        if isinstance(node, ast.Import):
            return any(matches(a.name) for a in node.names)
        return bool(
            node.level == 0
            and node.module
            and (matches(node.module) or (node.module == old_parent and any(a.name == old_last for a in node.names)))
        )

    binds = _binds(ast.walk(tree), matches) if find_binds else None
    return tree, binds, dotted, matches, imports


def _binds(nodes, matches) -> bool:
    """Whether one of ``nodes`` is a plain ``import old[.x]`` (no ``as``), binding old's first name."""
    import ast

    return any(
        isinstance(node, ast.Import) and any(a.asname is None and matches(a.name) for a in node.names) for node in nodes
    )


def _node_spans(source: str, old: str, tree=None):
    """``(binds, [(start, stop, kind), ...])``: the exact source spans (character offsets) that
    mention ``old`` -- import statements (kind ``"stmt"``), and string literals, f-strings and dotted
    chains (kind ``"expr"``) -- found with the standard library's ``ast``; libcst then rewrites each
    span alone, so a file costs a fast ``ast.parse`` plus a few tiny libcst parses.
    None when ``ast`` cannot index the source.
    """
    import ast

    # A BOM too (only this path refuses it): a source holding one goes to the statement path.
    index = _index(source, old, refuse=_LINE_BREAKS + "\ufeff", tree=tree, find_binds=False)
    if index is None:
        return None
    tree, _, dotted, matches, imports = index

    def chain(node) -> bool:
        """A dotted chain spelling ``old`` (a reference only when a plain import binds it: see below)."""
        if "." in old:
            return isinstance(node, ast.Attribute) and dotted(node) == old
        return isinstance(node, ast.Name) and node.id == old and isinstance(node.ctx, ast.Load)

    # Only the lines that can hold a reference are walked. A name, import or string that can be
    # rewritten spells ``first`` on one line of the text (a string spelling it through escapes, line
    # continuations or concatenation is never rewritten), unless an identifier is spelled in other
    # Unicode characters that normalise to it: so a line counts when it holds ``first`` or anything
    # non-ASCII. A node whose lines (with its decorators) hold none is skipped with all it contains,
    # at every level: a function is walked only into the statements, and the expressions, on such
    # lines. ``held[n]``: how many of lines 1..n count.
    lines = source.splitlines(keepends=True)
    first = old.split(".")[0]
    held = [0]
    for line in lines:
        held.append(held[-1] + (first in line or not line.isascii()))

    # One walk over the tree: whether a plain ``import old`` binds the name is only known at the end,
    # so chains (and f-strings holding one) wait in ``chains`` until then. Every Import node on a line
    # that counts is met (the walk only stops at imports, strings, f-strings and chains, none of which
    # holds an Import), and a chain's children (shorter Name/Attribute prefixes) never hold a span of
    # their own.
    found: list = []
    chains: list = []
    plain_imports: list = []
    stack = [tree]  # a stack, not recursion: a recursive closure is a reference cycle
    while stack:
        node = stack.pop()
        top = getattr(node, "lineno", None)
        if top is not None:
            for decorator in getattr(node, "decorator_list", ()):
                top = min(top, decorator.lineno)
            if held[node.end_lineno or node.lineno] == held[top - 1]:
                continue
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            if isinstance(node, ast.Import):
                plain_imports.append(node)
            if imports(node):
                found.append((node, "stmt"))
        elif isinstance(node, ast.JoinedStr):
            head = node.values[0] if node.values else None
            if isinstance(head, ast.Constant) and isinstance(head.value, str) and head.value.startswith(old + "."):
                found.append((node, "expr"))
            elif any(chain(inner) for inner in ast.walk(node)):
                chains.append((node, "expr"))
        elif isinstance(node, ast.Constant):
            if matches(node.value):
                found.append((node, "expr"))
        elif chain(node):
            chains.append((node, "expr"))
        else:
            stack.extend(ast.iter_child_nodes(node))
    starts = [0]
    for line in lines:
        starts.append(starts[-1] + len(line))
    binds = _binds(plain_imports, matches)
    if binds:
        found += chains
    if not found:
        return binds, []

    def offset(lineno: int, col: int) -> int:  # ast columns count UTF-8 bytes
        line = lines[lineno - 1]
        return starts[lineno - 1] + (col if line.isascii() else len(line.encode("utf-8")[:col].decode("utf-8")))

    spans = sorted(
        (offset(node.lineno, node.col_offset), offset(node.end_lineno, node.end_col_offset), kind)
        for node, kind in found
    )
    return binds, spans


def _statements_to_rewrite(source: str, old: str, tree=None):
    """``(binds, [(first_line, last_line), ...])`` of the top-level statements mentioning ``old``.

    ``binds`` says whether a plain ``import old[.x]`` binds old's first name (so dotted chains
    in code refer to the module). None when ``ast`` cannot index the source.
    """
    import ast

    index = _index(source, old, refuse=_LINE_BREAKS, tree=tree)
    if index is None:
        return None
    tree, binds, dotted, matches, imports = index

    def needs(stmt) -> bool:
        for node in ast.walk(stmt):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                if imports(node):
                    return True
            elif isinstance(node, ast.Constant):
                if matches(node.value):
                    return True
            elif isinstance(node, ast.JoinedStr):
                head = node.values[0] if node.values else None
                if isinstance(head, ast.Constant) and isinstance(head.value, str) and head.value.startswith(old + "."):
                    return True
            elif binds and isinstance(node, ast.Attribute) and "." in old:
                if dotted(node) == old:
                    return True
            elif binds and isinstance(node, ast.Name) and "." not in old:
                if node.id == old:
                    return True
        return False

    ranges: list[list[int]] = []
    for stmt in tree.body:
        if not needs(stmt):
            continue
        first = min([stmt.lineno, *(d.lineno for d in getattr(stmt, "decorator_list", []))])
        last = stmt.end_lineno or stmt.lineno
        if ranges and first <= ranges[-1][1]:  # statements sharing a line (``a; b``)
            ranges[-1][1] = max(ranges[-1][1], last)
        else:
            ranges.append([first, last])
    return binds, [tuple(r) for r in ranges]


class Rename:
    """One rename, ``old`` -> ``new`` (``targets``: see ``rewrite_references``), as the libcst
    transformers of rewrite_cst.py apply it."""

    __slots__ = ("old", "new", "targets")

    def __init__(self, old: str, new: str, targets: frozenset[str] | None = None) -> None:
        self.old, self.new, self.targets = old, new, targets

    def swap(self, dotted: str) -> str | None:
        return _swap(dotted, self.old, self.new)

    def swap_string(self, value: str) -> str | None:
        return _string_swap(value, self.old, self.new, self.targets)


def _rewrite_cst(source: str, old: str, new: str, binds: bool | None, targets: frozenset[str] | None = None) -> str:
    """The libcst rewrite of ``source`` (a whole module, a run of top-level statements or one
    statement); ``binds`` None: find out from the source itself."""
    from .rewrite_cst import rewrite_module

    return rewrite_module(source, Rename(old, new, targets), binds)


def _rewrite_cst_expression(source: str, old: str, new: str, binds: bool, targets: frozenset[str] | None = None) -> str:
    """The libcst rewrite of one expression (a string literal, an f-string, a dotted chain)."""
    from .rewrite_cst import rewrite_expression

    return rewrite_expression(source, Rename(old, new, targets), binds)
