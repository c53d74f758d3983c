"""Appearance signatures of the runners found in race photos, and clustering them into one identity per runner.

Photographers shoot bursts and a runner passes several of them, so the same runner appears in many photos. Where
their bib is read confidently in one photo, it can be propagated to the photos of the same runner where it is
hidden or blurred. A runner's signature holds three cues:
- face: dlib's ResNet face descriptor (128-d; same-person pairs of RBNR runner crops: AUC 0.95,
  ../shared/FINDINGS.md), the main cue. Its models are public domain (Davis King), its code Boost-licensed.
- colour: a hue-saturation histogram of the clothing below the face. Clothes do not change during a race, but
  many runners wear similar colours (club kits, white bibs), so colour only counts between photos of one burst,
  seconds apart, where few runners are in view.
- time: when the photo was taken (EXIF), which says whether two photos are of one burst.
"""

from __future__ import annotations

import importlib.util
import io
import math
import warnings
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import cv2
import numpy as np

from jerseynum.types import Box
from jerseynum.weights import FACE_NETWORK

INSTALL_HINT = "pip install dlib-bin==20.0.1.post1 face-recognition-models==0.3.0"
FACE_CHIP_PX = 150  # the side of the aligned chip dlib's ResNet takes

# Clothing histogram: 8 hues (rotated half a bin so that red, which wraps around 0, is one bin) x 4 saturations
# for coloured pixels, and 3 brightness bins (black, grey, white) for pixels too grey or too dark to have a hue.
HUE_BINS, SAT_BINS, GREY_BINS = 8, 4, 3
COLOUR_BINS = HUE_BINS * SAT_BINS + GREY_BINS
MIN_SAT = MIN_VALUE = 48  # OpenCV's 0-255 HSV scale: below either, the hue is noise
# The torso below the face, in face sizes: from half a face height below the chin (skipping the neck) to 3 face
# heights (above the shorts), 1 face width either side of the face centre (inside the shoulders, so little
# background). The bib lies inside it (1.4-3.8 face heights below the face): every runner's white bib is part
# of their histogram, which lowers the contrast between runners but is the same in each of one runner's photos.
TORSO_TOP, TORSO_BOTTOM, TORSO_SIDE = 0.5, 3.0, 1.0
HISTOGRAM_SAMPLES = 100  # per side: the histogram of a large torso is taken over every n-th pixel
# Where no clothing was seen (an empty torso box): uniform, and no evidence of anything, not a colour two such
# runners share.
UNSEEN_COLOUR = np.full(COLOUR_BINS, 1 / COLOUR_BINS, np.float32)

EXIF_IFD, DATE_TIME_ORIGINAL, SUBSEC_TIME_ORIGINAL = 0x8769, 36867, 37521


@dataclass(frozen=True, eq=False)  # eq=False: numpy arrays have no single truth value to compare or hash by
class Signature:
    """What one runner in one photo looks like."""

    face: np.ndarray | None  # dlib's 128-d descriptor (float32, as dlib scales it); None where no usable face
    colour: np.ndarray  # clothing_colour(): an L1-normalised histogram of COLOUR_BINS bins
    time: float | None = None  # when the photo was taken, in seconds (photo_time()); None where unknown

    def __post_init__(self) -> None:
        if self.face is not None:
            object.__setattr__(self, "face", np.asarray(self.face, np.float32))
        object.__setattr__(self, "colour", np.asarray(self.colour, np.float32))


@dataclass(frozen=True)
class IdentitySettings:
    """The distance rule: one number per pair of runners, in the units of dlib's face distance.

    - Both faces: their distance, less up to `colour_bonus` when the photos are one burst and the clothes agree
      (all of it for identical histograms, none from a colour distance of `colour_same` on). Disagreeing clothes
      add nothing: the torso of a runner half hidden behind another shows the other's shirt.
    - A face missing (too small to embed), same burst: the colour distance scaled so that `colour_same` lands on
      `link_distance`, i.e. clothes under `colour_same` apart may link.
    - Otherwise (a face missing and not one burst, or a time unknown): `unrelated`, no evidence either way.

    Measured on the RBNR runner crops (faces 30-120 px, mediapipe boxes; same bib in one set = same runner).
    """

    # Clusters join while their average distance is at most this. dlib's own same-person threshold, 0.6, is for
    # larger faces: on RBNR set1 it joins 123 pairs of different runners against 26 right ones; 0.45 joins 1
    # against 21 (a bib propagated to the wrong runner costs more than one left unpropagated).
    link_distance: float = 0.45
    max_gap: float = 10.0  # seconds: photos this close are one burst, in which clothing colour is telling
    # Colour distance (1 - histogram intersection) under which clothes count as the same: 57 % of same-runner
    # pairs, and 5 % of pairs of different runners in one or adjacent photos (0.25: 77 % and 8 %).
    colour_same: float = 0.2
    colour_bonus: float = 0.1  # the most that same-burst clothing agreement takes off a face distance
    # A pair with no usable evidence: farther apart than the faces of different runners usually are (median 0.72
    # on RBNR), so it weighs against a merge; finite, so that in a large cluster it does not veto one.
    unrelated: float = 1.0


class FaceEmbedderMissing(FileNotFoundError):
    """The face network's ONNX file is not built."""


class FaceEmbedder:
    """dlib's face descriptor of a face box: dlib's 5-point alignment into a 150 px chip, then dlib's ResNet.

    The ResNet runs under ONNX Runtime (`models/built/dlib-face-resnet.onnx`, rebuilt at install from the weights
    in face-recognition-models by `scripts/build_face_embedder.py`): dlib's own build here has no BLAS and took
    ~110 ms a face, ONNX Runtime ~5 ms, with the same descriptors to 1e-6 (docs/results.md, "Race photos: speed")."""

    def __init__(self, min_face_px: int = 20, threads: int = 0, weights: Path = FACE_NETWORK) -> None:
        try:
            import dlib
        except ImportError as error:
            raise ImportError(f"face embeddings need dlib and its models: {INSTALL_HINT}") from error
        import onnxruntime

        self.min_face_px = min_face_px  # smaller faces give descriptors that are mostly noise
        models = face_models_folder()
        # Only the 5-point landmark model: the 68-point one in the same package
        # (shape_predictor_68_face_landmarks.dat) is licensed for non-commercial use only. Never load it.
        self._landmarks = dlib.shape_predictor(str(models / "shape_predictor_5_face_landmarks.dat"))
        if not Path(weights).is_file():
            raise FaceEmbedderMissing(f"the face network is not built: {weights} (run .venv/bin/python"
                                      " scripts/build_face_embedder.py, which bash scripts/install.sh runs)")  # fmt: skip
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads
        self._net = onnxruntime.InferenceSession(str(weights), options, providers=["CPUExecutionProvider"])
        self._chip = dlib.get_face_chip
        self._rectangle = dlib.rectangle

    def embed(self, photo_bgr: np.ndarray, face: Box) -> np.ndarray | None:
        """The 128-d float32 descriptor of the face in this box; None for a face under `min_face_px`."""
        x1, y1, x2, y2 = face
        if min(x2 - x1, y2 - y1) < self.min_face_px:
            return None
        # dlib's aligned 150 px chip spans the face and a quarter of it around: a face width of margin covers it,
        # and only that part of a large photo is converted to RGB.
        height, width = photo_bgr.shape[:2]
        margin = max(x2 - x1, y2 - y1)
        cx1, cy1 = max(0, x1 - margin), max(0, y1 - margin)
        cx2, cy2 = min(width, x2 + margin), min(height, y2 + margin)
        rgb = np.ascontiguousarray(cv2.cvtColor(photo_bgr[cy1:cy2, cx1:cx2], cv2.COLOR_BGR2RGB))
        shape = self._landmarks(rgb, self._rectangle(int(x1 - cx1), int(y1 - cy1), int(x2 - cx1), int(y2 - cy1)))
        # The chip dlib's compute_face_descriptor cuts (size 150, padding 0.25), for the same network.
        chip = self._chip(rgb, shape, size=FACE_CHIP_PX, padding=0.25)
        return self._net.run(None, {"chips": chip[None]})[0][0].astype(np.float32)


def face_models_folder() -> Path:
    """The models folder of face-recognition-models, found without importing the package: its __init__ imports
    pkg_resources, which setuptools 81+ no longer ships (its functions only join the same paths)."""
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError(f"face embeddings need dlib and its models: {INSTALL_HINT}")
    return Path(next(iter(spec.submodule_search_locations))) / "models"


def clothing_colour(photo_bgr: np.ndarray, face_box: Box) -> np.ndarray:
    """The L1-normalised colour histogram (COLOUR_BINS float32) of the torso below this face; uniform where that
    region is empty (a face at the photo's bottom edge)."""
    x1, y1, x2, y2 = face_box
    face_w, face_h = x2 - x1, y2 - y1
    centre = (x1 + x2) / 2
    torso = (int(centre - TORSO_SIDE * face_w), int(y2 + TORSO_TOP * face_h), int(centre + TORSO_SIDE * face_w),
             int(y2 + TORSO_BOTTOM * face_h))  # fmt: skip
    return colour_histogram(photo_bgr, torso)


def body_colour(photo_bgr: np.ndarray, body_box: Box) -> np.ndarray:
    """`clothing_colour` of a runner found by their body alone (no face): the torso's share of the body box."""
    x1, y1, x2, y2 = body_box
    width, height = x2 - x1, y2 - y1
    return colour_histogram(photo_bgr, (int(x1 + 0.25 * width), int(y1 + 0.2 * height), int(x2 - 0.25 * width),
                                        int(y1 + 0.55 * height)))  # fmt: skip


def colour_histogram(photo_bgr: np.ndarray, box: Box) -> np.ndarray:
    """The L1-normalised colour histogram (COLOUR_BINS float32) of the box's pixels, clipped to the photo;
    `UNSEEN_COLOUR` where that is empty."""
    height, width = photo_bgr.shape[:2]
    tx1, ty1, tx2, ty2 = max(0, box[0]), max(0, box[1]), min(width, box[2]), min(height, box[3])
    if tx2 <= tx1 or ty2 <= ty1:
        return UNSEEN_COLOUR.copy()
    step = max(1, max(tx2 - tx1, ty2 - ty1) // HISTOGRAM_SAMPLES)
    region = np.ascontiguousarray(photo_bgr[ty1:ty2:step, tx1:tx2:step])
    hsv = cv2.cvtColor(region, cv2.COLOR_BGR2HSV).reshape(-1, 3).astype(np.int32)
    hue, sat, value = hsv[:, 0], hsv[:, 1], hsv[:, 2]
    hue_bin = (hue * 2 * HUE_BINS + 180) // 360 % HUE_BINS  # hue is 0-179 (half degrees), bins centred on red
    sat_bin = np.minimum((sat - MIN_SAT) * SAT_BINS // (256 - MIN_SAT), SAT_BINS - 1)
    grey_bin = np.where(value < MIN_VALUE, 0, np.minimum(value * GREY_BINS // 256, GREY_BINS - 1))
    coloured = (sat >= MIN_SAT) & (value >= MIN_VALUE)
    index = np.where(coloured, hue_bin * SAT_BINS + sat_bin, HUE_BINS * SAT_BINS + grey_bin)
    counts = np.bincount(index, minlength=COLOUR_BINS).astype(np.float32)
    return counts / counts.sum()


def photo_time(data: bytes) -> float | None:
    """When the photo was taken: EXIF DateTimeOriginal (+ SubsecTimeOriginal), in seconds. The camera's local
    time is read as if it were UTC: only differences between one photographer's photos matter. None where the
    file has no such tag or it is malformed; never raises."""
    from PIL import Image

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # Pillow warns on large or odd files; only the header is read
            with Image.open(io.BytesIO(data)) as image:
                exif = image.getexif().get_ifd(EXIF_IFD)
        taken = datetime.strptime(str(exif[DATE_TIME_ORIGINAL]).strip("\x00 "), "%Y:%m:%d %H:%M:%S")
        seconds = taken.replace(tzinfo=timezone.utc).timestamp()
        subsec = str(exif.get(SUBSEC_TIME_ORIGINAL, "")).strip("\x00 ")
        return seconds + float(f"0.{subsec}") if subsec.isdigit() else seconds
    except Exception:  # noqa: BLE001 (Pillow raises many kinds on a broken file; a missing time is no error)
        return None


@dataclass(frozen=True)
class _Stack:
    """Signatures as arrays, so that one query is compared with many at once."""

    faces: np.ndarray  # (n, 128); rows of NaN where there is no face
    colours: np.ndarray  # (n, COLOUR_BINS)
    times: np.ndarray  # (n,); NaN where unknown

    @classmethod
    def of(cls, signatures: list[Signature]) -> _Stack:
        dims = next((len(s.face) for s in signatures if s.face is not None), 128)
        faces = np.array([s.face if s.face is not None else np.full(dims, np.nan) for s in signatures], np.float64)
        return cls(
            faces.reshape(len(signatures), dims),
            np.array([s.colour for s in signatures], np.float64).reshape(len(signatures), -1),
            np.array([math.nan if s.time is None else s.time for s in signatures], np.float64),
        )


def _distances(query: Signature, stack: _Stack, settings: IdentitySettings) -> np.ndarray:
    """distance() from the query to each stacked signature (the one implementation of the rule)."""
    colour = 1 - np.minimum(stack.colours, query.colour).sum(axis=1)
    unseen = np.all(stack.colours == UNSEEN_COLOUR, axis=1) | bool(np.all(query.colour == UNSEEN_COLOUR))
    colour[unseen] = 1.0  # clothes not seen on either side agree on nothing
    burst = np.abs(stack.times - (math.nan if query.time is None else query.time)) <= settings.max_gap
    if query.face is None:
        face = np.full(len(colour), np.nan)
    else:
        face = np.linalg.norm(stack.faces - query.face.astype(np.float64), axis=1)  # NaN where no face
    agreement = np.clip(1 - colour / settings.colour_same, 0, 1) * burst
    with_faces = np.maximum(0.0, face - settings.colour_bonus * agreement)
    by_colour = np.where(
        burst,
        np.minimum(settings.link_distance * colour / settings.colour_same, settings.unrelated),
        settings.unrelated,
    )
    return np.where(np.isnan(face), by_colour, with_faces)


def distance(a: Signature, b: Signature, settings: IdentitySettings = IdentitySettings()) -> float:
    """How unlike two runners are, in dlib face-distance units (the rule: IdentitySettings); 0 = the same."""
    return float(_distances(a, _Stack.of([b]), settings)[0])


def rank_matches(
    query: Signature, gallery: list[Signature], settings: IdentitySettings = IdentitySettings()
) -> list[int]:
    """Indices into the gallery, nearest runner first (ties in gallery order): "all photos of this runner"."""
    if not gallery:
        return []
    return np.argsort(_distances(query, _Stack.of(gallery), settings), kind="stable").tolist()


def cluster(
    signatures: list[Signature],
    settings: IdentitySettings = IdentitySettings(),
    photo_ids: list[int] | None = None,
) -> list[int]:
    """One label per signature (0..k-1, numbered in order of first appearance): average-linkage agglomerative
    clustering on distance(), joining clusters while their average distance is at most `settings.link_distance`.

    Runners with the same `photo_ids` entry are different people and never end in one cluster (a cannot-link:
    their pair distance is so large that any cluster holding both averages far above the threshold; average
    linkage has no inversions, so no merge under the threshold contains one). Deterministic for a given order.
    Time and memory are O(n^2): fine for a few thousand runners; a large race would be clustered per time window
    (runners pass the photographers in order of pace)."""
    from scipy.cluster.hierarchy import fcluster, linkage
    from scipy.spatial.distance import squareform

    n = len(signatures)
    if photo_ids is not None and len(photo_ids) != n:
        raise ValueError(f"{len(photo_ids)} photo ids for {n} signatures")
    if n < 2:
        return [0] * n
    stack = _Stack.of(signatures)
    matrix = np.stack([_distances(signature, stack, settings) for signature in signatures])
    if photo_ids is not None:
        ids = np.asarray(photo_ids)
        # Over n^2 times the threshold: a cluster's average stays above it even with one such pair among n^2.
        matrix[ids[:, None] == ids[None, :]] = (settings.link_distance + 1) * n * n
    tree = linkage(squareform(matrix, checks=False), method="average")  # reads the upper triangle only
    raw = fcluster(tree, t=settings.link_distance, criterion="distance")
    # fcluster's numbering follows the tree; renumber in order of first appearance.
    first: dict[int, int] = {}
    return [first.setdefault(int(label), len(first)) for label in raw]
