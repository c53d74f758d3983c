"""Train the digit recognizer (`stages/crnn.py`) on real number crops plus rendered ones.

Real material, from `--data` (the shared data folder), split as `training/splits.py` says:
- train/basketball_jersey_crops_train: all;
- train/soccernet_genL_numcrops_train and soccernet_numcrops_roboflow: the crops of the trained SoccerNet half;
- bibracer_bib_crops: the crops of the trained bib-number half (label: the digits; the letter prefix is not read).
Rendered material (`training/synth.py`): jersey numbers, bibs with prefixes and sponsor words, and number-free
negatives, a fresh pool each run from the seed. Every crop is augmented on the fly (framing, rotation and shear,
low resolution, blur, colour, noise, JPEG). A validation part (5 % of each real set, by group) picks the best
epoch and stops training once it stops improving. The shipped weights are a model soup (`train_soup`): one run
per `--epochs` value (default 8 and 12), their best weights averaged.

    jerseynum train-recognizer --data ../shared/data --out models/digits_crnn.pt
"""

from __future__ import annotations

import hashlib
import inspect
import json
import logging
import math
import pickle
import re
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch
from tqdm import tqdm

from jerseynum.io import read_image_or_skip
from jerseynum.stages.crnn import ALPHABET, build_recognizer, input_spec, load_checkpoint, prepare, save_checkpoint
from jerseynum.stages.text import ctc_greedy
from jerseynum.training import check_device, splits
from jerseynum.training.synth import render_training_crop

log = logging.getLogger(__name__)


@dataclass
class Sample:
    image: np.ndarray  # BGR
    label: str  # digits only; "" for a crop without a number
    source: str  # which set it came from


def _load_set(root: Path, keep: Callable[[str], bool], group_of: Callable[[str], str], source: str
              ) -> list[tuple[Sample, str]]:  # fmt: skip
    """(sample, group) for every labelled crop of `root` whose group `keep` accepts; none where `root` has no labels."""
    if not (root / "labels.json").is_file():
        return []
    labels = json.loads((root / "labels.json").read_text())
    items = []
    for file_name, texts in sorted(labels.items()):
        group = group_of(file_name, texts[0])
        if not keep(group):
            continue
        image = read_image_or_skip(root / "images" / file_name, "training crop")
        if image is None:
            continue
        items.append((Sample(image, re.sub(r"\D", "", texts[0]), source), group))
    return items


def real_samples(data: Path) -> dict[str, list[tuple[Sample, str]]]:
    """The trainable real crops of each set, with their split group."""
    soccernet_trained = lambda group: not splits.soccernet_scored(group)
    sets = {
        "basketball": _load_set(data / "train/basketball_jersey_crops_train", lambda g: True,
                                lambda f, t: f, "basketball"),
        "soccernet_genL": _load_set(data / "train/soccernet_genL_numcrops_train", soccernet_trained,
                                    lambda f, t: splits.genl_crop_tracklet(f), "soccernet_genL"),
        "soccernet_roboflow": _load_set(data / "soccernet_numcrops_roboflow", soccernet_trained,
                                        lambda f, t: splits.roboflow_tracklet(f), "soccernet_roboflow"),
        "bibracer": _load_set(data / "bibracer_bib_crops", lambda g: not splits.bib_scored(g),
                              lambda f, t: re.sub(r"\D", "", t), "bibracer"),
    }  # fmt: skip
    for name, items in sets.items():
        if not items:
            raise FileNotFoundError(f"no training crops found for {name} under {data}")
    return sets


def split_validation(items: list[tuple[Sample, str]], fraction: float) -> tuple[list[Sample], list[Sample]]:
    """(train, validation) with whole groups on one side."""
    train, validation = [], []
    for sample, group in items:
        (validation if splits.validation_group(group, fraction) else train).append(sample)
    return train, validation


def lean(image: np.ndarray, angle: float, shear: float, grow: bool = False) -> np.ndarray:
    """The crop turned by `angle` degrees and sheared, on its own canvas (corners cut) or, with `grow`, on one
    grown to hold the whole turned crop."""
    h, w = image.shape[:2]
    matrix = cv2.getRotationMatrix2D((w / 2, h / 2), angle, 1.0)
    matrix[0, 1] += shear
    matrix[0, 2] -= shear * h / 2
    size = (w, h)
    if grow:
        cos, sin = abs(math.cos(math.radians(angle))), abs(math.sin(math.radians(angle)))
        size = (round(w * cos + h * sin), round(w * sin + h * cos))
        matrix[:, 2] += (size[0] - w) / 2, (size[1] - h) / 2
    return cv2.warpAffine(image, matrix, size, borderMode=cv2.BORDER_REPLICATE)


def augment(image: np.ndarray, rng: np.random.Generator, tilt: float = 8.0) -> np.ndarray:
    """A random view of a crop as a detector, a camera and a compressor might have given it. Numbers lean up to 8
    degrees; with `tilt` above that, a quarter of the rotated crops lean up to `tilt` degrees (a basketball
    player's turned torso), on a canvas grown to hold the whole turned crop, as a detector's box grows."""
    h, w = image.shape[:2]
    # Framing: each side moves in (crop) or out (replicated border) by up to a fraction of the size.
    sides = (rng.uniform(-0.08, 0.15, 4) * np.array([h, w, h, w])).astype(int)
    image = cv2.copyMakeBorder(image, *np.maximum(sides, 0).tolist(), cv2.BORDER_REPLICATE)
    top, left, bottom, right = np.maximum(-sides, 0)
    image = image[top : image.shape[0] - bottom, left : image.shape[1] - right]
    if rng.random() < 0.6:  # rotation and shear
        # No extra draw at the default tilt, so the shipped runs' random stream stays as it was.
        leaning = tilt > 8 and rng.random() < 0.25
        angle, shear = rng.uniform(-tilt, tilt) if leaning else rng.uniform(-8, 8), rng.uniform(-0.2, 0.2)
        image = lean(image, angle, shear, grow=leaning)
    h, w = image.shape[:2]
    if rng.random() < 0.5:  # low resolution: down to 10-32 px tall and back
        small = int(rng.uniform(10, 32))
        if small < h:
            scale = small / h
            image = cv2.resize(image, (max(1, round(w * scale)), small), interpolation=cv2.INTER_AREA)
            image = cv2.resize(image, (w, h), interpolation=cv2.INTER_LINEAR)
    if rng.random() < 0.3:
        image = cv2.GaussianBlur(image, (0, 0), rng.uniform(0.4, 1.2))
    image = image.astype(np.float32)
    if rng.random() < 0.3:  # shirt and ink colours are arbitrary
        image = image[:, :, rng.permutation(3)]
    if rng.random() < 0.1:
        image = np.repeat(image.mean(axis=2, keepdims=True), 3, axis=2)
    if rng.random() < 0.1:
        image = 255.0 - image
    image = image * rng.uniform(0.6, 1.4) + rng.uniform(-40, 40)
    if rng.random() < 0.3:
        image = image + rng.normal(0, rng.uniform(2, 10), image.shape)
    image = np.clip(image, 0, 255).astype(np.uint8)
    if rng.random() < 0.3:
        quality = int(rng.integers(30, 90))
        image = cv2.imdecode(cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])[1], cv2.IMREAD_COLOR)
    return image


def _batch(
    samples: list[Sample], arch: str, rng: np.random.Generator | None, tilt: float = 8.0,
    tilt_sources: Collection[str] | None = None,
) -> tuple[torch.Tensor, ...]:
    """(inputs, concatenated targets, target lengths); augmented when `rng` is given, crops of `tilt_sources`
    (None: all) leaning up to `tilt` degrees, the others up to 8."""
    input_size, grey = input_spec(arch)
    images = [augment(s.image, rng, tilt if tilt_sources is None or s.source in tilt_sources else 8.0)
              if rng is not None else s.image for s in samples]  # fmt: skip
    inputs = torch.from_numpy(np.stack([prepare(image, input_size, grey) for image in images]))
    targets = torch.tensor([ALPHABET.index(c) + 1 for s in samples for c in s.label], dtype=torch.long)
    lengths = torch.tensor([len(s.label) for s in samples], dtype=torch.long)
    return inputs, targets, lengths


def greedy_decode(log_probs: torch.Tensor) -> list[str]:
    """(T, N, classes) -> the best path's digit string per item, decoded as the text stage decodes it."""
    classes, labels = np.arange(len(ALPHABET) + 1), ["", *ALPHABET]
    return [ctc_greedy(probs, classes, labels)[0] for probs in log_probs.exp().permute(1, 0, 2).cpu().numpy()]


@torch.inference_mode()
def evaluate(model: torch.nn.Module, arch: str, samples: list[Sample], batch_size: int = 256) -> dict[str, float]:
    """Exact-match accuracy per source and over all samples ("all")."""
    model.eval()
    correct: dict[str, list[bool]] = {}
    for start in range(0, len(samples), batch_size):
        chunk = samples[start : start + batch_size]
        inputs, _, _ = _batch(chunk, arch, None)
        for sample, text in zip(chunk, greedy_decode(model(inputs))):
            correct.setdefault(sample.source, []).append(text == sample.label)
    scores = {source: float(np.mean(hits)) for source, hits in correct.items()}
    scores["all"] = float(np.mean([hit for hits in correct.values() for hit in hits])) if correct else 0.0
    return scores


def check_options(arch: str, device: str, start: Path | None = None, tilt_sources: Collection[str] | None = None
                  ) -> None:  # fmt: skip
    """Raise ValueError (FileNotFoundError for a missing --start) now, before any data is loaded, for settings
    a run would otherwise fail on only after minutes of loading and rendering."""
    build_recognizer(arch)  # an unknown architecture: ValueError naming the known ones
    check_device(device)
    unknown = set(tilt_sources or ()) - set(REPEATS)
    if unknown:
        raise ValueError(f"unknown training sets {sorted(unknown)} for --tilt-sources; choose from {sorted(REPEATS)}")
    if start is not None:
        try:
            load_checkpoint(start, arch=arch)
        except (RuntimeError, pickle.UnpicklingError, EOFError, KeyError, TypeError) as error:
            raise ValueError(f"{start}: not a recognizer checkpoint ({type(error).__name__}: {error})") from None


def partial_path(out: Path) -> Path:
    """Where a run keeps its best epoch until it finishes: `out` itself (often the shipped model) changes only
    when the run ends, so an interrupted run leaves it as it was."""
    return out.with_name(f"{out.stem}.partial{out.suffix}")


# How many times each real set is drawn per epoch: the small sets that look most like what is scored
# (tiny hand-cut SoccerNet crops, real bibs) are repeated so they are not drowned by the large ones.
REPEATS = {"basketball": 1, "soccernet_genL": 1, "soccernet_roboflow": 4, "bibracer": 6}


def train(
    data: Path,
    out: Path,
    arch: str = "easyocr_g2",
    epochs: int = 8,
    synthetic: int = 10000,
    batch_size: int = 128,
    learning_rate: float = 5e-4,
    patience: int = 4,
    seed: int = 0,
    device: str = "cpu",
    real: dict[str, list[tuple[Sample, str]]] | None = None,
    progress: bool = True,
    start: Path | None = None,
    tilt: float = 8.0,
    tilt_sources: tuple[str, ...] | None = None,
) -> dict:
    """Train and save the best epoch's weights to `out`; returns the training report (also in the checkpoint).
    Until the run ends, the best epoch so far is saved to `partial_path(out)` instead. `real` replaces the shared data (tests pass tiny rendered sets). `start` continues from a checkpoint of
    `arch` instead of the published pretrained weights; `tilt` is `augment`'s, for the crops of `tilt_sources` (None:
    every crop; basketball: only the set whose players turn their torsos)."""
    rng = np.random.default_rng(seed)
    torch.manual_seed(seed)
    started = time.time()
    real = real if real is not None else real_samples(data)
    train_real, validation = [], []
    for name, items in real.items():
        train_part, validation_part = split_validation(items, 0.05)
        train_real += train_part * REPEATS.get(name, 1)
        validation += validation_part
    pool = []
    for _ in tqdm(range(synthetic), desc="rendering", disable=not progress):
        image, label = render_training_crop(rng)
        pool.append(Sample(image, label, "synthetic"))
    log.info("training on %d real (with repeats) + %d rendered crops; %d validation crops",
             len(train_real), len(pool), len(validation))  # fmt: skip

    start_meta, start_digest = None, _digest(start)
    if start is None:
        model = build_recognizer(arch, pretrained=True).to(device)
    else:
        model, _, _, start_meta = load_checkpoint(start, device, arch=arch)
    input_size = input_spec(arch)[0]
    optimizer = torch.optim.AdamW(model.parameters(), lr=learning_rate, weight_decay=1e-4)
    steps_per_epoch = math.ceil((len(train_real) + len(pool)) / batch_size)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, learning_rate, total_steps=epochs * steps_per_epoch,
                                                    pct_start=0.15)  # fmt: skip
    ctc = torch.nn.CTCLoss(zero_infinity=True)
    best, best_epoch, best_state, history = -1.0, -1, None, []
    partial = partial_path(out)
    try:
        for epoch in range(epochs):
            model.train()
            order = rng.permutation(len(train_real) + len(pool))
            everything = train_real + pool
            losses = []
            bar = tqdm(range(steps_per_epoch), desc=f"epoch {epoch + 1}/{epochs}", disable=not progress)
            for step in bar:
                chunk = [everything[i] for i in order[step * batch_size : (step + 1) * batch_size]]
                inputs, targets, lengths = _batch(chunk, arch, rng, tilt, tilt_sources)
                log_probs = model(inputs.to(device))
                input_lengths = torch.full((len(chunk),), log_probs.shape[0], dtype=torch.long)
                loss = ctc(log_probs.cpu(), targets, input_lengths, lengths)
                optimizer.zero_grad()
                loss.backward()
                torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
                optimizer.step()
                scheduler.step()
                losses.append(loss.item())
                bar.set_postfix(loss=f"{np.mean(losses[-50:]):.3f}")
            scores = evaluate(model, arch, validation)
            history.append({"epoch": epoch + 1, "loss": float(np.mean(losses)),
                            **{k: round(v, 4) for k, v in scores.items()}})  # fmt: skip
            log.info("epoch %d: loss %.3f, validation %s", epoch + 1, np.mean(losses), history[-1])
            # start_meta: where a continued run's weights came from (a soup's runs, say), kept with them.
            report = {"arch": arch, "epochs": epochs, "best_epoch": best_epoch, "validation": None,
                      "history": history, "data": str(Path(data).resolve()),
                      "real_crops": {k: len(v) for k, v in real.items()}, "repeats": REPEATS, "synthetic": synthetic,
                      "learning_rate": learning_rate, "seed": seed, "minutes": round((time.time() - started) / 60, 1),
                      "finished": False, "start": None if start is None else Path(start).name,
                      "start_sha256": start_digest, "tilt": tilt, "tilt_sources": tilt_sources,
                      "start_meta": start_meta}  # fmt: skip
            if scores["all"] > best:
                best, best_epoch = scores["all"], epoch + 1
                best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
                report.update(best_epoch=best_epoch, validation=scores)
                save_checkpoint(partial, model, arch, input_size, report)  # an interrupt keeps the best so far
            elif epoch + 1 - best_epoch >= patience:
                log.info("no validation gain in %d epochs: stopping", patience)
                break
    except KeyboardInterrupt:
        if best_epoch > 0:
            log.warning("the best epoch so far (%d of %d) is in %s; %s is unchanged", best_epoch, epochs, partial, out)
        raise
    report.update(best_epoch=best_epoch, validation=history[best_epoch - 1], finished=True)
    model.load_state_dict(best_state)
    save_checkpoint(out, model, arch, input_size, report)  # the best weights, with the whole history
    partial.unlink(missing_ok=True)
    log.info("best epoch %d (validation %.4f) saved to %s in %.1f min", best_epoch, best, out, report["minutes"])
    return report


TRAIN_DEFAULTS = {name: p.default for name, p in inspect.signature(train).parameters.items() if p.default is not p.empty}


def train_soup(data: Path, out: Path, epochs: list[int], work: Path, **options) -> dict:
    """A model soup: one run per schedule length in `epochs` (same data, seed and settings), the best weights of
    each averaged into `out`. Fine-tunes of one pretrained start stay close enough for their mean to be a model;
    8 and 12 epochs averaged read more crops than the 8-epoch run and more tracklets than the 12-epoch one
    (model card). A run already finished in `work` with the same data and settings is reused, so an interrupted soup
    resumes at the run it was in."""
    settings = {**TRAIN_DEFAULTS, **options}
    # A start is known by its contents: another checkpoint saved under the same name is another start.
    start_digest = _digest(settings["start"])
    ingredients = []
    for count in epochs:
        path = work / f"{out.stem}-{count}-epochs{out.suffix}"
        wanted = {"epochs": count, **{key: settings[key] for key in ("arch", "synthetic", "learning_rate", "seed", "tilt",
                                                                         "tilt_sources")},
                  "start_sha256": start_digest, "data": str(Path(data).resolve())}  # fmt: skip
        if path.is_file() and _finished_with(path, wanted):
            log.info("reusing the finished %d-epoch run in %s", count, path)
        else:
            train(data, path, epochs=count, **options)
        ingredients.append(path)
    return average_checkpoints(ingredients, out)


def _digest(path: Path | None) -> str | None:
    return None if path is None else hashlib.sha256(Path(path).read_bytes()).hexdigest()


def _finished_with(path: Path, wanted: dict) -> bool:
    try:
        meta = torch.load(path, map_location="cpu", weights_only=True)["meta"]
    except (RuntimeError, pickle.UnpicklingError, EOFError, KeyError):  # a damaged run is trained again
        return False
    # Runs from before a setting existed were trained at its default.
    matches = all(meta.get(key, TRAIN_DEFAULTS.get(key)) == value for key, value in wanted.items())
    return bool(meta.get("finished")) and matches


def average_checkpoints(paths: list[Path], out: Path) -> dict:
    """Average the weights of recognizer checkpoints of one architecture, alphabet and input size into `out`
    (integer buffers, BatchNorm's batch counters, are taken from the first); the metadata lists each
    ingredient's training report."""
    checkpoints = [torch.load(path, map_location="cpu", weights_only=True) for path in paths]
    first = checkpoints[0]
    for path, checkpoint in zip(paths, checkpoints):
        # The same network reading the same characters at the same input size, or their mean means nothing.
        if any(checkpoint[key] != first[key] for key in ("arch", "alphabet", "input_size")) or (
            checkpoint["state_dict"].keys() != first["state_dict"].keys()
        ):
            raise ValueError(f"{path} is not a {first['arch']} checkpoint like {paths[0]}: cannot average them")
    state = {}
    for key, value in first["state_dict"].items():
        stacked = [checkpoint["state_dict"][key] for checkpoint in checkpoints]
        state[key] = torch.stack(stacked).mean(0) if value.is_floating_point() else value
    model = build_recognizer(first["arch"])
    model.load_state_dict(state)
    meta = {"arch": first["arch"], "soup": [checkpoint["meta"] for checkpoint in checkpoints],
            "minutes": round(sum(checkpoint["meta"].get("minutes", 0) for checkpoint in checkpoints), 1)}  # fmt: skip
    save_checkpoint(out, model, first["arch"], tuple(first["input_size"]), meta)
    log.info("averaged %d runs into %s", len(paths), out)
    return meta
