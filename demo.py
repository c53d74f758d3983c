"""Live demo: players tracked, numbers drawn over them as they are read.

    python demo.py [SOURCE] [--mode jersey|bib] [--detector motion|faces] [--output out.mp4] [--headless]

SOURCE is a camera index ("0"), a video file or a stream URL; without it, a rendered clip of three players
is played. q or Esc closes the window. A thin wrapper over `jerseynum.video.live`.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

import cv2

from jerseynum.config import PipelineConfig
from jerseynum.video.live import run_demo, sample_video
from jerseynum.video.tracking import DETECTORS


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("source", nargs="?", help="camera index, video file or stream URL (default: a rendered clip)")
    parser.add_argument("--mode", choices=["jersey", "bib"], default="jersey")
    parser.add_argument(
        "--detector",
        choices=sorted(DETECTORS),
        default="motion",
        help="motion: fixed camera (default); faces: people facing the camera",
    )
    parser.add_argument("--output", type=Path, help="record the annotated video to this .mp4")
    parser.add_argument("--headless", action="store_true", help="no window (record with --output)")
    parser.add_argument(
        "--read-budget-ms",
        type=float,
        default=30.0,
        help="time per frame spent reading numbers; the rest waits for later frames",
    )
    parser.add_argument(
        "--realtime",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="drop frames to keep pace with the source (default: on for cameras and streams)",
    )
    parser.add_argument("--max-frames", type=int, help="stop after this many frames")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    source = args.source if args.source is not None else str(sample_video())
    try:
        report = run_demo(source, PipelineConfig(mode=args.mode), args.detector, args.output, args.headless,
                          args.read_budget_ms, args.realtime, args.max_frames)  # fmt: skip
    except FileNotFoundError as error:
        print(f"demo.py: {error}", file=sys.stderr)
        return 2
    except cv2.error as error:  # no display: imshow fails
        print(f"demo.py: cannot open a window ({error}); use --headless (with --output to record)", file=sys.stderr)
        return 2
    print(f"{report.frames_shown} frames in {report.seconds:.1f} s: {report.fps:.1f} FPS"
          f" ({report.frames_dropped} dropped to keep up)")  # fmt: skip
    for person in report.people:
        print(f"  number {person['number']}: frames {person['first_frame']}-{person['last_frame']},"
              f" tracks {person['tracks']}")  # fmt: skip
    if args.output:
        print(f"recorded {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
