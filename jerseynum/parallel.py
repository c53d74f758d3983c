"""Spreading independent items (tracklets, race photos) over worker processes, one model set per process.

On this 2-core CPU two processes whose models use one thread each read 1.25-1.27x more tracklets or photos per
minute than one process whose models share both cores (README, "Results").

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
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from typing import Any, TypeVar

import cv2

Item = TypeVar("Item")
Result = TypeVar("Result")

_worker: Any = None  # built once per worker process by `_start_worker`
_work: Callable[[Any, Any], Any] | None = None


_PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>


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


def _start_worker(parent_pid: int, factory: Callable[..., Any], work: Callable[[Any, Any], Any]) -> None:
    global _worker, _work
    die_with_parent(parent_pid)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the main process's to handle
    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # not the CLI's handler, inherited through fork
    _worker, _work = factory(threads=1), work


def _run_in_worker(item: Any) -> Any:
    return _work(_worker, item)


def map_in_workers(factory: Callable[..., Any], work: Callable[[Any, Item], Result], items: Sequence[Item],
                   workers: int) -> Iterator[Result]:  # fmt: skip
    """`work(worker, item)` for every item, yielded in the order they finish.

    `factory(threads=N)` builds the worker (a pipeline, a photo tagger): once in this process with threads=0
    (each library's choice) when `workers` <= 1, else once in each of `workers` forked processes with threads=1.
    Items and results cross processes, so they must pickle; `factory` and `work` need not (fork inherits them).
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
    context = multiprocessing.get_context("fork")
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
