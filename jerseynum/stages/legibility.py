"""Legibility: score each torso crop by how likely its number can be read, so illegible frames are dropped
before the (costlier) text stage and kept out of the vote.

The classifier is a small ResNet whose weights the project trains itself from EasyOCR pseudo-labels
(`jerseynum train-legibility`, `training/train_legibility.py`); `models/legibility.pt` ships them, and
`models/legibility.onnx`, their export, is what the pipeline runs. A checkpoint
is a torch file `{"arch": name in ARCHITECTURES, "input_size": [h, w], "state_dict": ..., "meta": ...}`; the
same network exported to ONNX (`export_onnx`) runs under ONNX Runtime instead of torch when given a `.onnx` file.
"""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import torch

from jerseynum.io import torch_save_atomic
from jerseynum.weights import LEGIBILITY_CHECKPOINT, LEGIBILITY_WEIGHTS

DEFAULT_CHECKPOINT = LEGIBILITY_CHECKPOINT
# What the pipeline loads: the checkpoint's ONNX export, 2.3x faster than torch on this CPU (benchmarks/legibility.py)
DEFAULT_WEIGHTS = LEGIBILITY_WEIGHTS
IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], np.float32)
IMAGENET_STD = np.array([0.229, 0.224, 0.225], np.float32)


def _resnet_nano() -> torch.nn.Module:
    # A ResNet-10 at a quarter of the usual widths (16-128 channels, 0.3 M parameters): legibility is a coarse
    # judgement on a 64-px crop, and the stage must cost far less than the text engines it saves.
    from timm.models.resnet import BasicBlock, ResNet

    return ResNet(BasicBlock, (1, 1, 1, 1), num_classes=1, channels=(16, 32, 64, 128), stem_width=16)


def _timm(name: str):
    def build() -> torch.nn.Module:
        import timm

        return timm.create_model(name, pretrained=False, num_classes=1)

    return build


# name -> builder of a randomly initialised binary classifier (one logit: legible)
ARCHITECTURES = {"resnet_nano": _resnet_nano, "resnet10t": _timm("resnet10t"), "resnet18": _timm("resnet18")}


def build_classifier(arch: str) -> torch.nn.Module:
    if arch not in ARCHITECTURES:
        raise ValueError(f"unknown legibility architecture {arch!r}; choose from {sorted(ARCHITECTURES)}")
    return ARCHITECTURES[arch]()


# (x / 255 - mean) / std as one multiply-add per value, per RGB channel
_SCALE = (1.0 / (255.0 * IMAGENET_STD)).astype(np.float32)[:, None, None]
_OFFSET = (-IMAGENET_MEAN / IMAGENET_STD).astype(np.float32)[:, None, None]


def to_batch(crops: list[np.ndarray], input_size: tuple[int, int]) -> np.ndarray:
    """BGR crops -> a normalised (N, 3, h, w) float32 RGB batch."""
    height, width = input_size
    resized = np.stack([cv2.resize(c, (width, height), interpolation=cv2.INTER_AREA if c.shape[0] > height
                                   else cv2.INTER_LINEAR) for c in crops])  # fmt: skip
    # Channels first before the arithmetic: numpy broadcasting over a last axis of 3 runs 8x slower.
    batch = resized.transpose(0, 3, 1, 2)[:, ::-1].astype(np.float32, order="C")
    batch *= _SCALE
    batch += _OFFSET
    return batch


def to_tensor(crops: list[np.ndarray], input_size: tuple[int, int]) -> torch.Tensor:
    """BGR crops -> a normalised (N, 3, h, w) RGB batch for torch."""
    return torch.from_numpy(to_batch(crops, input_size))


def save_checkpoint(path: Path, model: torch.nn.Module, arch: str, input_size: tuple[int, int], meta: dict) -> None:
    """Written whole or not at all: an interrupted save or a full disk never leaves a broken checkpoint."""
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    torch_save_atomic(path, {"arch": arch, "input_size": list(input_size), "state_dict": state, "meta": meta})


def load_checkpoint(path: Path, device: str = "cpu") -> tuple[torch.nn.Module, tuple[int, int], dict]:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"legibility weights not found: {path} (train them with `jerseynum train-legibility`)")
    checkpoint = torch.load(path, map_location=device, weights_only=True)
    model = build_classifier(checkpoint["arch"])
    model.load_state_dict(checkpoint["state_dict"])
    return model.to(device).eval(), tuple(checkpoint["input_size"]), checkpoint.get("meta", {})


def export_onnx(weights: Path, out: Path) -> None:
    """The checkpoint's network as ONNX (dynamic batch), its input size in the model's metadata."""
    model, input_size, _ = load_checkpoint(weights)
    temporary = Path(out).with_suffix(".tmp.onnx")
    torch.onnx.export(model, torch.zeros(1, 3, *input_size), temporary, input_names=["crops"], output_names=["logit"],
                      dynamic_axes={"crops": {0: "batch"}, "logit": {0: "batch"}}, dynamo=False)  # fmt: skip
    import onnx

    graph = onnx.load(temporary)
    graph.metadata_props.add(key="input_size", value=json.dumps(list(input_size)))
    onnx.save(graph, temporary)
    temporary.replace(out)


class LegibilityClassifier:
    """Scores crops in batches with torch (a `.pt` checkpoint) or ONNX Runtime (a `.onnx` export)."""

    def __init__(self, weights: Path, device: str = "cpu", threads: int = 0) -> None:
        weights = Path(weights)
        self.device = device
        if weights.suffix == ".onnx":
            import onnxruntime

            if not weights.is_file():
                raise FileNotFoundError(f"legibility weights not found: {weights}")
            options = onnxruntime.SessionOptions()
            options.intra_op_num_threads = threads
            # idle threads must not spin: they would starve the text engines' threads (see stages/text.py)
            options.add_session_config_entry("session.intra_op.allow_spinning", "0")
            self._session = onnxruntime.InferenceSession(str(weights), options, providers=["CPUExecutionProvider"])
            metadata = self._session.get_modelmeta().custom_metadata_map
            self.input_size = tuple(json.loads(metadata["input_size"]))
            self.model = None
        else:
            self.model, self.input_size, self.meta = load_checkpoint(weights, device)
            self._session = None

    def score(self, crops: list[np.ndarray], batch_size: int = 64) -> np.ndarray:
        """Probability that each crop's number is legible."""
        scores = [np.zeros(0, np.float32)]
        for start in range(0, len(crops), batch_size):
            batch = to_batch(crops[start : start + batch_size], self.input_size)
            if self._session is not None:
                logits = self._session.run(None, {"crops": batch})[0][:, 0]
            else:
                with torch.inference_mode():
                    logits = self.model(torch.from_numpy(batch).to(self.device))[:, 0].cpu().numpy()
            scores.append(1.0 / (1.0 + np.exp(-logits)))
        return np.concatenate(scores).astype(np.float32)
