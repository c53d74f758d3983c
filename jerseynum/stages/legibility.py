"""Legibility: score each torso crop by how likely its number can be read, so illegible frames are dropped
before the (costlier) text stage and kept out of the vote.

The classifier is a small ResNet-family network whose weights the project trains itself (`train-legibility`).
Until weights are given, the stage is off (`PipelineConfig.legibility_weights = None`): nothing is faked.
A checkpoint is a torch file `{"arch": timm name, "input_size": [h, w], "state_dict": ...}`.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import torch

IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], np.float32)
IMAGENET_STD = np.array([0.229, 0.224, 0.225], np.float32)


def build_classifier(arch: str) -> torch.nn.Module:
    """A binary classifier (one logit: legible) of a timm architecture, randomly initialised."""
    import timm

    return timm.create_model(arch, pretrained=False, num_classes=1)


def to_tensor(crops: list[np.ndarray], input_size: tuple[int, int]) -> torch.Tensor:
    """BGR crops -> a normalised (N, 3, h, w) batch."""
    height, width = input_size
    batch = np.stack([cv2.resize(c, (width, height))[:, :, ::-1] for c in crops]).astype(np.float32) / 255.0
    batch = (batch - IMAGENET_MEAN) / IMAGENET_STD
    return torch.from_numpy(batch.transpose(0, 3, 1, 2).copy())


class LegibilityClassifier:
    def __init__(self, weights: Path, device: str = "cpu") -> None:
        if not Path(weights).is_file():
            raise FileNotFoundError(f"legibility weights not found: {weights}")
        checkpoint = torch.load(weights, map_location=device, weights_only=True)
        self.arch = checkpoint["arch"]
        self.input_size = tuple(checkpoint["input_size"])
        self.device = device
        self.model = build_classifier(self.arch)
        self.model.load_state_dict(checkpoint["state_dict"])
        self.model.to(device).eval()

    @torch.inference_mode()
    def score(self, crops: list[np.ndarray]) -> np.ndarray:
        """Probability that each crop's number is legible."""
        if not crops:
            return np.zeros(0, np.float32)
        logits = self.model(to_tensor(crops, self.input_size).to(self.device))
        return torch.sigmoid(logits[:, 0]).cpu().numpy()
