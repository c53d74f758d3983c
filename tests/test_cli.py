import json
import subprocess
import sys

import cv2

from jerseynum.cli import main
from jerseynum.training.synth import render_number
from tests.conftest import REPO


def test_inference_script_reads_the_shipped_samples(tmp_path):
    output = tmp_path / "predictions.json"
    result = subprocess.run(
        [sys.executable, str(REPO / "inference.py"), "-q", "-o", str(output), "--gt", str(REPO / "samples/labels.json")],
        capture_output=True, text=True, cwd=tmp_path, timeout=300, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    predictions = json.loads(output.read_text())
    labels = json.loads((REPO / "samples/labels.json").read_text())
    assert set(predictions) == set(labels) and all(isinstance(n, int) for n in predictions.values())
    numbered = [tracklet for tracklet, number in labels.items() if number != -1]
    assert all(predictions[t] == labels[t] for t in numbered)
    assert "accuracy (SoccerNet evaluator)" in result.stdout


def test_bad_tracklets_get_minus_one_and_the_run_goes_on(tmp_path, caplog):
    root = tmp_path / "tracklets"
    (root / "good").mkdir(parents=True)
    cv2.imwrite(str(root / "good" / "0.png"), render_number("19", 36))
    (root / "empty").mkdir()
    (root / "corrupt").mkdir()
    (root / "corrupt" / "0.jpg").write_bytes(b"\x00" * 10)
    output = tmp_path / "p.json"
    assert main(["infer", str(root), "-q", "-o", str(output), "--pose", "none"]) == 0
    assert json.loads(output.read_text()) == {"corrupt": -1, "empty": -1, "good": 19}
    logged = caplog.text
    assert "corrupt" in logged and "empty tracklet" in logged


def test_a_missing_folder_is_reported_and_nothing_is_written(tmp_path, caplog):
    output = tmp_path / "p.json"
    assert main(["infer", str(tmp_path / "nope"), "-q", "-o", str(output)]) == 2
    assert "not a folder" in caplog.text and not output.exists()
