"""One dataclass of settings for the whole pipeline; every default is documented where it was chosen."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from jerseynum.stages.torso import BIB_TORSO, TorsoSettings
from jerseynum.stages.vote import VoteSettings
from jerseynum.types import Mode


@dataclass
class PipelineConfig:
    mode: Mode = Mode.JERSEY  # jersey: numbers 0-99; bib: up to 6 digits, leading zeros kept
    # mediapipe | mmpose | none; default: mediapipe for jerseys, none for bibs. On the RBNR runner crops the
    # pose-cut region read 0.915 of bibs and the whole crop 0.927 (pose finds the wrong runner, bibs hang below
    # the hips), so bib mode searches the whole runner crop for text unless a pose backend is asked for.
    pose: str | None = None
    pose_options: dict = field(default_factory=dict)  # backend arguments, e.g. mmpose's config and checkpoint
    legibility_weights: Path | None = None  # None: the legibility stage is off and every torso crop is read
    legibility_threshold: float = 0.5
    # Text engines, each reading every line: rapidocr | crnn (the project's recognizer, models/digits_crnn.pt)
    # | easyocr. Alone, rapidocr reads 0.964 of the scored genL tracklets and crnn 0.955; together, voting with
    # all their readings, 0.977 (README, "Text engines"): they err on different crops.
    text: tuple[str, ...] = ("rapidocr", "crnn")
    text_options: dict[str, dict] = field(default_factory=dict)  # per engine, e.g. {"crnn": {"weights": path}}
    det_side: int = 640  # a crop searched for text lines is scaled to this long side for the line detector
    # Torso crops at least this big are searched for text lines; smaller ones are read whole as one line
    # (SoccerNet number crops are ~20-30 px; a runner's bib region is over 100 px).
    detect_min_side: int = 48
    device: str = "cpu"
    max_frames: int = 64  # frames sampled evenly from a longer tracklet
    batch_size: int = 16  # frames per batch; the vote is checked for an early stop after each batch
    early_stop: bool = True
    torso: TorsoSettings | None = None  # default: TorsoSettings() for jerseys, BIB_TORSO for bibs
    vote: VoteSettings = field(default_factory=VoteSettings)

    def __post_init__(self) -> None:
        self.mode = Mode(self.mode)
        self.text = (self.text,) if isinstance(self.text, str) else tuple(self.text)
        if self.pose is None:
            self.pose = "mediapipe" if self.mode is Mode.JERSEY else "none"
        if self.torso is None:
            self.torso = TorsoSettings() if self.mode is Mode.JERSEY else BIB_TORSO
        if self.max_frames < 1 or self.batch_size < 1:
            raise ValueError("max_frames and batch_size must be at least 1")
