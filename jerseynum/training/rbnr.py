"""RBNR runners: each runner crop (`rbnr_runner_crops`) located in its photo by template matching, with its own
bib box and the other labelled bibs in view, in crop pixels."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from jerseynum.io import read_image_or_skip
from jerseynum.training import splits
from jerseynum.types import Box

MIN_MATCH = 0.9  # a crop is exact photo pixels re-encoded as JPEG: its match scores ~0.998


@dataclass
class Runner:
    """An RBNR runner crop with its bib box and the other labelled bibs in view, in crop pixels."""

    id: str
    number: int
    crop: np.ndarray
    bib: Box
    neighbours: dict[int, Box]
    match: float


def in_crop(box: list[float], x: int, y: int, width: int, height: int) -> Box | None:
    """`box` (photo pixels) moved by the crop's offset and clipped to it; None when nothing of it is in view."""
    x1, y1 = max(0, round(box[0]) - x), max(0, round(box[1]) - y)
    x2, y2 = min(width, round(box[2]) - x), min(height, round(box[3]) - y)
    return (x1, y1, x2, y2) if x2 > x1 and y2 > y1 else None


def rbnr_runners(data: Path, keep: Callable[[str], bool] = splits.rbnr_scored) -> tuple[list[Runner], list[str]]:
    """The runner crops of the photos `keep` accepts, located in their photos; and why any crop was skipped."""
    crops_root, photos_root = data / "rbnr_runner_crops", data / "rbnr_bib_photos"
    labels = json.loads((crops_root / "labels.json").read_text())
    boxes = json.loads((photos_root / "labels_with_boxes.json").read_text())
    runners, skipped = [], []
    photos: dict[str, np.ndarray | None] = {}
    for runner_id in sorted(labels):
        stem, k = runner_id.rsplit("_", 1)
        photo_name, k = f"{stem}.JPG", int(k)
        if not keep(photo_name):
            continue
        bibs = boxes.get(photo_name, [])
        if k >= len(bibs) or int(bibs[k]["number"]) != labels[runner_id]:
            skipped.append(f"{runner_id}: its label {labels[runner_id]} is not bib {k} of {photo_name}")
            continue
        if photo_name not in photos:
            photos[photo_name] = read_image_or_skip(photos_root / "images" / photo_name, "photo")
        photo = photos[photo_name]
        crop = read_image_or_skip(crops_root / "tracklets" / runner_id / "0.jpg", "crop")
        if photo is None or crop is None:
            skipped.append(f"{runner_id}: unreadable photo or crop")
            continue
        _, score, _, (x, y) = cv2.minMaxLoc(cv2.matchTemplate(photo, crop, cv2.TM_CCOEFF_NORMED))
        height, width = crop.shape[:2]
        bib = in_crop(bibs[k]["box_xyxy"], x, y, width, height)
        if score < MIN_MATCH or bib is None:
            skipped.append(f"{runner_id}: best match in {photo_name} scores {score:.3f}, bib in view: {bib}")
            continue
        neighbours = {}
        for j, other in enumerate(bibs):
            box = in_crop(other["box_xyxy"], x, y, width, height)
            if j != k and box is not None and int(other["number"]) != labels[runner_id]:
                neighbours[int(other["number"])] = box
        runners.append(Runner(runner_id, labels[runner_id], crop, bib, neighbours, round(score, 4)))
    return runners, skipped
