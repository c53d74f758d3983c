"""Video: people tracked across a rendered clip (with an occlusion and a player leaving and coming back), their
numbers read, `jerseynum video` and `demo.py --headless --output` end to end."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import pytest

import demo
from jerseynum.cli import main
from jerseynum.io import list_tracklets
from jerseynum.training.synth import render_players_clip, render_video
from tests.conftest import data_set

FRAMES = 90


@pytest.fixture(scope="module")
def players_video(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("video") / "players.mp4"
    render_players_clip(path, frames=FRAMES)
    return path


def test_video_command_tracks_the_players_and_reads_their_numbers(players_video, tmp_path):
    out = tmp_path / "result.json"
    crops = tmp_path / "tracklets"
    assert main(["video", str(players_video), "-o", str(out), "--save-tracklets", str(crops), "-q"]) == 0
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


def test_demo_headless_records_every_frame_with_the_numbers_drawn(players_video, tmp_path, capsys):
    out = tmp_path / "demo.mp4"
    assert demo.main([str(players_video), "--headless", "--output", str(out), "--no-realtime"]) == 0
    recorded = cv2.VideoCapture(str(out))
    assert int(recorded.get(cv2.CAP_PROP_FRAME_COUNT)) == FRAMES
    assert "number 23" in capsys.readouterr().out


def test_demo_reports_a_missing_source(tmp_path, capsys):
    assert demo.main([str(tmp_path / "missing.mp4"), "--headless"]) == 2
    assert "cannot open video source" in capsys.readouterr().err


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
