"""A -1 you can trust: how often the pipeline answers -1 (no number) when no number can be read, in jersey and
bib mode, in one run.

Sets (each case's right answer in brackets):
1. Illegible runners [-1]. The RBNR runner crops (`rbnr_runner_crops`), each located in its photo by template
   matching, with their own bib box (grown by 10 % a side) made unreadable eight ways, everything else kept:
   Gaussian blur (sigma a third of the box height), pixelation (blocks half the box height), occlusion by the
   median colour of a ring around the box (with mild noise), 8x downscaling (more for a box over 48 px tall:
   at most 6 px of height are left) and back, a motion smear twice the box's height long within 30 degrees of
   horizontal, inpainting from the box's surroundings, and a flat light or dark colour (an unprinted bib, a
   redaction's black bar). The legibility classifier trains on copies degraded the first two ways only
   (`degrade.TRAINED`); the other six are held out.
2. Bib-free photo regions [-1]: the regions `benchmarks/legibility.py` scores (every 6th of 30 per scored photo).
3. Multi-frame tracklets of every runner, 8 frames, each the runner crop with a small random
   shift, scale, brightness and contrast: (i) illegible throughout, every frame degraded (kinds varied) [-1];
   (ii) the same with one or two legible frames (the original crop, jittered) [the runner's number]; runners
   alternate between one and two.
4. Number crops, one frame each, jersey mode only [their number]: the SoccerNet crops of the scored half
   (`soccernet_numcrops_roboflow`) and the basketball development crops, as `text_crops.py` scores them, here
   through the whole pipeline (legibility, text, vote) as single-frame tracklets: what a rule for -1 costs a lone
   legible number.
Only runners of the scored half of the RBNR photos (`splits.rbnr_scored`) by default: the legibility classifier
of jersey mode trained on bib-free regions of the other half, shirts and sponsor print included. `--all` adds
them (optimistic for jersey mode).

Scoring. A -1 case whose prediction is the number of another bib in view ("neighbour's bib"; in bib mode a
neighbour's real bib may be readable, and the part of it inside the crop counts too) is counted apart. The other
bibs are RBNR's labelled ones and, where RBNR labels none, those an audit by eye found in the crop
(`benchmarks/audits/rbnr_unlabelled_bibs.json`, with the digits in view). Such a case is left out of the
denominator of the right -1 share and reported as its own share. A prediction equal to the runner's own number
means the degradation did not hide it ("own number": a flaw of the benchmark, a miss listed apart). Everything else not -1 is an invented number.
RBNR labels only some runners, so "invented" also holds real numbers nobody labelled: a crowd runner's bib at a
crop's edge or in a bib-free region, race clocks, years on banners and shirts. Invented numbers are therefore also
counted by length: a single digit (no RBNR bib has one) is made up; numbers of 3+ digits are often real print.
Numbers' accuracy on (ii) in jersey mode is on the runners labelled 0-99 only (a bib of 3-5 digits cannot be a
jersey number). Every image is built from seeded generators keyed by the case id, so runs are deterministic.

    python benchmarks/minus_one.py [--data ../shared/data] [--limit N] [--modes jersey bib] [--gallery DIR]
                                   [--all] [--json benchmarks/results/minus_one.json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from jerseynum.config import PipelineConfig
from jerseynum.io import write_json_atomic
from jerseynum.pipeline import Pipeline
from jerseynum.training import require_sets, splits
from jerseynum.training.degrade import DEGRADATIONS, degrade, seeded_rng
from jerseynum.training.rbnr import Runner, rbnr_runners
from jerseynum.training.train_legibility import rbnr_bib_free_regions
from jerseynum.types import NO_NUMBER, Mode, Tracklet

REPO = Path(__file__).resolve().parents[1]
FRAMES = 8
# Runner crops that show another runner's bib RBNR does not label, and its digits in view (looked at by eye)
UNLABELLED_BIBS = REPO / "benchmarks" / "audits" / "rbnr_unlabelled_bibs.json"
MULTI_FRAME = ("multi-frame, illegible throughout", "multi-frame, 1-2 legible frames")
# jersey-number crop sets, scored on the crops the trained recognizer never saw (`splits.number_crop_scored`)
NUMBER_CROPS = ("soccernet_numcrops_roboflow", "basketball_jersey_crops")


@dataclass
class Case:
    """One tracklet of the benchmark and its right answer (NO_NUMBER or the runner's number)."""

    id: str
    images: list[np.ndarray]
    expected: int
    kind: str
    neighbours: tuple[str, ...] = ()  # the digits of other runners' bibs in view: labelled, or audited by eye
    own: int | None = None  # the hidden number, when the case is a runner whose bib was made unreadable

    def tracklet(self) -> Tracklet:
        return Tracklet.from_images(self.id, self.images)


def jitter(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Another frame of the same person: shifted up to 5 %, scaled 0.9-1.1, brightness and contrast changed."""
    height, width = image.shape[:2]
    matrix = cv2.getRotationMatrix2D((width / 2, height / 2), 0, rng.uniform(0.9, 1.1))
    matrix[:, 2] += rng.uniform(-0.05, 0.05, 2) * (width, height)
    moved = cv2.warpAffine(image, matrix, (width, height), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    mean = moved.mean()
    toned = (moved.astype(np.float32) - mean) * rng.uniform(0.8, 1.2) + mean + rng.uniform(-25, 25)
    return np.clip(toned, 0, 255).astype(np.uint8)


def other_bibs(runner: Runner, unlabelled: dict[str, list[str]]) -> tuple[str, ...]:
    """The digits of the other bibs in `runner`'s crop: the labelled ones and those an audit saw (`unlabelled`)."""
    return tuple(str(number) for number in runner.neighbours) + tuple(unlabelled.get(runner.id, ()))


def illegible_runners(runners: list[Runner], unlabelled: dict[str, list[str]] | None = None) -> list[Case]:
    """Each runner with its bib made unreadable, one case per degradation; the right answer is -1."""
    cases = []
    for runner in runners:
        for kind in DEGRADATIONS:
            image = degrade(runner.crop, runner.bib, kind, seeded_rng(f"{runner.id}/{kind}"))
            cases.append(Case(f"{runner.id}/{kind}", [image], NO_NUMBER, f"runners, {kind}",
                              other_bibs(runner, unlabelled or {}), runner.number))  # fmt: skip
    return cases


def bib_free_cases(data: Path, regions_per_photo: int = 30, every: int = 6) -> list[Case]:
    """The bib-free regions of the scored RBNR photos that `benchmarks/legibility.py` runs end to end (-1)."""
    # the other half's regions (these very ones, same seed) trained the legibility classifier
    cases = [Case(f"{name}#{x1},{y1},{x2},{y2}", [region], NO_NUMBER, "bib-free regions")
             for name, _, (x1, y1, x2, y2), region in rbnr_bib_free_regions(data, splits.rbnr_scored, regions_per_photo)]  # fmt: skip
    return cases[::every]


def number_crop_cases(data: Path) -> list[Case]:
    """The scored jersey-number crops (`NUMBER_CROPS`), each a single-frame tracklet due its labelled number."""
    cases = []
    for name in NUMBER_CROPS:
        for file, label in splits.scored_number_crops(data / name):
            image = cv2.imread(str(data / name / "images" / file))
            cases.append(Case(f"{name}/{file}", [image], int(label), number_crop_kind(name)))
    return cases


def number_crop_kind(name: str) -> str:
    return f"number crops, {name.split('_')[0]}"


def multi_frame_tracklets(runners: list[Runner], frames: int = FRAMES,
                          unlabelled: dict[str, list[str]] | None = None) -> list[Case]:  # fmt: skip
    """Per runner, `frames` jittered frames all degraded (answer -1), and the same with one or two legible frames
    (the original crop, jittered; runners alternate between one and two) whose answer is the runner's number."""
    cases = []
    for index, runner in enumerate(runners):
        for legible, kind in ((0, MULTI_FRAME[0]), (1 + index % 2, MULTI_FRAME[1])):
            case_id = f"{runner.id}/{legible} legible of {frames}"
            rng = seeded_rng(case_id)
            kinds = rng.permutation(np.resize(DEGRADATIONS, frames))
            clear = set(rng.choice(frames, legible, replace=False).tolist())
            images = [jitter(runner.crop if i in clear else degrade(runner.crop, runner.bib, str(kinds[i]), rng), rng)
                      for i in range(frames)]  # fmt: skip
            expected = runner.number if legible else NO_NUMBER
            cases.append(
                Case(case_id, images, expected, kind, other_bibs(runner, unlabelled or {}),
                     None if legible else runner.number)
            )
    return cases


def save_gallery(runners: list[Runner], cases: list[Case], folder: Path, count: int = 8) -> None:
    """Per runner (the first `count`), the original crop and its degraded versions side by side, and the frames of
    its multi-frame tracklets, enlarged 2x so a person can check that no digit survives."""
    folder.mkdir(parents=True, exist_ok=True)
    by_id = {case.id: case for case in cases}
    for runner in runners[:count]:
        single = [runner.crop] + [by_id[f"{runner.id}/{kind}"].images[0] for kind in DEGRADATIONS]
        multi = [case.images for case in cases if case.id.startswith(f"{runner.id}/") and len(case.images) > 1]
        for name, row in [("degraded", single)] + [(f"tracklet{i}", images) for i, images in enumerate(multi)]:
            strip = cv2.hconcat(row)
            cv2.imwrite(
                str(folder / f"{runner.id}_{name}.png"),
                cv2.resize(strip, None, fx=2, fy=2, interpolation=cv2.INTER_NEAREST),
            )


def run_mode(mode: Mode, cases: list[Case]) -> list[dict]:
    """Each case's prediction and seconds, in case order."""
    pipeline = Pipeline(PipelineConfig(mode=mode))
    pipeline.run(cases[0].tracklet())  # warm-up: lazily built detectors and first-call allocations
    outcomes = []
    for case in tqdm(cases, desc=f"{mode.value} mode", mininterval=10):
        start = time.perf_counter()
        prediction = pipeline.run(case.tracklet())
        outcomes.append({"number": prediction.number, "text": prediction.text,
                         "confidence": round(prediction.confidence, 3), "seconds": time.perf_counter() - start})  # fmt: skip
    return outcomes


def outcome(case: Case, number: int, text: str, mode: Mode) -> str:
    if case.expected != NO_NUMBER:
        if not mode.accepts(str(case.expected)):
            return "unanswerable"  # a bib of 3-5 digits in jersey mode
        return "right" if number == case.expected else "wrong"
    if number == NO_NUMBER:
        return "right"
    if text in case.neighbours or (mode is Mode.BIB and any(text in other for other in case.neighbours)):
        return "neighbour"  # another runner's bib; in bib mode also the part of it in view
    return "own" if number == case.own else "invented"


def summarise(mode: Mode, cases: list[Case], outcomes: list[dict]) -> dict:
    order = [f"runners, {kind}" for kind in DEGRADATIONS] + [
        "runners, all degradations",
        "bib-free regions",
        *MULTI_FRAME,
        *map(number_crop_kind, NUMBER_CROPS),
    ]
    groups: dict[str, list[int]] = {kind: [] for kind in order}
    for i, case in enumerate(cases):
        groups[case.kind].append(i)
        if case.kind.startswith("runners, "):
            groups["runners, all degradations"].append(i)
    rows = {}
    for kind, members in groups.items():
        if not members:
            continue
        seconds = round(statistics.median(outcomes[i]["seconds"] for i in members), 3)
        counts = Counter(outcome(cases[i], outcomes[i]["number"], outcomes[i]["text"], mode) for i in members)
        if cases[members[0]].expected != NO_NUMBER:
            scored = counts["right"] + counts["wrong"]
            rows[kind] = {"cases": len(members), "scored": scored,
                          "accuracy": round(counts["right"] / scored, 4) if scored else None,
                          "s_per_tracklet_median": seconds}  # fmt: skip
            continue
        scored = len(members) - counts["neighbour"]
        rows[kind] = {"cases": len(members), "right_minus_one": round(counts["right"] / scored, 4) if scored else None,
                      "neighbour": round(counts["neighbour"] / len(members), 4), "own_number": counts["own"],
                      "invented": counts["invented"], "s_per_tracklet_median": seconds}  # fmt: skip
    invented = Counter(outcomes[i]["number"] for i, case in enumerate(cases)
                       if outcome(case, outcomes[i]["number"], outcomes[i]["text"], mode) == "invented")  # fmt: skip
    by_digits = Counter(min(len(str(number)), 3) for number in invented.elements())
    errors = []  # every miss, for a look at the images behind them
    for i, case in enumerate(cases):
        result = outcome(case, outcomes[i]["number"], outcomes[i]["text"], mode)
        if result not in ("right", "unanswerable"):
            errors.append({"id": case.id, "kind": case.kind, "expected": case.expected, **outcomes[i],
                           "seconds": round(outcomes[i]["seconds"], 3), "outcome": result})  # fmt: skip
    return {"sets": rows, "invented_numbers": invented.most_common(),
            "invented_by_digits": {"1": by_digits[1], "2": by_digits[2], "3+": by_digits[3]}, "errors": errors,
            "seconds_total": round(sum(o["seconds"] for o in outcomes), 1)}  # fmt: skip


def print_table(results: dict[str, dict], top: int = 8) -> None:
    """Per set and mode: the right -1 share (neighbours' bibs left out), the neighbour's-bib share, how many
    answered the hidden number, median seconds per tracklet; accuracy (and how many scored) where a number is due."""
    modes = list(results)
    print(f"\n{'set':34}{'cases':>6}" + "".join(f" | {m + ' mode':^33}" for m in modes))
    print(f"{'':40}" + f" | {'right -1':>9}{'neighbour':>10}{'own':>5}{'median s':>9}" * len(modes))
    kinds = {kind: row for mode in modes for kind, row in results[mode]["sets"].items()}
    for kind, row in kinds.items():
        cells = []
        for mode in modes:
            cell = results[mode]["sets"].get(kind)
            if cell is None:  # a set of the other mode only
                cells.append(f"{'-':>33}")
                continue
            if "accuracy" in cell:
                value = "n/a" if cell["accuracy"] is None else f"{cell['accuracy']:.3f}"
                cells.append(f"{'accuracy ' + value + ' (n=' + str(cell['scored']) + ')':>24}")
            else:
                value = "n/a" if cell["right_minus_one"] is None else f"{cell['right_minus_one']:.3f}"
                cells.append(f"{value:>9}{cell['neighbour']:>10.3f}{cell['own_number']:>5}")
            cells[-1] += f"{cell['s_per_tracklet_median']:>9.3f}"
        print(f"{kind:34}{row['cases']:>6}" + "".join(f" | {c}" for c in cells))
    for mode in modes:
        common = ", ".join(f"{n} x{c}" for n, c in results[mode]["invented_numbers"][:top]) or "none"
        digits = results[mode]["invented_by_digits"]
        print(f"{mode} mode: {sum(digits.values())} invented numbers on -1 cases ({digits['1']} of 1 digit, "
              f"{digits['2']} of 2, {digits['3+']} of 3+), most frequent: {common}; "
              f"{results[mode]['seconds_total']:.0f} s of pipeline time")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    parser.add_argument("--limit", type=int, help="only the first N runners and N bib-free regions (a quick run)")
    parser.add_argument("--modes", nargs="+", default=["jersey", "bib"], choices=[m.value for m in Mode])
    parser.add_argument("--all", action="store_true", help="runners of every RBNR photo, not only the scored half")
    parser.add_argument("--gallery", type=Path, help="save examples of the degraded crops and tracklets here")
    parser.add_argument("--json", type=Path, default=REPO / "benchmarks" / "results" / "minus_one.json")
    args = parser.parse_args()
    try:
        require_sets(args.data, ["rbnr_runner_crops", "rbnr_bib_photos", *NUMBER_CROPS])
    except FileNotFoundError as error:
        parser.error(str(error))
    started = time.perf_counter()
    runners, skipped = rbnr_runners(args.data, (lambda name: True) if args.all else splits.rbnr_scored)
    for reason in skipped:
        print(f"skipped {reason}")
    runners = runners[: args.limit]
    # Multi-frame tracklets of every runner (~1 s each in bib mode since session 16's faster line search): the
    # 29 of every third runner until session 29 read 1.000 in jersey mode where all 86 read 0.965.
    unlabelled = json.loads(UNLABELLED_BIBS.read_text())["visible"]
    cases = (illegible_runners(runners, unlabelled) + bib_free_cases(args.data)[: args.limit]
             + multi_frame_tracklets(runners, unlabelled=unlabelled))  # fmt: skip
    print(f"{len(runners)} runners (matched at {min(r.match for r in runners):.3f} or better), "
          f"{sum(len(r.neighbours) > 0 for r in runners)} with another labelled bib in view, "
          f"{sum(r.id in unlabelled for r in runners)} with one RBNR does not label; {len(cases)} tracklets")  # fmt: skip
    if args.gallery:
        save_gallery(runners, cases, args.gallery)
    numbers = number_crop_cases(args.data)[: args.limit]
    results = {}
    for mode in map(Mode, args.modes):
        mode_cases = cases + numbers if mode is Mode.JERSEY else cases
        results[mode.value] = summarise(mode, mode_cases, run_mode(mode, mode_cases))
    print_table(results)
    seconds = round(time.perf_counter() - started)
    print(f"whole run: {seconds} s")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    report = {"runners": len(runners), "all_photos": args.all, "limit": args.limit, "skipped": skipped,
              "tracklets": len(cases), "run_seconds": seconds, "modes": results}  # fmt: skip
    write_json_atomic(args.json, report)


if __name__ == "__main__":
    main()
