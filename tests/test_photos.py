"""Race photos: the index (search ranking, export), the resumable tag job, runner regions, and real photos."""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from jerseynum.cli import main
from jerseynum.photos.index import BibNumber, IndexFileError, PhotoIndex, edit_distance
from jerseynum.photos.runners import RunnerSettings, bib_region, iou
from jerseynum.photos.tagger import tag_folder
from tests.conftest import data_set


class ShadeTagger:
    """A stand-in for PhotoTagger: a photo "shows" the number given by its mean grey level, so results are
    known in advance and tagging costs nothing. Counts its calls to prove what was (not) redone."""

    calls = 0

    def __init__(self, threads: int = 0, fail_after: int | None = None, delay: float = 0.0) -> None:
        self.fail_after = fail_after
        self.delay = delay

    def tag(self, image: np.ndarray) -> list[BibNumber]:
        ShadeTagger.calls += 1
        if self.fail_after is not None and ShadeTagger.calls > self.fail_after:
            raise KeyboardInterrupt  # what Ctrl-C raises in the middle of a photo
        time.sleep(self.delay)
        return [BibNumber(str(100 + int(image.mean())), 0.9, (1, 2, 30, 20))]


def write_photos(folder: Path, shades: list[int]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for k, shade in enumerate(shades):
        cv2.imwrite(str(folder / f"photo{k}.png"), np.full((24, 32, 3), shade, np.uint8))


def exported(index_path: Path) -> dict:
    with PhotoIndex(index_path) as index:
        return json.loads(index.export("json"))


@pytest.fixture(autouse=True)
def _reset_calls():
    ShadeTagger.calls = 0


def test_tagging_a_folder_twice_does_no_second_work(tmp_path):
    write_photos(tmp_path / "photos", [10, 20, 30])
    first = tag_folder(tmp_path / "photos", tmp_path / "index.db", ShadeTagger, version="v1", workers=1)
    assert (first.tagged, first.unchanged, ShadeTagger.calls) == (3, 0, 3)
    again = tag_folder(tmp_path / "photos", tmp_path / "index.db", ShadeTagger, version="v1", workers=1)
    assert (again.tagged, again.unchanged, ShadeTagger.calls) == (0, 3, 3)
    assert exported(tmp_path / "index.db") == {"photo0.png": ["110"], "photo1.png": ["120"], "photo2.png": ["130"]}


def test_changed_photos_and_new_model_versions_are_retagged_touched_ones_are_not(tmp_path):
    photos = tmp_path / "photos"
    write_photos(photos, [10, 20, 30])
    tag_folder(photos, tmp_path / "index.db", ShadeTagger, version="v1", workers=1)
    os.utime(photos / "photo0.png", ns=(1, 1))  # new timestamp, same content
    cv2.imwrite(str(photos / "photo1.png"), np.full((24, 32, 3), 50, np.uint8))  # new content
    (photos / "photo2.png").unlink()
    report = tag_folder(photos, tmp_path / "index.db", ShadeTagger, version="v1", workers=1)
    assert (report.tagged, report.unchanged, report.removed) == (1, 1, 1)
    assert exported(tmp_path / "index.db") == {"photo0.png": ["110"], "photo1.png": ["150"]}
    assert tag_folder(photos, tmp_path / "index.db", ShadeTagger, version="v2", workers=1).tagged == 2


def test_a_corrupt_jpeg_is_recorded_and_skipped(tmp_path, caplog):
    photos = tmp_path / "photos"
    write_photos(photos, [10])
    good = cv2.imencode(".jpg", np.full((40, 40, 3), 90, np.uint8))[1].tobytes()
    (photos / "truncated.jpg").write_bytes(good[:20])
    (photos / "empty.jpg").write_bytes(b"")
    report = tag_folder(photos, tmp_path / "index.db", ShadeTagger, version="v1", workers=1)
    assert (report.tagged, report.unreadable, ShadeTagger.calls) == (3, 2, 1)
    assert "truncated.jpg: not a decodable image" in caplog.text
    with PhotoIndex(tmp_path / "index.db") as index:
        errors = {r.path: r.error for r in index.photos()}
    assert errors == {
        "photo0.png": None,
        "truncated.jpg": "not a decodable image: truncated.jpg",
        "empty.jpg": "empty file: empty.jpg",
    }
    # recorded, so a rerun does not try them again
    assert tag_folder(photos, tmp_path / "index.db", ShadeTagger, version="v1", workers=1).tagged == 0


class BrokenTagger(ShadeTagger):
    def tag(self, image: np.ndarray) -> list[BibNumber]:
        if image.mean() > 15:
            raise RuntimeError("model exploded")
        return super().tag(image)


def test_a_photo_that_breaks_the_tagger_is_recorded_and_the_run_goes_on(tmp_path):
    write_photos(tmp_path / "photos", [10, 20, 5])
    report = tag_folder(tmp_path / "photos", tmp_path / "index.db", BrokenTagger, version="v1", workers=1)
    assert (report.tagged, report.unreadable) == (3, 1)
    with PhotoIndex(tmp_path / "index.db") as index:
        errors = {r.path: r.error for r in index.photos()}
    assert errors == {"photo0.png": None, "photo1.png": "tagging failed: model exploded", "photo2.png": None}


def test_an_interrupted_run_resumes_to_the_same_index_as_an_uninterrupted_one(tmp_path):
    photos = tmp_path / "photos"
    write_photos(photos, [5 * k for k in range(8)])
    tag_folder(photos, tmp_path / "whole.db", ShadeTagger, version="v1", workers=1)

    def interrupted(threads: int = 0) -> ShadeTagger:
        return ShadeTagger(fail_after=3)

    ShadeTagger.calls = 0
    with pytest.raises(KeyboardInterrupt):
        tag_folder(photos, tmp_path / "resumed.db", interrupted, version="v1", workers=1)
    assert len(exported(tmp_path / "resumed.db")) == 3  # what was done before Ctrl-C is kept
    ShadeTagger.calls = 0
    report = tag_folder(photos, tmp_path / "resumed.db", ShadeTagger, version="v1", workers=1)
    assert (report.tagged, report.unchanged, ShadeTagger.calls) == (5, 3, 5)
    assert exported(tmp_path / "resumed.db") == exported(tmp_path / "whole.db")


def _tag_slowly(photos: Path, index: Path) -> None:
    tag_folder(photos, index, lambda threads=0: ShadeTagger(delay=0.05), version="v1", workers=1, progress=False)


def test_a_killed_run_leaves_a_consistent_index_and_resumes(tmp_path):
    photos = tmp_path / "photos"
    write_photos(photos, [3 * k for k in range(40)])
    process = multiprocessing.get_context("fork").Process(target=_tag_slowly, args=(photos, tmp_path / "index.db"))
    process.start()
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:  # kill -9 once some photos are committed
        if (tmp_path / "index.db").exists() and len(exported(tmp_path / "index.db")) >= 5:
            break
        time.sleep(0.02)
    os.kill(process.pid, signal.SIGKILL)
    process.join()
    done = exported(tmp_path / "index.db")
    assert 5 <= len(done) < 40 and all(numbers for numbers in done.values())
    tag_folder(photos, tmp_path / "index.db", ShadeTagger, version="v1", workers=1)
    tag_folder(photos, tmp_path / "whole.db", ShadeTagger, version="v1", workers=1)
    assert exported(tmp_path / "index.db") == exported(tmp_path / "whole.db")


def test_two_worker_processes_give_the_same_index_as_one(tmp_path):
    photos = tmp_path / "photos"
    write_photos(photos, [7 * k for k in range(10)])
    tag_folder(photos, tmp_path / "one.db", ShadeTagger, version="v1", workers=1)
    report = tag_folder(photos, tmp_path / "two.db", ShadeTagger, version="v1", workers=2)
    assert report.tagged == 10
    assert exported(tmp_path / "two.db") == exported(tmp_path / "one.db")


def test_an_index_of_another_folder_is_refused(tmp_path):
    write_photos(tmp_path / "a", [1])
    write_photos(tmp_path / "b", [2])
    tag_folder(tmp_path / "a", tmp_path / "index.db", ShadeTagger, version="v1", workers=1)
    with pytest.raises(IndexFileError, match="indexes"):
        tag_folder(tmp_path / "b", tmp_path / "index.db", ShadeTagger, version="v1", workers=1)


def test_a_file_that_is_not_an_index_is_refused(tmp_path):
    (tmp_path / "notes.db").write_text("not sqlite " * 100)
    with pytest.raises(IndexFileError, match="not a jerseynum index"):
        PhotoIndex(tmp_path / "notes.db")


@pytest.fixture
def small_index(tmp_path) -> Path:
    path = tmp_path / "index.db"
    with PhotoIndex(path) as index:
        index.bind_root(tmp_path)
        rows = {"a.jpg": [("1234", 0.9)], "b.jpg": [("12345", 0.95)], "c.jpg": [("1284", 0.99)],
                "d.jpg": [("1234", 0.6), ("77", 0.9)], "e.jpg": [("5678", 0.9)], "f.jpg": []}  # fmt: skip
        for name, numbers in rows.items():
            index.put(name, "sha", 1, 1, (10, 10), [BibNumber(n, c, (0, 0, 5, 5)) for n, c in numbers], None, "v1", 0.1)
    return path


def test_search_ranks_exact_then_partial_then_fuzzy_and_confident_first(small_index):
    with PhotoIndex(small_index) as index:
        found = [(m.photo.path, m.kind) for m in index.search("1234")]
        assert found == [("a.jpg", "exact"), ("d.jpg", "exact"), ("b.jpg", "partial"), ("c.jpg", "fuzzy")]
        assert [m.photo.path for m in index.search("1234", partial=False, max_distance=0)] == ["a.jpg", "d.jpg"]
        # all partial, the closest in length first
        assert [m.photo.path for m in index.search("123")] == ["a.jpg", "d.jpg", "b.jpg"]
        assert index.search("no digits") == [] and index.search("") == []


def test_edit_distance():
    assert [
        edit_distance(a, b) for a, b in [("", ""), ("1234", "1234"), ("1234", "124"), ("1234", "1243"), ("", "12")]
    ] == [0, 0, 1, 2, 2]


def test_export_lists_every_photo_json_and_csv(small_index, tmp_path, capsys):
    assert main(["export", "--index", str(small_index)]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["d.jpg"] == ["1234", "77"] and data["f.jpg"] == [] and len(data) == 6
    assert main(["export", "--index", str(small_index), "--format", "csv", "-o", str(tmp_path / "out.csv")]) == 0
    lines = (tmp_path / "out.csv").read_text().splitlines()
    assert lines[0].startswith("photo,number,confidence") and len(lines) == 1 + 7  # 6 numbers + f.jpg's empty row


def test_search_command_prints_and_copies_the_photos(small_index, tmp_path, capsys):
    for name in "abcd":
        (tmp_path / f"{name}.jpg").write_bytes(name.encode())
    assert main(["search", "1234", "--index", str(small_index), "--exact", "--copy-to", str(tmp_path / "out")]) == 0
    assert "2 photos for 1234" in capsys.readouterr().out
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a.jpg", "d.jpg"]
    assert main(["search", "999999", "--index", str(small_index)]) == 1
    with pytest.raises(SystemExit, match="no index"):
        main(["search", "1", "--index", str(tmp_path / "missing.db")])


def test_bib_region_hangs_below_the_face_and_stays_in_the_photo():
    settings = RunnerSettings()
    x1, y1, x2, y2 = bib_region((100, 50, 120, 74), 400, 300, settings)  # a 20 x 24 face
    assert y1 > 74 and y2 == int(74 + settings.bottom * 24 + 1) and (x1 + x2) / 2 == pytest.approx(110, abs=1)
    assert bib_region((0, 380, 30, 399), 400, 300, settings)[3] == 400  # clipped at the bottom edge
    assert iou((0, 0, 10, 10), (0, 0, 10, 10)) == 1 and iou((0, 0, 10, 10), (20, 20, 30, 30)) == 0


@pytest.mark.data
def test_real_race_photos_are_tagged_with_their_bibs(tmp_path):
    root = data_set("rbnr_bib_photos")
    labels = json.loads((root / "labels.json").read_text())
    names = ["set1_01.JPG", "set1_05.JPG", "set2_05.JPG"]
    photos = tmp_path / "photos"
    photos.mkdir()
    for name in names:
        (photos / name).write_bytes((root / "images" / name).read_bytes())
    assert main(["tag", str(photos), "--index", str(tmp_path / "index.db"), "--workers", "1", "-q"]) == 0
    found = exported(tmp_path / "index.db")
    for name in names:
        assert set(labels[name]) <= set(found[name]), name
