"""Live demo: players tracked, numbers drawn over them as they are read.

    python demo.py [SOURCE] [--mode jersey|bib] [--detector person|motion|faces] [--output out.mp4] [--headless]

SOURCE is a camera index ("0"), a video file or a stream URL; without it, a rendered clip of three players
is played. q or Esc closes the window. A thin wrapper over `jerseynum.video.live`.

Ctrl-C and SIGTERM stop it the same way: the recording so far is closed whole. Exit status: 0 done (or stopped);
130 stopped before the first frame, while the models were being built;
1 the video ended short of the frames it announces (cut short or corrupt; a warning gives
both counts) or the recording was not written; 2 a source, recording path or window that cannot be opened.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
from pathlib import Path

from jerseynum.config import PipelineConfig
from jerseynum.io import VideoError
from jerseynum.video.live import (
    RECORDING_SUFFIXES,
    DisplayError,
    RecordingError,
    check_recording_path,
    run_demo,
    sample_video,
)
from jerseynum.video.tracking import DEFAULT_DETECTOR, DETECTORS


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt  # SIGTERM (timeout, systemd, kill) stops the demo as Ctrl-C does: the recording closed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("source", nargs="?", help="camera index, video file or stream URL (default: a rendered clip)")
    parser.add_argument("--mode", choices=["jersey", "bib"], default="jersey")
    parser.add_argument(
        "--detector",
        choices=sorted(DETECTORS),
        help="person: a person detector, any camera (default); motion: moving blobs, fixed camera only (the"
        " default for the rendered clip, whose drawn players the detector does not see); faces: people facing the"
        " camera",
    )
    parser.add_argument(
        "--output", type=Path, help=f"record the annotated video to this {'/'.join(RECORDING_SUFFIXES)}"
    )
    parser.add_argument("--headless", action="store_true", help="no window (record with --output)")
    parser.add_argument(
        "--realtime",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="drop frames to keep pace with the source (default: on for cameras and streams)",
    )
    parser.add_argument("--max-frames", type=int, help="stop after this many frames")
    args = parser.parse_args(argv)
    if args.max_frames is not None and args.max_frames < 1:
        parser.error("--max-frames must be at least 1")
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    if args.output is not None:  # before any frame is read, or the sample clip rendered
        try:
            check_recording_path(args.output)
        except RecordingError as error:
            print(f"demo.py: {error}", file=sys.stderr)
            return 2
    source = args.source if args.source is not None else str(sample_video())
    detector = args.detector or (DEFAULT_DETECTOR if args.source is not None else "motion")
    previous_handler = signal.signal(signal.SIGTERM, _interrupt)
    try:
        report = run_demo(source, PipelineConfig(mode=args.mode), detector, args.output, args.headless,
                          args.realtime, args.max_frames)  # fmt: skip
    except KeyboardInterrupt:  # before the first frame (the models were still being built): nothing to show
        print("demo.py: interrupted", file=sys.stderr)
        return 130
    except VideoError as error:
        print(f"demo.py: {error}", file=sys.stderr)
        return 2
    except DisplayError as error:
        print(f"demo.py: cannot open a window ({error}); use --headless (with --output to record)", file=sys.stderr)
        return 2
    except RecordingError as error:
        print(f"demo.py: {error}", file=sys.stderr)
        return 1
    finally:
        signal.signal(signal.SIGTERM, previous_handler)
    could = f", {report.busy_fps:.1f} if not held to the file's rate" if report.waited else ""
    print(f"{report.frames_shown} frames in {report.seconds:.1f} s: {report.fps:.1f} FPS{could}"
          f" ({report.frames_dropped} dropped to keep up)")  # fmt: skip
    for person in report.people:
        print(f"  number {person['number']}: frames {person['first_frame']}-{person['last_frame']},"
              f" tracks {person['tracks']}")  # fmt: skip
    if args.output:
        print(f"recorded {args.output}")
    if report.warning:  # what was read is shown and recorded; the exit status says the video was incomplete
        print(f"demo.py: warning: {report.warning}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
