"""Race photos: the index (search ranking, export), the resumable tag job, runner regions, and real photos."""

from __future__ import annotations

import json
import multiprocessing
import os
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from contextlib import closing
from dataclasses import replace
from pathlib import Path
from typing import ClassVar

import cv2
import numpy as np
import pytest

from jerseynum.cli import main
from jerseynum.config import PipelineConfig
from jerseynum.photos.index import BibNumber, IndexFileError, PhotoIndex, RunnerRead, bib_digits, edit_distance
from jerseynum.photos.runners import RunnerSettings, bib_region
from jerseynum.photos.tagger import PACKAGE, model_version, reader_code_digest, tag_folder
from jerseynum.types import Mode, iou
from tests.badfiles import bomb_png, jpeg
from tests.conftest import data_set
from tests.test_parallel import alive, children_of, wait_for


class ShadeTagger:
    """A stand-in for PhotoTagger: a photo "shows" the number given by its mean grey level, so results are
    known in advance and tagging costs nothing. Counts its calls to prove what was (not) redone."""

    calls = 0

    def __init__(self, threads: int = 0, fail_after: int | None = None, delay: float = 0.0) -> None:
        self.fail_after = fail_after
        self.delay = delay

    def read(self, image: np.ndarray) -> list[RunnerRead]:
        ShadeTagger.calls += 1
        if self.fail_after is not None and ShadeTagger.calls > self.fail_after:
            raise KeyboardInterrupt  # what Ctrl-C raises in the middle of a photo
        time.sleep(self.delay)
        return [RunnerRead((0, 0, 32, 24), str(100 + int(image.mean())), 1.0, (1, 2, 30, 20))]


def write_photos(folder: Path, shades: list[int]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for k, shade in enumerate(shades):
        cv2.imwrite(str(folder / f"photo{k}.png"), np.full((24, 32, 3), shade, np.uint8))


def tagged_shades(tmp_path: Path, shades: list[int]) -> tuple[Path, Path]:
    """`write_photos` of `shades` in tmp_path/photos, tagged by ShadeTagger into tmp_path/index.db: (folder, index)."""
    photos, index_path = tmp_path / "photos", tmp_path / "index.db"
    write_photos(photos, shades)
    tag_folder(photos, index_path, ShadeTagger, version="v1", workers=1)
    return photos, index_path


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


def test_a_photo_moved_or_renamed_in_the_folder_is_not_read_again_and_keeps_its_corrections(tmp_path, capsys,
                                                                                              monkeypatch):
    photos, index = tmp_path / "photos", tmp_path / "index.db"
    write_photos(photos, [10, 20, 30])
    tag_folder(photos, index, ShadeTagger, version="v1", workers=1)
    assert main(["correct", "photo0.png", "--index", str(index), "--add", "4242"]) == 0
    with PhotoIndex(index) as opened:  # as write-metadata records what it wrote
        for name in ("photo0.png", "photo2.png"):
            opened.record_keywords(name, "sidecar", ["BIB:110", "BIB:4242"], [])
    (photos / "finish").mkdir()
    (photos / "photo0.png").rename(photos / "finish" / "photo0.png")
    (photos / "photo1.png").rename(photos / "renamed.png")
    (photos / "photo2.png").unlink()
    calls = ShadeTagger.calls
    monkeypatch.setattr("jerseynum.photos.tagger.tag_folder.__defaults__",  # the factory and version
                        (ShadeTagger, "v1", *tag_folder.__defaults__[2:]))
    assert main(["tag", str(photos), "--index", str(index), "-q"]) == 0
    out = capsys.readouterr().out
    assert "0 tagged" in out and "2 unchanged (2 moved or renamed), 1 gone" in out and ShadeTagger.calls == calls
    assert exported(index) == {"finish/photo0.png": ["110", "4242"], "renamed.png": ["120"]}
    assert main(["export", "--index", str(index), "--format", "corrections"]) == 0
    assert capsys.readouterr().out.splitlines()[1].startswith("finish/photo0.png,4242,add")
    with PhotoIndex(index) as opened:  # what was written into a moved photo's sidecar moved with it; a gone one's went
        assert opened.keywords_written() == {"finish/photo0.png": {"sidecar": {"BIB:110", "BIB:4242"}}}


def test_every_reader_setting_and_weight_file_names_the_model_version_but_threads_and_copies_do_not(tmp_path):
    from jerseynum.stages.crnn import DEFAULT_WEIGHTS

    def version(**changes) -> str:
        return model_version(PipelineConfig(mode=Mode.BIB, **changes), RunnerSettings())

    default = version()
    assert version(threads=1) == default
    assert version(crnn_views=3) != default
    assert version(detect_min_side=64) != default
    copy = tmp_path / "copy.pt"
    shutil.copyfile(DEFAULT_WEIGHTS, copy)
    assert version(text_options={"crnn": {"weights": copy}}) == default  # the same weights, elsewhere
    copy.write_bytes(copy.read_bytes() + b"retrained")
    assert version(text_options={"crnn": {"weights": copy}}) != default


def test_an_upgrade_whose_reader_reads_differently_reads_the_photos_again_one_of_pass_two_does_not(tmp_path):
    package = tmp_path / "jerseynum"
    shutil.copytree(PACKAGE, package, ignore=shutil.ignore_patterns("__pycache__", "static", "templates"))
    before = reader_code_digest(package)
    assert before == reader_code_digest(PACKAGE)
    assert f"reader {before}" in model_version(PipelineConfig(mode=Mode.BIB), RunnerSettings())
    event = package / "photos" / "event.py"  # pass 2: re-decided from the stored reads
    event.write_text(event.read_text() + "\n# a new way to decide the event\n")
    assert reader_code_digest(package) == before
    runners = package / "photos" / "runners.py"
    runners.write_text(runners.read_text() + "\nDEFAULT_SIDE = 2.0  # a runner's region drawn wider\n")
    assert reader_code_digest(package) != before
    runners.write_text((PACKAGE / "photos" / "runners.py").read_text())
    vote = package / "stages" / "vote.py"
    reworded = vote.read_text().replace('"""', '"""Reworded. ', 1) + "\n# a comment on the vote\n"
    vote.write_text(reworded)  # comments and docstrings are not code
    assert reader_code_digest(package) == before
    vote.write_text(reworded + "\nFLOOR = 0.9  # a new vote rule\n")
    assert reader_code_digest(package) != before


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
        "truncated.jpg": "not a decodable image",
        "empty.jpg": "empty file",
    }
    # tried again by every run (a decoder installed, a budget raised), the photo read is not
    again = tag_folder(photos, tmp_path / "index.db", ShadeTagger, version="v1", workers=1)
    assert (again.tagged, again.unreadable, again.unchanged, ShadeTagger.calls) == (2, 2, 1, 1)


def test_a_photo_over_an_earlier_pixel_budget_is_read_by_a_later_run_that_allows_it(tmp_path):
    photos, index = tmp_path / "photos", tmp_path / "index.db"
    write_photos(photos, [10])  # a 32 x 24 PNG: 768 pixels
    first = tag_folder(photos, index, ShadeTagger, version="v1", workers=1, max_pixels=500)
    assert (first.unreadable, ShadeTagger.calls) == (1, 0) and "over the pixel" in first.errors["photo0.png"]
    again = tag_folder(photos, index, ShadeTagger, version="v1", workers=1)
    assert (again.tagged, again.unreadable, ShadeTagger.calls) == (1, 0, 1)
    assert exported(index) == {"photo0.png": ["110"]}


def test_an_emptied_folder_leaves_the_index_as_it_was(tmp_path):
    photos, index = tmp_path / "photos", tmp_path / "index.db"
    write_photos(photos, [10, 20])
    tag_folder(photos, index, ShadeTagger, version="v1", workers=1)
    for photo in photos.iterdir():  # a card or drive not mounted: its mount point is an empty folder
        photo.unlink()
    with pytest.raises(IndexFileError, match=r"no photos under .*, but .*index.db holds 2: is the card or drive"):
        tag_folder(photos, index, ShadeTagger, version="v1", workers=1)
    assert exported(index) == {"photo0.png": ["110"], "photo1.png": ["120"]}


class BrokenTagger(ShadeTagger):
    def read(self, image: np.ndarray) -> list[RunnerRead]:
        if image.mean() > 15:
            raise RuntimeError("model exploded")
        return super().read(image)


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


def test_a_file_that_is_not_an_index_is_refused_and_not_held_open(tmp_path, monkeypatch):
    connections = []
    connect = sqlite3.connect
    monkeypatch.setattr(sqlite3, "connect", lambda *args, **kwargs: connections.append(connect(*args, **kwargs))
                        or connections[-1])  # fmt: skip
    (tmp_path / "notes.db").write_text("not sqlite " * 100)
    with pytest.raises(IndexFileError, match="not a jerseynum index"):
        PhotoIndex(tmp_path / "notes.db")
    with pytest.raises(sqlite3.ProgrammingError, match="closed"):
        connections[0].execute("SELECT 1")


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


def test_typed_bibs_keep_their_digits_in_any_script():
    # full-width (a Japanese keyboard), Arabic-Indic and Devanagari digits are the digits the reader stored
    assert [bib_digits(t) for t in ("３６３８", "٣٦٣٨", "۳۶۳۸", "३६३८", "T-3638 ", "²3", "no digits")] == [
        "3638", "3638", "3638", "3638", "3638", "23", ""]  # fmt: skip


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


def test_search_command_prints_and_copies_the_photos(small_index, tmp_path, capsys, caplog):
    for name in "abcd":
        (tmp_path / f"{name}.jpg").write_bytes(name.encode())
    assert main(["search", "1234", "--index", str(small_index), "--exact", "--copy-to", str(tmp_path / "out")]) == 0
    assert "2 photos for 1234" in capsys.readouterr().out
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a.jpg", "d.jpg"]
    assert main(["search", "999999", "--index", str(small_index)]) == 1  # no photo of the number
    (tmp_path / "notes.txt").write_text("mine")
    assert main(["search", "1234", "--index", str(small_index), "--copy-to", str(tmp_path / "notes.txt")]) == 2
    assert (tmp_path / "notes.txt").read_text() == "mine"
    for command in (["search", "1"], ["export"], ["review"]):  # no index at all: another status, as every command
        assert main([*command, "--index", str(tmp_path / "missing.db")]) == 2
    assert caplog.text.count("no index at") == 3 and "--copy-to" in caplog.text


def test_search_copies_the_runners_photos_and_lists_near_numbers_apart(small_index, tmp_path, capsys):
    for name in "abcd":
        (tmp_path / f"{name}.jpg").write_bytes(name.encode())
    assert main(["search", "1234", "--index", str(small_index), "--copy-to", str(tmp_path / "mine")]) == 0
    out = capsys.readouterr().out
    assert out.index("2 photos for 1234") < out.index("maybe you: 2 photos of near numbers (not copied")
    assert "12345" in out.split("maybe you")[1] and "1284" in out.split("maybe you")[1]
    assert sorted(p.name for p in (tmp_path / "mine").iterdir()) == ["a.jpg", "d.jpg"]  # no stranger's photo
    assert main(["search", "1234", "--index", str(small_index), "--copy-to", str(tmp_path / "all"), "--copy-near"]) == 0
    assert sorted(p.name for p in (tmp_path / "all").iterdir()) == ["a.jpg", "b.jpg", "c.jpg", "d.jpg"]
    capsys.readouterr()
    assert main(["search", "123", "--index", str(small_index)]) == 1  # only near numbers: no photo of 123
    assert "0 photos for 123" in capsys.readouterr().out.split("maybe you")[0]


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


# --- hardening: hostile files, vanished files, foreign or read-only indexes, full disks, kills ----------------


def test_a_decompression_bomb_is_recorded_and_the_folder_can_still_be_tagged(tmp_path):
    photos = tmp_path / "photos"
    write_photos(photos, [10, 20])
    (photos / "bomb.png").write_bytes(bomb_png())
    report = tag_folder(photos, tmp_path / "index.db", ShadeTagger, version="v1", workers=1)
    assert (report.tagged, report.unreadable, ShadeTagger.calls) == (3, 1, 2)
    with PhotoIndex(tmp_path / "index.db") as index:
        errors = {r.path: r.error for r in index.photos()}
    assert "over the pixel budget" in errors["bomb.png"] and errors["photo0.png"] is None
    again = tag_folder(photos, tmp_path / "index.db", ShadeTagger, version="v1", workers=1)
    assert (again.tagged, again.unreadable, again.unchanged) == (1, 1, 2)  # only the bomb is tried again


def test_a_photo_over_the_budget_is_read_reduced_and_indexed_in_full_size_pixels(tmp_path):
    photos = tmp_path / "photos"
    photos.mkdir()
    (photos / "big.jpg").write_bytes(jpeg(400, 300))
    tag_folder(photos, tmp_path / "index.db", ShadeTagger, version="v1", workers=1, max_pixels=400 * 300 // 10)
    with PhotoIndex(tmp_path / "index.db") as index:
        (photo,) = index.photos()
    assert (photo.width, photo.height, photo.error) == (400, 300, None)
    assert photo.numbers[0].box == (4, 8, 120, 80)  # ShadeTagger's (1, 2, 30, 20) on the 1/4-size image


class DeletingTagger(ShadeTagger):
    """Deletes photo2.png while the first photo is tagged: a file that vanishes mid-run."""

    def read(self, image: np.ndarray) -> list[RunnerRead]:
        (self.folder / "photo2.png").unlink(missing_ok=True)
        return super().read(image)


def test_a_photo_deleted_mid_run_is_recorded_and_the_run_goes_on(tmp_path):
    photos = tmp_path / "photos"
    write_photos(photos, [10, 20, 30, 40])
    DeletingTagger.folder = photos
    report = tag_folder(photos, tmp_path / "index.db", DeletingTagger, version="v1", workers=1)
    assert (report.tagged, report.unreadable) == (4, 1)
    with PhotoIndex(tmp_path / "index.db") as index:
        errors = {r.path: r.error for r in index.photos()}
    assert errors["photo2.png"].startswith("cannot read the file") and errors["photo3.png"] is None
    report = tag_folder(photos, tmp_path / "index.db", ShadeTagger, version="v1", workers=1)
    assert (report.removed, report.tagged) == (1, 0)  # the rerun drops it: it is gone from the folder


def test_a_foreign_sqlite_file_is_refused_and_left_as_it_was(tmp_path, caplog):
    foreign = tmp_path / "shop.db"
    with closing(sqlite3.connect(foreign)) as db, db:
        db.execute("CREATE TABLE customers (name TEXT)")
        db.execute("INSERT INTO customers VALUES ('Ada')")
    before = foreign.read_bytes()
    with pytest.raises(IndexFileError, match="not a jerseynum index"):
        PhotoIndex(foreign)
    write_photos(tmp_path / "photos", [1])
    assert main(["tag", str(tmp_path / "photos"), "--index", str(foreign), "-q"]) == 2
    assert main(["search", "1", "--index", str(foreign)]) == 2
    assert "not a jerseynum index" in caplog.text
    assert foreign.read_bytes() == before and sorted(p.name for p in tmp_path.iterdir()) == ["photos", "shop.db"]


def test_a_read_only_open_never_writes(small_index):
    before = small_index.read_bytes()
    with PhotoIndex(small_index, read_only=True) as index:
        assert [m.photo.path for m in index.search("1234", partial=False, max_distance=0)] == ["a.jpg", "d.jpg"]
        with pytest.raises(IndexFileError):
            index.put("x.jpg", "sha", 1, 1, None, [], None, "v1", 0.1)
    assert small_index.read_bytes() == before


def in_private_mount(command: str, timeout: float = 120) -> subprocess.CompletedProcess:
    """`command` run by sh in a mount namespace of its own (mounts vanish with it); skips where not permitted."""
    if shutil.which("unshare") is None or subprocess.run(["unshare", "-m", "true"], capture_output=True, check=False).returncode:
        pytest.skip("cannot make a private mount namespace here (unshare -m not permitted)")
    command_line = ["unshare", "-m", "sh", "-c", command]
    return subprocess.run(command_line, capture_output=True, text=True, timeout=timeout, check=False)


def test_search_and_export_work_on_an_index_on_a_read_only_mount(tmp_path):
    folder = tmp_path / "race"
    write_photos(folder / "photos", [10, 20])
    tag_folder(folder / "photos", folder / "index.db", ShadeTagger, version="v1", workers=1)
    cli = f"{sys.executable} -m jerseynum"
    result = in_private_mount(
        f"mount --bind {folder} {folder} && mount -o remount,ro,bind {folder} && touch {folder}/probe 2>/dev/null"
        f" && echo WRITABLE; {cli} search 110 --exact --index {folder}/index.db && {cli} export --index {folder}/index.db"
    )  # fmt: skip
    assert "WRITABLE" not in result.stdout, "the mount was not read-only"
    assert result.returncode == 0, result.stderr
    assert "1 photo for 110" in result.stdout and '"photo0.png": [\n  "110"\n ]' in result.stdout


def test_a_full_disk_during_export_says_so_in_one_line_and_leaves_nothing(tmp_path, small_index):
    out = tmp_path / "tiny"
    out.mkdir()
    with PhotoIndex(small_index) as index:  # an index whose export is larger than the 4 KB disk
        for k in range(200):
            index.put(f"more{k}.jpg", "sha", 1, 1, (10, 10), [BibNumber(str(k), 0.9, (0, 0, 5, 5))], None, "v1", 0.1)
    result = in_private_mount(
        f"mount -t tmpfs -o size=4k tmpfs {out} && {sys.executable} -m jerseynum export --index {small_index}"
        f" -o {out}/export.json; echo exit=$?; ls -A {out}"
    )  # fmt: skip
    assert "exit=1" in result.stdout, result.stderr
    assert result.stdout.strip().endswith("exit=1")  # and the tiny disk holds nothing: no partial or temporary file
    assert [line for line in result.stderr.splitlines() if line.startswith("ERROR")] == [
        f"ERROR jerseynum: cannot write {out}/export.json: No space left on device; nothing was written"
    ]


class ManyNumbersTagger(ShadeTagger):
    """Forty numbers per photo, so the index grows by about a page a photo."""

    def read(self, image: np.ndarray) -> list[RunnerRead]:
        base = super().read(image)[0]
        return [replace(base, number=f"{base.number}{k:02d}") for k in range(40)]


def test_a_full_disk_while_tagging_is_one_line_keeps_what_was_saved_and_resumes(tmp_path, monkeypatch, caplog):
    photos = tmp_path / "photos"
    write_photos(photos, [4 * k for k in range(12)])
    open_index = PhotoIndex.__init__

    def size_limited(self, path, read_only=False):  # SQLite's size limit stands in for a full disk
        open_index(self, path, read_only)
        if not read_only:
            (pages,) = self._db.execute("PRAGMA page_count").fetchone()
            self._db.execute(f"PRAGMA max_page_count = {max(pages, 4) + 6}")

    monkeypatch.setattr(PhotoIndex, "__init__", size_limited)
    monkeypatch.setattr("jerseynum.photos.tagger.PhotoTagger", ManyNumbersTagger)
    monkeypatch.setattr("jerseynum.photos.tagger.tag_folder.__defaults__",  # the factory and version
                        (ManyNumbersTagger, "v1", *tag_folder.__defaults__[2:]))
    assert main(["tag", str(photos), "--index", str(tmp_path / "index.db"), "-q", "--workers", "1"]) == 1
    errors = [r for r in caplog.records if r.levelname == "ERROR"]
    assert len(errors) == 1 and "the disk is full" in errors[0].getMessage()
    saved = len(exported(tmp_path / "index.db"))
    assert 0 < saved < 12 and f"{saved} photos are saved in it" in errors[0].getMessage()
    monkeypatch.setattr(PhotoIndex, "__init__", open_index)  # space freed
    assert main(["tag", str(photos), "--index", str(tmp_path / "index.db"), "-q", "--workers", "1"]) == 0
    tag_folder(photos, tmp_path / "whole.db", ManyNumbersTagger, version="v1", workers=1)
    assert exported(tmp_path / "index.db") == exported(tmp_path / "whole.db")


def test_copy_to_never_overwrites_skips_identical_files_and_says_so(small_index, tmp_path, capsys):
    for name in "abcd":
        (tmp_path / f"{name}.jpg").write_bytes(name.encode())
    out = tmp_path / "out"
    out.mkdir()
    (out / "a.jpg").write_bytes(b"a")  # the same photo, copied before
    (out / "d.jpg").write_bytes(b"my own holiday photo")  # a different file of the same name
    assert main(["search", "1234", "--index", str(small_index), "--exact", "--copy-to", str(out)]) == 0
    printed = capsys.readouterr().out
    assert f"{out}: 1 renamed, 1 already there" in printed and "copied as d (2).jpg" in printed
    assert (out / "d.jpg").read_bytes() == b"my own holiday photo" and (out / "d (2).jpg").read_bytes() == b"d"


def test_export_to_an_unwritable_place_fails_before_reading_and_leaves_no_temporary_file(small_index, tmp_path):
    (tmp_path / "file").write_text("x")
    assert main(["export", "--index", str(small_index), "-o", str(tmp_path / "file" / "out.json")]) == 2
    assert main(["export", "--index", str(small_index), "-o", str(tmp_path / "out.json")]) == 0
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_export_over_the_index_itself_is_refused_and_the_index_kept(small_index, tmp_path, caplog, monkeypatch):
    before = small_index.read_bytes()
    monkeypatch.chdir(tmp_path)
    for output in (str(small_index), "index.db", f"{small_index}-wal"):
        assert main(["export", "--index", str(small_index), "-o", output]) == 2
        assert "is the index itself" in caplog.text
    assert small_index.read_bytes() == before


def test_an_index_whose_folder_cannot_be_made_or_that_is_a_folder_is_one_clear_error(tmp_path):
    (tmp_path / "runners.csv").write_text("Bib\n1\n")
    with pytest.raises(IndexFileError, match="cannot make the index's folder .*runners.csv"):
        PhotoIndex(tmp_path / "runners.csv" / "race.db")
    with pytest.raises(IndexFileError, match="is a folder: give the index's file"):
        PhotoIndex(tmp_path)


@pytest.mark.parametrize("option", [["--fuzzy", "-1"], ["--limit", "-3"], ["--limit", "0"], ["--fuzzy", "x"]])
def test_negative_or_bad_search_options_are_refused(small_index, option):
    with pytest.raises(SystemExit) as exited:
        main(["search", "1234", "--index", str(small_index), *option])
    assert exited.value.code == 2


def test_full_width_digits_find_the_bib(small_index, capsys):
    assert main(["search", "１２３４", "--index", str(small_index), "--exact"]) == 0
    assert "2 photos for 1234" in capsys.readouterr().out
    with PhotoIndex(small_index, read_only=True) as index:
        assert [m.photo.path for m in index.search("５６７８")] == ["e.jpg"]


def test_search_says_when_the_limit_cuts_the_list(small_index, capsys):
    assert main(["search", "1234", "--index", str(small_index), "--limit", "1"]) == 0
    assert "1 photo for 1234 (of 2: --limit 1)" in capsys.readouterr().out


def committed_photos(index: Path) -> int:
    try:
        with PhotoIndex(index, read_only=True) as opened:
            return len(opened)
    except IndexFileError:  # not created yet
        return 0


def _tag_with_workers(photos: Path, index: Path) -> None:
    tag_folder(photos, index, lambda threads=0: ShadeTagger(delay=0.1), version="v1", workers=2, progress=False)


def test_kill_9_at_random_moments_leaves_no_process_a_sound_index_and_resumes_to_the_same_numbers(tmp_path):
    photos = tmp_path / "photos"
    write_photos(photos, [2 * k for k in range(120)])  # 6 s of work on 2 workers: every kill lands mid-run
    index_path = tmp_path / "index.db"
    saved = 0
    for more in random.Random(19).sample(range(1, 30), 3):  # kill once this many more photos are committed
        # spawned, not forked: a fork of this test process, whose OpenCV threads have run, could hang in OpenCV
        run = multiprocessing.get_context("spawn").Process(target=_tag_with_workers, args=(photos, index_path))
        run.start()
        assert wait_for(lambda goal=saved + more: committed_photos(index_path) >= goal, 60)
        workers = children_of(run.pid)
        os.kill(run.pid, signal.SIGKILL)
        run.join()
        assert len(workers) == 2
        assert wait_for(lambda pids=workers: not any(alive(pid) for pid in pids), 5), "a worker outlived the run"
        with closing(sqlite3.connect(index_path)) as db:
            assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        assert saved < len(exported(index_path)) < 120  # each run resumed, added photos and was cut short
        saved = len(exported(index_path))
    tag_folder(photos, index_path, ShadeTagger, version="v1", workers=2)
    tag_folder(photos, tmp_path / "whole.db", ShadeTagger, version="v1", workers=1)
    assert exported(index_path) == exported(tmp_path / "whole.db")


class AnchoredTagger(ShadeTagger):
    """ShadeTagger that records the runner anchors it was built with."""

    anchors: ClassVar[list] = []

    def __init__(self, threads: int = 0, runners: RunnerSettings | None = None) -> None:
        super().__init__(threads)
        AnchoredTagger.anchors.append(runners)


def test_faces_only_anchors_reach_the_tagger_and_read_the_photos_again(tmp_path):
    photos = tmp_path / "photos"
    write_photos(photos, [10, 20])
    AnchoredTagger.anchors = []
    assert tag_folder(photos, tmp_path / "race.db", AnchoredTagger, workers=1, progress=False).tagged == 2
    assert tag_folder(photos, tmp_path / "race.db", AnchoredTagger, workers=1, progress=False).tagged == 0
    faces_only = RunnerSettings(bodies=False)  # `jerseynum tag --faces-only`
    report = tag_folder(photos, tmp_path / "race.db", AnchoredTagger, workers=1, progress=False, anchors=faces_only)
    assert report.tagged == 2  # another way of finding runners: every photo is read again
    assert AnchoredTagger.anchors == [None, faces_only]


def test_photos_saved_by_an_interrupted_run_show_the_events_decisions_corrections_included(tmp_path):
    photos, index_path = tagged_shades(tmp_path, [10, 20])
    with PhotoIndex(index_path) as index:
        index.correct("photo0.png", "110", "remove")
    stop_at_the_second = lambda threads=0: ShadeTagger(fail_after=ShadeTagger.calls + 1)
    with pytest.raises(KeyboardInterrupt):  # a new model: both read again, Ctrl-C during the second
        tag_folder(photos, index_path, stop_at_the_second, version="v2", workers=1)
    assert exported(index_path) == {"photo0.png": [], "photo1.png": ["120"]}  # not photo0's raw 110


def test_a_photo_read_again_keeps_its_id_and_a_new_photo_never_takes_a_gone_ones(tmp_path):
    photos, index_path = tagged_shades(tmp_path, [10, 20])
    ids = lambda: {photo.path: photo.id for photo in PhotoIndex(index_path, read_only=True).photos()}
    first = ids()
    tag_folder(photos, index_path, ShadeTagger, version="v2", workers=1)  # both read again
    assert ids() == first
    (photos / "photo1.png").unlink()  # the photo with the highest id
    tag_folder(photos, index_path, ShadeTagger, version="v2", workers=1)
    cv2.imwrite(str(photos / "other.png"), np.full((24, 32, 3), 30, np.uint8))
    tag_folder(photos, index_path, ShadeTagger, version="v2", workers=1)
    assert ids()["other.png"] not in first.values()  # a link to the gone photo does not show this one


def test_decisions_made_while_another_run_saves_a_photo_are_made_again_with_it(tmp_path, monkeypatch):
    from jerseynum.photos import event
    from jerseynum.photos.index import StaleReadsError

    _, index_path = tagged_shades(tmp_path, [10])
    decide, saved = event.decide_event, []

    def decide_while_a_tag_run_saves(runners, *args):
        if not saved:  # another process saves a photo between this run's reading and its writing
            with PhotoIndex(index_path) as other:
                other.put("late.png", "0" * 64, 1, 1, (24, 32), [], None, "v1", 0.1,
                          [RunnerRead((0, 0, 32, 24), "777", 1.0, (1, 2, 30, 20))])  # fmt: skip
            saved.append(1)
        return decide(runners, *args)

    monkeypatch.setattr(event, "decide_event", decide_while_a_tag_run_saves)
    with PhotoIndex(index_path) as index:
        event.redecide(index)
        assert [n.number for n in index.photo_at("late.png").numbers] == ["777"]  # decided with it
        generation = index.event_generation()
        with PhotoIndex(index_path) as other:
            other.remove(["late.png"])
        with pytest.raises(StaleReadsError, match="another run changed its photos or corrections"):
            index.replace_decisions({}, {}, generation)
    assert exported(index_path) == {"photo0.png": ["110"]}  # nothing was saved from the stale decisions


def test_a_moved_photo_folder_is_relocated_without_reading_a_photo_and_another_folder_is_refused(tmp_path):
    photos, index_path = tmp_path / "card", tmp_path / "race.db"
    write_photos(photos, [10, 20])
    tag_folder(photos, index_path, ShadeTagger, version="v1", workers=1)
    with PhotoIndex(index_path) as index:
        index.correct("photo1.png", "4242", "add")
    copied = tmp_path / "archive"
    shutil.copytree(photos, copied)  # another machine: new modification times, the same content
    calls = ShadeTagger.calls
    with pytest.raises(IndexFileError, match="if its photos moved there, add --relocate"):
        tag_folder(copied, index_path, ShadeTagger, version="v1", workers=1)
    (tmp_path / "other").mkdir()
    cv2.imwrite(str(tmp_path / "other" / "another_race.png"), np.full((24, 32, 3), 30, np.uint8))
    with pytest.raises(IndexFileError, match="none of the 2 photos of .* is under .*other: not the folder"):
        tag_folder(tmp_path / "other", index_path, ShadeTagger, version="v1", workers=1, relocate=True)
    report = tag_folder(copied, index_path, ShadeTagger, version="v1", workers=1, relocate=True)
    assert (report.tagged, report.unchanged, ShadeTagger.calls) == (0, 2, calls)
    assert exported(index_path) == {"photo0.png": ["110"], "photo1.png": ["120", "4242"]}
    with PhotoIndex(index_path, read_only=True) as index:
        assert index.photos_root == copied.resolve()


def test_a_correction_stays_with_its_photo_not_with_a_file_name_another_photo_takes_later(tmp_path):
    from jerseynum.photos.event import redecide

    photos, index_path = tagged_shades(tmp_path, [10, 20])
    with PhotoIndex(index_path) as index:
        index.correct("photo0.png", "4242", "add")
        index.correct("photo1.png", "120", "remove")
        redecide(index)
    assert exported(index_path) == {"photo0.png": ["110", "4242"], "photo1.png": []}
    # the next card's photos under the same names (cameras count from 0001 again); one shows 120 too
    cv2.imwrite(str(photos / "photo0.png"), np.full((24, 32, 3), 30, np.uint8))
    another_120 = np.full((24, 32, 3), 20, np.uint8)
    another_120[0, 0] = 25
    cv2.imwrite(str(photos / "photo1.png"), another_120)
    tag_folder(photos, index_path, ShadeTagger, version="v1", workers=1)
    assert exported(index_path) == {"photo0.png": ["130"], "photo1.png": ["120"]}
    with PhotoIndex(index_path) as index:  # keywords written into a photo change its hash, not the photo
        index.correct("photo0.png", "7", "add")
        size, mtime_ns, *_ = index.known()["photo0.png"]
        index.record_file("photo0.png", size, mtime_ns, "f" * 64)
        redecide(index)
    assert exported(index_path)["photo0.png"] == ["130", "7"]


def test_a_second_tag_run_on_one_index_is_refused_while_the_first_runs(tmp_path):
    from jerseynum.photos.index import tag_run_lock

    photos = tmp_path / "photos"
    write_photos(photos, [10])
    index_path = photos / "race.db"  # kept in the photo folder: its lock file is no photo either
    # as a run in another process holds it
    with tag_run_lock(index_path), pytest.raises(IndexFileError, match="another `jerseynum tag` is running on"):
        tag_folder(photos, index_path, ShadeTagger, version="v1", workers=1)
    report = tag_folder(photos, index_path, ShadeTagger, version="v1", workers=1)
    assert (report.tagged, report.skipped) == (1, {}) and (photos / "race.db-lock").exists()


def shot_at(path: Path, shade: int, taken: str, caption: str = "") -> None:
    """A JPEG of one grey shade with EXIF DateTimeOriginal `taken` ("2026:05:01 10:00:00") and an optional caption."""
    from PIL import Image

    exif = Image.Exif()
    exif.get_ifd(0x8769)[36867] = taken
    if caption:
        exif[0x010E] = caption  # ImageDescription
    Image.fromarray(np.full((24, 32, 3), shade, np.uint8)).save(path, "JPEG", quality=100, exif=exif)


def test_a_correction_survives_another_tool_editing_the_photos_metadata(tmp_path):
    from jerseynum.photos.event import redecide

    photos, index_path = tmp_path / "photos", tmp_path / "index.db"
    photos.mkdir()
    shot_at(photos / "IMG_0001.jpg", 10, "2026:05:01 10:00:00")
    tag_folder(photos, index_path, ShadeTagger, version="v1", workers=1)
    with PhotoIndex(index_path) as index:
        index.correct("IMG_0001.jpg", "4321", "add")
        redecide(index)
    shot_at(photos / "IMG_0001.jpg", 10, "2026:05:01 10:00:00", caption="finish line")  # rated, captioned
    tag_folder(photos, index_path, ShadeTagger, version="v1", workers=1)  # another file now: read again
    assert exported(index_path) == {"IMG_0001.jpg": ["110", "4321"]}
    shot_at(photos / "IMG_0001.jpg", 10, "2026:05:02 09:00:00")  # the next card's IMG_0001: another shot
    tag_folder(photos, index_path, ShadeTagger, version="v1", workers=1)
    assert exported(index_path) == {"IMG_0001.jpg": ["110"]}


def test_what_the_event_is_decided_from_counts_moves_corrections_and_the_start_list(tmp_path):
    from jerseynum.photos.startlist import Entrant

    _, index_path = tagged_shades(tmp_path, [10])
    with PhotoIndex(index_path) as index:
        changes = [index.event_generation()]
        index.move("photo0.png", "renamed.png", 1, 1)
        changes.append(index.event_generation())
        index.correct("renamed.png", "7", "add")
        changes.append(index.event_generation())
        index.set_entrants([Entrant("110")])
        changes.append(index.event_generation())
    assert changes == sorted(set(changes))  # each one a new generation: decisions made before are refused


def test_an_unreadable_photo_renamed_is_tried_again_at_its_new_name(tmp_path):
    photos = tmp_path / "photos"
    write_photos(photos, [10])
    (photos / "broken.jpg").write_bytes(b"not a jpeg")
    tag_folder(photos, tmp_path / "index.db", ShadeTagger, version="v1", workers=1)
    (photos / "broken.jpg").rename(photos / "renamed.jpg")
    report = tag_folder(photos, tmp_path / "index.db", ShadeTagger, version="v1", workers=1)
    assert (report.moved, report.tagged, report.unreadable) == (1, 1, 1)


def test_an_index_from_before_ids_were_kept_does_not_give_a_gone_photos_id_to_a_new_one(tmp_path):
    photos, index_path = tagged_shades(tmp_path, [10, 20])
    with sqlite3.connect(index_path) as db:  # as an older jerseynum left it
        db.execute("DELETE FROM meta WHERE key = 'next_photo_id'")
    with PhotoIndex(index_path, read_only=True) as index:
        gone = {photo.path: photo.id for photo in index.photos()}["photo1.png"]
    (photos / "photo1.png").unlink()
    cv2.imwrite(str(photos / "zz_new.png"), np.full((24, 32, 3), 30, np.uint8))
    tag_folder(photos, index_path, ShadeTagger, version="v1", workers=1)
    with PhotoIndex(index_path, read_only=True) as index:
        assert {photo.path: photo.id for photo in index.photos()}["zz_new.png"] != gone


def test_the_run_lock_is_one_whatever_link_names_the_index(tmp_path):
    from jerseynum.photos.index import tag_run_lock

    index_path = tmp_path / "race.db"
    index_path.write_bytes(b"")
    (tmp_path / "link.db").symlink_to(index_path)
    refused = pytest.raises(IndexFileError, match="another `jerseynum tag` is running")
    with tag_run_lock(index_path), refused, tag_run_lock(tmp_path / "link.db"):
        pass
