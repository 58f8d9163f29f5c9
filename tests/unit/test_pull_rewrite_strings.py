"""Pull rewrites a short sdist name (``ingest``) to a full module path: string literals that are
file names or the bare word are not module references and must stay as they are."""

from __future__ import annotations

from piperack.rewrite import rewrite_references

OLD, NEW = "ingest", "shop.pipelines.ingest"


def test_mock_patch_targets_are_rewritten():
    src = 'from unittest import mock\nmock.patch("ingest.nodes.fetch")\nmock.patch("ingest.helpers")\n'
    assert rewrite_references(src, OLD, NEW) == (
        'from unittest import mock\nmock.patch("shop.pipelines.ingest.nodes.fetch")\n'
        'mock.patch("shop.pipelines.ingest.helpers")\n'
    )


def test_file_names_and_bare_words_are_left_alone():
    src = (
        'import ingest.nodes\nPARAMS = "ingest.yml"\nKEY = "ingest"\nSQL = "ingest.sql"\nDOC = "ingest.nodes does x"\n'
    )
    out = rewrite_references(src, OLD, NEW)
    assert out == src.replace("import ingest.nodes", "import shop.pipelines.ingest.nodes")


def test_full_module_path_strings_still_rewritten_when_packaging():
    src = 'import importlib\nimportlib.import_module("shop.pipelines.ingest")\n'
    assert (
        rewrite_references(src, "shop.pipelines.ingest", "ingest")
        == 'import importlib\nimportlib.import_module("ingest")\n'
    )
