"""The live demo's loop: frames from a camera, a file or a stream, tracked and read on a budget, drawn, shown
and recorded. `demo.py` is its command line.

Keeping up: each frame's number reading stops when its budget (ms) is spent, and the tracks not read wait for
the next frame; from a live source (camera, stream) only the newest frame is taken, so a slow moment drops
frames instead of building a backlog. A file is read frame by frame unless `realtime` asks to drop frames too.
"""

from __future__ import annotations

import logging
import tempfile
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from jerseynum.config import PipelineConfig
from jerseynum.types import NO_NUMBER
from jerseynum.video.tracking import Track, VideoReader

log = logging.getLogger("jerseynum")


@dataclass
class DemoReport:
    frames_shown: int
    frames_dropped: int
    seconds: float
    people: list[dict]

    @property
    def fps(self) -> float:
        return self.frames_shown / self.seconds if self.seconds else 0.0


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


def open_source(source: str) -> tuple[cv2.VideoCapture, bool]:
    """A capture for a camera index ("0"), a file or a stream URL, and whether it is live."""
    live = source.isdigit() or "://" in source
    capture = cv2.VideoCapture(int(source) if source.isdigit() else source)
    if not capture.isOpened():
        raise FileNotFoundError(f"cannot open video source {source!r} (a camera index, a video file or a stream URL)")
    if live:
        capture.set(cv2.CAP_PROP_BUFFERSIZE, 1)  # the newest frame, not a queue of stale ones
    return capture, live


def sample_video() -> Path:
    """The demo's default input: a rendered clip of three players (numbers 7, 23, 58) crossing a pitch."""
    from jerseynum.training.synth import render_players_clip

    path = Path(tempfile.gettempdir()) / "jerseynum-demo-sample.mp4"
    if not path.is_file():
        render_players_clip(path, frames=150)
    return path


def run_demo(source: str, config: PipelineConfig | None = None, detector: str = "motion", output: Path | None = None,
             headless: bool = False, read_budget_ms: float = 30.0, realtime: bool | None = None,
             max_frames: int | None = None) -> DemoReport:  # fmt: skip
    capture, live = open_source(source)
    realtime = live if realtime is None else realtime
    source_fps = capture.get(cv2.CAP_PROP_FPS) or 25.0
    reader = VideoReader(config, detector, read_budget_ms=read_budget_ms)
    writer = None
    recent: deque[float] = deque(maxlen=30)  # frame end times, for a smoothed FPS
    shown = dropped = index = 0
    start = time.perf_counter()
    try:
        while max_frames is None or shown < max_frames:
            ok, frame = capture.read()
            if not ok:
                break
            if realtime and not live:  # a file played at its own pace: skip the frames we are late for
                due = int((time.perf_counter() - start) * source_fps)
                if index < due:
                    index += 1
                    dropped += 1
                    continue
            tracks = reader.process(frame, index)
            recent.append(time.perf_counter())
            fps = (len(recent) - 1) / (recent[-1] - recent[0]) if len(recent) > 1 else 0.0
            draw(frame, tracks, fps)
            if output is not None:
                if writer is None:
                    output.parent.mkdir(parents=True, exist_ok=True)
                    height, width = frame.shape[:2]
                    writer = cv2.VideoWriter(str(output), cv2.VideoWriter_fourcc(*"mp4v"), source_fps, (width, height))
                writer.write(frame)
            if not headless:
                cv2.imshow("jerseynum", frame)
                if cv2.waitKey(1) & 0xFF in (ord("q"), 27):
                    break
            shown += 1
            index += 1
    except KeyboardInterrupt:
        log.info("stopped")
    finally:
        capture.release()
        if writer is not None:
            writer.release()
        if not headless:
            cv2.destroyAllWindows()
    return DemoReport(shown, dropped, time.perf_counter() - start, reader.results()["people"])
