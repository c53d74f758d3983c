"""benchmarks/minus_one.py's data building on drawn images: each degradation hides a rendered number and keeps
every pixel outside the bib box; the multi-frame tracklets hold what they promise."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from benchmarks.minus_one import illegible_runners, multi_frame_tracklets, outcome
from jerseynum.training.degrade import DEGRADATIONS, degrade, padded, seeded_rng
from jerseynum.training.rbnr import Runner, in_crop
from jerseynum.training.synth import render_number
from jerseynum.types import NO_NUMBER, Mode

BOX = (40, 80, 140, 120)  # a bib 100 x 40 px in a 160 x 200 runner crop


def runner_crop(number: str) -> np.ndarray:
    """A smoothly shaded shirt with `number` printed in BOX, and a stripe of sponsor print above it."""
    noise = np.random.default_rng(0).integers(40, 140, (200, 160, 3)).astype(np.uint8)
    crop = cv2.GaussianBlur(noise, (0, 0), 4)  # cloth shading: no detail at the scale of a digit's stroke
    crop[30:60, 20:140] = cv2.resize(render_number("SPONSOR", 24, (30, 30, 30), (0, 200, 255)), (120, 30))
    x1, y1, x2, y2 = BOX
    bib = render_number(number, 36, (255, 255, 255), (255, 0, 0))
    crop[y1:y2, x1:x2] = cv2.resize(bib, (x2 - x1, y2 - y1), interpolation=cv2.INTER_AREA)
    return crop


def stroke_detail(image: np.ndarray, box: tuple[int, int, int, int]) -> float:
    """Spread of the grey levels at the scale of a digit's stroke (the image minus its blur) inside `box`."""
    grey = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY).astype(np.float32)
    x1, y1, x2, y2 = box
    return float((grey - cv2.GaussianBlur(grey, (0, 0), 2))[y1:y2, x1:x2].std())


@pytest.mark.parametrize("kind", DEGRADATIONS)
def test_degradation_hides_the_number_and_keeps_the_rest(kind):
    crop = runner_crop("3638")
    x1, y1, x2, y2 = padded(BOX, crop.shape)
    inside = np.zeros(crop.shape[:2], bool)
    inside[y1:y2, x1:x2] = True
    degraded = degrade(crop, BOX, kind, seeded_rng(kind))
    assert np.array_equal(degraded[~inside], crop[~inside])
    # The digits' strokes are gone: what is left inside the box varies at the scale of the bib, not of a stroke.
    assert stroke_detail(degraded, BOX) < 0.2 * stroke_detail(crop, BOX)


def test_box_in_crop_is_moved_and_clipped():
    assert in_crop([110.4, 52.0, 150.0, 70.0], 100, 50, 30, 40) == (10, 2, 30, 20)
    assert in_crop([10.0, 10.0, 20.0, 20.0], 100, 50, 30, 40) is None


def test_multi_frame_tracklets_are_illegible_or_hold_one_or_two_clear_frames():
    runners = [Runner(f"photo_{k}", 3638, runner_crop("3638"), BOX, {12: (0, 0, 10, 10)}, 1.0) for k in range(2)]
    cases = multi_frame_tracklets(runners, frames=8)
    assert [case.expected for case in cases] == [NO_NUMBER, 3638, NO_NUMBER, 3638]
    assert all(len(case.images) == 8 and case.neighbours == ("12",) for case in cases)
    assert all(image.shape == runners[0].crop.shape for case in cases for image in case.images)
    # A clear frame, shifted and scaled a little, still shows the digits' strokes in the bib box.
    clear = [[stroke_detail(image, BOX) > 0.4 * stroke_detail(runners[0].crop, BOX) for image in case.images]
             for case in cases]  # fmt: skip
    assert [sum(frames) for frames in clear] == [0, 1, 0, 2]
    assert np.array_equal(multi_frame_tracklets(runners)[1].images[3], cases[1].images[3])  # seeded


def test_another_runners_bib_or_the_part_of_it_in_view_is_counted_apart():
    runner = Runner("photo_0", 3638, runner_crop("3638"), BOX, {12: (0, 0, 10, 10)}, 1.0)
    [case] = [c for c in illegible_runners([runner], {"photo_0": ["2044"]}) if c.kind == "runners, blur"]
    assert case.neighbours == ("12", "2044")
    assert outcome(case, -1, "", Mode.BIB) == "right"
    assert outcome(case, 12, "12", Mode.BIB) == outcome(case, 204, "204", Mode.BIB) == "neighbour"
    assert outcome(case, 3638, "3638", Mode.BIB) == "own"
    assert outcome(case, 77, "77", Mode.BIB) == "invented"
    assert outcome(case, 4, "4", Mode.JERSEY) == "invented"  # jersey mode: only a whole bib is a neighbour's
