"""Torso: the region of a person crop where a jersey number or bib is printed.

With pose keypoints it is the box over shoulders and hips, widened by margins (bibs are often pinned at the
waist, so the box reaches below the hips). Without a pose it falls back to a fixed region, recorded in the
evidence: the whole crop when the crop is already a number region (too small or too squat to hold a body),
otherwise a fixed upper-body band.
"""

from __future__ import annotations

from dataclasses import dataclass

from jerseynum.types import Box, Keypoints, TorsoSource


@dataclass(frozen=True)
class TorsoSettings:
    min_keypoint_score: float = 0.5
    min_person_height: int = 64  # smaller crops cannot show a body: read them whole, skip pose
    min_person_aspect: float = 1.1  # height / width below this: a number region or a squat crop, read whole
    side_margin: float = 0.15  # of the shoulder-hip box width, each side
    top_margin: float = 0.05  # of the torso height, above the shoulders
    bottom_margin: float = 0.3  # of the torso height, below the hips (bibs sit at the waist)
    hip_drop: float = 1.5  # hips out of sight: torso height = this x shoulder width
    upper_body: tuple[float, float, float, float] = (0.1, 0.15, 0.9, 0.6)  # fallback band, fractions of w, h
    # A text "line" at least this share of a posed torso's height is the torso itself (a dark shirt, a blurred
    # block), not print on it: read, such lines gave confident 1s and 9s on illegible runners and no right number
    # (docs/results.md, "A -1 you can trust"). Crops read whole, number crops among them, are not posed.
    max_line_share: float = 0.95


BIB_TORSO = TorsoSettings(side_margin=1.0, top_margin=0.0, bottom_margin=3.0, upper_body=(0.0, 0.0, 1.0, 1.0))
"""Bib mode: bibs are pinned anywhere from chest to shorts, so the region runs from the shoulders (or the crop's
top) to the crop's bottom, full width; the text detector then finds the bib inside it."""


def is_number_region(height: int, width: int, settings: TorsoSettings = TorsoSettings()) -> bool:
    """True when a crop is too small or too squat to hold a body: pose is pointless, the crop is read whole."""
    return height < settings.min_person_height or height < settings.min_person_aspect * width


def fallback_box(height: int, width: int, settings: TorsoSettings = TorsoSettings()) -> tuple[Box, TorsoSource]:
    if is_number_region(height, width, settings):
        return (0, 0, width, height), TorsoSource.WHOLE
    fx1, fy1, fx2, fy2 = settings.upper_body
    return (int(fx1 * width), int(fy1 * height), int(fx2 * width), int(fy2 * height)), TorsoSource.UPPER_BODY


def torso_box(
    keypoints: Keypoints | None, height: int, width: int, settings: TorsoSettings = TorsoSettings()
) -> tuple[Box, TorsoSource]:
    """The torso box in crop pixels, from both shoulders and (if seen) hips; a fallback box otherwise."""
    if keypoints is None:
        return fallback_box(height, width, settings)
    score = settings.min_keypoint_score
    shoulders = [keypoints.confident(name, score) for name in ("left_shoulder", "right_shoulder")]
    hips = [keypoints.confident(name, score) for name in ("left_hip", "right_hip")]
    if None in shoulders:
        return fallback_box(height, width, settings)
    xs = [p[0] for p in shoulders]
    top = min(p[1] for p in shoulders)
    seen_hips = [p for p in hips if p is not None]
    if seen_hips:
        xs += [p[0] for p in seen_hips]
        bottom = max(p[1] for p in seen_hips)
    else:
        bottom = top + settings.hip_drop * (max(xs) - min(xs))
    torso_height = max(bottom - top, 1.0)
    # Shoulder width, not torso width, sets the side margin: a side view narrows the hips too.
    side = settings.side_margin * max(max(xs) - min(xs), 0.3 * torso_height)
    x1 = max(0, int(min(xs) - side))
    x2 = min(width, int(max(xs) + side + 1))
    y1 = max(0, int(top - settings.top_margin * torso_height))
    y2 = min(height, int(bottom + settings.bottom_margin * torso_height + 1))
    if x2 - x1 < 4 or y2 - y1 < 4:  # keypoints outside the crop or collapsed
        return fallback_box(height, width, settings)
    return (x1, y1, x2, y2), TorsoSource.POSE
