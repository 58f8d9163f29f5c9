"""The one YAML loader for YAML piperack did not write: pulled config, fs-args, airflow.yml, the
catalog a pulled pipeline reads. Limits: nesting depth, and anchors/aliases refused where asked
(they can expand without bound); size caps are the callers', by what the file is.

Errors are typed (``AnchorsRefused``, ``NestedTooDeeply``, ``yaml.YAMLError``) so each reader says
in its own words which file is at fault, without quoting content that may hold credentials.
"""

from __future__ import annotations

import functools

MAX_YAML_DEPTH = 100


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
        loader = _anchor_refusing_loader(not allow_anchors)(text)
        try:
            return loader.get_single_data()
        finally:
            loader.dispose()
    depth = 0
    for event in yaml.parse(text, Loader=fast):
        if not allow_anchors and (isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None)):
            raise AnchorsRefused("YAML anchors and aliases are not accepted")
        if isinstance(event, yaml.CollectionStartEvent):
            depth += 1
            if depth > MAX_YAML_DEPTH:
                raise NestedTooDeeply(f"nested more than {MAX_YAML_DEPTH} levels deep")
        elif isinstance(event, yaml.CollectionEndEvent):
            depth -= 1
    return yaml.load(text, Loader=fast)  # noqa: S506 - CSafeLoader is the safe loader, in C
