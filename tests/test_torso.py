from jerseynum.stages.torso import TorsoSettings, fallback_box, is_number_region, torso_box
from jerseynum.types import Keypoints, TorsoSource


def keypoints(score: float = 0.9, hips: bool = True) -> Keypoints:
    points = {"left_shoulder": (70.0, 50.0, score), "right_shoulder": (30.0, 50.0, score)}
    if hips:
        points |= {"left_hip": (65.0, 130.0, score), "right_hip": (35.0, 130.0, score)}
    return Keypoints(points)


def test_box_spans_shoulders_to_hips_with_margins():
    settings = TorsoSettings(side_margin=0.25, top_margin=0.0, bottom_margin=0.0)
    box, source = torso_box(keypoints(), 200, 100, settings)
    assert source is TorsoSource.POSE
    assert box == (20, 50, 81, 131)  # shoulder width 40 -> 10 px each side; shoulders to hips vertically


def test_bottom_margin_reaches_below_the_hips():
    box, _ = torso_box(keypoints(), 250, 100, TorsoSettings(bottom_margin=0.5, top_margin=0.0))
    assert box[3] == 171  # hips at 130 + half the 80-px torso


def test_box_is_clipped_to_the_crop():
    box, _ = torso_box(keypoints(), 120, 90, TorsoSettings(side_margin=1.0, bottom_margin=1.0))
    assert box[0] == 0 and box[2] == 90 and box[3] == 120


def test_missing_hips_are_estimated_from_shoulder_width():
    box, source = torso_box(keypoints(hips=False), 300, 100, TorsoSettings(hip_drop=1.5, bottom_margin=0.0))
    assert source is TorsoSource.POSE and box[3] == 50 + 60 + 1


def test_unsure_shoulders_fall_back_to_the_upper_body():
    box, source = torso_box(keypoints(score=0.2), 250, 100)
    assert source is TorsoSource.UPPER_BODY
    assert box == fallback_box(250, 100)[0]


def test_no_pose_on_a_number_region_reads_the_whole_crop():
    assert is_number_region(30, 25)  # too small for a body
    assert is_number_region(200, 220)  # too squat for a standing person
    assert not is_number_region(250, 100)
    assert torso_box(None, 30, 25) == ((0, 0, 25, 30), TorsoSource.WHOLE)
    box, source = torso_box(None, 250, 100)
    assert source is TorsoSource.UPPER_BODY and 0 < box[1] < box[3] < 250
