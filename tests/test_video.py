"""Video: people tracked across a rendered clip (with an occlusion and a player leaving and coming back), their
numbers read, `jerseynum video` and `demo.py --headless --output` end to end; honest endings for a video cut
short, one without frames, a camera that is not there and a recording that cannot be or was not written."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import time
from concurrent.futures import Future
from dataclasses import replace
from functools import partial
from pathlib import Path

import cv2
import numpy as np
import pytest

import demo
from jerseynum.cli import main
from jerseynum.config import PipelineConfig
from jerseynum.io import VideoError, list_tracklets
from jerseynum.parallel import WorkerProcess
from jerseynum.pipeline import Pipeline, build_pipeline
from jerseynum.training.synth import render_player, render_players_clip, render_video
from jerseynum.types import FrameEvidence, Keypoints, PersonBox, Prediction, Reading, TorsoSource, Tracklet
from jerseynum.video import live, tracking
from jerseynum.video.tracking import read_video
from tests.conftest import REPO, data_set
from tests.test_parallel import alive, spawned_children, wait_for

FRAMES = 90
CLIP_FRAMES = 60


@pytest.fixture(scope="module")
def players_video(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("video") / "players.mp4"
    render_players_clip(path, frames=FRAMES)
    return path


def test_video_command_tracks_the_players_and_reads_their_numbers(players_video, tmp_path):
    out = tmp_path / "result.json"
    crops = tmp_path / "tracklets"
    # drawn players: the person detector does not see them, background subtraction does (fixed camera)
    args = ["video", str(players_video), "--detector", "motion", "-o", str(out), "--save-tracklets", str(crops), "-q"]
    assert main(args) == 0
    result = json.loads(out.read_text())
    assert result["frames"] == FRAMES
    assert sorted(person["number"] for person in result["people"]) == [7, 23, 58]
    # player 7 walks out and comes back: seen before and after the halfway point, as one person
    seven = next(person for person in result["people"] if person["number"] == 7)
    assert seven["first_frame"] < FRAMES // 2 < seven["last_frame"]
    for track in result["tracks"]:
        assert track["number"] in (7, 23, 58, -1) and len(track["boxes"]) >= 1
        assert all(len(box) == 5 and box[1] < box[3] and box[2] < box[4] for box in track["boxes"])
    # the crops are in SoccerNet's layout: inference.py reads them back
    tracklets = list_tracklets(crops)
    assert len(tracklets) == len(result["tracks"]) and all(t.frames for t in tracklets)


def test_saved_tracklets_never_mix_with_an_earlier_runs_and_a_failed_write_still_shows_the_numbers(
        players_video, tmp_path, monkeypatch, caplog, capsys):  # fmt: skip
    crops = tmp_path / "tracklets"
    (crops / "1").mkdir(parents=True)
    (crops / "1" / "23.jpg").write_bytes(b"an earlier run's crop")
    args = ["video", str(players_video), "--detector", "motion", "-o", str(tmp_path / "r.json"), "-q"]
    assert main([*args, "--save-tracklets", str(crops)]) == 2 and "is not empty" in caplog.text
    assert main([*args, "--save-tracklets", str(crops / "1" / "23.jpg")]) == 2 and "23.jpg is a file" in caplog.text
    assert main([*args[:4], "-o", str(crops / "1" / "23.jpg" / "r.json")]) == 2
    assert "23.jpg is a file, not a folder" in caplog.text
    assert main(["video", str(tmp_path), "-o", str(tmp_path / "r.json")]) == 2
    assert "a folder, not a video file" in caplog.text

    def full_disk(path, data):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("jerseynum.cli.write_json_atomic", full_disk)
    assert main(args) == 1 and "No space left on device; nothing was written" in caplog.text
    out = capsys.readouterr().out
    assert "->" not in out and out.count("  number ") == 3


def test_closing_a_reader_whose_last_read_failed_still_stops_its_process():
    class Reads:  # the reads' process, as VideoReader drives it
        closed = False

        def close(self) -> None:
            self.closed = True

    failed = Future()
    failed.set_exception(RuntimeError("the read broke"))
    reader = tracking.VideoReader.__new__(tracking.VideoReader)  # only what close() touches
    reader._reads, reader._pending = Reads(), (tracking.Track(1, 0, 0), failed)
    with pytest.raises(RuntimeError, match="the read broke"):
        reader.close()
    assert reader._reads.closed


def test_the_video_commands_detectors_are_the_trackers():
    from jerseynum.cli import build_parser

    video = build_parser()._subparsers._group_actions[0].choices["video"]
    detector = next(action for action in video._actions if action.dest == "detector")
    assert (sorted(detector.choices), detector.default) == (sorted(tracking.DETECTORS), tracking.DEFAULT_DETECTOR)


def test_a_tracklet_crop_that_cannot_be_saved_stops_the_run_with_its_name(players_video, tmp_path, monkeypatch,
                                                                         caplog):  # fmt: skip
    monkeypatch.setattr(tracking.cv2, "imwrite", lambda *args: False)  # as on a full disk
    out = tmp_path / "result.json"
    args = ["video", str(players_video), "--detector", "motion", "-o", str(out), "--save-tracklets",
            str(tmp_path / "tracklets"), "-q"]  # fmt: skip
    assert main(args) == 2
    assert "cannot write the tracklet crop" in caplog.text and not out.exists()


def test_demo_headless_records_every_frame_with_the_numbers_drawn(players_video, tmp_path, capsys):
    out = tmp_path / "demo.mp4"
    # Which numbers get read depends on how long each read takes (reads run beside the frames, the file plays at its
    # rate), so which ones, and whether a half-hidden 58 is once read 5, is left to the benchmarks.
    args = [str(players_video), "--detector", "motion", "--headless", "--output", str(out), "--no-realtime"]
    assert demo.main(args) == 0
    recorded = cv2.VideoCapture(str(out))
    assert int(recorded.get(cv2.CAP_PROP_FRAME_COUNT)) == FRAMES
    shown = {int(n) for n in re.findall(r"number (\d+)", capsys.readouterr().out)}
    assert shown & {7, 23, 58}


def test_demo_reports_a_missing_source(tmp_path, capsys):
    assert demo.main([str(tmp_path / "missing.mp4"), "--headless"]) == 2
    assert "no such video file" in capsys.readouterr().err


def write_clip(path: Path, frames: int = CLIP_FRAMES) -> Path:
    """A small clip with nobody in it (each frame a shade brighter, wider than tall: no person-shaped blob), so
    that only reading and recording are exercised, in a fraction of a second."""
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 25, (160, 120))
    for index in range(frames):
        frame = np.full((120, 160, 3), 40 + 3 * index, np.uint8)
        cv2.putText(frame, str(index), (40, 70), cv2.FONT_HERSHEY_SIMPLEX, 1.2, (255, 255, 255), 2)
        writer.write(frame)
    writer.release()
    return path


def cut_in_half(path: Path) -> Path:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    return write_clip(tmp_path_factory.mktemp("clip") / "clip.avi")


@pytest.fixture(scope="module")
def cut_clip(tmp_path_factory) -> Path:
    """An AVI cut in half: its header still announces every frame, the frames stop where the bytes do (measured
    with this OpenCV: 25 of 60). An MP4 cut in half does not open at all (its index is at the end)."""
    path = cut_in_half(write_clip(tmp_path_factory.mktemp("cut") / "cut.avi"))
    capture = cv2.VideoCapture(str(path))
    assert int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) == CLIP_FRAMES
    return path


def frame_count(path: Path) -> int:
    capture, count = cv2.VideoCapture(str(path)), 0
    while capture.read()[0]:
        count += 1
    return count


@pytest.mark.parametrize("name", ["x.txt", "x.webm", "no-suffix", "under-a-file/x.mp4", "folder.mp4"])
def test_demo_refuses_a_recording_it_cannot_write_before_reading_a_frame(name, tmp_path, capsys):
    (tmp_path / "under-a-file").write_text("")
    (tmp_path / "folder.mp4").mkdir()
    before = sorted(tmp_path.rglob("*"))
    # the source does not exist: had the recording been accepted, the error would be about the source
    assert demo.main([str(tmp_path / "never-read.avi"), "--headless", "--output", str(tmp_path / name)]) == 2
    assert "cannot record to" in capsys.readouterr().err
    assert sorted(tmp_path.rglob("*")) == before


def zero_byte(path: Path) -> Path:
    path.write_bytes(b"")
    return path


def header_only(path: Path) -> Path:
    cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 25, (160, 120)).release()
    return path


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda folder: zero_byte(folder / "empty.mp4"), "not a readable video"),
        (lambda folder: header_only(folder / "header.mp4"), "not a readable video"),
        (lambda folder: header_only(folder / "header.avi"), "no frame could be read"),  # opens, then nothing
        (lambda folder: cut_in_half(write_clip(folder / "cut.mp4")), "not a readable video"),
    ],
    ids=["0-byte mp4", "header-only mp4", "header-only avi", "mp4 cut in half"],
)
def test_a_video_without_a_readable_frame_is_an_error_and_nothing_is_recorded(make, message, tmp_path, capsys):
    video, recording = make(tmp_path), tmp_path / "out.mp4"
    assert demo.main([str(video), "--headless", "--output", str(recording)]) == 2
    captured = capsys.readouterr()
    assert message in captured.err and "recorded" not in captured.out
    assert not recording.exists()
    with pytest.raises(VideoError, match=message):
        read_video(str(video), progress=False)


def test_a_video_cut_short_is_read_to_where_it_breaks_and_reported_with_both_counts(cut_clip, tmp_path, capsys):
    result = read_video(str(cut_clip), progress=False)
    read = result["frames"]
    assert 0 < read < CLIP_FRAMES and result["frames_expected"] == CLIP_FRAMES
    assert result["warning"] == (f"{cut_clip}: read {read} of the {CLIP_FRAMES} frames it announces"
                                 " (the file is cut short or corrupt)")  # fmt: skip
    # `jerseynum video` writes what was read, and its exit status says it is partial
    out = tmp_path / "result.json"
    assert main(["video", str(cut_clip), "-o", str(out), "-q"]) == 1
    assert json.loads(out.read_text())["warning"] == result["warning"]
    recording = tmp_path / "demo.avi"
    assert demo.main([str(cut_clip), "--headless", "--output", str(recording), "--no-realtime"]) == 1
    captured = capsys.readouterr()
    assert f"warning: {result['warning']}" in captured.err
    assert f"recorded {recording}" in captured.out and frame_count(recording) == read


def test_a_whole_video_has_no_warning(clip):
    result = read_video(str(clip), progress=False)
    assert (result["frames"], result["frames_expected"], result["warning"]) == (CLIP_FRAMES, CLIP_FRAMES, None)


def test_a_max_frames_stop_is_not_a_shortfall(cut_clip, capsys):
    assert demo.main([str(cut_clip), "--headless", "--max-frames", "5"]) == 0
    assert "warning" not in capsys.readouterr().err


def test_a_file_plays_at_its_own_rate_not_faster(clip):
    """Reads run beside the frames, so the loop alone outruns a 25 FPS file: it waits for each frame's time."""
    report = live.run_demo(str(clip), detector="motion", headless=True, realtime=False)
    assert report.frames_shown == CLIP_FRAMES and report.frames_dropped == 0
    assert report.seconds >= (CLIP_FRAMES - 1) / 25 and report.fps <= 25.5 and report.waited > 0


def test_frames_dropped_to_keep_pace_count_as_read_and_the_recording_keeps_the_files_time(clip, tmp_path,
                                                                                          monkeypatch):  # fmt: skip
    process = live.VideoReader.process

    def slow_process(self, frame, index):  # slower than the clip's 25 FPS: realtime play must drop frames
        time.sleep(0.06)
        return process(self, frame, index)

    monkeypatch.setattr(live.VideoReader, "process", slow_process)
    recording = tmp_path / "demo.avi"
    report = live.run_demo(str(clip), headless=True, realtime=True, output=recording)
    assert report.frames_dropped > 0 and report.frames_shown + report.frames_dropped == CLIP_FRAMES
    assert (report.frames_read, report.frames_expected, report.warning) == (CLIP_FRAMES, CLIP_FRAMES, None)
    assert frame_count(recording) == CLIP_FRAMES  # a dropped frame is recorded as the last one drawn


@pytest.mark.parametrize("headless", [[], ["--headless"]], ids=["window", "headless"])
def test_a_camera_that_is_not_there_is_named_and_no_window_is_mentioned(headless, capsys):
    assert demo.main(["9", *headless]) == 2
    message = capsys.readouterr().err
    assert "cannot open camera 9 (is it connected?)" in message and "window" not in message


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the display check is for X11 and Wayland")
def test_without_a_display_the_demo_says_so_before_a_frame_is_read(clip, monkeypatch, capsys):
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    assert demo.main([str(clip)]) == 2
    assert "cannot open a window (no display" in capsys.readouterr().err


def test_a_recording_the_writer_does_not_open_is_an_error(clip, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(live, "RECORDING_SUFFIXES", (*live.RECORDING_SUFFIXES, ".webm"))  # mp4v cannot go in WebM
    assert demo.main([str(clip), "--headless", "--output", str(tmp_path / "out.webm")]) == 1
    captured = capsys.readouterr()
    assert "the video writer does not open" in captured.err and "recorded" not in captured.out


def test_a_recording_that_was_not_written_is_an_error(clip, tmp_path, monkeypatch, capsys):
    class WriterThatWritesNothing:
        def __init__(self, *args) -> None: ...
        def isOpened(self) -> bool:
            return True

        def write(self, frame) -> None: ...
        def release(self) -> None: ...

    monkeypatch.setattr(live.cv2, "VideoWriter", WriterThatWritesNothing)
    recording = tmp_path / "out.mp4"
    recording.write_bytes(b"an older recording")  # is not taken for this run's
    assert demo.main([str(clip), "--headless", "--output", str(recording)]) == 1
    captured = capsys.readouterr()
    assert f"the recording {recording} was not written" in captured.err and "recorded" not in captured.out


@pytest.mark.data
def test_real_runners_crossing_a_background_are_read_by_their_bibs(tmp_path, capsys):
    root = data_set("rbnr_runner_crops")
    labels = json.loads((root / "labels.json").read_text())
    chosen = ["set1_01_0", "set1_05_0"]  # two runners with clear bibs; the first leaves and comes back
    sprites = [cv2.imread(str(root / "tracklets" / runner / "0.jpg")) for runner in chosen]
    render_video(tmp_path / "runners.mp4", sprites, size=(960, 540), frames=FRAMES)
    out = tmp_path / "result.json"
    assert main(["video", str(tmp_path / "runners.mp4"), "--mode", "bib", "-o", str(out), "-q"]) == 0
    people = {person["number"]: person for person in json.loads(out.read_text())["people"]}
    assert {labels[runner] for runner in chosen} <= set(people)
    first = people[labels[chosen[0]]]
    assert first["first_frame"] < FRAMES // 2 < first["last_frame"]
    recorded = tmp_path / "demo.mp4"
    args = [str(tmp_path / "runners.mp4"), "--mode", "bib", "--headless", "--output", str(recorded), "--no-realtime"]
    assert demo.main(args) == 0
    assert int(cv2.VideoCapture(str(recorded)).get(cv2.CAP_PROP_FRAME_COUNT)) == FRAMES
    assert f"number {labels[chosen[0]]}" in capsys.readouterr().out


def test_background_subtraction_tracks_the_same_runners_on_a_fixed_camera(tmp_path):
    """The same real runners crossing a background, found by motion instead of the default person detector."""
    root = data_set("rbnr_runner_crops")
    labels = json.loads((root / "labels.json").read_text())
    chosen = ["set1_01_0", "set1_05_0"]
    sprites = [cv2.imread(str(root / "tracklets" / runner / "0.jpg")) for runner in chosen]
    render_video(tmp_path / "runners.mp4", sprites, size=(960, 540), frames=FRAMES)
    out = tmp_path / "result.json"
    assert main(["video", str(tmp_path / "runners.mp4"), "--mode", "bib", "--detector", "motion", "-o", str(out),
                 "-q"]) == 0  # fmt: skip
    people = {person["number"]: person for person in json.loads(out.read_text())["people"]}
    assert {labels[runner] for runner in chosen} <= set(people)


def test_keypoints_from_the_detector_feed_the_torso_stage_and_nobody_is_posed_twice(monkeypatch):
    box = (200, 40, 300, 320)
    points = {"left_shoulder": (285, 100, 0.9), "right_shoulder": (215, 100, 0.9), "left_hip": (280, 210, 0.9),
              "right_hip": (220, 210, 0.9)}  # fmt: skip

    class PosingDetector:  # a detector whose model gives keypoints, in the frame's pixels
        def detect(self, frame):
            return [PersonBox(box, 0.9, Keypoints(points))]

    class NoPose:
        def estimate(self, images):
            raise AssertionError("the pose stage ran on a person the detector had posed")

    monkeypatch.setitem(tracking.DETECTORS, "posing", PosingDetector)
    reader = tracking.VideoReader(detector="posing")
    reader.pipeline.pose = NoPose()
    read = []
    run = reader.pipeline.run
    monkeypatch.setattr(reader.pipeline, "run", lambda tracklet: read.append(run(tracklet)) or read[-1])
    frame = np.full((360, 640, 3), 90, np.uint8)
    for index in range(tracking.MIN_TRACK_FRAMES + 1):
        reader.process(frame, index)
    assert read, "the track was never read"
    evidence = read[0].evidence[0]
    assert evidence.torso_source is TorsoSource.POSE
    # the torso box comes from the detector's keypoints moved into the crop (shoulders at x 15-85, y 60)
    x1, y1, x2, y2 = evidence.torso_box
    assert x1 < 15 and x2 > 85 and y1 <= 60 and y2 >= 170  # hips at y 170


def test_a_track_is_read_at_most_every_read_every_frames(monkeypatch):
    class StillPerson:
        def detect(self, frame):
            return [PersonBox((200, 40, 300, 320), 0.9)]

    monkeypatch.setitem(tracking.DETECTORS, "still", StillPerson)
    reader = tracking.VideoReader(detector="still", read_every=5)
    frame = np.full((360, 640, 3), 90, np.uint8)  # nothing to read: the track never settles
    read_on = []
    run = reader.pipeline.run
    monkeypatch.setattr(reader.pipeline, "run", lambda tracklet: read_on.append(tracklet.frames[0].index) or run(tracklet))
    for index in range(15):
        reader.process(frame, index)
    # shown from frame 1 (a track starts on two frames in a row), read once seen in 3 frames, then every 5th
    assert read_on == [3, 8, 13]


def test_background_reads_never_hold_up_a_frame_and_read_the_crop_as_taken(monkeypatch):
    """The live demo's reads run beside the frames: frames go on while a read is in flight, the crop read is the
    one taken even though the caller draws on its frame, and the read's number reaches the track."""
    submitted: list[tuple[Tracklet, Future]] = []

    class HeldReads:  # stands in for the reads' process: a read is done when the test says so
        def __init__(self, factory, work):
            pass

        def submit(self, tracklet):
            submitted.append((tracklet, Future()))
            return submitted[-1][1]

        def close(self):
            pass

    class StillPerson:
        def detect(self, frame):
            return [PersonBox((200, 40, 300, 320), 0.9)]

    monkeypatch.setattr(tracking, "WorkerProcess", HeldReads)
    monkeypatch.setitem(tracking.DETECTORS, "still", StillPerson)
    reader = tracking.VideoReader(detector="still", background=True)
    for index in range(20):
        frame = np.full((360, 640, 3), 90, np.uint8)
        tracks = reader.process(frame, index)
        frame[:] = 0  # the caller draws on its frame once `process` returns
    assert len(submitted) == 1 and tracks[0].number == -1  # one read in flight, the frames went on
    tracklet, future = submitted[0]
    assert tracklet.frames[0].image.mean() == 90
    reading = Reading("23", 0.99, (0.99, 0.99), "test")
    future.set_result(Prediction(tracklet.id, 23, 0.99, "test", "23", evidence=[FrameEvidence("crop", 0, readings=[reading])]))  # fmt: skip
    assert reader.process(np.full((360, 640, 3), 90, np.uint8), 20)[0].number == 23
    assert len(submitted) == 2  # the next read started on the same frame


def test_a_read_in_its_own_process_gives_what_it_gives_here():
    """`parallel.WorkerProcess` as the live demo uses it, spawned from a process whose models already ran."""
    config = PipelineConfig(mode="jersey")
    tracklet = Tracklet.from_images("player", [render_player("23")])
    here = Pipeline(config).run(tracklet)
    worker = WorkerProcess(partial(build_pipeline, config), Pipeline.run)
    try:
        there = worker.submit(tracklet).result(timeout=120)
    finally:
        worker.close()
    assert (there.number, there.text, there.confidence) == (here.number, here.text, here.confidence)


def test_a_person_cut_by_the_frames_side_is_read_once_wholly_in_view(monkeypatch):
    """A bib cut by the left or right edge reads as a fragment: wait until the person is wholly in view."""
    lefts = [0, 0, 0, 0, 0, 30, 30, 30]  # entering from the left edge, then wholly in view

    class EnteringPerson:
        def __init__(self):
            self.calls = 0

        def detect(self, frame):
            x1 = lefts[min(self.calls, len(lefts) - 1)]
            self.calls += 1
            return [PersonBox((x1, 40, x1 + 100, 359), 0.9)]  # the bottom edge (legs cut) does not count

    monkeypatch.setitem(tracking.DETECTORS, "entering", EnteringPerson)
    reader = tracking.VideoReader(detector="entering", read_every=1)
    frame = np.full((360, 640, 3), 90, np.uint8)
    read_on = []
    run = reader.pipeline.run
    monkeypatch.setattr(reader.pipeline, "run", lambda tracklet: read_on.append(tracklet.frames[0].index) or run(tracklet))
    for index in range(len(lefts)):
        reader.process(frame, index)
    assert read_on and read_on[0] == 5


def _scripted_reader(monkeypatch, texts: list[str], confidence: float, **options) -> tracking.VideoReader:
    """A bib-mode `VideoReader` of one person standing still, read every frame, whose crops read `texts` in turn."""

    class StillPerson:
        def detect(self, frame):
            return [PersonBox((200, 40, 300, 320), 0.9)]

    monkeypatch.setitem(tracking.DETECTORS, "still", StillPerson)
    reader = tracking.VideoReader(PipelineConfig(mode="bib"), detector="still", read_every=1, **options)
    reads = iter(texts)

    def read(tracklet):
        text = next(reads)
        readings = [Reading(text, confidence, (confidence,) * len(text), "test")]
        return Prediction(tracklet.id, int(text), confidence, "test", text,
                          evidence=[FrameEvidence("crop", 0, readings=readings)])  # fmt: skip

    monkeypatch.setattr(reader.pipeline, "run", read)
    return reader


def test_a_track_leader_that_a_longer_reading_contains_is_taken_for_a_fragment(monkeypatch):
    """A runner moving behind others shows 1104 of bib 11040 in most reads and all of it in one: no number is shown
    until the whole one leads; a leader no longer reading contains is shown."""
    reader = _scripted_reader(monkeypatch, ["1104", "11040", "1104", "11040", "11040", "11040"], 0.99)
    frame = np.full((360, 640, 3), 90, np.uint8)
    shown = [[track.number for track in reader.process(frame, index)] for index in range(tracking.MIN_TRACK_FRAMES + 6)]
    # read from the 4th frame on: 1104; then 1104 leads or ties with 11040; then 11040 leads
    assert shown[tracking.MIN_TRACK_FRAMES :] == [[1104], [-1], [-1], [-1], [11040], [11040]]


@pytest.mark.parametrize("settle, shown_last, reads", [(True, 1317, 3), (False, -1, 8)])
def test_only_the_live_reading_stops_at_a_settled_vote(monkeypatch, settle, shown_last, reads):
    """A bib folded at its edge reads 1317 at 1.0 in its first three crops, which settles the vote; later crops
    show 11317 now and then. The live demo, short of reads, stops at the settled vote; `read_video` (settle=False)
    reads on, and the longer reading unmasks the piece."""
    reader = _scripted_reader(monkeypatch, ["1317"] * 3 + ["11317", "1317"] * 3, 1.0, settle=settle)
    frame = np.full((360, 640, 3), 90, np.uint8)
    for index in range(tracking.MIN_TRACK_FRAMES + 8):
        shown = [track.number for track in reader.process(frame, index)]
    assert shown == [shown_last] and reader.tracks[1].frames_read == reads


def _track(track_id: int, texts: list[str]) -> tracking.Track:
    readings = [Reading(text, 0.99, (0.99,) * len(text), "test") for text in texts]
    track = tracking.Track(track_id, 0, 10, boxes=[(0, (0, 0, 10, 10))], reads=[(0, readings)])
    track.number = int(texts[0])
    return track


def test_a_bib_read_as_a_piece_of_another_runners_bib_is_no_runner_of_its_own():
    """Over the whole video, a number that another track's at least as strongly read bib contains is its piece."""
    reader = tracking.VideoReader(PipelineConfig(mode="bib"), detector="motion")
    reader.tracks = {1: _track(1, ["11040"] * 3), 2: _track(2, ["1104"] * 2), 3: _track(3, ["2001"]),
                     4: _track(4, ["20"] * 3)}  # fmt: skip
    assert reader.fragments() == {2: "11040"}  # 20 was read more surely than the 2001 that contains it
    results = reader.results()
    assert {t["track"]: t["number"] for t in results["tracks"]} == {1: 11040, 2: -1, 3: 2001, 4: 20}
    assert results["tracks"][1]["fragment_of"] == "11040"
    assert [person["number"] for person in results["people"]] == [11040, 2001, 20]


def test_a_bib_read_at_the_boxs_side_still_counts_in_full_against_its_pieces():
    """A track's own vote drops the reads of its bib at the box's side once a read clear of it votes, but the bib
    was read there all the same: a piece read as often elsewhere is still that bib's piece."""
    reader = tracking.VideoReader(PipelineConfig(mode="bib"), detector="motion")
    whole = _track(1, ["3638"] * 4)
    whole.reads = [(0, [replace(r, box=(0 if i < 2 else 30, 200, 100, 260), line_legibility=0.5, at_side=i < 2)
                        for i, r in enumerate(whole.readings)])]  # fmt: skip
    reader.tracks = {1: whole, 2: _track(2, ["36"] * 3)}
    assert reader.vote.tally(whole.readings) == {"3638": pytest.approx(1.98)}  # the side reads do not vote ...
    assert reader.fragments() == {2: "3638"}  # ... but the bib was read 4 times, its piece 3


def test_a_piece_of_a_bib_that_no_track_won_is_still_a_piece():
    """In a crowd a track mixes people: it reads the runner's 20462 twice on lines the vote doubts, and its vote
    goes to another runner's 20480. Another track reads only 0462. The bib is in view all the same."""
    reader = tracking.VideoReader(PipelineConfig(mode="bib"), detector="motion")
    crowd = _track(1, ["20480"] * 3 + ["20462"] * 2)
    crowd.reads = [(0, [replace(r, line_legibility=0.95 if r.text == "20480" else 0.1) for r in crowd.readings])]
    reader.tracks = {1: crowd, 2: _track(2, ["0462"] * 2), 3: _track(3, ["0462"] * 3)}
    assert reader.vote.decide(crowd.readings).text == "20480"  # 20462 does not vote here ...
    assert reader.fragments() == {2: "20462"}  # ... but it was read twice, more surely than track 2's piece
    assert reader.results()["tracks"][1]["fragment_of"] == "20462"


def test_the_longer_bibs_a_piece_lies_in_add_up():
    """A hidden first digit is read two ways: 20462 and 30462, twice each, together outweigh three reads of 0462,
    where neither does alone. 3046, read four times, outweighs the one longer bib that contains it."""
    reader = tracking.VideoReader(PipelineConfig(mode="bib"), detector="motion")
    reader.tracks = {1: _track(1, ["20462"] * 2), 2: _track(2, ["30462"] * 2), 3: _track(3, ["0462"] * 3),
                     4: _track(4, ["3046"] * 4)}  # fmt: skip
    pieces = reader.fragments()
    assert set(pieces) == {3} and pieces[3] in ("20462", "30462")


def test_jersey_numbers_inside_longer_ones_are_players_of_their_own():
    reader = tracking.VideoReader(PipelineConfig(mode="jersey"), detector="motion")
    reader.tracks = {1: _track(1, ["17"] * 3), 2: _track(2, ["7"])}
    assert reader.fragments() == {}
    assert [person["number"] for person in reader.results()["people"]] == [17, 7]


@pytest.mark.parametrize(
    "texts, numbers",
    [
        (["3638"] * 4 + ["3621"] * 4, [3638, 3621]),  # the track passed on to a neighbour: two people
        (["3638"] * 4 + ["3621"] * 2, [3638]),  # the second number read too little to be a person of its own
        (["3638"] * 4 + ["638"] * 4, [3638]),  # a piece of the first: the same bib cut by an arm
        (["3638"] * 3 + ["3621", "3638"] * 2 + ["3621"] * 2, [3638]),  # reads that mix two people: one track
        # a bib that a hand covers and uncovers reads 3111 and 311 in turn: no settled vote, no person of its own
        (["3111", "311", "3111", "3111", "311", "3111"] + ["31577"] * 8, [31577]),
    ],
)
def test_a_track_that_reads_one_number_then_another_is_two_people(monkeypatch, texts, numbers):
    reader = _scripted_reader(monkeypatch, texts, 1.0, settle=False)
    frame = np.full((360, 640, 3), 90, np.uint8)
    frames = range(tracking.MIN_TRACK_FRAMES + len(texts))  # read from the 4th frame on, one crop a frame
    for index in frames:
        reader.process(frame, index)
    tracks = sorted(reader.tracks.values(), key=lambda t: t.first_frame)
    assert [track.number for track in tracks] == numbers
    assert sum(track.frames_read for track in tracks) == len(texts)
    if len(tracks) == 2:  # the first person's boxes end where the second's begin, none lost
        first, second = tracks
        swap = tracking.MIN_TRACK_FRAMES + 4  # the frame of the first read of 3621
        assert first.boxes[-1][0] == swap - 1 and [frame for frame, _ in second.boxes] == list(frames[swap:])
        assert first.id != second.id and second.id == 1  # the tracker's track goes on with the second person


def test_the_first_persons_saved_crops_go_with_their_part_of_a_cut_track(monkeypatch, tmp_path):
    texts = ["3638"] * 4 + ["3621"] * 4
    reader = _scripted_reader(monkeypatch, texts, 1.0, settle=False, save_tracklets=tmp_path)
    frame = np.full((360, 640, 3), 90, np.uint8)
    for index in range(tracking.MIN_TRACK_FRAMES + len(texts)):
        reader.process(frame, index)
    first, second = sorted(reader.tracks.values(), key=lambda t: t.first_frame)
    for track in (first, second):  # every box's crop is saved once, in its own person's folder
        saved = sorted(int(path.stem) for path in (tmp_path / str(track.id)).glob("*.jpg"))
        assert saved == [frame for frame, _ in track.boxes]


def test_sigterm_stops_the_demo_as_ctrl_c_does_with_the_recording_closed_whole(players_video, tmp_path):
    recording = tmp_path / "demo.avi"
    run = subprocess.Popen([sys.executable, "demo.py", str(players_video), "--detector", "motion", "--headless",
                            "--output", str(recording), "--no-realtime"], cwd=REPO, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True)  # fmt: skip
    try:
        assert wait_for(lambda: recording.is_file() and recording.stat().st_size > 0, 120)
        run.send_signal(signal.SIGTERM)  # the clip plays at its rate: seconds of it are left
        _, stderr = run.communicate(timeout=60)
    finally:
        run.kill()
    assert run.returncode == 0 and "stopped" in stderr and "Traceback" not in stderr, stderr
    assert 0 < int(cv2.VideoCapture(str(recording)).get(cv2.CAP_PROP_FRAME_COUNT)) < FRAMES  # a whole file


def test_sigterm_while_the_demo_builds_its_models_is_one_line_and_leaves_no_process(players_video):
    run = subprocess.Popen([sys.executable, "demo.py", str(players_video), "--headless"], cwd=REPO,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
    try:
        # the reading process is up, building its models (not a helper a library runs while imported)
        assert wait_for(lambda: spawned_children(run.pid), 120)
        children = spawned_children(run.pid)
        run.send_signal(signal.SIGTERM)
        _, stderr = run.communicate(timeout=60)
    finally:
        run.kill()
    assert run.returncode == 130 and "demo.py: interrupted" in stderr and "Traceback" not in stderr, stderr
    assert wait_for(lambda: not any(alive(pid) for pid in children), 30)
