"""Reading images and tracklet folders, and writing SoccerNet's challenge JSON.

A tracklet folder is SoccerNet's layout: `<root>/<tracklet id>/<frame>.jpg`. Bad input never raises out of
`load_image`'s callers unnoticed: it raises `ImageError`, which the pipeline records in the frame's evidence.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from pathlib import Path

import cv2
import numpy as np

from jerseynum.types import Frame, Tracklet

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"}


class ImageError(ValueError):
    """An image file that is missing, unreadable or empty."""


class TrackletFolderError(ValueError):
    """A tracklet root that is not a folder, or holds no tracklet folders."""


def load_image(frame: Frame) -> np.ndarray:
    """The frame's BGR image, decoded from its source on first use."""
    if frame.image is None:
        # imdecode of the raw bytes, not imread: it handles non-ASCII paths and reports nothing to stderr.
        try:
            data = np.fromfile(frame.source, dtype=np.uint8)
        except OSError as error:
            raise ImageError(f"cannot read {frame.source}: {error.strerror}") from error
        image = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
        if image is None:
            raise ImageError(f"not a decodable image: {frame.source}")
        frame.image = image
    return frame.image


def natural_key(name: str) -> list[object]:
    """Sort key putting frame 2 before frame 10."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name)]


def image_paths(folder: Path) -> list[Path]:
    images = (p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    return sorted(images, key=lambda p: natural_key(p.name))


def list_tracklets(root: Path) -> list[Tracklet]:
    """Every tracklet under `root`, one per sub-folder, in natural order of the ids; empty ones included."""
    root = Path(root)
    if not root.is_dir():
        raise TrackletFolderError(f"not a folder: {root}")
    folders = sorted((p for p in root.iterdir() if p.is_dir()), key=lambda p: natural_key(p.name))
    if not folders:
        raise TrackletFolderError(f"no tracklet sub-folders in {root} (expected {root}/<tracklet id>/<frame>.jpg)")
    return [Tracklet.from_paths(folder.name, image_paths(folder)) for folder in folders]


def write_json_atomic(path: Path, data: object) -> None:
    """Write JSON so that `path` holds either its old content or the whole new one, never a partial file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile("w", dir=path.parent, suffix=".tmp", delete=False) as handle:
        try:
            json.dump(data, handle, indent=1)
            handle.write("\n")
        except BaseException:
            handle.close()
            os.unlink(handle.name)
            raise
    os.replace(handle.name, path)


def read_labels(path: Path) -> dict[str, int]:
    """A `{"<id>": number}` ground-truth file (SoccerNet's gt.json layout)."""
    return {str(key): int(value) for key, value in json.loads(Path(path).read_text()).items()}
