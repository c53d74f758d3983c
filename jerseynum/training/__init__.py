"""Training the project's own models: the digit recognizer (`train_recognizer`) and the legibility classifier
(`train_legibility`), with the material they learn from."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path


def check_device(device: str) -> None:
    """ValueError for a device torch does not know or this machine does not have."""
    import torch

    try:
        kind = torch.device(device).type
    except RuntimeError as error:
        raise ValueError(f"unknown device {device!r}: {error}") from None
    if kind == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"--device {device}: no CUDA GPU on this machine (use cpu)")


def require_sets(data: Path, names: Iterable[str]) -> None:
    """FileNotFoundError naming the first of the shared data's sets `names` (folders under `data`) that is
    absent, for scripts that read them: before minutes of loading models, not as a traceback after."""
    for name in names:
        if not (Path(data) / name).is_dir():
            raise FileNotFoundError(f"no {name} under {data}: the shared data is never copied into the repository; "
                                    f"pass --data (a copy of ../shared/data)")  # fmt: skip
