"""download_data.py: fails fast and cleanly without network or with a server that never answers; extracts and
verifies local zips all or nothing."""

from __future__ import annotations

import json
import socket
import threading
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


def test_a_server_that_accepts_and_never_answers_fails_the_download_after_the_timeout(tmp_path, monkeypatch, capsys):
    import huggingface_hub.constants
    from huggingface_hub.utils import _http

    # Listening and never accepting: the kernel completes every connection, and nothing is ever answered.
    with socket.create_server(("127.0.0.1", 0), backlog=16) as silent:
        port = silent.getsockname()[1]
        monkeypatch.setattr(soccernet, "HOST", ("127.0.0.1", port))
        monkeypatch.setattr(huggingface_hub.constants, "ENDPOINT", f"http://127.0.0.1:{port}")  # the downloader's
        monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
        factory, xet_disabled = _http._GLOBAL_CLIENT_FACTORY, huggingface_hub.constants.HF_HUB_DISABLE_XET
        exit_code = []
        run = threading.Thread(target=lambda: exit_code.append(download_data.main(["--dest", str(tmp_path / "sn"),
                                                                                   "--timeout", "1"])), daemon=True)  # fmt: skip
        start = time.monotonic()
        run.start()
        run.join(timeout=30)  # bounded: a download that hangs fails the test instead of hanging it
        assert not run.is_alive(), "the download hung on a silent server"
    assert time.monotonic() - start < 15 and exit_code == [1]
    message = capsys.readouterr().err
    assert "127.0.0.1 did not answer within 1 s" in message and "--from-zips" in message
    # the timeouts were scoped to the download
    assert _http._GLOBAL_CLIENT_FACTORY is factory and huggingface_hub.constants.HF_HUB_DISABLE_XET == xet_disabled


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
    assert download_data.main(["--from-zips", str(tmp_path / "typo"), "--dest", str(dest)]) == 1
    assert "not a folder" in capsys.readouterr().err


@pytest.mark.parametrize(("damage", "says"), [("truncated", "download it again"),
                                               ("no labels", r"test\.zip: test has no test_gt\.json$"),
                                               ("unsafe path", "unsafe path in the archive: ../escaped.txt")])  # fmt: skip
def test_a_bad_archive_leaves_no_split_behind_and_says_what_is_wrong(tmp_path, damage, says):
    zips, dest = tmp_path / "zips", tmp_path / "soccernet"
    zips.mkdir()
    write_split_zip(zips / "test.zip", "test", 3, top_folder=True, labels=damage != "no labels")
    if damage == "truncated":
        data = (zips / "test.zip").read_bytes()
        (zips / "test.zip").write_bytes(data[: len(data) // 2])
    if damage == "unsafe path":
        with zipfile.ZipFile(zips / "test.zip", "a") as archive:
            archive.writestr("../escaped.txt", "x")
    with pytest.raises(soccernet.DataError, match=says):
        soccernet.from_zips(zips, dest, ("test",))
    assert list(dest.iterdir()) == [] and not (tmp_path / "escaped.txt").exists()


def test_a_destination_that_cannot_take_the_split_is_one_clear_error_that_blames_no_download(tmp_path, capsys):
    zips = tmp_path / "zips"
    zips.mkdir()
    write_split_zip(zips / "test.zip", "test", 3, top_folder=True)
    (tmp_path / "file").write_text("x")
    assert download_data.main(["--from-zips", str(zips), "--dest", str(tmp_path / "file"), "--splits", "test"]) == 1
    assert "cannot make the data folder" in capsys.readouterr().err
    (tmp_path / "dest").mkdir()
    (tmp_path / "dest" / "test").write_text("a file where the split's folder goes")
    with pytest.raises(soccernet.DataError, match="cannot extract .*test.zip into .*dest") as error:
        soccernet.from_zips(zips, tmp_path / "dest", ("test",))
    assert "download it again" not in str(error.value)
