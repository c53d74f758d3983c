"""Reading images, tracklet folders and videos, and writing files whole or not at all.

Every image the project reads (a tracklet frame, a race photo, a thumbnail) is decoded by `decode_image`, with a
pixel budget checked from the file's header before any pixel is decoded: a 9 KB PNG that claims 60000 x 60000
pixels is refused in microseconds instead of asking for 10 GB, and a JPEG over the budget is decoded at 1/2, 1/4
or 1/8 scale (libjpeg's DCT scaling, cheap) rather than refused. Every failure is an `ImageError` with the reason;
callers record it and go on.

A tracklet folder is SoccerNet's layout: `<root>/<tracklet id>/<frame>.jpg`.
"""

from __future__ import annotations

import io
import json
import logging
import os
import re
import shutil
import struct
import tempfile
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Self

import cv2
import numpy as np

from jerseynum.types import Frame, Tracklet

log = logging.getLogger("jerseynum")

# Camera RAW files are read through the preview the camera embeds in them (rawpy/LibRaw); HEIC through pillow-heif.
RAW_SUFFIXES = {".cr2", ".cr3", ".nef", ".nrw", ".arw", ".dng", ".orf", ".rw2", ".raf", ".pef", ".srw"}
HEIF_SUFFIXES = {".heic", ".heif"}
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"} | RAW_SUFFIXES | HEIF_SUFFIXES
DEFAULT_MAX_PIXELS = 100_000_000  # a 100-megapixel photo: above any camera a race photographer carries
_JPEG_REDUCED = {2: cv2.IMREAD_REDUCED_COLOR_2, 4: cv2.IMREAD_REDUCED_COLOR_4, 8: cv2.IMREAD_REDUCED_COLOR_8}


class ImageError(ValueError):
    """An image file that is missing, unreadable, empty, corrupt or over the pixel budget: "<source>: <reason>"."""

    def __init__(self, source: str, reason: str) -> None:
        super().__init__(source, reason)  # both in args, so it pickles across worker processes
        self.source, self.reason = source, reason

    def __str__(self) -> str:
        return f"{self.source}: {self.reason}"


class VideoError(ValueError):
    """A video source that cannot be opened or whose frames are over the pixel budget."""


class TrackletFolderError(ValueError):
    """A tracklet root that is not a folder, or holds no tracklet folders."""


def _jpeg_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) from a JPEG's start-of-frame marker, without decoding."""
    position = 2
    while position + 9 < len(data):
        if data[position] != 0xFF:
            return None
        marker = data[position + 1]
        if marker == 0xFF:  # fill byte
            position += 1
            continue
        if marker in (0x01, *range(0xD0, 0xD8)):  # markers without a length
            position += 2
            continue
        (length,) = struct.unpack(">H", data[position + 2 : position + 4])
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):  # SOF0..SOF15
            height, width = struct.unpack(">HH", data[position + 5 : position + 9])
            return width, height
        position += 2 + length
    return None


def image_size(data: bytes, source: str = "image") -> tuple[int, int, str] | None:
    """(width, height, format) read from the header alone; None where the header is not understood."""
    if data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) >= 24 and data[12:16] == b"IHDR":
        width, height = struct.unpack(">II", data[16:24])
        return width, height, "png"
    if data[:2] == b"\xff\xd8":
        size = _jpeg_size(data)
        return (*size, "jpeg") if size else None
    from PIL import Image

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as image:  # reads the header only
                return image.width, image.height, (image.format or "").lower()
    except Image.DecompressionBombError as error:  # over Pillow's own limit of 179 MP
        raise ImageError(source, str(error)) from error
    except Exception:  # noqa: BLE001 (Pillow raises many kinds for a header it does not know; OpenCV decides then)
        return None


def decode_image(data: bytes, source: str, max_pixels: int = DEFAULT_MAX_PIXELS) -> tuple[np.ndarray, float]:
    """A BGR image from encoded bytes, and the factor it was reduced by (1: full size; 2, 4 or 8: a JPEG over
    `max_pixels` decoded at that fraction of its width and height; a RAW file: its full size over its embedded
    preview's). Raises `ImageError` saying why it failed. RAW and HEIF files are told by `source`'s suffix."""
    if not data:
        raise ImageError(source, "empty file")
    suffix = Path(source).suffix.lower()
    if suffix in RAW_SUFFIXES:
        return _decode_raw(data, source, max_pixels)
    if suffix in HEIF_SUFFIXES:
        return _decode_heif(data, source, max_pixels), 1
    size = image_size(data, source)
    reduction = 1
    if size is not None:
        width, height, kind = size
        pixels = width * height
        if pixels == 0:
            raise ImageError(source, f"the header says {width} x {height} pixels")
        if pixels > max_pixels:
            fitting = [f for f in _JPEG_REDUCED if pixels / (f * f) <= max_pixels] if kind == "jpeg" else []
            if not fitting:
                raise ImageError(source, f"{width} x {height} pixels ({pixels / 1e6:.0f} MP) is over the pixel"
                                         f" budget of {max_pixels / 1e6:.0f} MP")  # fmt: skip
            reduction = fitting[0]
    flags = _JPEG_REDUCED.get(reduction, cv2.IMREAD_COLOR)
    try:
        image = cv2.imdecode(np.frombuffer(data, np.uint8), flags)
    except cv2.error as error:  # OpenCV's own limits (e.g. over 2^30 pixels) and decoder failures
        reason = str(error).strip().splitlines()[-1] if str(error).strip() else "decoder error"
        raise ImageError(source, f"cannot decode: {reason}") from error
    if image is None or image.size == 0:
        raise ImageError(source, "not a decodable image")
    if size is None and image.shape[0] * image.shape[1] > max_pixels:  # a header we could not read
        raise ImageError(source, f"{image.shape[1]} x {image.shape[0]} pixels is over the pixel budget")
    return image, reduction


def _decode_raw(data: bytes, source: str, max_pixels: int) -> tuple[np.ndarray, float]:
    """A RAW file's embedded preview (the camera's own JPEG rendering, full or near full size: fast, and the
    colours the photographer saw), else its sensor data developed at half size; and full width / its width."""
    try:
        import rawpy
    except ImportError as error:
        raise ImageError(source, "a RAW file needs rawpy (requirements.txt)") from error

    try:
        with rawpy.imread(io.BytesIO(data)) as raw:
            full_width, full_height = raw.sizes.width, raw.sizes.height
            if full_width * full_height > max_pixels:
                raise ImageError(source, f"{full_width} x {full_height} pixels is over the pixel budget")
            try:
                thumb = raw.extract_thumb()
            except (rawpy.LibRawNoThumbnailError, rawpy.LibRawUnsupportedThumbnailError):
                thumb = None
            if thumb is not None and thumb.format == rawpy.ThumbFormat.JPEG:
                image = cv2.imdecode(np.frombuffer(thumb.data, np.uint8), cv2.IMREAD_COLOR)
            elif thumb is not None and thumb.format == rawpy.ThumbFormat.BITMAP:
                image = cv2.cvtColor(np.ascontiguousarray(thumb.data), cv2.COLOR_RGB2BGR)
            else:
                image = cv2.cvtColor(raw.postprocess(half_size=True, use_camera_wb=True), cv2.COLOR_RGB2BGR)
    except ImageError:
        raise
    except Exception as error:  # LibRaw raises its own kinds for every unreadable file
        raise ImageError(source, f"not a readable RAW file ({type(error).__name__})") from error
    if image is None or image.size == 0:
        raise ImageError(source, "its embedded preview is not decodable")
    return image, full_width / image.shape[1]


def _decode_heif(data: bytes, source: str, max_pixels: int) -> np.ndarray:
    from PIL import Image

    try:
        from pillow_heif import register_heif_opener
    except ImportError as error:
        raise ImageError(source, "a HEIC file needs pillow-heif (requirements.txt)") from error

    register_heif_opener()
    try:
        with Image.open(io.BytesIO(data)) as heif:
            if heif.width * heif.height > max_pixels:
                raise ImageError(source, f"{heif.width} x {heif.height} pixels is over the pixel budget")
            return cv2.cvtColor(np.asarray(heif.convert("RGB")), cv2.COLOR_RGB2BGR)
    except ImageError:
        raise
    except Exception as error:  # Pillow and libheif raise many kinds for a broken file
        raise ImageError(source, f"not a readable HEIC file ({type(error).__name__})") from error


def read_image_file(path: Path | str, max_pixels: int = DEFAULT_MAX_PIXELS) -> tuple[np.ndarray, float]:
    """`decode_image` of a file; a missing or unreadable file (deleted mid-run, say) is an `ImageError` too."""
    try:
        data = Path(path).read_bytes()
    except OSError as error:
        raise ImageError(str(path), f"cannot read the file: {error.strerror or error}") from error
    return decode_image(data, str(path), max_pixels)


def read_image_or_skip(path: Path | str, what: str = "image") -> np.ndarray | None:
    """`read_image_file`'s image, or None with a warning naming `what` was skipped and why (for loops over
    training material, where one bad file is dropped rather than fatal)."""
    try:
        return read_image_file(path)[0]
    except ImageError as error:
        log.warning("unreadable %s skipped: %s", what, error)
        return None


def load_image(frame: Frame, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """The frame's BGR image, decoded from its bytes or its source file on first use."""
    if frame.image is None:
        if frame.data is not None:
            frame.image, _ = decode_image(frame.data, frame.source, max_pixels)
        else:
            frame.image, _ = read_image_file(frame.source, max_pixels)
    return frame.image


class VideoSource:
    """Frames of a camera ("0"), a video file or a stream URL, counted against what the container announces,
    so that a video cut short by corruption is reported instead of passing for a short one."""

    def __init__(self, source: str | int, max_pixels: int = DEFAULT_MAX_PIXELS) -> None:
        self.source = str(source)
        self.live = isinstance(source, int) or self.source.isdigit() or "://" in self.source
        camera = isinstance(source, int) or self.source.isdigit()
        if not camera and "://" not in self.source and not Path(self.source).is_file():
            what = "a folder, not a video file" if Path(self.source).is_dir() else "no such video file"
            raise VideoError(f"{what}: {self.source}")
        what = f"camera {self.source} (is it connected?)" if camera else f"{self.source!r}: not a readable video"
        try:
            self._capture = cv2.VideoCapture(int(self.source) if camera else self.source)
        except cv2.error as error:  # some back ends raise rather than return a capture that is not open
            raise VideoError(f"cannot open {what}: {str(error).strip().splitlines()[-1]}") from error
        if not self._capture.isOpened():
            raise VideoError(f"cannot open {what}")
        width = int(self._capture.get(cv2.CAP_PROP_FRAME_WIDTH))
        height = int(self._capture.get(cv2.CAP_PROP_FRAME_HEIGHT))
        if width * height > max_pixels:
            self._capture.release()
            raise VideoError(f"{self.source}: {width} x {height} frames are over the pixel budget")
        if self.live:
            self._capture.set(cv2.CAP_PROP_BUFFERSIZE, 1)  # the newest frame, not a queue of stale ones
        self.fps = self._capture.get(cv2.CAP_PROP_FPS) or 25.0
        count = int(self._capture.get(cv2.CAP_PROP_FRAME_COUNT))
        self.expected_frames = count if count > 0 and not self.live else None  # what the file announces
        self.frames_read = 0

    def read(self) -> np.ndarray | None:
        """The next frame, or None at the end (or where the video breaks off)."""
        try:
            ok, frame = self._capture.read()
        except cv2.error:
            return None
        if not ok or frame is None:
            return None
        self.frames_read += 1
        return frame

    def __iter__(self) -> Iterator[np.ndarray]:
        while (frame := self.read()) is not None:
            yield frame

    def shortfall(self) -> str | None:
        """Why the frames read fall short of the frames announced; None when they do not (or none were)."""
        if self.frames_read == 0:
            return f"{self.source}: no frame could be read"
        if self.expected_frames and self.frames_read < self.expected_frames:
            return (f"{self.source}: read {self.frames_read} of the {self.expected_frames} frames it announces"
                    " (the file is cut short or corrupt)")  # fmt: skip
        return None

    def close(self) -> None:
        self._capture.release()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def natural_key(name: str) -> tuple[list[object], str]:
    """Sort key putting frame 2 before frame 10, and f01 before f1 on every file system (the name breaks ties)."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name)], name


def image_paths(folder: Path) -> list[Path]:
    images = (p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    return sorted(images, key=lambda p: natural_key(p.name))


def list_tracklets(root: Path) -> list[Tracklet]:
    """Every tracklet under `root`, one per sub-folder, in natural order of the ids; empty ones included. Hidden
    folders (.ipynb_checkpoints, .git) are no tracklets."""
    root = Path(root)
    if not root.is_dir():
        raise TrackletFolderError(f"not a folder: {root}")
    try:
        folders = sorted((p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")),
                         key=lambda p: natural_key(p.name))  # fmt: skip
        if not folders:
            raise TrackletFolderError(f"no tracklet sub-folders in {root} (expected {root}/<tracklet id>/<frame>.jpg)")
        return [Tracklet.from_paths(folder.name, image_paths(folder)) for folder in folders]
    except OSError as error:  # a folder that is unreadable or vanishes while listed
        raise TrackletFolderError(f"cannot list {error.filename or root}: {error.strerror or error}") from error


def check_writable(path: Path) -> None:
    """Fail now, not after hours of work, when `path` cannot be written: its folder is made if need be and a
    scratch file is created and removed there. Raises OSError with the reason."""
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(f"{path} is a folder, not a file")
    blocking = next((folder for folder in path.parents if folder.exists()), None)
    if blocking is not None and not blocking.is_dir():  # "File exists" would not say which
        raise NotADirectoryError(f"{blocking} is a file, not a folder")
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=path.parent, prefix=f".{path.name}.", suffix=".check"):
        pass


def write_text_atomic(path: Path, text: str) -> None:
    """Write `path` so that it holds either its old content or the whole new one, never a partial file; the
    temporary file is removed on every error (a full disk, an interrupt)."""
    _write_atomic(path, text, "w")


def write_bytes_atomic(path: Path, data: bytes) -> None:
    """`write_text_atomic` for bytes."""
    _write_atomic(path, data, "wb")


# The process's umask, read once at import (reading it means setting it): a new file gets the permissions a plain
# open() would give it, not the owner-only ones of a temporary file.
_UMASK = os.umask(0o022)
os.umask(_UMASK)


def _write_atomic(path: Path, data: str | bytes, mode: str) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:  # a file written again keeps its permissions
        permissions = path.stat().st_mode & 0o7777
    except FileNotFoundError:
        permissions = 0o666 & ~_UMASK
    temporary = {"dir": path.parent, "prefix": f".{path.name}.", "suffix": ".tmp", "delete": False}
    with tempfile.NamedTemporaryFile(mode, **temporary) as handle:
        try:
            handle.write(data)
            handle.close()
            os.chmod(handle.name, permissions)
            os.replace(handle.name, path)
        except BaseException:
            Path(handle.name).unlink(missing_ok=True)
            raise


def copy_new_file(source: Path, target: Path) -> tuple[str, Path]:
    """Copy `source` to `target` without ever overwriting a file: a file of the same content already there is
    left ("already there"); a different one keeps its name and the copy gets the next free "name (2).jpg"
    ("renamed"); else "copied". A copy that fails (a full disk) leaves no partial file. Returns what happened
    and where the file is."""
    source, target = Path(source), Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    candidate, attempt = target, 1
    while True:
        try:
            with open(candidate, "xb") as destination:  # exclusive create: never over a file, even one just made
                try:
                    with open(source, "rb") as origin:
                        shutil.copyfileobj(origin, destination)
                except BaseException:
                    candidate.unlink(missing_ok=True)
                    raise
        except FileExistsError:
            if _same_content(source, candidate):
                return "already there", candidate
            attempt += 1
            candidate = target.with_name(f"{target.stem} ({attempt}){target.suffix}")
            continue
        shutil.copystat(source, candidate)
        return ("copied" if candidate == target else "renamed"), candidate


def _same_content(a: Path, b: Path) -> bool:
    if a.stat().st_size != b.stat().st_size:
        return False
    with open(a, "rb") as first, open(b, "rb") as second:
        while block := first.read(1 << 20):
            if block != second.read(len(block)):
                return False
    return True


def torch_save_atomic(path: Path, checkpoint: dict) -> None:
    """A torch checkpoint, written whole or not at all (`write_bytes_atomic`)."""
    import torch  # the commands that only search or export never load torch

    buffer = io.BytesIO()
    torch.save(checkpoint, buffer)
    write_bytes_atomic(path, buffer.getvalue())


def write_json_atomic(path: Path, data: object) -> None:
    """`data` as JSON, written whole or not at all (`write_text_atomic`)."""
    write_text_atomic(path, json.dumps(data, indent=1) + "\n")


def read_labels(path: Path) -> dict[str, int]:
    """A `{"<id>": number}` ground-truth file (SoccerNet's gt.json layout)."""
    return {str(key): int(value) for key, value in json.loads(Path(path).read_text()).items()}
