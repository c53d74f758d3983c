"""Tagging and inference on a real two-node Ray cluster on this machine (one CPU per node): the same index and
JSON as local work, and a worker killed mid-run loses nothing."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from jerseynum.photos.index import PhotoIndex
from jerseynum.photos.tagger import tag_folder
from tests.test_photos import ShadeTagger, committed_photos, exported, write_photos

ray = pytest.importorskip("ray", reason="ray is in requirements.txt; without it --ray cannot run")
REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def cluster():
    """Two Ray nodes of one CPU each, this process connected as the driver; yields the cluster. A fresh one per
    test: with one cluster for the whole file, the first query of the cluster's resources after the test that
    kills a worker hung, twice in two runs (Ray 2.60; a CLI run makes one such query, at its start)."""
    from ray.cluster_utils import Cluster

    from jerseynum.distributed import connect

    two_nodes = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False})
    two_nodes.add_node(num_cpus=1)
    two_nodes.wait_for_nodes()
    connect(two_nodes.address)
    yield two_nodes
    ray.shutdown()
    two_nodes.shutdown()


def test_no_cluster_is_one_clear_error_and_nothing_is_written(tmp_path):
    write_photos(tmp_path / "photos", [10])
    for address in ("127.0.0.1:9", "[::1]:9"):  # nobody answers there
        started = time.monotonic()
        tagged = subprocess.run([sys.executable, "-m", "jerseynum", "tag", str(tmp_path / "photos"), "--index",
                                 str(tmp_path / "race.db"), "--ray", address, "--quiet"], capture_output=True,
                                text=True, timeout=120, cwd=REPO, check=False)  # fmt: skip
        assert tagged.returncode == 1 and "no Ray cluster" in tagged.stderr, tagged.stderr
        assert tagged.stderr.count("\n") <= 3 and time.monotonic() - started < 60
        assert not (tmp_path / "race.db").exists()


def numbers_and_boxes(index_path: Path) -> dict:
    with PhotoIndex(index_path, read_only=True) as index:
        return {photo.path: [(n.number, n.box, n.status) for n in photo.numbers] for photo in index.photos()}


class NamedShadeTagger(ShadeTagger):
    """ShadeTagger that leaves a file named after its process in `folder`: which workers ran, and where to kill."""

    def __init__(self, folder: Path, delay: float = 0.0) -> None:
        super().__init__(delay=delay)
        (folder / f"{os.getpid()}.pid").write_text(ray.get_runtime_context().get_node_id())


def test_a_two_node_cluster_tags_the_same_index_as_local_work(cluster, tmp_path):
    photos, workers = tmp_path / "photos", tmp_path / "workers"
    workers.mkdir()
    write_photos(photos, [4 * k for k in range(24)])
    # two local workers, spawned (this process is a Ray driver): what they run must pickle
    tag_folder(photos, tmp_path / "local.db", ShadeTagger, version="v1", workers=2, progress=False)
    factory = lambda threads=0: NamedShadeTagger(workers)
    sent = tag_folder(photos, tmp_path / "sent.db", factory, version="v1", ray=cluster.address, progress=False)
    shared = tag_folder(photos, tmp_path / "shared.db", factory, version="v1", ray=cluster.address,
                        shared_files=True, progress=False)  # fmt: skip
    assert sent.tagged == shared.tagged == 24
    local = numbers_and_boxes(tmp_path / "local.db")
    assert len(local) == 24 and all(local.values())
    assert numbers_and_boxes(tmp_path / "sent.db") == local == numbers_and_boxes(tmp_path / "shared.db")
    nodes = {pid.read_text() for pid in workers.glob("*.pid")}
    assert len(nodes) == 2  # a worker on each node
    # resuming on the cluster: nothing left to do
    again = tag_folder(photos, tmp_path / "sent.db", factory, version="v1", ray=cluster.address, progress=False)
    assert (again.tagged, again.unchanged) == (0, 24)


def test_a_worker_killed_mid_run_loses_no_photo_and_writes_none_twice(cluster, tmp_path, caplog):
    photos, workers = tmp_path / "photos", tmp_path / "workers"
    workers.mkdir()
    write_photos(photos, [3 * k for k in range(40)])
    index_path = tmp_path / "race.db"
    factory = lambda threads=0: NamedShadeTagger(workers, delay=0.15)
    reports = []
    run = threading.Thread(target=lambda: reports.append(tag_folder(
        photos, index_path, factory, version="v1", ray=cluster.address, progress=False)))  # fmt: skip
    run.start()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not (index_path.exists() and committed_photos(index_path) >= 8):
        time.sleep(0.05)
    victim = int(min(workers.glob("*.pid"), key=lambda p: p.stat().st_mtime).stem)
    os.kill(victim, signal.SIGKILL)
    killed_at = committed_photos(index_path)
    run.join(120)
    assert not run.is_alive() and reports, "the run did not complete"
    assert 8 <= killed_at < 40
    assert "a Ray worker died" in caplog.text  # its photos went to the other worker
    assert reports[0].tagged == 40 and not reports[0].errors
    with sqlite3.connect(index_path) as db:
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        paths = [row[0] for row in db.execute("SELECT path FROM photos")]
    assert sorted(paths) == sorted(set(paths)) and len(paths) == 40  # each photo once
    tag_folder(photos, tmp_path / "local.db", ShadeTagger, version="v1", workers=1, progress=False)
    assert exported(index_path) == exported(tmp_path / "local.db")


def test_inference_on_the_cluster_writes_the_same_json(cluster, tmp_path):
    from jerseynum.cli import main
    from jerseynum.parallel import worker_start_method

    # the local run's workers are spawned: forked ones of this Ray driver died of heap corruption at random
    assert worker_start_method() == "spawn"
    assert main(["infer", "-o", str(tmp_path / "local.json"), "--quiet"]) == 0
    assert main(["infer", "-o", str(tmp_path / "ray.json"), "--ray", cluster.address, "--quiet"]) == 0
    local = json.loads((tmp_path / "local.json").read_text())
    assert json.loads((tmp_path / "ray.json").read_text()) == local and len(local) == 6


def _worker_without_its_model(threads: int = 1) -> None:
    raise FileNotFoundError("models/missing.onnx: not on this node")


def _double(worker: None, item: int) -> int:
    return 2 * item


def test_workers_that_cannot_start_say_why(cluster):
    from jerseynum.distributed import RayClusterError, map_on_ray

    with pytest.raises(RayClusterError, match="died of: FileNotFoundError: models/missing.onnx: not on this node"):
        list(map_on_ray(_worker_without_its_model, _double, [1, 2], cluster.address))
