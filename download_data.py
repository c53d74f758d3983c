"""Download SoccerNet jersey-2023 (train / test / challenge) into DEST, extracted and verified.

    python download_data.py [--dest data/soccernet] [--splits train test challenge] [--timeout 30]
    python download_data.py --from-zips FOLDER [--dest ...]     # zips downloaded elsewhere (no network here)

Without network it fails within seconds and says how to use a local copy; a server that accepts the connection
but does not answer fails it after --timeout seconds. It never leaves a half-extracted split behind (see
jerseynum/soccernet.py).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from jerseynum.soccernet import DOWNLOAD_TIMEOUT, SPLITS, DataError, download, from_zips, offline_help


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dest", type=Path, default=Path("data/soccernet"), help="where the splits go")
    parser.add_argument("--splits", nargs="+", choices=SPLITS, default=list(SPLITS))
    parser.add_argument("--from-zips", type=Path, metavar="FOLDER", help="extract <split>.zip files from FOLDER")
    parser.add_argument(
        "--timeout",
        type=float,
        default=DOWNLOAD_TIMEOUT,
        metavar="SECONDS",
        help=f"give up when the server does not answer for this long (default {DOWNLOAD_TIMEOUT:g} s)",
    )
    args = parser.parse_args(argv)
    if args.timeout <= 0:
        parser.error("--timeout must be positive")
    try:
        if args.from_zips:
            reports = from_zips(args.from_zips, args.dest, tuple(args.splits))
        else:
            reports = download(args.dest, tuple(args.splits), args.timeout)
    except DataError as error:
        print(f"download_data.py: {error}", file=sys.stderr)
        if not args.from_zips:
            print(offline_help(args.dest), file=sys.stderr)
        return 1
    for report in reports:
        labels = f", labels {report.labels}" if report.labels else ", no public labels"
        print(f"{report.split}: {report.tracklets} tracklets, {report.frames} frames in {report.path}{labels}")
        if report.warning:
            print(f"  warning: {report.warning}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
