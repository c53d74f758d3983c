"""The one vocabulary of jerseynum: every stage takes and returns these types.

Backends convert their raw output into these types beside their own code (e.g. `stages/text.py` turns a
RapidOCR result into `Reading`s), so nothing downstream ever touches a backend's raw output.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path

import numpy as np

Box = tuple[int, int, int, int]
"""Pixel box (x1, y1, x2, y2) in the coordinates of the image it was found in; x2 and y2 exclusive."""


def iou(a: Box, b: Box) -> float:
    """Intersection over union of two boxes."""
    inter_w = min(a[2], b[2]) - max(a[0], b[0])
    inter_h = min(a[3], b[3]) - max(a[1], b[1])
    if inter_w <= 0 or inter_h <= 0:
        return 0.0
    inter = inter_w * inter_h
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)

NO_NUMBER = -1
"""What a tracklet gets when no number is legible (SoccerNet's convention)."""


class Mode(str, Enum):
    """What kind of number is read: a jersey (0-99) or a race bib (any number of digits)."""

    JERSEY = "jersey"
    BIB = "bib"

    @property
    def min_digits(self) -> int:
        # No RBNR bib has one digit, and on runners a lone digit is a belt, a fold or a fragment far more often
        # than a bib: bib mode answered 1-digit numbers for 168 of 365 illegible RBNR runners
        # (docs/results.md, "A -1 you can trust"). Race photos dropped them before bib mode did.
        return 1 if self is Mode.JERSEY else 2

    @property
    def max_digits(self) -> int:
        return 2 if self is Mode.JERSEY else 6

    def accepts(self, text: str) -> bool:
        """Whether `text` is a number this mode can output. "07" is no jersey number, but "00" is one (basketball
        has it), distinct from "0" in `Prediction.text`; bibs keep their leading zeros."""
        if not text.isdigit() or not self.min_digits <= len(text) <= self.max_digits:
            return False
        return self is Mode.BIB or len(text) == 1 or text[0] != "0" or text == "00"


@dataclass
class Frame:
    """One image of a tracklet. `image` (BGR uint8) is decoded lazily by `io.load_image` from `data` (the file's
    bytes, where they were read elsewhere: a Ray worker gets them from the driver) or else from the file `source`."""

    source: str
    index: int
    image: np.ndarray | None = None
    data: bytes | None = None
    keypoints: Keypoints | None = None  # the body's, in this image's pixels, where a person detector gave them:
    # the pose stage is not run again


@dataclass
class Tracklet:
    """The crops of one person over time; a race photo's runner is a tracklet of one frame."""

    id: str
    frames: list[Frame]

    @classmethod
    def from_images(cls, tracklet_id: str, images: list[np.ndarray]) -> Tracklet:
        return cls(tracklet_id, [Frame(f"{tracklet_id}:{i}", i, image) for i, image in enumerate(images)])

    @classmethod
    def from_paths(cls, tracklet_id: str, paths: list[Path]) -> Tracklet:
        return cls(tracklet_id, [Frame(str(path), i) for i, path in enumerate(paths)])


@dataclass(frozen=True)
class Keypoints:
    """Named body keypoints of one person in crop pixels, each with the backend's confidence in [0, 1].

    Names follow COCO ("left_shoulder", ...); backends with other skeletons (BlazePose's 33) map onto them.
    """

    points: dict[str, tuple[float, float, float]]

    def confident(self, name: str, min_score: float) -> tuple[float, float] | None:
        point = self.points.get(name)
        if point is None or point[2] < min_score:
            return None
        return point[0], point[1]

    def scaled(self, factor: float) -> Keypoints:
        """The same points in an image resized by `factor`."""
        return Keypoints({name: (x * factor, y * factor, score) for name, (x, y, score) in self.points.items()})

    def shifted(self, dx: float, dy: float) -> Keypoints:
        """The same points with the origin moved to (dx, dy): an image's keypoints in a crop of it."""
        return Keypoints({name: (x - dx, y - dy, score) for name, (x, y, score) in self.points.items()})


@dataclass(frozen=True)
class PersonBox:
    """A person a detector found in an image: the box in the image's pixels, the detector's score in [0, 1], and
    the body's keypoints where the model gives them."""

    box: Box
    score: float
    keypoints: Keypoints | None = None


class TorsoSource(str, Enum):
    """How a frame's torso crop was found: recorded in the evidence so fallbacks are visible."""

    POSE = "pose"  # shoulders and hips from the pose backend
    UPPER_BODY = "upper_body"  # no pose: a fixed upper-body region of a person crop
    WHOLE = "whole"  # no pose, and the crop is already a number region (too small or too squat for a body)


@dataclass(frozen=True)
class Reading:
    """One text reading of a crop: the digit string and the recognizer's confidence in it.

    `char_confidences` has one entry per character of `text` (backends without per-character scores repeat
    the string's confidence). `box` locates the text in the torso crop where a detector found it, and
    `line_legibility` is the legibility classifier's score of that line (None: the crop was read whole as one
    line, or lines were not scored), and `crop_legibility` its score of the crop where the crop was read whole
    (None: a line was detected, or the crop was not scored). `at_side`: the detected line touches the crop's left
    or right side, so it may be a piece of a wider number cut there (a neighbour's bib half in view).
    """

    text: str
    confidence: float
    char_confidences: tuple[float, ...]
    engine: str
    box: Box | None = None
    line_legibility: float | None = None
    at_side: bool = False
    crop_legibility: float | None = None

    def __post_init__(self) -> None:
        if len(self.char_confidences) != len(self.text):
            raise ValueError(f"{len(self.char_confidences)} character confidences for text {self.text!r}")


@dataclass
class FrameEvidence:
    """What the pipeline saw in one frame, kept so every prediction can be explained."""

    source: str
    index: int
    torso_source: TorsoSource | None = None
    torso_box: Box | None = None
    legibility: float | None = None  # None: the legibility stage is off
    readings: list[Reading] = field(default_factory=list)  # one per text engine that read a number; none
    # when the frame was illegible or nothing was found
    error: str | None = None  # e.g. an unreadable image file


@dataclass
class Prediction:
    """The tracklet's number (or NO_NUMBER), the vote's confidence, and the evidence behind it."""

    tracklet_id: str
    number: int
    confidence: float
    reason: str
    text: str = ""  # the winning digit string as printed ("0891"); empty for NO_NUMBER
    votes: dict[str, float] = field(default_factory=dict)
    evidence: list[FrameEvidence] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)  # seconds per stage for this tracklet
