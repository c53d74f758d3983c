"""Race-photo tagging on the development photos, decided with the whole event: bib-level precision, recall and
F1 as labelled, a box-matched score, with and without a start list, identity results, a reliability table of
the stored confidence, and seconds per photo; plain whole-photo RapidOCR (and EasyOCR with --baselines easyocr)
in the same run.

Pass 1 (`PhotoTagger.read`: runners, their readings and appearance) runs once per photo and is cached in
`--cache` by the tagger's model version, so a change of pass 2 (`photos/event.py`) is measured in seconds.

Scores:
- As labelled: a predicted number counts when its digits, leading zeros dropped, equal a labelled number of the
  same photo (each labelled number at most once); everything else predicted is a false positive. RBNR labels only
  some runners of a crowd, and a few labels are wrong, so this undercounts precision.
- Box-matched (sets with `labels_with_boxes.json`): a number whose box lies on a labelled bib (the boxes share at
  least half of the smaller one) is right or wrong against that bib; numbers elsewhere are counted apart, split
  into audited unlabelled runners' bibs (below) and the rest: pieces of bibs, or junk. Precision = right / (right +
  wrong); recall = labelled bibs with a right number.
- With a start list: simulated per race (an organiser's list is of one race) as all labelled bibs of the race plus
  as many random decoys of the same lengths (draw 0; `--list-draws N` also prints F1 as labelled over N draws,
  since a decoy can land on a piece that was read).
- Identity (RBNR, `rbnr_same_runner_groups`): the runner on each grouped bib; rank-1 = its nearest runner in the
  set's other photos is the same person; then, per grouped runner, its own read hidden and the event re-decided:
  how often a number is propagated to it and how often that number is right.
- Audited (`benchmarks/audits/<set>_unlabelled_photo_bibs.json`): the unlabelled bibs a person reads whole where
  we showed a number nobody labelled; reading one is reading a real runner's bib. They are counted apart
  (precision as labelled with them right) and F1 stays as labelled. An audit covers the numbers shown when it was
  made: a bib first read later counts as false until it is looked at.
- Reliability: the stored confidence of the box-matched numbers (where a set has no boxes: of every shown number,
  right when labelled or audited), binned, against how often they are right; ECE = the bins' |predicted -
  observed| weighted by their share.
The baselines are scored as in ../shared/BASELINES.md: non-digits stripped, strings of 2-6 digits kept,
deduplicated per photo.

`--faces-only` finds runners by their faces alone (`jerseynum tag --faces-only`): against the default, it shows what
the person boxes add.

    python benchmarks/photos.py [--data ../shared/data] [--sets rbnr_bib_photos misc_bib_photos]
                                [--baselines rapidocr easyocr] [--cache .cache/bench-photos] [--faces-only]
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
import json
import pickle
import random
import statistics
import time
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from jerseynum.io import write_json_atomic
from jerseynum.photos.event import FEATURES, EventSettings, decide_event, scored_candidates, signature
from jerseynum.photos.identity import photo_time, rank_matches
from jerseynum.photos.index import SHOWN, BibNumber, StoredRunner, reviewed_hidden
from jerseynum.photos.runners import RunnerSettings
from jerseynum.photos.startlist import Entrant, StartList
from jerseynum.photos.tagger import PhotoTagger
from jerseynum.training import require_sets, splits

REPO = Path(__file__).resolve().parents[1]
BINS = (0.0, 0.5, 0.7, 0.8, 0.9, 0.95, 0.99, 1.0001)
# What was looked at by eye in the photos: labels the bib contradicts (`corrected_labels`), and, for sets without
# bib boxes, unlabelled bibs read whole where we showed them (`audited_bibs`).
AUDITS = REPO / "benchmarks" / "audits"


def _audit(set_name: str, kind: str, key: str) -> dict:
    """The `key` entry of `AUDITS/<set>_<kind>.json`, or nothing where the set has no such audit."""
    path = AUDITS / f"{set_name.removesuffix('_bib_photos')}_{kind}.json"
    return json.loads(path.read_text())[key] if path.is_file() else {}


def corrected_labels(set_name: str, labels: dict[str, list[str]], boxes: dict[str, list[dict]] | None
                     ) -> tuple[dict[str, list[str]], dict[str, list[dict]] | None]:  # fmt: skip
    """`labels` and `boxes` with the labels that the photos contradict replaced by what the bib shows
    (`AUDITS/<set>_label_corrections.json`, looked at by eye; none: unchanged)."""
    fixes = _audit(set_name, "label_corrections", "corrected")
    labels = {photo: [fixes.get(photo, {}).get(n, n) for n in numbers] for photo, numbers in labels.items()}
    if boxes is not None:
        boxes = {photo: [{**bib, "number": fixes.get(photo, {}).get(bib["number"], bib["number"])} for bib in bibs]
                 for photo, bibs in boxes.items()}  # fmt: skip
    return labels, boxes


def audited_bibs(set_name: str) -> dict[str, list[str]]:
    """Photo -> unlabelled bibs an audit by eye found whole (`AUDITS/<set>_unlabelled_photo_bibs.json`), if any."""
    return _audit(set_name, "unlabelled_photo_bibs", "visible")


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
    return {"precision": round(precision, 3), "recall": round(recall, 3), "f1": round(f1, 3), "tp": tp, "fp": fp,
            "fn": fn}  # fmt: skip


def on_bib(box, bib) -> float:
    """How much two boxes share, as a fraction of the smaller one."""
    inter_w = min(box[2], bib[2]) - max(box[0], bib[0])
    inter_h = min(box[3], bib[3]) - max(box[1], bib[1])
    if inter_w <= 0 or inter_h <= 0:
        return 0.0
    smaller = min((box[2] - box[0]) * (box[3] - box[1]), (bib[2] - bib[0]) * (bib[3] - bib[1]))
    return inter_w * inter_h / max(smaller, 1e-9)


def matched_bib(number: BibNumber, bibs: list[dict]) -> dict | None:
    """The labelled bib a number's box lies on, if any (the one it shares most with)."""
    shares = [(on_bib(number.box, bib["box_xyxy"]), k) for k, bib in enumerate(bibs)]
    share, k = max(shares, default=(0.0, -1))
    return bibs[k] if share >= 0.5 else None


def box_matched(decided: dict[str, list[BibNumber]], boxes: dict[str, list[dict]],
                audited: dict[str, set[str]]) -> tuple[dict, list[tuple]]:  # fmt: skip
    """The box-matched score, and (confidence, right) of every number lying on a labelled bib. Numbers elsewhere
    are split: an unlabelled runner's bib that an audit by eye found whole in the photo (`audited`, normalised), or
    a piece of a bib or junk."""
    right = wrong = elsewhere = unlabelled = 0
    found: set[tuple[str, int]] = set()
    judged = []
    for photo, bibs in boxes.items():
        for number in decided.get(photo, []):
            if number.status not in SHOWN:
                continue
            bib = matched_bib(number, bibs)
            if bib is None:
                elsewhere += 1
                unlabelled += normalised(number.number) in audited.get(photo, set())
                continue
            ok = normalised(number.number) == normalised(bib["number"])
            right += ok
            wrong += not ok
            judged.append((number.confidence, ok, number.status, photo))
            if ok:
                found.add((photo, bibs.index(bib)))
    total = sum(len(bibs) for bibs in boxes.values())
    row = {"precision": round(right / max(right + wrong, 1), 3), "recall": round(len(found) / max(total, 1), 3),
           "right": right, "wrong": wrong, "elsewhere": elsewhere, "elsewhere_unlabelled_bibs": unlabelled,
           "elsewhere_pieces_or_junk": elsewhere - unlabelled, "labelled_bibs": total}  # fmt: skip
    return row, judged


def review_queue(decided: dict[str, list[BibNumber]], real: dict[str, set[str]], top: int = 10) -> dict:
    """What `jerseynum review` puts before a person as hidden reads (`index.reviewed_hidden`), likeliest first: how
    many, and how many are real bibs of their photo (`real`: the labelled and the audited numbers, normalised), in
    all and among the `top` likeliest."""
    queue = sorted(((n.confidence, normalised(n.number) in real.get(photo, set()))
                    for photo, numbers in decided.items() for n in reviewed_hidden(numbers)), reverse=True)  # fmt: skip
    return {"hidden_reads": len(queue), "real_bibs": sum(ok for _, ok in queue), "top": top,
            "real_bibs_in_top": sum(ok for _, ok in queue[:top])}  # fmt: skip


def reliability(judged: list[tuple[float, bool]]) -> dict:
    """Per confidence bin: numbers, mean stored confidence, share right; and the ECE."""
    rows, ece = [], 0.0
    for low, high in itertools.pairwise(BINS):
        inside = [(c, ok) for c, ok in judged if low <= c < high]
        if not inside:
            continue
        predicted = statistics.mean(c for c, _ in inside)
        observed = statistics.mean(ok for _, ok in inside)
        ece += len(inside) / len(judged) * abs(predicted - observed)
        rows.append({"bin": f"{low:.2f}-{min(high, 1):.2f}", "numbers": len(inside), "predicted": round(predicted, 3),
                     "observed": round(observed, 3)})  # fmt: skip
    return {"bins": rows, "ece": round(ece, 4), "numbers": len(judged)}


def simulated_start_list(labels: dict[str, list[str]], seed: int = 0) -> StartList:
    """Every labelled bib of the set, and as many random decoys of the same lengths."""
    bibs = sorted({b for numbers in labels.values() for b in numbers})
    rng = random.Random(seed)
    decoys: set[str] = set()
    for bib in bibs:
        while (decoy := str(rng.randrange(10 ** (len(bib) - 1), 10 ** len(bib)))) in bibs or decoy in decoys:
            pass
        decoys.add(decoy)
    return StartList(Entrant(b) for b in bibs + sorted(decoys))


def race_start_lists(labels: dict[str, list[str]], seed: int = 0) -> dict[str, StartList]:
    """Each race's simulated start list (`simulated_start_list` of its photos' labels): an organiser's list is of
    one race, so a bib of another race of the set read here is not on it."""
    races = sorted({event_of(photo) for photo in labels})
    return {race: simulated_start_list({p: n for p, n in labels.items() if event_of(p) == race}, seed) for race in races}


def read_set(root: Path, names: list[str], cache: Path, anchors: RunnerSettings = RunnerSettings()
             ) -> tuple[list[StoredRunner], list[float]]:  # fmt: skip
    """Pass 1 over the set's photos (cached by model version, which names the runner `anchors`): every runner,
    and seconds per photo."""
    tagger = PhotoTagger(runners=anchors)
    key = hashlib.sha256(f"{tagger.version} {sorted(names)}".encode()).hexdigest()[:12]
    cached = cache / f"{root.name}-{key}.pkl"
    if cached.is_file():
        return pickle.loads(cached.read_bytes())
    tagger.read(cv2.imread(str(root / "images" / names[0])))  # warm-up
    runners, seconds = [], []
    for name in tqdm(names, desc=f"{root.name}: pass 1", leave=False, mininterval=10):
        data = (root / "images" / name).read_bytes()
        photo = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
        start = time.perf_counter()
        reads = tagger.read(photo)
        seconds.append(time.perf_counter() - start)
        taken = photo_time(data)
        runners += [StoredRunner(len(runners) + k, name, taken, read) for k, read in enumerate(reads)]
    cache.mkdir(parents=True, exist_ok=True)
    cached.write_bytes(pickle.dumps((runners, seconds)))
    return runners, seconds


def event_of(photo: str) -> str:
    """The race a development photo is of: RBNR's sets ("set1_02.JPG") and misc's sources ("gheinrich__0009.JPG")
    are different races, and a photographer indexes each race apart."""
    return photo.split("__")[0] if "__" in photo else photo.split("_")[0]


def decide_events(
    runners: list[StoredRunner], start_lists: dict[str, StartList], settings: EventSettings
) -> tuple[dict, dict]:
    """Pass 2 per race of the set (with the race's start list, if `start_lists` has one), merged."""
    decided, clusters = {}, {}
    for event in sorted({event_of(r.path) for r in runners}):
        numbers, labels = decide_event([r for r in runners if event_of(r.path) == event], start_lists.get(event),
                                       settings)  # fmt: skip
        decided.update(numbers)
        clusters.update({runner: f"{event}/{label}" for runner, label in labels.items()})
    return decided, clusters


def shown(decided: dict[str, list[BibNumber]]) -> dict[str, set[str]]:
    return {photo: {n.number for n in numbers if n.status in SHOWN} for photo, numbers in decided.items()}


def identity(runners: list[StoredRunner], boxes: dict[str, list[dict]], groups: dict, settings: EventSettings,
             start_lists: dict[str, StartList]) -> dict:  # fmt: skip
    """Rank-1 matching and propagation with the bib hidden, on the runners of the grouped bibs."""
    by_photo: dict[str, list[StoredRunner]] = {}
    for runner in runners:
        by_photo.setdefault(runner.path, []).append(runner)
    members: dict[int, str] = {}  # runner id -> group
    for group_id, group in groups.items():
        for photo in group["photos"]:
            bib = next((b for b in boxes.get(photo, []) if b["number"] == group["bib"]), None)
            candidates = [(on_bib(r.read.region, bib["box_xyxy"]), r) for r in by_photo.get(photo, [])] if bib else []
            share, runner = max(candidates, key=lambda c: c[0], default=(0.0, None))
            if runner is not None and share >= 0.5:
                members[runner.id] = group_id
    apart = {g for g, group in groups.items() if not group["only_adjacent_photos"]}
    rank1 = {"all": [0, 0], "different moments": [0, 0]}
    for runner_id, group_id in members.items():
        query = next(r for r in runners if r.id == runner_id)
        looks = signature(query, settings.min_face_score)
        if looks.face is None or sum(g == group_id for g in members.values()) < 2:
            continue
        gallery = [r for r in runners if r.path != query.path and event_of(r.path) == event_of(query.path)]
        gallery_looks = [signature(r, settings.min_face_score) for r in gallery]
        best = gallery[rank_matches(looks, gallery_looks, settings.identity)[0]]
        hit = members.get(best.id) == group_id
        for kind in ("all", "different moments") if group_id in apart else ("all",):
            rank1[kind][0] += hit
            rank1[kind][1] += 1
    propagated = right = 0
    for runner_id, group_id in tqdm(members.items(), desc="identity: bibs hidden", leave=False):
        hidden = [replace(r, read=replace(r.read, number="", confidence=0.0, box=None, evidence={})) if r.id == runner_id
                  else r for r in runners]  # fmt: skip
        decided, _ = decide_events(hidden, start_lists, settings)
        path = next(r.path for r in runners if r.id == runner_id)
        gift = next((n for n in decided[path] if n.runner == runner_id and n.status == "propagated"), None)
        if gift is not None:
            propagated += 1
            right += gift.number == groups[group_id]["bib"]
    return {"grouped_runners_found": len(members), "groups": len(groups),
            "rank1": {kind: {"right": r, "queries": n, "rate": round(r / n, 3) if n else None}
                      for kind, (r, n) in rank1.items()},
            "bib_hidden": {"propagated": propagated, "right": right,
                           "right_share": round(right / propagated, 3) if propagated else None}}  # fmt: skip


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


def run_baseline(engine, root: Path, labels: dict[str, list[str]]) -> dict:
    predicted, seconds = {}, []
    engine.numbers(cv2.imread(str(root / "images" / next(iter(labels)))))  # warm-up
    for name in tqdm(labels, desc=f"{root.name}: {engine.name}", leave=False, mininterval=10):
        photo = cv2.imread(str(root / "images" / name))
        start = time.perf_counter()
        predicted[name] = engine.numbers(photo)
        seconds.append(time.perf_counter() - start)
    return {"set": root.name, "engine": engine.name, "photos": len(labels), **score(predicted, labels),
            "s_per_photo_median": round(statistics.median(seconds), 3)}  # fmt: skip


def run_ours(root: Path, labels: dict[str, list[str]], cache: Path, data: Path, settings: EventSettings,
             anchors: RunnerSettings = RunnerSettings(), draws: int = 1) -> dict:  # fmt: skip
    """Pass 1 (cached) and pass 2 on a set, scored without and with the simulated start list; with `draws` > 1
    also F1 as labelled over that many draws of the list's decoys (`list_draws`)."""
    runners, seconds = read_set(root, list(labels), cache, anchors)
    boxes_file = root / "labels_with_boxes.json"
    boxes = json.loads(boxes_file.read_text()) if boxes_file.is_file() else None
    # The truth for the box-matched score and the start list; "as labelled" keeps labels.json.
    true_labels, boxes = corrected_labels(root.name, labels, boxes)
    # Sets without boxes: a shown number is right when it is a labelled number of its photo or an audited bib.
    audited = {photo: {normalised(b) for b in bibs} for photo, bibs in audited_bibs(root.name).items()}
    real = {photo: {normalised(t) for t in numbers} | audited.get(photo, set()) for photo, numbers in labels.items()}
    groups_file = data / "rbnr_same_runner_groups" / "groups.json"
    row: dict = {"set": root.name, "engine": "jerseynum", "photos": len(labels), "runners": len(runners),
                 "runners_found_by": "faces and person boxes" if anchors.bodies else "faces",
                 "s_per_photo_median": round(statistics.median(seconds), 3),
                 "s_per_photo_mean": round(statistics.mean(seconds), 3)}  # fmt: skip
    for label, start_lists in (("no start list", {}), ("start list", race_start_lists(true_labels))):
        started = time.perf_counter()
        decided, clusters = decide_events(runners, start_lists, settings)
        result = {"pass2_seconds": round(time.perf_counter() - started, 2), **score(shown(decided), labels)}
        if boxes is not None:
            result["box_matched"], judged = box_matched(decided, boxes, audited)
        else:
            judged = [(n.confidence, normalised(n.number) in real[photo], n.status, photo)
                      for photo, numbers in decided.items() for n in numbers if n.status in SHOWN]  # fmt: skip
        if audited:
            unlabelled = sum(normalised(number) in audited.get(photo, set())
                             for photo, numbers in shown(decided).items() for number in numbers)  # fmt: skip
            result["audited"] = {"unlabelled_bibs_read": unlabelled,
                                 "precision": round((result["tp"] + unlabelled) / max(result["tp"] + result["fp"], 1), 3)}  # fmt: skip
        if root.name == "rbnr_bib_photos":  # the calibration was fitted on the other half's photos
            judged = [j for j in judged if splits.rbnr_scored(j[3])]
        result["reliability"] = reliability([(c, ok) for c, ok, _, _ in judged])
        result["review"] = review_queue(decided, real)
        statuses = [n.status for numbers in decided.values() for n in numbers]
        result["statuses"] = {s: statuses.count(s) for s in sorted(set(statuses))}
        propagated = [ok for _, ok, status, _ in judged if status in ("propagated", "completed")]
        result["propagated_judged"] = {"numbers": len(propagated), "right": sum(propagated)}
        result["identity_clusters"] = sum(1 for c in set(clusters.values()) if list(clusters.values()).count(c) > 1)
        if boxes is not None and groups_file.is_file() and root.name == "rbnr_bib_photos":
            result["identity"] = identity(runners, boxes, json.loads(groups_file.read_text()), settings, start_lists)
        row[label] = result
    if draws > 1:
        row["start_list_draws"] = list_draws(runners, labels, true_labels, settings, draws)
    return row


def list_draws(runners: list[StoredRunner], labels: dict[str, list[str]], true_labels: dict[str, list[str]],
               settings: EventSettings, draws: int) -> dict:  # fmt: skip
    """F1 as labelled with the start list over `draws` draws of its decoys (seeds 0..draws-1)."""
    f1 = [score(shown(decide_events(runners, race_start_lists(true_labels, seed), settings)[0]), labels)["f1"]
          for seed in range(draws)]  # fmt: skip
    return {"draws": draws, "f1_median": round(statistics.median(f1), 3), "f1_min": round(min(f1), 3),
            "f1_max": round(max(f1), 3), "draws_under_0.95": sum(f < 0.95 for f in f1)}  # fmt: skip


def fit_calibration(runners: list[StoredRunner], labels: dict[str, list[str]], boxes: dict[str, list[dict]]) -> None:
    """Fit `event.CALIBRATION` on the numbers lying on a labelled bib in the trained half's photos, with and
    without the simulated start list, and print it (to paste into photos/event.py)."""
    from sklearn.linear_model import LogisticRegression

    trained = [r for r in runners if not splits.rbnr_scored(r.path)]
    x, y = [], []
    for start_lists in ({}, race_start_lists(labels)):
        for event in sorted({event_of(r.path) for r in trained}):
            scored, _, _ = scored_candidates([r for r in trained if event_of(r.path) == event], start_lists.get(event))
            for photo, numbers in scored.items():
                for number, values in numbers:
                    bib = matched_bib(number, boxes.get(photo, []))
                    # fragments and duplicates are hidden whatever their odds
                    if bib is not None and number.status not in ("fragment", "duplicate"):
                        x.append(values)
                        y.append(normalised(number.number) == normalised(bib["number"]))
    model = LogisticRegression(C=1.0, max_iter=1000).fit(np.array(x), np.array(y))
    weights = ", ".join(f"{w:.3f}" for w in model.coef_[0])
    print(f"{len(y)} numbers on labelled bibs, {len(y) - sum(y)} wrong; features {FEATURES}")
    print(f"CALIBRATION = Calibration(weights=({weights}), intercept={model.intercept_[0]:.3f})")


def print_ours(row: dict) -> None:
    print(
        f"\n{row['set']}: {row['photos']} photos, {row['runners']} runners (found by {row['runners_found_by']}), "
        f"{row['s_per_photo_median']:.2f} s per photo (median, pass 1 with face embeddings)"
    )
    for label in ("no start list", "start list"):
        r = row[label]
        line = f"  {label:14} as labelled P {r['precision']:.3f} R {r['recall']:.3f} F1 {r['f1']:.3f}"
        if "box_matched" in r:
            b = r["box_matched"]
            line += (f" | box-matched P {b['precision']:.3f} R {b['recall']:.3f} ({b['right']} right, {b['wrong']}"
                     f" wrong, {b['elsewhere']} elsewhere: {b['elsewhere_unlabelled_bibs']} audited unlabelled"
                     f" bibs, {b['elsewhere_pieces_or_junk']} pieces or junk)")  # fmt: skip
        if "audited" in r:
            a = r["audited"]
            line += f" | {a['unlabelled_bibs_read']} audited unlabelled bibs read: P {a['precision']:.3f} with them"
        print(line + f" | pass 2 {r['pass2_seconds']:.1f} s")
        print(f"    decisions: {r['statuses']}; propagated or completed and judged: {r['propagated_judged']}")
        q = r["review"]
        print(f"    review: {q['hidden_reads']} hidden reads listed, {q['real_bibs']} of them real bibs of their photo "
              f"(labelled or audited), {q['real_bibs_in_top']} of the {q['top']} likeliest")
        rel = r["reliability"]
        held = (" (RBNR: the scored half's photos, held apart from the fit)" if row["set"] == "rbnr_bib_photos"
                else " (as labelled, audited unlabelled bibs right)" if "box_matched" not in r and "audited" in r
                else "")  # fmt: skip
        print(f"    reliability{held}: {rel['numbers']} numbers judged, ECE {rel['ece']:.3f}")
        for b in rel["bins"]:
            print(
                f"      {b['bin']}: {b['numbers']:4} numbers, predicted {b['predicted']:.3f}, observed {b['observed']:.3f}"
            )
        if "identity" in r:
            i = r["identity"]
            print(
                f"    identity: {i['grouped_runners_found']} grouped runners found; rank-1 "
                + ", ".join(f"{k} {v['right']}/{v['queries']}" for k, v in i["rank1"].items())
                + f"; bib hidden: {i['bib_hidden']['propagated']} propagated, {i['bib_hidden']['right']} right"
            )
    if "start_list_draws" in row:
        d = row["start_list_draws"]
        print(f"  start list, {d['draws']} decoy draws: F1 as labelled median {d['f1_median']:.3f} (min "
              f"{d['f1_min']:.3f}, max {d['f1_max']:.3f}; {d['draws_under_0.95']} draws under 0.95)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    parser.add_argument("--sets", nargs="+", default=["rbnr_bib_photos", "misc_bib_photos"])
    parser.add_argument("--baselines", nargs="*", default=["rapidocr"], choices=["rapidocr", "easyocr"])
    parser.add_argument(
        "--cache",
        type=Path,
        default=REPO / ".cache" / "bench-photos",
        help="pass-1 reads, by model version (delete it to time pass 1 again)",
    )
    parser.add_argument("--json", type=Path, default=REPO / "benchmarks" / "results" / "photos.json")
    parser.add_argument(
        "--fit-calibration",
        action="store_true",
        help="fit photos/event.py's CALIBRATION on the RBNR photos of the trained half and print it",
    )
    parser.add_argument("--list-draws", type=int, default=1, metavar="N",
                        help="also print F1 as labelled with the start list over N draws of its decoys")
    parser.add_argument(
        "--faces-only",
        action="store_true",
        help="find runners by their faces alone, as `jerseynum tag --faces-only` (no person boxes)",
    )
    args = parser.parse_args()
    try:
        require_sets(args.data, ["rbnr_bib_photos"] if args.fit_calibration else args.sets)
    except FileNotFoundError as error:
        parser.error(str(error))
    if args.fit_calibration:
        root = args.data / "rbnr_bib_photos"
        labels = json.loads((root / "labels.json").read_text())
        runners, _ = read_set(root, list(labels), args.cache)
        boxes = json.loads((root / "labels_with_boxes.json").read_text())
        fit_calibration(runners, *corrected_labels(root.name, labels, boxes))
        return
    results: dict = {"rows": []}
    for name in args.sets:
        root = args.data / name
        labels = json.loads((root / "labels.json").read_text())
        anchors = RunnerSettings(bodies=not args.faces_only)
        row = run_ours(root, labels, args.cache, args.data, EventSettings(), anchors, args.list_draws)
        print_ours(row)
        results["rows"].append(row)
        for baseline in args.baselines:
            engine = {"rapidocr": PlainRapidOCR, "easyocr": PlainEasyOCR}[baseline]()
            base = run_baseline(engine, root, labels)
            print(
                f"  {base['engine']:14} as labelled P {base['precision']:.3f} R {base['recall']:.3f} "
                f"F1 {base['f1']:.3f}, {base['s_per_photo_median']:.2f} s per photo"
            )
            results["rows"].append(base)
    write_json_atomic(args.json, results)


if __name__ == "__main__":
    main()
