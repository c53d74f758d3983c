"""Scaling out `jerseynum tag`: photos per second on RBNR photos for one process, the local 2-process pool, and
Ray with 1 and 2 worker nodes on this machine (1 CPU each), all in one run; what Ray adds per photo; how fast the
driver writes the index (the bottleneck of a large cluster); and the whole-event pass over the stored reads.

- Throughput counts from the first photo's result to the last (model loading, tens of seconds per worker, once
  per run, is reported apart).
- Ray's overhead per photo: with one Ray worker kept busy (two photos in flight), the steady seconds between
  results minus the seconds the worker spent tagging each photo (measured inside it; the first photo, which
  also warms the models up, left out of both). The same for one local process gives the reference.
- The engine alone: 200 no-op items of 50 ms through the actors `distributed.map_on_ray` uses and through Ray
  Data's actor pool (`map_batches`, one item per batch), each on two 1-CPU nodes.
- Index writes: every photo's stored reads written again (`--copies` times) into a fresh index under new names,
  one transaction per photo, as the driver does; then the whole-event pass over that index.

    python benchmarks/scale.py [--photos 40]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from jerseynum.io import write_json_atomic

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data" / "rbnr_bib_photos" / "images"


def timed_tagging(photos: Path, index_path: Path, **options) -> dict:
    """Tag the folder; the steady photos per second (first result to last), the seconds before the first result,
    and the per-photo tagging seconds measured inside the workers."""
    from jerseynum.photos import tagger

    stamps: list[float] = []
    store = tagger.PhotoIndex.put

    def put_and_stamp(self, *args, **kwargs):
        store(self, *args, **kwargs)
        stamps.append(time.perf_counter())

    tagger.PhotoIndex.put = put_and_stamp
    start = time.perf_counter()
    try:
        report = tagger.tag_folder(photos, index_path, progress=False, **options)
    finally:
        tagger.PhotoIndex.put = store
    steady = (len(stamps) - 1) / (stamps[-1] - stamps[0])
    return {"photos": report.tagged, "photos_per_s": round(steady, 3), "first_result_s": round(stamps[0] - start, 1),
            # the first result's photo also warmed the models up, and its time is outside the steady interval
            "tag_s_mean": round(statistics.mean(report.seconds[1:]), 3)}  # fmt: skip


def noop(worker, item):
    time.sleep(0.05)
    return item


def engine_overheads(address: str, items: int = 200) -> dict:
    """Seconds per item that each way of feeding Ray actors adds, over 50 ms of work per item on 2 actors."""
    import ray.data

    from jerseynum.distributed import map_on_ray

    ideal = items * 0.05 / 2
    start = time.perf_counter()
    assert len(list(map_on_ray(lambda threads: None, noop, list(range(items)), address))) == items
    actors = time.perf_counter() - start

    class Noop:
        def __call__(self, batch):
            time.sleep(0.05 * len(batch["item"]))
            return batch

    ray.data.DataContext.get_current().enable_progress_bars = False
    start = time.perf_counter()
    dataset = ray.data.from_items([{"item": k} for k in range(items)], override_num_blocks=items)
    mapped = dataset.map_batches(Noop, batch_size=1, compute=ray.data.ActorPoolStrategy(size=2), num_cpus=1)
    assert sum(1 for _ in mapped.iter_rows()) == items
    data = time.perf_counter() - start
    return {"items": items, "ideal_s": ideal, "actors_s": round(actors, 2), "ray_data_s": round(data, 2),
            "actors_overhead_ms_per_item": round(1000 * (actors - ideal) / items * 2, 1),
            "ray_data_overhead_ms_per_item": round(1000 * (data - ideal) / items * 2, 1)}  # fmt: skip


def index_writes(source: Path, target: Path, copies: int) -> dict:
    """Photos per second the driver writes: the stored reads of `source` written `copies` times into `target`."""
    from jerseynum.photos.event import decide_photo
    from jerseynum.photos.index import PhotoIndex

    with PhotoIndex(source, read_only=True) as index:
        by_path = index.runners_by_path()
        photos = {p.path: p for p in index.photos()}
    reads = [(path, [stored.read for stored in by_path.get(path, [])]) for path in photos]
    start = time.perf_counter()
    with PhotoIndex(target) as index:
        index.bind_root(target.parent)
        for copy in range(copies):
            for path, runners in reads:
                photo = photos[path]
                index.put(f"{copy}/{path}", photo.sha256, 1, 1, (photo.height, photo.width), decide_photo(runners),
                          None, "v", 0.5, runners, None)  # fmt: skip
    written = copies * len(reads)
    return {"photos": written, "runners": copies * sum(len(r) for _, r in reads),
            "photos_per_s": round(written / (time.perf_counter() - start), 1)}


def event_pass(index_path: Path) -> dict:
    from jerseynum.photos.event import redecide
    from jerseynum.photos.index import PhotoIndex

    with PhotoIndex(index_path) as index:
        runners = len(index.runner_reads())
        start = time.perf_counter()
        redecide(index)
        return {"runners": runners, "seconds": round(time.perf_counter() - start, 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--photos", type=int, default=40, help="RBNR photos tagged by each configuration")
    parser.add_argument("--copies", type=int, default=60,
                        help="times the tagged photos' reads are written again for the index-write and event-pass"
                             " measures (60 x 40 photos: 2400 photos, about 3400 runners, two identity windows)")  # fmt: skip
    parser.add_argument("--json", type=Path, default=REPO / "benchmarks" / "results" / "scale.json")
    parser.add_argument("--local-run", nargs=2, metavar=("PHOTOS", "WORKERS"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.local_run:
        folder, workers = Path(args.local_run[0]), int(args.local_run[1])
        print(json.dumps(timed_tagging(folder, folder.parent / f"local{workers}.db", workers=workers)))
        return
    if not DATA.is_dir():
        raise SystemExit(f"the RBNR photos are not at {DATA}")
    import ray
    from ray.cluster_utils import Cluster

    from jerseynum.distributed import connect

    results: dict = {"cpus": os.cpu_count(), "photos": args.photos}
    with tempfile.TemporaryDirectory() as folder:
        work = Path(folder)
        photos = work / "photos"
        photos.mkdir()
        for name in sorted(os.listdir(DATA))[: args.photos]:
            shutil.copy(DATA / name, photos / name)
        # Each local run in a fresh process, as the CLI runs: a pool forked from a process whose models are
        # loaded (and their thread pools started) crashes.
        for name, workers in (("one process", 1), ("local pool, 2 processes", 2)):
            run = subprocess.run([sys.executable, __file__, "--local-run", str(photos), str(workers)], check=True,
                                 capture_output=True, text=True, cwd=REPO)  # fmt: skip
            results[name] = json.loads(run.stdout.splitlines()[-1])
            print(f"{name:28} {results[name]}", flush=True)
        # The driver alone on the head node (no CPU to work on), then one worker node, then two.
        cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 0})
        try:
            cluster.add_node(num_cpus=1)
            cluster.wait_for_nodes()
            connect(cluster.address)
            for nodes in (1, 2):
                if nodes == 2:
                    cluster.add_node(num_cpus=1)
                    cluster.wait_for_nodes()
                name = f"Ray, {nodes} worker node{'s' * (nodes > 1)}"
                results[name] = timed_tagging(photos, work / f"ray{nodes}.db", ray=cluster.address)
                print(f"{name:28} {results[name]}", flush=True)
            results["engine"] = engine_overheads(cluster.address)
            print(f"{'engine, no-op items':28} {results['engine']}", flush=True)
        finally:
            ray.shutdown()
            cluster.shutdown()
        one, ray_one = results["one process"], results["Ray, 1 worker node"]
        # seconds between results minus the tagging inside the worker: what feeding the worker costs per photo
        for name, run in (("one process", one), ("Ray, 1 worker node", ray_one)):
            run["overhead_s_per_photo"] = round(1 / run["photos_per_s"] - run["tag_s_mean"], 4)
        results["ray_overhead_share"] = round(ray_one["overhead_s_per_photo"] / ray_one["tag_s_mean"], 4)
        results["index_writes"] = index_writes(work / "ray2.db", work / "writes.db", copies=args.copies)
        results["event_pass"] = event_pass(work / "writes.db")
    print(f"Ray's overhead per photo: {ray_one['overhead_s_per_photo'] * 1000:.0f} ms, "
          f"{results['ray_overhead_share']:.1%} of a photo's tagging ({ray_one['tag_s_mean']:.2f} s); one process:"
          f" {one['overhead_s_per_photo'] * 1000:.0f} ms")  # fmt: skip
    print(f"index writes: {results['index_writes']}; the event pass over them: {results['event_pass']}")
    write_json_atomic(args.json, results)


if __name__ == "__main__":
    main()
