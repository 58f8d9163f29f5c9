"""workers.map_in_two: the second half of many items on a forked process, results as one loop gives."""

from __future__ import annotations

import os

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


def test_the_second_half_runs_in_another_process_and_results_keep_their_order(forked):
    results = workers.map_in_two(pid_and_square, list(range(COUNT)))
    assert [square for _, square in results] == [n * n for n in range(COUNT)]
    pids = [pid for pid, _ in results]
    half = (COUNT + 1) // 2
    assert set(pids[:half]) == {os.getpid()}
    assert set(pids[half:]) == set(forked) and len(forked) == 1
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


def test_a_result_that_cannot_be_sent_back_is_a_clear_error():
    with pytest.raises(RuntimeError, match="could not be sent back"):
        workers.map_in_two(lambda n: lambda: n, list(range(COUNT)))


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
