"""SoccerNet jersey-number inference: `python inference.py DIR -o predictions.json [--gt gt.json]`.

DIR holds one sub-folder of images per tracklet (SoccerNet's test/images or challenge/images layout); without
DIR the shipped sample tracklets are read. A thin wrapper over `jerseynum infer` (see `--help`).
"""

import sys

from jerseynum.cli import main

if __name__ == "__main__":
    sys.exit(main(["infer", *sys.argv[1:]]))
