"""Helpers for the `invoke pull` tests: sdists in the micro-package format, local servers.

Test sdists are written with tarfile in the layout DESIGN.md documents (``<name>-<version>/``
with PKG-INFO, pyproject.toml, ``<name>/`` code, ``<name>/config/`` parameters, ``tests/``).
"""

from __future__ import annotations

import io
import os
import signal
import socket
import subprocess
import sys
import tarfile
import time
from pathlib import Path

NODES = '''"""Nodes of {name}."""
from {name}.helpers import double  # absolute import of its own module


def run_nodes(params):
    return double(params["factor"])
'''
HELPERS = """def double(x):
    # a comment that must survive
    return 2 * x
"""
PIPELINE = """from .nodes import run_nodes  # relative: stays as it is


def run(params, catalog):
    return {{"value": run_nodes(params)}}
"""
TEST = """from unittest import mock

import {name}.nodes
from {name}.nodes import run_nodes


def test_run_nodes():
    with mock.patch("{name}.nodes.double", return_value=7):
        assert run_nodes({{"factor": 2}}) == 7
    assert {name}.nodes.run_nodes({{"factor": 2}}) == 4
"""


def sdist_bytes(
    name: str,
    version: str = "0.1.0",
    *,
    code: dict | None = None,
    params: dict | None = None,
    tests: dict | None = None,
    requires: list | None = None,
    module: str | None = None,
    dist_name: str | None = None,
    extra: dict | None = None,
) -> bytes:
    """A micro-package sdist (tar.gz bytes). ``code``/``tests`` default to a small working pipeline."""
    top = f"{dist_name or name}-{version}"
    if code is None:
        code = {
            "__init__.py": f'__version__ = "{version}"\n',
            "nodes.py": NODES.format(name=name),
            "helpers.py": HELPERS,
            "pipeline.py": PIPELINE.format(name=name),
            "requirements.txt": "".join(f"{r}\n" for r in requires or []),
        }
    if params is None:
        params = {f"parameters/{name}.yml": "factor: 3\n"}
    if tests is None:
        tests = {"__init__.py": "", f"test_{name}.py": TEST.format(name=name)}
    pkg_info = f"Metadata-Version: 2.1\nName: {dist_name or name}\nVersion: {version}\n"
    pkg_info += "".join(f"Requires-Dist: {r}\n" for r in requires or [])
    pyproject = (
        '[build-system]\nrequires = ["setuptools"]\nbuild-backend = "setuptools.build_meta"\n\n'
        f'[project]\nname = "{dist_name or name}"\nversion = "{version}"\n'
        f"dependencies = {list(requires or [])!r}\n".replace("'", '"')
    )
    if module is not None:
        pyproject += f'\n[tool.piperack]\nmodule = "{module}"\n'
    members: dict[str, bytes] = {"PKG-INFO": pkg_info.encode(), "pyproject.toml": pyproject.encode()}
    for rel, text in code.items():
        members[f"{name}/{rel}"] = text.encode() if isinstance(text, str) else text
    for rel, text in params.items():
        members[f"{name}/config/{rel}"] = text.encode() if isinstance(text, str) else text
    for rel, text in tests.items():
        members[f"tests/{rel}"] = text.encode() if isinstance(text, str) else text
    for rel, text in (extra or {}).items():
        members[rel] = text.encode() if isinstance(text, str) else text
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for rel in sorted(members):
            data = members[rel]
            info = tarfile.TarInfo(f"{top}/{rel}")
            info.size = len(data)
            info.mtime = 0
            info.mode = 0o644
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def write_sdist(folder: Path, name: str, version: str = "0.1.0", **kwargs) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    dist = kwargs.get("dist_name") or name
    path = folder / f"{dist}-{version}.tar.gz"
    path.write_bytes(sdist_bytes(name, version, **kwargs))
    return path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_port(port: int, proc: subprocess.Popen | None = None, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise RuntimeError(f"nothing listening on 127.0.0.1:{port} after {timeout}s")


def start(cmd: list[str], port: int, log: Path) -> subprocess.Popen:
    handle = open(log, "wb")
    proc = subprocess.Popen(cmd, stdout=handle, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        wait_for_port(port, proc)
    except BaseException:
        stop(proc)
        raise
    return proc


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def tool(name: str) -> str:
    """A console script next to the running interpreter (the kit's virtualenv)."""
    candidate = Path(sys.executable).parent / name
    return str(candidate) if candidate.exists() else name


def ci_env() -> dict:
    """The PIPERACK_TEST_* settings .ci/services.sh published (.ci/run sources them into the env)."""
    return {k: v for k, v in os.environ.items() if k.startswith("PIPERACK_TEST_")}


def wait_until(predicate, what: str, timeout: float = 60, proc: subprocess.Popen | None = None) -> None:
    """Wait for a state, never for a time: poll ``predicate`` until it is true, and fail loudly
    naming ``what`` when ``timeout`` passes or ``proc`` ends first (with its output)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if proc is not None and proc.poll() is not None:
            out, err = proc.communicate()
            raise AssertionError(f"the process ended (exit {proc.returncode}) before {what}:\n{out}\n{err}")
        if time.monotonic() > deadline:
            raise AssertionError(f"not reached after {timeout} s: {what}")
        time.sleep(0.02)


def interrupt_when(
    cmd: list[str],
    reached,
    what: str,
    how: str,
    *,
    cwd: Path | None = None,
    env: dict | None = None,
    timeout: float = 120,
) -> subprocess.CompletedProcess:
    """Start ``cmd`` in a process group of its own, wait until ``reached()`` is true (a state: a
    file written, a request at a server; never a time), then stop it as the user would and return
    what it did. ``how`` is "ctrl-c" (SIGINT to the whole group, as a terminal sends it, so the tools
    it started get it too) or "sigterm" (SIGTERM to the one process, as a scheduler sends it)."""
    if how not in ("ctrl-c", "sigterm"):
        raise ValueError(f"how: 'ctrl-c' or 'sigterm', not {how!r}")
    proc = subprocess.Popen(
        cmd,
        cwd=cwd,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        wait_until(reached, what, proc=proc)
        if how == "ctrl-c":
            os.killpg(proc.pid, signal.SIGINT)
        else:
            proc.terminate()
        out, err = proc.communicate(timeout=timeout)
    except BaseException:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
        raise
    return subprocess.CompletedProcess(cmd, proc.returncode, out, err)


def add_slow_pipeline(project: Path, code: str, marker: Path) -> None:
    """Pipeline ``slow`` in the baked demo project, ``code`` its pipeline.py; its parameter ``marker``
    names the file it writes once it runs: the state a test signals it at."""
    folder = project / "src" / "demo_project" / "pipelines" / "slow"
    folder.mkdir()
    (folder / "__init__.py").write_text("")
    (folder / "pipeline.py").write_text(code)
    (project / "conf/base/parameters/slow.yml").write_text(f"marker: {marker}\n")


def temporary_files(tmp: Path) -> list[str]:
    """What a command left in its TMPDIR (nothing: the project lock lives in no file)."""
    return sorted(p.name for p in tmp.iterdir())


class StallingServer:
    """An HTTP server on 127.0.0.1 that answers every GET with a status line, headers and the first
    bytes of ``prefix``, then stalls until the test ends: a download (or an index request) caught
    in the middle. ``arrived`` is set once a request has been answered that far, so a test signals
    the client at a known state instead of after a guessed sleep.

        with StallingServer() as server:
            ... start the client on server.url ...
            wait_until(server.arrived.is_set, "the request reached the server", proc=proc)
    """

    def __init__(
        self, prefix: bytes = b"\x1f\x8b" + b"x" * 100, length: int = 100_000, content_type: str = "application/gzip"
    ):
        import http.server
        import threading

        self.arrived = threading.Event()
        self.release = threading.Event()
        stall = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802
                self.send_response(200)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(length))
                self.end_headers()
                self.wfile.write(prefix)
                self.wfile.flush()
                stall.arrived.set()
                stall.release.wait(120)

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_port}"
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> StallingServer:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.release.set()
        self.httpd.shutdown()
        self.httpd.server_close()
