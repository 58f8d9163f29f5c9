"""Unit tests of the fetching cores' pure helpers: piperack.fetch, .download and .indexes (the servers are
exercised in tests/test_pull.py)."""

from __future__ import annotations

import hashlib
import json
import re

import pytest

from piperack import download, fetch, indexes
from piperack.errors import PiperackError


def exact(message: str) -> str:
    """A ``match=`` pattern for exactly this one-line message."""
    return f"^{re.escape(message)}$"


@pytest.mark.parametrize(
    "url, shown",
    [
        ("https://user:pw@example.test:8443/a/x-0.1.tar.gz?token=abc#frag", "https://example.test:8443/a/x-0.1.tar.gz"),
        ("s3://bucket/key/x-0.1.tar.gz", "s3://bucket/key/x-0.1.tar.gz"),
        ("dist/x-0.1.tar.gz", "dist/x-0.1.tar.gz"),
    ],
)
def test_strip_credentials(url, shown):
    assert download.strip_credentials(url) == shown


@pytest.mark.parametrize(
    "source, kind",
    [
        ("dist/x-0.1.tar.gz", "path"),
        ("x-0.1.tar.gz", "path"),
        ("/abs/x.tgz", "path"),
        ("s3://b/x.tar.gz", "url"),
        ("file:///tmp/x.tar.gz", "url"),
        ("ingest", "index"),
        ("ingest==0.2", "index"),
        ("ingest>=0.1,<1", "index"),
    ],
)
def test_classify(source, kind):
    assert fetch.classify(source) == kind


def test_redaction_of_every_fs_args_value():
    args = {"key": "AKIA123", "secret": "xyz-secret", "client_kwargs": {"headers": {"Authorization": "token t0k3n"}}}
    message = "failed with AKIA123 / xyz-secret / token t0k3n"
    assert download.redact(message, download.secret_values(args)) == "failed with *** / *** / ***"


def test_fs_args_file_errors_do_not_quote_content(tmp_path):
    bad = tmp_path / "args.yml"
    bad.write_text("key: [unclosed super-secret-value\n")
    with pytest.raises(PiperackError, match=exact(f"fs-args file {bad}: not valid YAML (line 2)")):
        fetch.load_fs_args(bad, tmp_path)
    (tmp_path / "list.yml").write_text("- a\n")
    with pytest.raises(PiperackError, match=exact("fs-args file list.yml: expected a mapping of filesystem options")):
        fetch.load_fs_args("list.yml", tmp_path)
    with pytest.raises(PiperackError, match=exact("fs-args file nope.yml: no such file")):
        fetch.load_fs_args("nope.yml", tmp_path)


def test_missing_backend_names_the_package(monkeypatch):
    """Whether or not gcsfs is installed here, the test sees it missing: the import fails (None in
    sys.modules) and fsspec's registry holds no gcs:// class from an earlier import."""
    import importlib
    import sys

    monkeypatch.setitem(sys.modules, "gcsfs", None)
    registry_module = importlib.import_module("fsspec.registry")
    for protocol in ("gcs", "gs"):
        monkeypatch.delitem(registry_module._registry, protocol, raising=False)
    with pytest.raises(
        PiperackError, match=exact("gcs://b/x.tar.gz: no fsspec backend for gcs:// is installed (pip install gcsfs)")
    ):
        fetch._filesystem("gcs", "gcs://b/x.tar.gz", {})
    with pytest.raises(
        PiperackError, match=exact("nosuchproto://x: unknown protocol nosuchproto:// (no fsspec backend knows it)")
    ):
        fetch._filesystem("nosuchproto", "nosuchproto://x", {})


def test_parse_simple_pages():
    html = (
        '<a href="../../packages/x-0.1.tar.gz#sha256=' + "a" * 64 + '">x-0.1.tar.gz</a>'
        '<a href="x-0.2-py3-none-any.whl">w</a><a href="x-0.3.tar.gz" data-yanked="">y</a>'
    )
    found = indexes._parse_page("http://127.0.0.1:1/simple/x/", html, "text/html")
    assert [(c.filename, c.sha256, c.yanked) for c in found] == [
        ("x-0.1.tar.gz", "a" * 64, False),
        ("x-0.2-py3-none-any.whl", None, False),
        ("x-0.3.tar.gz", None, True),
    ]
    assert found[0].url == "http://127.0.0.1:1/packages/x-0.1.tar.gz"
    page = json.dumps(
        {"files": [{"filename": "x-0.4.tar.gz", "url": "/f/x-0.4.tar.gz", "hashes": {"sha256": "b" * 64}}]}
    )
    (only,) = indexes._parse_page("http://127.0.0.1:1/simple/x/", page, "application/vnd.pypi.simple.v1+json")
    assert (only.filename, only.url, only.sha256) == ("x-0.4.tar.gz", "http://127.0.0.1:1/f/x-0.4.tar.gz", "b" * 64)


def test_pip_settings_honour_env_over_files(monkeypatch):
    out = (
        "global.index-url='https://files.example/simple'\n"
        ":env:.index-url='https://env.example/simple'\n"
        "global.extra-index-url='file:///a file:///b'\n"
        "global.find-links='/opt/wheels'\n"
    )

    class Done:
        stdout = out

    monkeypatch.setattr(indexes.subprocess, "run", lambda *a, **k: Done())
    monkeypatch.setattr(indexes, "_PIP_SETTINGS", {})
    settings = indexes.pip_settings()
    assert settings["index-url"] == "https://env.example/simple"
    assert settings["extra-index-url"] == "file:///a file:///b"
    assert settings["find-links"] == "/opt/wheels"


def test_sha256_mismatch_and_bad_digest(tmp_path):
    archive = tmp_path / "x-0.1.tar.gz"
    archive.write_bytes(b"data")
    with pytest.raises(PiperackError, match=exact("--sha256 '12': expected 64 hexadecimal digits")):
        fetch.fetch(str(archive), tmp_path, max_bytes=100, expected_sha256="12")
    digest = hashlib.sha256(b"data").hexdigest()
    with pytest.raises(PiperackError, match=exact(f"{archive}: sha256 is {digest}, expected {'f' * 64}; refused")):
        fetch.fetch(str(archive), tmp_path, max_bytes=100, expected_sha256="f" * 64)
    with pytest.raises(PiperackError, match=exact(f"{archive}: larger than the 2-byte limit; refused")):
        fetch.fetch(str(archive), tmp_path, max_bytes=2)


def test_index_from_a_local_folder(tmp_path, monkeypatch):
    (tmp_path / "idx" / "demo-pkg").mkdir(parents=True)
    (tmp_path / "idx" / "demo-pkg" / "demo_pkg-1.0.tar.gz").write_bytes(b"one")
    (tmp_path / "idx" / "demo-pkg" / "demo_pkg-2.0.tar.gz").write_bytes(b"two")
    monkeypatch.setattr(indexes, "pip_settings", lambda python=None: {})
    (tmp_path / "dl").mkdir()
    got = fetch.fetch("Demo_Pkg<2", tmp_path / "dl", max_bytes=100, index_url=(tmp_path / "idx").as_uri())
    assert (got.version, got.path.read_bytes(), got.kind) == ("1.0", b"one", "index")
