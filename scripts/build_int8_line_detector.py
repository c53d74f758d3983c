"""Builds models/built/ppocr-v6-small-int8.onnx: RapidOCR's PP-OCRv6 small text-line detector quantized to int8.

The race-photo reader's first search for a bib's line runs this detector on every runner's region at 640 px, and
in float it was 61 % of the time of tagging a photo (174 ms a call on this 2-core CPU). Quantized statically to
8 bits (weights per channel, activations per tensor, QDQ format), ONNX Runtime runs it on the CPU's integer
dot-product instructions: ~5x faster; of the 177 RBNR runner crops one reads otherwise, right where it was a
fragment (docs/results.md, "Race photos: speed").

The weights come from the `rapidocr` wheel that requirements.txt pins (PP-OCRv6_det_small.onnx, Apache-2.0;
checked by SHA-256, since the ranges below were measured on this file). Quantizing needs each activation's range
over real inputs: those were measured once on the RBNR runner crops of the photos' training half and are
committed as `models/ppocr-v6-small-int8.ranges.json` (numbers about this network's activations, not weights),
so the build at install needs no data and takes seconds. `--calibrate DATA` measures them again.

Writes a .partial file and renames it, so the output is whole or absent; skipped when the output exists.

    .venv/bin/python scripts/build_int8_line_detector.py                         # at install (scripts/install.sh)
    .venv/bin/python scripts/build_int8_line_detector.py --calibrate ../shared/data   # re-measure the ranges
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TARGET = ROOT / "models" / "built" / "ppocr-v6-small-int8.onnx"
RANGES = ROOT / "models" / "ppocr-v6-small-int8.ranges.json"
SOURCE_NAME = "PP-OCRv6_det_small.onnx"
SOURCE_SHA256 = "090f04abcd9d9a7498bc4ebf677e4cb9bdce1fe4197ddb7e529f1ef44e1ff94f"  # rapidocr 3.10.0
CALIBRATION_SIDE = 640  # the side the first search runs at (PipelineConfig.det_side in bib mode)


def source_model() -> Path:
    spec = importlib.util.find_spec("rapidocr")
    if spec is None or not spec.submodule_search_locations:
        sys.exit("build_int8_line_detector.py: the pip package rapidocr is not installed")
    path = Path(next(iter(spec.submodule_search_locations))) / "models" / SOURCE_NAME
    if hashlib.sha256(path.read_bytes()).hexdigest() != SOURCE_SHA256:
        sys.exit(f"build_int8_line_detector.py: {path} is not the detector the ranges were measured on")
    return path


def prepared(source: Path, folder: Path) -> Path:
    """The model as the quantizer wants it: opset 17 (its int8 ops take per-channel scales, which the wheel's
    opset does not), then ONNX Runtime's own pre-processing (graph optimisation; tensor names are stable)."""
    import onnx
    from onnx import version_converter
    from onnxruntime.quantization.shape_inference import quant_pre_process

    upgraded = folder / "opset17.onnx"
    onnx.save(version_converter.convert_version(onnx.load(source), 17), upgraded)
    # The detector's input size is dynamic, so symbolic shape inference cannot finish; ONNX's own suffices.
    quant_pre_process(upgraded, folder / "prepared.onnx", skip_symbolic_shape=True)
    return folder / "prepared.onnx"


def calibrate(model: Path, data: Path) -> None:
    """Measure the activation ranges on the inputs the first search really feeds the detector: RBNR runner
    crops of the photos' training half, prepared by RapidOCR's own pre-processing at 640 px."""
    import cv2
    import onnx
    from onnxruntime.quantization import CalibrationDataReader, CalibrationMethod, create_calibrator
    from onnxruntime.quantization.calibrate import save_tensors_data

    from jerseynum.stages.text import RapidOCRDetector
    from jerseynum.training import splits

    detector = RapidOCRDetector(CALIBRATION_SIDE)
    inputs = []

    class Recorder:  # stands in for the detector's session: keeps what it is fed, and answers
        def __init__(self, session):
            self.session = session

        def __call__(self, tensor):
            inputs.append(tensor)
            return self.session(tensor)

    detector._detector.session = Recorder(detector._detector.session)
    crops = sorted((data / "rbnr_runner_crops" / "tracklets").glob("*/0.jpg"))
    crops = [path for path in crops if not splits.rbnr_scored(path.parent.name.rsplit("_", 1)[0])]
    if not crops:
        sys.exit(f"build_int8_line_detector.py: no RBNR runner crops under {data}")
    for path in crops:
        detector.lines(cv2.imread(str(path)))
    name = onnx.load(model).graph.input[0].name

    class Feed(CalibrationDataReader):
        def __init__(self):
            self.remaining = iter(inputs)

        def get_next(self):
            tensor = next(self.remaining, None)
            return None if tensor is None else {name: tensor}

    with tempfile.TemporaryDirectory() as scratch:
        calibrator = create_calibrator(model, augmented_model_path=f"{scratch}/augmented.onnx",
                                       calibrate_method=CalibrationMethod.MinMax,
                                       extra_options={"max_intermediate_outputs": 8})  # fmt: skip
        calibrator.collect_data(Feed())
        save_tensors_data(calibrator.compute_data(), RANGES)
    RANGES.chmod(0o644)  # written through a private temporary file
    print(f"measured {RANGES.relative_to(ROOT)} on {len(crops)} runner crops")


def build(model: Path, target: Path) -> None:
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_static

    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(target.name + ".partial")
    quantize_static(model, partial, quant_format=QuantFormat.QDQ, per_channel=True,
                    activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                    calibration_cache_path=RANGES)  # fmt: skip
    partial.replace(target)
    print(f"built {target.relative_to(ROOT) if target.is_relative_to(ROOT) else target}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calibrate", type=Path, metavar="DATA", help="measure the ranges again on DATA's RBNR crops")
    parser.add_argument("--output", type=Path, default=TARGET)
    args = parser.parse_args()
    if not args.calibrate and args.output.is_file() and args.output.stat().st_size > 0:
        return
    output, data = args.output.resolve(), args.calibrate.resolve() if args.calibrate else None
    with tempfile.TemporaryDirectory() as scratch:
        os.chdir(scratch)  # ONNX Runtime's quantization tools leave temporary files in the working directory
        model = prepared(source_model(), Path(scratch))
        if data:
            calibrate(model, data)
        build(model, output)


if __name__ == "__main__":
    main()
