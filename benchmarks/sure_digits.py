"""How sure a bib reader is of the digits it confuses, against the digits it reads right.

The start list snaps a read that is one confused digit from a listed bib (photos/startlist.py), unless that digit
was read at least `SURE_DIGIT` sure. This measures the rule's premise on bib crops: every bib crop of bibracer
(another race than the photos') and every RBNR runner crop, read as the race-photo reader reads a runner (bib mode:
text lines found, both engines). Per engine, the readings of the label's length that differ from it in one digit
(the confusions a snap would mend) and the digits of readings equal to the label, by the confidence of the digit.

    python benchmarks/sure_digits.py [--data ../shared/data] [--json benchmarks/results/sure_digits.json]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import cv2
from tqdm import tqdm

from jerseynum.config import PipelineConfig
from jerseynum.io import write_json_atomic
from jerseynum.photos.startlist import SURE_DIGIT
from jerseynum.stages.text import TextStage
from jerseynum.training import require_sets
from jerseynum.types import Mode

REPO = Path(__file__).resolve().parents[1]
CUTS = (0.9, 0.95, SURE_DIGIT, 0.99, 0.999)


def crops(data: Path) -> list[tuple[Path, str]]:
    """(image, the label's digits) of every bibracer bib crop and RBNR runner crop."""
    bibracer = json.loads((data / "bibracer_bib_crops" / "labels.json").read_text())
    runners = json.loads((data / "rbnr_runner_crops" / "labels.json").read_text())
    return [(data / "bibracer_bib_crops" / "images" / name, "".join(c for c in labels[0] if c.isdigit()))
            for name, labels in bibracer.items()] + [
            (data / "rbnr_runner_crops" / "tracklets" / name / "0.jpg", str(label)) for name, label in runners.items()]  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    parser.add_argument("--json", type=Path, default=REPO / "benchmarks" / "results" / "sure_digits.json")
    args = parser.parse_args()
    try:
        require_sets(args.data, ["bibracer_bib_crops", "rbnr_runner_crops"])
    except FileNotFoundError as error:
        parser.error(str(error))
    stage = TextStage.from_config(PipelineConfig(mode=Mode.BIB))
    confused: dict[str, list[float]] = {}  # engine -> the confused digit's confidence, per one-digit misread
    right: dict[str, list[float]] = {}  # engine -> each digit's confidence, per reading equal to the label
    items = crops(args.data)
    for path, label in tqdm(items, desc="bib crops", mininterval=10):
        image = cv2.imread(str(path))
        if image is None or not label:
            continue
        for reading in stage.read_regions([image])[0]:
            if reading.text == label:
                right.setdefault(reading.engine, []).extend(reading.char_confidences)
            elif len(reading.text) == len(label):
                differ = [i for i, (a, b) in enumerate(zip(reading.text, label, strict=True)) if a != b]
                if len(differ) == 1:
                    confused.setdefault(reading.engine, []).append(reading.char_confidences[differ[0]])
    rows = []
    print(f"{len(items)} bib crops; share of digits below each confidence")
    for engine in sorted(set(confused) | set(right)):
        wrong, good = confused.get(engine, []), right.get(engine, [])
        row = {"engine": engine, "one_digit_misreads": len(wrong), "right_digits": len(good),
               "below": {str(cut): {"confused": round(sum(c < cut for c in wrong) / max(len(wrong), 1), 3),
                                    "right": round(sum(c < cut for c in good) / max(len(good), 1), 3)} for cut in CUTS},
               "confused_digit_confidences": sorted(round(c, 3) for c in wrong)}  # fmt: skip
        rows.append(row)
        print(f"  {engine}: {len(wrong)} one-digit misreads, {len(good)} digits read right")
        for cut in CUTS:
            below = row["below"][str(cut)]
            print(f"    below {cut}: confused digits {below['confused']:.2f}, right digits {below['right']:.3f}")
    write_json_atomic(args.json, {"sure_digit": SURE_DIGIT, "crops": len(items), "engines": rows})


if __name__ == "__main__":
    main()
