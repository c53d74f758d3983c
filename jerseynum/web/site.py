"""What the race-photo site knows and does, apart from HTTP: where the index and the photos are, the searches,
thumbnails and renditions, the selfie match and the reviewer's corrections. `app.py` puts routes over it.

Each call opens its own read-only `PhotoIndex` (SQLite connections cannot cross threads; WAL mode lets the site
read while a tagger is still writing; read-only, it works on an index it may not write). Only a reviewer's
correction opens it for writing, one at a time.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import math
import os
import threading
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from jerseynum.io import ImageError, decode_image, read_image_file
from jerseynum.photos.index import (
    BibNumber,
    IndexFileError,
    Match,
    PhotoIndex,
    PhotoRecord,
    StaleReadsError,
    bib_digits,
    exact_and_near,
)

PER_PAGE = 24
REVIEW_BELOW = 0.9  # the review page lists shown numbers less likely right than this
# A selfie matches a runner within this face distance: dlib's own same-person threshold (a selfie is a large,
# sharp face; the event's clusters use 0.45 between two small ones)
SELFIE_DISTANCE = 0.6
MAX_ZIP = 500  # photos in one "download all" zip
BROWSER_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif"}  # served as they are; others as a JPEG
THUMB_SIZE = 320  # px, the longer side
MAX_QUERY = 12  # digits
MAX_NAME = 60  # characters of a name query
MAX_ENTRANTS = 20  # entrants listed for one name query


def clean_query(raw: str) -> str:
    """The digits of a query as ASCII (full-width "３６３８" is 3638), at most MAX_QUERY of them."""
    return bib_digits(raw)[:MAX_QUERY]


def parse_page(raw: str) -> int:
    try:
        return max(1, int(raw))
    except ValueError:
        return 1


def parse_below(raw: str) -> float:
    """The review page's probability bound from a query: REVIEW_BELOW where absent or not a number in 0-1.01."""
    try:
        value = float(raw)
    except ValueError:
        return REVIEW_BELOW
    return value if 0 <= value <= 1.01 else REVIEW_BELOW


def _percent(value: float, total: int) -> float:
    return min(100.0, max(0.0, 100.0 * value / total))


def box_style(number: BibNumber, photo: PhotoRecord) -> str | None:
    """The CSS placing a number's box over its photo (percentages of the photo's size); None where unknown."""
    x1, y1, x2, y2 = number.box
    if not photo.width or not photo.height or x2 <= x1 or y2 <= y1:  # a number a person added has no box
        return None
    left, top = _percent(x1, photo.width), _percent(y1, photo.height)
    width, height = _percent(x2, photo.width) - left, _percent(y2, photo.height) - top
    return f"left:{left:.2f}%;top:{top:.2f}%;width:{width:.2f}%;height:{height:.2f}%"


def likeness(distance: float) -> str:
    """How sure a face match is, in words (dlib's face distances: the same person mostly under 0.45)."""
    return "very likely you" if distance < 0.4 else "likely you" if distance < 0.5 else "maybe you"


@dataclass(frozen=True)
class SearchResult:
    """A bib's photos: its own (`matches`, exact) and the near numbers apart (`near`: another bib containing
    the number, or one digit off; strangers' more often than not)."""

    query: str
    matches: list[Match]
    near: list[Match]


class PhotoSite:
    """The photos of one index, for the pages and the API."""

    def __init__(self, index_path: Path, photos_root: Path, selfie_search: bool = False,
                 review_password: str | None = None) -> None:  # fmt: skip
        self.index_path = Path(index_path)
        self.photos_root = Path(photos_root).resolve()
        self.selfie_search = selfie_search
        self.review_password = review_password or None  # None: no review page
        self._writing = threading.Lock()  # one correction (and re-decision of the event) at a time
        self._face_models = None  # (finder, embedder), built on the first selfie
        self._face_lock = threading.Lock()
        # Keyed by the file and its content hash, so a re-tagged, changed photo gets a fresh thumbnail.
        self.thumbnail = functools.lru_cache(maxsize=512)(self._make_thumbnail)
        # Decoding is CPU-bound and a 24 MP photo takes 70 MB: more at once than cores only costs memory.
        self._decoding = threading.BoundedSemaphore(os.cpu_count() or 2)

    def index(self) -> PhotoIndex:
        return PhotoIndex(self.index_path, read_only=True)

    def search(self, query: str, exact_only: bool = False) -> SearchResult:
        with self.index() as index:
            found = index.search(query, partial=not exact_only, max_distance=0 if exact_only else 1)
        return SearchResult(query, *exact_and_near(found))

    def exact_photos(self, query: str) -> list[PhotoRecord]:
        with self.index() as index:
            return [m.photo for m in index.search(query, partial=False, max_distance=0)] if query else []

    def selfie_matches(self, data: bytes) -> list[tuple[float, PhotoRecord]]:
        """The photos of the runner whose face is in the uploaded selfie, nearest face first, as (face distance,
        photo). The upload lives in memory for this call only: never stored, never logged. Raises `ImageError`
        where it is no image or shows no face."""
        from jerseynum.photos.identity import FaceEmbedder
        from jerseynum.photos.runners import FaceRunnerFinder

        # a phone's photo is often HEIC, told by its header (`decode_image` goes by the name)
        heif = data[4:8] == b"ftyp" and data[8:12] in (b"heic", b"heix", b"mif1", b"msf1", b"hevc")
        image, _ = decode_image(data, "selfie.heic" if heif else "selfie", 40_000_000)
        with self._face_lock:  # the face models are not thread-safe; one selfie at a time is plenty
            if self._face_models is None:
                self._face_models = FaceRunnerFinder(), FaceEmbedder()
            finder, embedder = self._face_models
            faces = finder.faces(image)
            if not faces:
                raise ImageError("selfie", "no face found: a photo of your face, from the front, works best")
            box, _ = max(faces, key=lambda face: (face[0][2] - face[0][0]) * (face[0][3] - face[0][1]))
            query = embedder.embed(image, box)
        if query is None:
            raise ImageError("selfie", "the face is too small: come closer")
        with self.index() as index:
            best: dict[str, float] = {}
            for runner in index.runner_reads():
                if runner.read.face_embedding is not None:
                    distance = float(np.linalg.norm(runner.read.face_embedding - query))
                    if distance <= SELFIE_DISTANCE and distance < best.get(runner.path, math.inf):
                        best[runner.path] = distance
            found = [(distance, index.photo_at(path)) for path, distance in best.items()]
        return sorted((item for item in found if item[1] is not None), key=lambda item: (item[0], item[1].path))

    def file_of(self, photo: PhotoRecord) -> Path | None:
        """The photo's file, only if it lies inside the photo folder (symlinks and '..' resolved) and exists."""
        path = (self.photos_root / photo.path).resolve()
        if not path.is_relative_to(self.photos_root) or not path.is_file():
            return None
        return path

    def rendition(self, path: Path) -> bytes:
        """A full-size JPEG of a photo whose format browsers do not show (TIFF, RAW, HEIC)."""
        with self._decoding:
            image, _ = read_image_file(path)
        ok, encoded = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 92])
        if not ok:
            raise ImageError(str(path), "cannot encode a JPEG rendition")
        return encoded.tobytes()

    def _make_thumbnail(self, path: Path, sha256: str, size: int = 0) -> bytes:
        """A JPEG thumbnail of the photo; raises `ImageError` for a file gone, unreadable or over the pixel budget
        (an error is not cached: a photo put back is served again)."""
        with self._decoding:
            image, _ = read_image_file(path)
        height, width = image.shape[:2]
        scale = (size or THUMB_SIZE) / max(height, width)
        if scale < 1:
            size = (max(1, round(width * scale)), max(1, round(height * scale)))
            image = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
        ok, encoded = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 85])
        if not ok:
            raise ImageError(str(path), "cannot encode a thumbnail")
        return encoded.tobytes()

    def review_token(self) -> str:
        """What each review form carries: a page of another site, which cannot read it, cannot post a correction
        in the reviewer's name (the browser would send their password along)."""
        return hmac.new(self.review_password.encode(), b"jerseynum review", hashlib.sha256).hexdigest()

    def apply_review(self, fields: dict[str, str]) -> str:
        """A reviewer's correction, saved and the event re-decided; what was done, in words. Raises ValueError
        for a correction without its number or of a photo not in the index."""
        from jerseynum.photos.event import redecide

        path, action = fields.get("path", ""), fields.get("action", "")
        number, new = bib_digits(fields.get("number", "")), bib_digits(fields.get("new", ""))
        said = {"confirm": [(number, "confirm")], "remove": [(number, "remove")], "add": [(new, "add")],
                "replace": [(number, "remove"), (new, "add")]}.get(action)  # fmt: skip
        if said is None or not all(digits for digits, _ in said):
            raise ValueError("a correction needs its number: type the digits")
        if any(len(digits) > MAX_QUERY for digits, _ in said):  # no search could find it
            raise ValueError(f"a bib number has at most {MAX_QUERY} digits")
        if not self.index_path.is_file():  # opening it to write would make a new, empty one
            raise IndexFileError(f"no index at {self.index_path}")
        with self._writing, PhotoIndex(self.index_path) as index:
            if path not in index.known():
                raise ValueError("that photo is not in the index")
            for digits, what in said:
                index.correct(path, digits, what)
            done = f"{path}: " + ", ".join(f"{what} {digits}" for digits, what in said)
            try:
                redecide(index)
            except StaleReadsError:  # a `tag` run keeps saving photos: its end decides the event, this included
                return f"{done} (saved; it shows once the tagging run now saving photos ends)"
        return done
