"""Rendered crops: jersey numbers on shirt-coloured patches and simple drawn players.

Used for the shipped sample tracklets and by the tests, so neither needs any downloaded data. OpenCV's
built-in Hershey fonts are used: they exist on every machine, no font file needed.
`python -m jerseynum.training.synth OUT_DIR` writes sample tracklets in SoccerNet's layout, with labels.json.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import cv2
import numpy as np

SHIRT_COLOURS = [((200, 40, 30), (255, 255, 255)), ((255, 255, 255), (30, 30, 160)), ((20, 120, 20), (255, 255, 255)),
                 ((0, 200, 255), (20, 20, 20)), ((40, 40, 40), (0, 220, 255))]  # fmt: skip  (shirt, print) BGR


def render_number(text: str, height: int = 64, shirt=(200, 40, 30), ink=(255, 255, 255)) -> np.ndarray:
    """A tight crop of `text` printed in bold on a plain shirt patch, about `height` px tall."""
    scale = height / 40.0
    thickness = max(2, round(height / 9))
    (width, text_height), baseline = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, thickness)
    margin = height // 5
    patch = np.full((text_height + baseline + 2 * margin, width + 2 * margin, 3), shirt, np.uint8)
    cv2.putText(patch, text, (margin, margin + text_height), cv2.FONT_HERSHEY_SIMPLEX, scale, ink, thickness,
                cv2.LINE_AA)  # fmt: skip
    return patch


def render_player(text: str, height: int = 256, shirt=(200, 40, 30), ink=(255, 255, 255),
                  background=(60, 140, 60)) -> np.ndarray:  # fmt: skip
    """A drawn player, about 2:5 wide to tall like a SoccerNet crop: head, shirt with the number, shorts, legs."""
    width = int(height * 0.45)
    image = np.full((height, width, 3), background, np.uint8)
    centre = width // 2
    cv2.circle(image, (centre, int(0.09 * height)), int(0.07 * height), (150, 180, 220), -1)
    shirt_box = (int(0.12 * width), int(0.17 * height), int(0.88 * width), int(0.55 * height))
    cv2.rectangle(image, shirt_box[:2], shirt_box[2:], shirt, -1)
    number = render_number(text, int(0.2 * height), shirt, ink)
    nh, nw = number.shape[:2]
    scale = min(1.0, 0.7 * (shirt_box[2] - shirt_box[0]) / nw)
    number = cv2.resize(number, (max(1, int(nw * scale)), max(1, int(nh * scale))))
    nh, nw = number.shape[:2]
    y = (shirt_box[1] + shirt_box[3] - nh) // 2
    image[y : y + nh, centre - nw // 2 : centre - nw // 2 + nw] = number
    cv2.rectangle(image, (int(0.15 * width), int(0.55 * height)), (int(0.85 * width), int(0.7 * height)), (30, 30, 30), -1)
    for x in (0.3, 0.62):
        cv2.rectangle(image, (int(x * width), int(0.7 * height)), (int((x + 0.1) * width), int(0.97 * height)),
                      (150, 180, 220), -1)  # fmt: skip
    return image


def jitter(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A frame-to-frame variation: small scale change, blur and noise."""
    scale = rng.uniform(0.85, 1.1)
    image = cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    if rng.random() < 0.5:
        image = cv2.GaussianBlur(image, (3, 3), 0)
    noise = rng.normal(0, 4, image.shape)
    return np.clip(image.astype(np.float32) + noise, 0, 255).astype(np.uint8)


def write_sample_tracklets(out_dir: Path, numbers: list[int], frames: int, seed: int = 0) -> dict[str, int]:
    """Tracklet folders `out_dir/<id>/<frame>.jpg` of drawn players, plus a last one with a blank shirt (-1):
    a player seen from an angle with no number."""
    rng = np.random.default_rng(seed)
    labels = {}
    for tracklet_id, number in enumerate([*numbers, -1]):
        shirt, ink = SHIRT_COLOURS[tracklet_id % len(SHIRT_COLOURS)]
        folder = out_dir / str(tracklet_id)
        folder.mkdir(parents=True, exist_ok=True)
        player = render_player(str(number) if number != -1 else "", 200, shirt, ink)
        for frame in range(frames):
            cv2.imwrite(str(folder / f"{frame}.jpg"), jitter(player, rng), [cv2.IMWRITE_JPEG_QUALITY, 85])
        labels[str(tracklet_id)] = number
    return labels


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--numbers", type=int, nargs="+", default=[7, 10, 23, 58, 99])
    parser.add_argument("--frames", type=int, default=6)
    args = parser.parse_args()
    labels = write_sample_tracklets(args.out_dir / "tracklets", args.numbers, args.frames)
    (args.out_dir / "labels.json").write_text(json.dumps(labels, indent=1) + "\n")


if __name__ == "__main__":
    main()
