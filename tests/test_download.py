"""download_data.py: fails fast and cleanly without network; extracts and verifies local zips all or nothing."""

from __future__ import annotations

import json
import socket
import time
import zipfile

import cv2
import numpy as np
import pytest

import download_data
from jerseynum import soccernet


def closed_port() -> int:
    with socket.socket() as probe:  # bound, never listening: a connection is refused at once
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_without_network_it_fails_within_seconds_says_how_to_use_a_local_copy_and_writes_nothing(
    tmp_path, monkeypatch, capsys
):
    monkeypatch.setattr(soccernet, "HOST", ("127.0.0.1", closed_port()))
    start = time.monotonic()
    assert download_data.main(["--dest", str(tmp_path / "soccernet")]) == 1
    assert time.monotonic() - start < 10
    message = capsys.readouterr().err
    assert "cannot reach 127.0.0.1" in message and "--from-zips" in message and "inference.py" in message
    assert not (tmp_path / "soccernet").exists()


def write_split_zip(path, split: str, tracklets: int, top_folder: bool, labels: bool = True) -> None:
    frame = cv2.imencode(".jpg", np.full((40, 20, 3), 128, np.uint8))[1].tobytes()
    prefix = f"{split}/" if top_folder else ""
    with zipfile.ZipFile(path, "w") as archive:
        for tracklet in range(tracklets):
            for index in range(3):
                archive.writestr(f"{prefix}images/{tracklet}/{tracklet}_{index}.jpg", frame)
        if labels:
            archive.writestr(f"{prefix}{split}_gt.json", json.dumps({str(t): t for t in range(tracklets)}))


def test_local_zips_are_extracted_verified_and_reported(tmp_path, capsys):
    zips = tmp_path / "zips"
    zips.mkdir()
    write_split_zip(zips / "train.zip", "train", 4, top_folder=True)
    write_split_zip(zips / "challenge.zip", "challenge", 2, top_folder=False, labels=False)
    dest = tmp_path / "soccernet"
    assert download_data.main(["--from-zips", str(zips), "--dest", str(dest), "--splits", "train", "challenge"]) == 0
    out = capsys.readouterr().out
    assert "train: 4 tracklets, 12 frames" in out and "challenge: 2 tracklets, 6 frames" in out
    assert "the published split has 1427" in out  # a toy split is reported, not silently accepted
    assert sorted(p.name for p in dest.iterdir()) == ["challenge", "train"]  # no partial folders left
    assert (dest / "train" / "train_gt.json").is_file() and len(list((dest / "train" / "images").iterdir())) == 4


@pytest.mark.parametrize("damage", ["truncated", "no labels", "unsafe path"])
def test_a_bad_archive_leaves_no_split_behind(tmp_path, damage):
    zips, dest = tmp_path / "zips", tmp_path / "soccernet"
    zips.mkdir()
    write_split_zip(zips / "test.zip", "test", 3, top_folder=True, labels=damage != "no labels")
    if damage == "truncated":
        data = (zips / "test.zip").read_bytes()
        (zips / "test.zip").write_bytes(data[: len(data) // 2])
    if damage == "unsafe path":
        with zipfile.ZipFile(zips / "test.zip", "a") as archive:
            archive.writestr("../escaped.txt", "x")
    with pytest.raises(soccernet.DataError):
        soccernet.from_zips(zips, dest, ("test",))
    assert list(dest.iterdir()) == [] and not (tmp_path / "escaped.txt").exists()
