"""Rendered crops: jersey numbers on shirt-coloured patches, simple drawn players, and random training crops
for the digit recognizer (jersey numbers, race bibs, and number-free negatives).

Used for the shipped sample tracklets, by the tests and by recognizer training, so none needs downloaded data.
Fonts: OpenCV's built-in Hershey fonts and Pillow's bundled default font (in its wheel): both exist on every
machine, no font file needed.
`python -m jerseynum.training.synth OUT_DIR` writes sample tracklets in SoccerNet's layout, with labels.json.
"""

from __future__ import annotations

import argparse
import string
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageDraw, ImageFont

from jerseynum.io import write_json_atomic

Colour = tuple[int, int, int]  # in the channel order of the image drawn on (BGR here)

SHIRT_COLOURS = [((200, 40, 30), (255, 255, 255)), ((255, 255, 255), (30, 30, 160)), ((20, 120, 20), (255, 255, 255)),
                 ((0, 200, 255), (20, 20, 20)), ((40, 40, 40), (0, 220, 255))]  # fmt: skip  (shirt, print) BGR


def render_number(text: str, height: int = 64, shirt: Colour = (200, 40, 30), ink: Colour = (255, 255, 255)
                  ) -> np.ndarray:  # fmt: skip
    """A tight crop of `text` printed in bold on a plain shirt patch, about `height` px tall."""
    scale = height / 40.0
    thickness = max(2, round(height / 9))
    (width, text_height), baseline = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, thickness)
    margin = height // 5
    patch = np.full((text_height + baseline + 2 * margin, width + 2 * margin, 3), shirt, np.uint8)
    cv2.putText(patch, text, (margin, margin + text_height), cv2.FONT_HERSHEY_SIMPLEX, scale, ink, thickness,
                cv2.LINE_AA)  # fmt: skip
    return patch


def render_player(text: str, height: int = 256, shirt: Colour = (200, 40, 30), ink: Colour = (255, 255, 255),
                  background: Colour = (60, 140, 60)) -> np.ndarray:  # fmt: skip
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


HERSHEY_FONTS = [cv2.FONT_HERSHEY_SIMPLEX, cv2.FONT_HERSHEY_DUPLEX, cv2.FONT_HERSHEY_COMPLEX,
                 cv2.FONT_HERSHEY_TRIPLEX, cv2.FONT_HERSHEY_PLAIN]  # fmt: skip


def _random_colour(rng: np.random.Generator) -> np.ndarray:
    return rng.integers(0, 256, 3)


def _contrasting(colour: np.ndarray, rng: np.random.Generator, minimum: float = 90) -> np.ndarray:
    """A random colour whose brightness differs from `colour`'s by at least `minimum` (of 255)."""
    for _ in range(50):
        other = _random_colour(rng)
        if abs(float(other.mean()) - float(colour.mean())) >= minimum:
            return other
    return np.full(3, 255 if colour.mean() < 128 else 0)


def _text_image(text: str, height: int, rng: np.random.Generator) -> np.ndarray:
    """A white-on-black mask of `text` (uint8), about `height` px tall, in a random font and weight."""
    if rng.random() < 0.5:
        font = ImageFont.load_default(size=height)
        stroke = int(rng.integers(0, max(1, height // 8) + 1))
        left, top, right, bottom = font.getbbox(text, stroke_width=stroke)
        mask = Image.new("L", (right - left + 2, bottom - top + 2), 0)
        ImageDraw.Draw(mask).text((1 - left, 1 - top), text, fill=255, font=font, stroke_width=stroke,
                                  stroke_fill=255)  # fmt: skip
        return np.asarray(mask)
    font = int(rng.choice(HERSHEY_FONTS)) | (cv2.FONT_ITALIC if rng.random() < 0.15 else 0)
    scale = cv2.getFontScaleFromHeight(font, height)
    thickness = int(rng.integers(max(1, height // 14), max(2, height // 5) + 1))
    (width, text_height), baseline = cv2.getTextSize(text, font, scale, thickness)
    pad = thickness + 2
    mask = np.zeros((text_height + baseline + 2 * pad, width + 2 * pad), np.uint8)
    cv2.putText(mask, text, (pad, pad + text_height), font, scale, 255, thickness, cv2.LINE_AA)
    return mask


def _paint(background: np.ndarray, mask: np.ndarray, colour: np.ndarray, x: int, y: int) -> None:
    """Blend `colour` into `background` through `mask` at (x, y), clipped to the background."""
    h, w = mask.shape
    region = background[y : y + h, x : x + w]
    alpha = (mask[: region.shape[0], : region.shape[1]].astype(np.float32) / 255.0)[:, :, None]
    region[:] = (region * (1 - alpha) + colour * alpha).astype(np.uint8)


def _fold(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A cloth fold: a smooth sinusoidal displacement of the rows and columns, plus matching shading."""
    h, w = image.shape[:2]
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    amplitude = rng.uniform(0, 0.06) * min(h, w)
    phase, period = rng.uniform(0, 2 * np.pi), rng.uniform(0.6, 2.0) * w
    map_x = xs + amplitude * np.sin(2 * np.pi * ys / period + phase)
    map_y = ys + amplitude * np.sin(2 * np.pi * xs / period + phase)
    folded = cv2.remap(image, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
    shade = 1.0 + rng.uniform(0, 0.35) * np.sin(2 * np.pi * xs / period + phase)[:, :, None]
    return np.clip(folded * shade, 0, 255).astype(np.uint8)


def _jersey_text(rng: np.random.Generator) -> str:
    return str(int(rng.integers(0, 10) if rng.random() < 0.3 else rng.integers(10, 100)))


def render_jersey_crop(text: str, rng: np.random.Generator) -> np.ndarray:
    """A jersey number region: the number, often outlined, on a plain or striped shirt, folded, with a loose
    margin as a detector or a hand-drawn box would leave."""
    height = int(rng.integers(28, 64))
    mask = _text_image(text, height, rng)
    shirt = _random_colour(rng)
    ink = _contrasting(shirt, rng, rng.uniform(40, 160))
    margin_x, margin_y = (int(rng.uniform(0.05, 0.5) * mask.shape[0]) for _ in range(2))
    patch = np.empty((mask.shape[0] + 2 * margin_y, mask.shape[1] + 2 * margin_x, 3), np.uint8)
    patch[:] = shirt
    if rng.random() < 0.2:  # stripes
        stripe = _random_colour(rng)
        period = int(rng.integers(6, 20))
        columns = (np.arange(patch.shape[1]) // period) % 2 == 1
        patch[:, columns] = stripe
    if rng.random() < 0.4:  # an outline in a third colour
        outline = cv2.dilate(mask, np.ones((3, 3), np.uint8), iterations=int(rng.integers(1, 3)))
        _paint(patch, outline, _contrasting(ink, rng, 60), margin_x, margin_y)
    _paint(patch, mask, ink, margin_x, margin_y)
    return _fold(patch, rng) if rng.random() < 0.7 else patch


def _bib_text(rng: np.random.Generator) -> str:
    digits = int(rng.choice([1, 2, 3, 3, 4, 4, 4, 5, 5, 6]))
    text = "".join(str(d) for d in rng.integers(0, 10, digits))
    return text if rng.random() < 0.3 or text[0] != "0" else str(int(rng.integers(1, 10))) + text[1:]


def _word(rng: np.random.Generator, letters: int) -> str:
    return "".join(rng.choice(list(string.ascii_uppercase), letters))


def render_bib_crop(text: str, rng: np.random.Generator, prefix: str = "") -> np.ndarray:
    """A race bib: a light card with the number (maybe after a letter prefix) in large print, sponsor words
    above and below in small print, often a coloured band; either the whole bib or a tight cut of its line."""
    height = int(rng.integers(24, 60))
    mask = _text_image(prefix + text, height, rng)
    card_colour = rng.integers(170, 256, 3) if rng.random() < 0.8 else _random_colour(rng)
    ink = _contrasting(card_colour, rng, 100)
    if rng.random() < 0.4:  # a tight text line, as the text detector cuts it out of a torso
        pad_x, pad_y = int(rng.uniform(0.02, 0.3) * height), int(rng.uniform(0.02, 0.25) * height)
        card = np.empty((mask.shape[0] + 2 * pad_y, mask.shape[1] + 2 * pad_x, 3), np.uint8)
        card[:] = card_colour
        _paint(card, mask, ink, pad_x, pad_y)
        return card
    width = int(mask.shape[1] * rng.uniform(1.1, 1.6))
    top, bottom = int(height * rng.uniform(0.3, 0.9)), int(height * rng.uniform(0.3, 0.9))
    card = np.empty((mask.shape[0] + top + bottom, width, 3), np.uint8)
    card[:] = card_colour
    if rng.random() < 0.5:
        band = _random_colour(rng)
        card[: int(top * 0.8)] = band
        card[card.shape[0] - int(bottom * 0.8) :] = band
    for y, space in ((0, top), (card.shape[0] - bottom, bottom)):
        if rng.random() < 0.7 and space > 8:
            word = _text_image(_word(rng, int(rng.integers(3, 9))), int(space * rng.uniform(0.35, 0.6)), rng)
            word = word[:, : width - 2]
            _paint(card, word, _contrasting(card_colour, rng, 60), int(rng.integers(0, width - word.shape[1] + 1)),
                   y + (space - word.shape[0]) // 2)  # fmt: skip
    _paint(card, mask, ink, (width - mask.shape[1]) // 2, top)
    return _fold(card, rng) if rng.random() < 0.3 else card


def render_negative_crop(rng: np.random.Generator) -> np.ndarray:
    """A crop with no digit: a plain or folded shirt patch, or a sponsor word."""
    shirt = _random_colour(rng)
    if rng.random() < 0.5:
        h = int(rng.integers(20, 60))
        patch = np.empty((h, int(h * rng.uniform(0.6, 2.0)), 3), np.uint8)
        patch[:] = shirt
        return _fold(patch, rng)
    mask = _text_image(_word(rng, int(rng.integers(2, 8))), int(rng.integers(20, 48)), rng)
    patch = np.empty((mask.shape[0] + 8, mask.shape[1] + 8, 3), np.uint8)
    patch[:] = shirt
    _paint(patch, mask, _contrasting(shirt, rng), 4, 4)
    return patch


def render_training_crop(rng: np.random.Generator) -> tuple[np.ndarray, str]:
    """One random recognizer training crop and its digit string: jerseys 45 %, bibs 45 % (a third of them
    with a letter prefix that the label leaves out), negatives 10 % (label "")."""
    kind = rng.random()
    if kind < 0.45:
        text = _jersey_text(rng)
        return render_jersey_crop(text, rng), text
    if kind < 0.9:
        text = _bib_text(rng)
        prefix = _word(rng, 1) if rng.random() < 0.35 else ""
        return render_bib_crop(text, rng, prefix), text
    return render_negative_crop(rng), ""


def render_video(path: Path, sprites: list[np.ndarray], size: tuple[int, int] = (640, 360), frames: int = 90,
                 fps: float = 25.0, seed: int = 0) -> list[dict]:  # fmt: skip
    """A fixed-camera video of `sprites` (people crops, e.g. `render_player`) walking across a pitch.

    Sprite k enters from the left, staggered; a grey pole in the middle occludes everyone passing it; the first
    sprite walks out on the right and comes back in from the right halfway through. Written with OpenCV's mp4v
    codec. Returns per sprite its number-free ground truth: the frames where it is fully in view.
    """
    rng = np.random.default_rng(seed)
    width, height = size
    pitch = np.full((height, width, 3), (60, 140, 60), np.uint8)
    pitch = np.clip(pitch + rng.normal(0, 6, pitch.shape), 0, 255).astype(np.uint8)
    for x in range(0, width, width // 6):
        cv2.line(pitch, (x, 0), (x, height), (200, 220, 200), 2)
    sprite_height = int(height * 0.55)
    scaled = [cv2.resize(s, (max(1, int(s.shape[1] * sprite_height / s.shape[0])), sprite_height)) for s in sprites]
    pole = (width // 2 - width // 40, width // 2 + width // 40)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (width, height))
    if not writer.isOpened():
        raise RuntimeError(f"cannot write video {path}")
    truth = [{"sprite": k, "frames_in_view": 0} for k in range(len(sprites))]
    speed = width / (frames * 0.45)  # px per frame: a sprite crosses the frame in about half the video
    for index in range(frames):
        frame = pitch.copy()
        for k, sprite in enumerate(scaled):
            h, w = sprite.shape[:2]
            if k == 0 and index >= frames // 2:  # back in from the right, walking left
                x = int(width - (index - frames // 2) * speed)
            else:
                x = int(-w + (index - 14 * k) * speed)
            y = int(height * 0.3) + (k % 2) * int(height * 0.08)
            if x >= 0 and x + w <= width and y + h <= height:
                frame[y : y + h, x : x + w] = sprite
                truth[k]["frames_in_view"] += 1
        cv2.rectangle(frame, (pole[0], 0), (pole[1], height), (120, 120, 120), -1)
        writer.write(frame)
    writer.release()
    return truth


CLIP_NUMBERS = (7, 23, 58)


def render_players_clip(path: Path, size: tuple[int, int] = (640, 360), frames: int = 90) -> list[dict]:
    """`render_video` of three drawn players numbered CLIP_NUMBERS: the demo's default input, the video tests'
    and the demo benchmark's clip."""
    sprites = [render_player(str(n), 200, *SHIRT_COLOURS[i]) for i, n in enumerate(CLIP_NUMBERS)]
    return render_video(path, sprites, size=size, frames=frames)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--numbers", type=int, nargs="+", default=[7, 10, 23, 58, 99])
    parser.add_argument("--frames", type=int, default=6)
    args = parser.parse_args()
    labels = write_sample_tracklets(args.out_dir / "tracklets", args.numbers, args.frames)
    write_json_atomic(args.out_dir / "labels.json", labels)


if __name__ == "__main__":
    main()
