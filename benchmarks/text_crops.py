"""Text stage alone on real number crops: ours beside plain EasyOCR and plain RapidOCR, in one run.

Exact match of the digit string (bibracer labels are scored on their digits: the letter prefix is dropped).
Ours is the text stage as the pipeline runs it (bib crops: text lines found, the likeliest bib line read; the crnn
reads one view of each crop as the pipeline does, and also votes over 5 test views of each crop), with
each engine alone, with both reading every crop (their readings vote), and as the pipeline's cascade (the second
engine reads only the crops the first was unsure of; crnn first on jerseys, rapidocr first on bibs), and that
cascade with the crnn voting over its 5 views.
Plain means as a user calls the package: EasyOCR `recognize` with a digit allowlist, RapidOCR rec-only with
its default 0.5 score filter. Every engine is scored on the same crops: the crops the trained recognizer never
saw. That is all basketball development crops, and the scored half of the SoccerNet and bibracer crops (split
by tracklet and by bib number, `jerseynum/training/splits.py`; the other half is training material).
"errors removed" compares each engine with the best plain engine on that set.
Where `benchmarks/audits/<set>_unreadable.json` lists the crops that, looked at by eye, do not show their labelled
number, the accuracy on the other crops ("readable") is printed too.
Prints a table and writes JSON; `--gallery DIR` also draws the crops the pipeline's cascade misread, one sheet
per set with "label>reading" under each crop, to see which errors a reader could avoid at all:
    python benchmarks/text_crops.py [--data ../shared/data] [--json benchmarks/results/text_crops.json]
                                    [--engines NAME ...] [--gallery DIR]
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import time
from pathlib import Path

import cv2
import numpy as np

from jerseynum.config import PipelineConfig
from jerseynum.io import write_json_atomic
from jerseynum.stages.text import DIGITS, TextStage
from jerseynum.stages.vote import Vote, VoteSettings
from jerseynum.training import require_sets, splits
from jerseynum.types import Mode

# set -> mode; the crops scored are `splits.number_crop_scored`'s
SETS = {"soccernet_numcrops_roboflow": Mode.JERSEY, "basketball_jersey_crops": Mode.JERSEY, "bibracer_bib_crops": Mode.BIB}


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


def ours(*engines: str, settle: float | None = None, crnn_views: int = PipelineConfig.crnn_views,
         crnn_weights: Path | None = None):  # fmt: skip
    """Our text stage as the pipeline uses it: a jersey number crop is read whole; a bib crop is searched for
    text lines and each engine's likeliest bib line is kept (the whole crop is read if no line is found). With
    several engines, agreeing readings add up and the strongest string wins, as in the vote. The crnn reads
    the pipeline's number of views of each crop (one) unless `crnn_views` says otherwise; `crnn_weights` replaces
    the shipped recognizer."""

    def make(mode: Mode):
        order = engines if mode is Mode.JERSEY else engines[::-1]  # the surer engine first, as the pipeline does
        options = {"crnn": {"weights": crnn_weights}} if crnn_weights else {}
        config = PipelineConfig(mode=mode, text=order, text_settle=settle, crnn_views=crnn_views, text_options=options)
        stage = TextStage.from_config(config)
        tally = Vote(mode, VoteSettings(min_confidence=0.0)).tally

        def read(crop):
            readings = stage.read_regions([crop])[0] if mode is Mode.BIB else []
            votes = tally(readings or stage.read_lines([crop])[0])
            return next(iter(votes), "")

        return read

    return make


AUDITS = Path(__file__).resolve().parent / "audits"
PIPELINE_ENGINE = "jerseynum cascade"  # what the pipeline runs; the gallery shows its misreads


def save_gallery(path: Path, misreads: list[tuple], tile: int = 96, per_row: int = 10) -> None:
    """One sheet of (crop, label, reading) tiles, each crop scaled to fit `tile` px, its shape kept (a wide bib
    squeezed square would look less readable than it is), with "label>reading" under it."""
    tiles = []
    for crop, truth, text in misreads:
        cell = np.full((tile + 20, tile, 3), 255, np.uint8)
        scale = tile / max(crop.shape[:2])
        fitted = cv2.resize(crop, None, fx=scale, fy=scale, interpolation=cv2.INTER_CUBIC)[:tile, :tile]
        cell[: fitted.shape[0], : fitted.shape[1]] = fitted
        cv2.putText(cell, f"{truth}>{text or '_'}", (2, tile + 15), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 200))
        tiles.append(cell)
    tiles += [np.full_like(tiles[0], 255)] * (-len(tiles) % per_row)
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), np.vstack([np.hstack(tiles[i : i + per_row]) for i in range(0, len(tiles), per_row)]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "data")
    parser.add_argument(
        "--json", type=Path, help="where the rows go (default: benchmarks/results/text_crops.json, unless --engines)"
    )
    parser.add_argument("--sets", nargs="+", choices=list(SETS), default=list(SETS))
    parser.add_argument("--crnn-weights", type=Path, help="a recognizer checkpoint other than the shipped one")
    parser.add_argument("--engines", nargs="+", help="only these rows (names as printed; default: all)")
    parser.add_argument("--gallery", type=Path, metavar="DIR", help=f"draw {PIPELINE_ENGINE!r}'s misreads here")
    args = parser.parse_args()
    try:
        require_sets(args.data, args.sets)
    except FileNotFoundError as error:
        parser.error(str(error))
    weights = {"crnn_weights": args.crnn_weights}
    engines = {"easyocr (plain)": lambda mode: plain_easyocr(), "rapidocr (plain)": lambda mode: plain_rapidocr(),
               "jerseynum rapidocr": ours("rapidocr"), "jerseynum crnn": ours("crnn", **weights),
               "jerseynum crnn, 5 views": ours("crnn", crnn_views=5, **weights),
               "jerseynum both, all read": ours("crnn", "rapidocr", **weights),
               "jerseynum cascade": ours("crnn", "rapidocr", settle=PipelineConfig.text_settle, **weights),
               "jerseynum cascade, crnn 5 views": ours("crnn", "rapidocr", settle=PipelineConfig.text_settle,
                                                       crnn_views=5, **weights)}  # fmt: skip
    unknown = set(args.engines or ()) - set(engines)
    if unknown:
        parser.error(f"unknown engines {sorted(unknown)}; choose from {list(engines)}")
    engines = {name: make for name, make in engines.items() if not args.engines or name in args.engines}
    if args.gallery and PIPELINE_ENGINE not in engines:
        parser.error(f"--gallery draws {PIPELINE_ENGINE!r}'s misreads: include it in --engines")
    # A partial run does not replace the full table unless asked to.
    json_path = args.json or (None if args.engines else Path(__file__).resolve().parent / "results" / "text_crops.json")
    results = []
    print(f"{'set':30} {'engine':32} {'crops':>5} {'accuracy':>8} {'ms/crop':>8} {'errors removed':>14}")
    for name in args.sets:
        mode = SETS[name]
        root = args.data / name
        scored = splits.scored_number_crops(root)
        crops = [(cv2.imread(str(root / "images" / file)), re.sub(r"\D", "", label)) for file, label in scored]
        audit = AUDITS / f"{name.removesuffix('_crops')}_unreadable.json"
        unreadable = set(json.loads(audit.read_text())["unreadable"]) if audit.is_file() else None
        readable = [file not in unreadable for file, _ in scored] if unreadable else None
        best_plain = None  # errors removed are counted against the best plain engine of this run
        for engine_name, make in engines.items():
            read = make(mode)
            read(crops[0][0])  # warm-up
            correct, times, misreads, correct_readable = 0, [], [], 0
            for k, (crop, truth) in enumerate(crops):
                start = time.perf_counter()
                text = "".join(c for c in read(crop) if c in DIGITS)
                times.append((time.perf_counter() - start) * 1000)
                correct += text == truth
                correct_readable += text == truth and bool(readable and readable[k])
                if text != truth:
                    misreads.append((crop, truth, text))
            if args.gallery and engine_name == PIPELINE_ENGINE and misreads:
                save_gallery(args.gallery / f"{name}.png", misreads)
            accuracy = correct / len(crops)
            if "plain" in engine_name:
                best_plain = max(best_plain or 0.0, accuracy)
            removed = (accuracy - best_plain) / (1 - best_plain) if best_plain is not None and best_plain < 1 else None
            row = {"set": name, "engine": engine_name, "crops": len(crops), "accuracy": round(accuracy, 4),
                   "ms_per_crop_median": round(statistics.median(times), 1),
                   "errors_removed_vs_best_plain": None if removed is None else round(removed, 3)}  # fmt: skip
            if readable:
                row["readable_crops"] = sum(readable)
                row["accuracy_on_readable"] = round(correct_readable / sum(readable), 4)
            results.append(row)
            print(f"{name:30} {engine_name:32} {len(crops):5} {accuracy:8.3f} {row['ms_per_crop_median']:8.1f} "
                  f"{'-' if removed is None else format(removed, '.0%'):>14}"
                  + (f"  readable {row['accuracy_on_readable']:.3f} (n={row['readable_crops']})" if readable else ""))  # fmt: skip
    if json_path:
        write_json_atomic(json_path, results)


if __name__ == "__main__":
    main()
