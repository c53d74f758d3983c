"""The person detector on RBNR's development photos: how many labelled bibs lie on a person it found (the bib box's
centre inside a person box), how many people it finds per photo, and the time per photo, for the whole photo and
for tiles (`detect/ssdlite.py`), in one run.

    python benchmarks/person_detector.py
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import cv2

from jerseynum.detect import person_detector
from jerseynum.io import write_json_atomic

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data" / "rbnr_bib_photos"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", type=Path, default=REPO / "benchmarks" / "results" / "person_detector.json")
    args = parser.parse_args()
    labels = json.loads((DATA / "labels_with_boxes.json").read_text())
    images = {name: cv2.imread(str(DATA / "images" / name)) for name in sorted(labels)}
    results = {}
    for name, options in {"whole photo": {"tiles": 1}, "whole + 2x2 tiles": {"tiles": 2},
                          "whole + 3x3 tiles": {"tiles": 3}}.items():  # fmt: skip
        detector = person_detector(**options)
        detector.detect([images[next(iter(images))]])  # warm-up
        found, bibs, people, seconds = 0, 0, 0, []
        for photo, image in images.items():
            start = time.perf_counter()
            boxes = [p.box for p in detector.detect([image])[0]]
            seconds.append(time.perf_counter() - start)
            people += len(boxes)
            for label in labels[photo]:
                x1, y1, x2, y2 = label["box_xyxy"]
                cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
                bibs += 1
                found += any(b[0] <= cx <= b[2] and b[1] <= cy <= b[3] for b in boxes)
        results[name] = {"bibs_on_a_person": found, "bibs": bibs, "people_per_photo": round(people / len(images), 2),
                         "ms_per_photo_median": round(1000 * statistics.median(seconds), 1)}  # fmt: skip
        print(f"{name:20} {results[name]}", flush=True)
    write_json_atomic(args.json, {"photos": len(images), "results": results})


if __name__ == "__main__":
    main()
