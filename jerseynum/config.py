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
    # rapidocr | crnn (the project's recognizer, models/digits_crnn.pt) | easyocr. crnn reads more number crops
    # (SoccerNet 0.874 vs 0.846, basketball 0.774 vs 0.749) at half the cost, but fewer genL tracklets (0.955 vs
    # 0.964) and bibs (bibracer 0.731 vs 0.796): rapidocr stays the default until crnn wins end to end.
    text: str = "rapidocr"
    text_options: dict = field(default_factory=dict)  # backend arguments, e.g. rapidocr's det_side
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
        if self.pose is None:
            self.pose = "mediapipe" if self.mode is Mode.JERSEY else "none"
        if self.torso is None:
            self.torso = TorsoSettings() if self.mode is Mode.JERSEY else BIB_TORSO
        if self.max_frames < 1 or self.batch_size < 1:
            raise ValueError("max_frames and batch_size must be at least 1")
