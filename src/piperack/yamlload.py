"""The one YAML loader for YAML piperack did not write: pulled config, fs-args, airflow.yml, the
catalog a pulled pipeline reads. Limits: nesting depth, anchors/aliases refused where asked, and
where they are accepted, what they expand to (a "billion laughs" file); size caps are the callers',
by what the file is. ``load_json`` is the same for JSON piperack reads back (journals, caches,
stamps, run records, index pages): nesting refused instead of a RecursionError.

Errors are typed (``AnchorsRefused``, ``NestedTooDeeply``, ``yaml.YAMLError``) so each reader says
in its own words which file is at fault, without quoting content that may hold credentials.
"""

from __future__ import annotations

import functools

MAX_YAML_DEPTH = 100
MAX_YAML_ALIASED = 100_000  # values aliases may add, where anchors are accepted


class AnchorsRefused(ValueError):
    """YAML anchors or aliases where they are not accepted (they can expand without bound)."""


@functools.cache
def _anchor_refusing_loader(refuse_anchors: bool = True):
    """yaml's pure-Python SafeLoader refusing anchors, aliases and deep nesting as it meets them, for a
    PyYAML without libyaml: every node of a document (scalar, sequence, mapping or alias) is composed
    through ``compose_node``, so one pass checks them all before any alias could be expanded."""
    import yaml

    class Loader(yaml.SafeLoader):
        depth = 0

        def compose_node(self, parent, index):
            event = self.peek_event()
            if refuse_anchors and (isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None)):
                raise AnchorsRefused("YAML anchors and aliases are not accepted")
            if not isinstance(event, yaml.CollectionStartEvent):
                return super().compose_node(parent, index)
            self.depth += 1
            if self.depth > MAX_YAML_DEPTH:
                raise NestedTooDeeply(f"nested more than {MAX_YAML_DEPTH} levels deep")
            try:
                return super().compose_node(parent, index)
            finally:
                self.depth -= 1

    return Loader


class NestedTooDeeply(ValueError):
    """YAML nested deeper than ``MAX_YAML_DEPTH`` (libyaml's composer recurses without a bound)."""


class ExpandsTooFar(NestedTooDeeply):
    """Aliases adding more than ``MAX_YAML_ALIASED`` values: a kind of NestedTooDeeply, so every
    reader that refuses deep YAML in one line refuses a "billion laughs" the same way."""


def _check_events(events, allow_anchors: bool) -> None:
    """Depth, anchors (unless allowed) and what aliases expand to, counted over parser events
    without recursion, before anything is built."""
    import yaml

    sizes: dict[str, int] = {}  # anchor -> how many values it stands for
    open_nodes: list[list] = []  # [anchor, values so far] of each collection being read
    aliased = 0
    for event in events:
        anchor = getattr(event, "anchor", None)
        if not allow_anchors and (isinstance(event, yaml.AliasEvent) or anchor):
            raise AnchorsRefused("YAML anchors and aliases are not accepted")
        if isinstance(event, yaml.CollectionStartEvent):
            open_nodes.append([anchor, 1])
            if len(open_nodes) > MAX_YAML_DEPTH:
                raise NestedTooDeeply(f"nested more than {MAX_YAML_DEPTH} levels deep")
            continue
        if isinstance(event, yaml.CollectionEndEvent):
            anchor, count = open_nodes.pop()
        elif isinstance(event, yaml.AliasEvent):
            anchor, count = None, sizes.get(anchor, 1)
            aliased += count
            if aliased > MAX_YAML_ALIASED:
                raise ExpandsTooFar(f"its aliases expand to more than {MAX_YAML_ALIASED} values")
        elif isinstance(event, yaml.ScalarEvent):
            count = 1
        else:
            continue
        if anchor:
            sizes[anchor] = count
        if open_nodes:
            open_nodes[-1][1] += count


def load_json(text: str | bytes):
    """``json.loads(text)`` with nesting deeper than ``MAX_YAML_DEPTH`` refused (NestedTooDeeply, a
    ValueError like json's own errors) instead of a RecursionError."""
    import json

    try:
        data = json.loads(text)
    except RecursionError:
        raise NestedTooDeeply(f"nested more than {MAX_YAML_DEPTH} levels deep") from None
    todo = [(data, 1)]
    while todo:
        item, depth = todo.pop()
        if isinstance(item, (dict, list)):
            if depth > MAX_YAML_DEPTH:
                raise NestedTooDeeply(f"nested more than {MAX_YAML_DEPTH} levels deep")
            todo.extend((inner, depth + 1) for inner in (item.values() if isinstance(item, dict) else item))
    return data


def load_yaml_refusing_anchors(text: str):
    """``load_yaml`` for YAML that came from elsewhere (pulled config, fs-args): anchors refused."""
    return load_yaml(text, allow_anchors=False)


def load_yaml(text: str, *, allow_anchors: bool = False):
    """One YAML document, as ``yaml.safe_load`` reads it, with nesting deeper than
    ``MAX_YAML_DEPTH`` refused (``NestedTooDeeply``) and, unless ``allow_anchors`` (the project's own
    config, where a team may use them), anchors and aliases refused (``AnchorsRefused``).

    With libyaml (PyYAML's C extension), a first pass over the parser's events checks both, then
    the C loader builds the value: ten times faster than the pure-Python loader's one pass, which
    is what pulling 50 packages spent most of its planning on. The event pass is iterative, so a
    document nested 100,000 deep is refused there instead of crashing libyaml's recursive composer.
    """
    import yaml

    fast = getattr(yaml, "CSafeLoader", None)
    if fast is None:
        if allow_anchors:  # what the aliases expand to, counted before the loader builds it
            _check_events(yaml.parse(text, Loader=yaml.SafeLoader), allow_anchors)
        loader = _anchor_refusing_loader(not allow_anchors)(text)
        try:
            return loader.get_single_data()
        finally:
            loader.dispose()
    try:
        _check_events(yaml.parse(text, Loader=fast), allow_anchors)
    except yaml.YAMLError:  # libyaml's own limits (nesting past 1000): said in our words when they apply
        _check_events(yaml.parse(text, Loader=yaml.SafeLoader), allow_anchors)
        raise
    return yaml.load(text, Loader=fast)  # noqa: S506 - CSafeLoader is the safe loader, in C
