"""Race-photo tagging on the development photos: bib-level precision, recall, F1 and seconds per photo, for
jerseynum's tagger and, in the same run, plain whole-photo RapidOCR (and EasyOCR with --baselines easyocr).

A predicted number counts when its digits, leading zeros dropped, equal a labelled number of the same photo
(each labelled number at most once); everything else predicted is a false positive. The baselines are scored as
in ../shared/BASELINES.md: non-digits stripped, strings of 2-6 digits kept, deduplicated per photo.

    python benchmarks/photos.py [--data ../shared/data] [--sets rbnr_bib_photos misc_bib_photos] [--baselines rapidocr easyocr]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import cv2
from tqdm import tqdm

from jerseynum.photos.tagger import PhotoTagger

REPO = Path(__file__).resolve().parents[1]


def normalised(number: str) -> str:
    digits = "".join(c for c in number if c.isdigit())
    return digits.lstrip("0") or digits


def score(predicted: dict[str, set[str]], labels: dict[str, list[str]]) -> dict:
    tp = fp = fn = 0
    for photo, truth in labels.items():
        truth = {normalised(t) for t in truth}
        found = {normalised(p) for p in predicted.get(photo, set())}
        tp += len(found & truth)
        fp += len(found - truth)
        fn += len(truth - found)
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {
        "precision": round(precision, 3),
        "recall": round(recall, 3),
        "f1": round(f1, 3),
        "tp": tp,
        "fp": fp,
        "fn": fn,
    }


class PlainRapidOCR:
    name = "plain RapidOCR"

    def __init__(self) -> None:
        from rapidocr import RapidOCR

        self._engine = RapidOCR(params={"Global.log_level": "error"})

    def numbers(self, photo) -> set[str]:
        result = self._engine(photo)
        texts = result.txts or () if result is not None else ()
        return {d for d in ("".join(c for c in text if c.isdigit()) for text in texts) if 2 <= len(d) <= 6}


class PlainEasyOCR:
    name = "plain EasyOCR"

    def __init__(self) -> None:
        import easyocr
        import easyocr_en_models

        self._reader = easyocr.Reader(["en"], gpu=False, download_enabled=False, verbose=False,
                                      model_storage_directory=easyocr_en_models.model_dir())  # fmt: skip

    def numbers(self, photo) -> set[str]:
        texts = self._reader.readtext(photo, detail=0)
        return {d for d in ("".join(c for c in text if c.isdigit()) for text in texts) if 2 <= len(d) <= 6}


class Ours:
    name = "jerseynum"

    def __init__(self) -> None:
        self.tagger = PhotoTagger()

    def numbers(self, photo) -> set[str]:
        return {n.number for n in self.tagger.tag(photo)}


def run(engine, root: Path, labels: dict[str, list[str]], errors: dict) -> dict:
    predicted, seconds = {}, []
    engine.numbers(cv2.imread(str(root / "images" / next(iter(labels)))))  # warm-up
    for name in tqdm(labels, desc=f"{root.name}: {engine.name}", leave=False, mininterval=10):
        photo = cv2.imread(str(root / "images" / name))
        start = time.perf_counter()
        predicted[name] = engine.numbers(photo)
        seconds.append(time.perf_counter() - start)
        truth = {normalised(t) for t in labels[name]}
        found = {normalised(p) for p in predicted[name]}
        if found != truth:
            errors.setdefault(engine.name, {})[f"{root.name}/{name}"] = {
                "missed": sorted(truth - found), "extra": sorted(found - truth)}  # fmt: skip
    row = {"set": root.name, "engine": engine.name, "photos": len(labels), **score(predicted, labels),
           "s_per_photo_median": round(statistics.median(seconds), 3),
           "s_per_photo_mean": round(statistics.mean(seconds), 3)}  # fmt: skip
    print(f"  {root.name:18} {engine.name:15} P {row['precision']:.3f}  R {row['recall']:.3f}  F1 {row['f1']:.3f}"
          f"  {row['s_per_photo_median']:.2f} s per photo (median)")  # fmt: skip
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    parser.add_argument("--sets", nargs="+", default=["rbnr_bib_photos", "misc_bib_photos"])
    parser.add_argument("--baselines", nargs="*", default=["rapidocr"], choices=["rapidocr", "easyocr"])
    parser.add_argument("--json", type=Path, default=REPO / "benchmarks" / "results" / "photos.json")
    args = parser.parse_args()
    engines = [Ours()] + [{"rapidocr": PlainRapidOCR, "easyocr": PlainEasyOCR}[name]() for name in args.baselines]
    results: dict = {"rows": [], "errors": {}}
    for name in args.sets:
        root = args.data / name
        labels = json.loads((root / "labels.json").read_text())
        for engine in engines:
            results["rows"].append(run(engine, root, labels, results["errors"]))
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(results, indent=1) + "\n")


if __name__ == "__main__":
    main()
