"""Jersey mode's line detector side, on real digits in torso-sized crops: the scored SoccerNet number crops
(~21 px) padded with their own border colour (the shirt around the number) and scaled to a 120-px long side,
so the pipeline searches them with the line detector as it does a player's torso. Accuracy (the vote's
leading string equals the label) and median ms per crop for each (detector side, retry side), in one run.

No full-player SoccerNet frames are on this machine, so this stands in for real torso crops.

    python benchmarks/detector_side.py [--data ../shared/data] [--sides 640:800 320:400 256:320]
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import cv2

from jerseynum.io import write_json_atomic
from jerseynum.stages.text import TextStage
from jerseynum.stages.vote import Vote, VoteSettings
from jerseynum.training import require_sets, splits
from jerseynum.types import Mode

REPO = Path(__file__).resolve().parents[1]


def torso_like(crop, side: int = 120):
    height, width = crop.shape[:2]
    padded = cv2.copyMakeBorder(crop, height // 2, height, width // 2, width // 2, cv2.BORDER_REPLICATE)
    scale = side / max(padded.shape[:2])
    return cv2.resize(padded, None, fx=scale, fy=scale, interpolation=cv2.INTER_CUBIC)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    parser.add_argument("--sides", nargs="+", default=["640:800", "320:400", "256:320"])
    parser.add_argument("--json", type=Path, default=REPO / "benchmarks" / "results" / "detector_side.json")
    args = parser.parse_args()
    try:
        require_sets(args.data, ["soccernet_numcrops_roboflow"])
    except FileNotFoundError as error:
        parser.error(str(error))
    root = args.data / "soccernet_numcrops_roboflow"
    scored = sorted((file, label) for file, label in splits.scored_number_crops(root) if label.isdigit())
    crops = [torso_like(cv2.imread(str(root / "images" / file))) for file, _ in scored]
    tally = Vote(Mode.JERSEY, VoteSettings(min_confidence=0.0)).tally
    rows = []
    for sides in args.sides:
        det_side, retry_side = (int(v) for v in sides.split(":"))
        stage = TextStage(("crnn", "rapidocr"), Mode.JERSEY, det_side, settle=0.95, retry_sides=(retry_side,))
        stage.read_regions(crops[:2])  # warm-up
        correct, seconds = 0, []
        for crop, (_, label) in zip(crops, scored):
            start = time.perf_counter()
            readings = stage.read_regions([crop])[0]
            seconds.append(time.perf_counter() - start)
            correct += next(iter(tally(readings)), "") == label
        rows.append({"det_side": det_side, "retry_side": retry_side, "crops": len(scored),
                     "accuracy": round(correct / len(scored), 3),
                     "ms_per_crop_median": round(statistics.median(seconds) * 1000, 1)})  # fmt: skip
        print(f"  detector {det_side} px, retry {retry_side} px: accuracy {rows[-1]['accuracy']:.3f}, "
              f"{rows[-1]['ms_per_crop_median']:.1f} ms per crop (median, {len(scored)} crops)")  # fmt: skip
    write_json_atomic(args.json, rows)


if __name__ == "__main__":
    main()
