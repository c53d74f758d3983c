"""Ways to make a number unreadable while keeping every other pixel: what the legibility classifier learns
illegible looks like (`training/known_legibility.py`) and what `benchmarks/minus_one.py` measures -1 on.

Training uses `TRAINED` only; the benchmark reports every degradation apart, so a gain on the others is not a
gain on what the classifier saw.
"""

from __future__ import annotations

import hashlib

import cv2
import numpy as np

from jerseynum.types import Box

DEGRADATIONS = ("blur", "pixelate", "occlude", "downscale", "motion", "inpaint", "blank", "tape")
TRAINED = ("blur", "pixelate")
# "blank" and "tape" paint the box one flat colour that stands out from what is around it, as an unprinted bib or a
# black bar of a redaction do; "occlude" paints it the colour of its surroundings.
FLAT_COLOURS = {"blank": (235, 235, 235), "tape": (20, 20, 20)}
PAD = 0.1  # of the bib box's width and height on each side, so that no digit edge survives


def seeded_rng(key: str) -> np.random.Generator:
    """A generator seeded by `key`, so every degraded image is the same from run to run."""
    return np.random.default_rng(int(hashlib.md5(key.encode()).hexdigest()[:8], 16))


def padded(box: Box, shape: tuple[int, ...], pad: float = PAD) -> Box:
    """`box` grown by `pad` of its width and height on each side, clipped to an image of `shape`."""
    x1, y1, x2, y2 = box
    dx, dy = round((x2 - x1) * pad), round((y2 - y1) * pad)
    return max(0, x1 - dx), max(0, y1 - dy), min(shape[1], x2 + dx), min(shape[0], y2 + dy)


def degrade(image: np.ndarray, box: Box, kind: str, rng: np.random.Generator) -> np.ndarray:
    """A copy of `image` whose `box` (grown by PAD) is made unreadable by `kind`; every pixel outside it kept."""
    out = image.copy()
    x1, y1, x2, y2 = padded(box, image.shape)
    w, h = x2 - x1, y2 - y1
    region = image[y1:y2, x1:x2]
    if kind == "blur":
        sigma = max(1.0, h / 3)
        margin = int(3 * sigma)  # blur with the surroundings, so the box's edge does not mirror what is inside
        bx1, by1 = max(0, x1 - margin), max(0, y1 - margin)
        blurred = cv2.GaussianBlur(image[by1 : y2 + margin, bx1 : x2 + margin], (0, 0), sigma)
        out[y1:y2, x1:x2] = blurred[y1 - by1 : y2 - by1, x1 - bx1 : x2 - bx1]
    elif kind == "pixelate":
        block = max(2, round(h / 2))
        small = cv2.resize(region, (max(1, round(w / block)), max(1, round(h / block))), interpolation=cv2.INTER_AREA)
        out[y1:y2, x1:x2] = cv2.resize(small, (w, h), interpolation=cv2.INTER_NEAREST)
    elif kind == "occlude":
        ring = max(2, round(h / 4))
        rx1, ry1, rx2, ry2 = max(0, x1 - ring), max(0, y1 - ring), x2 + ring, y2 + ring
        around = np.ones(image[ry1:ry2, rx1:rx2].shape[:2], bool)
        around[y1 - ry1 : y2 - ry1, x1 - rx1 : x2 - rx1] = False
        colour = np.median(image[ry1:ry2, rx1:rx2][around], axis=0)
        noise = rng.normal(0, 6, region.shape)
        out[y1:y2, x1:x2] = np.clip(colour + noise, 0, 255).astype(np.uint8)
    elif kind in FLAT_COLOURS:
        noise = rng.normal(0, 4, region.shape)  # a camera's noise, no detail
        out[y1:y2, x1:x2] = np.clip(np.array(FLAT_COLOURS[kind]) + noise, 0, 255).astype(np.uint8)
    elif kind == "downscale":
        # 8x, or more so that at most 6 px of height remain: 8x left the digits of an 82 px bib readable.
        factor = max(8, h / 6)
        small = cv2.resize(region, (max(1, round(w / factor)), max(1, round(h / factor))), interpolation=cv2.INTER_AREA)
        out[y1:y2, x1:x2] = cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)
    elif kind == "motion":
        # A runner or a camera panning: a smear twice the box's height long, within 30 degrees of horizontal, so
        # each digit spreads over its neighbours (a vertical smear would keep a 1's stroke).
        length = max(5, 2 * h) | 1
        angle = np.deg2rad(rng.uniform(-30, 30))
        kernel = np.zeros((length, length), np.float32)
        half = length // 2
        dx, dy = half * np.cos(angle), half * np.sin(angle)
        cv2.line(kernel, (round(half - dx), round(half - dy)), (round(half + dx), round(half + dy)), 1.0, 1)
        kernel /= kernel.sum()
        bx1, by1 = max(0, x1 - length), max(0, y1 - length)
        smeared = cv2.filter2D(image[by1 : y2 + length, bx1 : x2 + length], -1, kernel, borderType=cv2.BORDER_REFLECT)
        out[y1:y2, x1:x2] = smeared[y1 - by1 : y2 - by1, x1 - bx1 : x2 - bx1]
    elif kind == "inpaint":
        # The number painted over with the texture around it (OpenCV's Telea inpainting), as a retouch would.
        mask = np.zeros(image.shape[:2], np.uint8)
        mask[y1:y2, x1:x2] = 255
        painted = cv2.inpaint(image, mask, max(3, round(h / 4)), cv2.INPAINT_TELEA)
        out[y1:y2, x1:x2] = painted[y1:y2, x1:x2]
    else:
        raise ValueError(f"unknown degradation {kind!r}; expected one of {DEGRADATIONS}")
    return out
