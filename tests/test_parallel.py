"""Worker processes: as many as the machine holds, and they never outlive the process that started them, however
it ends."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from jerseynum import parallel
from tests.conftest import REPO

# A parent that starts two workers on slow items and then waits; the test kills it.
PARENT = """
import time
from jerseynum.parallel import map_in_workers

def work(worker, item):
    time.sleep(60)
    return item

for _ in map_in_workers(lambda threads: None, work, list(range(4)), workers=2):
    pass
"""


def children_of(pid: int) -> list[int]:
    """Processes whose parent is `pid` (from /proc)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry.name))
    return found


def spawned_children(pid: int) -> list[int]:
    """The children of `pid` started by multiprocessing's spawn."""
    found = []
    for child in children_of(pid):
        try:
            if b"spawn_main" in Path(f"/proc/{child}/cmdline").read_bytes():
                found.append(child)
        except OSError:  # gone already
            pass
    return found



def alive(pid: int) -> bool:
    """Running or sleeping; a zombie (dead, waiting to be reaped by whoever adopted it) is not alive."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state not in ("Z", "X")


def wait_for(condition, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return condition()


def test_workers_die_when_their_parent_is_killed_with_sigkill():
    parent = subprocess.Popen([sys.executable, "-c", PARENT], cwd=REPO)
    try:
        assert wait_for(lambda: len(children_of(parent.pid)) >= 2, 30), "the workers never started"
        workers = children_of(parent.pid)
        os.kill(parent.pid, signal.SIGKILL)  # no cleanup code of the parent can run
        parent.wait(10)
        assert wait_for(lambda: not any(alive(pid) for pid in workers), 5), "workers outlived their parent"
    finally:
        parent.kill()


@pytest.mark.parametrize("available_gb, workers", [(64, 8), (4, 2), (0.5, 1), (None, 8)])
def test_default_workers_are_one_per_core_as_many_as_the_memory_holds(monkeypatch, available_gb, workers):
    monkeypatch.setattr(parallel.os, "sched_getaffinity", lambda pid: set(range(8)), raising=False)
    monkeypatch.setattr(parallel, "available_memory", lambda: None if available_gb is None else available_gb * 2**30)
    assert parallel.default_workers() == workers


@pytest.mark.skipif(not Path("/proc/meminfo").is_file(), reason="no /proc/meminfo: not Linux")
def test_available_memory_is_read_from_this_machine():
    assert 2**20 < parallel.available_memory() < 2**50


def test_workers_are_forked_in_a_process_not_connected_to_ray():
    # a lambda factory works only because the workers are forked (spawned ones would need it to pickle)
    assert parallel.worker_start_method() == "fork"
    assert sorted(parallel.map_in_workers(lambda threads: 10, lambda worker, item: worker + item, [1, 2, 3], 2)) \
        == [11, 12, 13]


def _slow_to_build(threads: int) -> None:
    time.sleep(60)  # a worker building its models


def _echo(worker: None, item: int) -> int:
    return item


def test_an_interrupt_while_a_worker_process_builds_stops_it_at_once():
    before = set(spawned_children(os.getpid()))
    building: set[int] = set()

    def interrupt() -> None:  # Ctrl-C, once the worker is there
        building.update(set(spawned_children(os.getpid())) - before)
        os.kill(os.getpid(), signal.SIGINT)

    timer = threading.Timer(2.0, interrupt)
    timer.start()
    try:
        with pytest.raises(KeyboardInterrupt):
            parallel.WorkerProcess(_slow_to_build, _echo)
    finally:
        timer.cancel()
    assert building and wait_for(lambda: not any(alive(pid) for pid in building), 10)  # not after its minute
