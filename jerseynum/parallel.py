"""Spreading independent items (tracklets, race photos) over worker processes, one model set per process.

On this 2-core CPU two processes whose models use one thread each read 1.25-1.27x more tracklets or photos per
minute than one process whose models share both cores (docs/results.md, "Results").

Workers never outlive the process that started them: a worker asks the kernel for SIGKILL when its parent dies
(Linux's parent-death signal, which also covers the parent's own SIGKILL, where no cleanup code can run), and
every other exit of the parent (an error, Ctrl-C, SIGTERM raised as KeyboardInterrupt by the CLI) shuts the
pool down on its way out.
"""

from __future__ import annotations

import ctypes
import multiprocessing
import os
import signal
import sys
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor, as_completed
from typing import Any, TypeVar

import cv2

Item = TypeVar("Item")
Result = TypeVar("Result")

_worker: Any = None  # built once per worker process by `_start_worker`
_work: Callable[[Any, Any], Any] | None = None


_PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>
# What one worker process peaks at: a photo tagger reading a crowd photo, 1.4 GB (its models, torch, buffers).
WORKER_MEMORY = 1.5 * 2**30


def default_workers(worker_memory: float = WORKER_MEMORY) -> int:
    """Worker processes for this machine: one per CPU core this process may use, as many as the memory available
    now holds (at least one). On 2 cores, 2 (1.25x one process whose models share the cores)."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    available = available_memory()
    return cores if available is None else max(1, min(cores, int(available // worker_memory)))


def available_memory() -> int | None:
    """Bytes of memory available to new processes without swapping (Linux's MemAvailable); None where unknown."""
    try:
        with open("/proc/meminfo", encoding="ascii") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def die_with_parent(parent_pid: int) -> None:
    """Have the kernel SIGKILL this process when its parent dies (Linux; elsewhere a no-op), and exit now if the
    parent is already gone. The signal follows the parent *thread* that forked this process: fork from a thread
    that lives as long as the work does (the pool below is started by the thread that iterates its results)."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):  # no prctl: not Linux
        return
    if os.getppid() != parent_pid:  # the parent died between the fork and the prctl
        os._exit(1)


def _start_worker(parent_pid: int, factory: Callable[..., Any], work: Callable[[Any, Any], Any],
                  own_core: bool = False) -> None:  # fmt: skip
    global _worker, _work
    die_with_parent(parent_pid)
    if own_core and hasattr(os, "sched_setaffinity"):  # Linux
        os.sched_setaffinity(0, {max(os.sched_getaffinity(0))})
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the main process's to handle
    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # not the CLI's handler, inherited through fork
    cv2.setNumThreads(1)  # one thread per worker, OpenCV's too (a forked one has it from `map_in_workers` already)
    _worker, _work = factory(threads=1), work


def _run_in_worker(item: Any) -> Any:
    return _work(_worker, item)


def map_in_workers(factory: Callable[..., Any], work: Callable[[Any, Item], Result], items: Sequence[Item],
                   workers: int) -> Iterator[Result]:  # fmt: skip
    """`work(worker, item)` for every item, yielded in the order they finish.

    `factory(threads=N)` builds the worker (a pipeline, a photo tagger): once in this process with threads=0
    (each library's choice) when `workers` <= 1, else once in each of `workers` forked processes with threads=1.
    Items and results cross processes, so they must pickle; `factory` and `work` need not (fork inherits them),
    except in a process connected to Ray (`worker_start_method`).
    """
    if workers <= 1 or len(items) <= 1:
        worker = factory(threads=0) if items else None
        for item in items:
            yield work(worker, item)
        return
    # OpenCV goes down to one thread before the fork, not in the workers: a forked child that touches the
    # parent's OpenCV thread pool (its threads are not copied) hangs.
    opencv_threads = cv2.getNumThreads()
    cv2.setNumThreads(1)
    context = multiprocessing.get_context(worker_start_method())
    try:
        with ProcessPoolExecutor(workers, mp_context=context, initializer=_start_worker,
                                 initargs=(os.getpid(), factory, work)) as pool:  # fmt: skip
            futures = [pool.submit(_run_in_worker, item) for item in items]
            try:
                for future in as_completed(futures):
                    yield future.result()
            finally:  # an interrupt, an error, or a caller that stops early: drop the items not started
                for future in futures:
                    future.cancel()
    finally:
        cv2.setNumThreads(opencv_threads)


def worker_start_method() -> str:
    """"fork", except in a process connected to Ray as its driver: "spawn". Ray does not support forking a driver,
    its threads may hold the C library's heap locks at any moment, and forked workers of one died of heap
    corruption ("malloc(): unaligned tcache chunk detected") at random. Spawned workers need `factory` and `work`
    to pickle with the standard pickler, which Ray's does not ask (it takes closures): module-level functions,
    classes, and `functools.partial` of them."""
    ray = sys.modules.get("ray")  # never imported here for the question: a process that has not, is not connected
    return "spawn" if ray is not None and ray.is_initialized() else "fork"


def _ready() -> None:
    """A task that returns at once: the worker has been started and built its models by the time it returns."""


class WorkerProcess:
    """One process of its own holding `factory(threads=1)`, which runs `work(worker, item)` for each item submitted.

    For work that must run beside this process's own without slowing it: threads of one process share its GIL,
    and the live demo's reads on a thread of their own still stalled its frames (docs/results.md, "Live speed"). The
    process is spawned, not forked: this one may already run threads (models, a video decoder), and a fork
    copies their locks held. So `factory` and `work` must pickle (module-level functions, `functools.partial`),
    as must items and results; and, as for any spawned process, a script that starts one keeps its own code under
    `if __name__ == "__main__":` (the new process imports the script).
    """

    def __init__(self, factory: Callable[..., Any], work: Callable[[Any, Any], Any]) -> None:
        # On a core of its own (the last), so that the scheduler does not move it onto this process's core: on 2
        # cores that halved the live demo's dropped frames (docs/results.md, "Live speed").
        self._pool = ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn"), initializer=_start_worker,
                                         initargs=(os.getpid(), factory, work, True))  # fmt: skip
        try:
            self._pool.submit(_ready).result()  # the worker is up and has built its models
        except BaseException:  # Ctrl-C while it builds them, or a worker that cannot: no process left behind
            self._kill()
            raise

    def submit(self, item: Any) -> Future:
        return self._pool.submit(_run_in_worker, item)

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)

    def _kill(self) -> None:
        """Close without letting the worker finish what it is doing: a shut-down pool still waits, at exit, for a
        worker busy building its models. Its processes are the pool's own (a public way to stop them comes only
        with Python 3.14's `terminate_workers`)."""
        processes = list((getattr(self._pool, "_processes", None) or {}).values())
        self.close()
        for process in processes:
            process.terminate()
