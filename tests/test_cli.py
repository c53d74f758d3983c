import json
import signal
import socket
import subprocess
import sys

import cv2
import numpy as np
import pytest

from jerseynum.cli import main
from jerseynum.photos.index import PhotoIndex
from jerseynum.training.synth import render_number
from jerseynum.wording import counted
from tests.badfiles import bomb_png
from tests.conftest import REPO
from tests.test_parallel import alive, children_of, wait_for
from tests.test_photos import committed_photos


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


def test_a_decompression_bomb_frame_does_not_stop_the_run(tmp_path, caplog):
    root = tmp_path / "tracklets"
    (root / "good").mkdir(parents=True)
    cv2.imwrite(str(root / "good" / "0.png"), render_number("19", 36))
    (root / "good" / "1.png").write_bytes(bomb_png())
    (root / "bomb").mkdir()
    (root / "bomb" / "0.png").write_bytes(bomb_png())
    output = tmp_path / "p.json"
    assert main(["infer", str(root), "-q", "-o", str(output), "--pose", "none", "--workers", "1"]) == 0
    assert json.loads(output.read_text()) == {"bomb": -1, "good": 19}
    assert "over the pixel budget" in caplog.text


def test_an_unwritable_output_fails_before_any_work(tmp_path, monkeypatch, caplog):
    (tmp_path / "file").write_text("x")

    def no_work(*args, **kwargs):
        raise AssertionError("the work started before the output was checked")

    monkeypatch.setattr("jerseynum.pipeline.predict_all", no_work)
    samples = str(REPO / "samples" / "tracklets")
    assert main(["infer", samples, "-q", "-o", str(tmp_path / "file" / "p.json")]) == 2
    assert main(["infer", samples, "-q", "-o", str(tmp_path), "--workers", "1"]) == 2  # a folder
    assert main(["infer", samples, "-q", "--gt", str(tmp_path / "missing.json")]) == 2
    assert "cannot write" in caplog.text and "ground truth not found" in caplog.text
    for text, said in (('{"0": 10,', "is not a ground-truth JSON file"), ("[10]", "expected {tracklet id"),
                       ("{}", "expected {tracklet id"), ('{"0": "10"}', "tracklet '0' is labelled '10', not a whole"),
                       ('{"nobody": 3}', "labels none of the tracklets")):  # fmt: skip
        (tmp_path / "gt.json").write_text(text)
        assert main(["infer", samples, "-q", "-o", str(tmp_path / "p.json"), "--gt", str(tmp_path / "gt.json")]) == 2
        assert said in caplog.text
    gt = REPO / "samples" / "labels.json"
    assert main(["infer", samples, "-q", "-o", str(gt), "--gt", str(gt)]) == 2  # would score itself 1.0
    assert "is the ground truth" in caplog.text and not (tmp_path / "p.json").exists()


def test_a_few_tracklets_are_scored_against_a_whole_splits_ground_truth(tmp_path, capsys):
    samples = REPO / "samples" / "tracklets"
    labels = json.loads((REPO / "samples" / "labels.json").read_text())
    first = min(labels)
    root = tmp_path / "tracklets"
    root.mkdir()
    (root / first).symlink_to(samples / first)
    output = tmp_path / "p.json"
    assert main(["infer", str(root), "-q", "-o", str(output), "--gt", str(REPO / "samples" / "labels.json")]) == 0
    right = json.loads(output.read_text())[first] == labels[first]
    assert f"accuracy (SoccerNet evaluator): {right:.4f} over the 1 labelled tracklets read ({len(labels) - 1} more" \
        in capsys.readouterr().out


def test_a_failed_write_of_the_predictions_still_shows_them_and_says_nothing_was_written(tmp_path, monkeypatch,
                                                                                          capsys, caplog):
    def full_disk(path, data):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("jerseynum.cli.write_json_atomic", full_disk)
    output = tmp_path / "p.json"
    samples = str(REPO / "samples" / "tracklets")
    assert main(["infer", samples, "-q", "-o", str(output), "--gt", str(REPO / "samples" / "labels.json"),
                 "--workers", "1"]) == 1
    assert "cannot write" in caplog.text and "No space left on device; nothing was written" in caplog.text
    out = capsys.readouterr().out
    assert "->" not in out and "accuracy" not in out and len([line for line in out.splitlines() if ": " in line]) >= 6


def test_serve_on_a_port_in_use_is_one_line(tmp_path, caplog):
    photos = tmp_path / "photos"
    photos.mkdir()
    with PhotoIndex(tmp_path / "index.db") as index:
        index.bind_root(photos)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert main(["serve", "--index", str(tmp_path / "index.db"), "--port", str(port)]) == 2
    assert f"cannot serve on 127.0.0.1:{port}: Address already in use" in caplog.text


def test_sigterm_ends_a_real_tag_run_cleanly_and_leaves_no_worker(tmp_path):
    """`timeout` and systemd send SIGTERM: the run stops like Ctrl-C, says what it saved, and its workers go."""
    photos = tmp_path / "photos"
    photos.mkdir()
    rng = np.random.default_rng(0)
    for k in range(300):  # noise photos: no runner, but each costs the face search on its tiles
        cv2.imwrite(str(photos / f"{k}.jpg"), rng.integers(0, 255, (480, 640, 3), dtype=np.uint8))
    index = tmp_path / "index.db"
    run = subprocess.Popen([sys.executable, "-m", "jerseynum", "tag", str(photos), "--index", str(index), "-q",
                            "--workers", "2"],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO)  # fmt: skip
    try:
        assert wait_for(lambda: index.exists() and len(children_of(run.pid)) == 2, 120), "the workers never started"
        workers = children_of(run.pid)
        assert wait_for(lambda: committed_photos(index) >= 4, 120), "nothing was tagged"
        run.send_signal(signal.SIGTERM)
        out, err = run.communicate(timeout=60)
    finally:
        run.kill()
    assert run.returncode == 130, err
    assert "interrupted: every photo tagged so far is saved" in out and "Traceback" not in err
    assert wait_for(lambda: not any(alive(pid) for pid in workers), 5)
    assert 4 <= committed_photos(index) < 300



def test_counts_read_as_english():
    assert [counted(0, "photo"), counted(1, "photo"), counted(2, "photo")] == ["0 photos", "1 photo", "2 photos"]
    assert counted(1, "photo is", "photos are") == "1 photo is" and counted(3, "photo is", "photos are") == "3 photos are"


def test_quiet_is_offered_only_where_there_is_a_progress_bar(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["search", "12", "--index", str(tmp_path / "race.db"), "-q"])
    assert exit_.value.code == 2 and "unrecognized arguments: -q" in capsys.readouterr().err
    # -v is everyone's: a search of a missing index is still its own error (2), not an argument error
    assert main(["search", "12", "--index", str(tmp_path / "race.db"), "-v"]) == 2


@pytest.mark.parametrize("mistake, message", [
    (["--arch", "bogus"], "unknown recognizer architecture 'bogus'"),
    (["--device", "gpu"], "unknown device 'gpu'"),
    (["--tilt-sources", "basket"], "unknown training sets ['basket']"),
    (["--start", "absent.pt"], "recognizer weights not found: absent.pt"),
    (["--out", "."], "is a folder, not a file"),
    ([], "no training crops found for basketball"),  # an empty data folder
])  # fmt: skip
def test_recognizer_training_mistakes_are_one_line_and_write_nothing(tmp_path, monkeypatch, caplog, mistake, message):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "data").mkdir()
    args = ["train-recognizer", "--data", "data", "--out", "digits.pt", "--work", "runs", "--quiet"]
    assert main(args + mistake) == 2
    assert message in caplog.text and "Traceback" not in caplog.text
    assert not (tmp_path / "digits.pt").exists()


@pytest.mark.parametrize("command, mistake, message", [
    ("train-recognizer", ["--epochs", "0"], "must be at least 1, not 0"),
    ("train-legibility", ["--rounds", "0"], "must be at least 1, not 0"),
    ("train-legibility", ["--epochs", "0"], "must be at least 1, not 0"),
])  # fmt: skip
def test_training_lengths_under_one_are_refused_when_parsing(capsys, command, mistake, message):
    with pytest.raises(SystemExit) as exit_:
        main([command, *mistake])
    assert exit_.value.code == 2 and message in capsys.readouterr().err


def test_legibility_training_refuses_an_onnx_output_and_an_unknown_architecture(tmp_path, caplog):
    crops = tmp_path / "crops"
    crops.mkdir()
    cv2.imwrite(str(crops / "a.jpg"), render_number("7", 40))
    assert main(["train-legibility", "--crops", str(crops), "--out", str(tmp_path / "legibility.onnx")]) == 2
    assert "not its ONNX export" in caplog.text
    assert main(["train-legibility", "--crops", str(crops), "--out", str(tmp_path / "l.pt"), "--arch", "bogus"]) == 2
    assert "unknown legibility architecture 'bogus'" in caplog.text
    assert not list(tmp_path.glob("*.pt")) and not list(tmp_path.glob("*.onnx"))
