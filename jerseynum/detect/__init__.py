"""Person detectors behind one interface: `detect(images)` gives, for each image, the people in it as
`types.PersonBox` (box, score, keypoints where the model has them). `person_detector(name)` builds one from the
registry; each backend lives beside this file and runs under ONNX Runtime alone."""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from typing import Protocol

import numpy as np

from jerseynum.types import PersonBox

# name -> "module:class"; imported on use, so naming a detector loads no model
DETECTORS = {"ssdlite": "jerseynum.detect.ssdlite:SSDLitePersonDetector"}


class PersonDetector(Protocol):
    def detect(self, images: Sequence[np.ndarray]) -> list[list[PersonBox]]:
        """The people in each BGR image, most confident first, boxes in that image's pixels."""
        ...


def person_detector(name: str = "ssdlite", **options) -> PersonDetector:
    """The detector registered as `name`, built with `options` (see each backend)."""
    if name not in DETECTORS:
        raise ValueError(f"unknown person detector {name!r}; choose from {sorted(DETECTORS)}")
    module, _, cls = DETECTORS[name].partition(":")
    return getattr(importlib.import_module(module), cls)(**options)
