"""The shared bounded loaders (yamlload): every YAML and JSON file piperack's tasks read has depth and
alias-expansion limits, refused as a ValueError the readers turn into one line (issue 20, kind 7)."""

from __future__ import annotations

import json

import pytest

from piperack import yamlload


def billion_laughs() -> str:
    lines = ["a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]" for i in range(1, 10)]
    return "\n".join(lines) + "\n"


@pytest.fixture(params=["libyaml", "pure-python"])
def loader(request, monkeypatch):
    """Both of load_yaml's paths: with PyYAML's C extension, and without it."""
    import yaml

    if request.param == "pure-python":
        monkeypatch.delattr(yaml, "CSafeLoader", raising=False)
        yamlload._anchor_refusing_loader.cache_clear()
    elif not hasattr(yaml, "CSafeLoader"):
        pytest.skip("PyYAML without libyaml here")
    yield
    yamlload._anchor_refusing_loader.cache_clear()


def test_a_billion_laughs_is_refused_where_anchors_are_accepted(loader):
    with pytest.raises(yamlload.ExpandsTooFar, match="^its aliases expand to more than 100000 values$"):
        yamlload.load_yaml(billion_laughs(), allow_anchors=True)
    with pytest.raises(yamlload.AnchorsRefused):
        yamlload.load_yaml(billion_laughs())
    assert issubclass(yamlload.ExpandsTooFar, yamlload.NestedTooDeeply)  # readers catching depth catch it


def test_anchors_within_the_limit_still_load(loader):
    text = "base: &b {retries: 3}\nfast: {<<: *b, timeout: 1}\nsame: *b\n"
    assert yamlload.load_yaml(text, allow_anchors=True) == {
        "base": {"retries": 3},
        "fast": {"retries": 3, "timeout": 1},
        "same": {"retries": 3},
    }


@pytest.mark.parametrize("allow_anchors", [False, True])
def test_50000_levels_of_nesting_are_refused(loader, allow_anchors):
    with pytest.raises(yamlload.NestedTooDeeply, match="^nested more than 100 levels deep$"):
        yamlload.load_yaml("x: " + "[" * 50_000 + "]" * 50_000, allow_anchors=allow_anchors)


@pytest.mark.parametrize("depth", [101, 50_000])
def test_deep_json_is_refused_not_a_recursion_error(depth):
    with pytest.raises(yamlload.NestedTooDeeply, match="^nested more than 100 levels deep$"):
        yamlload.load_json("[" * depth + "]" * depth)
    with pytest.raises(ValueError):  # what the readers already catch for malformed JSON
        yamlload.load_json('{"a": ' * depth + "1" + "}" * depth)


def test_json_within_the_limit_is_json():
    value = {"files": [{"url": "x", "hashes": {"sha256": "0" * 64}}], "deep": [[[1]]]}
    assert yamlload.load_json(json.dumps(value)) == value
    assert yamlload.load_json(json.dumps(value).encode()) == value
