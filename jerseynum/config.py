"""One dataclass of settings for the whole pipeline; every default is documented where it was chosen."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from jerseynum.io import DEFAULT_MAX_PIXELS
from jerseynum.stages.torso import BIB_TORSO, TorsoSettings
from jerseynum.stages.vote import BIB_VOTE, VoteSettings
from jerseynum.types import Mode
from jerseynum.weights import LEGIBILITY_WEIGHTS


@dataclass
class PipelineConfig:
    mode: Mode = Mode.JERSEY  # jersey: numbers 0-99 and 00; bib: 2 to 6 digits, leading zeros kept
    # mediapipe | mmpose | none; default: mediapipe for jerseys, none for bibs. On the RBNR runner crops the
    # pose-cut region read 0.915 of bibs and the whole crop 0.927 (pose finds the wrong runner, bibs hang below
    # the hips), so bib mode searches the whole runner crop for text unless a pose backend is asked for.
    pose: str | None = None
    pose_options: dict = field(default_factory=dict)  # backend arguments, e.g. mmpose's config and checkpoint
    # Legibility stage: None = on for jerseys, off for bibs (docs/results.md, "Legibility"); off reads every torso crop.
    legibility: bool | None = None
    legibility_weights: Path = LEGIBILITY_WEIGHTS  # a .pt checkpoint (torch) or its .onnx export (ONNX Runtime)
    # Frames scoring below this are not read. Number-crop sets hold only legible crops, so every drop there is a
    # loss. With the shipped classifier 0.2 would take jersey runners' right -1 from 0.97 to 0.99 on the collected
    # readings, but it drops legible number crops (5 of 355 trained-half SoccerNet crops read right) and every
    # frame of the shipped sample whose 99 is printed yellow on black; 0.05 drops none of those (docs/results.md, "A -1
    # you can trust"). The text lines of what it keeps are scored again (`line_legibility`).
    legibility_threshold: float = 0.05
    # The lines the text detector finds in a large crop (>= detect_min_side) are scored by the same classifier, in
    # both modes, and the vote weighs each reading's line score with its confidence (VoteSettings): the detector
    # finds lines in belts, folds, logos and blurred bibs, and a recognizer reads digits into any of them
    # (docs/results.md, "A -1 you can trust").
    line_legibility: bool = True
    # Text engines in cascade order: rapidocr | crnn (the project's recognizer, models/digits_crnn.pt) | easyocr.
    # Default: crnn then rapidocr for jerseys, rapidocr then crnn for bibs (the surer engine on each first).
    # Alone, rapidocr and the crnn each read 0.964 of the scored genL tracklets; together, every reading voting,
    # 0.977 (docs/results.md, "Text engines"): they err on different crops.
    text: tuple[str, ...] | None = None
    # A crop read as an accepted number with at least this confidence is not read by the later engines
    # (None: all engines read every crop). At 0.95 genL, the number crops and RBNR keep their accuracy while
    # the second engine reads 10-45 % of the crops (docs/results.md, "Text engines").
    text_settle: float | None = 0.95
    text_options: dict[str, dict] = field(default_factory=dict)  # per engine, e.g. {"crnn": {"weights": path}}
    # Views of each crop the crnn reads and votes over (1-5, `crnn.crop_views`). They pay only for the crnn alone
    # on a lone crop (scored number crops: SoccerNet 0.888 -> 0.913, basketball 0.802 -> 0.822); in the default
    # cascade a split view vote hands more crops to RapidOCR (SoccerNet 0.906 -> 0.888), and a tracklet, whose
    # frames are views already, gains nothing: genL 0.973 either way at 3.6x the time (docs/results.md, "Text engines").
    crnn_views: int = 1
    # A crop searched for text lines is scaled to this long side for the line detector. None: 640 for bibs, whose
    # small print among sponsor text needs it, 320 for jerseys, whose number is the torso's largest print (real
    # SoccerNet digits in torso-sized crops: 0.783 read at 320 px, 0.664 at 640, in a quarter of the time;
    # benchmarks/detector_side.py).
    det_side: int | None = None
    # ... and searched again at these sides in turn while no number was read with confidence >= 0.95 ((): never;
    # None: 480 then 800 for bibs, 400 for jerseys). On RBNR the detector misses some bibs at 640 px that it
    # finds at 800 or 960 (+2 runners, 5 % retried), and on the smallest crops (under 160 px, upscaled 4x and
    # more at 640) blurs a bib into its sponsor print where it finds the number's line at 480 (+1 runner).
    det_retry_sides: tuple[int, ...] | None = None
    # The text-line detector (stages/text.py LINE_DETECTORS) of the first search (None: v6 small for jerseys, v6
    # small in int8 for bibs), and of the retries (None: v6 small for jerseys; PP-OCRv4 mobile for bibs). On the
    # race photos, v4 mobile's retries in a third of the time found more bibs than v6's (RBNR box-matched recall
    # 0.921 -> 0.927, precision 0.970 either way; misc F1 0.897 either way; time per photo against plain RapidOCR
    # 1.13x -> 0.80x), and as the first search it made more confident misreads (precision 0.958); v6 in int8 is
    # a fifth of v6's time for the same reads; docs/results.md, "Race photos: speed". Jersey mode keeps float v6.
    det_model: str | None = None
    det_retry_model: str | None = None
    # RapidOCR reads the line of each region's likeliest number a second time, cut with this many line heights
    # more at each end (about a digit's width), and takes that reading where it is the line's number with a digit
    # more at an end, read surely (`text.with_edge_digits`): the detector's box leaves out a digit that a fold or
    # the bib's shadow half hides (1104 of 11040, 119 of 11191). None: 0.5 for bibs (RBNR box-matched without a
    # list 167 right and 4 wrong -> 169 and 2, misc the same, 13 % more time on its crowds; 0.3 and 0.7 alike,
    # 0.2 gains nothing; docs/results.md, "Session 32"); 0 for jerseys, not measured there.
    line_margin: float | None = None
    # Torso crops at least this big are searched for text lines; smaller ones are read whole as one line
    # (SoccerNet number crops are ~20-30 px; a runner's bib region is over 100 px).
    detect_min_side: int = 48
    device: str = "cpu"
    # Threads of each model (0: each library's choice, all cores). Race-photo tagging runs one pipeline per core
    # in worker processes, each with 1 thread, rather than one pipeline whose models share the cores.
    threads: int = 0
    max_frames: int = 64  # frames sampled evenly from a longer tracklet
    max_pixels: int = DEFAULT_MAX_PIXELS  # an image over this is decoded reduced (JPEG) or refused (io.decode_image)
    batch_size: int = 16  # frames decoded, posed and scored for legibility together
    first_batch: int = 8  # ... except the first batch, so a clear tracklet does not pose 16 frames to read 4
    # Stop once this many frames (spread over the tracklet by the sampling order) were scored and none was
    # legible: the answer is -1 either way, and the rest would cost pose and legibility for nothing. None: never.
    illegible_stop: int | None = 24
    read_chunk: int = 4  # frames read together, most legible first; the vote is checked for an early stop after each
    early_stop: bool = True
    torso: TorsoSettings | None = None  # default: TorsoSettings() for jerseys, BIB_TORSO for bibs
    vote: VoteSettings | None = None  # default: VoteSettings() for jerseys, BIB_VOTE for bibs

    def __post_init__(self) -> None:
        self.mode = Mode(self.mode)
        if self.text is None:
            self.text = ("crnn", "rapidocr") if self.mode is Mode.JERSEY else ("rapidocr", "crnn")
        self.text = (self.text,) if isinstance(self.text, str) else tuple(self.text)
        if self.det_side is None:
            self.det_side = 320 if self.mode is Mode.JERSEY else 640
        if self.det_retry_sides is None:
            self.det_retry_sides = (400,) if self.mode is Mode.JERSEY else (480, 800)
        self.det_retry_sides = tuple(self.det_retry_sides)
        if self.det_model is None:
            self.det_model = "ppocr-v6-small" if self.mode is Mode.JERSEY else "ppocr-v6-small-int8"
        if self.det_retry_model is None:
            self.det_retry_model = "ppocr-v6-small" if self.mode is Mode.JERSEY else "ppocr-v4-mobile"
        if self.line_margin is None:
            self.line_margin = 0.0 if self.mode is Mode.JERSEY else 0.5
        if self.pose is None:
            self.pose = "mediapipe" if self.mode is Mode.JERSEY else "none"
        if self.legibility is None:
            self.legibility = self.mode is Mode.JERSEY
        if self.torso is None:
            self.torso = TorsoSettings() if self.mode is Mode.JERSEY else BIB_TORSO
        if self.vote is None:
            self.vote = VoteSettings() if self.mode is Mode.JERSEY else BIB_VOTE
        if min(self.max_frames, self.batch_size, self.first_batch, self.read_chunk) < 1:
            raise ValueError("max_frames, batch_size, first_batch and read_chunk must be at least 1")

    @property
    def uses_legibility_classifier(self) -> bool:
        """Whether the legibility classifier is loaded: to filter torso crops, to score text lines, or both."""
        return bool(self.legibility or self.line_legibility)

    def engine_options(self) -> dict[str, dict]:
        """`text_options` with `crnn_views` given to the crnn (an explicit "views" in `text_options` wins)."""
        return {**self.text_options, "crnn": {"views": self.crnn_views, **self.text_options.get("crnn", {})}}
