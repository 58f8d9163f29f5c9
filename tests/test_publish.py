"""`invoke publish` from a baked project to a real pypiserver that takes uploads only with a password
(htpasswd; .ci/services.sh starts it, else the upload_index fixture does), then `invoke pull` of what
was published into another project."""

from __future__ import annotations

import http.server
import json
import re
import threading
import uuid
from pathlib import Path

import pytest
import requests

from tests.pull_support import StallingServer, free_port, interrupt_when
from tests.test_progress import on_a_terminal

INGEST = "src/{pkg}/pipelines/ingest"


def _pkg(root: Path) -> str:
    return next(p.name for p in (root / "src").iterdir() if p.name != "tests" and (p / "__init__.py").exists())


def _unique() -> str:
    """A micro-package name of its own: the index outlives a test run."""
    return f"pub{uuid.uuid4().hex[:12]}"


def _set_repository(root: Path, url: str) -> None:
    with open(root / "pyproject.toml", "a", encoding="utf-8") as handle:
        handle.write(f'\n[tool.piperack.publish]\nrepository-url = "{url}"\n')


def _ok(result):
    assert result.returncode == 0, result.stdout + result.stderr
    return result


def _secret_free(result, *secrets: str) -> None:
    for secret in secrets:
        assert secret not in result.stdout + result.stderr


def _creds(upload_index, password=None) -> dict:
    return {"TWINE_USERNAME": upload_index.user, "TWINE_PASSWORD": password or upload_index.password}


def _listed(upload_index, name: str) -> int:
    """The status of the index's simple page of ``name`` (404: nothing of it was uploaded)."""
    return requests.get(f"{upload_index.simple}{name}/", timeout=30).status_code


def test_publish_then_pull_by_name(project_copy, bake, run_invoke, upload_index, tree_hash):
    """The loop: package → publish --dry-run (nothing sent) → publish → pull by name in another project;
    publishing the same version again is refused in one line, and publish writes nothing."""
    root, name = project_copy, _unique()
    _set_repository(root, upload_index.url)
    _ok(run_invoke(root, "package", "pipelines.ingest", "--alias", name))
    before = tree_hash(root)

    dry = _ok(run_invoke(root, "publish", "--dry-run", env=_creds(upload_index)))
    assert dry.stdout == f"would publish dist/{name}-0.1.0.tar.gz ({name} 0.1.0) to {upload_index.url}\n"
    assert _listed(upload_index, name) == 404

    done = _ok(run_invoke(root, "publish", "--quiet", env=_creds(upload_index)))
    assert done.stdout == f"published dist/{name}-0.1.0.tar.gz ({name} 0.1.0) to {upload_index.url}\n"
    assert done.stderr == ""
    _secret_free(done, upload_index.password)
    assert tree_hash(root) == before

    again = run_invoke(root, "publish", env=_creds(upload_index))
    assert again.returncode == 1
    assert again.stdout == f"skipped dist/{name}-0.1.0.tar.gz: already on {upload_index.simple} (the same file)\n"
    assert again.stderr == (
        f"error: nothing new to publish: {name} 0.1.0 already on {upload_index.simple} (a published version is "
        "never replaced); raise the pipeline's __version__ and run `invoke package` again\n"
    )

    other = bake(project_name="Team B", include_example="no")
    pulled = _ok(run_invoke(other, "pull", name, "--index-url", upload_index.simple))
    assert f"{name}" in pulled.stdout
    code = other / "src" / _pkg(other) / "pipelines" / name
    assert (code / "__init__.py").read_text(encoding="utf-8") == (
        root / INGEST.format(pkg=_pkg(root)) / "__init__.py"
    ).read_text(encoding="utf-8")
    assert f'"pipelines.{name}" = {{source = "{name}", version = "0.1.0", sha256 = ' in (
        other / "pyproject.toml"
    ).read_text(encoding="utf-8")


def test_a_changed_file_under_a_published_version_is_refused(project_copy, run_invoke, upload_index, tree_hash):
    """Code changed without a new __version__: the index has 0.1.0 as another file; nothing is sent."""
    root, name = project_copy, _unique()
    _ok(run_invoke(root, "package", "pipelines.ingest", "--alias", name))
    url = ["--repository-url", upload_index.url]
    _ok(run_invoke(root, "publish", *url, env=_creds(upload_index)))
    nodes = root / INGEST.format(pkg=_pkg(root)) / "nodes.py"
    nodes.write_text(nodes.read_text(encoding="utf-8") + "\n# changed\n", encoding="utf-8")
    _ok(run_invoke(root, "package", "pipelines.ingest", "--alias", name))
    before = tree_hash(root)
    result = run_invoke(root, "publish", *url, env=_creds(upload_index))
    assert result.returncode == 1
    assert result.stderr == (
        f"error: {name} 0.1.0 is already on {upload_index.simple} (another file: a published version is never "
        "replaced); raise the pipeline's __version__ and run `invoke package` again\n"
    )
    assert tree_hash(root) == before
    page = requests.get(f"{upload_index.simple}{name}/", timeout=30).text
    assert page.count(".tar.gz#") == 1


def test_a_new_version_is_published_beside_the_old_one(project_copy, run_invoke, upload_index):
    """0.1.0 on the index (the same file: skipped), 0.2.0 new: only 0.2.0 is sent."""
    root, name = project_copy, _unique()
    url = ["--repository-url", upload_index.url, "--index-url", upload_index.simple]
    _ok(run_invoke(root, "package", "pipelines.ingest", "--alias", name))
    _ok(run_invoke(root, "publish", *url, env=_creds(upload_index)))
    init = root / INGEST.format(pkg=_pkg(root)) / "__init__.py"
    init.write_text(init.read_text(encoding="utf-8").replace('"0.1.0"', '"0.2.0"'), encoding="utf-8")
    _ok(run_invoke(root, "package", "pipelines.ingest", "--alias", name))
    result = _ok(run_invoke(root, "publish", *url, env=_creds(upload_index)))
    assert result.stdout == (
        f"skipped dist/{name}-0.1.0.tar.gz: already on {upload_index.simple} (the same file)\n"
        f"published dist/{name}-0.2.0.tar.gz ({name} 0.2.0) to {upload_index.url}\n"
    )
    page = requests.get(f"{upload_index.simple}{name}/", timeout=30).text
    assert f"{name}-0.1.0.tar.gz" in page and f"{name}-0.2.0.tar.gz" in page


def test_wrong_password_and_no_password_are_one_line(project_copy, run_invoke, upload_index, tree_hash):
    root, name = project_copy, _unique()
    _set_repository(root, upload_index.url)
    _ok(run_invoke(root, "package", "pipelines.ingest", "--alias", name))
    before = tree_hash(root)
    wrong = "not-the-password-" + uuid.uuid4().hex
    result = run_invoke(root, "publish", env=_creds(upload_index, password=wrong))
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr == (
        f"error: {upload_index.url} refused the credentials (HTTP 403 Forbidden): check "
        "TWINE_USERNAME/TWINE_PASSWORD, the ~/.pypirc section for this URL or keyring\n"
    )
    _secret_free(result, wrong, upload_index.password)
    nobody = {"HOME": str(root.parent), "PYTHON_KEYRING_BACKEND": "keyring.backends.null.Keyring"}
    result = run_invoke(root, "publish", env=nobody)
    assert result.returncode == 1
    assert result.stderr == (
        f"error: {upload_index.url} asks for credentials (HTTP 401 Unauthorized): set TWINE_USERNAME/TWINE_PASSWORD, "
        "a ~/.pypirc section whose repository is this URL, or keyring\n"
    )
    assert _listed(upload_index, name) == 404
    assert tree_hash(root) == before


def test_credentials_from_pypirc(project_copy, run_invoke, upload_index, tmp_path):
    """No TWINE_* variables: the ~/.pypirc section whose repository is the URL gives the credentials."""
    root, name = project_copy, _unique()
    home = tmp_path / "home"
    home.mkdir()
    (home / ".pypirc").write_text(
        "[distutils]\nindex-servers =\n    team\n\n"
        f"[team]\nrepository = {upload_index.url}\nusername = {upload_index.user}\n"
        f"password = {upload_index.password}\n",
        encoding="utf-8",
    )
    _ok(run_invoke(root, "package", "pipelines.ingest", "--alias", name))
    result = _ok(run_invoke(root, "publish", "--repository-url", upload_index.url, env={"HOME": str(home)}))
    assert result.stdout == f"published dist/{name}-0.1.0.tar.gz ({name} 0.1.0) to {upload_index.url}\n"
    _secret_free(result, upload_index.password)
    assert _listed(upload_index, name) == 200


def test_password_from_keyring(project_copy, run_invoke, upload_index, tmp_path):
    """TWINE_USERNAME alone: the password comes from keyring (a file-backed test backend), never shown."""
    root, name = project_copy, _unique()
    store = tmp_path / "keyring.json"
    store.write_text(json.dumps({upload_index.url: {upload_index.user: upload_index.password}}), encoding="utf-8")
    env = {
        "HOME": str(tmp_path),
        "TWINE_USERNAME": upload_index.user,
        "PYTHONPATH": str(Path(__file__).parent / "fixtures" / "keyring"),
        "PYTHON_KEYRING_BACKEND": "piperack_test_keyring.FileKeyring",
        "PIPERACK_TEST_KEYRING_FILE": str(store),
    }
    _ok(run_invoke(root, "package", "pipelines.ingest", "--alias", name))
    result = _ok(run_invoke(root, "publish", "--repository-url", upload_index.url, env=env))
    assert result.stdout == f"published dist/{name}-0.1.0.tar.gz ({name} 0.1.0) to {upload_index.url}\n"
    _secret_free(result, upload_index.password)
    assert _listed(upload_index, name) == 200


def test_progress_on_a_terminal_only(project_copy, venv, user_env, upload_index):
    """On a terminal each upload is announced and twine's bar runs (on stderr); --quiet and a pipe show
    neither (test_publish_then_pull_by_name checks the piped and quiet output whole)."""
    root, name = project_copy, _unique()
    invoke = str(venv / "bin" / "invoke")
    env = user_env(**_creds(upload_index))
    code, seen = on_a_terminal([invoke, "package", "pipelines.ingest", "--alias", name], root, env)
    assert code == 0, seen
    code, seen = on_a_terminal([invoke, "publish", "--repository-url", upload_index.url], root, env)
    assert code == 0, seen
    assert f"publishing [1/1] {name}-0.1.0.tar.gz" in seen
    plain = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", seen)  # rich colours the line and draws the bar
    assert f"Uploading {name}-0.1.0.tar.gz" in plain and "100%" in plain
    assert f"published dist/{name}-0.1.0.tar.gz ({name} 0.1.0) to {upload_index.url}" in seen
    assert upload_index.password not in seen


def test_unreachable_index_and_nothing_to_publish(project_copy, run_invoke, upload_index, tree_hash):
    root, name = project_copy, _unique()
    before = tree_hash(root)
    result = run_invoke(root, "publish", "--repository-url", upload_index.url, env=_creds(upload_index))
    assert result.returncode == 1
    assert result.stderr == (
        "error: nothing to publish: no archive made by `invoke package` in dist/ "
        "(run `invoke package pipelines.<name>` or `invoke package --all` first)\n"
    )
    assert tree_hash(root) == before
    _ok(run_invoke(root, "package", "pipelines.ingest", "--alias", name))
    dead = f"http://127.0.0.1:{free_port()}/"
    result = run_invoke(root, "publish", "--repository-url", dead, env=_creds(upload_index))
    assert result.returncode == 1
    assert result.stderr == (
        f"error: cannot read the package index: {dead}simple/{name}/: request failed (ConnectionError) "
        "after 3 retries\n"
    )
    _secret_free(result, upload_index.password)


def test_no_repository_is_refused(project_copy, run_invoke):
    """Never pypi.org by default: without a URL, publish says where to set one."""
    result = run_invoke(project_copy, "publish", env={"TWINE_REPOSITORY_URL": ""})
    assert result.returncode == 1
    assert result.stderr == (
        "error: no package index to publish to: give --repository-url URL or set repository-url in "
        "pyproject.toml [tool.piperack.publish] (piperack never defaults to pypi.org)\n"
    )


@pytest.mark.parametrize(("how", "status", "line"), [("ctrl-c", 130, "interrupted"), ("sigterm", 143, "terminated")])
def test_publish_stopped_while_the_index_stalls(project_copy, venv, user_env, run_invoke, tree_hash, how, status, line):
    """Ctrl-C or SIGTERM while publish reads what the index has: one line, the signal's status, nothing sent."""
    _ok(run_invoke(project_copy, "package", "pipelines.ingest"))
    before = tree_hash(project_copy)
    with StallingServer(prefix=b"<html><body>", content_type="text/html") as stalling:
        result = interrupt_when(
            [str(venv / "bin" / "invoke"), "publish", "--repository-url", stalling.url + "/"],
            stalling.arrived.is_set,
            "publish asked the index",
            how,
            cwd=project_copy,
            env=user_env(TWINE_USERNAME="someone", TWINE_PASSWORD="secret-password"),
        )
    assert (result.returncode, result.stderr, result.stdout) == (status, f"{line}: nothing was left half-done\n", "")
    assert tree_hash(project_copy) == before


class _Answering(http.server.BaseHTTPRequestHandler):
    """An index that lists nothing (404 on every simple page) and answers every upload with ``status``."""

    status, headers = 400, {}

    def do_GET(self):  # noqa: N802
        self.send_error(404, "Not Found")

    def do_POST(self):  # noqa: N802
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.send_response(self.status, {301: "Moved Permanently", 409: "Conflict", 400: "Bad Request"}[self.status])
        for key, value in self.headers_out.items():
            self.send_header(key, value)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.mark.parametrize(
    ("status", "headers", "line"),
    [
        (409, {}, "error: {name} 0.1.0 is already on {url}; a published version is never replaced"),
        (400, {}, "error: {url} refused {name}-0.1.0.tar.gz: HTTP 400 Bad Request"),
        (
            301,
            {"Location": "https://packages.example.com/upload/"},
            "error: {url} answered the upload with a redirect (HTTP 301) to https://packages.example.com/upload/: "
            "give that URL as the repository URL",
        ),
    ],
)
def test_what_the_index_says_to_an_upload_is_one_line(project_copy, run_invoke, upload_index, status, headers, line):
    """An index whose simple pages did not list the version, refusing the upload itself (a race, a policy,
    a moved endpoint)."""
    handler = type("Handler", (_Answering,), {"status": status, "headers_out": headers})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        root, name = project_copy, _unique()
        url = f"http://127.0.0.1:{server.server_port}/"
        _ok(run_invoke(root, "package", "pipelines.ingest", "--alias", name))
        result = run_invoke(root, "publish", "--repository-url", url, env=_creds(upload_index))
    finally:
        server.shutdown()
        server.server_close()
    assert result.returncode == 1
    assert result.stderr == line.format(name=name, url=url) + "\n"
    _secret_free(result, upload_index.password)
