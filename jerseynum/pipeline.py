"""The pipeline: pose -> torso -> legibility -> text -> vote over the frames of a tracklet.

It owns everything between the stages: sampling long tracklets, batching, reading the most legible frames
first and stopping once the vote is settled, bad frames, and the time spent in each stage. The stages know
nothing of each other.
"""

from __future__ import annotations

import itertools
import time
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from functools import partial
from pathlib import Path

import numpy as np

from jerseynum.config import PipelineConfig
from jerseynum.io import ImageError, load_image
from jerseynum.parallel import map_in_workers
from jerseynum.stages.legibility import LegibilityClassifier
from jerseynum.stages.pose import pose_estimator
from jerseynum.stages.text import TextStage
from jerseynum.stages.torso import is_number_region, torso_box
from jerseynum.stages.vote import Vote
from jerseynum.types import NO_NUMBER, Frame, FrameEvidence, Prediction, Reading, TorsoSource, Tracklet

STAGES = ("load", "pose", "torso", "legibility", "text", "vote")


def sample_frames(frames: list[Frame], max_frames: int) -> list[Frame]:
    """At most `max_frames` frames, evenly spread over the tracklet, in a coarse-to-fine order: the first
    batch already covers the whole tracklet, so an early stop rests on more than one moment of it."""
    if len(frames) > max_frames:
        picks = np.unique(np.linspace(0, len(frames) - 1, max_frames).round().astype(int))
        frames = [frames[i] for i in picks]
    return [frames[i] for i in sorted(range(len(frames)), key=_radical_inverse)]


def _radical_inverse(index: int) -> float:
    """Van der Corput sequence: 0, 1/2, 1/4, 3/4, ... (the bits of `index` mirrored after the point)."""
    result, weight = 0.0, 0.5
    while index:
        result += weight * (index & 1)
        index >>= 1
        weight /= 2
    return result


class Pipeline:
    def __init__(self, config: PipelineConfig | None = None) -> None:
        self.config = config or PipelineConfig()
        cfg = self.config
        self.pose = pose_estimator(cfg.pose, **cfg.pose_options)
        classifier = (LegibilityClassifier(cfg.legibility_weights, cfg.device, cfg.threads)
                      if cfg.uses_legibility_classifier else None)  # fmt: skip
        self.legibility = classifier if cfg.legibility else None
        self.text = TextStage.from_config(cfg, classifier.score if cfg.line_legibility else None)
        self.vote = Vote(cfg.mode, cfg.vote)

    def run(self, tracklet: Tracklet) -> Prediction:
        cfg = self.config
        timings: dict[str, float] = defaultdict(float)
        if not tracklet.frames:
            return Prediction(tracklet.id, NO_NUMBER, 0.0, "empty tracklet: no images")
        frames = sample_frames(tracklet.frames, cfg.max_frames)
        evidence: list[FrameEvidence] = []
        readings: list[Reading] = []
        settled = False
        # A smaller first batch: a clear tracklet settles after reading 4-8 frames, and posing 16 frames to read
        # 4 wastes most of the pose stage.
        bounds = [0, *range(min(cfg.first_batch, cfg.batch_size), len(frames), cfg.batch_size), len(frames)]
        for start, end in itertools.pairwise(bounds):
            batch_frames = frames[start:end]
            batch = [FrameEvidence(f.source, f.index) for f in batch_frames]
            crops = self._prepare_batch(batch_frames, batch, timings)
            # The most legible frames are read first, a chunk at a time, until the vote is settled.
            order = sorted(crops, key=lambda i: -batch[i].legibility) if self.legibility is not None else list(crops)
            read: set[int] = set()
            for chunk_start in range(0, len(order), cfg.read_chunk):
                chunk = order[chunk_start : chunk_start + cfg.read_chunk]
                readings += self._read(chunk, crops, batch, timings)
                read.update(chunk)
                settled = cfg.early_stop and self.vote.settled(readings)
                if settled:
                    break
            # Evidence of the frames looked at: read, dropped as illegible, or unreadable.
            evidence += [record for i, record in enumerate(batch) if i in read or i not in crops]
            if settled or self._nothing_legible(evidence):
                break
        with _timed(timings, "vote"):
            result = self.vote.decide(readings)
        reason = result.reason
        illegible = sum(record.legibility is not None and record.legibility < cfg.legibility_threshold
                        for record in evidence)  # fmt: skip
        if all(record.error for record in evidence):
            reason = f"no readable image: {evidence[0].error}"
        elif not readings and illegible:
            reason = f"illegible: {illegible} of {len(evidence)} frames scored under {cfg.legibility_threshold}"
        return Prediction(
            tracklet.id, result.number, result.confidence, reason, result.text, result.votes, evidence, dict(timings)
        )

    def _nothing_legible(self, evidence: list[FrameEvidence]) -> bool:
        """True once `illegible_stop` frames spread over the tracklet were scored and none was legible."""
        stop = self.config.illegible_stop
        if self.legibility is None or not stop or len(evidence) < stop:
            return False
        return all(record.legibility is None or record.legibility < self.config.legibility_threshold
                   for record in evidence)  # fmt: skip

    def _prepare_batch(self, frames: list[Frame], evidence: list[FrameEvidence], timings: dict) -> dict[int, np.ndarray]:
        """Decode, pose, cut the torso and score legibility: the torso crops worth reading, by frame position."""
        cfg = self.config
        images: list[np.ndarray | None] = []
        with _timed(timings, "load"):
            for frame, record in zip(frames, evidence):
                in_memory = frame.image is not None
                try:
                    images.append(load_image(frame, cfg.max_pixels))
                except ImageError as error:
                    record.error = str(error)
                    images.append(None)
                if not in_memory:  # pixels decoded from a file live for this batch only
                    frame.image = None
        usable = [i for i, image in enumerate(images) if image is not None]

        # Pose only where a body can be seen and no detector gave its keypoints: a number-region crop goes
        # straight to its fallback.
        with _timed(timings, "pose"):
            keypoints = {i: frames[i].keypoints for i in usable}
            posed = [i for i in usable
                     if keypoints[i] is None and not is_number_region(*images[i].shape[:2], cfg.torso)]  # fmt: skip
            if self.pose is not None and posed:
                keypoints.update(zip(posed, self.pose.estimate([images[i] for i in posed])))

        crops: dict[int, np.ndarray] = {}
        with _timed(timings, "torso"):
            for i in usable:
                height, width = images[i].shape[:2]
                box, source = torso_box(keypoints[i], height, width, cfg.torso)
                evidence[i].torso_box, evidence[i].torso_source = box, source
                if box[2] <= box[0] or box[3] <= box[1]:  # a frame a pixel or two wide has no torso to cut
                    evidence[i].error = f"too small to read: {width} x {height} px"
                    continue
                crops[i] = images[i][box[1] : box[3], box[0] : box[2]]

        if self.legibility is not None:
            with _timed(timings, "legibility"):
                scores = self.legibility.score([crops[i] for i in crops])
                for i, score in zip(list(crops), scores):
                    evidence[i].legibility = float(score)
                    if score < cfg.legibility_threshold:
                        del crops[i]
        return crops

    def _read(self, chosen: list[int], crops: dict[int, np.ndarray], evidence: list[FrameEvidence],
              timings: dict) -> list[Reading]:  # fmt: skip
        """Read the chosen torso crops: small ones whole as one line, larger ones searched for lines."""
        with _timed(timings, "text"):
            small = [i for i in chosen if min(crops[i].shape[:2]) < self.config.detect_min_side]
            large = [i for i in chosen if i not in small]
            for i, readings in zip(small, self.text.read_lines([crops[i] for i in small])):
                # the vote keeps the ones its mode accepts, weighing the crop's legibility score where it has one
                score = evidence[i].legibility
                evidence[i].readings = readings if score is None else [replace(r, crop_legibility=round(score, 4))
                                                                       for r in readings]  # fmt: skip
            for i, readings in zip(large, self.text.read_regions([crops[i] for i in large])):
                if evidence[i].torso_source is TorsoSource.POSE:
                    tallest = self.config.torso.max_line_share * crops[i].shape[0]
                    readings = [r for r in readings if r.box is None or r.box[3] - r.box[1] < tallest]
                evidence[i].readings = readings
        return [reading for i in chosen for reading in evidence[i].readings]


@contextmanager
def _timed(timings: dict[str, float], stage: str):
    start = time.perf_counter()
    try:
        yield
    finally:
        timings[stage] += time.perf_counter() - start


def _timed_run(pipeline: Pipeline, tracklet: Tracklet) -> tuple[Prediction, float]:
    start = time.perf_counter()
    prediction = pipeline.run(tracklet)
    return prediction, time.perf_counter() - start


def build_pipeline(config: PipelineConfig, threads: int = 0) -> Pipeline:
    """A pipeline of `config` whose models use `threads` threads each (0: as `config` says); with the config
    bound (`functools.partial`), the factory `parallel`'s workers call."""
    return Pipeline(replace(config, threads=threads) if threads else config)


def predict_all(config: PipelineConfig, tracklets: list[Tracklet], workers: int = 1, ray: str | None = None,
                shared_files: bool = False) -> Iterator[tuple[Prediction, float]]:  # fmt: skip
    """Every tracklet's prediction and the seconds it took, in the order they finish; with `workers` > 1, that
    many processes each run their own pipeline with one thread per model (`parallel.map_in_workers`); with `ray`
    (an address, "auto" or "local"), one worker per CPU of that Ray cluster (`distributed.map_on_ray`), sent each
    frame's bytes from here unless `shared_files` (every node sees the frames at the same paths)."""
    if ray is None:
        return map_in_workers(partial(build_pipeline, config), _timed_run, tracklets, workers)
    from jerseynum.distributed import map_on_ray

    return map_on_ray(partial(build_pipeline, config), _timed_run, tracklets, ray, prepare=None if shared_files else with_frame_bytes)


def with_frame_bytes(tracklet: Tracklet) -> Tracklet:
    """The tracklet with each frame's file bytes (a frame whose file cannot be read keeps only its path, and the
    worker reports why it could not read it)."""
    frames = []
    for frame in tracklet.frames:
        data = None
        if frame.image is None and frame.data is None:
            try:
                data = Path(frame.source).read_bytes()
            except OSError:
                pass
        frames.append(replace(frame, data=data) if data is not None else frame)
    return replace(tracklet, frames=frames)
