"""Pulled YAML: anchors and aliases refused wherever they sit, and nesting bounded, with libyaml (an
event pass, then the C loader) and without it (the pure-Python loader's one pass)."""

from __future__ import annotations

import re

import pytest

from piperack.errors import PiperackError
from piperack.pull.plan import _yaml_mapping


@pytest.fixture(params=["libyaml", "pure-python"])
def loader(request, monkeypatch):
    """Each test runs with PyYAML's C loader and, as on a machine without libyaml, without it."""
    import yaml

    if request.param == "libyaml":
        assert yaml.__with_libyaml__, "this machine's PyYAML has libyaml: the fast path must be tested"
    else:
        monkeypatch.delattr(yaml, "CSafeLoader")
    return request.param


def exact(message: str) -> str:
    """A ``match=`` pattern for exactly this one-line message."""
    return f"^{re.escape(message)}$"


ANCHORS_REFUSED = "p.yml: YAML anchors and aliases are not accepted in pulled config; refused"


def not_valid(error: str) -> str:
    return f"p.yml: not valid YAML ({error}); refused"


REFUSED_ANCHORS = [
    "a: &x 1\nb: *x\n",
    "a: *x\n",
    "&top\na: 1\n",
    "a: [1, {b: &q 2}]\n",
    "a:\n  - &k {c: 1}\n",
    "? &key k\n: v\n",
]


@pytest.mark.parametrize("text", REFUSED_ANCHORS)
def test_anchors_and_aliases_anywhere_are_refused(text, loader):
    with pytest.raises(PiperackError, match=exact(ANCHORS_REFUSED)):
        _yaml_mapping(text.encode(), "p.yml")


@pytest.mark.parametrize(
    "text, libyaml, pure_python",
    [
        # libyaml's event pass meets the anchor before the second document; the pure-Python loader
        # reads one document and stops at the second
        ("a: 1\n---\nb: &c 2\n", ANCHORS_REFUSED, not_valid("ComposerError")),
        ("a: 1\n---\nb: 2\n", not_valid("ComposerError"), not_valid("ComposerError")),
        ("!!python/object:os.system x\n", not_valid("ConstructorError"), not_valid("ConstructorError")),
        ("a: [1\n", not_valid("ParserError"), not_valid("ParserError")),
        (b"\xff".decode("latin-1"), not_valid("UnicodeDecodeError"), not_valid("UnicodeDecodeError")),
    ],
)
def test_other_streams_are_refused(text, libyaml, pure_python, loader):
    expected = libyaml if loader == "libyaml" else pure_python
    with pytest.raises(PiperackError, match=exact(expected)):
        _yaml_mapping(text.encode("latin-1" if "\xff" in text else "utf-8"), "p.yml")


def test_plain_mappings_read_as_safe_load_reads_them(loader):
    import yaml

    text = "a: 1\nb: [1, 2, {c: d}]\nwhen: 2024-01-01\nflag: yes\nempty:\n"
    assert _yaml_mapping(text.encode(), "p.yml") == yaml.safe_load(text)
    assert _yaml_mapping(b"", "p.yml") == {}


@pytest.mark.parametrize("depth", [101, 100_000])
def test_deep_nesting_is_refused_in_one_line(depth, loader):
    """libyaml's composer recurses: 100,000 nested brackets crashed the process before the event pass
    refused them. The pure-Python loader stops at Python's recursion limit instead."""
    text = "a: " + "[" * depth + "]" * depth + "\n"
    expected = "p.yml: nested more than 100 levels deep; refused"  # libyaml's own refusal, in our words
    with pytest.raises(PiperackError, match=exact(expected)):
        _yaml_mapping(text.encode(), "p.yml")


def test_nesting_up_to_the_limit_reads(loader):
    text = "a: " + "[" * 99 + "1" + "]" * 99 + "\n"
    value = _yaml_mapping(text.encode(), "p.yml")["a"]
    for _ in range(98):
        value = value[0]
    assert value == [1]
