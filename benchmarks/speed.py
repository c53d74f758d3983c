"""Speed: median time and per-stage breakdown per 500-frame tracklet, per 1024-px race photo and per number crop,
with the peak memory and the accuracy beside each, for the default configuration and a naive one in one run.

- Tracklets: two rendered 500-frame tracklets written as JPEGs (a drawn player with number 23, and the same
  player with a blank shirt, whose right answer is -1: the case where no early stop can help), rendered by
  `jerseynum.training.synth`, so the benchmark needs no data.
- Race photos: the RBNR development photos scaled to a 1024-px long side (skipped without ../shared/data).
- Number crops: SoccerNet and basketball development crops, each a one-frame tracklet (skipped without data).

Naive: every frame through pose and both text engines, no batching, no early stop, no legibility cascade.
Before: the default configuration as it was before the speed work (`before()`).
Each measurement runs in its own process (fork), so its peak resident memory is its own.

    python benchmarks/speed.py [--data ../shared/data] [--repeats 5] [--photos 40] [--crops 150] [--skip-naive]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import resource
import statistics
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import cv2

from jerseynum.config import PipelineConfig
from jerseynum.io import list_tracklets, write_json_atomic
from jerseynum.pipeline import STAGES, Pipeline
from jerseynum.training import splits
from jerseynum.training.synth import write_sample_tracklets
from jerseynum.types import Mode, Tracklet

REPO = Path(__file__).resolve().parents[1]


def before(mode: Mode) -> PipelineConfig:
    """The default configuration before the speed work of issue 6 (commit 101ca6a): the line detector at 640 px
    for jerseys too, 16 frames posed before the first read, every sampled frame scored even when none is legible."""
    return PipelineConfig(mode=mode, det_side=640, det_retry_sides=(800,), first_batch=16, illegible_stop=None)


def naive(mode: Mode) -> PipelineConfig:
    return PipelineConfig(mode=mode, pose="mediapipe", legibility=False, text_settle=None, max_frames=10_000,
                          batch_size=1, read_chunk=1, early_stop=False)  # fmt: skip


def _in_child(function, *args) -> dict:
    """Run `function(*args)` in a forked process; its result plus the process's peak memory."""
    context = multiprocessing.get_context("fork")
    with context.Pool(1) as pool:
        return pool.apply(_measured, (function, *args))


def _measured(function, *args) -> dict:
    result = function(*args)
    result["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    return result


def _summary(seconds: list[float], stages: list[dict[str, float]], correct: int) -> dict:
    median_stage = {
        s: round(statistics.median(t.get(s, 0.0) for t in stages), 4) for s in sorted({*STAGES, *stages[0]})
    }
    return {"median_s": round(statistics.median(seconds), 4), "mean_s": round(statistics.mean(seconds), 4),
            "items": len(seconds), "accuracy": round(correct / len(seconds), 4), "median_stage_s": median_stage}  # fmt: skip


def time_tracklets(config: PipelineConfig, tracklets: list[Tracklet], labels: dict[str, int], repeats: int) -> dict:
    pipeline = Pipeline(config)
    pipeline.run(Tracklet.from_images("warm-up", [cv2.imread(tracklets[0].frames[0].source)]))
    seconds, stages, correct = [], [], 0
    for _ in range(repeats):
        for tracklet in tracklets:
            start = time.perf_counter()
            prediction = pipeline.run(tracklet)
            seconds.append(time.perf_counter() - start)
            stages.append(prediction.timings)
            correct += prediction.number == labels[tracklet.id]
    return _summary(seconds, stages, correct)


def time_photos(config: PipelineConfig | None, photos: list[Path], labels: dict[str, list[str]]) -> dict:
    from jerseynum.photos.tagger import PhotoTagger

    tagger = PhotoTagger(config)
    images = []
    for path in photos:
        image = cv2.imread(str(path))
        scale = 1024 / max(image.shape[:2])
        images.append(cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA if scale < 1
                                 else cv2.INTER_LINEAR))  # fmt: skip
    tagger.tag(images[0])  # warm-up
    seconds, stages, correct = [], [], 0
    for path, image in zip(photos, images):
        timings: dict[str, float] = defaultdict(float)
        start = time.perf_counter()
        numbers = tagger.tag(image, timings)
        seconds.append(time.perf_counter() - start)
        stages.append(timings)
        truth = {t.lstrip("0") for t in labels[path.name]}
        correct += truth == {n.number.lstrip("0") for n in numbers}  # the photo's bibs exactly
    return _summary(seconds, stages, correct)


def number_crops(data: Path, limit: int) -> tuple[list[Tracklet], dict[str, int]]:
    """The first `limit` scored crops with a number label of each jersey number-crop set, as one-frame tracklets
    (the SoccerNet crops of the trained half are the crnn's training material), and their numbers."""
    tracklets, labels = [], {}
    for name in ("soccernet_numcrops_roboflow", "basketball_jersey_crops"):
        root = data / name
        items = sorted((file, label) for file, label in splits.scored_number_crops(root) if label.isdigit())
        for file_name, label in items[:limit]:
            tracklets.append(Tracklet.from_paths(f"{name}/{file_name}", [root / "images" / file_name]))
            labels[f"{name}/{file_name}"] = int(label)
    return tracklets, labels


def report(name: str, row: dict) -> None:
    stages = ", ".join(f"{stage} {seconds * 1000:.0f}" for stage, seconds in row["median_stage_s"].items() if seconds)
    print(f"  {name:44} median {row['median_s'] * 1000:8.1f} ms  accuracy {row['accuracy']:.3f}  "
          f"peak {row['peak_rss_mb']} MB  (median ms per stage: {stages})")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    parser.add_argument("--repeats", type=int, default=5, help="runs of each 500-frame tracklet (default config)")
    parser.add_argument("--photos", type=int, default=40, help="RBNR development photos timed")
    parser.add_argument("--crops", type=int, default=150, help="crops of each number-crop set timed")
    parser.add_argument("--skip-naive", action="store_true")
    parser.add_argument("--json", type=Path,
                        help="where the rows go (default: benchmarks/results/speed.json, unless the data is absent)")
    args = parser.parse_args()
    results: dict = {}
    settings = [("default", None), ("before", before)] + ([] if args.skip_naive else [("naive", naive)])

    with tempfile.TemporaryDirectory() as folder:
        labels = write_sample_tracklets(Path(folder), [23], frames=500)
        tracklets = list_tracklets(Path(folder))
        print("500-frame rendered tracklets (number 23, and a blank shirt: -1):")
        for name, make in settings:
            config = make(Mode.JERSEY) if make else PipelineConfig()
            # naive reads all 500 frames with every engine: once, and the numbered tracklet only
            timed = tracklets[:1] if make is naive else tracklets
            repeats = 1 if make is naive else args.repeats
            row = results[f"tracklet_500/{name}"] = _in_child(time_tracklets, config, timed, labels, repeats)
            report(f"500-frame tracklet, {name}", row)

    rbnr = args.data / "rbnr_bib_photos"
    if rbnr.is_dir():
        photo_labels = json.loads((rbnr / "labels.json").read_text())
        photos = [rbnr / "images" / name for name in sorted(photo_labels)][: args.photos]
        print(
            f"race photos at 1024 px ({len(photos)} RBNR development photos; accuracy: every bib of the photo right):"
        )
        for name, make in settings:
            row = results[f"photo_1024/{name}"] = _in_child(time_photos, make(Mode.BIB) if make else None, photos,
                                                            photo_labels)  # fmt: skip
            report(f"1024-px race photo, {name}", row)
        crops, crop_labels = number_crops(args.data, args.crops)
        print(f"number crops ({len(crops)}: SoccerNet and basketball development crops, one frame each):")
        for name, make in settings:
            config = make(Mode.JERSEY) if make else PipelineConfig()
            row = results[f"number_crop/{name}"] = _in_child(time_tracklets, config, crops, crop_labels, 1)
            report(f"number crop, {name}", row)
    else:
        print(f"race photos and number crops skipped: {args.data / 'rbnr_bib_photos'} not found")

    for item in ("tracklet_500", "photo_1024", "number_crop"):
        for other in ("before", "naive"):
            if f"{item}/{other}" in results:
                ratio = results[f"{item}/{other}"]["median_s"] / results[f"{item}/default"]["median_s"]
                results[f"{item}/speed_up_vs_{other}"] = round(ratio, 2)
                print(f"{item}: default is {ratio:.2f}x faster than {other}")
    # A run without the shared data does not replace the whole table unless asked to.
    json_path = args.json or (REPO / "benchmarks" / "results" / "speed.json" if rbnr.is_dir() else None)
    if json_path:
        write_json_atomic(json_path, results)


if __name__ == "__main__":
    main()
