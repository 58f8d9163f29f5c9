"""pull against hostile and careless packages (issue 12, items 1-11), in-process on a minimal
project: every refusal is one line, and a refused pull leaves the project byte-for-byte as it was."""

from __future__ import annotations

import http.server
import itertools
import json
import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from piperack import fsutil, indexes
from piperack.errors import PiperackError
from piperack.options import PullOptions
from piperack.project import find_project
from tests.pull_support import StallingServer, interrupt_when, sdist_bytes, write_sdist
from tests.unit.test_pull_engine import run


def exact(message: str) -> str:
    """A ``match=`` pattern for exactly this one-line message."""
    return f"^{re.escape(message)}$"


def refused(mini, tree_hash, sdist, message, **options):
    """The pull of ``sdist`` fails with exactly the one line ``message`` and changes nothing."""
    before = tree_hash(mini)
    with pytest.raises(PiperackError, match=exact(message)):
        run(mini, sdist, **options)
    assert tree_hash(mini) == before


# -- 1. no shadowing of the project's machinery ---------------------------------------------------


@pytest.mark.parametrize(
    "name, module",
    [
        ("runner", "runner"),
        ("settings", "settings"),
        ("pipelines", "pipelines"),
        ("tests", None),
    ],
)
def test_a_package_cannot_shadow_the_projects_machinery(mini, tmp_path, tree_hash, name, module):
    (mini / "src/demo/runner.py").write_text("def main(): ...\n")
    sdist = write_sdist(tmp_path / "d", name, module=module)
    if name == "tests":
        refused(
            mini,
            tree_hash,
            sdist,
            f"{sdist}: no package in tests-0.1.0/ (expected a folder with an __init__.py besides tests/)",
        )
    else:
        refused(
            mini,
            tree_hash,
            sdist,
            f"{sdist}: demo.{name} would shadow the project's own '{name}'; refused "
            "(pull it elsewhere with --destination, or rename it with --alias)",
        )


def test_a_destination_next_to_an_existing_module_file_is_refused(mini, tmp_path, tree_hash):
    (mini / "src/demo/utils.py").write_text("X = 1\n")
    sdist = write_sdist(tmp_path / "d", "cleaner")
    utils = (
        f"{sdist}: src/demo/utils/ would shadow the module src/demo/utils.py; refused (use --destination or --alias)"
    )
    refused(mini, tree_hash, sdist, utils, destination="utils")
    refused(mini, tree_hash, sdist, utils, destination="utils.deeper")
    (mini / "src/demo/pipelines/cleaner.py").write_text("X = 1\n")
    refused(
        mini,
        tree_hash,
        sdist,
        f"{sdist}: src/demo/pipelines/cleaner/ would shadow the module src/demo/pipelines/cleaner.py; refused "
        "(use --destination or --alias)",
    )


@pytest.mark.parametrize("module", ["__main__.cleaner", "pipelines.__init__.cleaner", "class.cleaner"])
def test_a_recorded_module_path_is_untrusted(mini, tmp_path, tree_hash, module):
    sdist = write_sdist(tmp_path / "d", "cleaner", module=module)
    refused(
        mini,
        tree_hash,
        sdist,
        f"{sdist}: cleaner-0.1.0/pyproject.toml invalid [tool.piperack] module {module!r}: a reserved or keyword name",
    )


def test_dunder_destination_is_refused(mini, tmp_path, tree_hash):
    sdist = write_sdist(tmp_path / "d", "cleaner")
    refused(
        mini,
        tree_hash,
        sdist,
        f"{sdist}: pipelines.__pycache__.cleaner: '__pycache__' is a reserved (dunder) name; refused",
        destination="pipelines.__pycache__",
    )


# -- 2. config belongs to the pipeline and stays inside the project -------------------------------


def test_config_that_is_not_the_pipelines_own_parameters_never_lands(mini, tmp_path, capsys):
    (mini / "conf/base/catalog").mkdir(parents=True)
    (mini / "conf/base/catalog/other.yml").write_text("mine: 1\n")
    sdist = write_sdist(
        tmp_path / "d",
        "cleaner",
        params={
            "parameters/cleaner.yml": "factor: 3\n",
            "catalog/other.yml": "evil: 1\n",
            "catalog/cleaner.yml": "x: 1\n",
            "credentials.yml": "token: 1\n",
            "parameters/other.yml": "a: 666\n",
            "logging.yml": "version: 1\n",
        },
    )
    run(mini, sdist, force=True)
    assert (mini / "conf/base/catalog/other.yml").read_text() == "mine: 1\n"
    assert (mini / "conf/base/parameters/other.yml").read_text() == "a: 1\n"
    assert not (mini / "conf/base/credentials.yml").exists() and not (mini / "conf/base/logging.yml").exists()
    assert not (mini / "conf/base/catalog/cleaner.yml").exists()
    assert (mini / "conf/base/parameters/cleaner.yml").read_text() == "factor: 3\n"
    err = capsys.readouterr().err
    for name in ("catalog/other.yml", "credentials.yml", "parameters/other.yml", "logging.yml"):
        assert f"cleaner/config/{name} not pulled" in err
    assert "cleaner/config/catalog/cleaner.yml not pulled" in err


@pytest.mark.parametrize(
    "value",
    [
        "/etc/passwd",
        "~/.ssh/id_rsa",
        "../../outside.csv",
        "data/../../outside.csv",
        "file:///etc/shadow",
        "C:\\\\Windows\\\\system.ini",
        "[/etc/hosts]",
    ],
)
def test_parameters_pointing_outside_the_project_are_refused(mini, tmp_path, tree_hash, value):
    if value.startswith("["):
        text, key, shown = f"paths: {value}\n", "paths[0]", value[1:-1]
    else:
        text, key, shown = f"source:\n  path: {json.dumps(value)}\n", "source.path", value
    sdist = write_sdist(tmp_path / "d", "cleaner", params={"parameters/cleaner.yml": text})
    refused(
        mini,
        tree_hash,
        sdist,
        f"{sdist}: cleaner/config/parameters/cleaner.yml: {key} = {shown!r} points outside the project; refused",
    )


def test_parameters_with_project_paths_and_urls_are_fine(mini, tmp_path):
    text = "raw: data/01_raw/x.csv\nurl: https://example.org/a/../b.csv\nnote: and/or\nbucket: s3://b/k\n"
    run(mini, write_sdist(tmp_path / "d", "cleaner", params={"parameters/cleaner.yml": text}))
    assert (mini / "conf/base/parameters/cleaner.yml").read_text() == text


def test_yaml_anchors_in_pulled_parameters_are_refused(mini, tmp_path, tree_hash):
    bomb = "a: &a [x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a]\nc: [*b, *b, *b, *b, *b, *b]\n"
    sdist = write_sdist(tmp_path / "d", "cleaner", params={"parameters/cleaner.yml": bomb})
    refused(
        mini,
        tree_hash,
        sdist,
        f"{sdist}: cleaner/config/parameters/cleaner.yml: YAML anchors and aliases are not accepted in pulled "
        "config; refused",
    )


# -- 3. parameter files by exact name -------------------------------------------------------------


def test_force_never_replaces_another_pipelines_parameters(mini, tmp_path):
    (mini / "conf/base/parameters/retail_banking.yml").write_text("mine: 1\n")
    (mini / "conf/base/parameters/retail.yml").write_text("old: 1\n")
    sdist = write_sdist(
        tmp_path / "d",
        "retail",
        params={"parameters/retail.yml": "new: 1\n", "parameters/retail_banking.yml": "theirs: 1\n"},
    )
    run(mini, sdist, force=True)
    assert (mini / "conf/base/parameters/retail_banking.yml").read_text() == "mine: 1\n"
    assert (mini / "conf/base/parameters/retail.yml").read_text() == "new: 1\n"


# -- 4. --alias renames module references only ----------------------------------------------------


def test_alias_leaves_strings_that_are_not_module_paths(mini, tmp_path):
    code = {
        "__init__.py": "",
        "nodes.py": "import logging\nlog = logging.getLogger('cleaner.nodes')\n\ndef run_nodes(p):\n"
        "    log.info('cleaner.doubled written')\n    return {'cleaner.doubled': 2}\n",
        "pipeline.py": "from cleaner.nodes import run_nodes\nOUTPUTS = ['cleaner.doubled', 'cleaner.nodes']\n\n"
        "def run(params, catalog):\n    return run_nodes(params)\n",
    }
    tests = {
        "__init__.py": "",
        "test_x.py": "from unittest import mock\n\nTARGET = 'cleaner.nodes.run_nodes'\n"
        "@mock.patch('cleaner.nodes.logging')\ndef test_x(m): pass\n",
    }
    run(mini, write_sdist(tmp_path / "d", "cleaner", code=code, tests=tests), alias="tidy")
    pipeline = (mini / "src/demo/pipelines/tidy/pipeline.py").read_text()
    assert "from demo.pipelines.tidy.nodes import run_nodes" in pipeline
    assert "OUTPUTS = ['cleaner.doubled', 'demo.pipelines.tidy.nodes']" in pipeline
    nodes = (mini / "src/demo/pipelines/tidy/nodes.py").read_text()
    assert "'cleaner.doubled written'" in nodes and "{'cleaner.doubled': 2}" in nodes
    test = (mini / "src/tests/pipelines/tidy/test_x.py").read_text()
    assert (
        "TARGET = 'demo.pipelines.tidy.nodes.run_nodes'" in test
        and "@mock.patch('demo.pipelines.tidy.nodes.logging')" in test
    )


# -- 5. what the pulled pipeline needs from the catalog --------------------------------------------


def test_output_names_the_catalog_keys_the_pipeline_reads(mini, tmp_path, capsys):
    code = {
        "__init__.py": "",
        "pipeline.py": "def run(params, catalog):\n    raw = catalog['raw']\n"
        "    db = catalog.get('database')\n    return _need(\n        catalog,\n        'table_dir',\n    )\n",
    }
    run(mini, write_sdist(tmp_path / "d", "cleaner", code=code), destination="pipelines.shared")
    out = capsys.readouterr().out
    assert (
        "catalog     it reads database, raw, table_dir from its catalog: add database, raw, table_dir to "
        "conf/base/catalog/cleaner.yml"
    ) in out
    assert (mini / "src/demo/pipelines/shared/cleaner/pipeline.py").is_file()
    assert (mini / "src/demo/pipelines/shared/__init__.py").is_file()
    assert (mini / "src/tests/pipelines/shared/__init__.py").is_file()


# -- 6. requirements ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "requirement",
    [
        "evil @ https://example.org/evil-1.0.tar.gz",
        "evil @ file:///tmp/evil",
        "evil @ git+https://example.org/evil.git",
    ],
)
def test_direct_references_need_an_explicit_flag(mini, tmp_path, tree_hash, requirement):
    sdist = write_sdist(tmp_path / "d", "cleaner", requires=[requirement])
    refused(
        mini,
        tree_hash,
        sdist,
        f"nothing pulled: the package requires direct references ({requirement}), which pip would fetch from "
        "wherever they point; pass --allow-direct-references to take them",
    )
    run(mini, sdist, allow_direct_references=True)
    assert requirement.split(" @ ")[1] in (mini / "requirements.in").read_text()


def test_pip_options_in_requirements_are_refused(mini, tmp_path, tree_hash):
    sdist = write_sdist(tmp_path / "d", "cleaner", requires=["pandas --index-url http://evil.example/simple"])
    refused(
        mini,
        tree_hash,
        sdist,
        f"{sdist}: invalid requirement in its metadata: 'pandas --index-url http://evil.example/simple'",
    )


def test_dependencies_given_as_a_string_are_refused(mini, tmp_path, tree_hash):
    import io
    import tarfile

    members = {
        "cleaner-0.1.0/pyproject.toml": b'[project]\nname = "cleaner"\nversion = "0.1.0"\ndependencies = "pandas"\n',
        "cleaner-0.1.0/cleaner/__init__.py": b"",
    }
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    sdist = tmp_path / "cleaner-0.1.0.tar.gz"
    sdist.write_bytes(buf.getvalue())
    refused(
        mini,
        tree_hash,
        sdist,
        f"{sdist}: cleaner-0.1.0/pyproject.toml [project] dependencies must be a list of requirement strings, "
        "got str; refused",
    )


def test_requires_python_is_checked_against_the_project(mini, tmp_path, tree_hash):
    text = (
        (mini / "pyproject.toml")
        .read_text()
        .replace('version = "0.1.0"', 'version = "0.1.0"\nrequires-python = ">=3.11"')
    )
    (mini / "pyproject.toml").write_text(text)
    sdist = tmp_path / "cleaner-0.1.0.tar.gz"
    data = sdist_bytes("cleaner")
    sdist.write_bytes(data)
    import io
    import tarfile

    out = io.BytesIO()
    with tarfile.open(fileobj=io.BytesIO(data)) as src, tarfile.open(fileobj=out, mode="w:gz") as dst:
        for member in src.getmembers():
            content = src.extractfile(member).read()
            if member.name.endswith("PKG-INFO"):
                content += b"Requires-Python: <3.9\n"
            member.size = len(content)
            dst.addfile(member, io.BytesIO(content))
    sdist.write_bytes(out.getvalue())
    refused(
        mini,
        tree_hash,
        sdist,
        f"{sdist}: it requires Python <3.9, which no Python the project allows (>=3.11) satisfies; refused",
    )


# -- 7, 10. indexes and URLs over real HTTP -----------------------------------------------------------


class _Server:
    """A tiny HTTP server on 127.0.0.1: ``routes[path] = (status, headers, body)``; requests are logged."""

    def __init__(self):
        self.routes: dict = {}
        self.seen: list = []
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802
                server.seen.append((self.path, dict(self.headers)))
                status, headers, body = server.routes.get(self.path.split("?")[0], (404, {}, b"missing"))
                if callable(body):
                    return body(self)
                self.send_response(status)
                for key, value in headers.items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_port}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server():
    srv = _Server()
    yield srv
    srv.close()


@pytest.fixture
def no_pip_config(monkeypatch, tmp_path):
    monkeypatch.setattr(indexes, "_PIP_SETTINGS", {})
    monkeypatch.setenv("PIP_CONFIG_FILE", os.devnull)
    for key in ("PIP_INDEX_URL", "PIP_EXTRA_INDEX_URL", "PIP_FIND_LINKS", "PIP_NO_INDEX"):
        monkeypatch.delenv(key, raising=False)


def _index_page(server, name, files: dict, json_page=False):
    for filename, data in files.items():
        server.routes[f"/files/{filename}"] = (200, {}, data)
    if json_page:
        page = {
            "meta": {"api-version": "1.0"},
            "name": name,
            "files": [{"filename": f, "url": f"{server.url}/files/{f}", "hashes": {}} for f in files],
        }
        server.routes[f"/simple/{name}/"] = (
            200,
            {"Content-Type": "application/vnd.pypi.simple.v1+json"},
            json.dumps(page).encode(),
        )
    else:
        links = "".join(f'<a href="{server.url}/files/{f}">{f}</a>\n' for f in files)
        server.routes[f"/simple/{name}/"] = (200, {"Content-Type": "text/html"}, links.encode())


def test_an_explicit_index_is_the_only_one_consulted_and_is_recorded(
    mini,
    tmp_path,
    server,
    no_pip_config,
    monkeypatch,
):
    other = _Server()
    try:
        _index_page(server, "cleaner", {"cleaner-0.1.0.tar.gz": sdist_bytes("cleaner", "0.1.0")})
        _index_page(other, "cleaner", {"cleaner-9.0.0.tar.gz": sdist_bytes("cleaner", "9.0.0")})
        monkeypatch.setenv("PIP_EXTRA_INDEX_URL", f"{other.url}/simple/")
        monkeypatch.setenv("PIP_FIND_LINKS", f"{other.url}/simple/cleaner/")
        engine_pull(mini, "cleaner", index_url=f"{server.url}/simple/")
        assert not other.seen  # dependency confusion: the other index was never asked
        pyproject = (mini / "pyproject.toml").read_text()
        assert 'version = "0.1.0"' in pyproject and f'index = "{server.url}/simple/"' in pyproject
    finally:
        other.close()


def engine_pull(mini, source, **options):
    from piperack import pull as engine

    return engine.pull(PullOptions(source=source, **options), project=find_project(mini))


def test_file_links_from_a_remote_index_page_are_refused(mini, tmp_path, server, no_pip_config, tree_hash):
    local = write_sdist(tmp_path / "d", "cleaner")
    server.routes["/simple/cleaner/"] = (
        200,
        {"Content-Type": "text/html"},
        f'<a href="file://{local}">cleaner-0.1.0.tar.gz</a>'.encode(),
    )
    before = tree_hash(mini)
    with pytest.raises(
        PiperackError,
        match=exact(f"{server.url}/simple/cleaner/: the index page links to a local file (file://{local}); refused"),
    ):
        engine_pull(mini, "cleaner", index_url=f"{server.url}/simple/")
    assert tree_hash(mini) == before


@pytest.mark.parametrize(
    "body, problem",
    [
        (
            b"{not json",
            "is not valid JSON (Expecting property name enclosed in double quotes: line 1 column 2 (char 1))",
        ),
        (b'{"files": "x"}', "has no list of files; refused"),
        (b'{"files": [{"filename": 3}]}', "lists a file without a filename and url; refused"),
        (b"[]", "has no list of files; refused"),
    ],
)
def test_bad_json_index_pages_are_refused_cleanly(mini, server, no_pip_config, tree_hash, body, problem):
    server.routes["/simple/cleaner/"] = (200, {"Content-Type": "application/vnd.pypi.simple.v1+json"}, body)
    before = tree_hash(mini)
    with pytest.raises(PiperackError, match=exact(f"{server.url}/simple/cleaner/: the index's JSON page {problem}")):
        engine_pull(mini, "cleaner", index_url=f"{server.url}/simple/")
    assert tree_hash(mini) == before


def test_json_index_pages_work(mini, server, no_pip_config):
    _index_page(server, "cleaner", {"cleaner-0.2.0.tar.gz": sdist_bytes("cleaner", "0.2.0")}, json_page=True)
    engine_pull(mini, "cleaner", index_url=f"{server.url}/simple/")
    assert (mini / "src/demo/pipelines/cleaner/nodes.py").is_file()


def test_an_oversized_index_page_is_refused(mini, server, no_pip_config, tree_hash):
    server.routes["/simple/cleaner/"] = (200, {"Content-Type": "text/html"}, b"<a>" * (6 * 1024 * 1024))
    before = tree_hash(mini)
    with pytest.raises(
        PiperackError,
        match=exact(f"{server.url}/simple/cleaner/: the index page is larger than {16 * 1024 * 1024} bytes; refused"),
    ):
        engine_pull(mini, "cleaner", index_url=f"{server.url}/simple/")
    assert tree_hash(mini) == before


def test_credentials_in_a_url_never_show_and_headers_stay_on_their_host(mini, tmp_path, server, tree_hash, capsys):
    other = _Server()
    try:
        other.routes["/cleaner-0.1.0.tar.gz"] = (200, {}, sdist_bytes("cleaner"))
        moved = other.url.replace("127.0.0.1", "localhost")  # another host name: another origin
        server.routes["/cleaner-0.1.0.tar.gz"] = (302, {"Location": f"{moved}/cleaner-0.1.0.tar.gz"}, b"")
        args = tmp_path / "args.yml"
        args.write_text("headers:\n  X-Api-Key: s3cr3t-key\n  Authorization: Bearer t0ken-value\n")
        url = server.url.replace("http://", "http://alice:pa55word@") + "/cleaner-0.1.0.tar.gz?token=qu3ry-t0ken"
        engine_pull(mini, url, fs_args=str(args))
        assert server.seen[0][1].get("X-Api-Key") == "s3cr3t-key"  # sent to the host the user named
        assert "X-Api-Key" not in other.seen[0][1] and "Authorization" not in other.seen[0][1]
        everything = capsys.readouterr()
        text = everything.out + everything.err + (mini / "pyproject.toml").read_text()
        for secret in ("pa55word", "alice", "qu3ry-t0ken", "s3cr3t-key", "t0ken-value"):
            assert secret not in text
        missing = url.replace("cleaner-0.1.0", "nope-0.1.0")
        with pytest.raises(PiperackError, match=exact(f"{server.url}/nope-0.1.0.tar.gz: HTTP 404 Not Found")):
            engine_pull(mini, missing, fs_args=str(args))
    finally:
        other.close()


# -- 8. resource limits -----------------------------------------------------------------------------


def test_deeply_nested_python_is_one_warning_naming_the_file(mini, tmp_path, capsys):
    code = {
        "__init__.py": "",
        "pipeline.py": "def run(params, catalog):\n    return 1\n",
        "deep.py": "import cleaner.pipeline\nx = " + "(" * 3000 + "1" + ")" * 3000 + "\n",
    }
    run(mini, write_sdist(tmp_path / "d", "cleaner", code=code), alias="tidy")
    err = capsys.readouterr().err
    assert "cleaner/deep.py: not valid Python (too many nested parentheses" in err
    assert (mini / "src/demo/pipelines/tidy/deep.py").read_text().startswith("import cleaner.pipeline")


def test_fs_args_yaml_with_aliases_is_refused(mini, tmp_path, tree_hash):
    args = tmp_path / "args.yml"
    lines = ["a: &a ['lol','lol','lol','lol','lol','lol','lol','lol','lol']"]
    for i in range(1, 9):
        lines.append(f"l{i}: &l{i} [{', '.join(['*' + ('a' if i == 1 else f'l{i - 1}')] * 9)}]")
    args.write_text("\n".join(lines) + "\n")
    sdist = write_sdist(tmp_path / "d", "cleaner")
    refused(
        mini,
        tree_hash,
        sdist,
        f"fs-args file {args}: YAML anchors and aliases are not accepted (they can expand without bound)",
        fs_args=str(args),
    )


def test_a_download_past_its_deadline_is_refused(mini, server, tree_hash, monkeypatch):
    data = sdist_bytes("cleaner")

    def drip(handler):  # a byte at a time, for as long as the client listens: only the deadline ends it
        handler.send_response(200)
        handler.end_headers()
        ends = time.monotonic() + 120
        try:
            for i in itertools.count():
                handler.wfile.write(data[i % len(data) : i % len(data) + 1])
                handler.wfile.flush()
                time.sleep(0.01)
                if time.monotonic() > ends:
                    return
        except OSError:  # the client hung up
            return

    server.routes["/cleaner-0.1.0.tar.gz"] = (200, {}, drip)
    monkeypatch.setenv("PIPERACK_PULL_TIMEOUT", "0.5")
    before = tree_hash(mini)
    url = f"{server.url}/cleaner-0.1.0.tar.gz"
    expected = f"{url}: the download took longer than 0.5 s (the limit; $PIPERACK_PULL_TIMEOUT changes it); refused"
    with pytest.raises(PiperackError, match=f"^{re.escape(expected)}$"):
        engine_pull(mini, f"{server.url}/cleaner-0.1.0.tar.gz")
    assert tree_hash(mini) == before


def test_a_download_shorter_than_its_content_length_is_refused(mini, server, tree_hash):
    data = sdist_bytes("cleaner")

    def short(handler):
        handler.send_response(200)
        handler.send_header("Content-Length", str(len(data)))
        handler.end_headers()
        handler.wfile.write(data[: len(data) // 2])
        handler.wfile.flush()
        handler.close_connection = True

    server.routes["/cleaner-0.1.0.tar.gz"] = (200, {}, short)
    before = tree_hash(mini)
    # urllib3 enforces the Content-Length itself: the read fails before piperack counts the bytes.
    with pytest.raises(
        PiperackError, match=exact(f"{server.url}/cleaner-0.1.0.tar.gz: download interrupted (ProtocolError)")
    ):
        engine_pull(mini, f"{server.url}/cleaner-0.1.0.tar.gz")
    assert tree_hash(mini) == before


def test_package_refuses_a_fifo_instead_of_waiting_on_it(tmp_path):
    from piperack.options import Job
    from piperack.package import build

    root = tmp_path / "proj"
    for rel, text in {
        "pyproject.toml": '[project]\nname = "demo"\nversion = "0.1.0"\n\n[tool.piperack]\npython_package = "demo"\n',
        "src/demo/__init__.py": "",
        "src/demo/pipelines/__init__.py": "",
        "src/demo/pipelines/ingest/__init__.py": "",
        "conf/base/parameters/x.yml": "a: 1\n",
    }.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    os.mkfifo(root / "src/demo/pipelines/ingest/pipe")
    started = time.monotonic()
    with pytest.raises(
        PiperackError,
        match=exact(
            "src/demo/pipelines/ingest/pipe: not a regular file (a FIFO, socket or device): cannot be packaged"
        ),
    ):
        build(find_project(root), Job("pipelines.ingest"))
    assert time.monotonic() - started < 10


# -- 9. concurrency and interruption ----------------------------------------------------------------


def test_concurrent_pulls_wait_for_each_other_and_lose_nothing(mini, tmp_path):
    names = [f"p{i}" for i in range(6)]
    sdists = [write_sdist(tmp_path / "d", name) for name in names]
    code = (
        "import sys\nfrom piperack import pull\nfrom piperack.options import PullOptions\n"
        "from piperack.project import find_project\n"
        "pull.pull(PullOptions(source=sys.argv[1]), project=find_project(sys.argv[2]))\n"
    )
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", code, str(s), str(mini)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        for s in sdists
    ]
    results = [p.communicate(timeout=120) for p in procs]
    assert all(p.returncode == 0 for p in procs), results
    pyproject = (mini / "pyproject.toml").read_text()
    for name in names:
        assert f'"pipelines.{name}"' in pyproject
        assert (mini / f"src/demo/pipelines/{name}/nodes.py").is_file()


def test_sigterm_during_a_pull_leaves_no_temporary_files(mini, tmp_path, tree_hash):
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    code = (
        "import sys\nfrom piperack import pull\nfrom piperack.options import PullOptions\n"
        "from piperack.project import find_project\n"
        "pull.pull(PullOptions(source=sys.argv[1]), project=find_project(sys.argv[2]))\n"
    )
    before = tree_hash(mini)
    with StallingServer(prefix=sdist_bytes("cleaner")[:100]) as server:
        result = interrupt_when(
            [sys.executable, "-c", code, f"{server.url}/cleaner-0.1.0.tar.gz", str(mini)],
            lambda: server.arrived.is_set() and any(tmp.glob("piperack-pull-*/*")),
            "the download reached the server and its file exists",
            "sigterm",
            env=os.environ | {"TMPDIR": str(tmp)},
            timeout=60,
        )
    err = result.stderr
    assert result.returncode != 0 and "Interrupted: signal 15" in err, err  # the engine alone: no funnel here
    assert not list(tmp.glob("piperack-pull-*"))
    assert tree_hash(mini) == before


@pytest.mark.parametrize(
    "error",
    [
        OSError(30, "Read-only file system"),
        OSError(28, "No space left on device"),
        PermissionError(1, "Operation not permitted"),
    ],
)
def test_final_writes_that_fail_roll_everything_back(mini, tmp_path, tree_hash, monkeypatch, error):
    sdist = write_sdist(tmp_path / "d", "cleaner", requires=["scipy>=1"])
    before = tree_hash(mini)
    real = fsutil.atomic_write

    def failing(path, data, mode=None):
        if Path(path).name == "pyproject.toml":  # the very last write of a pull
            raise error
        return real(path, data, mode)

    monkeypatch.setattr(fsutil, "atomic_write", failing)
    with pytest.raises(OSError):
        run(mini, sdist)
    assert tree_hash(mini) == before


# -- 11. output -------------------------------------------------------------------------------------


def test_newlines_in_archive_names_cannot_forge_dry_run_lines(mini, tmp_path, capsys):
    code = {
        "__init__.py": "",
        "pipeline.py": "def run(p, c): ...\n",
        "evil\n  write   src/demo/runner.py\n.py": "x = 1\n",
    }
    run(mini, write_sdist(tmp_path / "d", "cleaner", code=code), dry_run=True)
    lines = capsys.readouterr().out.splitlines()
    assert not any(line.strip() == "write   src/demo/runner.py" for line in lines)
    assert any("evil\\n" in line for line in lines)


def test_non_table_tool_or_project_in_pyproject_is_one_line(tmp_path):
    for text, problem in [
        ("tool = 3\n", "[tool] must be a table, got int"),
        ('project = "x"\n[tool.piperack]\npython_package = "demo"\n', "[project] must be a table, got str"),
        ("[tool]\npiperack = [1]\n", "[tool.piperack] must be a table, got list"),
        (b"\xff\xfe[tool]", "not UTF-8 text"),
    ]:
        (tmp_path / "pyproject.toml").write_bytes(text if isinstance(text, bytes) else text.encode())
        with pytest.raises(PiperackError, match=exact(f"{tmp_path / 'pyproject.toml'}: {problem}")):
            find_project(tmp_path)
