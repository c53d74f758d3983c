"""The video tracker (`video/bytetrack.py`) on boxes the tests move themselves: identities kept through steady
motion, a low-score dip and a camera pan; none started by a one-frame box or a low-score one; and the camera's
motion measured on a rendered textured scene."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from jerseynum.video.bytetrack import ByteTracker, CameraMotion, iou_matrix


def walk(start: tuple[int, int, int, int], step: tuple[int, int], frames: int) -> list[tuple[int, int, int, int]]:
    x1, y1, x2, y2 = start
    return [(x1 + i * step[0], y1 + i * step[1], x2 + i * step[0], y2 + i * step[1]) for i in range(frames)]


def ids_per_frame(tracker: ByteTracker, frames: list[list[tuple]], motions=None) -> list[dict]:
    """Feed (box, score) lists frame by frame; return for each frame {box: track id} of the tracks shown."""
    shown = []
    for index, people in enumerate(frames):
        motion = motions[index] if motions is not None else None
        out = tracker.update([box for box, _ in people], [score for _, score in people], motion)
        shown.append({tracked.box: tracked.id for tracked in out})
    return shown


def test_two_people_walking_keep_their_own_ids():
    a = walk((10, 50, 60, 200), (6, 0), 40)
    b = walk((400, 60, 450, 210), (-5, 1), 40)
    shown = ids_per_frame(ByteTracker(), [[(pa, 0.9), (pb, 0.8)] for pa, pb in zip(a, b)])
    assert shown[0] == {}  # a track needs a confident box in two frames in a row
    ids_a = {frame[pa] for frame, pa in zip(shown[1:], a[1:])}
    ids_b = {frame[pb] for frame, pb in zip(shown[1:], b[1:])}
    assert len(ids_a) == 1 and len(ids_b) == 1 and ids_a != ids_b


def test_a_low_score_dip_keeps_the_track_and_a_low_score_box_starts_none():
    person = walk((10, 50, 60, 200), (4, 0), 30)
    ghost = (300, 40, 340, 160)  # a low-score box every frame: never a track of its own
    frames = [[(box, 0.2 if 10 <= i < 16 else 0.9), (ghost, 0.3)] for i, box in enumerate(person)]
    shown = ids_per_frame(ByteTracker(), frames)
    assert {frame[box] for frame, box in zip(shown[1:], person[1:])} == {1}
    assert all(ghost not in frame for frame in shown)


def test_a_one_frame_false_box_starts_no_track():
    person = walk((10, 50, 60, 200), (4, 0), 10)
    frames = [[(box, 0.9)] for box in person]
    frames[5].append(((300, 40, 340, 160), 0.95))
    shown = ids_per_frame(ByteTracker(), frames)
    assert all(len(frame) == (0 if i == 0 else 1) for i, frame in enumerate(shown))


def test_someone_entering_where_another_just_left_gets_a_track_of_their_own():
    leaving = walk((500, 50, 600, 250), (20, 0), 8)  # last seen at x 640-740, then gone
    # a frame later, someone where the leaver's track is predicted, overlapping it by 0.31: enough for a track
    # seen in the last frame, not for one predicted blind
    entering = (630, 60, 730, 260)
    frames = [[(box, 0.9)] for box in leaving] + [[], [(entering, 0.9)], [(entering, 0.9)]]
    shown = ids_per_frame(ByteTracker(), frames)
    assert shown[-1][entering] != shown[7][leaving[7]]


def test_the_camera_motion_keeps_ids_through_a_fast_pan():
    # The camera pans 60 px a frame: a standing person's box jumps past any overlap with its last position.
    standing = [(1000 - 60 * i, 100, 1050 - 60 * i, 260) for i in range(12)]
    pan = np.array([[1.0, 0.0, -60.0], [0.0, 1.0, 0.0]])
    frames = [[(box, 0.9)] for box in standing]
    compensated = ids_per_frame(ByteTracker(), frames, [pan] * len(frames))
    assert {frame[box] for frame, box in zip(compensated[1:], standing[1:])} == {1}
    blind = ids_per_frame(ByteTracker(), frames)
    assert all(not frame for frame in blind)  # never two overlapping boxes in a row: no track at all


def textured_scene(seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    noise = rng.integers(0, 256, (90, 160), np.uint8)
    scene = cv2.resize(noise, (1600, 900), interpolation=cv2.INTER_CUBIC)  # blobs with corners to follow
    return cv2.cvtColor(cv2.GaussianBlur(scene, (5, 5), 0), cv2.COLOR_GRAY2BGR)


@pytest.mark.parametrize("shift,zoom", [((-24.0, 6.0), 1.0), ((0.0, 0.0), 1.05)])
def test_the_camera_motion_is_measured_between_frames(shift, zoom):
    scene = textured_scene()
    centre = (800, 450)
    first = cv2.warpAffine(scene, np.array([[1.0, 0, 0], [0, 1.0, 0]]), (960, 540))
    truth = cv2.getRotationMatrix2D(centre, 0, zoom)
    truth[:, 2] += shift
    second = cv2.warpAffine(scene, truth, (1600, 900))[:540, :960]
    camera = CameraMotion()
    assert np.allclose(camera.estimate(first, []), np.eye(2, 3))  # nothing to compare the first frame with
    measured = camera.estimate(second, [(100, 100, 200, 300)])
    point = np.array([300.0, 200.0, 1.0])
    assert np.linalg.norm(measured @ point - truth @ point) < 2.0  # pixels, at full size


def test_iou_matrix_matches_the_definition():
    boxes_a = [(0, 0, 10, 10), (5, 5, 15, 15)]
    boxes_b = [(0, 0, 10, 10), (10, 10, 20, 20), (0, 5, 10, 15)]
    expected = [[1.0, 0.0, 50 / 150], [25 / 175, 25 / 175, 50 / 150]]
    assert np.allclose(iou_matrix(boxes_a, boxes_b), expected)
    assert iou_matrix([], boxes_b).shape == (0, 3)


def test_between_detected_frames_a_track_coasts_on_its_motion_and_keeps_its_id():
    person = walk((10, 50, 60, 200), (6, 0), 21)
    tracker = ByteTracker()
    ids, coasted = set(), []
    for index, box in enumerate(person):
        if index % 2 == 0:  # detected every other frame, as the live demo does
            ids |= {tracked.id for tracked in tracker.update([box], [0.9])}
        else:
            coasted += [(tracked.box, box) for tracked in tracker.coast()]
    assert ids == {1}
    # once the filter has the walk's speed, a coasted box is where the person is
    assert coasted and all(abs(got[0] - truth[0]) <= 3 for got, truth in coasted[3:])
