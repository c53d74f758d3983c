"""Text stage alone on real number crops: ours beside plain EasyOCR and plain RapidOCR, in one run.

Exact match of the digit string (bibracer labels are scored on their digits: the letter prefix is dropped).
Plain means as a user calls the package: EasyOCR `recognize` with a digit allowlist, RapidOCR rec-only with
its default 0.5 score filter. Prints a table and writes JSON:
    python benchmarks/text_crops.py [--data ../shared/data] [--json benchmarks/results/text_crops.json]
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import time
from pathlib import Path

import cv2

from jerseynum.stages.text import DIGITS, RapidOCRText
from jerseynum.types import Mode

SETS = {"soccernet_numcrops_roboflow": Mode.JERSEY, "basketball_jersey_crops": Mode.JERSEY,
        "bibracer_bib_crops": Mode.BIB}  # fmt: skip


def plain_rapidocr():
    from rapidocr import RapidOCR

    engine = RapidOCR(params={"Global.log_level": "error"})

    def read(crop):
        result = engine(crop, use_det=False, use_cls=False, use_rec=True)
        return result.txts[0] if result.txts and result.scores[0] >= 0.5 else ""

    return read


def plain_easyocr():
    import easyocr
    import easyocr_en_models

    reader = easyocr.Reader(["en"], gpu=False, download_enabled=False, verbose=False,
                            model_storage_directory=easyocr_en_models.model_dir())  # fmt: skip

    def read(crop):
        result = reader.recognize(crop, allowlist=DIGITS, detail=1)
        return result[0][1] if result else ""

    return read


def ours(mode: Mode):
    text = RapidOCRText(mode)
    return lambda crop: text.recognize([crop])[0].text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "data")
    parser.add_argument("--json", type=Path, default=Path(__file__).resolve().parent / "results" / "text_crops.json")
    args = parser.parse_args()
    engines = {"easyocr (plain)": lambda mode: plain_easyocr(), "rapidocr (plain)": lambda mode: plain_rapidocr(),
               "jerseynum rapidocr": ours}  # fmt: skip
    results = []
    print(f"{'set':30} {'engine':20} {'crops':>5} {'accuracy':>8} {'ms/crop':>8}")
    for name, mode in SETS.items():
        root = args.data / name
        labels = json.loads((root / "labels.json").read_text())
        crops = [(cv2.imread(str(root / "images" / file)), re.sub(r"\D", "", texts[0])) for file, texts in labels.items()]
        for engine_name, make in engines.items():
            read = make(mode)
            read(crops[0][0])  # warm-up
            correct, times = 0, []
            for crop, truth in crops:
                start = time.perf_counter()
                text = "".join(c for c in read(crop) if c in DIGITS)
                times.append((time.perf_counter() - start) * 1000)
                correct += text == truth
            row = {"set": name, "engine": engine_name, "crops": len(crops), "accuracy": round(correct / len(crops), 4),
                   "ms_per_crop_median": round(statistics.median(times), 1)}  # fmt: skip
            results.append(row)
            print(f"{name:30} {engine_name:20} {len(crops):5} {row['accuracy']:8.3f} {row['ms_per_crop_median']:8.1f}")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(results, indent=1) + "\n")


if __name__ == "__main__":
    main()
