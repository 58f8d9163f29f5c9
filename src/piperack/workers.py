"""CPU-bound work over many items on two processes: ``map_in_two``.

Packaging and pulling many micro-packages is mostly CPython's own parser and zlib, one package at a
time, and the machines piperack runs on have more than one core. From ``MIN_ITEMS`` items on, a
forked child works through the items from the end while this process works from the start, each
taking one item at a time from a shared pipe of tickets (one byte an item), so neither sits idle
while the other, slowed by a busy machine, still has work left. The child sends its results back
pickled through a pipe and leaves with ``os._exit`` (no cleanup of the parent's state runs twice, no
output is flushed twice). The child ignores Ctrl-C; this process kills it on any error or
interruption. ``PIPERACK_WORKERS=1``, one core, or a system other than Linux (fork without exec is
unsafe on macOS, absent on Windows) keeps everything in this process.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Sequence

MIN_ITEMS = 8
ENV_WORKERS = "PIPERACK_WORKERS"
MAX_TICKETS = 4096  # the tickets fit in a pipe's buffer (64 KiB on Linux): beyond, a ticket is a run of items


def _run(fn: Callable, items: Sequence, stop: Callable | None) -> list:
    """The loop itself, with the cyclic garbage collector paused: the objects of a batch (archives in
    memory, syntax trees) are freed by reference counting as each item ends, and collections in
    between only walk a growing heap again and again (about a tenth of planning 50 packages)."""
    import gc

    paused = gc.isenabled()
    gc.disable()
    try:
        out = []
        for item in items:
            out.append(fn(item))
            if stop is not None and stop(out[-1]):
                break
        return out
    finally:
        if paused:
            gc.enable()


def _one_process(count: int) -> bool:
    """Whether to keep the work in this process."""
    return (
        count < MIN_ITEMS
        or os.environ.get(ENV_WORKERS, "").strip() == "1"
        or not sys.platform.startswith("linux")  # fork without exec is unsafe on macOS, absent on Windows
        or (os.cpu_count() or 1) < 2
    )


def _tickets(count: int) -> tuple[int, list[int]]:
    """A pipe holding one ticket per run of items (its read end; the write end is closed, so an empty
    pipe reads as its end), and where run ``b`` of ``count`` items starts: ``bounds[b]:bounds[b + 1]``."""
    runs = min(count, MAX_TICKETS)
    read_end, write_end = os.pipe()
    try:
        os.write(write_end, b"t" * runs)
    finally:
        os.close(write_end)
    return read_end, [b * count // runs for b in range(runs + 1)]


def _child(fn: Callable, items: Sequence, stop: Callable | None, tickets: int, bounds: list[int]) -> tuple:
    """The child's share: runs taken from the end while tickets last, each as a loop over its items
    (ended at a ``stop`` result: what follows it in the run is never looked at). An exception ends
    the share: ``("ok", [(run, results)...], failed run or None, exception or None)``."""
    done: list = []
    for run in range(len(bounds) - 2, -1, -1):
        if not os.read(tickets, 1):
            break
        out: list = []
        try:
            for item in items[bounds[run] : bounds[run + 1]]:
                out.append(fn(item))
                if stop is not None and stop(out[-1]):
                    break
        except BaseException as exc:  # noqa: BLE001 - raised in the parent, in its place in the order
            done.append((run, out))
            return ("ok", done, run, exc)
        done.append((run, out))
    return ("ok", done, None, None)


def _in_order(first: list, payload: tuple, mine: int, runs: int, stop: Callable | None) -> list:
    """This process's results (``first``: its ``mine`` runs) followed by the child's runs, as one
    loop over all items would give them: ended at the first ``stop`` result or the first exception."""
    _, done, failed, error = payload
    theirs = dict(done)
    if sorted(theirs) != list(range(mine, runs)):
        raise RuntimeError("the process working on the last items did not send all of its results")
    results = first
    for run in range(mine, runs):
        for result in theirs[run]:
            results.append(result)
            if stop is not None and stop(result):
                return results
        if run == failed:
            raise error
    return results


def map_in_two(fn: Callable, items: Sequence, stop: Callable | None = None) -> list:
    """``[fn(item) for item in items]``, in order. With ``stop``, the list ends at the first result
    for which ``stop(result)`` is true (as a loop that breaks there would end it).

    ``fn`` should return its expected failures as values; an exception it raises in the child is
    raised here, in this process, when the results are read (unless an earlier item stops the list
    or raises first, as in one loop). Results must pickle.
    """
    if _one_process(len(items)):
        return _run(fn, items, stop)
    import pickle
    import signal

    # The first item runs before the fork: the child inherits whatever it imported and warmed up,
    # instead of importing it again on its own.
    first = _run(fn, items[:1], stop)
    if stop is not None and stop(first[-1]):
        return first
    rest = items[1:]
    tickets, bounds = _tickets(len(rest))
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: runs from the end, sent back, then leave at once
        status = 0
        try:
            os.close(read_end)
            signal.signal(signal.SIGINT, signal.SIG_IGN)
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            import gc

            gc.disable()
            try:
                payload = _child(fn, rest, stop, tickets, bounds)
            except BaseException as exc:  # noqa: BLE001 - raised in the parent instead
                payload = ("raise", exc)
            try:
                data = pickle.dumps(payload)
            except Exception as exc:  # noqa: BLE001
                data = pickle.dumps(("raise", RuntimeError(f"a result could not be sent back: {exc}")))
            with os.fdopen(write_end, "wb") as out:
                out.write(data)
        except BaseException:  # noqa: BLE001 - the parent sees no data and says so
            status = 1
        finally:
            os._exit(status)
    os.close(write_end)
    reaped = False
    try:
        mine = 0
        while mine < len(bounds) - 1 and os.read(tickets, 1):
            first += _run(fn, rest[bounds[mine] : bounds[mine + 1]], stop)
            mine += 1
            if stop is not None and stop(first[-1]):
                return first
        with os.fdopen(read_end, "rb") as pipe:
            read_end = None
            data = pipe.read()
        os.waitpid(pid, 0)
        reaped = True
        if not data:
            raise RuntimeError("the process working on the last items stopped without a result")
        payload = pickle.loads(data)  # noqa: S301 - our own child's bytes, through our own pipe
        if payload[0] == "raise":
            raise payload[1]
        return _in_order(first, payload, mine, len(bounds) - 1, stop)
    finally:
        os.close(tickets)
        if read_end is not None:
            os.close(read_end)
        if not reaped:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            os.waitpid(pid, 0)


def freeze_heap_for_exit() -> None:
    """For the CLI, once a command is done: what it built stays alive until the process ends, and the
    interpreter's final collections would walk all of it (and every module) only to hand the memory
    back to the OS: 50 ms of a 0.4 s `pull --all`. ``gc.freeze`` moves it out of their sight.
    Never call it from a long-lived process (tests, a notebook): frozen garbage is never freed."""
    import gc

    gc.freeze()
