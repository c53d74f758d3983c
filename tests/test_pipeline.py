import cv2
import numpy as np
import pytest
import torch

from jerseynum.config import PipelineConfig
from jerseynum.pipeline import Pipeline, predict_all, sample_frames
from jerseynum.stages.legibility import build_classifier
from jerseynum.training.synth import jitter, render_number
from jerseynum.types import NO_NUMBER, Frame, Keypoints, Reading, TorsoSource, Tracklet


def number_tracklet(text: str, frames: int, seed: int = 0) -> Tracklet:
    rng = np.random.default_rng(seed)
    return Tracklet.from_images("t", [jitter(render_number(text, 36), rng) for _ in range(frames)])


def test_a_tracklet_of_number_crops_is_read_through_the_whole_crop_fallback(jersey_pipeline):
    prediction = jersey_pipeline.run(number_tracklet("27", 5))
    assert prediction.number == 27 and prediction.confidence > 0.9
    # These crops hold no body: pose is skipped, the crop is read whole, and the evidence says so.
    assert {record.torso_source for record in prediction.evidence} == {TorsoSource.WHOLE}
    assert set(prediction.timings) >= {"load", "pose", "torso", "text", "vote"}


def test_a_person_free_crop_takes_the_upper_body_fallback(jersey_pipeline):
    background = np.full((240, 100, 3), (40, 150, 40), np.uint8)  # grass: tall enough for a body, but no one
    prediction = jersey_pipeline.run(Tracklet.from_images("grass", [background]))
    assert prediction.evidence[0].torso_source is TorsoSource.UPPER_BODY
    assert prediction.number == NO_NUMBER


def test_an_empty_tracklet_is_no_number_with_a_reason(jersey_pipeline):
    prediction = jersey_pipeline.run(Tracklet("empty", []))
    assert prediction.number == NO_NUMBER and "empty" in prediction.reason


def test_a_corrupt_frame_is_recorded_and_the_others_still_vote(jersey_pipeline, tmp_path):
    cv2.imwrite(str(tmp_path / "0.png"), render_number("8", 36))
    (tmp_path / "1.jpg").write_bytes(b"garbage")
    prediction = jersey_pipeline.run(Tracklet.from_paths("t", [tmp_path / "0.png", tmp_path / "1.jpg"]))
    assert prediction.number == 8
    errors = [record.error for record in prediction.evidence if record.error]
    assert len(errors) == 1 and "1.jpg" in errors[0]


def test_a_frame_a_pixel_wide_is_recorded_as_too_small_and_the_others_still_vote(jersey_pipeline):
    sliver = np.full((100, 1, 3), 128, np.uint8)  # its upper-body box is 0 px wide
    prediction = jersey_pipeline.run(Tracklet.from_images("t", [sliver, render_number("8", 36)]))
    assert prediction.number == 8
    assert [record.error for record in prediction.evidence if record.error] == ["too small to read: 1 x 100 px"]


def test_strips_no_line_can_be_are_read_as_nothing_and_the_others_still_vote(bib_pipeline):
    # RapidOCR's line preparation failed on a 15 x 2100 strip (and stopped the whole run)
    strips = [np.full(shape, 255, np.uint8) for shape in ((15, 2100, 3), (3000, 5, 3), (2, 2000, 3))]
    prediction = bib_pipeline.run(Tracklet.from_images("t", [*strips, render_number("3638", 40)]))
    assert prediction.text == "3638"


def test_all_frames_unreadable_gives_no_number_and_says_why(jersey_pipeline, tmp_path):
    (tmp_path / "0.jpg").write_bytes(b"garbage")
    prediction = jersey_pipeline.run(Tracklet.from_paths("t", [tmp_path / "0.jpg"]))
    assert prediction.number == NO_NUMBER and prediction.reason.startswith("no readable image")


def test_long_tracklets_are_sampled_evenly_coarse_to_fine():
    frames = [Frame(str(i), i) for i in range(500)]
    sampled = sample_frames(frames, 16)
    indices = [frame.index for frame in sampled]
    assert len(indices) == 16 and sorted(indices) == [round(i * 499 / 15) for i in range(16)]
    assert indices[:2] == [0, 266] and indices[2] in (133, 399)  # the first frames already span the tracklet


def test_early_stop_reads_fewer_frames_once_the_vote_is_settled():
    tracklet = number_tracklet("42", 40)
    config = {"pose": "none", "batch_size": 4, "max_frames": 40}
    early = Pipeline(PipelineConfig(**config)).run(tracklet)
    full = Pipeline(PipelineConfig(**config, early_stop=False)).run(tracklet)
    assert early.number == full.number == 42
    assert len(early.evidence) < len(full.evidence) == 40


def test_legibility_stage_drops_frames_below_its_threshold(tmp_path):
    model = build_classifier("resnet10t")
    torch.nn.init.zeros_(model.get_classifier().weight)
    torch.nn.init.constant_(model.get_classifier().bias, -5.0)  # scores every crop ~0.007: illegible
    weights = tmp_path / "legibility.pt"
    torch.save({"arch": "resnet10t", "input_size": [64, 64], "state_dict": model.state_dict()}, weights)
    tracklet = number_tracklet("31", 3)
    prediction = Pipeline(PipelineConfig(pose="none", legibility_weights=weights)).run(tracklet)
    assert prediction.number == NO_NUMBER and prediction.reason.startswith("illegible: 3 of 3 frames")
    assert all(record.legibility is not None and record.legibility < 0.01 for record in prediction.evidence)
    assert all(record.readings == [] for record in prediction.evidence)
    lenient = Pipeline(PipelineConfig(pose="none", legibility_weights=weights, legibility_threshold=0.0))
    assert lenient.run(tracklet).number == 31


class PlainnessScorer:
    """A stand-in legibility classifier: a plain crop scores low (but above the threshold), a printed one high."""

    def score(self, crops):
        return np.array([0.75 if crop.std(axis=(0, 1)).max() > 5 else 0.0625 for crop in crops], np.float32)  # exact in float32


def test_the_most_legible_frames_are_read_first_and_the_rest_not_once_the_vote_settles():
    rng = np.random.default_rng(0)
    plain = [np.full((36, 40, 3), (200, 40, 30), np.uint8) for _ in range(6)]
    printed = [jitter(render_number("42", 36), rng) for _ in range(6)]
    tracklet = Tracklet.from_images("t", [image for pair in zip(plain, printed) for image in pair])
    pipeline = Pipeline(PipelineConfig(pose="none", read_chunk=2, first_batch=12))  # one batch: all 12 frames
    pipeline.legibility = PlainnessScorer()
    prediction = pipeline.run(tracklet)
    assert prediction.number == 42
    assert prediction.evidence and all(record.legibility == 0.75 for record in prediction.evidence)
    assert len(prediction.evidence) < 6  # settled before reading every printed frame, and no plain one


class ConstantScorer:
    def __init__(self, score: float) -> None:
        self.value = score

    def score(self, crops):
        return np.full(len(crops), self.value, np.float32)


class UnsureSeven:
    """A stand-in text stage that reads every crop whole as a 7 at 0.7."""

    def read_lines(self, crops):
        return [[Reading("7", 0.7, (0.7,), "test")] for _ in crops]

    read_regions = read_lines  # called for the crops large enough to search for lines: none here


@pytest.mark.parametrize("crop_score, number", [(0.3, NO_NUMBER), (0.9, 7)])
def test_an_unsure_reading_of_a_crop_read_whole_votes_only_from_a_crop_scored_legible(crop_score, number):
    # a road or a knee scores low and the engines still read a digit into it; a number crop scores high
    pipeline = Pipeline(PipelineConfig(pose="none"))
    pipeline.legibility, pipeline.text = ConstantScorer(crop_score), UnsureSeven()
    prediction = pipeline.run(Tracklet.from_images("t", [np.full((36, 40, 3), 128, np.uint8)]))
    assert prediction.number == number
    assert [r.crop_legibility for r in prediction.evidence[0].readings] == [pytest.approx(crop_score)]


def test_a_tracklet_with_nothing_legible_stops_after_illegible_stop_frames():
    tracklet = Tracklet.from_images("blank", [np.full((36, 40, 3), (200, 40, 30), np.uint8)] * 100)
    pipeline = Pipeline(PipelineConfig(pose="none", illegible_stop=20))
    pipeline.legibility = PlainnessScorer()
    pipeline.config.legibility_threshold = 0.1  # the scorer's 0.0625 for a plain crop is now illegible
    prediction = pipeline.run(tracklet)
    assert prediction.number == NO_NUMBER and prediction.reason.startswith("illegible")
    assert len(prediction.evidence) == 24  # batches of 8 and 16: the first batch boundary past 20 frames


def test_two_worker_processes_predict_what_one_process_does():
    tracklets = [Tracklet(text, number_tracklet(text, 3, seed).frames) for seed, text in enumerate(["7", "23", "58", "99"])]
    config = PipelineConfig(pose="none", legibility=False)
    alone = {p.tracklet_id: (p.number, p.text) for p, _ in predict_all(config, tracklets, workers=1)}
    shared = {p.tracklet_id: (p.number, p.text) for p, _ in predict_all(config, tracklets, workers=2)}
    assert shared == alone and sorted(number for number, _ in alone.values()) == [7, 23, 58, 99]


class LineOfHeight:
    """A stand-in text stage: every large crop shows one confident "1" on a line `share` of the crop's height."""

    def __init__(self, share: float) -> None:
        self.share = share

    def read_lines(self, crops):
        return [[] for _ in crops]

    def read_regions(self, crops):
        return [[Reading("1", 0.99, (0.99,), "fake", (0, 0, crop.shape[1], round(self.share * crop.shape[0])))]
                for crop in crops]  # fmt: skip


POSED = Keypoints({"left_shoulder": (30, 40, 1.0), "right_shoulder": (70, 40, 1.0), "left_hip": (35, 120, 1.0),
                   "right_hip": (65, 120, 1.0)})  # fmt: skip


@pytest.mark.parametrize("share, size, number", [(1.0, (200, 100), NO_NUMBER), (0.5, (200, 100), 1), (1.0, (60, 80), 1)])
def test_a_line_as_tall_as_a_posed_torso_is_the_torso_not_a_number(share, size, number):
    """A dark shirt or a blurred block detected as one "line" reads as a confident 1; a number crop read whole
    (not posed) may be all number."""
    keypoints = POSED if size[0] > 100 else None
    frame = Frame("f", 0, np.full((*size, 3), 30, np.uint8), keypoints=keypoints)
    pipeline = Pipeline(PipelineConfig(pose="none", legibility=False, line_legibility=False))
    pipeline.text = LineOfHeight(share)
    prediction = pipeline.run(Tracklet("t", [frame]))
    assert prediction.evidence[0].torso_source is (TorsoSource.POSE if keypoints else TorsoSource.WHOLE)
    assert prediction.number == number
