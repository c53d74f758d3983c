"""Train the legibility classifier (`stages/legibility.py`) semi-supervised, from EasyOCR pseudo-labels.

1. Crops. Given folders (`--crops`): every image in them (tracklet folders, number crops, photos), taken as
   they are, or with `--torso` cut to the torso by the pipeline's own pose + torso stages. Without folders, the
   shared data's recipe (`shared_crops`): SoccerNet and basketball number crops (the trained SoccerNet half,
   `training/splits.py`) and regions of the trained half of the RBNR race photos that avoid every bib box.
2. Pseudo-labels. EasyOCR (english_g2, digit allowlist, offline weights) reads each crop: *legible* where it
   reads a number the mode accepts with confidence >= `legible_min`, *illegible* where it reads no digit or
   with confidence < `illegible_max`; the rest is left out. With `agreement` (the default), the project's text
   stage (rapidocr + crnn) must agree: legible also needs it to read the same number, illegible needs it to read no
   number with confidence >= 0.5. Readings are cached beside the work files, so a rerun reads nothing twice.
3. Training: the classifier on the pseudo-labels, classes balanced by the loss, mild augmentation, a
   validation part (10 % of the groups: tracklets, photos) that picks the epoch and stops training.
4. Self-training (`rounds` > 1): the trained classifier relabels every crop with EasyOCR (`LabelRule.relabel`):
   it drops the pseudo-labels it disagrees with and labels left-out crops it is sure of where EasyOCR does not
   contradict it; a fresh classifier trains on those labels. Each round's checkpoint is kept.

Where crops have a known truth (number crops are legible; bib-free photo regions are not) the report compares
the pseudo-labels and the classifier with it.

    jerseynum train-legibility --data ../shared/data --out models/legibility.pt
"""

from __future__ import annotations

import csv
import json
import logging
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch
from tqdm import tqdm

from jerseynum.io import IMAGE_SUFFIXES, read_image_or_skip
from jerseynum.stages.legibility import build_classifier, save_checkpoint, to_tensor
from jerseynum.training import splits
from jerseynum.training.degrade import seeded_rng
from jerseynum.types import Mode

log = logging.getLogger(__name__)

INPUT_SIZE = (64, 64)
KEEP_SIDE = 96  # crops are kept in memory at most this big: the classifier sees 64 px


@dataclass
class Crop:
    key: str  # unique: the file's path, or "path#x1,y1,x2,y2" for a region of a photo
    group: str  # the unit of the validation split (a tracklet, a photo)
    image: np.ndarray  # BGR, as read (the pseudo-labeller reads it at full size)
    truth: bool | None = None  # known legibility: number crops are legible, bib-free photo regions are not
    known: bool = False  # labelled by its truth, not pseudo-labelled (`known_legibility`: made illegible on purpose)


@dataclass
class Readings:
    easyocr_text: str
    easyocr_confidence: float
    ours_text: str  # the text stage's (rapidocr + crnn) strongest accepted reading; "" if none
    ours_confidence: float


@dataclass(frozen=True)
class LabelRule:
    legible_min: float = 0.5
    illegible_max: float = 0.1
    agreement: bool = True

    def label(self, readings: Readings, mode: Mode) -> bool | None:
        """True (legible), False (illegible) or None (ambiguous: left out)."""
        r = readings
        if mode.accepts(r.easyocr_text) and r.easyocr_confidence >= self.legible_min:
            if self.agreement and r.ours_text != r.easyocr_text:
                return None
            return True
        if not r.easyocr_text or r.easyocr_confidence < self.illegible_max:
            if self.agreement and r.ours_text and r.ours_confidence >= 0.5:
                return None
            return False
        return None

    def relabel(self, label: bool | None, score: float, readings: Readings, mode: Mode) -> bool | None:
        """Self-training: a pseudo-label stays where the classifier agrees with it (else it is dropped as
        noise); a left-out crop is labelled where the classifier is sure (>= 0.8 or <= 0.2) and EasyOCR does
        not contradict it (read a number at all / read no confident one)."""
        if label is not None:
            return label if (score >= 0.5) == label else None
        if score >= 0.8 and mode.accepts(readings.easyocr_text):
            return True
        if score <= 0.2 and readings.easyocr_confidence < self.legible_min:
            return False
        return None


def _shrink(image: np.ndarray) -> np.ndarray:
    scale = KEEP_SIDE / max(image.shape[:2])
    return cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA) if scale < 1 else image


def labelled_crops(root: Path, keep: Callable[[str], bool], group_of: Callable[[str], str],
                   truth: bool | None) -> list[Crop]:  # fmt: skip
    labels = json.loads((root / "labels.json").read_text())
    crops = []
    for file_name in sorted(labels):
        group = group_of(file_name)
        if keep(group):
            image = read_image_or_skip(root / "images" / file_name, "crop")
            if image is None:
                continue
            crops.append(Crop(str(root / "images" / file_name), group, image, truth))
    return crops


def bib_free_regions(photo: np.ndarray, bib_boxes: list[list[float]], count: int, seed: str) -> list[tuple[int, ...]]:
    """Up to `count` boxes of `photo` (20-200 px sides) that stay clear of every bib box (grown by a quarter)."""
    rng = seeded_rng(seed)
    height, width = photo.shape[:2]
    grown = []
    for x1, y1, x2, y2 in bib_boxes:
        dx, dy = (x2 - x1) / 4, (y2 - y1) / 4
        grown.append((x1 - dx, y1 - dy, x2 + dx, y2 + dy))
    regions: list[tuple[int, ...]] = []
    for _ in range(count * 10):
        if len(regions) == count:
            break
        side = int(np.exp(rng.uniform(np.log(20), np.log(200))))
        w, h = side, int(side * rng.uniform(0.7, 1.5))
        if w >= width or h >= height:
            continue
        x, y = int(rng.integers(0, width - w)), int(rng.integers(0, height - h))
        if all(x + w <= a or x >= c or y + h <= b or y >= d for a, b, c, d in grown):
            regions.append((x, y, x + w, y + h))
    return regions


def rbnr_bib_free_regions(data: Path, keep: Callable[[str], bool], per_photo: int = 30
                          ) -> Iterator[tuple[str, Path, tuple[int, ...], np.ndarray]]:  # fmt: skip
    """`bib_free_regions` of each RBNR photo whose name `keep` accepts: (photo name, its path, box, pixels)."""
    rbnr = data / "rbnr_bib_photos"
    boxes = json.loads((rbnr / "labels_with_boxes.json").read_text())
    for name in sorted(boxes):
        if not keep(name):
            continue
        path = rbnr / "images" / name
        photo = read_image_or_skip(path, "photo")
        if photo is None:
            continue
        for x1, y1, x2, y2 in bib_free_regions(photo, [bib["box_xyxy"] for bib in boxes[name]], per_photo, name):
            yield name, path, (x1, y1, x2, y2), photo[y1:y2, x1:x2].copy()


def shared_crops(data: Path, regions_per_photo: int = 30) -> list[Crop]:
    """The shared data's legibility material: trainable number crops (legible) and bib-free photo regions."""
    soccernet_trained = lambda group: not splits.soccernet_scored(group)
    crops = labelled_crops(data / "train/soccernet_genL_numcrops_train", soccernet_trained, splits.genl_crop_tracklet, True)
    crops += labelled_crops(data / "soccernet_numcrops_roboflow", soccernet_trained, splits.roboflow_tracklet, True)
    crops += labelled_crops(data / "train/basketball_jersey_crops_train", lambda g: True, lambda f: f, True)
    trained = lambda name: not splits.rbnr_scored(name)
    for photo_name, path, (x1, y1, x2, y2), region in rbnr_bib_free_regions(data, trained, regions_per_photo):
        crops.append(Crop(f"{path}#{x1},{y1},{x2},{y2}", photo_name, region, False))
    if not crops:
        raise FileNotFoundError(f"no legibility material found under {data}")
    return crops


def folder_crops(folders: list[Path], torso: bool = False, mode: Mode = Mode.JERSEY, progress: bool = True
                 ) -> list[Crop]:  # fmt: skip
    """Every image under `folders`, with `torso` cut by the pipeline's pose + torso. Its validation group is its
    sub-folder (a tracklet's frames stay on one side), or the image itself where it lies in one of `folders` (a
    flat folder of crops: one group would put all of them on one side)."""
    paths = []
    for folder in map(Path, folders):
        if not folder.is_dir():
            raise FileNotFoundError(f"not a folder: {folder}")
        paths += [(p, p if p.parent == folder else p.parent)
                  for p in sorted(folder.rglob("*")) if p.suffix.lower() in IMAGE_SUFFIXES]  # fmt: skip
    if not paths:
        raise FileNotFoundError(f"no images found under {', '.join(map(str, folders))}")
    cutter = None
    if torso:
        from jerseynum.config import PipelineConfig
        from jerseynum.stages.pose import pose_estimator
        from jerseynum.stages.torso import is_number_region, torso_box

        config = PipelineConfig(mode=mode, pose="mediapipe")
        pose = pose_estimator(config.pose)

        def cutter(image: np.ndarray) -> np.ndarray:
            height, width = image.shape[:2]
            keypoints = None if is_number_region(height, width, config.torso) else pose.estimate([image])[0]
            x1, y1, x2, y2 = torso_box(keypoints, height, width, config.torso)[0]
            return image[y1:y2, x1:x2]

    crops = []
    for path, group in tqdm(paths, desc="crops", unit="crop", disable=not progress):
        image = read_image_or_skip(path)
        if image is None:
            continue
        crops.append(Crop(str(path), str(group), cutter(image) if cutter else image))
    return crops


class ReadingCache:
    """Pseudo-labelling readings, one CSV row per crop key, appended as they are made: a rerun (or a run after
    an interrupt) reads only the crops that have no row yet."""

    FIELDS = ("key", "easyocr_text", "easyocr_confidence", "ours_text", "ours_confidence")

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.rows: dict[str, Readings] = {}
        if self.path.is_file():
            with self.path.open(newline="") as file:
                for row in csv.DictReader(file):
                    try:
                        self.rows[row["key"]] = Readings(row["easyocr_text"], float(row["easyocr_confidence"]),
                                                         row["ours_text"], float(row["ours_confidence"]))  # fmt: skip
                    except (TypeError, ValueError):  # a row cut short by an interrupt: read again
                        continue

    def add(self, rows: dict[str, Readings]) -> None:
        new = not self.path.is_file()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a", newline="") as file:
            writer = csv.writer(file)
            if new:
                writer.writerow(self.FIELDS)
            for key, r in rows.items():
                writer.writerow([key, r.easyocr_text, f"{r.easyocr_confidence:.4f}", r.ours_text, f"{r.ours_confidence:.4f}"])
        self.rows.update(rows)


def read_crops(crops: list[Crop], cache: ReadingCache, mode: Mode, batch_size: int = 64, progress: bool = True
               ) -> list[Readings]:  # fmt: skip
    """EasyOCR's and our text stage's reading of every crop (cached)."""
    todo = [crop for crop in crops if crop.key not in cache.rows]
    if todo:
        from jerseynum.stages.text import EasyOCRText, TextStage
        from jerseynum.stages.vote import Vote, VoteSettings

        easyocr = EasyOCRText(mode)
        ours = TextStage(("rapidocr", "crnn"), mode)
        tally = Vote(mode, VoteSettings(min_confidence=0.0)).tally
        for start in tqdm(range(0, len(todo), batch_size), desc="pseudo-labelling", unit="batch",
                          disable=not progress):
            chunk = todo[start : start + batch_size]
            images = [crop.image for crop in chunk]
            rows = {}
            for crop, easy, mine in zip(chunk, easyocr.recognize(images), ours.read_lines(images)):
                votes = tally(mine)
                best = next(iter(votes), "")
                # the strongest string's confidence, as one engine would give it (the tally sums engines)
                confidence = max((r.confidence for r in mine if r.text == best), default=0.0)
                rows[crop.key] = Readings(easy.text, easy.confidence, best, confidence)
            cache.add(rows)
    return [cache.rows[crop.key] for crop in crops]


def augment(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Mild views that keep legibility as it was: framing, mirror, colour, brightness, JPEG (no blur, no
    downscaling: those are what makes a number illegible)."""
    h, w = image.shape[:2]
    sides = (rng.uniform(-0.05, 0.1, 4) * np.array([h, w, h, w])).astype(int)
    image = cv2.copyMakeBorder(image, *np.maximum(sides, 0).tolist(), cv2.BORDER_REPLICATE)
    top, left, bottom, right = np.maximum(-sides, 0)
    image = image[top : image.shape[0] - bottom, left : image.shape[1] - right]
    if rng.random() < 0.5:
        image = image[:, ::-1]
    image = image.astype(np.float32)
    if rng.random() < 0.3:
        image = image[:, :, rng.permutation(3)]
    image = np.clip(image * rng.uniform(0.75, 1.25) + rng.uniform(-25, 25), 0, 255).astype(np.uint8)
    if rng.random() < 0.3:
        quality = int(rng.integers(50, 95))
        image = cv2.imdecode(cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])[1], cv2.IMREAD_COLOR)
    return image


def precision_recall(scores: np.ndarray, labels: np.ndarray, threshold: float = 0.5) -> dict[str, float]:
    """Precision and recall of "legible" (score >= threshold) against boolean labels."""
    predicted = scores >= threshold
    true_positives = float(np.sum(predicted & labels))
    return {"precision": round(true_positives / max(int(predicted.sum()), 1), 4),
            "recall": round(true_positives / max(int(labels.sum()), 1), 4), "n": len(labels)}  # fmt: skip


@torch.inference_mode()
def score_crops(model: torch.nn.Module, crops: list[Crop], batch_size: int = 256, device: str = "cpu") -> np.ndarray:
    model.eval()
    scores = [np.zeros(0, np.float32)]
    for start in range(0, len(crops), batch_size):
        batch = to_tensor([c.image for c in crops[start : start + batch_size]], INPUT_SIZE).to(device)
        scores.append(torch.sigmoid(model(batch)[:, 0]).cpu().numpy())
    return np.concatenate(scores)


def _fit(crops: list[Crop], labels: list[bool], validation: list[Crop], validation_labels: list[bool], arch: str,
         epochs: int, batch_size: int, learning_rate: float, patience: int, rng: np.random.Generator, device: str,
         progress: bool) -> tuple[torch.nn.Module, list[dict]]:  # fmt: skip
    model = build_classifier(arch).to(device)
    targets = torch.tensor(labels, dtype=torch.float32)
    positives = float(targets.sum())
    # Balanced classes: the rarer class's errors weigh as much in total as the commoner one's.
    loss_fn = torch.nn.BCEWithLogitsLoss(pos_weight=torch.tensor((len(labels) - positives) / max(positives, 1.0)))
    optimizer = torch.optim.AdamW(model.parameters(), lr=learning_rate, weight_decay=1e-4)
    steps = math.ceil(len(crops) / batch_size)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, learning_rate, total_steps=epochs * steps, pct_start=0.2)
    truth = np.array(validation_labels, bool)
    best, best_epoch, best_state, history = -1.0, 0, None, []
    for epoch in range(epochs):
        model.train()
        order = rng.permutation(len(crops))
        losses = []
        for step in tqdm(range(steps), desc=f"epoch {epoch + 1}/{epochs}", disable=not progress, leave=False):
            picks = order[step * batch_size : (step + 1) * batch_size]
            inputs = to_tensor([augment(crops[i].image, rng) for i in picks], INPUT_SIZE).to(device)
            loss = loss_fn(model(inputs)[:, 0], targets[picks].to(device))
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            scheduler.step()
            losses.append(loss.item())
        scores = score_crops(model, validation, device=device)
        predicted = scores >= 0.5
        # balanced accuracy: the mean of the two classes' recalls, so neither class can be ignored
        balanced = float(np.mean([np.mean(predicted[truth]) if truth.any() else 1.0,
                                  np.mean(~predicted[~truth]) if (~truth).any() else 1.0]))  # fmt: skip
        history.append({"epoch": epoch + 1, "loss": round(float(np.mean(losses)), 4), "balanced_accuracy": round(balanced, 4)})
        log.info("epoch %d: %s", epoch + 1, history[-1])
        if balanced > best:
            best, best_epoch = balanced, epoch + 1
            best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        elif epoch + 1 - best_epoch >= patience:
            log.info("no validation gain in %d epochs: stopping", patience)
            break
    model.load_state_dict(best_state)
    return model, history


def _label_report(crops: list[Crop], labels: list[bool | None]) -> dict:
    """How many crops each class got, and how the pseudo-labels match the known truth."""
    report = {"legible": sum(l is True for l in labels), "illegible": sum(l is False for l in labels),
              "left_out": sum(l is None for l in labels)}  # fmt: skip
    for truth, name in ((True, "number_crops"), (False, "bib_free_regions")):
        known = [l for c, l in zip(crops, labels) if c.truth is truth]
        if known:
            report[name] = {"count": len(known), "labelled_legible": round(sum(l is True for l in known) / len(known), 4),
                            "labelled_illegible": round(sum(l is False for l in known) / len(known), 4)}  # fmt: skip
    return report


def train(
    crops: list[Crop],
    out: Path,
    work: Path,
    mode: Mode = Mode.JERSEY,
    rule: LabelRule = LabelRule(),
    arch: str = "resnet_nano",
    rounds: int = 1,
    epochs: int = 12,
    batch_size: int = 128,
    learning_rate: float = 3e-3,
    patience: int = 3,
    seed: int = 0,
    device: str = "cpu",
    progress: bool = True,
    readings: list[Readings] | None = None,
) -> dict:
    """Pseudo-label `crops`, train `rounds` rounds, save the last to `out` (earlier ones to `out.roundN.pt`);
    returns the report (also in each checkpoint's meta). `readings` replaces the pseudo-labeller (tests)."""
    started = time.time()
    rng = np.random.default_rng(seed)
    torch.manual_seed(seed)
    pseudo = [crop for crop in crops if not crop.known]
    readings = readings if readings is not None else read_crops(pseudo, ReadingCache(work / "readings.csv"), mode,
                                                                      progress=progress)
    by_key = {crop.key: r for crop, r in zip(pseudo, readings)}
    for crop in crops:
        crop.image = _shrink(crop.image)
    labels = [crop.truth if crop.known else rule.label(by_key[crop.key], mode) for crop in crops]
    in_validation = [splits.validation_group(crop.group, 0.1) for crop in crops]
    report: dict = {"arch": arch, "input_size": list(INPUT_SIZE), "mode": mode.value, "rule": rule.__dict__,
                    "crops": len(crops), "rounds": []}  # fmt: skip
    for round_number in range(1, rounds + 1):
        train_idx = [i for i, l in enumerate(labels) if l is not None and not in_validation[i]]
        val_idx = [i for i, l in enumerate(labels) if l is not None and in_validation[i]]
        if not train_idx or len({labels[i] for i in train_idx}) < 2:
            raise ValueError(f"round {round_number}: the pseudo-labels leave too little to train on: both legible "
                             f"and illegible crops are needed ({_label_report(crops, labels)})")  # fmt: skip
        if not val_idx:  # the validation part picks the epoch: without it there is no model to choose
            groups = len({crop.group for crop in crops})
            raise ValueError(f"round {round_number}: no labelled crop falls in the validation part (10 % of the "
                             f"{groups} groups: tracklets, photos); give more crops ({_label_report(crops, labels)})")
        log.info("round %d: %s", round_number, _label_report(crops, labels))
        model, history = _fit([crops[i] for i in train_idx], [labels[i] for i in train_idx],
                              [crops[i] for i in val_idx], [labels[i] for i in val_idx], arch, epochs, batch_size,
                              learning_rate, patience, rng, device, progress)  # fmt: skip
        scores = score_crops(model, crops, device=device)
        validation = np.array(in_validation)
        pseudo = np.array([labels[i] for i in val_idx], bool)
        summary = {"round": round_number, "labels": _label_report(crops, labels), "history": history,
                   "validation_vs_pseudo_labels": precision_recall(scores[val_idx], pseudo)}  # fmt: skip
        known = [i for i in np.flatnonzero(validation) if crops[i].truth is not None]
        if known:
            truth = np.array([crops[i].truth for i in known], bool)
            summary["validation_vs_truth"] = precision_recall(scores[known], truth)
        report["rounds"].append(summary)
        report["minutes"] = round((time.time() - started) / 60, 1)
        last = round_number == rounds
        path = out if last else out.with_suffix(f".round{round_number}.pt")
        save_checkpoint(path, model, arch, INPUT_SIZE, report)
        log.info("round %d saved to %s: %s", round_number, path, {k: v for k, v in summary.items() if k != "history"})
        if not last:
            labels = [label if crop.known else rule.relabel(label, score, by_key[crop.key], mode)
                      for crop, label, score in zip(crops, labels, scores)]  # fmt: skip
    return report
