"""Video: people detected in each frame, tracked across frames, and each track's number read online.

Detection:
- `person` (default): the person detector of `jerseynum.detect` (SSDLite, ONNX): any camera, people seen from
  any side. It does not find drawn people, so the rendered demo clip uses `motion`.
- `motion`: OpenCV's MOG2 background subtractor, foreground blobs of person shape. For a fixed camera only: a
  pan or a zoom moves the whole background.
- `faces`: mediapipe's full-range face detector (Apache-2.0 weights in its wheel), the body box hung below each
  face as in race photos (`photos/runners.py`). For people facing the camera; the camera may move.
Tracking: ByteTrack's association with the camera's motion compensated (`video/bytetrack.py`).
Reading: every track is a growing tracklet, read one crop at a time, most starved first: all of them each detected
frame, for as long as they are in view (`jerseynum video`), or one at a time beside the frames (the live demo,
`VideoReader`'s `background`), where a track whose vote is settled is not read again. The number shown is the
track's vote over everything read so far, so it appears as evidence arrives. A track whose reads show one number
and then another was passed on to a second person, and is cut in two (`VideoReader._second_person`).
"""

from __future__ import annotations

import os
import time
from concurrent.futures import Future
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Protocol

import cv2
import numpy as np

from jerseynum.config import PipelineConfig
from jerseynum.io import VideoError, VideoSource
from jerseynum.parallel import WorkerProcess
from jerseynum.pipeline import Pipeline, build_pipeline
from jerseynum.stages.vote import Vote, part_of
from jerseynum.types import NO_NUMBER, Box, Frame, Keypoints, Mode, PersonBox, Prediction, Reading, Tracklet
from jerseynum.video.bytetrack import ByteTracker, CameraMotion


class PersonDetector(Protocol):
    def detect(self, frame: np.ndarray) -> list[PersonBox]:
        """The people in a BGR frame, with the detector's score (1 where it has none)."""
        ...


class MotionDetector:
    """People as moving foreground blobs over a learnt background (fixed camera)."""

    def __init__(self, min_height: int = 40, min_aspect: float = 1.0, history: int = 200) -> None:
        self.min_height = min_height
        self.min_aspect = min_aspect  # height / width: people stand upright
        self._subtractor = cv2.createBackgroundSubtractorMOG2(history=history, varThreshold=32, detectShadows=False)
        self._kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (5, 5))

    def detect(self, frame: np.ndarray) -> list[PersonBox]:
        mask = self._subtractor.apply(frame)
        mask = cv2.morphologyEx(mask, cv2.MORPH_OPEN, self._kernel)
        mask = cv2.dilate(mask, self._kernel, iterations=2)  # join the pieces of one body
        count, _, stats, _ = cv2.connectedComponentsWithStats(mask)
        boxes = []
        for x, y, w, h, _ in stats[1:count]:
            if h >= self.min_height and h >= self.min_aspect * w:
                boxes.append(PersonBox((int(x), int(y), int(x + w), int(y + h)), 1.0))
        return boxes


class FaceDetector:
    """People found by their faces; the box runs from the face down to where a number is worn."""

    def __init__(self) -> None:
        from jerseynum.photos.runners import FaceRunnerFinder, RunnerSettings

        self._finder = FaceRunnerFinder(RunnerSettings(tiles=False))

    def detect(self, frame: np.ndarray) -> list[PersonBox]:
        return [PersonBox((r.region[0], r.face[1], r.region[2], r.region[3]), 1.0) for r in self._finder.find(frame)]


class BoxDetector:
    """People boxed by `jerseynum.detect`'s person detector, down to the tracker's low score (those only keep
    a track going)."""

    def __init__(self, min_score: float = ByteTracker.low_score, threads: int = 0) -> None:
        from jerseynum.detect import person_detector

        self._detector = person_detector(min_score=min_score, threads=threads)

    def detect(self, frame: np.ndarray) -> list[PersonBox]:
        return self._detector.detect([frame])[0]


DETECTORS = {"person": BoxDetector, "motion": MotionDetector, "faces": FaceDetector}
DEFAULT_DETECTOR = "person"
MIN_TRACK_FRAMES = 3
# A person whose box touches the frame's left or right edge (within this share of its width) is partly out of view,
# their bib maybe cut into a fragment, and a read of them is spent on it. They are read once wholly in view
# (moving-camera clips: recall 0.80 -> 0.88; docs/results.md); the top and bottom edges cut heads and legs, not bibs.
SIDE_MARGIN = 0.01
FIXED_CAMERA = {"motion"}  # detectors that assume the camera does not move: no motion to compensate


@dataclass
class Track:
    """One tracked person: where it was seen, and what was read of its number so far."""

    id: int
    first_frame: int
    last_frame: int
    boxes: list[tuple[int, Box]] = field(default_factory=list)  # (frame index, box)
    reads: list[tuple[int, list[Reading]]] = field(default_factory=list)  # (frame index, its crop's readings)
    frames_read: int = 0
    last_read: int = -1_000_000  # frame index of the last read
    number: int = NO_NUMBER
    confidence: float = 0.0
    settled: bool = False  # the vote cannot change any more: the track is not read again
    keypoints: Keypoints | None = None  # in the frame, from the detector where it gives them (latest frame)

    @property
    def readings(self) -> list[Reading]:
        """Every reading of the track, of all its reads."""
        return [reading for _, readings in self.reads for reading in readings]

    def as_dict(self) -> dict:
        return {"track": self.id, "first_frame": self.first_frame, "last_frame": self.last_frame,
                "number": self.number, "confidence": round(self.confidence, 4), "frames_read": self.frames_read,
                "boxes": [[frame, *box] for frame, box in self.boxes]}  # fmt: skip


class VideoReader:
    """Feed frames in order with `process`; it returns the tracks seen in that frame.

    Reading: each detected frame, every track due a read is read, there and then (`read_video`: nothing is
    skipped, however long it takes); or with `background` (the live demo), one at a time in a process of its
    own, the frames going on meanwhile: a read (~0.1-0.3 s) never holds up a frame, and a track's number
    appears a few frames after its crop was taken. Threads of one process would share its GIL: reads on a
    thread still stalled the frames (docs/results.md, "Live speed"). The process is spawned
    (`parallel.WorkerProcess`): a script using `background` keeps its own code under
    `if __name__ == "__main__":`. `close` ends it.

    With `settle` (the live demo's reading: reads are what it lacks), a track whose vote is settled is not read
    again. Without it (`read_video`), a track is read for as long as it is in view: a number the vote has settled
    on may still be a piece of a longer one that a later crop shows whole (21317 read 1317 at 1.0 in four crops,
    11317 in later ones: `Vote.longer_than`), and only further reads can show it."""

    def __init__(self, config: PipelineConfig | None = None, detector: str = DEFAULT_DETECTOR,
                 save_tracklets: Path | None = None, detect_width: int = 640, read_every: int = 1,
                 detect_every: int = 1, background: bool = False, settle: bool = True) -> None:  # fmt: skip
        if detector not in DETECTORS:
            raise ValueError(f"unknown person detector {detector!r}; choose from {sorted(DETECTORS)}")
        config = config or PipelineConfig()
        self.vote = Vote(config.mode, config.vote)
        self._reads = WorkerProcess(partial(build_pipeline, config), Pipeline.run) if background else None
        self.pipeline = None if background else Pipeline(config)
        self._pending: tuple[Track, Future] | None = None  # the background read in flight
        if detector == "person":
            # Beside the reads' process, which takes one core, the detector takes the others.
            threads = max(1, (os.cpu_count() or 2) - 1) if background else config.threads
            self.detector: PersonDetector = BoxDetector(threads=threads)
        else:
            self.detector = DETECTORS[detector]()
        self.settle = settle
        self._tracker = ByteTracker()
        self._camera = None if detector in FIXED_CAMERA else CameraMotion()
        self.read_every = read_every
        self.detect_every = detect_every
        self.detect_width = detect_width
        self._shown_boxes: list[Box] = []  # of the tracks returned by the last call
        self.save_tracklets = Path(save_tracklets) if save_tracklets else None
        self.tracks: dict[int, Track] = {}

    def process(self, frame: np.ndarray, index: int) -> list[Track]:
        height, width = frame.shape[:2]
        # Between detected frames the tracks coast on their motion (and the camera's), and nobody is read.
        detected = index % self.detect_every == 0
        if detected:
            # People are found on a copy at most `detect_width` wide (detection cost grows with the pixels; people
            # are large enough at 640 px), their boxes and keypoints scaled back to the frame.
            scale = min(1.0, self.detect_width / width)
            small = cv2.resize(frame, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA) if scale < 1 else frame
            people = [PersonBox(tuple(round(v / scale) for v in person.box), person.score,
                                person.keypoints.scaled(1 / scale) if person.keypoints and scale < 1
                                else person.keypoints)
                      for person in self.detector.detect(small)]  # fmt: skip
            boxes = [person.box for person in people]
        else:
            people, boxes = [], self._shown_boxes  # the people last shown, masked out of the camera's motion
        motion = self._camera.estimate(frame, boxes) if self._camera else None
        if detected:
            tracked_boxes = self._tracker.update(boxes, [person.score for person in people], motion)
        else:
            tracked_boxes = self._tracker.coast(motion)
        visible = []
        for tracked in tracked_boxes:
            x1, y1, x2, y2 = tracked.box
            box = (max(0, x1), max(0, y1), min(width, x2), min(height, y2))
            if box[2] - box[0] < 4 or box[3] - box[1] < 4:
                continue
            track = self.tracks.setdefault(tracked.id, Track(tracked.id, index, index))
            track.last_frame = index
            track.boxes.append((index, box))
            track.keypoints = people[tracked.detection].keypoints if detected else None
            visible.append(track)
            if self.save_tracklets and detected:
                folder = self.save_tracklets / str(track.id)
                folder.mkdir(parents=True, exist_ok=True)
                crop = folder / f"{index}.jpg"
                if not cv2.imwrite(str(crop), frame[box[1] : box[3], box[0] : box[2]]):
                    raise OSError(f"cannot write the tracklet crop {crop} (is the disk full?)")
        self._shown_boxes = [track.boxes[-1][1] for track in visible]
        if detected:
            if self._reads is not None:
                self._read_in_background(frame, visible, index)
            else:
                self._read(frame, visible, index)
        return visible

    def _waiting(self, visible: list[Track], index: int, width: int) -> list[Track]:
        """The tracks in view due a read, those read least first."""
        # A track is read once seen in MIN_TRACK_FRAMES frames: fragments (a blob's limb, a one-off false box)
        # would otherwise always come first, as the tracks read least, and starve the people.
        # A track read less than `read_every` frames ago waits: the frames in between show nearly the same crop.
        # A track at the frame's left or right edge waits until wholly in view (SIDE_MARGIN).
        margin = SIDE_MARGIN * width
        waiting = [t for t in visible if not t.settled and len(t.boxes) >= MIN_TRACK_FRAMES
                   and index - t.last_read >= self.read_every
                   and margin < t.boxes[-1][1][0] and t.boxes[-1][1][2] < width - margin]  # fmt: skip
        return sorted(waiting, key=lambda t: t.frames_read)

    @staticmethod
    def _crop(frame: np.ndarray, track: Track) -> Tracklet:
        """The track's latest box as a one-frame tracklet, copied: the caller may draw on the frame meanwhile."""
        x1, y1, x2, y2 = track.boxes[-1][1]
        keypoints = track.keypoints.shifted(x1, y1) if track.keypoints else None
        image = frame[y1:y2, x1:x2].copy()
        return Tracklet(str(track.id), [Frame(f"{track.id}:{track.last_frame}", track.last_frame, image, keypoints=keypoints)])  # fmt: skip

    def _take(self, track: Track, prediction: Prediction) -> None:
        """Add one read's readings to the track (read at its `last_read` frame) and vote again."""
        track.frames_read += 1
        track.reads.append((track.last_read, [r for record in prediction.evidence for r in record.readings]))
        if (cut := self._second_person(track.reads)) is not None:
            self._vote(self._split(track, cut))
        self._vote(track)

    def _vote(self, track: Track) -> None:
        readings = track.readings  # flattened from the track's reads on each access: once per vote
        result = self.vote.decide(readings)
        track.number, track.confidence = result.number, result.confidence
        # A person moving behind others shows part of their number in some frames and all of it in others: a
        # leader that a longer reading of the same track contains is taken for a fragment of it (1104 of 11040),
        # and no number is shown yet. Video only: on tracklets and photos it lost right reads (docs/results.md, "Moving
        # camera").
        if track.number != NO_NUMBER and self.vote.longer_than(result.text, readings):
            track.number, track.confidence = NO_NUMBER, 0.0
        track.settled = self.settle and self.vote.settled(readings)

    def _second_person(self, reads: list[tuple[int, list[Reading]]]) -> int | None:
        """Where a track holds two people in turn, the index of the first read after the first person's last
        read (else None). In a crowd the tracker can pass one person's track on to their neighbour (a start
        line of runners in black, the camera panning): the reads then show one number, and from some read on
        another, the reads of each part alone settling the vote on it (`Vote.settled`), neither number shown in
        the other part's reads, and neither a piece of the other (a bib read whole and cut by an arm is one
        person). A race gives each runner a different bib, and a team each player a different number, so that
        is two people, and the track is cut there; otherwise the second number outvotes the first and is shown
        on the first person's frames, or the first stays on the second person's. A part whose reads do not
        settle (a bib read 3111 and 311 in turn as a hand moves over it) is not taken for a person of its own.

        Checked as each read comes: a cut can only become due when the newest read shows the second number, and
        its reads then start at the first read showing it, so one cut per number the newest read shows is tried."""

        def shows(readings: list[Reading], number: str) -> bool:
            return any(r.text == number and self.vote.shows(r) for r in readings)

        for text in {r.text for r in reads[-1][1] if self.vote.shows(r)}:
            first_shown = next(k for k, (_, readings) in enumerate(reads) if shows(readings, text))
            before = [r for _, readings in reads[:first_shown] for r in readings]
            a = self.vote.decide(before)
            if a.number == NO_NUMBER or a.text == text or part_of(a.text, text) or part_of(text, a.text):
                continue
            cut = 1 + max(k for k, (_, readings) in enumerate(reads[:first_shown]) if shows(readings, a.text))
            after = [r for _, readings in reads[cut:] for r in readings]
            if (
                self.vote.decide(after).text == text
                and self.vote.settled(before)
                and self.vote.settled(after)
                and not shows(after, a.text)
            ):
                return cut
        return None

    def _split(self, track: Track, cut: int) -> Track:
        """Part the first person's reads and boxes, up to the frame of `cut`'s read, into a track of its own,
        ended, with an id of its own; `track` goes on with the second person. Returns the first person's."""
        swap = track.reads[cut][0]
        before = [(frame, box) for frame, box in track.boxes if frame < swap]
        first = Track(self._tracker.new_id(), track.first_frame, before[-1][0] if before else track.first_frame,
                      boxes=before, reads=track.reads[:cut], frames_read=cut,
                      last_read=track.reads[cut - 1][0])  # fmt: skip
        track.boxes = [(frame, box) for frame, box in track.boxes if frame >= swap]
        track.reads = track.reads[cut:]
        track.frames_read -= cut
        track.first_frame = track.boxes[0][0] if track.boxes else swap
        self.tracks[first.id] = first
        if self.save_tracklets:
            # The first person's crops, saved under the track's folder, go to theirs.
            folder = self.save_tracklets / str(first.id)
            folder.mkdir(parents=True, exist_ok=True)
            for frame, _ in before:
                crop = self.save_tracklets / str(track.id) / f"{frame}.jpg"
                if crop.is_file():
                    crop.rename(folder / crop.name)
        return first

    def _read(self, frame: np.ndarray, visible: list[Track], index: int) -> None:
        """Read one crop of each track due a read."""
        for track in self._waiting(visible, index, frame.shape[1]):
            track.last_read = index
            self._take(track, self.pipeline.run(self._crop(frame, track)))

    def _read_in_background(self, frame: np.ndarray, visible: list[Track], index: int) -> None:
        """Take the read in flight if it is done, and start one of the track due a read that was read least."""
        if self._pending is not None:
            if not self._pending[1].done():
                return
            self._take_pending()
        waiting = self._waiting(visible, index, frame.shape[1])
        if waiting:
            track = waiting[0]
            track.last_read = index
            self._pending = (track, self._reads.submit(self._crop(frame, track)))

    def _take_pending(self) -> None:
        track, future = self._pending
        self._pending = None
        self._take(track, future.result())

    def close(self) -> None:
        """Take the background read in flight, then stop the reads' process."""
        if self._reads is not None:
            try:
                if self._pending is not None:
                    self._take_pending()
            finally:  # a read that failed must not leave the process running
                self._reads.close()

    def fragments(self) -> dict[int, str]:
        """Bib mode, over the whole video: track id -> the strongest of the longer bibs that contain this track's
        number, where the video shows them together at least as strongly as the track shows its number (1104
        beside a runner read 11040, 20 beside 20462). Such a number is taken for a piece of that bib, half hidden,
        rather than a runner of its own: a race gives each runner a different bib. The longer bibs add up: a
        bib's hidden first digit is often read two ways, and 20462 and 30462 both show that 0462 goes on. A
        bib's strength is every read of it that `Vote.shows`, in any track: read at the box's side, on a line
        the vote doubts or by a track of people mixed in a crowd, it is still that bib in view. Jersey numbers
        are short and a 7 plays beside a 17, so they are kept."""
        if self.vote.mode is not Mode.BIB:
            return {}
        shown: dict[str, float] = {}  # number -> summed confidence of its reads over the video
        for track in self.tracks.values():
            for reading in track.readings:
                if self.vote.shows(reading):
                    shown[reading.text] = shown.get(reading.text, 0.0) + reading.confidence
        pieces = {}
        for track in self.tracks.values():
            if track.number == NO_NUMBER:
                continue
            text = self.vote.decide(track.readings).text
            own = self.vote.weight(text, track.readings)
            wholes = [(weight, longer) for longer, weight in shown.items() if part_of(text, longer)]
            if wholes and sum(weight for weight, _ in wholes) >= own:
                pieces[track.id] = max(wholes)[1]
        return pieces

    def results(self) -> dict:
        """Every track, and the people: tracks that read the same number joined (a player who left the view,
        or was lost behind an occlusion, and came back is one person with several tracks). A track whose number
        is a piece of another runner's bib (`fragments`) has none, and says whose piece it is."""
        if self._pending is not None:
            self._take_pending()
        tracks = sorted(self.tracks.values(), key=lambda t: t.id)
        fragments = self.fragments()
        people: dict[int, dict] = {}
        for track in tracks:
            if track.number == NO_NUMBER or track.id in fragments:
                continue
            person = people.setdefault(track.number, {"number": track.number, "tracks": [], "first_frame": track.first_frame,
                                                      "last_frame": track.last_frame, "confidence": 0.0})  # fmt: skip
            person["tracks"].append(track.id)
            person["first_frame"] = min(person["first_frame"], track.first_frame)
            person["last_frame"] = max(person["last_frame"], track.last_frame)
            person["confidence"] = round(max(person["confidence"], track.confidence), 4)
        listed = [track.as_dict() for track in tracks]
        for entry in listed:
            if entry["track"] in fragments:
                entry.update(number=NO_NUMBER, confidence=0.0, fragment_of=fragments[entry["track"]])
        return {
            "tracks": listed,
            "people": sorted(people.values(), key=lambda p: p["first_frame"]),
        }


def read_video(source: str | int, config: PipelineConfig | None = None, detector: str = DEFAULT_DETECTOR,
               save_tracklets: Path | None = None, progress: bool = True, read_every: int = 5) -> dict:  # fmt: skip
    """Every frame of a video through a `VideoReader`: every track gets read, each at most every `read_every`
    frames, for as long as it is in view (no settling: `VideoReader`).

    The result says how many frames were read (`frames`) against how many the file announces
    (`frames_expected`, None where unknown), and `warning` says why they fall short (a file cut short or
    corrupt; None when they do not). Raises `VideoError` when the video cannot be opened or no frame of it
    can be read."""
    from tqdm import tqdm

    config = config or PipelineConfig()
    with VideoSource(source, config.max_pixels) as video:
        reader = VideoReader(config, detector, save_tracklets=save_tracklets, read_every=read_every, settle=False)
        start = time.perf_counter()
        with tqdm(total=video.expected_frames, desc="frames", unit="frame", disable=not progress) as bar:
            for index, frame in enumerate(video):
                reader.process(frame, index)
                bar.update()
        seconds = time.perf_counter() - start
        frames, warning = video.frames_read, video.shortfall()
        if frames == 0:
            raise VideoError(warning)
        info = {"video": str(source), "frames": frames, "seconds": round(seconds, 2),
                "fps": round(frames / seconds, 2) if seconds else 0.0, "frames_expected": video.expected_frames,
                "warning": warning}  # fmt: skip
    return {**info, **reader.results()}
