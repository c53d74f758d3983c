"""Hostile files the tests generate themselves: decompression bombs and damaged images."""

from __future__ import annotations

import struct
import zlib

import cv2
import numpy as np


def _png_chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))


def bomb_png(width: int = 60000, height: int = 60000) -> bytes:
    """A valid-looking PNG of a few KB whose header claims `width` x `height` RGB pixels (10 GB decoded)."""
    rows = zlib.compress(b"\x00" * (3 * width + 1) * 8, 9)  # a few filtered rows of black; the rest missing
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", header) + _png_chunk(b"IDAT", rows) + _png_chunk(b"IEND", b"")


def jpeg(width: int, height: int, shade: int = 90) -> bytes:
    """A real JPEG of the given size: a grey level plus a gradient, so it is not trivially compressible."""
    gradient = np.linspace(0, 60, width, dtype=np.float32)[None, :, None]
    image = np.clip(np.full((height, width, 3), shade, np.float32) + gradient, 0, 255).astype(np.uint8)
    return cv2.imencode(".jpg", image)[1].tobytes()
