"""Unit tests of piperack.rewrite.rewrite_references (pure function, libcst)."""

from __future__ import annotations

import ast
import re
import textwrap

import pytest

from piperack.rewrite import is_identifier_path, rewrite_references

OLD = "demo.pipelines.ingest"


def rw(source: str, old: str = OLD, new: str = "ingest") -> str:
    out = rewrite_references(textwrap.dedent(source), old, new)
    ast.parse(out)  # whatever we produce must stay valid Python
    return out


def d(source: str) -> str:
    return textwrap.dedent(source)


def exact(message: str) -> str:
    """A ``match=`` pattern for exactly this one-line message."""
    return f"^{re.escape(message)}$"


@pytest.mark.parametrize(
    "before, after",
    [
        ("import demo.pipelines.ingest\n", "import ingest\n"),
        ("import demo.pipelines.ingest.nodes\n", "import ingest.nodes\n"),
        ("import demo.pipelines.ingest.nodes as n\n", "import ingest.nodes as n\n"),
        ("import os, demo.pipelines.ingest.nodes as n\n", "import os, ingest.nodes as n\n"),
        ("from demo.pipelines.ingest import nodes\n", "from ingest import nodes\n"),
        ("from demo.pipelines.ingest.nodes import fetch, clean\n", "from ingest.nodes import fetch, clean\n"),
        (
            "from demo.pipelines.ingest.nodes import (\n    fetch,  # keep me\n    clean,\n)\n",
            "from ingest.nodes import (\n    fetch,  # keep me\n    clean,\n)\n",
        ),
        ("from demo.pipelines.ingest.nodes import *\n", "from ingest.nodes import *\n"),
        ("from demo.pipelines import ingest\n", "import ingest\n"),
        ("from demo.pipelines import ingest as ing\n", "import ingest as ing\n"),
    ],
)
def test_import_forms(before, after):
    assert rw(before) == after


def test_from_parent_import_with_other_names_is_split():
    out = rw("from demo.pipelines import other, ingest\n")
    assert out == "from demo.pipelines import other; import ingest\n"


def test_from_parent_import_into_dotted_new_keeps_the_bound_name():
    out = rewrite_references("from demo.pipelines import ingest\n", OLD, "other.pipelines.ingest_v2")
    assert out == "from other.pipelines import ingest_v2 as ingest\n"
    out = rewrite_references("from demo.pipelines import ingest\n", OLD, "other.pipelines.ingest")
    assert out == "from other.pipelines import ingest\n"


def test_similar_names_are_not_touched():
    src = d(
        """\
        import demo.pipelines.ingestion
        from demo.pipelines.ingest_tools import x
        from demo.pipelines import ingestion
        import demo.pipelines
        s = "demo.pipelines.ingestion.nodes"
        t = "demo.pipelines"
        """
    )
    assert rw(src) == src


def test_relative_imports_untouched():
    src = d(
        """\
        from . import nodes
        from .nodes import fetch
        from ..ingest import nodes as n2
        from .demo.pipelines.ingest import x
        """
    )
    assert rw(src) == src


def test_dotted_chains_after_plain_import():
    src = d(
        """\
        import demo.pipelines.ingest.nodes


        def test_fetch():
            # a comment survives
            assert demo.pipelines.ingest.nodes.fetch(  1 )  == 2
            return (demo.pipelines.ingest).__name__
        """
    )
    assert rw(src) == d(
        """\
        import ingest.nodes


        def test_fetch():
            # a comment survives
            assert ingest.nodes.fetch(  1 )  == 2
            return (ingest).__name__
        """
    )


def test_chains_not_rewritten_without_binding_import():
    # `demo` here is something else entirely (no `import demo.pipelines.ingest...`).
    src = "demo = object()\nx = demo.pipelines.ingest.nodes\n"
    assert rw(src) == src


def test_chains_into_longer_new_name():
    src = "import ingest.nodes\nvalue = ingest.nodes.fetch()\n"
    out = rewrite_references(src, "ingest", "demo.pipelines.ingest")
    assert out == "import demo.pipelines.ingest.nodes\nvalue = demo.pipelines.ingest.nodes.fetch()\n"


def test_single_component_old_only_rewrites_loads_of_the_module():
    src = d(
        """\
        import ingest
        import ingest.nodes as n


        class Thing:
            ingest = 1

            def ingest(self, ingest=None):
                return self.ingest, dict(ingest=2)


        def ingest():
            global ingest
            try:
                pass
            except ValueError as ingest:
                pass
            for ingest in []:
                pass
            ingest: int = 3
            ingest += 1
            return ingest.nodes.fetch, other.ingest, ingest
        """
    )
    out = rewrite_references(src, "ingest", "demo.pipelines.ingest")
    assert out == d(
        """\
        import demo.pipelines.ingest
        import demo.pipelines.ingest.nodes as n


        class Thing:
            ingest = 1

            def ingest(self, ingest=None):
                return self.ingest, dict(ingest=2)


        def ingest():
            global ingest
            try:
                pass
            except ValueError as ingest:
                pass
            for ingest in []:
                pass
            ingest: int = 3
            ingest += 1
            return demo.pipelines.ingest.nodes.fetch, other.ingest, demo.pipelines.ingest
        """
    )
    ast.parse(out)


@pytest.mark.parametrize(
    "before, after",
    [
        ('mock.patch("demo.pipelines.ingest.nodes.requests.get")\n', 'mock.patch("ingest.nodes.requests.get")\n'),
        ("x = 'demo.pipelines.ingest'\n", "x = 'ingest'\n"),
        ('x = r"demo.pipelines.ingest.nodes"\n', 'x = r"ingest.nodes"\n'),
        ('x = """demo.pipelines.ingest.nodes"""\n', 'x = """ingest.nodes"""\n'),
        ('mocker.patch(f"demo.pipelines.ingest.nodes.{name}")\n', 'mocker.patch(f"ingest.nodes.{name}")\n'),
        ('x = b"demo.pipelines.ingest"\n', 'x = b"demo.pipelines.ingest"\n'),
        ('x = "see demo.pipelines.ingest"\n', 'x = "see demo.pipelines.ingest"\n'),
        ('x = "demo.pipelines.ingest is nice"\n', 'x = "demo.pipelines.ingest is nice"\n'),
    ],
)
def test_string_literals(before, after):
    assert rw(before) == after


def test_monkeypatch_setattr_string_target():
    src = 'monkeypatch.setattr("demo.pipelines.ingest.nodes.fetch", fake)\n'
    assert rw(src) == 'monkeypatch.setattr("ingest.nodes.fetch", fake)\n'


def test_formatting_and_comments_survive_everywhere():
    src = d(
        """\
        # header comment
        \"\"\"Module docstring.\"\"\"
        import os  # os


        from demo.pipelines.ingest.nodes import (  # why
            fetch ,
        )

        x = {  'a' : 1 }   # odd spacing kept
        """
    )
    out = rw(src)
    assert out == src.replace("demo.pipelines.ingest.nodes", "ingest.nodes")


def test_no_reference_returns_same_object_and_is_idempotent():
    src = "import os\nprint(os.sep)\n"
    assert rewrite_references(src, OLD, "ingest") is src
    once = rw("from demo.pipelines.ingest import nodes\n")
    assert rewrite_references(once, OLD, "ingest") == once


def test_alias_target():
    src = "from demo.pipelines.ingest.nodes import fetch\n"
    assert rewrite_references(src, OLD, "ingest_tools") == "from ingest_tools.nodes import fetch\n"


def test_same_name_is_noop():
    src = "import ingest\n"
    assert rewrite_references(src, "ingest", "ingest") is src


@pytest.mark.parametrize("bad", ["", "a..b", "1abc", "a.b-c", "../x", "a/b"])
def test_bad_names_rejected(bad):
    with pytest.raises(ValueError, match=exact(f"not a dotted module path: {bad!r} -> 'ok'")):
        rewrite_references("import x\n", bad, "ok")
    with pytest.raises(ValueError, match=exact(f"not a dotted module path: 'ok' -> {bad!r}")):
        rewrite_references("import x\n", "ok", bad)


def test_is_identifier_path():
    assert is_identifier_path("a.b_c.d1")
    assert not is_identifier_path("a.")
    assert not is_identifier_path("a.1b")


def test_syntax_error_propagates():
    from piperack.rewrite import NotPython

    with pytest.raises(NotPython, match=r"invalid syntax \(line 1\)"):
        rewrite_references("import demo.pipelines.ingest as\n", OLD, "ingest")


@pytest.mark.parametrize(
    "source, message",
    [
        (
            "import demo.pipelines.ingest\nx = " + "(" * 3000 + "1" + ")" * 3000 + "\n",
            "too many nested parentheses (line 2)",
        ),
        (
            "import demo.pipelines.ingest\nx = " + "[" * 5000 + "]" * 5000 + "\n",
            "too many nested parentheses (line 2)",
        ),
        (
            "import demo.pipelines.ingest\nx = " + "not " * 100_000 + "y\n",
            "cannot be parsed: MemoryError: nested too deeply or malformed",
        ),
        (
            "import demo.pipelines.ingest\nx = " + "-" * 200_000 + "1\n",
            "cannot be parsed: MemoryError: nested too deeply or malformed",
        ),
    ],
)
def test_deeply_nested_python_is_refused_in_one_line_not_a_crash(source, message):
    """libcst's native parser crashes the process on such nesting; CPython's parser refuses it first."""
    from piperack.rewrite import NotPython

    with pytest.raises(NotPython, match=exact(message)):
        rewrite_references(source, OLD, "ingest")


def test_targets_limit_strings_to_module_paths_of_the_package():
    from piperack.rewrite import importable_paths

    targets = importable_paths(
        {
            "__init__.py": b"from .nodes import run\nVERSION = 1\n",
            "nodes.py": b"",
            "sub/__init__.py": b"",
            "sub/deep.py": b"",
            "data.yml": b"",
        }
    )
    assert targets == {"nodes", "sub", "sub.deep", "run", "VERSION"}
    source = (
        "from unittest import mock\n"
        "NAMES = ['demo.pipelines.ingest.doubled', 'demo.pipelines.ingest.nodes', 'demo.pipelines.ingest.sub.deep.f']\n"
        "LOG = 'demo.pipelines.ingest.runs'\n"
        "@mock.patch('demo.pipelines.ingest.nodes.requests.get')\n"
        "def test(): mock.patch('demo.pipelines.ingest.run')\n"
    )
    out = rewrite_references(source, OLD, "feed", targets=targets)
    assert "'demo.pipelines.ingest.doubled'" in out and "'demo.pipelines.ingest.runs'" in out
    assert "'feed.nodes'" in out and "'feed.sub.deep.f'" in out
    assert "mock.patch('feed.nodes.requests.get')" in out and "mock.patch('feed.run')" in out


# -- the ast index + per-statement libcst path must agree with a whole-file libcst rewrite ------

CORPUS = [
    d(
        """\
        \"\"\"Tests.\"\"\"
        import os; import demo.pipelines.ingest.nodes as n; x = 1
        from unittest import mock

        import demo.pipelines.ingest.nodes


        @mock.patch("demo.pipelines.ingest.nodes.fetch")
        @other
        def test_a(fetch):
            assert demo.pipelines.ingest.nodes.CHUNK  # trailing comment
            value = 'demo.pipelines.ingest'


        class TestB:
            def test_b(self):
                from demo.pipelines.ingest import pipeline
                if True:
                    import demo.pipelines.ingest as again
                return pipeline


        if __name__ == "__main__":  # pragma: no cover
            print(demo.pipelines.ingest.nodes.__name__,
                  "demo.pipelines.ingest.x")
        """
    ),
    "from demo.pipelines import ingest, other  # both\nprint(ingest)\n",
    "x = (\n    'a'\n    'demo.pipelines.ingest.nodes'\n)\n"
    "import demo.pipelines.ingest\r\ny = demo.pipelines.ingest\r\n",
    "import demo.pipelines.ingest",  # no trailing newline
]


@pytest.mark.parametrize("src", CORPUS)
def test_fast_path_equals_whole_file_libcst(src):
    from piperack.rewrite import _rewrite_cst

    for old, new in [(OLD, "ingest"), (OLD, "x.y.ingest_tools"), ("ingest", "demo.pipelines.ingest")]:
        fast = rewrite_references(src, old, new)
        whole = _rewrite_cst(src, old, new, binds=None)
        assert fast == whole
        ast.parse(fast)


def test_decorated_and_semicolon_statements_are_rewritten():
    out = rw(CORPUS[0])
    assert "import os; import ingest.nodes as n; x = 1" in out
    assert '@mock.patch("ingest.nodes.fetch")' in out
    assert "assert ingest.nodes.CHUNK  # trailing comment" in out
    assert "from ingest import pipeline" in out
    assert "import ingest as again" in out
    assert 'print(ingest.nodes.__name__,\n          "ingest.x")' in out
    assert "demo." not in out


def test_form_feed_source_falls_back_to_whole_file():
    src = "import os\n\x0c\nimport demo.pipelines.ingest.nodes\n"
    assert rw(src) == "import os\n\x0c\nimport ingest.nodes\n"


def test_unchanged_lines_are_kept_byte_for_byte():
    src = "import os   \t# odd  \n\n\nfrom demo.pipelines.ingest import nodes\r\nz  =  1\n"
    assert rw(src) == "import os   \t# odd  \n\n\nfrom ingest import nodes\r\nz  =  1\n"


def test_concatenated_f_string_parts_are_not_targets():
    src = "x = ('see ' f'demo.pipelines.ingest.{name}')\n"
    assert rw(src) == src
    from piperack.rewrite import _rewrite_cst

    assert _rewrite_cst(src, OLD, "ingest", binds=None) == src


def test_spans_path_is_used_and_matches_whole_file_on_the_corpus(monkeypatch):
    """The exact-span path handles every corpus file by itself (no fallback to slower paths)."""
    import piperack.rewrite as mod

    def no_fallback(*args, **kwargs):
        raise AssertionError("fell back to the statement path")

    for src in CORPUS:
        expected = mod._rewrite_cst(src, OLD, "ingest", binds=None)
        monkeypatch.setattr(mod, "_statements_to_rewrite", no_fallback)
        assert mod.rewrite_references(src, OLD, "ingest") == expected
        monkeypatch.undo()


def test_non_ascii_columns_are_handled():
    src = "s = 'ünïcödé'; t = \"demo.pipelines.ingest.nodes\"  # é\nimport demo.pipelines.ingest\n"
    assert rw(src) == "s = 'ünïcödé'; t = \"ingest.nodes\"  # é\nimport ingest\n"


# -- the ast index walks only the lines that hold old's first name: references at any depth --------

NESTED = [
    d(
        '''\
        """Prose naming demo.pipelines.ingest is a docstring, not a target."""
        import contextlib
        from unittest import mock

        import demo.pipelines.ingest.nodes


        def outer():
            x = 1

            def inner():
                from demo.pipelines.ingest import pipeline
                return pipeline

            class Local:
                @staticmethod
                @contextlib.contextmanager
                def ctx(
                    target="demo.pipelines.ingest.nodes.fetch",
                ):
                    yield target

            return inner, Local, x


        class Suite:
            """Docs."""

            @mock.patch(
                "demo.pipelines.ingest.nodes.clean"
            )
            def test_decorated(self, clean):
                with contextlib.suppress(KeyError), open(
                    "x"
                ) as f:
                    try:
                        import demo.pipelines.ingest as again
                    except ImportError:
                        value = demo.pipelines.ingest.nodes.CHUNK
                    else:
                        pass
                    finally:
                        print(f"demo.pipelines.ingest.{f}", value)

            def untouched(self):
                return [n for n in range(3) if n]


        TEXT = """
        line one
        demo.pipelines.ingest.nodes
        """
        ONE_LINE = """demo.pipelines.ingest.nodes"""
        SPLIT = "demo.pipelines.\\
        ingest.nodes"
        run = lambda: demo.pipelines.ingest.nodes.run()
        data = {
            "k": [
                (1, "demo.pipelines.ingest.nodes"),
            ],
        }
        match data:
            case {"k": [(_, "demo.pipelines.ingest.sub")]}:
                from demo.pipelines.ingest.sub import thing
            case _:
                pass


        async def go(ctx):
            async with ctx() as c:
                async for i in c:
                    await demo.pipelines.ingest.nodes.step(i)


        for i in range(2):
            while i:
                if i:
                    i = [demo.pipelines.ingest.nodes.step(j) for j in range(i)]
                elif i:
                    break
        '''
    ),
    d(
        """\
        def only_inside():
            '''No import at the top.'''
            for _ in range(1):
                from demo.pipelines.ingest import nodes  # late import
            return nodes.x, "demo.pipelines.ingest.nodes.x"
        """
    ),
    "@decorate('demo.pipelines.ingest.nodes')\nclass C:\n    pass\n",
]


@pytest.mark.parametrize("src", NESTED)
def test_references_at_any_depth_equal_whole_file_libcst(src, monkeypatch):
    """The walk prunes at every level (a node whose lines, decorators included, do not spell old's
    first name is skipped): whatever it skips, the result is libcst's whole-file rewrite, found by the
    exact-span path itself."""
    import piperack.rewrite as mod

    for old, new in [(OLD, "ingest"), (OLD, "x.y.ingest_tools"), ("demo", "other")]:
        expected = mod._rewrite_cst(src, old, new, binds=None)
        monkeypatch.setattr(mod, "_statements_to_rewrite", lambda *a, **k: pytest.fail("fell back"))
        assert mod.rewrite_references(src, old, new) == expected
        monkeypatch.undo()


def test_nested_references_are_all_found():
    out = rw(NESTED[0])
    assert out.count("demo") == 3  # the docstring, TEXT's text and SPLIT's continued line: not module paths
    assert '"""Prose naming demo.pipelines.ingest is' in out and "\ndemo.pipelines.ingest.nodes\n" in out
    for line in [
        "    from ingest import pipeline",
        '        target="ingest.nodes.fetch",',
        '        "ingest.nodes.clean"',
        "        import ingest as again",
        "        value = ingest.nodes.CHUNK",
        '        print(f"ingest.{f}", value)',
        '    case {"k": [(_, "ingest.sub")]}:',
        "        from ingest.sub import thing",
        "            await ingest.nodes.step(i)",
        "            i = [ingest.nodes.step(j) for j in range(i)]",
        'ONE_LINE = """ingest.nodes"""',
        "run = lambda: ingest.nodes.run()",
        '        (1, "ingest.nodes"),',
    ]:
        assert line + "\n" in out, line
    assert 'SPLIT = "demo.pipelines.\\\ningest.nodes"' in out  # a line continuation: left alone
    assert rw(NESTED[1]) == NESTED[1].replace("demo.pipelines.ingest", "ingest")


STDLIB_FILES = ["genericpath.py", "glob.py", "fnmatch.py", "tempfile.py"]


@pytest.mark.parametrize("name", STDLIB_FILES)
def test_real_files_fast_path_agrees_with_whole_file_libcst(name):
    """Real-world code (the standard library's), renaming modules it uses: both paths agree."""
    import os.path
    import sysconfig

    from piperack.rewrite import _rewrite_cst

    path = os.path.join(sysconfig.get_paths()["stdlib"], name)
    assert os.path.isfile(path), f"{name}: a pure-Python module of every CPython's standard library"
    src = open(path, encoding="utf-8").read()
    for old, new in [("os", "operating"), ("os.path", "x.ospath"), ("collections", "colls")]:
        fast = rewrite_references(src, old, new)
        assert fast == _rewrite_cst(src, old, new, binds=None)
        ast.parse(fast)


# The span shapes rewrite.py's ``_rewrite_simple_span`` rewrites without libcst: a one-line import
# statement with plain names (``from X import a as b, c``, ``import X, Y as n``) and a plain
# one-quote string literal without escapes or prefix, for either value of ``binds``; and a dotted
# chain spelled without spaces or brackets, when a plain import binds the module (``_node_spans``
# only gives chains then).
FAST_SPANS = [
    ("stmt", "from demo.pipelines.ingest import nodes"),
    ("stmt", "from  demo.pipelines.ingest.nodes\timport a as b,  c"),
    ("stmt", "import demo.pipelines.ingest"),
    ("stmt", "import os, demo.pipelines.ingest.nodes as n,demo.pipelines.ingest"),
    ("stmt", "import demo.pipelines.ingestion, demo.pipelines.ingest"),
    ("expr", '"demo.pipelines.ingest.nodes.get"'),
    ("expr", "'demo.pipelines.ingest'"),
    ("expr", '"demo.pipelines.ingest.yml"'),
    ("expr", '"demo.pipelines.ingest.doubled"'),
]
FAST_CASES = [(kind, text, binds) for kind, text in FAST_SPANS for binds in (True, False)]
FAST_CASES.append(("expr", "demo.pipelines.ingest", True))

# The shapes it must leave to libcst (None): ``from parent import last`` (libcst splits or rewrites
# the statement), a star import or brackets (not plain names), spaces inside a dotted name, string
# escapes, prefixes, triple quotes, implicit concatenation, f-strings; and a dotted chain when no
# plain import binds the module (not a reference at all: libcst's answer stands).
DECLINED_SPANS = [
    ("stmt", "from demo.pipelines import ingest"),
    ("stmt", "from demo.pipelines import ingest as x, other"),
    ("stmt", "from demo.pipelines.ingest import *"),
    ("stmt", "from demo.pipelines.ingest import (a, b)"),
    ("stmt", "import demo . pipelines.ingest"),
    ("expr", '"demo.pipelines.ingest\\x2enodes"'),
    ("expr", 'r"demo.pipelines.ingest.nodes"'),
    ("expr", '"""demo.pipelines.ingest.nodes"""'),
    ("expr", '"demo.pipelines.ingest" ".nodes"'),
    ("expr", 'f"demo.pipelines.ingest.{x}"'),
]
DECLINED_CASES = [(kind, text, binds) for kind, text in DECLINED_SPANS for binds in (True, False)]
DECLINED_CASES.append(("expr", "demo.pipelines.ingest", False))

TARGETS = [None, frozenset({"nodes"})]
NEW_NAMES = ["ingest", "other.place.ingest"]


@pytest.mark.parametrize("kind,text,binds", FAST_CASES)
@pytest.mark.parametrize("targets", TARGETS)
@pytest.mark.parametrize("new", NEW_NAMES)
def test_spans_the_fast_path_handles_equal_libcst(kind, text, binds, targets, new):
    """The shapes rewritten without libcst give exactly libcst's result."""
    from piperack.rewrite import _rewrite_cst, _rewrite_cst_expression, _rewrite_simple_span

    fast = _rewrite_simple_span(text, kind, OLD, new, binds, targets)
    assert fast is not None, "the fast path declined a shape it is meant to rewrite"
    cst = _rewrite_cst if kind == "stmt" else _rewrite_cst_expression
    assert fast == cst(text, OLD, new, binds=binds, targets=targets)


@pytest.mark.parametrize("kind,text,binds", DECLINED_CASES)
@pytest.mark.parametrize("targets", TARGETS)
@pytest.mark.parametrize("new", NEW_NAMES)
def test_spans_the_fast_path_declines_are_left_to_libcst(kind, text, binds, targets, new):
    from piperack.rewrite import _rewrite_simple_span

    assert _rewrite_simple_span(text, kind, OLD, new, binds, targets) is None


def test_simple_files_are_rewritten_without_importing_libcst():
    code = (
        "from unittest import mock\n\nimport demo.pipelines.ingest.helpers\nfrom demo.pipelines.ingest import nodes\n\n"
        "def test_x():\n    with mock.patch('demo.pipelines.ingest.nodes.ratio'):\n"
        "        assert demo.pipelines.ingest.helpers.ratio(1, 0) == 0.0\n"
    )
    script = (
        "import sys\nfrom piperack.rewrite import rewrite_references\n"
        f"out = rewrite_references({code!r}, 'demo.pipelines.ingest', 'ingest')\n"
        "assert 'demo' not in out, out\nassert 'libcst' not in sys.modules\n"
    )
    import subprocess
    import sys

    subprocess.run([sys.executable, "-c", script], check=True)
