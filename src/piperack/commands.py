"""run, test and lint: the project's own runner, pytest and ruff, each in a child process.

The child gets the project's environment (src/ first on the path) and every Ctrl-C or SIGTERM this
process receives: a scheduler stopping `invoke run` stops the pipeline, not only invoke, and the
child's exit status (130 after Ctrl-C, 143 after SIGTERM) is the task's.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

from .errors import PiperackError
from .project import Project


def python_env(root: Path) -> dict:
    """Environment for running the project's code from the working tree (src/ first on the path)."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(root / "src"), env.get("PYTHONPATH")]))
    return env


def exit_status(returncode: int) -> int:
    """A child's status as a shell shows it: killed by signal N is 128 + N."""
    return 128 - returncode if returncode < 0 else returncode


def run_child(cmd: list[str], **kwargs) -> int:
    """Run ``cmd`` until it ends, passing on SIGINT and SIGTERM; its exit status (see exit_status).

    A terminal's Ctrl-C reaches the child directly too (same process group): the project's runner
    treats a repeated signal as one. A second Ctrl-C to this process kills a child that ignores it.
    """
    child = subprocess.Popen(cmd, **kwargs)
    received: list[int] = []

    def forward(signum, frame):
        received.append(signum)
        if signum == signal.SIGINT and received.count(signal.SIGINT) > 1:
            child.kill()
        else:
            child.send_signal(signum)

    main = threading.current_thread() is threading.main_thread()
    old = {sig: signal.signal(sig, forward) for sig in (signal.SIGINT, signal.SIGTERM)} if main else {}
    try:
        return exit_status(child.wait())
    finally:
        for sig, handler in old.items():
            signal.signal(sig, handler)


def require_tool(module: str) -> None:
    """One line naming the install command when a development tool the task runs is missing."""
    import importlib.util

    if importlib.util.find_spec(module) is None:
        raise PiperackError(f"{module} is not installed in this environment: run `pip install -r requirements-dev.txt`")


def run(
    project: Project,
    pipelines: list[str],
    env: str,
    params: str | None = None,
    log_level: str | None = None,
    with_deps: bool = False,
) -> int:
    """`python -m <package> run …` in the project; its exit status. The runner checks the options
    (pipeline names, --params, --log-level), orders the pipelines (conf/base/pipelines.yml) and
    says what is wrong in one line."""
    if with_deps and not pipelines:
        raise PiperackError("--with-deps adds what the --pipeline ones depend on: name at least one --pipeline")
    cmd = [sys.executable, "-m", project.package, "run", "--env", env]
    for name in pipelines:
        cmd += ["--pipeline", name]
    if with_deps:
        cmd.append("--with-deps")
    if params is not None:
        cmd += ["--params", params]
    if log_level:
        cmd += ["--log-level", log_level]
    return run_child(cmd, cwd=project.root, env=python_env(project.root))


def test(project: Project, args: list[str]) -> int:
    """pytest over the project's tests; its exit status."""
    require_tool("pytest")
    return run_child([sys.executable, "-m", "pytest", *args], cwd=project.root, env=python_env(project.root))


def lint(project: Project, fix: bool) -> int:
    """ruff check and ruff format (--check unless ``fix``), both run; non-zero if either failed."""
    require_tool("ruff")
    ruff = [sys.executable, "-m", "ruff"]
    steps = (
        [[*ruff, "check", "--fix", "."], [*ruff, "format", "."]]
        if fix
        else [[*ruff, "check", "."], [*ruff, "format", "--check", "."]]
    )
    failed = 0
    for step in steps:
        status = run_child(step, cwd=project.root)
        if status > 128:  # stopped by a signal: the second step would only be stopped too
            return status
        failed |= status
    return failed
