"""workers.map_in_two: the second half of many items on a forked process, results as one loop gives."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from piperack import workers
from piperack.errors import PiperackError
from piperack.project import find_project

COUNT = workers.MIN_ITEMS + 5


def pid_and_square(n: int) -> tuple[int, int]:
    return os.getpid(), n * n


@pytest.fixture(autouse=True)
def forked(monkeypatch) -> list[int]:
    """The pids this test's map_in_two forked (and only those: the session's servers are children of
    pytest too)."""
    pids: list[int] = []
    real_fork = os.fork

    def recording_fork() -> int:
        pid = real_fork()
        if pid:
            pids.append(pid)
        return pid

    monkeypatch.setattr(workers.os, "fork", recording_fork)
    return pids


def reaped(pid: int) -> bool:
    """True when ``pid`` was waited for already (no zombie left behind); False while it runs."""
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        return True
    return False


def wait_for(path: Path) -> None:
    """Until ``path`` exists (another process writes it), at most 30 s."""
    deadline = time.monotonic() + 30
    while not path.exists():
        assert time.monotonic() < deadline, f"{path.name} never appeared"
        time.sleep(0.005)


def child_goes_first(fn, marks: Path, hold_until: int | None = None, child_at: int = COUNT - 1):
    """``fn`` for map_in_two in which this process, at item 1, waits for the child to have started
    item ``child_at`` (it takes items from the end), so both share the work whatever the machine's
    speed; with ``hold_until``, the child then holds that item until this process reached that one
    (``hold_until=1``: neither can take all the items before the other starts)."""
    parent = os.getpid()

    def wrapped(n: int):
        if os.getpid() != parent:
            (marks / f"child-at-{n}").touch()
            if hold_until is not None:
                wait_for(marks / f"parent-at-{hold_until}")
        else:
            if n == 1:
                wait_for(marks / f"child-at-{child_at}")
            (marks / f"parent-at-{n}").touch()
        return fn(n)

    return wrapped


def test_the_child_works_from_the_end_and_results_keep_their_order(forked, tmp_path):
    results = workers.map_in_two(child_goes_first(pid_and_square, tmp_path, hold_until=1), list(range(COUNT)))
    assert [square for _, square in results] == [n * n for n in range(COUNT)]
    pids = [pid for pid, _ in results]
    mine = pids.count(os.getpid())
    assert 2 <= mine < COUNT and pids[:mine] == [os.getpid()] * mine  # this process: the first items
    assert set(pids[mine:]) == set(forked) and len(forked) == 1  # the child: all the others
    assert reaped(forked[0])


def test_a_slow_child_leaves_the_rest_to_this_process(forked, tmp_path):
    """Items are taken one at a time: while the child is held on the last item, this process does all
    the others (none waits on a share fixed in advance)."""
    wrapped = child_goes_first(pid_and_square, tmp_path, hold_until=COUNT - 2)
    results = workers.map_in_two(wrapped, list(range(COUNT)))
    assert [square for _, square in results] == [n * n for n in range(COUNT)]
    assert [pid for pid, _ in results] == [os.getpid()] * (COUNT - 1) + forked
    assert reaped(forked[0])


@pytest.mark.parametrize("count, env", [(workers.MIN_ITEMS - 1, ""), (COUNT, "1")])
def test_few_items_or_one_worker_stay_in_this_process(monkeypatch, count, env):
    monkeypatch.setenv(workers.ENV_WORKERS, env)
    results = workers.map_in_two(pid_and_square, list(range(count)))
    assert {pid for pid, _ in results} == {os.getpid()}


@pytest.mark.parametrize("at", [2, COUNT - 3])  # in this process's half, in the child's half
def test_stop_ends_the_list_at_the_first_match_as_a_loop_would(at, forked):
    results = workers.map_in_two(lambda n: n, list(range(COUNT)), stop=lambda n: n in (at, COUNT - 1))
    assert results == list(range(at + 1))
    assert len(forked) == 1 and reaped(forked[0])


def test_an_exception_in_the_child_is_raised_here(forked):
    def boom(n: int) -> int:
        if n == COUNT - 2:
            raise PiperackError(f"item {n} refused")
        return n

    with pytest.raises(PiperackError, match=f"item {COUNT - 2} refused"):
        workers.map_in_two(boom, list(range(COUNT)))
    assert len(forked) == 1 and reaped(forked[0])


def test_an_exception_here_stops_the_child_and_leaves_no_process(forked):
    parent = os.getpid()

    def slow_child(n: int) -> int:
        if os.getpid() != parent:
            import time

            time.sleep(30)  # killed long before
        if n == 1:
            raise KeyboardInterrupt
        return n

    with pytest.raises(KeyboardInterrupt):
        workers.map_in_two(slow_child, list(range(COUNT)))
    assert len(forked) == 1 and reaped(forked[0])


def test_the_first_exception_or_stop_in_the_order_wins_wherever_it_ran(forked, tmp_path):
    """The child meets items from the end: what it meets first counts only in the items' order."""

    def refuse_then_raise(n: int):
        if n == COUNT - 3:
            raise PiperackError(f"item {n} refused")
        return "refused" if n == COUNT - 2 else n

    # the child: COUNT-1, COUNT-2 (a stop), then COUNT-3 raises; one loop would raise at COUNT-3
    wrapped = child_goes_first(refuse_then_raise, tmp_path / "a", child_at=COUNT - 3)
    (tmp_path / "a").mkdir()
    with pytest.raises(PiperackError, match=f"^item {COUNT - 3} refused$"):
        workers.map_in_two(wrapped, list(range(COUNT)), stop=lambda r: r == "refused")

    def raise_late(n: int):
        if n == COUNT - 1:
            raise PiperackError("never reached by one loop")
        return "refused" if n == COUNT - 3 else n

    # the child raises at once at COUNT-1; this process stops at COUNT-3 first in the order
    (tmp_path / "b").mkdir()
    wrapped = child_goes_first(raise_late, tmp_path / "b")
    results = workers.map_in_two(wrapped, list(range(COUNT)), stop=lambda r: r == "refused")
    assert results == [*range(COUNT - 3), "refused"]
    assert len(forked) == 2 and all(reaped(pid) for pid in forked)


def test_beyond_the_pipe_a_ticket_is_a_run_of_items(forked, tmp_path, monkeypatch):
    """Past MAX_TICKETS items a ticket stands for a run of them (the child's first run is the last)."""
    monkeypatch.setattr(workers, "MAX_TICKETS", 3)
    child_at = 1 + 2 * (COUNT - 1) // 3  # the first item of the last of 3 runs of items[1:]
    results = workers.map_in_two(
        child_goes_first(pid_and_square, tmp_path, hold_until=1, child_at=child_at), list(range(COUNT))
    )
    assert [square for _, square in results] == [n * n for n in range(COUNT)]
    mine = [pid for pid, _ in results].count(os.getpid())  # whole runs: 1 + the first, or 1 + two
    assert mine in (1 + (COUNT - 1) // 3, child_at)
    assert [pid for pid, _ in results] == [os.getpid()] * mine + forked * (COUNT - mine)
    stopped = workers.map_in_two(lambda n: n, list(range(COUNT)), stop=lambda n: n in (child_at + 1, COUNT - 1))
    assert stopped == list(range(child_at + 2))


def test_a_result_that_cannot_be_sent_back_is_a_clear_error(tmp_path):
    with pytest.raises(RuntimeError, match="could not be sent back"):
        workers.map_in_two(child_goes_first(lambda n: lambda: n, tmp_path), list(range(COUNT)))


def test_package_all_builds_on_two_processes_the_same_archives(tmp_path, monkeypatch):
    """invoke package --all with many pipelines: byte-identical sdists, with and without the worker."""
    from piperack.options import PackageOptions
    from piperack.package import package

    root = tmp_path / "proj"
    names = [f"p{i:02d}" for i in range(COUNT)]
    files = {
        "pyproject.toml": '[project]\nname = "demo"\nversion = "0.1.0"\n\n[tool.piperack]\npython_package = "demo"\n\n'
        "[tool.piperack.package]\n" + "".join(f'"pipelines.{n}" = {{}}\n' for n in names),
        "src/demo/__init__.py": "",
        "src/demo/pipelines/__init__.py": "",
    }
    for n in names:
        files[f"src/demo/pipelines/{n}/__init__.py"] = f"from demo.pipelines.{n} import nodes\n"
        files[f"src/demo/pipelines/{n}/nodes.py"] = f"import demo.pipelines.{n}.helpers\nNAME = 'demo.pipelines.{n}'\n"
        files[f"conf/base/parameters/{n}.yml"] = f"name: {n}\n"
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    forks, real_fork = [], os.fork

    def counted_fork():
        forks.append(1)
        return real_fork()

    monkeypatch.setattr(os, "fork", counted_fork)
    built = package(find_project(root), PackageOptions(all_=True))
    assert forks == [1] and len(built) == COUNT
    together = {p.name: p.read_bytes() for p in (root / "dist").glob("*.tar.gz")}
    monkeypatch.setenv(workers.ENV_WORKERS, "1")
    for p in (root / "dist").glob("*.tar.gz"):
        p.unlink()
    package(find_project(root), PackageOptions(all_=True))
    assert forks == [1]
    assert {p.name: p.read_bytes() for p in (root / "dist").glob("*.tar.gz")} == together
    assert len(together) == COUNT


def test_freeze_heap_for_exit_hides_the_heap_from_the_final_collections():
    import gc

    before = gc.get_freeze_count()
    try:
        workers.freeze_heap_for_exit()
        assert gc.get_freeze_count() > before
    finally:
        gc.unfreeze()  # this test process lives on
