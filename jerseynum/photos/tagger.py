"""Reading the bib numbers of a race photo: every runner found becomes a single-frame tracklet that goes through
the same pipeline as SoccerNet tracklets (bib mode), and the numbers are decided per runner, not per text box,
so sponsor text, years and background signs around a bib do not become numbers."""

from __future__ import annotations

import ast
import hashlib
import logging
import os
import time
from collections.abc import Callable
from contextlib import closing
from dataclasses import dataclass, field, fields, replace
from functools import partial
from pathlib import Path

import numpy as np

from jerseynum import __version__
from jerseynum.config import PipelineConfig
from jerseynum.io import DEFAULT_MAX_PIXELS, IMAGE_SUFFIXES, ImageError, decode_image, natural_key
from jerseynum.parallel import map_in_workers
from jerseynum.photos.event import EventReport, EventSettings, decide_photo, redecide
from jerseynum.photos.identity import FaceEmbedder, body_colour, clothing_colour, photo_time
from jerseynum.photos.index import (
    COMPANION_SUFFIXES,
    SCHEMA_VERSION,
    SHOWN,
    BibNumber,
    IndexFileError,
    PhotoIndex,
    RunnerRead,
    StaleReadsError,
    file_sha256,
    tag_run_lock,
)
from jerseynum.photos.runners import RunnerFinder, RunnerSettings
from jerseynum.pipeline import Pipeline
from jerseynum.stages.crnn import DEFAULT_WEIGHTS as CRNN_WEIGHTS
from jerseynum.types import NO_NUMBER, Box, Mode, Prediction, Tracklet

log = logging.getLogger("jerseynum")


# The package's code that decides what pass 1 reads of a photo (relative to the package; folders: every module in
# them). Pass 2 (photos/event.py), the index, the web page and the command line are not in it: an upgrade that
# changes only them re-decides the stored reads without reading a photo again.
READER_CODE = ("config.py", "io.py", "pipeline.py", "types.py", "weights.py", "detect", "stages",
               "photos/identity.py", "photos/runners.py", "photos/tagger.py")  # fmt: skip
PACKAGE = Path(__file__).resolve().parents[1]


def _code_of(source: str) -> str:
    """A module's code without its comments, docstrings and layout: its syntax tree, docstrings taken out. A
    Python whose parser dumps trees differently gives another text, so the photos are read again: the safe way."""
    tree = ast.parse(source)
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(getattr(first.value, "value", None), str):
                node.body = node.body[1:] or [ast.Pass()]
    return ast.dump(tree)


def reader_code_digest(package: Path = PACKAGE) -> str:
    """A digest of the reader's code (`READER_CODE`): an upgrade of jerseynum whose reader reads differently (a
    runner anchor, a vote rule) changes it, where the package's version number may not change. Comments and
    docstrings are not code: an upgrade that only rewords them reads no photo again."""
    digest = hashlib.sha256()
    for name in READER_CODE:
        path = package / name
        for module in sorted(path.rglob("*.py")) if path.is_dir() else [path]:
            code = _code_of(module.read_text(encoding="utf-8"))
            digest.update(module.relative_to(package).as_posix().encode() + b"\0" + code.encode())
    return digest.hexdigest()[:10]


def model_version(config: PipelineConfig, settings: RunnerSettings, identity: bool = True) -> str:
    """Names everything that decides what pass 1 reads of a photo (the reader's code, weights and settings): a
    change of it makes `jerseynum tag` read the photo again. Every setting of `config` is named, weight files by
    their contents (a copy of the same weights elsewhere is the same reader), but not the threads or device the
    models run on. The decisions of pass 2 (photos/event.py) are not in it: they are re-made from the stored
    reads."""
    options = config.engine_options()
    options["crnn"] = {"weights": CRNN_WEIGHTS, **options["crnn"]}
    options = {engine: {key: _content_digest(value) if _is_file(value) else value for key, value in given.items()}
               for engine, given in options.items()}  # fmt: skip
    weights = options["crnn"]["weights"] if "crnn" in config.text else "-"
    legibility = _content_digest(config.legibility_weights) if config.uses_legibility_classifier else "-"
    named = {f.name: getattr(config, f.name) for f in fields(config) if f.name not in ("threads", "device")}
    named.update(legibility_weights=legibility, text_options=options)
    described = repr((named, settings, identity))
    return (
        f"jerseynum {__version__}; index {SCHEMA_VERSION}; reader {reader_code_digest()}; crnn {weights}; "
        f"legibility {legibility}; settings {hashlib.sha256(described.encode()).hexdigest()[:10]}"
    )


def _content_digest(path: Path | str) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:10]


def _is_file(value: object) -> bool:
    return isinstance(value, Path | str) and bool(value) and Path(value).is_file()


class PhotoTagger:
    """Finds the runners of a photo, reads each one's bib and takes their appearance (pass 1)."""

    def __init__(self, config: PipelineConfig | None = None, runners: RunnerSettings = RunnerSettings(),
                 identity: bool = True, threads: int = 0) -> None:  # fmt: skip
        self.config = config or PipelineConfig(mode=Mode.BIB, threads=threads)
        if self.config.mode is not Mode.BIB:
            raise ValueError("race photos are read in bib mode")
        self.finder = RunnerFinder(runners, threads=threads)
        self.pipeline = Pipeline(self.config)
        # Faces are embedded for the identity clusters of pass 2 (photos/identity.py).
        self.embedder = FaceEmbedder(threads=threads) if identity else None
        self.version = model_version(self.config, runners, identity)

    def read(self, photo: np.ndarray, timings: dict[str, float] | None = None) -> list[RunnerRead]:
        """Every runner found in the photo, with the number its vote gives (or none) and its appearance.
        `timings`, if given, gains the seconds spent finding runners ("runners"), embedding faces ("identity")
        and in each pipeline stage, summed over the runners."""
        timings = {} if timings is None else timings
        start = time.perf_counter()
        runners = self.finder.find(photo)
        timings["runners"] = timings.get("runners", 0.0) + time.perf_counter() - start
        reads = []
        for k, runner in enumerate(runners):
            x1, y1, x2, y2 = runner.region
            prediction = self.pipeline.run(Tracklet.from_images(f"runner{k}", [photo[y1:y2, x1:x2]]))
            for stage, seconds in prediction.timings.items():
                timings[stage] = timings.get(stage, 0.0) + seconds
            start = time.perf_counter()
            face = self.embedder.embed(photo, runner.face) if self.embedder and runner.face else None
            colour = None
            if self.embedder:
                colour = clothing_colour(photo, runner.face) if runner.face else body_colour(photo, runner.body)
            timings["identity"] = timings.get("identity", 0.0) + time.perf_counter() - start
            found = prediction.number != NO_NUMBER
            reads.append(RunnerRead(
                runner.region, prediction.text if found else "", round(prediction.confidence, 4),
                self._bib_box(prediction, runner.region) if found else None,
                {"face": list(runner.face) if runner.face else None, "face_score": round(runner.face_score, 3),
                 "body": list(runner.body) if runner.body else None, "body_score": round(runner.body_score, 3),
                 "votes": prediction.votes, "readings": _readings(prediction)}, face, colour))  # fmt: skip
        return reads

    def tag(self, photo: np.ndarray, timings: dict[str, float] | None = None) -> list[BibNumber]:
        """The numbers shown for this photo read alone (`event.decide_photo`), best first."""
        return [n for n in decide_photo(self.read(photo, timings)) if n.status in SHOWN]

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


def _readings(prediction: Prediction) -> list[dict]:
    """The readings behind a runner's vote, for the index (what pass 2 and a reviewer can weigh)."""
    return [{"engine": r.engine, "text": r.text, "confidence": round(r.confidence, 4),
             "chars": [round(c, 3) for c in r.char_confidences], "line_legibility": r.line_legibility}
            for record in prediction.evidence for r in record.readings]  # fmt: skip


@dataclass
class TagReport:
    """What one `tag_folder` run did."""

    photos: int = 0  # image files in the folder
    tagged: int = 0  # read this run (new, changed, or tagged by another model version)
    unchanged: int = 0  # already in the index with the same content and model version: skipped
    unreadable: int = 0  # recorded with their error, no numbers
    errors: dict[str, str] = field(default_factory=dict)  # path -> why, of the unreadable ones
    skipped: dict[str, str] = field(default_factory=dict)  # files of the folder that are not photos -> why
    removed: int = 0  # in the index but gone from the folder: dropped from the index
    moved: int = 0  # of the unchanged: found at another path (moved or renamed), reads and corrections kept
    runners: int = 0  # runners found in the photos read this run
    event: EventReport | None = None  # the whole event re-decided at the end (pass 2)
    seconds: list[float] = field(default_factory=list)  # per photo tagged this run


def photo_files(root: Path, index_path: Path | None = None) -> tuple[list[str], dict[str, str]]:
    """Image files under `root` (recursively), as '/'-separated paths relative to it, in natural order; and the
    other files, each with why it is skipped. Hidden files, XMP sidecars (`write-metadata`'s) and the index at
    `index_path` with SQLite's files beside it (an index kept in the photo folder) are not listed."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"not a folder: {root}")
    index_files = set()
    if index_path is not None:
        index_path = Path(index_path).resolve()
        index_files = {index_path.with_name(index_path.name + suffix) for suffix in ("", *COMPANION_SUFFIXES)}
    photos, skipped = [], {}
    for file in root.rglob("*"):
        relative = file.relative_to(root)
        if any(part.startswith(".") for part in relative.parts) or file in index_files:
            continue
        try:
            name = relative.as_posix()
            name.encode("utf-8")
        except UnicodeEncodeError:  # bytes the file system took that are no UTF-8 (a zip made on Windows)
            printable = os.fsencode(name).decode("utf-8", "backslashreplace")
            skipped[printable] = "its name is not UTF-8 text: rename it (e.g. `convmv -f latin1 -t utf8`)"
            continue
        if file.is_symlink() and file.is_dir():
            skipped[name] = "a link to a folder, not followed: tag that folder itself, or copy its photos here"
            continue
        if not file.is_file():
            continue
        suffix = file.suffix.lower()
        if suffix in IMAGE_SUFFIXES:
            photos.append(name)
        elif suffix != ".xmp":
            skipped[name] = f"not a photo format ({suffix or 'no extension'})"
    return sorted(photos, key=natural_key), dict(sorted(skipped.items()))


TaggerFactory = Callable[..., PhotoTagger]  # called with threads=N (0: all cores)


def _moved(root: Path, gone: list[str], new: list[str], known: dict[str, tuple[int, int, str, str]]) -> dict[str, str]:
    """Old path -> new path of the photos gone from where the index has them and found elsewhere in the folder
    with the same content (size, then hash: only the new files of a gone photo's size are hashed)."""
    by_content: dict[tuple[int, str], str] = {}
    for path in gone:
        size, _, sha256, _ = known[path]
        by_content.setdefault((size, sha256), path)
    sizes = {size for size, _ in by_content}
    moved = {}
    for path in new:
        try:
            size = (root / path).stat().st_size
            old = by_content.pop((size, file_sha256(root / path)), None) if size in sizes else None
        except OSError:  # gone since the listing: tagging records why
            continue
        if old is not None:
            moved[old] = path
    return moved


@dataclass(frozen=True)
class PhotoFile:
    """A photo's bytes as read (None, with the `error`, where the file could not be read), with its size and
    modification time as the index records them."""

    path: str
    size: int = 0
    mtime_ns: int = 0
    data: bytes | None = None
    error: str | None = None


def read_photo_file(root: Path, path: str) -> PhotoFile:
    try:
        stat = (root / path).stat()
        data = (root / path).read_bytes()
    except OSError as error:  # gone or unreadable since the folder was listed: recorded, retried by a rerun
        return PhotoFile(path, error=f"cannot read the file: {error.strerror or error}")
    return PhotoFile(path, stat.st_size, stat.st_mtime_ns, data)


def _tag_file(root: Path, path: str, tagger: PhotoTagger, max_pixels: int) -> tuple:
    """`_tag_photo` of a file read here."""
    return _tag_photo(read_photo_file(root, path), tagger, max_pixels)


def _tag_listed(root: Path, max_pixels: int, tagger: PhotoTagger, path: str) -> tuple:
    """`_tag_file` in the (worker, item) order of `map_in_workers` and `map_on_ray`."""
    return _tag_file(root, path, tagger, max_pixels)


def _tag_sent(max_pixels: int, tagger: PhotoTagger, photo: PhotoFile) -> tuple:
    """`_tag_photo` in the (worker, item) order of `map_on_ray`: the photo's bytes came with it."""
    return _tag_photo(photo, tagger, max_pixels)


def _tag_photo(photo: PhotoFile, tagger: PhotoTagger, max_pixels: int) -> tuple:
    """Hash, decode and read the runners of one photo (pass 1): everything `PhotoIndex.put` needs, as plain
    picklable values. A file that could not be read, decoded or tagged is returned with the reason, never
    raised."""
    start = time.perf_counter()
    path, size, mtime_ns, data = photo.path, photo.size, photo.mtime_ns, photo.data
    if data is None:
        return path, "", 0, 0, None, [], photo.error, 0.0, None
    sha256 = hashlib.sha256(data).hexdigest()
    taken = photo_time(data)
    try:
        image, reduction = decode_image(data, path, max_pixels)
    except ImageError as error:
        return path, sha256, size, mtime_ns, None, [], error.reason, 0.0, taken
    # A photo over the pixel budget (or a RAW file's preview) is decoded at 1/reduction scale: the index keeps
    # full-size pixels.
    shape = (round(image.shape[0] * reduction), round(image.shape[1] * reduction))
    try:
        runners = [_scaled(read, reduction) for read in tagger.read(image)]
    except Exception as error:  # one photo that breaks a model is recorded, not the end of a long batch job
        log.exception("%s: tagging failed", path)
        return path, sha256, size, mtime_ns, shape, [], f"tagging failed: {error}", 0.0, taken
    return path, sha256, size, mtime_ns, shape, runners, None, time.perf_counter() - start, taken


def _scaled(read: RunnerRead, factor: float) -> RunnerRead:
    """A runner read on a photo decoded at 1/factor scale, in the photo's full-size pixels."""
    if factor == 1:
        return read

    def scale(box):
        return None if box is None else tuple(round(v * factor) for v in box)

    evidence = {**read.evidence, **{key: scale(read.evidence[key]) for key in ("face", "body") if key in read.evidence}}
    return replace(read, region=scale(read.region), box=scale(read.box), evidence=evidence)


def tag_folder(root: Path, index_path: Path, factory: TaggerFactory = PhotoTagger, version: str | None = None,
               workers: int = 2, progress: bool = True, max_pixels: int = DEFAULT_MAX_PIXELS,
               settings: EventSettings = EventSettings(), entrants: list | None = None, ray: str | None = None,
               shared_files: bool = False, anchors: RunnerSettings = RunnerSettings(), relocate: bool = False
               ) -> TagReport:  # fmt: skip
    """Tag every photo under `root` into the index at `index_path`, resuming where a previous run stopped, then
    decide the whole event's numbers from every photo's stored reads (`event.redecide`).

    A photo already in the index is skipped when its size and modification time are unchanged (or its content
    hash is, if they changed) and it was tagged by the same model `version` and could be read; everything else is
    (re)tagged.
    Each photo is committed on its own, so an interrupted run loses at most the photos in flight. `workers`
    processes each run their own tagger with one thread per model (1: in this process). A photo over
    `max_pixels` is decoded reduced where it is a JPEG, else recorded as unreadable (`io.decode_image`).
    `entrants` (`startlist.read_start_list`) replace the index's start list.

    With `ray` (an address, "auto" or "local": `distributed.connect`), the photos are tagged by one worker per
    CPU of that Ray cluster instead of `workers` local processes; this process still lists the photos and writes
    the index. The workers get each photo's bytes from here, or with `shared_files` (every node sees `root` at
    the same path) read the files themselves.

    `anchors` other than the default (e.g. faces alone, `RunnerSettings(bodies=False)`) are given to `factory`
    as `runners=` and named in the model version, so a change of them reads the photos again.

    `relocate` moves an index made for another folder to `root` (the photos moved, or the index was copied to
    another machine), provided some of its photos are there: those unchanged are not read again.
    """
    from tqdm import tqdm

    if ray is not None:  # before anything is read or written: no cluster is one clear error
        from jerseynum.distributed import connect

        connect(ray)
    root = Path(root).resolve()
    files, skipped = photo_files(root, index_path)
    version = version or model_version(PipelineConfig(mode=Mode.BIB), anchors)
    if anchors != RunnerSettings():
        factory = partial(factory, runners=anchors)
    report = TagReport(photos=len(files), skipped=skipped)
    with PhotoIndex(index_path) as index, tag_run_lock(index_path):
        known = index.known()
        if known and not files:  # an unmounted card or drive would otherwise empty the index
            raise IndexFileError(f"no photos under {root}, but {index_path} holds {len(known)}: is the card or"
                                 f" drive there? Nothing was changed (to start over, delete {index_path})")  # fmt: skip
        if relocate and known and index.photos_root != root and not set(known) & set(files):
            raise IndexFileError(f"none of the {len(known)} photos of {index_path} is under {root}: not the folder"
                                 f" they moved to; nothing was changed")  # fmt: skip
        index.bind_root(root, relocate)
        if entrants is not None:
            index.set_entrants(entrants)
        gone = sorted(set(known) - set(files))
        for old, new in _moved(root, gone, [path for path in files if path not in known], known).items():
            stat = (root / new).stat()
            index.move(old, new, stat.st_size, stat.st_mtime_ns)
            known[new] = (stat.st_size, stat.st_mtime_ns, *known.pop(old)[2:])
            gone.remove(old)
            report.moved += 1
        index.remove(gone)
        report.removed = len(gone)
        unreadable = index.unreadable()  # tried again each run (a decoder installed), under their paths after moves
        todo = []
        for path in files:
            if path in known and known[path][3] == version and path not in unreadable:
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
        # The models take a while to load before the first photo (tens of seconds on a small CPU): say so.
        bar = tqdm(total=len(todo), desc="tagging photos (loading the models)", unit="photo",
                   disable=not progress or not todo)  # fmt: skip

        def store(result: tuple) -> None:
            path, sha256, size, mtime_ns, shape, runners, error, seconds, taken = result
            # Until the event is re-decided at the end of the run, the photo shows its own decisions.
            numbers = decide_photo(runners)
            index.put(path, sha256, size, mtime_ns, shape, numbers, error, version, seconds, runners, taken)
            report.tagged += 1
            report.runners += len(runners)
            if error:
                report.unreadable += 1
                report.errors[path] = error
                log.warning("%s: %s (recorded, skipped)", path, error)
            else:
                report.seconds.append(seconds)
            if not bar.n:
                bar.set_description("tagging photos")
            bar.update()

        # module-level functions, bound: they pickle for spawned workers and Ray alike
        tag_one = partial(_tag_listed, root, max_pixels)
        tag_sent = partial(_tag_sent, max_pixels)

        if ray is None:
            results = map_in_workers(factory, tag_one, todo, workers)
        else:
            from jerseynum.distributed import map_on_ray

            def cluster(nodes: int, actors: int) -> None:
                bar.set_postfix_str(f"Ray: {nodes} nodes, {actors} workers")

            if shared_files:
                results = map_on_ray(factory, tag_one, todo, ray, on_start=cluster)
            else:
                results = map_on_ray(factory, tag_sent, todo, ray, partial(read_photo_file, root), cluster)
        try:
            with closing(results):
                for result in results:
                    store(result)
        except BaseException:  # an interrupt, a dead worker: the photos saved show the event's decisions all the same
            bar.close()
            try:
                redecide(index, settings)
            except (IndexFileError, StaleReadsError) as error:  # a full disk, say: the next run decides them
                log.debug("the event was not decided: %s", error)
            raise
        finally:
            bar.close()
        # Pass 2 over every stored read, old and new: seconds, not a photo read again.
        report.event = redecide(index, settings)
    return report
