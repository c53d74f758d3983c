"""How long the CLI takes to answer: `jerseynum --help`, `search` and `export` on a small index (none of them
loads a model), medians of repeated runs, each a fresh process.

    python benchmarks/startup.py [--runs 5]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from jerseynum.io import write_json_atomic
from jerseynum.photos.index import BibNumber, PhotoIndex

REPO = Path(__file__).resolve().parents[1]


def seconds(argv: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "jerseynum", *argv], check=False, capture_output=True)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--json", type=Path, default=REPO / "benchmarks" / "results" / "startup.json")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        index_path = Path(folder) / "race.db"
        with PhotoIndex(index_path) as index:  # 1000 photos, a number each
            index.bind_root(Path(folder))
            for k in range(1000):
                index.put(f"p{k:04d}.jpg", "0" * 64, 1, 1, (10, 10), [BibNumber(str(1000 + k), 0.99, (0, 0, 5, 5))],
                          None, "v", 0.1)  # fmt: skip
        commands = {"--help": ["--help"], "search": ["search", "1234", "--index", str(index_path)],
                    "export": ["export", "--index", str(index_path)]}  # fmt: skip
        results = {}
        for name, argv in commands.items():
            median = statistics.median(seconds(argv) for _ in range(args.runs))
            results[name] = round(median, 3)
            print(f"jerseynum {name:7} {median:.2f} s (median of {args.runs})")
    write_json_atomic(args.json, {"runs": args.runs, "seconds_median": results})


if __name__ == "__main__":
    main()
