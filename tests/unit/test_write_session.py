"""The write session every verb writes through (fsutil.write_session): one lock for pull, update and
new-pipeline, a journal that only its own verb recovers and never replays over files changed since,
confinement to the project, and the lock shared by every user of the machine."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from piperack import fsutil, scaffold
from piperack.errors import PiperackError
from piperack.project import find_project
from tests.pull_support import wait_until, write_sdist
from tests.unit.test_pull_engine import run


def exact(line: str) -> str:
    return f"^{re.escape(line)}$"


def killed_run(root: Path, verb: str) -> fsutil.Transaction:
    """A run of ``verb`` that wrote, then died by SIGKILL (no commit, no rollback)."""
    tx = fsutil.Transaction(root, verb)
    tx.create("src/demo/pipelines/half/__init__.py", b"# half\n")
    tx.change("pyproject.toml", (root / "pyproject.toml").read_bytes() + b"\n# the killed run's edit\n")
    tx.remove("requirements.in")
    tx._journal.close()
    return tx


def test_a_killed_update_is_never_replayed_by_a_pull_and_is_put_back_by_the_next_update(mini, tmp_path, tree_hash):
    before = tree_hash(mini)
    tx = killed_run(mini, "update-project")
    half = tree_hash(mini)
    journal = tx.backup.name
    sdist = write_sdist(tmp_path / "d", "cleaner")
    refusal = (
        "an earlier `invoke update-project` was killed midway and left its journal in proj/"
        ".piperack-backup-update-project-*: run `invoke update-project` again first (it puts the project "
        "back before it starts); nothing changed"
    )
    with pytest.raises(PiperackError, match=exact(refusal)):
        run(mini, sdist)
    assert tree_hash(mini) == half  # the pull touched nothing, the journal included
    assert (mini / journal / "journal.jsonl").is_file()
    with fsutil.write_session(mini, "update-project"):  # what the next update does first
        pass
    assert tree_hash(mini) == before


def test_recovery_keeps_files_changed_since_the_killed_run(mini, capsys, tree_hash):
    killed_run(mini, "pull")
    (mini / "src/demo/pipelines/half/__init__.py").write_text("# the team's work since\n")
    (mini / "pyproject.toml").write_text((mini / "pyproject.toml").read_text() + "# and this too\n")
    restored = fsutil.recover(mini, "pull")
    assert "requirements.in" in restored
    assert (mini / "requirements.in").read_text() == "pandas>=2.1\n"
    assert (mini / "src/demo/pipelines/half/__init__.py").read_text() == "# the team's work since\n"
    assert (mini / "pyproject.toml").read_text().endswith("# the killed run's edit\n# and this too\n")
    err = capsys.readouterr().err
    assert err == (
        "warning: kept 3 path(s) changed since the killed run, as they are now: pyproject.toml, "
        "src/demo/pipelines/half, src/demo/pipelines/half/__init__.py\n"
    )
    assert not fsutil.leftover_backups(mini)


def test_recovery_removes_a_file_the_kill_cut_short(mini):
    tx = fsutil.Transaction(mini, "pull")
    tx._log(op="create", path=str(mini / "cut.py"), sha256="0" * 64, size=1000)
    (mini / "cut.py").write_bytes(b"x" * 100)  # the first 100 bytes of 1000, then SIGKILL
    tx._journal.close()
    assert fsutil.recover(mini, "pull") == ["cut.py"]
    assert not (mini / "cut.py").exists()


WRITE = """
import sys
from pathlib import Path
from piperack import fsutil
root = Path(sys.argv[1])
with fsutil.write_session(root, "update-project"), fsutil.transaction(root) as tx:
    tx.change("pyproject.toml", b"# new\\n")
    tx.create("added.txt", b"added\\n")
    tx.remove("requirements.in")
"""


@pytest.mark.parametrize("point", ["1", "2", "3", "commit", "committed"])
def test_a_sigkill_at_each_point_of_a_transaction_is_undone_or_done_by_the_next_session(mini, tree_hash, point):
    before = tree_hash(mini)
    env = os.environ | {fsutil.FAULT_ENV: f"{point}:KILL"}
    killed = subprocess.run([sys.executable, "-c", WRITE, str(mini)], env=env, capture_output=True, text=True)
    assert killed.returncode == -9, killed.stderr
    assert len(fsutil.leftover_backups(mini)) == 1
    with fsutil.write_session(mini, "update-project"):
        pass
    assert fsutil.leftover_backups(mini) == []
    if point == "committed":  # every operation was done: the work stays, only the folder goes
        assert (mini / "added.txt").read_text() == "added\n" and not (mini / "requirements.in").exists()
    else:
        assert tree_hash(mini) == before


def test_a_folder_with_nothing_to_undo_is_removed_by_any_verb(mini, tree_hash):
    before = tree_hash(mini)
    (mini / ".piperack-backup-update-project-x1").mkdir()  # killed before its journal was opened
    (mini / ".piperack-backup-update-project-x2").mkdir()
    (mini / ".piperack-backup-update-project-x2" / "committed").write_text("{}\n")  # killed after commit
    assert fsutil.interrupted_runs(mini) == []
    with fsutil.write_session(mini, "pull"):
        pass
    assert tree_hash(mini) == before


def test_a_transaction_outside_a_write_session_is_a_programming_error(mini):
    with pytest.raises(RuntimeError, match="outside a write session"):
        with fsutil.transaction(mini):
            pass


@pytest.mark.parametrize("rel", ["../outside.txt", "/etc/passwd", "linked/inside.txt"])
def test_writes_are_confined_to_the_project_and_never_follow_a_linked_folder(mini, tmp_path, rel):
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (mini / "linked").symlink_to(outside, target_is_directory=True)
    with fsutil.write_session(mini, "pull"):
        with pytest.raises(PiperackError):
            with fsutil.transaction(mini) as tx:
                tx.create(rel, b"x\n")
    assert list(outside.iterdir()) == []
    assert not (tmp_path / "outside.txt").exists()
    assert not fsutil.leftover_backups(mini)


def test_a_linked_folder_is_named_in_one_line(mini, tmp_path):
    (tmp_path / "elsewhere").mkdir()
    (mini / "src/demo/pipelines/linked").symlink_to(tmp_path / "elsewhere", target_is_directory=True)
    message = (
        "src/demo/pipelines/linked/x.py: src/demo/pipelines/linked is a symbolic link; piperack writes, reads and "
        "deletes nothing through a link (replace it with a folder)"
    )
    with pytest.raises(PiperackError, match=exact(message)):
        fsutil.confined(mini, "src/demo/pipelines/linked/x.py")
    with pytest.raises(PiperackError, match=exact(message)):
        fsutil.read_confined(mini, "src/demo/pipelines/linked/x.py")


def test_new_pipeline_writes_nothing_through_a_linked_tests_folder(mini, tmp_path, tree_hash):
    (tmp_path / "elsewhere").mkdir()
    tests = mini / "src/tests/pipelines"
    os.rename(tests, tmp_path / "elsewhere" / "pipelines")
    tests.symlink_to(tmp_path / "elsewhere" / "pipelines", target_is_directory=True)
    before, outside = tree_hash(mini), tree_hash(tmp_path / "elsewhere")
    with pytest.raises(PiperackError, match="src/tests/pipelines is a symbolic link"):
        scaffold.create_pipeline(find_project(mini), "fresh")
    assert tree_hash(mini) == before and tree_hash(tmp_path / "elsewhere") == outside


HOLD = """
import sys, time
from pathlib import Path
from piperack import fsutil
root, ready, release = map(Path, sys.argv[1:4])
with fsutil.write_session(root, sys.argv[4]):
    ready.write_text("held")
    while not release.exists():
        time.sleep(0.02)
"""


def _hold(root: Path, tmp: Path, verb: str, user: int | None = None) -> tuple[subprocess.Popen, Path]:
    ready, release = tmp / "ready", tmp / "release"
    python, env = sys.executable, None
    if user is not None:  # another user cannot run root's virtualenv: the system Python, piperack's source
        python = "/usr/bin/python3"
        env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(Path(fsutil.__file__).parents[1])}
    proc = subprocess.Popen(
        [python, "-c", HOLD, str(root), str(ready), str(release), verb],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        user=user,
        env=env,
    )
    wait_until(ready.exists, f"the {verb} holds the project lock", proc=proc)
    return proc, release


PULL = (
    "import sys\nfrom piperack import pull\nfrom piperack.options import PullOptions\n"
    "from piperack.project import find_project\n"
    "pull.pull(PullOptions(source=sys.argv[1]), project=find_project(sys.argv[2]))\n"
)


def _pull_waits_for(holder: subprocess.Popen, release: Path, mini: Path, sdist: Path) -> None:
    pull = subprocess.Popen(
        [sys.executable, "-c", PULL, str(sdist), str(mini)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    wait_until(lambda: pull.stderr.readable() and pull.poll() is None and _said_it_waits(pull), "the pull waits")
    assert not (mini / "src/demo/pipelines/cleaner").exists()  # nothing written while the other holds it
    release.write_text("go")
    assert holder.wait(60) == 0, holder.communicate()
    out, err = pull.communicate(timeout=120)
    assert pull.returncode == 0, err
    assert (mini / "src/demo/pipelines/cleaner/nodes.py").is_file()


def _said_it_waits(proc: subprocess.Popen) -> bool:
    line = proc.stderr.readline()
    return line == "warning: another piperack command is writing to this project; this pull waits for it to finish\n"


def test_a_pull_during_an_update_waits_for_it(mini, tmp_path):
    holder, release = _hold(mini, tmp_path, "update-project")
    _pull_waits_for(holder, release, mini, write_sdist(tmp_path / "d", "cleaner"))


@pytest.mark.skipif(
    os.geteuid() != 0 or not Path("/usr/bin/python3").exists(), reason="needs root and a system Python 3.11+"
)
def test_the_lock_holds_between_users_of_one_machine(tmp_path):
    """A CI runner and an Airflow worker under other uids: the lock is the project folder itself,
    nothing in a temporary folder the first user would own."""
    from tests.unit.conftest import PYPROJECT

    shared = Path(tempfile.mkdtemp(prefix="piperack-shared-", dir="/tmp"))
    try:
        os.chmod(shared, 0o755)
        root = shared / "proj"
        for rel, text in {
            "pyproject.toml": PYPROJECT,
            "requirements.txt": "pandas==2.2.0\n",
            "requirements.in": "pandas>=2.1\n",
            "src/demo/__init__.py": "",
            "src/demo/pipelines/__init__.py": "",
            "src/tests/__init__.py": "",
            "src/tests/pipelines/__init__.py": "",
        }.items():
            (root / rel).parent.mkdir(parents=True, exist_ok=True)
            (root / rel).write_text(text)
        for folder in [root, *root.rglob("*")]:
            os.chmod(folder, 0o755 if folder.is_dir() else 0o644)
        signals = shared / "signals"
        signals.mkdir(mode=0o777)
        os.chmod(signals, 0o777)
        holder, release = _hold(root, signals, "update-project", user=65534)  # nobody
        _pull_waits_for(holder, release, root, write_sdist(tmp_path / "d", "cleaner"))
    finally:
        subprocess.run(["rm", "-rf", str(shared)], check=True)
