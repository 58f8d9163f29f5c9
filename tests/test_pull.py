"""`invoke pull` as the user runs it, in a baked project, against real servers on 127.0.0.1.

Sources: a local path, file://, http:// (http.server in a thread), s3:// (moto's server mode with
s3fs), a package index (pypiserver). Every failing pull asserts the project is byte-for-byte
unchanged (tree_hash before == after).
"""

from __future__ import annotations

import http.server
import io
import os
import subprocess
import sys
import tarfile
import threading
from pathlib import Path

import pytest

from tests.pull_support import ci_env, free_port, sdist_bytes, start, stop, tool, write_sdist

TOKEN = "s3cr3t-token-value-42"
KEY_ID, SECRET = "AKIAPIPERACKTEST", "very-secret-key-value-123"
FIXTURES = Path(__file__).parent / "fixtures"


# -- servers ----------------------------------------------------------------------------------------


class _Handler(http.server.SimpleHTTPRequestHandler):
    """Serves a folder; /private/* needs `Authorization: token <TOKEN>`; /flaky/* fails once with 503."""

    seen: list = []
    flaky_done: set = set()

    def log_message(self, *args):  # keep test output quiet
        pass

    def do_GET(self):
        type(self).seen.append((self.path, self.headers.get("Authorization")))
        if self.path.startswith("/private/") and self.headers.get("Authorization") != f"token {TOKEN}":
            self.send_error(403, "Forbidden")
            return
        if self.path.startswith("/flaky/") and self.path not in self.flaky_done:
            self.flaky_done.add(self.path)
            self.send_error(503, "Try again")
            return
        super().do_GET()


@pytest.fixture(scope="module")
def http_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("http")
    for sub in ("public", "private", "flaky"):
        (root / sub).mkdir()
    handler = lambda *a, **k: _Handler(*a, directory=str(root), **k)  # noqa: E731
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield root, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="session")
def s3_endpoint(tmp_path_factory):
    """moto's S3 server: the CI one (PIPERACK_TEST_S3_ENDPOINT) or our own, stopped by pid."""
    given = ci_env().get("PIPERACK_TEST_S3_ENDPOINT")
    if given:
        yield given
        return
    port = free_port()
    proc = start(
        [tool("moto_server"), "-H", "127.0.0.1", "-p", str(port)], port, tmp_path_factory.mktemp("moto") / "moto.log"
    )
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        stop(proc)


# -- helpers ----------------------------------------------------------------------------------------


def ok(result):
    assert result.returncode == 0, result.stdout + result.stderr
    return result


def fails(result, line: str) -> str:
    """The command failed (exit 1) with ``line`` as the whole of its stderr."""
    assert result.returncode == 1, result.stdout + result.stderr
    assert result.stderr == line + "\n", result.stderr
    assert "Traceback" not in result.stdout
    return result.stderr


def conflicts(sdist: Path, *paths: str) -> str:
    """The error line of a pull refused because ``paths`` already exist."""
    listed = "; ".join(f"{path} already exists (from {sdist})" for path in paths)
    return f"error: nothing pulled: {len(paths)} conflict(s): {listed} (use --force to replace the old module)"


def pkg_name(root: Path) -> str:
    return next(p.name for p in (root / "src").iterdir() if p.name != "tests" and (p / "__init__.py").exists())


def kit_invoke(root: Path, *args, env=None):
    """`invoke` run by the kit's interpreter (it has s3fs, which the project does not require)."""
    full = dict(os.environ, **(env or {}))
    full.pop("PYTHONPATH", None)
    return subprocess.run(
        [sys.executable, "-m", "invoke", *args], cwd=root, capture_output=True, text=True, env=full, timeout=300
    )


# -- local files ------------------------------------------------------------------------------------


def test_pull_local_tarball_then_its_tests_pass(project_copy, run_invoke, tmp_path):
    sdist = write_sdist(tmp_path / "dist", "cleaner", "0.2.0", requires=["pandas>=2.1", "tabulate>=0.9"])
    result = ok(run_invoke(project_copy, "pull", str(sdist)))
    pkg = pkg_name(project_copy)
    assert f"src/{pkg}/pipelines/cleaner/" in result.stdout and "invoke build-reqs" in result.stdout
    nodes = (project_copy / f"src/{pkg}/pipelines/cleaner/nodes.py").read_text()
    assert f"from {pkg}.pipelines.cleaner.helpers import double" in nodes
    assert (project_copy / "conf/base/parameters/cleaner.yml").is_file()
    req_in = (project_copy / "requirements.in").read_text()
    assert [line.split(">")[0] for line in req_in.splitlines()].count("pandas") == 1  # already there: skipped
    assert req_in.endswith("tabulate>=0.9\n")
    assert '"pipelines.cleaner" = {source = ' in (project_copy / "pyproject.toml").read_text()
    # The pulled tests run (and pass) where they landed, with their imports rewritten.
    ok(run_invoke(project_copy, "test", "--args", "src/tests/pipelines/cleaner -p no:cacheprovider"))


def test_pull_file_url_with_alias_destination_env(project_copy, run_invoke, tmp_path):
    sdist = write_sdist(tmp_path / "dist", "cleaner")
    ok(
        run_invoke(
            project_copy, "pull", sdist.as_uri(), "--alias", "tidy", "--destination", "shared", "--env", "staging"
        )
    )
    pkg = pkg_name(project_copy)
    assert f"from {pkg}.shared.tidy.helpers" in (project_copy / f"src/{pkg}/shared/tidy/nodes.py").read_text()
    assert (project_copy / f"src/{pkg}/shared/__init__.py").is_file()
    assert (
        f'mock.patch("{pkg}.shared.tidy.nodes.double"'
        in (project_copy / "src/tests/shared/tidy/test_cleaner.py").read_text()
    )
    assert (project_copy / "conf/staging/parameters/tidy.yml").read_text() == "factor: 3\n"
    ok(run_invoke(project_copy, "test", "--args", "src/tests/shared -p no:cacheprovider"))


def test_conflict_lists_everything_force_replaces_dry_run_writes_nothing(project_copy, run_invoke, tmp_path, tree_hash):
    v1 = write_sdist(tmp_path / "a", "cleaner", "0.1.0", code={"__init__.py": "", "stale.py": "x = 1\n"})
    v2 = write_sdist(tmp_path / "b", "cleaner", "0.2.0")
    ok(run_invoke(project_copy, "pull", str(v1)))
    before = tree_hash(project_copy)
    fails(
        run_invoke(project_copy, "pull", str(v2)),
        conflicts(
            v2,
            "conf/base/parameters/cleaner.yml",
            "src/demo_project/pipelines/cleaner/",
            "src/tests/pipelines/cleaner/",
        ),
    )
    assert tree_hash(project_copy) == before
    dry = ok(run_invoke(project_copy, "pull", str(v2), "--force", "--dry-run"))
    assert "nodes.py" in dry.stdout and "remove" in dry.stdout and "pyproject.toml" in dry.stdout
    assert tree_hash(project_copy) == before
    ok(run_invoke(project_copy, "pull", str(v2), "--force"))
    pkg = pkg_name(project_copy)
    assert not (project_copy / f"src/{pkg}/pipelines/cleaner/stale.py").exists()
    assert 'version = "0.2.0"' in (project_copy / "pyproject.toml").read_text()


def test_existing_example_pipeline_is_a_conflict(project_copy, run_invoke, tmp_path, tree_hash):
    sdist = write_sdist(tmp_path / "d", "ingest")
    before = tree_hash(project_copy)
    fails(
        run_invoke(project_copy, "pull", str(sdist)),
        conflicts(
            sdist,
            "conf/base/parameters/ingest.yml",
            "src/demo_project/pipelines/ingest/",
            "src/tests/pipelines/ingest/",
        ),
    )
    assert tree_hash(project_copy) == before


@pytest.mark.parametrize(
    "args, line",
    [
        (["--alias", "not.valid"], "invalid alias 'not.valid': it must be a Python identifier such as 'my_pipeline'"),
        (
            ["--destination", "../outside"],
            "invalid destination '../outside': expected a module path such as 'pipelines' inside the project package",
        ),
        (
            ["--env", "../../x"],
            "invalid env '../../x': an env is a folder name directly under conf/ (letters, digits, '_', '-', '.')",
        ),
        (["--sha256", "0" * 64], "{sdist}: sha256 is {digest}, expected " + "0" * 64 + "; refused"),
        (["--fs-args", "missing.yml"], "fs-args file missing.yml: no such file"),
    ],
)
def test_bad_options_change_nothing(project_copy, run_invoke, tmp_path, tree_hash, args, line):
    import hashlib

    sdist = write_sdist(tmp_path / "d", "cleaner")
    before = tree_hash(project_copy)
    digest = hashlib.sha256(sdist.read_bytes()).hexdigest()
    fails(run_invoke(project_copy, "pull", str(sdist), *args), "error: " + line.format(sdist=sdist, digest=digest))
    assert tree_hash(project_copy) == before


def test_no_source_and_missing_file(project_copy, run_invoke, tree_hash):
    before = tree_hash(project_copy)
    # invoke's own line: a positional argument is required unless --all is given
    fails(run_invoke(project_copy, "pull"), "'pull' did not receive required positional arguments: 'source'")
    fails(run_invoke(project_copy, "pull", "dist/nope-0.1.tar.gz"), "error: dist/nope-0.1.tar.gz: no such file")
    assert tree_hash(project_copy) == before


def _tar(path: Path, members: list[tuple[tarfile.TarInfo, bytes | None]]) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for info, data in members:
            if data is not None:
                info.size = len(data)
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return path


def _info(name, kind=tarfile.REGTYPE, linkname=""):
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, linkname
    return info


HOSTILE = {  # case: (members, the refusal after "<archive>: ")
    "symlink": (
        [(_info("evil-0.1/evil/__init__.py"), b""), (_info("evil-0.1/evil/l", tarfile.SYMTYPE, "/etc/passwd"), None)],
        "refused member 'evil-0.1/evil/l': a symbolic link (to '/etc/passwd')",
    ),
    "hardlink": (
        [
            (_info("evil-0.1/evil/__init__.py"), b""),
            (_info("evil-0.1/evil/h", tarfile.LNKTYPE, "../../outside.txt"), None),
        ],
        "refused member 'evil-0.1/evil/h': a hard link (to '../../outside.txt')",
    ),
    "dotdot": (
        [(_info("evil-0.1/evil/__init__.py"), b""), (_info("evil-0.1/../../outside.txt"), b"x")],
        "refused member 'evil-0.1/../../outside.txt': a path that climbs out with '..'",
    ),
    "absolute": (
        [(_info("/tmp/piperack-outside.txt"), b"x")],
        "refused member '/tmp/piperack-outside.txt': an absolute path",
    ),
    "fifo": (
        [(_info("evil-0.1/evil/__init__.py"), b""), (_info("evil-0.1/evil/f", tarfile.FIFOTYPE), None)],
        "refused member 'evil-0.1/evil/f': a fifo",
    ),
    "two-tops": (
        [(_info("a-0.1/a/__init__.py"), b""), (_info("b-0.1/b/__init__.py"), b"")],
        "expected exactly one top-level folder (<name>-<version>/), found 2: a-0.1, b-0.1",
    ),
    "no-package": (
        [(_info("n-0.1/PKG-INFO"), b"Name: n\nVersion: 0.1\n"), (_info("n-0.1/readme.txt"), b"x")],
        "no package in n-0.1/ (expected a folder with an __init__.py besides tests/)",
    ),
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_archives_change_nothing(project_copy, run_invoke, tmp_path, tree_hash, case):
    members, refusal = HOSTILE[case]
    arc = _tar(tmp_path / f"{case}-0.1.tar.gz", members)
    before = tree_hash(project_copy)
    fails(run_invoke(project_copy, "pull", str(arc)), f"error: {arc}: {refusal}")
    assert tree_hash(project_copy) == before
    assert not (project_copy.parent / "outside.txt").exists()


def test_not_a_tarball_truncated_and_oversize(project_copy, run_invoke, tmp_path, tree_hash):
    before = tree_hash(project_copy)
    junk = tmp_path / "junk-0.1.tar.gz"
    junk.write_bytes(b"<html>not found</html>")
    fails(
        run_invoke(project_copy, "pull", str(junk)),
        f"error: {junk}: not a readable .tar.gz archive (file could not be opened successfully:)",
    )
    full = sdist_bytes("cleaner", code={"__init__.py": "", "blob.py": "# " + os.urandom(60000).hex() + "\n"})
    cut = tmp_path / "cut-0.1.tar.gz"
    cut.write_bytes(full[: len(full) // 2])
    fails(
        run_invoke(project_copy, "pull", str(cut)),
        f"error: {cut}: truncated or corrupt archive "
        "(Compressed file ended before the end-of-stream marker was reached)",
    )
    big = tmp_path / "big-0.1.tar.gz"
    big.write_bytes(full)
    fails(
        run_invoke(project_copy, "pull", str(big), env={"PIPERACK_PULL_MAX_BYTES": "50K"}),
        f"error: {big}: larger than the {50 * 1024}-byte limit; refused",
    )
    assert tree_hash(project_copy) == before


# -- http ---------------------------------------------------------------------------------------------


def test_http_with_fs_args_header_and_errors(project_copy, run_invoke, tmp_path, tree_hash, http_root):
    root, base = http_root
    (root / "private" / "cleaner-0.1.0.tar.gz").write_bytes(sdist_bytes("cleaner"))
    (root / "flaky" / "flaky-0.1.0.tar.gz").write_bytes(sdist_bytes("flaky"))
    fs_args = project_copy / "conf/local/pull_args.yml"
    before = tree_hash(project_copy)
    # 404 and 403 name the URL (without credentials) and the status; nothing changes.
    fails(
        run_invoke(project_copy, "pull", f"{base}/public/none-0.1.tar.gz"),
        f"error: {base}/public/none-0.1.tar.gz: HTTP 404 File not found",
    )
    fails(  # the line names the URL without its credentials and query
        run_invoke(project_copy, "pull", f"http://user:pw123@{base[7:]}/private/cleaner-0.1.0.tar.gz?sig=abc"),
        f"error: {base}/private/cleaner-0.1.0.tar.gz: HTTP 403 Forbidden",
    )
    assert tree_hash(project_copy) == before
    fs_args.write_text(f"client_kwargs:\n  headers:\n    Authorization: token {TOKEN}\n")
    result = ok(
        run_invoke(
            project_copy, "pull", f"{base}/private/cleaner-0.1.0.tar.gz", "--fs-args", "conf/local/pull_args.yml"
        )
    )
    assert ("/private/cleaner-0.1.0.tar.gz", f"token {TOKEN}") in _Handler.seen
    assert TOKEN not in result.stdout + result.stderr
    assert TOKEN not in (project_copy / "pyproject.toml").read_text()
    # A 503 is retried with backoff.
    ok(run_invoke(project_copy, "pull", f"{base}/flaky/flaky-0.1.0.tar.gz"))
    assert [p for p, _ in _Handler.seen].count("/flaky/flaky-0.1.0.tar.gz") == 2


# -- s3 (moto server + s3fs) --------------------------------------------------------------------------


def _put_s3(endpoint: str, bucket: str, key: str, data: bytes) -> None:
    import boto3

    s3 = boto3.client(
        "s3", endpoint_url=endpoint, aws_access_key_id=KEY_ID, aws_secret_access_key=SECRET, region_name="us-east-1"
    )
    try:
        s3.create_bucket(Bucket=bucket)
    except s3.exceptions.BucketAlreadyOwnedByYou:
        pass
    s3.put_object(Bucket=bucket, Key=key, Body=data)


def test_s3_with_fs_args(project_copy, tmp_path, tree_hash, s3_endpoint):
    _put_s3(s3_endpoint, "pipes", "shared/cleaner-0.4.0.tar.gz", sdist_bytes("cleaner", "0.4.0", requires=["tabulate"]))
    args = project_copy / "conf/local/s3.yml"
    args.write_text(
        f"key: {KEY_ID}\nsecret: {SECRET}\nclient_kwargs:\n  endpoint_url: {s3_endpoint}\n  region_name: us-east-1\n"
    )
    before = tree_hash(project_copy)
    missing = kit_invoke(project_copy, "pull", "s3://pipes/shared/nope-0.1.tar.gz", "--fs-args", str(args))
    fails(missing, "error: s3://pipes/shared/nope-0.1.tar.gz: not found")
    assert SECRET not in missing.stdout and KEY_ID not in missing.stdout
    assert tree_hash(project_copy) == before
    result = kit_invoke(project_copy, "pull", "s3://pipes/shared/cleaner-0.4.0.tar.gz", "--fs-args", str(args))
    assert result.returncode == 0, result.stderr
    assert SECRET not in result.stdout + result.stderr and KEY_ID not in result.stdout + result.stderr
    pkg = pkg_name(project_copy)
    assert (project_copy / f"src/{pkg}/pipelines/cleaner/nodes.py").is_file()
    assert 'source = "s3://pipes/shared/cleaner-0.4.0.tar.gz"' in (project_copy / "pyproject.toml").read_text()


def test_missing_fsspec_backend_names_the_package(project_copy, run_invoke, tree_hash):
    # The project's own environment does not install s3fs (nor gcsfs): a one-line hint, nothing written.
    before = tree_hash(project_copy)
    fails(
        run_invoke(project_copy, "pull", "gcs://bucket/x-0.1.tar.gz"),
        "error: gcs://bucket/x-0.1.tar.gz: no fsspec backend for gcs:// is installed (pip install gcsfs)",
    )
    assert tree_hash(project_copy) == before


# -- package index (pypiserver) -----------------------------------------------------------------------


def test_index_pull_version_specifier_and_wheel_only(project_copy, run_invoke, tree_hash, index):
    url, folder = index
    write_sdist(folder, "pr_cleaner", "0.1.0", dist_name="pr-cleaner")
    write_sdist(folder, "pr_cleaner", "0.2.0", dist_name="pr-cleaner", requires=["tabulate"])
    (folder / "pr_wheelonly-1.0-py3-none-any.whl").write_bytes(b"not really a wheel")
    before = tree_hash(project_copy)
    fails(
        run_invoke(project_copy, "pull", "pr-wheelonly", "--index-url", url),
        "error: pr-wheelonly: the index has only wheels for it (no .tar.gz sdist); a micro-package is pulled "
        f"from its sdist (searched {url})",
    )
    fails(
        run_invoke(project_copy, "pull", "pr-absent", "--index-url", url),
        f"error: pr-absent: no sdist found matching it (searched {url})",
    )
    assert tree_hash(project_copy) == before
    result = ok(run_invoke(project_copy, "pull", "pr-cleaner<0.2", "--index-url", url))
    assert "pr-cleaner 0.1.0" in result.stdout
    pkg = pkg_name(project_copy)
    assert (project_copy / f"src/{pkg}/pipelines/pr_cleaner/nodes.py").is_file()
    ok(run_invoke(project_copy, "pull", "pr-cleaner", "--index-url", url, "--force"))
    assert 'version = "0.2.0"' in (project_copy / "pyproject.toml").read_text()
    assert "tabulate" in (project_copy / "requirements.in").read_text()


# -- manifest -----------------------------------------------------------------------------------------


def test_pull_all_from_manifest(project_copy, run_invoke, tmp_path, tree_hash, http_root):
    root, base = http_root
    (root / "public" / "beta-0.1.0.tar.gz").write_bytes(sdist_bytes("beta"))
    (project_copy / "dist").mkdir()
    write_sdist(project_copy / "dist", "alpha")
    gamma = write_sdist(tmp_path / "g", "gamma")
    pyproject = project_copy / "pyproject.toml"
    original = pyproject.read_text()
    pyproject.write_text(
        original.replace(
            "[tool.piperack.pull]\n",
            "[tool.piperack.pull]\n"
            '"dist/alpha-0.1.0.tar.gz" = {alias = "first", destination = "pipelines"}\n'
            f'"{base}/public/beta-0.1.0.tar.gz" = {{env = "prod", fs-args = "conf/local/none.yml"}}\n'
            f'"{gamma.as_uri()}" = {{destination = "utils"}}\n',
        )
    )
    before = tree_hash(project_copy)
    fails(run_invoke(project_copy, "pull", "--all"), "error: fs-args file conf/local/none.yml: no such file")
    assert tree_hash(project_copy) == before
    (project_copy / "conf/local/none.yml").write_text("client_kwargs: {}\n")
    result = ok(run_invoke(project_copy, "pull", "--all"))
    pkg = pkg_name(project_copy)
    assert (project_copy / f"src/{pkg}/pipelines/first/nodes.py").is_file()
    assert (project_copy / f"src/{pkg}/pipelines/beta/nodes.py").is_file()
    assert (project_copy / "conf/prod/parameters/beta.yml").is_file()
    assert (project_copy / f"src/{pkg}/utils/gamma/nodes.py").is_file()
    assert result.stdout.count("pulled ") == 3
    ok(run_invoke(project_copy, "test", "--args", "src/tests/pipelines/first src/tests/utils -p no:cacheprovider"))


# -- a package made by Kedro 0.18.14 ------------------------------------------------------------------


def test_pull_kedro_made_package(project_copy, run_invoke, tmp_path):
    sdists = sorted((FIXTURES / "kedro").glob("*.tar.gz"))
    assert sdists, "tests/fixtures/kedro/ holds the Kedro-made sdist (see its README)"
    result = ok(run_invoke(project_copy, "pull", str(sdists[0]), "--alias", "kedro_ingest"))
    pkg = pkg_name(project_copy)
    code = project_copy / f"src/{pkg}/pipelines/kedro_ingest"
    assert (code / "pipeline.py").is_file() and (code / "nodes.py").is_file()
    assert not (code / "config").exists()
    assert (project_copy / "conf/base/parameters/kedro_ingest.yml").is_file()
    assert "egg-info" not in result.stdout
    tests = project_copy / "src/tests/pipelines/kedro_ingest"
    assert any(p.name.startswith("test_") for p in tests.iterdir())
    assert f"from {pkg}.pipelines.kedro_ingest import pipeline" in (tests / "test_ingest.py").read_text()
    assert f"from {pkg}.pipelines.kedro_ingest.nodes import scale" in (code / "pipeline.py").read_text()
    assert "tabulate>=0.9" in (project_copy / "requirements.in").read_text()
    # Kedro's packager leaves mock.patch string targets spelled with its own project's package,
    # so only the test that does not patch can pass after any pull of this sdist.
    ok(run_invoke(project_copy, "test", "--args", "src/tests/pipelines/kedro_ingest -k test_scale -p no:cacheprovider"))


# -- round trip with `invoke package` -----------------------------------------------------------------


def test_package_then_pull_into_another_project(project_copy, run_invoke, bake, tree_hash):
    ok(run_invoke(project_copy, "package", "pipelines.ingest", "--alias", "ingest_tools"))
    (sdist,) = (project_copy / "dist").glob("ingest_tools-*.tar.gz")
    other = bake(project_name="Other Shop", include_example=False)
    assert not (other / "src/other_shop/pipelines/ingest").exists()
    result = ok(run_invoke(other, "pull", str(sdist), "--dry-run"))
    assert "src/other_shop/pipelines/ingest_tools/nodes.py" in result.stdout
    ok(run_invoke(other, "pull", str(sdist)))
    code = other / "src/other_shop/pipelines/ingest_tools"
    assert (code / "pipeline.py").is_file()
    assert (other / "conf/base/parameters/ingest_tools.yml").is_file()
    text = "".join(p.read_text() for p in (other / "src/tests/pipelines/ingest_tools").glob("*.py"))
    assert "demo_project" not in text and "demo_project" not in "".join(p.read_text() for p in code.glob("*.py"))
    ok(run_invoke(other, "test", "--args", "src/tests/pipelines/ingest_tools -p no:cacheprovider"))
    # Pulling it again is a conflict that changes nothing.
    before = tree_hash(other)
    fails(
        run_invoke(other, "pull", str(sdist)),
        conflicts(
            sdist,
            "conf/base/parameters/ingest_tools.yml",
            "src/other_shop/pipelines/ingest_tools/",
            "src/tests/pipelines/ingest_tools/",
        ),
    )
    assert tree_hash(other) == before


def test_nothing_from_the_package_is_executed(project_copy, run_invoke, tmp_path):
    marker = tmp_path / "EXECUTED"
    payload = f"open({str(marker)!r}, 'w').write('ran')\n"
    sdist = write_sdist(
        tmp_path / "d",
        "sneaky",
        code={"__init__.py": payload, "nodes.py": payload},
        tests={"__init__.py": "", "conftest.py": payload},
        extra={"setup.py": payload + "from setuptools import setup\nsetup()\n", "build_backend.py": payload},
    )
    ok(run_invoke(project_copy, "pull", str(sdist)))
    assert not marker.exists()
    pkg = pkg_name(project_copy)
    assert (project_copy / f"src/{pkg}/pipelines/sneaky/__init__.py").read_text() == payload
    assert not (project_copy / "setup.py").exists()
