"""Reading the bib numbers of a race photo: every runner found becomes a single-frame tracklet that goes through
the same pipeline as SoccerNet tracklets (bib mode), and the numbers are decided per runner, not per text box,
so sponsor text, years and background signs around a bib do not become numbers."""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from jerseynum import __version__
from jerseynum.config import PipelineConfig
from jerseynum.io import DEFAULT_MAX_PIXELS, IMAGE_SUFFIXES, ImageError, decode_image, natural_key
from jerseynum.parallel import map_in_workers
from jerseynum.photos.index import BibNumber, PhotoIndex, file_sha256
from jerseynum.photos.runners import FaceRunnerFinder, RunnerSettings
from jerseynum.pipeline import Pipeline
from jerseynum.stages.crnn import DEFAULT_WEIGHTS as CRNN_WEIGHTS
from jerseynum.types import NO_NUMBER, Box, Mode, Prediction, Tracklet

log = logging.getLogger("jerseynum")


@dataclass(frozen=True)
class PhotoRules:
    """Which per-runner numbers a photo keeps (chosen on the RBNR development photos, benchmarks/photos.py)."""

    min_digits: int = 2  # single digits are fragments or sponsor print far more often than bibs (F1 0.74 -> 0.82)
    min_confidence: float = 0.8  # the vote's confidence in the runner's number (F1 0.82 -> 0.86)
    drop_fragments: bool = True  # a number inside another number of the same photo is a partial read of it


def model_version(config: PipelineConfig, settings: RunnerSettings, rules: PhotoRules) -> str:
    """Names everything that decides a photo's tags: a change of it makes `jerseynum tag` retag the photo."""
    weights = hashlib.sha256(Path(CRNN_WEIGHTS).read_bytes()).hexdigest()[:10] if "crnn" in config.text else "-"
    legibility = (hashlib.sha256(Path(config.legibility_weights).read_bytes()).hexdigest()[:10]
                  if config.uses_legibility_classifier else "-")  # fmt: skip
    described = repr((config.text, config.text_settle, config.det_side, config.det_retry_sides, config.vote, settings,
                      rules, config.legibility, config.line_legibility, config.legibility_threshold))  # fmt: skip
    return (f"jerseynum {__version__}; crnn {weights}; legibility {legibility}; "
            f"settings {hashlib.sha256(described.encode()).hexdigest()[:10]}")


class PhotoTagger:
    """Finds the runners of a photo and reads each one's bib."""

    def __init__(self, config: PipelineConfig | None = None, runners: RunnerSettings = RunnerSettings(),
                 rules: PhotoRules = PhotoRules(), threads: int = 0) -> None:  # fmt: skip
        self.config = config or PipelineConfig(mode=Mode.BIB, threads=threads)
        if self.config.mode is not Mode.BIB:
            raise ValueError("race photos are read in bib mode")
        self.finder = FaceRunnerFinder(runners)
        self.pipeline = Pipeline(self.config)
        self.rules = rules
        self.version = model_version(self.config, runners, rules)

    def tag(self, photo: np.ndarray, timings: dict[str, float] | None = None) -> list[BibNumber]:
        """The bib numbers in the photo, one per number (the surest reading where several runners show it),
        each with its box in photo pixels, best first. `timings`, if given, gains the seconds spent finding
        runners ("runners") and in each pipeline stage, summed over the runners."""
        found: dict[str, BibNumber] = {}
        start = time.perf_counter()
        runners = self.finder.find(photo)
        if timings is not None:
            timings["runners"] = timings.get("runners", 0.0) + time.perf_counter() - start
        for k, runner in enumerate(runners):
            x1, y1, x2, y2 = runner.region
            prediction = self.pipeline.run(Tracklet.from_images(f"runner{k}", [photo[y1:y2, x1:x2]]))
            for stage, seconds in prediction.timings.items() if timings is not None else ():
                timings[stage] = timings.get(stage, 0.0) + seconds
            text = prediction.text
            if prediction.number == NO_NUMBER or len(text) < self.rules.min_digits:
                continue
            if prediction.confidence < self.rules.min_confidence:
                continue
            number = BibNumber(text, round(prediction.confidence, 4), self._bib_box(prediction, runner.region))
            if text not in found or number.confidence > found[text].confidence:
                found[text] = number
        if self.rules.drop_fragments:
            found = {
                text: n for text, n in found.items() if not any(text != other and text in other for other in found)
            }
        return sorted(found.values(), key=lambda n: -n.confidence)

    @staticmethod
    def _bib_box(prediction: Prediction, region: Box) -> Box:
        """The winning reading's box in photo pixels (the runner's region where the reader gave none)."""
        record = prediction.evidence[0]
        for reading in record.readings:
            if reading.text == prediction.text and reading.box and record.torso_box:
                # reading boxes are in torso-crop pixels; the torso crop lies in the runner's region
                left, top = region[0] + record.torso_box[0], region[1] + record.torso_box[1]
                bx1, by1, bx2, by2 = reading.box
                return left + bx1, top + by1, left + bx2, top + by2
        return region


@dataclass
class TagReport:
    """What one `tag_folder` run did."""

    photos: int = 0  # image files in the folder
    tagged: int = 0  # read this run (new, changed, or tagged by another model version)
    unchanged: int = 0  # already in the index with the same content and model version: skipped
    unreadable: int = 0  # recorded with their error, no numbers
    removed: int = 0  # in the index but gone from the folder: dropped from the index
    numbers: int = 0  # numbers found this run
    seconds: list[float] = field(default_factory=list)  # per photo tagged this run


def photo_files(root: Path) -> list[str]:
    """Image files under `root` (recursively), as '/'-separated paths relative to it, in natural order."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"not a folder: {root}")
    files = [p for p in root.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()]
    return sorted((p.relative_to(root).as_posix() for p in files), key=natural_key)


TaggerFactory = Callable[..., PhotoTagger]  # called with threads=N (0: all cores)


def _tag_file(root: Path, path: str, tagger: PhotoTagger, max_pixels: int) -> tuple:
    """Read, hash, decode and tag one file: everything `PhotoIndex.put` needs, as plain picklable values. A file
    that cannot be read (deleted mid-run), decoded or tagged is returned with the reason, never raised."""
    start = time.perf_counter()
    file = root / path
    try:
        stat = file.stat()
        data = file.read_bytes()
    except OSError as error:  # gone or unreadable since the folder was listed: recorded, retried by a rerun
        return path, "", 0, 0, None, [], f"cannot read the file: {error.strerror or error}", 0.0
    sha256 = hashlib.sha256(data).hexdigest()
    try:
        image, reduction = decode_image(data, path, max_pixels)
    except ImageError as error:
        return path, sha256, stat.st_size, stat.st_mtime_ns, None, [], error.reason, 0.0
    # A photo over the pixel budget was decoded at 1/reduction scale: the index keeps full-size pixels.
    shape = (image.shape[0] * reduction, image.shape[1] * reduction)
    try:
        numbers = [BibNumber(n.number, n.confidence, tuple(v * reduction for v in n.box)) for n in tagger.tag(image)]
    except Exception as error:  # one photo that breaks a model is recorded, not the end of a long batch job
        log.exception("%s: tagging failed", path)
        return path, sha256, stat.st_size, stat.st_mtime_ns, shape, [], f"tagging failed: {error}", 0.0
    return path, sha256, stat.st_size, stat.st_mtime_ns, shape, numbers, None, time.perf_counter() - start


def tag_folder(root: Path, index_path: Path, factory: TaggerFactory = PhotoTagger, version: str | None = None,
               workers: int = 2, progress: bool = True, max_pixels: int = DEFAULT_MAX_PIXELS) -> TagReport:  # fmt: skip
    """Tag every photo under `root` into the index at `index_path`, resuming where a previous run stopped.

    A photo already in the index is skipped when its size and modification time are unchanged (or its content
    hash is, if they changed) and it was tagged by the same model `version`; everything else is (re)tagged.
    Each photo is committed on its own, so an interrupted run loses at most the photos in flight. `workers`
    processes each run their own tagger with one thread per model (1: in this process). A photo over
    `max_pixels` is decoded reduced where it is a JPEG, else recorded as unreadable (`io.decode_image`).
    """
    from tqdm import tqdm

    root = Path(root).resolve()
    files = photo_files(root)
    version = version or model_version(PipelineConfig(mode=Mode.BIB), RunnerSettings(), PhotoRules())
    report = TagReport(photos=len(files))
    with PhotoIndex(index_path) as index:
        index.bind_root(root)
        known = index.known()
        gone = sorted(set(known) - set(files))
        index.remove(gone)
        report.removed = len(gone)
        todo = []
        for path in files:
            if path in known and known[path][3] == version:
                size, mtime_ns, sha256, _ = known[path]
                try:
                    stat = (root / path).stat()
                    unchanged = (size, mtime_ns) == (stat.st_size, stat.st_mtime_ns)
                    touched = not unchanged and file_sha256(root / path) == sha256
                except OSError:  # gone since the listing: tagging records why
                    unchanged = touched = False
                if unchanged:
                    report.unchanged += 1
                    continue
                if touched:
                    index.touch(path, stat.st_size, stat.st_mtime_ns)
                    report.unchanged += 1
                    continue
            todo.append(path)
        bar = tqdm(total=len(todo), desc="tagging photos", unit="photo", disable=not progress or not todo)

        def store(result: tuple) -> None:
            path, sha256, size, mtime_ns, shape, numbers, error, seconds = result
            index.put(path, sha256, size, mtime_ns, shape, numbers, error, version, seconds)
            report.tagged += 1
            report.numbers += len(numbers)
            if error:
                report.unreadable += 1
                log.warning("%s: %s (recorded, skipped)", path, error)
            else:
                report.seconds.append(seconds)
            bar.update()

        def tag_one(tagger: PhotoTagger, path: str) -> tuple:
            return _tag_file(root, path, tagger, max_pixels)

        try:
            with closing(map_in_workers(factory, tag_one, todo, workers)) as results:
                for result in results:
                    store(result)
        finally:
            bar.close()
    return report
