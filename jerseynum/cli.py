"""The `jerseynum` command (also `python -m jerseynum`): infer (tracklets), tag / search / export / serve (race
photos), video, train-recognizer, train-legibility. `inference.py` is a thin wrapper over `infer`."""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import statistics
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import TYPE_CHECKING

from jerseynum.config import PipelineConfig
from jerseynum.io import (
    DEFAULT_MAX_PIXELS,
    TrackletFolderError,
    VideoError,
    check_writable,
    copy_new_file,
    list_tracklets,
    write_json_atomic,
    write_text_atomic,
)
from jerseynum.parallel import default_workers
from jerseynum.weights import CRNN_WEIGHTS as DEFAULT_WEIGHTS
from jerseynum.weights import LEGIBILITY_CHECKPOINT as DEFAULT_LEGIBILITY_CHECKPOINT
from jerseynum.weights import LEGIBILITY_WEIGHTS as DEFAULT_LEGIBILITY_WEIGHTS
from jerseynum.wording import counted

if TYPE_CHECKING:  # the commands import what they run when they run: `--help` and `search` stay fast
    from jerseynum.photos.event import EventReport
    from jerseynum.photos.index import PhotoIndex

log = logging.getLogger("jerseynum")

REPO = Path(__file__).resolve().parent.parent
SAMPLE_TRACKLETS = REPO / "samples" / "tracklets"
DEFAULT_DATA = REPO.parent / "shared" / "data"


def at_least(minimum: int) -> Callable[[str], int]:
    """An argparse type: an integer >= `minimum` (a negative --limit or --fuzzy is a mistake, not a request)."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum}, not {value}")
        return value

    return parse


def add_max_pixels_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--max-pixels",
        type=at_least(1),
        default=DEFAULT_MAX_PIXELS,
        help="pixel budget per image, read from its header before decoding: a JPEG over it is "
        f"decoded at 1/2, 1/4 or 1/8 size, any other image skipped (default {DEFAULT_MAX_PIXELS})",
    )


def add_workers_argument(parser: argparse.ArgumentParser, doing: str) -> None:
    workers = default_workers()
    parser.add_argument("--workers", type=at_least(1), default=workers,
                        help=f"processes {doing} in parallel, one thread per model each (default: one per CPU core,"
                             f" as many as the available memory holds; here {workers}; 1: one process whose models"
                             " share the cores)")  # fmt: skip


def add_ray_arguments(parser: argparse.ArgumentParser, items: str) -> None:
    parser.add_argument("--ray", nargs="?", const="auto", metavar="ADDRESS",
                        help=f"{items} on a Ray cluster, one worker per CPU, instead of --workers processes: 'auto'"
                             " (the default) joins the cluster `ray start` made, 'local' starts one on this machine,"
                             " or give the head's address (host:6379); this process writes the results")  # fmt: skip
    parser.add_argument("--ray-shared-files", action="store_true",
                        help="every Ray node sees the files at the same path (NFS, a mounted bucket): workers read"
                             " them there instead of being sent their bytes")  # fmt: skip


def add_pipeline_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--mode",
        choices=["jersey", "bib"],
        default="jersey",
        help="jersey: numbers 0-99 (default); bib: race bibs of up to 6 digits",
    )
    parser.add_argument(
        "--pose",
        choices=["mediapipe", "mmpose", "none"],
        default=None,
        help="pose backend (default: mediapipe for jerseys, none for bibs)",
    )
    parser.add_argument("--mmpose-config", type=Path, help="mmpose model config (with --pose mmpose)")
    parser.add_argument("--mmpose-checkpoint", type=Path, help="mmpose checkpoint file (with --pose mmpose)")
    parser.add_argument(
        "--text",
        nargs="+",
        choices=["rapidocr", "crnn", "easyocr"],
        help="text engines in cascade order (default: crnn rapidocr for jerseys, rapidocr crnn for "
        "bibs; crnn is the project's trained recognizer in models/)",
    )
    parser.add_argument(
        "--text-settle",
        type=float,
        default=PipelineConfig.text_settle,
        help="a later engine skips crops an earlier one read with this confidence; 1.1: all read",
    )
    parser.add_argument(
        "--legibility", choices=["on", "off"], help="the legibility stage (default: on for jerseys, off for bibs)"
    )
    parser.add_argument(
        "--legibility-weights",
        type=Path,
        default=DEFAULT_LEGIBILITY_WEIGHTS,
        help="legibility classifier: a .pt checkpoint or its .onnx export (default: the shipped one)",
    )
    parser.add_argument(
        "--legibility-threshold",
        type=float,
        default=PipelineConfig.legibility_threshold,
        help="frames scoring below this are not read",
    )
    parser.add_argument("--max-frames", type=at_least(1), default=PipelineConfig.max_frames,
                        help="frames sampled from a longer tracklet")  # fmt: skip
    add_max_pixels_argument(parser)
    parser.add_argument("--no-early-stop", action="store_true", help="read every sampled frame")
    parser.add_argument("--device", default="cpu", help="torch device for the legibility classifier")  # fmt: skip
    add_workers_argument(parser, "reading tracklets")


def pipeline_config(args: argparse.Namespace) -> PipelineConfig:
    pose_options = {}
    if args.pose == "mmpose":
        if not (args.mmpose_config and args.mmpose_checkpoint):
            raise SystemExit("--pose mmpose needs --mmpose-config and --mmpose-checkpoint (local files)")
        pose_options = {"config": args.mmpose_config, "checkpoint": args.mmpose_checkpoint, "device": args.device}
    return PipelineConfig(
        mode=args.mode,
        pose=args.pose,
        pose_options=pose_options,
        text=args.text,
        text_settle=args.text_settle,
        legibility=None if args.legibility is None else args.legibility == "on",
        legibility_weights=args.legibility_weights,
        legibility_threshold=args.legibility_threshold,
        max_frames=args.max_frames,
        max_pixels=args.max_pixels,
        early_stop=not args.no_early_stop,
        device=args.device,
    )


def _collect(results, predictions: dict[str, int], stage_totals: dict[str, float], seconds: list[float]) -> None:
    """Gather the tracklets' predictions as they finish, with their timings and warnings."""
    for prediction, tracklet_seconds in results:
        seconds.append(tracklet_seconds)
        predictions[prediction.tracklet_id] = prediction.number
        for stage, stage_seconds in prediction.timings.items():
            stage_totals[stage] += stage_seconds
        for record in prediction.evidence:
            if record.error:
                log.warning("tracklet %s: %s", prediction.tracklet_id, record.error)
        if all(record.error for record in prediction.evidence):  # also true of an empty tracklet
            log.warning("tracklet %s -> -1: %s", prediction.tracklet_id, prediction.reason)
        log.debug("tracklet %s -> %s (%s)", prediction.tracklet_id, prediction.number, prediction.reason)


def infer(args: argparse.Namespace) -> int:
    """Predict a number for every tracklet folder and write SoccerNet's challenge JSON."""
    from tqdm import tqdm

    from jerseynum.distributed import RayClusterError, connect
    from jerseynum.pipeline import STAGES, predict_all

    try:
        tracklets = list_tracklets(args.tracklets)
    except TrackletFolderError as error:
        log.error("%s", error)
        return 2
    if args.gt:  # checked before hours of work, and never written over
        from jerseynum.soccernet import DataError, read_ground_truth

        try:
            truth = read_ground_truth(args.gt)
        except DataError as error:
            log.error("%s", error)
            return 2
        if args.output.resolve() == args.gt.resolve():
            log.error("-o %s is the ground truth: give another file", args.output)
            return 2
        if not {t.id for t in tracklets} & set(truth):
            log.error("%s labels none of the tracklets in %s", args.gt, args.tracklets)
            return 2
    if not _writable(args.output):
        return 2
    predictions: dict[str, int] = {}
    stage_totals = dict.fromkeys(STAGES, 0.0)
    seconds_per_tracklet = []
    try:
        if args.ray:  # before the models load: no cluster is one clear error
            connect(args.ray)
        results = predict_all(pipeline_config(args), tracklets, args.workers, args.ray, args.ray_shared_files)
        _collect(tqdm(results, total=len(tracklets), desc="tracklets", unit="tracklet", disable=args.quiet),
                 predictions, stage_totals, seconds_per_tracklet)  # fmt: skip
    except RayClusterError as error:  # no cluster, or no worker left: nothing is written
        log.error("%s", error)
        return 1
    predictions = {tracklet.id: predictions[tracklet.id] for tracklet in tracklets}  # the folders' order
    try:
        write_json_atomic(args.output, predictions)
    except OSError as error:  # a full disk: no partial file is left, and the run's numbers are still shown below
        log.error("cannot write %s: %s; nothing was written", args.output, error.strerror or error)
        written = False
    else:
        written = True

    legible = sum(number != -1 for number in predictions.values())
    print(f"{counted(len(predictions), 'tracklet')} ({legible} with a number)" + (f" -> {args.output}" if written else ""))
    print(f"median {statistics.median(seconds_per_tracklet):.3f} s per tracklet; time per stage (s): "
          + ", ".join(f"{stage} {seconds:.1f}" for stage, seconds in stage_totals.items()))  # fmt: skip
    if len(tracklets) <= 20 or not written:
        for tracklet_id, number in predictions.items():
            print(f"  {tracklet_id}: {number}")
    if args.gt and written:  # the evaluator reads the written file
        print(_accuracy(args.gt, truth, args.output, predictions))
    return 0 if written else 1


def _accuracy(gt: Path, truth: dict[str, int], output: Path, predictions: dict[str, int]) -> str:
    """SoccerNet's accuracy of the written predictions, in words; over the labelled tracklets that were read, where
    the ground truth labels more (a few tracklets of a split run against its whole ground truth)."""
    import tempfile

    from SoccerNet.Evaluation.JerseyNumber import evaluate

    scored = {tracklet: number for tracklet, number in truth.items() if tracklet in predictions}
    if len(scored) == len(truth):
        return f"accuracy (SoccerNet evaluator): {evaluate(str(gt), str(output))['Accuracy']:.4f}"
    with tempfile.TemporaryDirectory() as folder:
        subset = Path(folder) / "ground_truth.json"
        subset.write_text(json.dumps(scored))
        accuracy = evaluate(str(subset), str(output))["Accuracy"]
    return (f"accuracy (SoccerNet evaluator): {accuracy:.4f} over the {len(scored)} labelled tracklets read"
            f" ({len(truth) - len(scored)} more are labelled but not in the folder)")


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("-v", "--verbose", action="store_true",
                        help="debug logging (with infer: every tracklet's decision)")  # fmt: skip
    # -q only where there is a progress bar to leave out
    progress = argparse.ArgumentParser(add_help=False, parents=[common])
    progress.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    parser = argparse.ArgumentParser(prog="jerseynum", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    infer_parser = commands.add_parser("infer", parents=[progress], help="read the number of every tracklet in a folder")
    infer_parser.add_argument(
        "tracklets",
        type=Path,
        nargs="?",
        default=SAMPLE_TRACKLETS,
        help="folder of tracklet folders (default: the shipped samples)",
    )
    infer_parser.add_argument(
        "-o",
        "--output",
        type=Path,
        default=Path("predictions.json"),
        help="challenge JSON to write (default: predictions.json)",
    )
    infer_parser.add_argument("--gt", type=Path, help="ground-truth JSON: also print SoccerNet's accuracy")
    add_pipeline_arguments(infer_parser)
    add_ray_arguments(infer_parser, "read the tracklets")
    infer_parser.set_defaults(handler=infer)

    tag_parser = commands.add_parser(
        "tag", parents=[progress], help="read the bib numbers of every race photo in a folder into an index"
    )
    tag_parser.add_argument("photos", type=Path, help="folder of race photos (searched recursively)")
    tag_parser.add_argument("--index", type=Path, required=True, help="SQLite index file (created if absent)")
    add_workers_argument(tag_parser, "tagging photos")
    add_ray_arguments(tag_parser, "tag the photos")
    tag_parser.add_argument("--relocate", action="store_true",
                            help="the index's photos now live in PHOTOS (the folder moved, or the index was copied"
                                 " to another machine): photos found unchanged there are not read again")  # fmt: skip
    tag_parser.add_argument("--faces-only", action="store_true",
                            help="find runners by their faces alone, not also by person boxes: faster, but a runner"
                                 " whose face is not found is not read")  # fmt: skip
    tag_parser.add_argument(
        "--start-list",
        type=Path,
        metavar="CSV",
        help="the organiser's start list (a bib column, optional name and category columns)",
    )
    tag_parser.add_argument("--write-metadata", nargs="?", const="sidecar", choices=["sidecar", "keywords"],
                            help="then write BIB:<number> (and names) as keywords for photo tools: into XMP sidecars"
                                 " (default, and always for RAW) or into the photos themselves")  # fmt: skip
    add_max_pixels_argument(tag_parser)
    tag_parser.set_defaults(handler=tag)

    start_list_parser = commands.add_parser(
        "start-list", parents=[common], help="give an index the race's start list and re-decide its numbers"
    )
    start_list_parser.add_argument("csv", type=Path, nargs="?",
                                   help="CSV with a bib column, optional name and category columns")  # fmt: skip
    start_list_parser.add_argument("--clear", action="store_true",
                                   help="take the start list away (a wrong one): reads are no longer held to it")  # fmt: skip
    start_list_parser.add_argument("--index", type=Path, required=True)
    start_list_parser.set_defaults(handler=start_list)

    review_parser = commands.add_parser(
        "review", parents=[common], help="list the uncertain numbers and the runners found without one")  # fmt: skip
    review_parser.add_argument("--index", type=Path, required=True)
    review_parser.add_argument("--below", type=float, default=0.9,
                               help="numbers less likely right than this are listed (default 0.9)")  # fmt: skip
    review_parser.add_argument("--limit", type=at_least(1), default=50, help="at most this many of each listed")
    review_parser.set_defaults(handler=review)

    correct_parser = commands.add_parser(
        "correct", parents=[common], help="confirm, add or remove a photo's numbers (a person's word wins)")  # fmt: skip
    correct_parser.add_argument("photo", help="the photo, by its path in the folder")
    correct_parser.add_argument("--index", type=Path, required=True)
    for action, what in (("confirm", "is right"), ("add", "is in the photo, unread"), ("remove", "is not there")):
        correct_parser.add_argument(f"--{action}", action="append", default=[], metavar="NUMBER",
                                    help=f"this number {what} (repeatable)")  # fmt: skip
    correct_parser.set_defaults(handler=correct)

    metadata_parser = commands.add_parser(
        "write-metadata", parents=[progress], help="write an index's numbers as keywords that photo tools read")  # fmt: skip
    metadata_parser.add_argument("--index", type=Path, required=True)
    metadata_parser.add_argument("--mode", choices=["sidecar", "keywords"], default="sidecar",
                                 help="XMP sidecars beside the photos (default) or IPTC/XMP keywords in them")  # fmt: skip
    metadata_parser.set_defaults(handler=write_metadata)

    search_parser = commands.add_parser(
        "search", parents=[common], help="find the photos of a bib number, a runner's name, or a person"
    )
    search_parser.add_argument("number", nargs="?", help="the bib number (digits)")
    search_parser.add_argument("--name", help="the photos of the start list's entrants of this name")
    search_parser.add_argument(
        "--same-runner", metavar="PHOTO", help="every other photo of the people in this photo (its path in the folder)"
    )
    search_parser.add_argument("--index", type=Path, required=True)
    search_parser.add_argument("--exact", action="store_true",
                               help="no \"maybe you\" section of near matches (other bibs containing the number, or"
                                    " within --fuzzy edits of it)")  # fmt: skip
    search_parser.add_argument(
        "--fuzzy",
        type=at_least(0),
        default=1,
        metavar="K",
        help="also numbers within K edits of the query (default 1; 0: none)",
    )
    search_parser.add_argument("--limit", type=at_least(1), default=50, help="at most this many photos listed")
    search_parser.add_argument(
        "--copy-to", type=Path, help="copy the photos of the number into this folder (never overwriting a file there)"
    )
    search_parser.add_argument("--copy-near", action="store_true",
                               help="also copy the near matches (\"maybe you\"), which are not copied otherwise")  # fmt: skip
    search_parser.set_defaults(handler=search)

    export_parser = commands.add_parser("export", parents=[common],
                                        help="write the index as JSON or CSV, or a person's corrections")  # fmt: skip
    export_parser.add_argument("--index", type=Path, required=True)
    export_parser.add_argument("--format", choices=["json", "csv", "corrections"], default="json",
                               help="json: numbers per photo; csv: one row per number, with how it was decided;"
                                    " corrections: what people corrected, beside the machine's reads")  # fmt: skip
    export_parser.add_argument("-o", "--output", type=Path, help="file to write (default: standard output)")
    export_parser.set_defaults(handler=export)

    serve_parser = commands.add_parser("serve", parents=[common], help="a local web page to search the photos")
    serve_parser.add_argument("--index", type=Path, required=True)
    serve_parser.add_argument("--photos", type=Path, help="the photo folder (default: the one the index was made of)")
    serve_parser.add_argument("--host", default="127.0.0.1")
    serve_parser.add_argument("--port", type=at_least(0), default=8000)
    serve_parser.add_argument(
        "--allow-host",
        action="append",
        default=[],
        metavar="NAME",
        help="a host name the page may be reached by besides IP addresses and localhost "
        "(repeatable; other Host headers are refused against DNS rebinding)",
    )
    serve_parser.add_argument("--selfie-search", action="store_true",
                              help="let runners find their photos by uploading a photo of their face (off unless"
                                   " asked: held in memory only, never stored; some organisers refuse it)")  # fmt: skip
    serve_parser.add_argument("--review-password", metavar="PASSWORD",
                              help="open the review page (/review) to whoever gives this password (also from"
                                   " $JERSEYNUM_REVIEW_PASSWORD); runners' search needs none")  # fmt: skip
    serve_parser.set_defaults(handler=serve)

    video_parser = commands.add_parser(
        "video", parents=[progress], help="track the people of a video and read each one's number"
    )
    video_parser.add_argument("video", help="video file (or stream URL)")
    video_parser.add_argument(
        "-o",
        "--output",
        type=Path,
        default=Path("video.json"),
        help="result JSON: per track its frames, boxes and number (default: video.json)",
    )
    video_parser.add_argument("--mode", choices=["jersey", "bib"], default="jersey")
    video_parser.add_argument(
        "--detector",
        choices=["person", "motion", "faces"],  # video.tracking.DETECTORS, named here so `--help` imports no model
        default="person",
        help="person: a person detector, any camera (default); motion: moving blobs, fixed camera only; faces:"
        " people facing the camera",
    )
    video_parser.add_argument(
        "--save-tracklets",
        type=Path,
        metavar="DIR",
        help="write each track's crops as DIR/<track>/<frame>.jpg (inference.py reads it)",
    )
    video_parser.add_argument(
        "--read-every",
        type=at_least(1),
        default=5,
        metavar="N",
        help="read a track at most every N frames (default 5: neighbouring frames show nearly the same crop)",
    )
    video_parser.set_defaults(handler=video)

    train_parser = commands.add_parser(
        "train-recognizer", parents=[progress], help="train the digit recognizer on the shared data plus rendered crops"
    )
    train_parser.add_argument(
        "--data", type=Path, default=DEFAULT_DATA, help=f"the shared data folder (default: {DEFAULT_DATA})"
    )
    train_parser.add_argument(
        "--out", type=Path, default=DEFAULT_WEIGHTS, help=f"checkpoint to write (default: {DEFAULT_WEIGHTS})"
    )
    train_parser.add_argument("--arch", default="easyocr_g2", help="easyocr_g2 (shipped) | crnn_small | crnn_tiny")
    train_parser.add_argument(
        "--epochs",
        type=at_least(1),
        nargs="+",
        default=[8, 12],
        help="epochs of one run; several values: one run each, their weights averaged "
        "(a model soup; the shipped model averages 8 and 12)",
    )
    train_parser.add_argument(
        "--work",
        type=Path,
        default=REPO / ".cache" / "train-recognizer",
        help="where a soup keeps its runs (a finished one is reused)",
    )
    train_parser.add_argument("--synthetic", type=at_least(0), default=10000, help="rendered crops added to the real ones")
    train_parser.add_argument("--lr", type=float, default=5e-4, help="peak learning rate (one-cycle schedule)")
    train_parser.add_argument("--seed", type=int, default=0)
    train_parser.add_argument("--device", default="cpu", help="cpu or cuda")
    train_parser.add_argument(
        "--start", type=Path, help="continue from this recognizer checkpoint instead of EasyOCR's pretrained weights"
    )
    train_parser.add_argument(
        "--tilt", type=float, default=8.0, help="a quarter of the rotated training crops lean up to this many degrees"
    )
    train_parser.add_argument(
        "--tilt-sources", nargs="+", metavar="SET", help="lean only these sets' crops beyond 8 degrees (e.g. basketball)"
    )
    train_parser.set_defaults(handler=train_recognizer)

    legibility_parser = commands.add_parser(
        "train-legibility", parents=[progress], help="train the legibility classifier from EasyOCR pseudo-labels"
    )
    legibility_parser.add_argument(
        "--crops", type=Path, nargs="+", help="folders of crops or tracklets (default: the shared data's recipe)"
    )
    legibility_parser.add_argument(
        "--torso", action="store_true", help="cut each image of --crops to its torso with the pipeline's pose + torso"
    )
    legibility_parser.add_argument(
        "--data",
        type=Path,
        default=DEFAULT_DATA,
        help=f"the shared data folder, used without --crops (default: {DEFAULT_DATA})",
    )
    legibility_parser.add_argument(
        "--out",
        type=Path,
        default=DEFAULT_LEGIBILITY_CHECKPOINT,
        help=f"checkpoint to write, its ONNX export beside (default: {DEFAULT_LEGIBILITY_CHECKPOINT})",
    )
    legibility_parser.add_argument(
        "--work",
        type=Path,
        default=REPO / ".cache" / "train-legibility",
        help="where the pseudo-labelling readings are cached (a rerun reuses them)",
    )
    legibility_parser.add_argument(
        "--mode",
        choices=["jersey", "bib"],
        default="jersey",
        help="which numbers count as plausible for the pseudo-labels",
    )
    legibility_parser.add_argument(
        "--legible-min",
        type=float,
        default=0.5,
        help="EasyOCR confidence from which a read number makes a crop legible",
    )
    legibility_parser.add_argument(
        "--illegible-max", type=float, default=0.1, help="EasyOCR confidence under which a crop is illegible"
    )
    legibility_parser.add_argument(
        "--agreement",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="pseudo-labels also need our text stage (rapidocr + crnn) to agree",
    )
    legibility_parser.add_argument("--rounds", type=at_least(1), default=1, help="2 or more: self-training rounds")
    legibility_parser.add_argument("--known", nargs="*", metavar="KIND",
                                   help="material labelled by construction, beside the pseudo-labels (with --data): "
                                        "degraded, runners, lines, letters (default: all; none given: pseudo-labels "
                                        "only; training/known_legibility.py)")  # fmt: skip
    legibility_parser.add_argument("--arch", default="resnet_nano", help="resnet_nano (shipped) | resnet10t | resnet18")
    legibility_parser.add_argument("--epochs", type=at_least(1), default=12)
    legibility_parser.add_argument("--seed", type=int, default=0)
    legibility_parser.add_argument("--device", default="cpu", help="cpu or cuda")
    legibility_parser.set_defaults(handler=train_legibility)
    return parser


def _open_index(path: Path) -> PhotoIndex:
    """The index, read-only: search, export and serve never write it (it may be on a read-only mount)."""
    from jerseynum.photos.index import PhotoIndex

    _require_index(path)
    return PhotoIndex(path, read_only=True)


def _require_index(path: Path) -> None:
    """Raise, with how to make one, where there is no index at `path`: `main` says it in one line, exit status 2."""
    from jerseynum.photos.index import IndexFileError

    if not path.is_file():
        raise IndexFileError(f"no index at {path}: create it with `jerseynum tag PHOTOS --index {path}`")


def _writable(path: Path) -> bool:
    """Whether `path` can be written, said before any work starts (not after hours of it)."""
    try:
        check_writable(path)
        return True
    except OSError as error:
        log.error("cannot write %s: %s", path, error.strerror or error)
        return False


def tag(args: argparse.Namespace) -> int:
    from jerseynum.distributed import RayClusterError
    from jerseynum.photos.index import IndexFullError
    from jerseynum.photos.runners import RunnerSettings
    from jerseynum.photos.tagger import tag_folder

    if not args.photos.is_dir():
        log.error("not a folder: %s", args.photos)
        return 2
    entrants = None
    if args.start_list:
        from jerseynum.photos.startlist import StartListError, read_start_list

        try:  # checked before any photo is read, not after hours of it
            entrants = read_start_list(args.start_list)
        except StartListError as error:
            log.error("%s", error)
            return 2
    started = time.monotonic()
    try:
        report = tag_folder(args.photos, args.index, workers=args.workers, progress=not args.quiet,
                            max_pixels=args.max_pixels, entrants=entrants, ray=args.ray,
                            shared_files=args.ray_shared_files, relocate=args.relocate,
                            anchors=RunnerSettings(bodies=not args.faces_only))  # fmt: skip
    except KeyboardInterrupt:
        print(f"interrupted: every photo tagged so far is saved in {args.index}; run the same command to resume")
        return 130
    except IndexFullError as error:
        log.error("%s; %s; free some space and run the same command to resume", error, _saved(args.index))
        return 1
    except BrokenProcessPool:
        log.error("a worker process died (out of memory?); %s; run the same command to resume", _saved(args.index))
        return 1
    except RayClusterError as error:  # no cluster, or no worker left
        log.error("%s; %s", error, _saved(args.index))
        return 1
    elapsed = time.monotonic() - started
    with _open_index(args.index) as index:
        total = len(index)
    timing = f", median {statistics.median(report.seconds):.2f} s per photo" if report.seconds else ""
    moved = f" ({report.moved} moved or renamed)" if report.moved else ""
    print(
        f"{counted(report.photos, 'photo')}: {report.tagged} tagged ({counted(report.runners, 'runner')},"
        f" {report.unreadable} unreadable), {report.unchanged} unchanged{moved}, {report.removed} gone from the"
        f" folder, {counted(len(report.skipped), 'other file')} skipped{timing}; {total} in {args.index};"
        f" {elapsed:.1f} s in all"
        + (f", {60 * report.tagged / elapsed:.0f} photos per minute" if report.tagged and elapsed > 0 else "")
    )
    for what, files in (("unreadable", report.errors), ("skipped", report.skipped)):
        for path, reason in list(files.items())[:MAX_LISTED]:
            print(f"  {what}: {path}: {reason}")
        if len(files) > MAX_LISTED:
            print(f"  ... and {len(files) - MAX_LISTED} more {what} files")
    print(describe_event(report.event))
    return write_metadata(args) if args.write_metadata else 0


def review(args: argparse.Namespace) -> int:
    """What a person should look at: shown numbers least likely right first, the reads the machine hid that a
    person may show (likeliest first), then photos with unread runners."""
    with _open_index(args.index) as index:
        root = index.photos_root
        found = index.review(args.below)
    print(f"{counted(len(found.uncertain), 'number')} less likely right than {args.below:.0%}, least likely first:")
    for record, number in found.uncertain[: args.limit]:
        print(f"  {number.confidence:.2f} {number.number:>8} ({number.status})  {root / record.path}")
    if found.hidden:
        print(f"{counted(len(found.hidden), 'read')} hidden, likeliest first (confirm one to show it):")
        for record, number in found.hidden[: args.limit]:
            print(f"  {number.confidence:.2f} {number.number:>8} ({number.status})  {root / record.path}  "
                  f"({number.reason})")  # fmt: skip
    print(f"{counted(len(found.unread), 'photo')} with runners found but no number read:")
    for record, count in found.unread[: args.limit]:
        print(f"  {counted(count, 'runner')}  {root / record.path}")
    print(f"correct with: jerseynum correct PHOTO --index {args.index} --confirm N | --add N | --remove N")
    return 0


def correct(args: argparse.Namespace) -> int:
    from jerseynum.photos.event import redecide
    from jerseynum.photos.index import PhotoIndex, bib_digits

    said = [(bib_digits(n), action) for action in ("confirm", "add", "remove") for n in getattr(args, action)]
    if not said or not all(number for number, _ in said):
        log.error("say what to correct: --confirm N, --add N or --remove N, each a number with digits")
        return 2
    if contradicted := sorted({n for n, a in said if a == "remove"} & {n for n, a in said if a != "remove"}):
        log.error("%s is both kept and removed: say one", ", ".join(contradicted))
        return 2
    _require_index(args.index)
    with PhotoIndex(args.index) as index:
        path = _indexed_path(index, args.photo)
        if path not in index.known():
            log.error("%s is not a photo of %s", args.photo, args.index)
            return 2
        for number, action in said:
            index.correct(path, number, action)
        redecide(index)
        record = index.photo_at(path)
    numbers = ", ".join(f"{n.number} ({n.status})" for n in record.numbers) or "none"
    print(f"{path}: {counted(len(said), 'correction')} saved; its numbers now: {numbers}")
    return 0


def write_metadata(args: argparse.Namespace) -> int:
    from jerseynum.photos.metadata import MetadataError, write_index_metadata

    mode = args.write_metadata if args.command == "tag" else args.mode
    _require_index(args.index)
    try:
        report = write_index_metadata(args.index, mode, progress=not args.quiet)
    except MetadataError as error:
        log.error("%s", error)
        return 2
    where = "into the photos" if mode == "keywords" else "into XMP sidecars"
    withdrawn = (f"; {counted(report.withdrawn, 'keyword')} of numbers no longer shown taken out of"
                 f" {counted(report.withdrawn_photos, 'photo')}" if report.withdrawn else "")  # fmt: skip
    print(f"keywords {where}: {report.written} of {counted(report.photos, 'photo')} with numbers gained"
          f" {counted(report.keywords, 'keyword')}, {report.unchanged} had them all, {len(report.failed)} failed"
          f"{withdrawn}")  # fmt: skip
    for path, reason in report.failed.items():
        log.error("%s: %s", path, reason)
    return 1 if report.failed else 0


MAX_LISTED = 20  # files named per kind in a run's summary


def describe_event(report: EventReport) -> str:
    """One line on the whole event's decisions (pass 2)."""
    statuses = ", ".join(f"{count} {status}" for status, count in report.statuses.most_common()) or "no numbers"
    rejected = report.statuses.get("rejected", 0)
    hint = f" ({rejected} not on the start list: `jerseynum review` lists them)" if rejected else ""
    return (
        f"event decided in {report.seconds:.1f} s: {counted(report.runners, 'runner')}, {report.clusters} seen in several"
        f" photos; numbers: {statuses}{hint}"
    )


def start_list(args: argparse.Namespace) -> int:
    from jerseynum.photos.event import redecide
    from jerseynum.photos.index import PhotoIndex
    from jerseynum.photos.startlist import StartListError, read_start_list

    if (args.csv is None) == (not args.clear):
        log.error("give either the start list's CSV or --clear")
        return 2
    _require_index(args.index)
    try:
        entrants = [] if args.clear else read_start_list(args.csv)
    except StartListError as error:
        log.error("%s", error)
        return 2
    with PhotoIndex(args.index) as index:
        index.set_entrants(entrants)
        report = redecide(index)
    print(f"{args.index} has no start list now" if args.clear else
          f"{counted(len(entrants), 'entrant')} on the start list of {args.index}")  # fmt: skip
    print(describe_event(report))
    return 0


def _saved(index_path: Path) -> str:
    """What an index holds after a failed run, for the one-line error."""
    from jerseynum.photos.index import IndexFileError

    try:
        with _open_index(index_path) as index:
            return f"{counted(len(index), 'photo is', 'photos are')} saved in it, each whole"
    except (IndexFileError, OSError, SystemExit):  # the message must come out even where the index cannot open
        return "every photo committed before is saved in it"


def search(args: argparse.Namespace) -> int:
    from jerseynum.photos.index import bib_digits, exact_and_near

    if sum(bool(query) for query in (args.number, args.name, args.same_runner)) != 1:
        log.error("search for one of: a bib number, --name NAME, --same-runner PHOTO")
        return 2
    if args.name:
        return search_name(args)
    if args.same_runner:
        return search_same_runner(args)
    digits = bib_digits(args.number)
    if not digits:
        log.error("a bib number has digits: %r has none", args.number)
        return 2
    if args.copy_to and args.copy_to.exists() and not args.copy_to.is_dir():
        log.error("--copy-to %s is a file: give a folder (it is made if missing)", args.copy_to)
        return 2
    with _open_index(args.index) as index:
        root = index.photos_root
        found = index.search(digits, partial=not args.exact, max_distance=0 if args.exact else args.fuzzy)
    exact, near = exact_and_near(found)  # near ones are copied only when asked
    matches = exact[: args.limit]
    for match in matches:
        print(_match_line(match, root))
    more = f" (of {len(exact)}: --limit {args.limit})" if len(exact) > len(matches) else ""
    print(f"{counted(len(matches), 'photo')} for {digits}{more}")
    if near:
        uncopied = " (not copied: --copy-near copies them)" if args.copy_to and not args.copy_near else ""
        print(f"maybe you: {counted(len(near), 'photo')} of near numbers{uncopied}")
        for match in near[: args.limit]:
            print(_match_line(match, root))
        if len(near) > args.limit:
            print(f"  ... and {len(near) - args.limit} more (--limit {args.limit})")
    if args.copy_near:
        matches = matches + near[: args.limit]
    if args.copy_to and matches:
        copied = {"copied": 0, "renamed": 0, "already there": 0, "failed": 0}
        for match in matches:
            # the relative path flattened, so photos of the same name in different folders do not collide
            flat_name = match.photo.path.replace("/", "__")
            try:
                outcome, target = copy_new_file(root / match.photo.path, args.copy_to / flat_name)
            except OSError as error:
                log.error("cannot copy %s: %s", match.photo.path, error.strerror or error)
                copied["failed"] += 1
                continue
            copied[outcome] += 1
            if outcome == "renamed":
                print(f"{match.photo.path}: another file of that name is in {args.copy_to}; copied as {target.name}")
        print(f"{args.copy_to}: " + ", ".join(f"{n} {what}" for what, n in copied.items() if n))
        if copied["failed"]:
            return 2
    return 0 if exact else 1


def _match_line(match, root: Path) -> str:
    """One search result: how it matched, the number, its probability, the photo, and how it was decided."""
    number = match.number
    how = f"  ({number.how})" if number.how else ""
    return f"{match.kind:7} {number.number:>8} {number.confidence:.2f}  {root / match.photo.path}{how}"


def search_name(args: argparse.Namespace) -> int:
    """The photos of the entrants whose name matches, by their listed bib."""
    with _open_index(args.index) as index:
        root, listed = index.photos_root, index.start_list()
        if listed is None:
            log.error("%s has no start list: give one with `jerseynum start-list --index %s runners.csv`",
                      args.index, args.index)  # fmt: skip
            return 2
        entrants = listed.find_name(args.name)
        found = [(entrant, index.search(entrant.bib, partial=False, max_distance=0)) for entrant in entrants]
    for entrant, matches in found:
        category = f", {entrant.category}" if entrant.category else ""
        print(f"{entrant.name} (bib {entrant.bib}{category}): {counted(len(matches), 'photo')}")
        for match in matches[: args.limit]:
            print(f"  {match.number.confidence:.2f}  {root / match.photo.path}")
    if not found:
        print(f"no entrant's name matches {args.name!r}")
    return 0 if any(matches for _, matches in found) else 1


def _indexed_path(index: PhotoIndex, photo: str) -> str:
    """The index's name of a photo given as the commands print it (a path on this machine, absolute or from
    here) or as the index stores it (its path in the photo folder)."""
    given, root = Path(photo), index.photos_root
    if root is not None and (given.is_absolute() or given.exists()):
        # Its folder resolved (the index stores the folder's real path), not the file: a photo that is a link
        # is known by its own name in the folder, not by its target's.
        in_folder = given.absolute().parent.resolve() / given.name
        if in_folder.is_relative_to(root):
            return in_folder.relative_to(root).as_posix()
        resolved = given.resolve()
        return resolved.relative_to(root).as_posix() if resolved.is_relative_to(root) else str(resolved)
    return given.as_posix()


def search_same_runner(args: argparse.Namespace) -> int:
    """Every other photo of the people in one photo, by their identity clusters."""
    with _open_index(args.index) as index:
        root = index.photos_root
        relative = _indexed_path(index, args.same_runner)
        if relative not in index.known():
            log.error("%s is not a photo of %s", args.same_runner, args.index)
            return 2
        runners = index.same_runner(relative)
    for k, (runner_id, photos) in enumerate(runners, 1):
        print(f"runner {k} of {relative}: {counted(len(photos), 'other photo')} of the same person")
        for record in photos[: args.limit]:
            numbers = " ".join(n.number for n in record.numbers)
            print(f"  {root / record.path}  {numbers}")
    if not runners:
        print(f"no runner was found in {relative}")
    return 0 if any(photos for _, photos in runners) else 1


def export(args: argparse.Namespace) -> int:
    from jerseynum.photos.index import COMPANION_SUFFIXES

    index = args.index.resolve()
    if args.output and args.output.resolve() in {index.with_name(index.name + suffix)
                                                 for suffix in ("", *COMPANION_SUFFIXES)}:  # fmt: skip
        log.error("-o %s is the index itself: give another file", args.output)
        return 2
    if args.output and not _writable(args.output):
        return 2
    with _open_index(args.index) as index:
        text = index.export(args.format)
    if args.output:
        try:
            write_text_atomic(args.output, text)
        except OSError as error:  # a full disk: the old file, if any, is untouched and no partial one is left
            log.error("cannot write %s: %s; nothing was written", args.output, error.strerror or error)
            return 1
    else:
        sys.stdout.write(text)
    return 0


def serve(args: argparse.Namespace) -> int:
    from jerseynum.web.server import serve_forever

    with _open_index(args.index) as index:
        photos = args.photos or index.photos_root
    if photos is None or not Path(photos).is_dir():
        log.error("photo folder not found: %s (pass --photos)", photos)
        return 2
    if args.host not in ("127.0.0.1", "localhost", "::1"):
        print(f"serving on {args.host}: anyone who can reach this machine on port {args.port} can search the photos"
              f" of {photos} and download them (the page has no password); --host 127.0.0.1 keeps it to this machine")  # fmt: skip
    try:
        password = args.review_password or os.environ.get("JERSEYNUM_REVIEW_PASSWORD")
        serve_forever(args.index, Path(photos), args.host, args.port, tuple(args.allow_host), args.selfie_search,
                      password)  # fmt: skip
    except OSError as error:  # the port is taken, or the address is not this machine's
        log.error("cannot serve on %s:%d: %s", args.host, args.port, error.strerror or error)
        return 2
    return 0


def video(args: argparse.Namespace) -> int:
    from jerseynum.video.tracking import read_video

    if args.save_tracklets and args.save_tracklets.exists() and (
        not args.save_tracklets.is_dir() or any(args.save_tracklets.iterdir())
    ):  # the crops of this run's tracks would mix with an earlier run's under the same track ids
        what = "is not empty" if args.save_tracklets.is_dir() else "is a file"
        log.error("--save-tracklets %s %s: give a new or empty folder", args.save_tracklets, what)
        return 2
    if not _writable(args.output) or (args.save_tracklets and not _writable(args.save_tracklets / "check")):
        return 2
    try:
        result = read_video(args.video, PipelineConfig(mode=args.mode), args.detector, args.save_tracklets,
                            progress=not args.quiet, read_every=args.read_every)  # fmt: skip
    except (VideoError, OSError) as error:  # OSError: a tracklet crop that cannot be saved (a full disk)
        log.error("%s", error)
        return 2
    try:
        write_json_atomic(args.output, result)
        written = f" -> {args.output}"
    except OSError as error:  # a full disk: no partial file is left, and the numbers read are still shown below
        log.error("cannot write %s: %s; nothing was written", args.output, error.strerror or error)
        written = ""
    print(f"{counted(result['frames'], 'frame')} at {result['fps']:.1f} FPS: {counted(len(result['tracks']), 'track')},"
          f" {counted(len(result['people']), 'number')}{written}")  # fmt: skip
    for person in result["people"]:
        print(f"  number {person['number']}: frames {person['first_frame']}-{person['last_frame']},"
              f" tracks {person['tracks']}")  # fmt: skip
    if result["warning"]:  # a video cut short: what was read is written, and the exit status says it is partial
        log.warning("%s", result["warning"])
    return 1 if result["warning"] or not written else 0


def train_recognizer(args: argparse.Namespace) -> int:
    from jerseynum.training.train_recognizer import check_options, train, train_soup

    try:  # every mistake found before minutes of loading and rendering
        if not args.data.is_dir():
            raise FileNotFoundError(f"data folder not found: {args.data} (pass --data)")
        check_options(args.arch, args.device, args.start, args.tilt_sources)
        check_writable(args.out)
        if len(args.epochs) > 1:
            check_writable(args.work / "runs")
    except (OSError, ValueError) as error:
        log.error("%s", error)
        return 2
    options = {"arch": args.arch, "synthetic": args.synthetic, "learning_rate": args.lr, "seed": args.seed,
               "device": args.device, "progress": not args.quiet, "start": args.start, "tilt": args.tilt,
               "tilt_sources": tuple(args.tilt_sources) if args.tilt_sources else None}  # fmt: skip
    try:
        if len(args.epochs) == 1:
            report = train(args.data, args.out, epochs=args.epochs[0], **options)
            print(json.dumps({k: report[k] for k in ("best_epoch", "validation", "minutes")}, indent=1))
        else:
            meta = train_soup(args.data, args.out, args.epochs, args.work, **options)
            runs = [{k: run[k] for k in ("epochs", "best_epoch", "validation", "minutes")} for run in meta["soup"]]
            print(json.dumps({"averaged": runs, "minutes": meta["minutes"]}, indent=1))
    except FileNotFoundError as error:  # a data folder without one of the training sets
        log.error("%s", error)
        return 2
    return 0


def train_legibility(args: argparse.Namespace) -> int:
    from jerseynum.stages.legibility import build_classifier, export_onnx
    from jerseynum.training import check_device
    from jerseynum.training.known_legibility import KINDS as KNOWN_KINDS
    from jerseynum.training.known_legibility import known_crops
    from jerseynum.training.train_legibility import LabelRule, folder_crops, shared_crops, train
    from jerseynum.types import Mode

    try:
        if args.out.suffix == ".onnx":  # the checkpoint's ONNX export is written beside it, as OUT.onnx
            raise ValueError(f"--out names the torch checkpoint (.pt), not its ONNX export: {args.out}")
        build_classifier(args.arch)  # an unknown architecture: one line naming the known ones, before any reading
        check_device(args.device)
        check_writable(args.out)
        if args.crops:
            crops = folder_crops(args.crops, torso=args.torso, mode=Mode(args.mode), progress=not args.quiet)
        elif args.data.is_dir():
            crops = shared_crops(args.data)
            kinds = KNOWN_KINDS if args.known is None else tuple(args.known)
            crops += known_crops(args.data, kinds, crops, work=args.work, progress=not args.quiet)
        else:
            log.error("data folder not found: %s (pass --data or --crops)", args.data)
            return 2
        rule = LabelRule(args.legible_min, args.illegible_max, args.agreement)
        report = train(crops, args.out, args.work, Mode(args.mode), rule, args.arch, args.rounds, args.epochs,
                       seed=args.seed, device=args.device, progress=not args.quiet)  # fmt: skip
    except (OSError, ValueError) as error:
        log.error("%s", error)
        return 2
    export_onnx(args.out, args.out.with_suffix(".onnx"))  # what the pipeline runs
    print(json.dumps([{k: v for k, v in r.items() if k != "history"} for r in report["rounds"]], indent=1))
    return 0


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt  # SIGTERM (timeout, systemd, kill) ends a run the way Ctrl-C does: cleanly


def main(argv: list[str] | None = None) -> int:
    from tqdm.contrib.logging import logging_redirect_tqdm

    from jerseynum.photos.index import IndexFileError, StaleReadsError

    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(levelname)s %(name)s: %(message)s")  # fmt: skip
    in_main_thread = threading.current_thread() is threading.main_thread()  # only it may set signal handlers
    previous_handler = signal.signal(signal.SIGTERM, _interrupt) if in_main_thread else None
    try:
        with logging_redirect_tqdm():  # a warning mid-run goes above the progress bar, not into its line
            return args.handler(args)
    except KeyboardInterrupt:  # a command with nothing to save; `tag` says what it saved itself
        log.error("interrupted")
        return 130
    except BrokenProcessPool:  # `tag` says what it saved itself
        log.error("a worker process died (out of memory?); nothing was written")
        return 1
    except IndexFileError as error:  # not an index, another folder's, or a full disk: one line, no traceback
        log.error("%s", error)
        return 2
    except StaleReadsError as error:  # `correct` or `start-list` beside a `tag` run that keeps saving photos
        log.warning("%s; what this command saved is kept, and the end of that run decides the event with it", error)
        return 0
    except BrokenPipeError:  # output piped into `head` and the like: stop quietly
        sys.stderr.close()
        return 0
    finally:
        if in_main_thread:
            signal.signal(signal.SIGTERM, previous_handler)


if __name__ == "__main__":
    sys.exit(main())
