"""Legibility material whose label is known by construction, trained beside EasyOCR's pseudo-labels.

The pseudo-labels teach what legible numbers look like, but hardly what illegible ones do: EasyOCR and our
text stage must agree that nothing is there, which they rarely do on the near-misses that make the pipeline
invent a number. Each kind here is one such near-miss (`train-legibility --known KIND ...`):
- `degraded`: copies of legible number crops blurred or pixelated beyond reading (illegible);
- `runners`: RBNR runner crops of the trained half, cut to the torso as the pipeline cuts it: as they are
  (legible: a labelled bib is in view) and with the bib blurred or pixelated (illegible);
- `lines`: the text lines in which the pipeline's own text stage reads a number on those illegible runners and on
  bib-free photo regions (illegible), and the line of each legible runner's bib where it reads it right (legible).
  The text stage scores every line it finds in a large crop (`TextStage(line_scorer=...)`), so it must know these;
- `letters`: rendered sponsor words and plain or folded shirt patches (illegible: letters and cloth, no number).
Only `degrade.TRAINED` degradations are used: `benchmarks/minus_one.py` measures the others apart.
"""

from __future__ import annotations

import logging
import pickle
from pathlib import Path

import numpy as np
from tqdm import tqdm

from jerseynum.io import write_bytes_atomic
from jerseynum.training import splits
from jerseynum.training.degrade import TRAINED, degrade, seeded_rng
from jerseynum.training.rbnr import rbnr_runners
from jerseynum.training.synth import render_negative_crop
from jerseynum.training.train_legibility import Crop, rbnr_bib_free_regions
from jerseynum.types import Box, Mode

log = logging.getLogger(__name__)

KINDS = ("degraded", "runners", "lines", "letters")


def degraded_copies(crops: list[Crop], count: int, seed: str = "degraded") -> list[Crop]:
    """`count` legible crops (spread over `crops`), each made unreadable whole by one of the trained kinds."""
    legible = [crop for crop in crops if crop.truth is True]
    picks = np.linspace(0, len(legible) - 1, min(count, len(legible))).round().astype(int) if legible else []
    copies = []
    for n, i in enumerate(picks):
        crop = legible[i]
        kind = TRAINED[n % len(TRAINED)]
        height, width = crop.image.shape[:2]
        image = degrade(crop.image, (0, 0, width, height), kind, seeded_rng(f"{seed}/{crop.key}"))
        copies.append(Crop(f"{crop.key}#{kind}", crop.group, image, False, known=True))
    return copies


def _torso(image: np.ndarray, pose, mode: Mode = Mode.JERSEY) -> tuple[np.ndarray, Box]:
    """The torso crop the pipeline would read in `mode`, and its box in `image`."""
    from jerseynum.config import PipelineConfig
    from jerseynum.stages.torso import is_number_region, torso_box

    settings = PipelineConfig(mode=mode).torso
    height, width = image.shape[:2]
    keypoints = None if pose is None or is_number_region(height, width, settings) else pose.estimate([image])[0]
    box = torso_box(keypoints, height, width, settings)[0]
    return image[box[1] : box[3], box[0] : box[2]], box


def runner_torsos(data: Path, progress: bool = True) -> list[Crop]:
    """Torsos of the trained half's RBNR runners (jersey mode's pose cut): legible as they are, illegible with the
    bib blurred or pixelated."""
    from jerseynum.stages.pose import pose_estimator
    pose = pose_estimator("mediapipe")
    runners, _ = rbnr_runners(data, lambda name: not splits.rbnr_scored(name))
    crops = []
    for runner in tqdm(runners, desc="runner torsos", unit="runner", disable=not progress):
        group = runner.id.rsplit("_", 1)[0]  # the photo
        torso, _ = _torso(runner.crop, pose)
        crops.append(Crop(f"runner:{runner.id}", group, torso, True, known=True))
        for kind in TRAINED:
            degraded = degrade(runner.crop, runner.bib, kind, seeded_rng(f"runner/{runner.id}/{kind}"))
            torso, _ = _torso(degraded, pose)
            crops.append(Crop(f"runner:{runner.id}#{kind}", group, torso, False, known=True))
    return crops


def read_lines(data: Path, regions: list[tuple[str, str, np.ndarray]], progress: bool = True) -> list[Crop]:
    """Lines in which the text stage reads a number, in both modes' regions: illegible runners (trained kinds)
    and bib-free `regions` (key, group, image) -> illegible; legible runners' bibs read right -> legible."""
    from jerseynum.config import PipelineConfig
    from jerseynum.stages.text import TextStage
    runners, _ = rbnr_runners(data, lambda name: not splits.rbnr_scored(name))
    items: list[tuple[str, str, np.ndarray, int | None, tuple[int, ...]]] = []  # key, group, image, number, others
    for runner in runners:
        group = runner.id.rsplit("_", 1)[0]
        items.append((f"line:{runner.id}", group, runner.crop, runner.number, tuple(runner.neighbours)))
        for kind in TRAINED:
            degraded = degrade(runner.crop, runner.bib, kind, seeded_rng(f"runner/{runner.id}/{kind}"))
            items.append((f"line:{runner.id}#{kind}", group, degraded, None, tuple(runner.neighbours)))
    items += [(f"line:{key}", group, image, None, ()) for key, group, image in regions]
    crops = []
    for mode in Mode:
        config = PipelineConfig(mode=mode)
        stage = TextStage.from_config(config)
        for key, group, image, number, others in tqdm(items, desc=f"lines ({mode.value} mode)", unit="crop",
                                                            disable=not progress):
            if image.shape[0] < config.detect_min_side or image.shape[1] < config.detect_min_side:
                continue
            for reading in stage.read_regions([image])[0]:
                x1, y1, x2, y2 = reading.box
                line = image[y1:y2, x1:x2]
                if line.size == 0 or int(reading.text) in others:
                    continue  # a neighbour's bib is a legible number, not an invented one
                legible = number is not None and reading.text == str(number)
                if number is None or legible:
                    crops.append(Crop(f"{key}@{mode.value}:{reading.engine}", group, line, legible, known=True))
    return crops


def letter_crops(count: int, seed: int = 0) -> list[Crop]:
    """Rendered sponsor words and shirt patches (`synth.render_negative_crop`): illegible."""
    rng = np.random.default_rng(seed)
    return [Crop(f"letters:{i}", f"letters:{i % 50}", render_negative_crop(rng), False, known=True) for i in range(count)]


def _trained_bib_free_regions(data: Path) -> list[tuple[str, str, np.ndarray]]:
    """Bib-free regions of the trained half's RBNR photos, as `train_legibility.shared_crops` takes them."""
    trained = lambda name: not splits.rbnr_scored(name)
    return [(f"{name}#{x1},{y1},{x2},{y2}", name, region)
            for name, _, (x1, y1, x2, y2), region in rbnr_bib_free_regions(data, trained)]  # fmt: skip


def known_crops(data: Path, kinds: tuple[str, ...], pseudo_labelled: list[Crop], per_kind: int = 2000,
                work: Path | None = None, progress: bool = True) -> list[Crop]:  # fmt: skip
    """The known-label material of `kinds` (see the module's docstring). With `work`, the costlier kinds (runners
    and lines: pose and the text stage over ~700 crops, minutes) are kept there, so a rerun, such as training
    with fewer kinds to see which pay, builds them once."""
    unknown = set(kinds) - set(KINDS)
    if unknown:
        raise ValueError(f"unknown legibility material {sorted(unknown)}; choose from {KINDS}")
    builders = {"degraded": lambda: degraded_copies(pseudo_labelled, per_kind), "runners": lambda: runner_torsos(data, progress),
                "lines": lambda: read_lines(data, _trained_bib_free_regions(data)[::6], progress),
                "letters": lambda: letter_crops(per_kind)}  # fmt: skip
    crops = []
    for kind in KINDS:
        if kind not in kinds:
            continue
        cached = work / f"known-{kind}.pkl" if work is not None and kind in ("runners", "lines") else None
        if cached is not None and cached.is_file():
            crops += pickle.loads(cached.read_bytes())
            continue
        built = builders[kind]()
        if cached is not None:
            write_bytes_atomic(cached, pickle.dumps(built))
        crops += built
    log.info("known material: %d legible, %d illegible", sum(c.truth for c in crops), sum(not c.truth for c in crops))
    return crops
