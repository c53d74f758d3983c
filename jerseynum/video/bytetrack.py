"""Tracking by ByteTrack's association (Zhang et al., ECCV 2022) with BoT-SORT's camera-motion compensation
(Aharon et al., 2022).

Each track is a Kalman filter on its box (centre, width, height and their velocities). Every frame:
1. the tracks are predicted forward, then moved by the camera's motion (`CameraMotion`): a pan shifts every
   predicted box with the background, so IoU still matches a player to their own track;
2. confident boxes are matched to the tracks by IoU (Hungarian assignment);
3. the low-score boxes are matched to the tracks left, which keeps a partly hidden or blurred person on their
   track rather than starting a new one when they reappear (ByteTrack's point);
4. a new track needs a confident box seen in two frames in a row (one-frame false positives start nothing);
5. a track unseen for `lost_frames` frames ends.

Why not a package: supervision dropped its ByteTrack in 0.28 for `trackers`, which needs NumPy 2 (the pinned
set holds NumPy 1 for mediapipe) and opencv-python (a third package writing cv2/); norfair has neither the
two-score association nor a way to move its filters by an estimated camera motion per frame. scipy (already
pinned by scikit-learn) gives the assignment.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np
from scipy.optimize import linear_sum_assignment

from jerseynum.types import Box, iou

POSITION_NOISE = 1 / 20  # of the box's size per frame (ByteTrack's and BoT-SORT's weights)
VELOCITY_NOISE = 1 / 160

_MOTION = np.eye(8)
_MOTION[:4, 4:] = np.eye(4)  # constant velocity: position += velocity each frame
_OBSERVE = np.eye(4, 8)


def box_to_state(box: Box) -> np.ndarray:
    x1, y1, x2, y2 = box
    return np.array([(x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1], float)


def state_to_box(state: np.ndarray) -> Box:
    cx, cy, w, h = state[:4]
    return (round(cx - w / 2), round(cy - h / 2), round(cx + w / 2), round(cy + h / 2))


class BoxFilter:
    """A Kalman filter on one box: state (cx, cy, w, h) and their velocities; noise scales with the box's size."""

    def __init__(self, box: Box) -> None:
        measured = box_to_state(box)
        self.mean = np.concatenate([measured, np.zeros(4)])
        w, h = measured[2:]
        size = np.array([w, h, w, h])
        self.covariance = np.diag(np.concatenate([2 * POSITION_NOISE * size, 10 * VELOCITY_NOISE * size]) ** 2)

    def _size(self) -> np.ndarray:
        w, h = np.maximum(self.mean[2:4], 1.0)
        return np.array([w, h, w, h])

    def predict(self, seen: bool = True) -> None:
        """One frame forward; for a track not `seen` in the last frame, its size stops changing (ByteTrack's
        guard: a shrinking box carried on blind would turn inside out)."""
        if not seen:
            self.mean[6:] = 0.0
        size = self._size()
        noise = np.diag(np.concatenate([POSITION_NOISE * size, VELOCITY_NOISE * size]) ** 2)
        self.mean = _MOTION @ self.mean
        self.covariance = _MOTION @ self.covariance @ _MOTION.T + noise

    def update(self, box: Box) -> None:
        projected_cov = _OBSERVE @ self.covariance @ _OBSERVE.T + np.diag((POSITION_NOISE * self._size()) ** 2)
        gain = np.linalg.solve(projected_cov, _OBSERVE @ self.covariance).T
        self.mean = self.mean + gain @ (box_to_state(box) - _OBSERVE @ self.mean)
        self.covariance = self.covariance - gain @ projected_cov @ gain.T

    def warp(self, affine: np.ndarray) -> None:
        """Move the state by a 2x3 similarity transform (the camera's motion between two frames)."""
        linear = np.kron(np.eye(4), affine[:, :2])  # each (x, y)-like pair of the state turns and scales
        self.mean = linear @ self.mean
        self.mean[:2] += affine[:, 2]
        self.covariance = linear @ self.covariance @ linear.T

    @property
    def box(self) -> Box:
        return state_to_box(self.mean)


@dataclass
class TrackState:
    id: int
    filter: BoxFilter
    unseen: int = 0  # frames since the last match
    confirmed: bool = False


@dataclass
class TrackedBox:
    """A track matched in this frame: its id, and the detector's box and score that matched it (`detection`: its
    position among the frame's boxes)."""

    id: int
    box: Box
    score: float
    detection: int


def iou_matrix(boxes_a: list[Box], boxes_b: list[Box]) -> np.ndarray:
    return np.array([[iou(a, b) for b in boxes_b] for a in boxes_a], float).reshape(len(boxes_a), len(boxes_b))


def match(
    tracks: list[TrackState], boxes: list[Box], min_iou: float, lost_min_iou: float = 0.0
) -> tuple[list[tuple[int, int]], list[int], list[int]]:
    """Hungarian assignment on IoU: (track index, box index) pairs overlapping by at least `min_iou`, or by
    `lost_min_iou` for a track unseen in the last frame, then the track and box indices left unmatched."""
    overlap = iou_matrix([track.filter.box for track in tracks], boxes)
    lost = np.array([track.unseen > 0 for track in tracks], bool)
    if overlap.size and lost.any():
        overlap[lost] = np.where(overlap[lost] >= lost_min_iou, overlap[lost], 0.0)
    pairs = []
    if overlap.size:
        rows, cols = linear_sum_assignment(-overlap)
        pairs = [(r, c) for r, c in zip(rows, cols) if overlap[r, c] >= min_iou]
    matched_tracks = {r for r, _ in pairs}
    matched_boxes = {c for _, c in pairs}
    return (pairs, [i for i in range(len(tracks)) if i not in matched_tracks],
            [j for j in range(len(boxes)) if j not in matched_boxes])  # fmt: skip


@dataclass
class ByteTracker:
    """Feed each frame's boxes and scores with `update`; it returns the confirmed tracks matched in that frame.

    `high_score`: boxes at least this confident are matched first and may start tracks; boxes from `low_score`
    up to it only continue existing tracks. The detector must therefore report boxes down to `low_score`."""

    high_score: float = 0.5
    low_score: float = 0.1
    first_iou: float = 0.2  # ByteTrack's 0.8 cost, as an IoU
    second_iou: float = 0.5
    # A track unseen lately is predicted blind, so it takes a box only where it overlaps well: a person
    # entering where another just left starts a track of their own instead of inheriting the other's number
    # (for reading, a broken track costs a re-read; a track that changes person shows a wrong number).
    lost_iou: float = 0.5
    lost_frames: int = 30  # a track unseen this long ends (1.2 s at 25 FPS): a player behind another comes back
    tracks: list[TrackState] = field(default_factory=list)
    _next_id: int = 1

    def new_id(self) -> int:
        """An id no track of this tracker has had or will have (its own tracks', and any the caller splits off)."""
        self._next_id += 1
        return self._next_id - 1

    def _advance(self, camera_motion: np.ndarray | None) -> None:
        for track in self.tracks:
            track.filter.predict(seen=track.unseen == 0)
            if camera_motion is not None:
                track.filter.warp(camera_motion)

    def coast(self, camera_motion: np.ndarray | None = None) -> list[TrackedBox]:
        """A frame nobody was detected in (the live demo detects every other frame): the tracks move by their
        motion and the camera's; those matched in the last detected frame come back at their predicted boxes
        (score 0, `detection` -1)."""
        self._advance(camera_motion)
        return [TrackedBox(t.id, t.filter.box, 0.0, -1) for t in self.tracks if t.confirmed and t.unseen == 0]

    def update(
        self, boxes: list[Box], scores: list[float], camera_motion: np.ndarray | None = None
    ) -> list[TrackedBox]:
        self._advance(camera_motion)
        high = [i for i, s in enumerate(scores) if s >= self.high_score]
        low = [i for i, s in enumerate(scores) if self.low_score <= s < self.high_score]
        matched: list[tuple[TrackState, int]] = []

        # Confirmed tracks, seen lately or not, take the confident boxes first.
        confirmed = [t for t in self.tracks if t.confirmed]
        pairs, left_tracks, left_high = match(confirmed, [boxes[i] for i in high], self.first_iou, self.lost_iou)
        matched += [(confirmed[r], high[c]) for r, c in pairs]
        # The confirmed tracks seen in the last frame that are still unmatched may take a low-score box.
        recent = [confirmed[r] for r in left_tracks if confirmed[r].unseen == 0]
        pairs, _, _ = match(recent, [boxes[i] for i in low], self.second_iou)
        matched += [(recent[r], low[c]) for r, c in pairs]
        # A track born last frame is confirmed by a confident box now, or dropped.
        tentative = [t for t in self.tracks if not t.confirmed]
        remaining_high = [high[c] for c in left_high]
        pairs, _, unborn = match(tentative, [boxes[i] for i in remaining_high], self.first_iou)
        matched += [(tentative[r], remaining_high[c]) for r, c in pairs]

        matched_ids = {id(track) for track, _ in matched}
        for track, index in matched:
            track.filter.update(boxes[index])
            track.unseen = 0
            track.confirmed = True
        survivors = []
        for track in self.tracks:
            if id(track) in matched_ids:
                survivors.append(track)
            elif track.confirmed and track.unseen + 1 < self.lost_frames:
                track.unseen += 1
                survivors.append(track)
        for index in (remaining_high[c] for c in unborn):
            survivors.append(TrackState(self.new_id(), BoxFilter(boxes[index])))
        self.tracks = survivors
        return [TrackedBox(track.id, boxes[index], scores[index], index) for track, index in matched]


class CameraMotion:
    """The camera's motion between consecutive frames as a 2x3 similarity transform (pan, zoom, roll), from
    sparse optical flow on the background (BoT-SORT's "sparseOptFlow" method).

    Corners are tracked from the previous frame to this one on a copy at most `width` pixels wide, with the
    people masked out (they move on their own), and a similarity is fitted with RANSAC. Where too few corners
    follow (a cut, a blank frame) it says the camera did not move."""

    def __init__(self, width: int = 320, min_points: int = 12) -> None:
        self.width = width
        self.min_points = min_points
        self._previous: np.ndarray | None = None
        self._previous_corners: np.ndarray | None = None

    def estimate(self, frame: np.ndarray, people: list[Box]) -> np.ndarray:
        """How points of the previous frame moved to this one (full-size pixels); identity on the first frame."""
        scale = min(1.0, self.width / frame.shape[1])
        gray = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY) if frame.ndim == 3 else frame
        small = cv2.resize(gray, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA) if scale < 1 else gray
        motion = np.eye(2, 3)
        if self._previous_corners is not None and len(self._previous_corners) >= self.min_points:
            moved, status, _ = cv2.calcOpticalFlowPyrLK(self._previous, small, self._previous_corners, None)
            followed = status.ravel() == 1
            if followed.sum() >= self.min_points:
                fitted, inliers = cv2.estimateAffinePartial2D(self._previous_corners[followed], moved[followed],
                                                              method=cv2.RANSAC, ransacReprojThreshold=1.0)  # fmt: skip
                if fitted is not None and inliers is not None and inliers.sum() >= self.min_points:
                    motion = fitted
                    motion[:, 2] /= scale  # the translation back in full-size pixels
        mask = np.full(small.shape, 255, np.uint8)
        for x1, y1, x2, y2 in people:
            mask[int(y1 * scale) : int(np.ceil(y2 * scale)), int(x1 * scale) : int(np.ceil(x2 * scale))] = 0
        self._previous = small
        self._previous_corners = cv2.goodFeaturesToTrack(small, maxCorners=300, qualityLevel=0.01, minDistance=5,
                                                         blockSize=3, mask=mask)  # fmt: skip
        return motion
