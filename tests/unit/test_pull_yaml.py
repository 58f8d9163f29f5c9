"""Pulled YAML is read in one pass that refuses anchors and aliases wherever they sit (issue 14)."""

from __future__ import annotations

import pytest

from piperack.errors import PiperackError
from piperack.pull.plan import _yaml_mapping

REFUSED_ANCHORS = [
    "a: &x 1\nb: *x\n",
    "a: *x\n",
    "&top\na: 1\n",
    "a: [1, {b: &q 2}]\n",
    "a:\n  - &k {c: 1}\n",
    "? &key k\n: v\n",
]


@pytest.mark.parametrize("text", REFUSED_ANCHORS)
def test_anchors_and_aliases_anywhere_are_refused(text):
    with pytest.raises(PiperackError, match="anchors and aliases are not accepted"):
        _yaml_mapping(text.encode(), "p.yml")


@pytest.mark.parametrize(
    "text",
    [
        "a: 1\n---\nb: &c 2\n",
        "a: 1\n---\nb: 2\n",
        "!!python/object:os.system x\n",
        "a: [1\n",
        b"\xff".decode("latin-1"),
    ],
)
def test_other_streams_are_refused(text):
    with pytest.raises(PiperackError, match="refused"):
        _yaml_mapping(text.encode("latin-1" if "\xff" in text else "utf-8"), "p.yml")


def test_plain_mappings_read_as_safe_load_reads_them():
    import yaml

    text = "a: 1\nb: [1, 2, {c: d}]\nwhen: 2024-01-01\nflag: yes\nempty:\n"
    assert _yaml_mapping(text.encode(), "p.yml") == yaml.safe_load(text)
    assert _yaml_mapping(b"", "p.yml") == {}
