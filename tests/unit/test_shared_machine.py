"""Shared machines (issue 20, kind 11): the caches and locks piperack keeps outside a project work for
every user of the machine. Another user (``nobody``, with no home of its own) runs the system Python
on piperack's source, as tests/unit/test_write_session.py does for the project lock."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from piperack import tools
from piperack.airflow import venv as airflow_venv
from tests.pull_support import wait_until

NOBODY = 65534
SOURCE = str(Path(tools.__file__).parents[1])  # src/, which holds the piperack package
UV = tools.find_uv()

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or not Path("/usr/bin/python3").exists(), reason="needs root and a system Python 3.11+"
)


@pytest.fixture
def shared():
    """A folder every user may write to, like /tmp (sticky), removed afterwards whoever made what."""
    folder = Path(tempfile.mkdtemp(prefix="piperack-shared-", dir="/tmp"))
    os.chmod(folder, 0o1777)
    try:
        yield folder
    finally:
        subprocess.run(["rm", "-rf", str(folder)], check=True)


def as_nobody(code: str, *args: str, env: dict | None = None, wait: bool = True):
    """Run ``code`` as nobody (HOME /nonexistent, as on Debian) with the system Python."""
    environment = {"PATH": "/usr/bin:/bin", "HOME": "/nonexistent", "PYTHONPATH": SOURCE} | (env or {})
    proc = subprocess.Popen(
        ["/usr/bin/python3", "-c", code, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        user=NOBODY,
        env=environment,
        cwd="/",
    )
    if not wait:
        return proc
    out, err = proc.communicate(timeout=120)
    return proc.returncode, out, err


CACHE_ROOT = "from piperack.airflow.venv import cache_root; print(cache_root())"


def test_a_user_without_a_home_gets_a_private_cache_in_the_temporary_folder(shared):
    code, out, err = as_nobody(CACHE_ROOT, env={"TMPDIR": str(shared)})
    assert (code, err) == (0, "")
    assert out == f"{shared}/piperack-{NOBODY}/piperack-airflow\n"
    private = shared / f"piperack-{NOBODY}"
    assert (private.stat().st_uid, private.stat().st_mode & 0o777) == (NOBODY, 0o700)
    # The home of another user (sudo -u keeps HOME) is not written either.
    home = shared / "roots-home"
    home.mkdir(mode=0o755)
    code, out, err = as_nobody(CACHE_ROOT, env={"TMPDIR": str(shared), "HOME": str(home)})
    assert (code, out, err) == (0, f"{shared}/piperack-{NOBODY}/piperack-airflow\n", "")
    assert list(home.iterdir()) == []


def test_another_users_folder_of_that_name_is_refused_not_used(shared):
    planted = shared / f"piperack-{NOBODY}"
    planted.mkdir(mode=0o777)
    os.chmod(planted, 0o777)
    code, out, err = as_nobody(
        "from piperack.errors import funnel\nfrom piperack.airflow.venv import cache_root\n"
        "with funnel():\n    print(cache_root())",
        env={"TMPDIR": str(shared)},
    )
    assert (code, out) == (1, "")
    assert err == (
        f"error: {planted}: not this user's private folder (a link, another user's or writable by others); "
        "remove it, or set XDG_CACHE_HOME to a folder of yours\n"
    )
    assert list(planted.iterdir()) == []


LOCK = (
    "import sys\nfrom pathlib import Path\nfrom piperack.airflow.venv import cache_lock\n"
    "with cache_lock(Path(sys.argv[1])):\n    print('locked', flush=True)\n"
)


def _waiting_on_flock(pid: int) -> bool:
    return any(line.split()[1] == "->" and f" {pid} " in line for line in Path("/proc/locks").read_text().splitlines())


def test_the_airflow_cache_lock_made_by_one_user_locks_for_the_next(shared):
    """root made the lock file (mode 0644) in a cache both use: nobody waits for it and then takes it,
    instead of failing with Permission denied."""
    cache = shared / "cache"
    cache.mkdir(mode=0o777)
    os.chmod(cache, 0o1777)
    lock = cache / ".venv-key.lock"
    with airflow_venv.cache_lock(lock):
        assert lock.stat().st_uid == 0 and lock.stat().st_mode & 0o777 == 0o644  # made with root's umask
        other = as_nobody(LOCK, str(lock), wait=False)
        wait_until(lambda: _waiting_on_flock(other.pid), "nobody waits for root's lock", proc=other)
    out, err = other.communicate(timeout=60)
    assert (other.returncode, out, err) == (0, "locked\n", "")


UV_COMPILE = (
    "import os, subprocess, sys\nfrom piperack.tools import tool_env\n"
    "env = tool_env(os.environ) if sys.argv[3] == 'ours' else dict(os.environ)\n"
    "proc = subprocess.run([sys.argv[1], 'pip', 'compile', sys.argv[2], '--offline', '--no-index', '--quiet',\n"
    "    '--no-header'], env=env, capture_output=True, text=True)\n"
    "print(proc.returncode, env.get('UV_CACHE_DIR'), proc.stderr.strip().splitlines()[:1])\n"
)


@pytest.mark.skipif(UV is None or len(UV) != 1, reason="needs the uv executable")
def test_uv_runs_for_a_user_whose_home_cache_cannot_be_written(shared):
    requirements = shared / "requirements.in"
    requirements.write_text("")
    os.chmod(requirements, 0o644)
    uv = shutil.which(UV[0]) or UV[0]
    env = {"TMPDIR": str(shared)}
    code, out, err = as_nobody(UV_COMPILE, uv, str(requirements), "plain", env=env)
    assert (code, err) == (0, "")
    assert out == "2 None ['error: Failed to initialize cache at `/nonexistent/.cache/uv`']\n"  # uv alone fails
    code, out, err = as_nobody(UV_COMPILE, uv, str(requirements), "ours", env=env)
    assert (code, out, err) == (0, f"0 {shared}/piperack-{NOBODY}/uv []\n", "")
    # A user whose own cache works keeps it: nothing is set.
    assert "UV_CACHE_DIR" not in tools.tool_env({"HOME": str(shared), "XDG_CACHE_HOME": ""})
