import json

import cv2
import numpy as np
import pytest

from jerseynum.io import ImageError, TrackletFolderError, list_tracklets, load_image, write_json_atomic
from jerseynum.types import Frame


def test_tracklets_and_frames_are_in_natural_order(tmp_path):
    for tracklet in ("10", "2"):
        (tmp_path / tracklet).mkdir()
        for frame in ("10.jpg", "2.jpg"):
            cv2.imwrite(str(tmp_path / tracklet / frame), np.zeros((8, 8, 3), np.uint8))
        (tmp_path / tracklet / "notes.txt").write_text("not an image")
    (tmp_path / "empty").mkdir()
    tracklets = list_tracklets(tmp_path)
    assert [t.id for t in tracklets] == ["2", "10", "empty"]
    assert [frame.source.rsplit("/", 1)[1] for frame in tracklets[0].frames] == ["2.jpg", "10.jpg"]
    assert tracklets[2].frames == []


def test_a_file_or_a_folder_without_tracklets_is_a_clear_error(tmp_path):
    with pytest.raises(TrackletFolderError, match="not a folder"):
        list_tracklets(tmp_path / "missing")
    with pytest.raises(TrackletFolderError, match="no tracklet sub-folders"):
        list_tracklets(tmp_path)


def test_corrupt_and_missing_images_raise_image_error(tmp_path):
    (tmp_path / "bad.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    (tmp_path / "empty.jpg").write_bytes(b"")
    for name in ("bad.jpg", "empty.jpg", "missing.jpg"):
        with pytest.raises(ImageError):
            load_image(Frame(str(tmp_path / name), 0))


def test_image_is_decoded_once_and_kept_on_the_frame(tmp_path):
    cv2.imwrite(str(tmp_path / "a.png"), np.full((5, 7, 3), 9, np.uint8))
    frame = Frame(str(tmp_path / "a.png"), 0)
    image = load_image(frame)
    assert image.shape == (5, 7, 3) and load_image(frame) is image


def test_json_is_written_whole_or_not_at_all(tmp_path):
    path = tmp_path / "out" / "p.json"
    write_json_atomic(path, {"1": 7})
    assert json.loads(path.read_text()) == {"1": 7}
    with pytest.raises(TypeError):
        write_json_atomic(path, {"1": object()})
    assert json.loads(path.read_text()) == {"1": 7}  # the failed write left the old file intact
    assert [p.name for p in path.parent.iterdir()] == ["p.json"]  # and no temporary file is left behind
