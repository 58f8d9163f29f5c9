"""Fixtures shared by the template tests: the piperack wheel, baked projects, their virtualenv,
running their tasks."""

from __future__ import annotations

import hashlib
import secrets
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from scripts import kitlib
from tests.pull_support import ci_env, free_port, start, stop, tool

KIT, TEMPLATE = kitlib.KIT, kitlib.TEMPLATE


@pytest.fixture(scope="session")
def wheelhouse(tmp_path_factory) -> Path:
    """A find-links folder holding the piperack wheel of this checkout, built once per session."""
    folder = tmp_path_factory.mktemp("wheelhouse")
    kitlib.build_wheel(folder)
    return folder


@pytest.fixture
def bake(tmp_path):
    """bake(**context) -> Path of a freshly generated project (its own copy, under tmp_path)."""
    counter = iter(range(1000))

    def _bake(**context) -> Path:
        return kitlib.bake(tmp_path / f"bake{next(counter)}", **context)

    return _bake


@pytest.fixture(scope="session")
def project(tmp_path_factory) -> Path:
    """One default project (with the example) for the session: treat it as read-only."""
    return kitlib.bake(tmp_path_factory.mktemp("session-project"))


@pytest.fixture
def project_copy(project, tmp_path) -> Path:
    """A private copy of the session project, for a test that writes."""
    dest = tmp_path / project.name
    shutil.copytree(project, dest, symlinks=True)
    return dest


@pytest.fixture(scope="session")
def venv(project, wheelhouse) -> Path:
    """A virtualenv with the generated project's requirements-dev.txt installed (cached by hash),
    piperack from the session's wheel."""
    return kitlib.project_venv(project, wheelhouse)


@pytest.fixture(scope="session")
def user_env(venv, wheelhouse):
    """user_env(**extra) -> the environment of a user working in the project's virtualenv."""

    def _env(**extra) -> dict:
        return kitlib.invoke_env(venv, wheelhouse) | extra

    return _env


def _run_invoke(
    venv: Path,
    wheelhouse: Path,
    root: Path,
    *args: str,
    env: dict | None = None,
    timeout: float = 600,
    input: str | None = None,
) -> subprocess.CompletedProcess:
    full_env = kitlib.invoke_env(venv, wheelhouse)
    full_env.update(env or {})
    return subprocess.run(
        [str(venv / "bin" / "invoke"), *args],
        cwd=root,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=timeout,
        input=input,
    )


@pytest.fixture(scope="session")
def run_invoke(venv, wheelhouse):
    """run_invoke(root, *args, env=None) -> CompletedProcess of `invoke ARGS` in root (text, captured)."""

    def _run(root: Path, *args: str, **kwargs) -> subprocess.CompletedProcess:
        return _run_invoke(venv, wheelhouse, root, *args, **kwargs)

    return _run


def tree_hash(root: Path) -> dict[str, str]:
    """sha256 of every file under root (and the targets of links), by relative path."""
    result = {}
    for path in sorted(Path(root).rglob("*")):
        rel = path.relative_to(root).as_posix()
        if path.is_symlink():
            result[rel] = "link:" + str(path.readlink())
        elif path.is_file():
            result[rel] = hashlib.sha256(path.read_bytes()).hexdigest()
        elif path.is_dir():
            result[rel + "/"] = "dir"
    return result


@pytest.fixture(name="tree_hash")
def tree_hash_fixture():
    return tree_hash


@pytest.fixture(scope="session")
def index(tmp_path_factory):
    """pypiserver: (simple URL, folder it serves); the CI one or our own, stopped by pid."""
    env = ci_env()
    if env.get("PIPERACK_TEST_INDEX_URL") and env.get("PIPERACK_TEST_INDEX_DIR"):
        yield env["PIPERACK_TEST_INDEX_URL"], Path(env["PIPERACK_TEST_INDEX_DIR"])
        return
    folder = tmp_path_factory.mktemp("index")
    port = free_port()
    proc = start(
        [
            tool("pypi-server"),
            "run",
            "-i",
            "127.0.0.1",
            "-p",
            str(port),
            "--disable-fallback",
            "-a",
            ".",
            "-P",
            ".",
            str(folder),
        ],
        port,
        tmp_path_factory.mktemp("pypiserver") / "log",
    )
    try:
        yield f"http://127.0.0.1:{port}/simple/", folder
    finally:
        stop(proc)


@dataclass(frozen=True)
class UploadIndex:
    url: str  # the upload endpoint (legacy upload API)
    user: str
    password: str
    folder: Path  # the folder it serves (a test may tamper with a file there)

    @property
    def simple(self) -> str:
        return self.url.rstrip("/") + "/simple/"


@pytest.fixture(scope="session")
def upload_index(tmp_path_factory):
    """pypiserver that takes uploads only with a password (htpasswd): the CI one or our own, stopped by pid."""
    env = ci_env()
    if all(env.get(f"PIPERACK_TEST_UPLOAD_{k}") for k in ("URL", "USER", "PASSWORD", "DIR")):
        yield UploadIndex(
            env["PIPERACK_TEST_UPLOAD_URL"],
            env["PIPERACK_TEST_UPLOAD_USER"],
            env["PIPERACK_TEST_UPLOAD_PASSWORD"],
            Path(env["PIPERACK_TEST_UPLOAD_DIR"]),
        )
        return
    import warnings

    with warnings.catch_warnings():  # passlib imports the stdlib's deprecated crypt (gone in 3.13: it copes)
        warnings.simplefilter("ignore", DeprecationWarning)
        from passlib.apache import HtpasswdFile

    home = tmp_path_factory.mktemp("upload-index")
    password = secrets.token_urlsafe(18)
    htpasswd = HtpasswdFile(str(home / "htpasswd"), new=True)
    htpasswd.set_password("piperack-test", password)
    htpasswd.save()
    (home / "packages").mkdir()
    port = free_port()
    cmd = [tool("pypi-server"), "run", "-i", "127.0.0.1", "-p", str(port), "--disable-fallback"]
    proc = start([*cmd, "-a", "update", "-P", str(home / "htpasswd"), str(home / "packages")], port, home / "log")
    try:
        yield UploadIndex(f"http://127.0.0.1:{port}/", "piperack-test", password, home / "packages")
    finally:
        stop(proc)


@pytest.fixture(scope="session")
def kit_repo(tmp_path_factory) -> Path:
    """A git repository holding this checkout's files as one commit (what a kit clone or URL gives)."""
    repo = tmp_path_factory.mktemp("kit") / "piperack"
    ignore = shutil.ignore_patterns(
        ".git", ".venv", ".cache", "build", "dist", "__pycache__", ".pytest_cache", "*.egg-info"
    )
    shutil.copytree(KIT, repo, ignore=ignore)
    git = ["git", "-c", "user.name=Kit", "-c", "user.email=kit@example.invalid", "-c", "init.defaultBranch=main"]
    subprocess.run([*git, "init", "-q"], cwd=repo, check=True)
    subprocess.run([*git, "add", "-A"], cwd=repo, check=True)
    subprocess.run([*git, "commit", "-q", "-m", "kit"], cwd=repo, check=True)
    return repo
