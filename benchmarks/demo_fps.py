"""Frames per second of the live demo on rendered 640x360 and 1280x720 clips (three players crossing a pitch,
150 frames at 25 FPS), headless, every frame processed (no frame dropped) at the clip's rate, with the rate the loop
alone could keep (its time less its waits for the file's rate), in one run; plus, for each size, the realtime mode's
share of frames dropped to keep pace with the clip's 25 FPS.

    python benchmarks/demo_fps.py [--frames 150]

The person detector's FPS on clips of real runners is measured by benchmarks/moving_camera.py.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from jerseynum.io import write_json_atomic
from jerseynum.training.synth import render_players_clip
from jerseynum.video.live import run_demo

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=150)
    parser.add_argument("--json", type=Path, default=REPO / "benchmarks" / "results" / "demo_fps.json")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        for size in ((640, 360), (1280, 720)):
            clip = Path(folder) / f"clip_{size[0]}x{size[1]}.mp4"
            render_players_clip(clip, size=size, frames=args.frames)
            # drawn players: the person detector does not see them, background subtraction does (as demo.py's own)
            every = run_demo(str(clip), detector="motion", headless=True, realtime=False)
            paced = run_demo(str(clip), detector="motion", headless=True, realtime=True)
            row = {"size": f"{size[0]}x{size[1]}", "fps_every_frame": round(every.fps, 1),
                   "fps_loop_alone": round(every.busy_fps, 1),
                   "numbers_read": sorted(p["number"] for p in every.people),
                   "realtime_dropped_share": round(paced.frames_dropped / args.frames, 3),
                   "realtime_numbers_read": sorted(p["number"] for p in paced.people)}  # fmt: skip
            rows.append(row)
            print(f"  {row['size']:>9}: {row['fps_every_frame']:5.1f} FPS, every frame processed (the loop alone"
                  f" {row['fps_loop_alone']:5.1f}), numbers "
                  f"{row['numbers_read']}; realtime at 25 FPS drops {row['realtime_dropped_share']:.0%} of frames, "
                  f"numbers {row['realtime_numbers_read']}")  # fmt: skip
    write_json_atomic(args.json, {"rows": rows})


if __name__ == "__main__":
    main()
