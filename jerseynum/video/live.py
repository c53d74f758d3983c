"""The live demo's loop: frames from a camera, a file or a stream, tracked, read, drawn, shown and recorded.
`demo.py` is its command line.

Keeping up: numbers are read in a process of their own, one crop at a time, while the frames go on (detection,
tracking, drawing), so a read never holds up a frame; from a live source (camera, stream) only the newest frame
is taken, so a slow moment drops frames instead of building a backlog. A file is read frame by frame, as fast as
the loop goes, unless `realtime` asks to play it at its own rate, dropping the frames the loop is late for.

Honest endings: the recording is checked writable before the first frame and checked written after the last;
a file that ends before the frames it announces (cut short, corrupt) is reported with both counts.
"""

from __future__ import annotations

import logging
import os
import sys
import tempfile
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from jerseynum.config import PipelineConfig
from jerseynum.io import VideoError, VideoSource, check_writable
from jerseynum.types import NO_NUMBER
from jerseynum.video.tracking import DEFAULT_DETECTOR, Track, VideoReader

log = logging.getLogger("jerseynum")

RECORDING_FOURCC = "mp4v"
# The containers cv2.VideoWriter opens with mp4v (measured: .webm, .flv, .gif and a name without a suffix do not).
RECORDING_SUFFIXES = (".mp4", ".m4v", ".mov", ".avi", ".mkv")


class RecordingError(RuntimeError):
    """A recording that cannot be made where it was asked for, or that was not written."""


class DisplayError(RuntimeError):
    """No window can open to show the demo (no display, or an OpenCV without a GUI)."""


@dataclass
class DemoReport:
    frames_shown: int
    frames_dropped: int
    seconds: float
    people: list[dict]
    frames_read: int  # dropped frames included
    frames_expected: int | None  # what the file announces; None for a live source or where it does not say
    warning: str | None  # why the frames read fall short of those announced, when the source ran out early
    waited: float = 0.0  # seconds spent waiting so as not to play a file faster than its rate

    @property
    def fps(self) -> float:
        return self.frames_shown / self.seconds if self.seconds else 0.0

    @property
    def busy_fps(self) -> float:
        """The frame rate the loop would keep without waiting for the file's rate: what it can sustain."""
        busy = self.seconds - self.waited
        return self.frames_shown / busy if busy > 0 else 0.0


def track_colour(track_id: int) -> tuple[int, int, int]:
    hue = (track_id * 47) % 180
    colour = cv2.cvtColor(np.uint8([[[hue, 200, 255]]]), cv2.COLOR_HSV2BGR)[0, 0]
    return tuple(int(c) for c in colour)


def draw(frame: np.ndarray, tracks: list[Track], fps: float) -> np.ndarray:
    """Boxes, track ids and each track's number once its vote has one; the FPS in the corner."""
    for track in tracks:
        x1, y1, x2, y2 = track.boxes[-1][1]
        colour = track_colour(track.id)
        cv2.rectangle(frame, (x1, y1), (x2, y2), colour, 2)
        label = f"#{track.id}  {track.number}" if track.number != NO_NUMBER else f"#{track.id}  ?"
        (w, h), _ = cv2.getTextSize(label, cv2.FONT_HERSHEY_SIMPLEX, 0.6, 2)
        top = max(0, y1 - h - 8)
        cv2.rectangle(frame, (x1, top), (x1 + w + 8, top + h + 8), colour, -1)
        cv2.putText(frame, label, (x1 + 4, top + h + 3), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (0, 0, 0), 2, cv2.LINE_AA)
    cv2.putText(frame, f"{fps:.1f} FPS", (10, 28), cv2.FONT_HERSHEY_SIMPLEX, 0.8, (255, 255, 255), 2, cv2.LINE_AA)
    return frame


def sample_video() -> Path:
    """The demo's default input: a rendered clip of three players (numbers 7, 23, 58) crossing a pitch."""
    from jerseynum.training.synth import render_players_clip

    path = Path(tempfile.gettempdir()) / "jerseynum-demo-sample.mp4"
    if not path.is_file():
        render_players_clip(path, frames=150)
    return path


def check_recording_path(path: Path) -> None:
    """Fail before any frame is read when `path` cannot be recorded to: a suffix the video writer cannot write,
    or a folder that cannot be written. Raises `RecordingError` saying which."""
    if path.suffix.lower() not in RECORDING_SUFFIXES:
        raise RecordingError(f"cannot record to {path}: the video writer writes {', '.join(RECORDING_SUFFIXES)} files")
    try:
        check_writable(path)
    except OSError as error:
        raise RecordingError(f"cannot record to {path}: {error.strerror or error}") from error


def check_display() -> None:
    """Fail before any frame is read where no window can open: OpenCV's Qt window aborts the whole process
    without a display (it does not raise)."""
    if sys.platform.startswith("linux") and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        raise DisplayError("no display: DISPLAY is not set")


def open_writer(path: Path, fps: float, frame: np.ndarray) -> cv2.VideoWriter:
    height, width = frame.shape[:2]
    path.unlink(missing_ok=True)  # so that a file there after the run is this run's recording, not an older one
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*RECORDING_FOURCC), fps, (width, height))
    if not writer.isOpened():
        raise RecordingError(f"cannot record to {path}: the video writer does not open ({RECORDING_FOURCC} codec,"
                             f" {width} x {height} frames)")  # fmt: skip
    return writer


def show(frame: np.ndarray) -> bool:
    """Show the frame in the demo's window; True when q or Esc asks to stop."""
    try:
        cv2.imshow("jerseynum", frame)
        return cv2.waitKey(1) & 0xFF in (ord("q"), 27)
    except cv2.error as error:  # an OpenCV built without a GUI
        raise DisplayError(str(error).strip().splitlines()[-1]) from error


def run_demo(source: str, config: PipelineConfig | None = None, detector: str = DEFAULT_DETECTOR,
             output: Path | None = None, headless: bool = False, realtime: bool | None = None,
             max_frames: int | None = None) -> DemoReport:  # fmt: skip
    """Play `source` through a `VideoReader`, drawn, shown (unless `headless`) and recorded to `output`.

    Raises `VideoError` when the source cannot be opened or gives no frame, `RecordingError` when the recording
    cannot be made or was not written, `DisplayError` when no window can open. A source that ends short of the
    frames it announces is not an error: the report's `warning` says so."""
    config = config or PipelineConfig()
    if output is not None:
        check_recording_path(output)
    with VideoSource(source, config.max_pixels) as video:
        if not headless:
            check_display()
        realtime = video.live if realtime is None else realtime
        # A file plays at its own rate; one that announces no sensible rate (some say 0 or 1000) at 25 FPS.
        rate = video.fps if 1 <= video.fps <= 60 else 25.0
        # Reads run beside the frames, in a process of their own. People are detected every other frame, the
        # tracks coasting between: detecting every frame would not leave 25 FPS on 2 cores.
        reader = VideoReader(config, detector, detect_every=2, background=True)
        writer = None
        last_drawn = None  # what the recording repeats for a frame dropped to keep pace
        recent: deque[float] = deque(maxlen=30)  # frame end times, for a smoothed FPS
        shown = dropped = index = 0
        waited = 0.0
        ran_out = False  # the source ended by itself (not a --max-frames stop, a key or an interrupt)
        start = time.perf_counter()
        try:
            while max_frames is None or shown < max_frames:
                frame = video.read()  # dropped frames are read too: they count against what the file announces
                if frame is None:
                    ran_out = True
                    break
                if realtime and not video.live:  # skip the frames we are late for
                    due = int((time.perf_counter() - start) * rate)
                    if index < due:
                        if writer is not None:  # the last drawn frame holds its place: the recording keeps time
                            writer.write(last_drawn)
                        index += 1
                        dropped += 1
                        continue
                tracks = reader.process(frame, index)
                recent.append(time.perf_counter())
                fps = (len(recent) - 1) / (recent[-1] - recent[0]) if len(recent) > 1 else 0.0
                draw(frame, tracks, fps)
                if output is not None:
                    if writer is None:
                        writer = open_writer(output, rate, frame)
                    writer.write(frame)
                    last_drawn = frame
                if not headless and show(frame):
                    break
                shown += 1
                index += 1
                ahead = start + index / rate - time.perf_counter()
                if not video.live and ahead > 0:  # never ahead of the file's rate
                    time.sleep(ahead)
                    waited += ahead
        except KeyboardInterrupt:
            log.info("stopped")
        finally:
            seconds = time.perf_counter() - start  # the frames' time: not the wait below for the last read
            try:
                reader.close()
            finally:  # a last read that failed still leaves a whole recording and no window
                if writer is not None:
                    writer.release()
                if not headless:
                    cv2.destroyAllWindows()
        if video.frames_read == 0:
            raise VideoError(video.shortfall())
        warning = video.shortfall() if ran_out else None
    # writer None: stopped before the first frame was recorded (a file there is an older recording)
    if output is not None and (writer is None or not output.is_file() or output.stat().st_size == 0):
        raise RecordingError(f"the recording {output} was not written")
    return DemoReport(shown, dropped, seconds, reader.results()["people"], video.frames_read, video.expected_frames,
                      warning, waited)  # fmt: skip
