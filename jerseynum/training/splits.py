"""Which development items the project may train on, and which it scores: split by group, never by crop.

- SoccerNet: by tracklet id. The genL training crops come from the genL development tracklets, and the
  Roboflow number crops share their tracklet ids (same SoccerNet train tracklets), so one rule over the id
  covers all three: a tracklet is either trained on (its genL crops, its Roboflow crops) or scored (its genL
  tracklet, its Roboflow crops), never both.
- Race bibs (bibracer): by the bib's digits. The same runner appears in several crops (other photos), so a
  bib number is either trained on or scored.
Basketball training crops are a separate set from the basketball development crops: all of the first is
trained on and all of the second scored.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path


def _bucket(kind: str, group: str) -> int:
    return hashlib.md5(f"{kind}:{group}".encode()).digest()[0]


def soccernet_scored(tracklet_id: str) -> bool:
    """True for the half of the SoccerNet tracklets kept for scoring."""
    return _bucket("soccernet", str(tracklet_id)) % 2 == 1


def bib_scored(label: str) -> bool:
    """True for the half of the bib numbers kept for scoring (grouped by the label's digits)."""
    return _bucket("bib", re.sub(r"\D", "", label)) % 2 == 1


def validation_group(group: str, fraction: float) -> bool:
    """True for about `fraction` of a training set's groups, set aside to pick the best epoch."""
    return _bucket("validation", group) < 256 * fraction


def roboflow_tracklet(file_name: str) -> str:
    """`train__<tracklet>_<frame>_jpg.rf.<hash>.jpg_<id>.jpg` -> `<tracklet>`."""
    return file_name.split("__", 1)[1].split("_", 1)[0]


def number_crop_scored(set_name: str, file_name: str, label: str = "") -> bool:
    """Whether a crop of a shared number-crop set is scored, never trained on: the Roboflow SoccerNet crops of the
    scored tracklets, every basketball development crop, and the bibracer crops of the scored bib numbers."""
    if set_name == "soccernet_numcrops_roboflow":
        return soccernet_scored(roboflow_tracklet(file_name))
    if set_name == "basketball_jersey_crops":
        return True
    if set_name == "bibracer_bib_crops":
        return bib_scored(label)
    raise ValueError(f"not a number-crop set: {set_name!r}")


def scored_number_crops(root: Path) -> list[tuple[str, str]]:
    """The (file name, label) of each scored crop (`number_crop_scored`) of the shared number-crop set in `root`,
    in its labels.json's order."""
    labels = json.loads((Path(root) / "labels.json").read_text())
    return [(file, texts[0]) for file, texts in labels.items() if number_crop_scored(Path(root).name, file, texts[0])]


def genl_crop_tracklet(file_name: str) -> str:
    """`<tracklet>_<frame>.jpg` -> `<tracklet>`."""
    return file_name.split("_", 1)[0]


def rbnr_scored(photo_name: str) -> bool:
    """True for the half of the RBNR race photos kept for scoring (`set1_07.JPG`; a runner crop `set1_07_0`
    belongs to its photo `set1_07`)."""
    return _bucket("rbnr", photo_name.split(".")[0]) % 2 == 1
