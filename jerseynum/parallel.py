"""Spreading independent items (tracklets, race photos) over worker processes, one model set per process.

On this 2-core CPU two processes whose models use one thread each read 1.25-1.27x more tracklets or photos per
minute than one process whose models share both cores (README, "Results").
"""

from __future__ import annotations

import multiprocessing
import signal
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from typing import Any, TypeVar

import cv2

Item = TypeVar("Item")
Result = TypeVar("Result")

_worker: Any = None  # built once per worker process by `_start_worker`
_work: Callable[[Any, Any], Any] | None = None


def _start_worker(factory: Callable[..., Any], work: Callable[[Any, Any], Any]) -> None:
    global _worker, _work
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the main process's to handle
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
                                 initargs=(factory, work)) as pool:  # fmt: skip
            futures = [pool.submit(_run_in_worker, item) for item in items]
            try:
                for future in as_completed(futures):
                    yield future.result()
            finally:  # an interrupt, an error, or a caller that stops early: drop the items not started
                for future in futures:
                    future.cancel()
    finally:
        cv2.setNumThreads(opencv_threads)
