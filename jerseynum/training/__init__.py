"""Training the project's own models: the digit recognizer (`train_recognizer`) and the legibility classifier
(`train_legibility`), with the material they learn from."""

from __future__ import annotations


def check_device(device: str) -> None:
    """ValueError for a device torch does not know or this machine does not have."""
    import torch

    try:
        kind = torch.device(device).type
    except RuntimeError as error:
        raise ValueError(f"unknown device {device!r}: {error}") from None
    if kind == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"--device {device}: no CUDA GPU on this machine (use cpu)")
