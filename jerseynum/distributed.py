"""Tagging race photos and reading tracklets on a Ray cluster (`--ray`): imported only when asked for.

Each Ray worker is an actor holding one model set (a photo tagger, a pipeline) with one thread per model, one
actor per CPU of the cluster; the driver keeps two items in flight per actor (one read, one waiting), so no
actor idles and a slow driver holds back the cluster rather than flooding its memory. Results stream back to the
driver in the order they finish, and the driver alone writes them (the index stays where it was, one
transaction per photo).

Ray core actors rather than Ray Data: with one photo per task, Ray Data's streaming executor added 0.12 s per
item on this 2-core machine (14.5 s for 100 items of 0.05 s on two actors) against 6 ms for actors fed directly
(`benchmarks/scale.py` measures both), and a photo takes 0.6-1 s to tag.

A worker that dies (its process killed, its node gone) loses only the items it held: they go to the other
workers, and the dead one is used again once Ray has restarted it. Items reach the workers in one of two ways:
`prepare` runs on the driver and its result travels through Ray's object store (the default: workers need no
access to the photos), or, where every node sees the same paths (NFS, a mounted bucket), the items are sent as
they are and the workers read the files themselves.
"""

from __future__ import annotations

import logging
import socket
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from typing import Any, TypeVar

log = logging.getLogger(__name__)

Item = TypeVar("Item")
Result = TypeVar("Result")

IN_FLIGHT_PER_WORKER = 2
NO_WORKER_TIMEOUT = 300.0  # seconds to wait for a dead worker's restart when no other worker is left


class RayClusterError(RuntimeError):
    """No Ray cluster to use, or none of its workers left."""


def connect(address: str) -> None:
    """Join the Ray cluster at `address` ("auto": the one this machine belongs to, as `ray start` made it;
    "local": a new one on this machine alone). Raises RayClusterError where there is none."""
    import ray

    if ray.is_initialized():
        return
    if address not in ("auto", "local") and not address.startswith("ray://"):
        _check_reachable(address)  # else Ray retries an address nobody answers at for minutes
    options = {"logging_level": logging.WARNING, "log_to_driver": False, "include_dashboard": False}
    try:
        if address == "local":
            ray.init(**options)
        else:
            ray.init(address=address, **options)
    except ConnectionError as error:
        raise RayClusterError(f"no Ray cluster at {address}: start one with `ray start --head` (see the README,"
                              f" 'A whole race on a cluster'), or use --ray local ({error})") from None  # fmt: skip


def _check_reachable(address: str, seconds: float = 5.0) -> None:
    host, _, port = address.rpartition(":")
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=seconds).close()
    except (OSError, ValueError) as error:
        raise RayClusterError(f"no Ray cluster answers at {address} ({error}): give the head's host:port, as"
                              " `ray start --head` printed it") from None  # fmt: skip


def cluster_size() -> tuple[int, int]:
    """The connected cluster's (alive nodes, CPUs)."""
    import ray

    resources = ray.cluster_resources()  # each node has a "node:<its address>" resource of 1
    nodes = sum(round(amount) for name, amount in resources.items() if name.startswith("node:") and
                name != "node:__internal_head__")  # fmt: skip
    return nodes, int(resources.get("CPU", 0))


class _Worker:
    """One model set on one CPU of the cluster."""

    def __init__(self, factory: Callable[..., Any], work: Callable[[Any, Any], Any]) -> None:
        self.worker = factory(threads=1)
        self.work = work

    def run(self, item: Any) -> Any:
        return self.work(self.worker, item)


def map_on_ray(factory: Callable[..., Any], work: Callable[[Any, Any], Result], items: Sequence[Item], address: str,
               prepare: Callable[[Item], Any] | None = None,
               on_start: Callable[[int, int], None] | None = None) -> Iterator[Result]:  # fmt: skip
    """`work(worker, prepare(item))` (or `work(worker, item)`) for every item on the Ray cluster at `address`,
    yielded in the order they finish; `factory(threads=1)` builds each actor's worker. `on_start(nodes, workers)`
    is told the cluster's size once the workers are placed. `factory`, `work` and results cross machines: they
    must pickle (cloudpickle: closures do)."""
    import ray
    from ray.exceptions import ObjectLostError, RayActorError, WorkerCrashedError

    if not items:
        return
    connect(address)
    nodes, cpus = cluster_size()
    if cpus < 1:
        raise RayClusterError("the Ray cluster has no CPU to work on")
    # max_restarts: a worker whose process died comes back (its models reloaded); its tasks are not retried by
    # Ray (max_task_retries 0) but handed to another worker here, so none waits for a node that is gone.
    actor = ray.remote(num_cpus=1, max_restarts=-1, max_task_retries=0)(_Worker)
    workers = [actor.remote(factory, work) for _ in range(min(cpus, len(items)))]
    if on_start:
        on_start(nodes, len(workers))
    waiting = deque(items)
    free = deque(worker for worker in workers for _ in range(IN_FLIGHT_PER_WORKER))
    in_flight: dict[Any, tuple[Any, Item]] = {}
    restarting: dict[Any, Any] = {}  # readiness probe -> worker
    lost_since: float | None = None
    died_of = ""  # why the last worker died: a worker that cannot start (a model missing) says so in the end
    try:
        while waiting or in_flight:
            while free and waiting:
                worker, item = free.popleft(), waiting.popleft()
                in_flight[worker.run.remote(prepare(item) if prepare else item)] = worker, item
            if not in_flight and not restarting:
                raise RayClusterError(f"no Ray worker is left{died_of}; {len(waiting)} items were not done"
                                      " (rerun to resume)")  # fmt: skip
            if not in_flight:  # every worker is dead: wait a while for one to come back
                lost_since = lost_since or time.monotonic()
                if time.monotonic() - lost_since > NO_WORKER_TIMEOUT:
                    raise RayClusterError(f"every Ray worker died{died_of} and none came back in"
                                          f" {NO_WORKER_TIMEOUT:.0f} s;"
                                          f" {len(waiting)} items were not done (rerun to resume)")  # fmt: skip
            ready, _ = ray.wait([*in_flight, *restarting], num_returns=1, timeout=10)
            for ref in ready:
                if ref in restarting:
                    worker = restarting.pop(ref)
                    try:
                        ray.get(ref)
                    except (RayActorError, WorkerCrashedError):
                        continue  # dead for good (its node is gone)
                    free.extend([worker] * IN_FLIGHT_PER_WORKER)
                    lost_since = None
                    continue
                worker, item = in_flight.pop(ref)
                try:
                    result = ray.get(ref)
                except (RayActorError, WorkerCrashedError, ObjectLostError) as error:
                    # Ray's message ends with the worker's own error (its traceback's last line), if it raised one
                    cause = (str(error).strip().splitlines() or [""])[-1].strip()
                    died_of = f" (the last one died of: {cause})" if cause else ""
                    log.warning("a Ray worker died (%s: %s); its items go to the others", type(error).__name__, cause)
                    waiting.appendleft(item)
                    if worker not in restarting.values():
                        restarting[worker.__ray_ready__.remote()] = worker
                        free = deque(other for other in free if other is not worker)
                    continue
                free.append(worker)
                yield result
    finally:
        for worker in workers:
            ray.kill(worker)
