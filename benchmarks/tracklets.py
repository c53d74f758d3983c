"""The whole pipeline on the real tracklet sets, for each text engine setting, in one run: accuracy and time.

- soccernet_genL_numcrop_tracklets (jersey mode): only the scored half of the tracklets (split by tracklet id,
  `jerseynum/training/splits.py`): the recognizer trained on crops of the other half. `--all` scores every
  tracklet (then the crnn figure is optimistic: it has seen crops of half of them).
- rbnr_runner_crops (bib mode): only the runners of the scored half of the RBNR photos (`splits.rbnr_scored`): the
  legibility classifier, which scores the text lines bib mode reads, trained on runners of the other half.
  `--all` scores every runner.
Prints a table and writes JSON:
    python benchmarks/tracklets.py [--data ../shared/data] [--configs rapidocr crnn ...] [--json ...]
                                   [--crnn-weights FILE]
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

from tqdm import tqdm

from jerseynum.config import PipelineConfig
from jerseynum.io import list_tracklets, read_labels, write_json_atomic
from jerseynum.pipeline import Pipeline
from jerseynum.training import require_sets, splits
from jerseynum.types import Mode

# name -> PipelineConfig arguments: each engine alone, both reading every crop, and the default cascade (the
# second engine reads only crops the first was unsure of); the crnn also with 5 test views of each crop.
CONFIGS = {"rapidocr": {"text": ("rapidocr",)}, "crnn": {"text": ("crnn",)},
           "crnn, 5 views": {"text": ("crnn",), "crnn_views": 5}, "both, all read": {"text_settle": None},
           "default (cascade)": {}, "cascade, crnn 5 views": {"crnn_views": 5}}  # fmt: skip
SETS = {"soccernet_genL_numcrop_tracklets": Mode.JERSEY, "rbnr_runner_crops": Mode.BIB}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "data")
    parser.add_argument("--configs", nargs="+", default=list(CONFIGS), choices=list(CONFIGS))
    parser.add_argument("--sets", nargs="+", default=list(SETS), choices=list(SETS))
    parser.add_argument("--all", action="store_true", help="score every tracklet, trained-on ones too")
    parser.add_argument("--crnn-weights", type=Path, help="a recognizer checkpoint other than the shipped one")
    parser.add_argument(
        "--json", type=Path, help="where the rows go (default: benchmarks/results/tracklets.json, unless --crnn-weights)"
    )
    args = parser.parse_args()
    try:
        require_sets(args.data, args.sets)
    except FileNotFoundError as error:
        parser.error(str(error))
    # A run with other weights does not replace the shipped model's table unless asked to.
    json_path = args.json or (None if args.crnn_weights else Path(__file__).resolve().parent / "results" / "tracklets.json")
    options = {"crnn": {"weights": args.crnn_weights}} if args.crnn_weights else {}
    results = []
    for name in args.sets:
        mode = SETS[name]
        labels = read_labels(args.data / name / "labels.json")
        tracklets = list_tracklets(args.data / name / "tracklets")
        if not args.all:
            scored = splits.soccernet_scored if mode is Mode.JERSEY else lambda runner: splits.rbnr_scored(runner.rsplit("_", 1)[0])
            tracklets = [t for t in tracklets if scored(t.id)]
        for text in args.configs:
            pipeline = Pipeline(PipelineConfig(mode=mode, text_options=options, **CONFIGS[text]))
            correct, seconds = 0, []
            for tracklet in tqdm(tracklets, desc=f"{name} / {text}", leave=False):
                start = time.perf_counter()
                correct += pipeline.run(tracklet).number == labels[tracklet.id]
                seconds.append(time.perf_counter() - start)
            row = {"set": name, "text": text, "tracklets": len(tracklets), "accuracy": round(correct / len(tracklets), 4),
                   "s_per_tracklet_median": round(statistics.median(seconds), 3)}  # fmt: skip
            results.append(row)
            print(f"{name:34} {text:18} {len(tracklets):4} tracklets  accuracy {row['accuracy']:.4f}  "
                  f"{row['s_per_tracklet_median']:.3f} s per tracklet (median)")  # fmt: skip
    if json_path:
        write_json_atomic(json_path, results)


if __name__ == "__main__":
    main()
