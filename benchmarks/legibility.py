"""The legibility classifier on held-apart development data, and the pipeline with it on versus off.

1. Classifier. Crops it never trained on (`jerseynum/training/splits.py`): genL number crops and Roboflow
   SoccerNet crops of the scored SoccerNet half, all basketball development crops (number crops: truly legible),
   and regions of the scored half of the RBNR photos that avoid every bib (truly illegible). Precision and
   recall of "legible" against EasyOCR's pseudo-labels (same rule as training) and against that truth, and the
   share of each set kept. Cost in ms per crop, batched (64), torch and ONNX Runtime, in one run.
2. End to end, on versus off, in one run (each tracklet both ways, back to back): the scored genL tracklets, the scored SoccerNet and basketball
   number crops each as a one-frame tracklet, and the bib-free RBNR regions each as a one-frame tracklet whose
   right answer is -1 (jersey mode): accuracy and median seconds per tracklet. On each one-frame set, how many
   crops each higher threshold would drop that were read right and wrong with the stage off.

    python benchmarks/legibility.py [--data ../shared/data] [--weights models/legibility.pt]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
from tqdm import tqdm

from jerseynum.config import PipelineConfig
from jerseynum.io import list_tracklets, read_labels, write_json_atomic
from jerseynum.pipeline import Pipeline
from jerseynum.stages.legibility import DEFAULT_CHECKPOINT, LegibilityClassifier, export_onnx, load_checkpoint
from jerseynum.training import require_sets, splits
from jerseynum.training.train_legibility import (
    Crop,
    LabelRule,
    ReadingCache,
    labelled_crops,
    precision_recall,
    rbnr_bib_free_regions,
    read_crops,
)
from jerseynum.types import NO_NUMBER, Mode, Tracklet

REPO = Path(__file__).resolve().parents[1]


def held_apart_crops(data: Path) -> dict[str, list[Crop]]:
    scored = splits.soccernet_scored
    sets = {
        "genL number crops (scored half)": labelled_crops(
            data / "train/soccernet_genL_numcrops_train", scored, splits.genl_crop_tracklet, True),
        "roboflow SoccerNet crops (scored half)": labelled_crops(
            data / "soccernet_numcrops_roboflow", scored, splits.roboflow_tracklet, True),
        "basketball crops (dev)": labelled_crops(data / "basketball_jersey_crops", lambda g: True, lambda f: f, True),
    }  # fmt: skip
    sets["RBNR bib-free regions (scored half)"] = [
        Crop(f"{path}#{x1},{y1},{x2},{y2}", name, region, False)
        for name, path, (x1, y1, x2, y2), region in rbnr_bib_free_regions(data, splits.rbnr_scored)
    ]
    return sets


def median_ms_per_crop(classifier: LegibilityClassifier, crops: list[np.ndarray], repeats: int = 5) -> float:
    classifier.score(crops[:64])  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        classifier.score(crops, batch_size=64)
        times.append((time.perf_counter() - start) * 1000 / len(crops))
    return round(statistics.median(times), 3)


def end_to_end(
    name: str, tracklets: list[Tracklet], labels: dict[str, int], weights: Path, threshold: float
) -> list[dict]:
    """Each tracklet is run with the stage off and then on, back to back, so that whatever else loads the
    machine weighs on both settings alike (run one setting after the other, a busy spell once made "off" look
    six times slower on genL)."""
    settings = ("off", "on")
    pipelines = {setting: Pipeline(PipelineConfig(mode=Mode.JERSEY, legibility=setting == "on",
                                                  legibility_weights=weights, legibility_threshold=threshold))
                 for setting in settings}  # fmt: skip
    for pipeline in pipelines.values():
        pipeline.run(tracklets[0])  # warm-up: lazily built detectors and first-call allocations
    correct = dict.fromkeys(settings, 0)
    seconds: dict[str, list[float]] = {setting: [] for setting in settings}
    text_seconds: dict[str, list[float]] = {setting: [] for setting in settings}
    right_off, scores = [], []  # per one-frame tracklet: read right with the stage off; its legibility score
    for tracklet in tqdm(tracklets, desc=f"{name}, legibility off / on", leave=False, mininterval=10):
        for setting, pipeline in pipelines.items():
            start = time.perf_counter()
            prediction = pipeline.run(tracklet)
            seconds[setting].append(time.perf_counter() - start)
            text_seconds[setting].append(prediction.timings.get("text", 0.0))
            correct[setting] += prediction.number == labels[tracklet.id]
            if len(tracklet.frames) == 1:
                if setting == "off":
                    right_off.append(prediction.number == labels[tracklet.id])
                elif prediction.evidence and prediction.evidence[0].legibility is not None:
                    scores.append(prediction.evidence[0].legibility)
    rows = []
    for setting in settings:
        rows.append({"set": name, "legibility": setting, "tracklets": len(tracklets),
                     "accuracy": round(correct[setting] / len(tracklets), 4),
                     "s_per_tracklet_median": round(statistics.median(seconds[setting]), 4),
                     "s_per_tracklet_mean": round(statistics.mean(seconds[setting]), 4),
                     "text_s_mean": round(statistics.mean(text_seconds[setting]), 4)})  # fmt: skip
        print(f"  {name:40} legibility {setting:3}  accuracy {rows[-1]['accuracy']:.4f}  "
              f"{rows[-1]['s_per_tracklet_median']:.4f} s per tracklet (median), mean {rows[-1]['s_per_tracklet_mean']:.4f}")  # fmt: skip
    if len(scores) == len(right_off) == len(tracklets):
        rows[-1]["threshold_sweep"] = threshold_sweep(np.array(scores), np.array(right_off, bool))
        print(
            f"  {'':40} crops a threshold would drop (read right / wrong with the stage off): "
            + ", ".join(
                f"{r['threshold']}: {r['dropped_right']}/{r['dropped_wrong']}" for r in rows[-1]["threshold_sweep"]
            )
        )
    return rows


def threshold_sweep(scores: np.ndarray, right: np.ndarray, thresholds=(0.05, 0.1, 0.2, 0.3, 0.5, 0.7)) -> list[dict]:
    """On one-frame crops a dropped crop saves its reading and answers -1. The stage could only make such a set
    faster at equal accuracy if the crops it drops were the ones the text stage misreads anyway: count both."""
    rows = []
    for threshold in thresholds:
        dropped = scores < threshold
        rows.append({"threshold": threshold, "dropped_right": int((dropped & right).sum()),
                     "dropped_wrong": int((dropped & ~right).sum())})  # fmt: skip
    return rows


def crop_tracklets(root: Path) -> tuple[list[Tracklet], dict[str, int]]:
    """The scored crops of a number-crop set with a number label, each a one-frame tracklet, and their numbers."""
    tracklets, numbers = [], {}
    for file_name, label in sorted(splits.scored_number_crops(root)):
        if label.isdigit():
            tracklets.append(Tracklet.from_paths(file_name, [root / "images" / file_name]))
            numbers[file_name] = int(label)
    return tracklets, numbers


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    parser.add_argument("--weights", type=Path, default=DEFAULT_CHECKPOINT, help="the .pt checkpoint")
    parser.add_argument("--threshold", type=float, default=PipelineConfig().legibility_threshold)
    parser.add_argument("--skip-end-to-end", action="store_true")
    parser.add_argument(
        "--end-to-end-only",
        action="store_true",
        help="skip the classifier part (its pseudo-labelling takes ~20 min); keep it from --json",
    )
    parser.add_argument("--json", type=Path, default=REPO / "benchmarks" / "results" / "legibility.json")
    args = parser.parse_args()
    try:
        require_sets(args.data, ["train/soccernet_genL_numcrops_train", "soccernet_numcrops_roboflow",
                                 "basketball_jersey_crops", "rbnr_bib_photos",
                                 *([] if args.skip_end_to_end else ["soccernet_genL_numcrop_tracklets"])])
    except FileNotFoundError as error:
        parser.error(str(error))
    _, _, meta = load_checkpoint(args.weights)
    rule = LabelRule(**meta["rule"])
    classifier = LegibilityClassifier(args.weights)
    results: dict = {"weights": str(args.weights), "threshold": args.threshold, "classifier": [], "end_to_end": []}

    held_apart = held_apart_crops(args.data)
    folder = tempfile.TemporaryDirectory()
    onnx_path = Path(folder.name) / "legibility.onnx"  # the export, as the pipeline runs it
    export_onnx(args.weights, onnx_path)
    if args.end_to_end_only:  # keep the classifier part of the last run's JSON
        previous = json.loads(args.json.read_text()) if args.json.is_file() else {}
        results.update({k: v for k, v in previous.items() if k not in ("end_to_end", "weights", "threshold")})
    else:
        print(f"classifier {args.weights.name}, threshold {args.threshold}: legible = score >= threshold")
        cache = ReadingCache(REPO / ".cache" / "legibility-benchmark" / "readings.csv")
        everything = []
        for name, crops in held_apart.items():
            readings = read_crops(crops, cache, Mode.JERSEY)
            scores = classifier.score([c.image for c in crops])
            pseudo = [rule.label(r, Mode.JERSEY) for r in readings]
            labelled = [i for i, label in enumerate(pseudo) if label is not None]
            row = {"set": name, "crops": len(crops), "kept": round(float(np.mean(scores >= args.threshold)), 4),
                   "vs_pseudo_labels": precision_recall(scores[labelled], np.array([pseudo[i] for i in labelled], bool),
                                                        args.threshold),
                   "truth": bool(crops[0].truth)}  # fmt: skip
            results["classifier"].append(row)
            everything.append((crops, scores, pseudo))
            print(
                f"  {name:40} {len(crops):5} crops  kept {row['kept']:.3f}  vs pseudo-labels {row['vs_pseudo_labels']}"
            )
        crops = [c for part in everything for c in part[0]]
        scores = np.concatenate([part[1] for part in everything])
        pseudo = [label for part in everything for label in part[2]]
        labelled = [i for i, label in enumerate(pseudo) if label is not None]
        results["all_vs_truth"] = precision_recall(scores, np.array([c.truth for c in crops], bool), args.threshold)
        results["all_vs_pseudo_labels"] = precision_recall(
            scores[labelled], np.array([pseudo[i] for i in labelled], bool), args.threshold)  # fmt: skip
        print(
            f"  all held-apart crops vs truth: {results['all_vs_truth']}; vs pseudo-labels: {results['all_vs_pseudo_labels']}"
        )

        images = [c.image for c in crops[:1024]]
        results["ms_per_crop"] = {"torch": median_ms_per_crop(classifier, images),
                                  "onnxruntime": median_ms_per_crop(LegibilityClassifier(onnx_path), images)}  # fmt: skip
        print(f"  cost, batches of 64, median ms per crop: {results['ms_per_crop']}")

    if not args.skip_end_to_end:
        print("end to end (jersey mode), legibility off vs on (ONNX Runtime):")
        genl = args.data / "soccernet_genL_numcrop_tracklets"
        tracklets = [t for t in list_tracklets(genl / "tracklets") if splits.soccernet_scored(t.id)]
        results["end_to_end"] += end_to_end("genL tracklets (scored half)", tracklets, read_labels(genl / "labels.json"),
                                            onnx_path, args.threshold)  # fmt: skip
        for name, crop_set in (("roboflow SoccerNet crops (scored half)", "soccernet_numcrops_roboflow"),
                               ("basketball crops (dev)", "basketball_jersey_crops")):  # fmt: skip
            results["end_to_end"] += end_to_end(name, *crop_tracklets(args.data / crop_set), onnx_path,
                                                args.threshold)  # fmt: skip
        # Crops with no number, where the right answer is -1: every 6th bib-free photo region scored above (the
        # larger ones go through pose and the text detector, 0.25 s each with legibility off).
        regions = held_apart["RBNR bib-free regions (scored half)"][::6]
        tracklets = [Tracklet.from_images(crop.key, [crop.image]) for crop in regions]
        results["end_to_end"] += end_to_end("RBNR bib-free regions (answer -1)", tracklets,
                                            {t.id: NO_NUMBER for t in tracklets}, onnx_path, args.threshold)  # fmt: skip
    folder.cleanup()
    write_json_atomic(args.json, results)


if __name__ == "__main__":
    main()
