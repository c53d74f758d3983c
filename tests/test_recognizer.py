"""The project's digit recognizer: network, input preparation, data splits, training, and the shipped weights."""

import json

import numpy as np
import pytest
import torch

from jerseynum.stages.crnn import (
    DEFAULT_WEIGHTS,
    INPUT_SIZE,
    build_recognizer,
    crop_views,
    input_spec,
    load_checkpoint,
    prepare,
)
from jerseynum.stages.text import CRNNText, _agreed
from jerseynum.training import splits, train_recognizer
from jerseynum.training.synth import render_number, render_training_crop
from jerseynum.training.train_recognizer import Sample, augment, greedy_decode, lean, train
from jerseynum.types import Mode, Reading


def test_prepare_keeps_the_aspect_and_pads_with_the_mean_colour():
    crop = np.zeros((20, 10, 3), np.uint8)
    crop[:, :, 2] = 255  # pure red (BGR)
    line = prepare(crop)
    assert line.shape == (3, *INPUT_SIZE) and line.dtype == np.float32
    assert np.allclose(line[0], 1.0) and np.allclose(line[2], -1.0)  # RGB order: red is channel 0, everywhere
    grey = prepare(crop, (64, 64), grey=True)
    assert grey.shape == (1, 64, 64) and np.allclose(grey, grey[0, 0, 0])


def test_the_network_emits_one_step_per_four_columns():
    model = build_recognizer("crnn_tiny").eval()
    with torch.no_grad():
        log_probs = model(torch.zeros(2, 3, *INPUT_SIZE))
    assert log_probs.shape == (INPUT_SIZE[1] // 4, 2, 11)
    assert torch.allclose(log_probs.exp().sum(-1), torch.ones(INPUT_SIZE[1] // 4, 2))


def test_easyocr_g2_keeps_its_digit_knowledge_when_its_output_is_cut_to_digits():
    model = build_recognizer("easyocr_g2", pretrained=True).eval()
    input_size, grey = input_spec("easyocr_g2")
    crops = [render_number(n, 48, shirt=(255, 255, 255), ink=(0, 0, 0)) for n in ("36", "7", "58")]
    with torch.no_grad():
        log_probs = model(torch.from_numpy(np.stack([prepare(c, input_size, grey) for c in crops])))
    assert greedy_decode(log_probs) == ["36", "7", "58"]  # before any fine-tuning


def test_greedy_decode_merges_repeats_and_drops_blanks():
    steps = [0, 3, 3, 0, 3, 8, 8, 0]  # blank, "2", "2", blank, "2", "7", "7", blank -> "227"
    log_probs = torch.nn.functional.one_hot(torch.tensor(steps), 11).float().log()[:, None, :]
    assert greedy_decode(log_probs) == ["227"]


def test_splits_put_each_group_on_one_side_about_half_each():
    ids = [str(i) for i in range(400)]
    scored = [splits.soccernet_scored(i) for i in ids]
    assert 150 < sum(scored) < 250
    assert scored == [splits.soccernet_scored(i) for i in ids]  # deterministic
    assert splits.bib_scored("T2182") == splits.bib_scored("2182")  # grouped by the digits
    assert splits.roboflow_tracklet("train__12_3_jpg.rf.ab.jpg_7.jpg") == "12"
    assert splits.genl_crop_tracklet("12_3.jpg") == "12"


def test_a_number_crop_is_scored_by_its_sets_group():
    crop = "train__12_3_jpg.rf.ab.jpg_7.jpg"
    assert splits.number_crop_scored("soccernet_numcrops_roboflow", crop) == splits.soccernet_scored("12")
    assert splits.number_crop_scored("basketball_jersey_crops", "valid_000007_n27.jpg")
    assert splits.number_crop_scored("bibracer_bib_crops", "a.jpg", "T2182") == splits.bib_scored("2182")
    with pytest.raises(ValueError, match="not a number-crop set"):
        splits.number_crop_scored("rbnr_bib_photos", "set1_01.JPG")


def test_a_sets_scored_crops_are_those_of_its_scored_groups_in_label_order(tmp_path):
    scored_id = next(str(i) for i in range(100) if splits.soccernet_scored(str(i)))
    trained_id = next(str(i) for i in range(100) if not splits.soccernet_scored(str(i)))
    root = tmp_path / "soccernet_numcrops_roboflow"
    root.mkdir()
    crops = {f"train__{tracklet}_{frame}_jpg.rf.ab.jpg_1.jpg": [label]
             for tracklet, frame, label in [(scored_id, 2, "7"), (trained_id, 1, "9"), (scored_id, 1, "17")]}  # fmt: skip
    (root / "labels.json").write_text(json.dumps(crops))
    assert splits.scored_number_crops(root) == [(f"train__{scored_id}_2_jpg.rf.ab.jpg_1.jpg", "7"),
                                                (f"train__{scored_id}_1_jpg.rf.ab.jpg_1.jpg", "17")]  # fmt: skip


def test_augment_and_rendering_give_valid_crops():
    rng = np.random.default_rng(0)
    for _ in range(50):
        image, label = render_training_crop(rng)
        assert image.ndim == 3 and image.dtype == np.uint8 and min(image.shape[:2]) >= 4
        assert label == "" or label.isdigit()
        view = augment(image, rng)
        assert view.ndim == 3 and view.dtype == np.uint8 and min(view.shape[:2]) >= 2


def test_a_leaning_crop_keeps_its_whole_number_on_a_grown_canvas():
    crop = np.full((60, 40, 3), 255, np.uint8)
    crop[5:55, 2:38] = 0  # a dark block that fills the crop, as a number fills its box
    dark = lambda image: int((image[:, :, 0] < 128).sum())
    grown = lean(crop, 45, 0.0, grow=True)
    assert grown.shape[0] > crop.shape[0] and grown.shape[1] > crop.shape[1]
    assert abs(dark(grown) - dark(crop)) < 0.05 * dark(crop)  # nothing of the block is cut
    assert dark(lean(crop, 45, 0.0)) < 0.95 * dark(crop)  # on its own canvas the turned block loses its corners
    assert lean(crop, 5, 0.1).shape == crop.shape


def test_only_a_tilt_beyond_eight_degrees_grows_the_canvas():
    image = np.full((80, 30, 3), 200, np.uint8)  # tall: a turned copy is much wider
    framed_at_most = lambda view: view.shape[1] <= 30 + 2 * 0.15 * 80  # framing adds <= 15 % of the height a side
    assert all(framed_at_most(augment(image, np.random.default_rng(seed))) for seed in range(60))
    assert not all(framed_at_most(augment(image, np.random.default_rng(seed), 80.0)) for seed in range(60))


def test_a_tilt_can_be_kept_to_the_sets_whose_numbers_lean(monkeypatch):
    seen = []
    monkeypatch.setattr(train_recognizer, "augment", lambda image, rng, tilt: seen.append(tilt) or image)
    crop = np.full((40, 30, 3), 200, np.uint8)
    samples = [Sample(crop, "7", "basketball"), Sample(crop, "17", "soccernet_genL"), Sample(crop, "", "synthetic")]
    train_recognizer._batch(samples, "crnn_tiny", np.random.default_rng(0), 50.0, frozenset({"basketball"}))
    assert seen == [50.0, 8.0, 8.0]
    seen.clear()
    train_recognizer._batch(samples, "crnn_tiny", np.random.default_rng(0), 50.0)
    assert seen == [50.0, 50.0, 50.0]


def test_training_lowers_the_loss_and_the_saved_weights_load_back(tmp_path):
    rng = np.random.default_rng(1)
    real = {"rendered": [(Sample(render_number(str(n), 40), str(n), "rendered"), str(n)) for n in rng.integers(0, 100, 96)]}
    out = tmp_path / "digits.pt"
    report = train(tmp_path, out, arch="crnn_tiny", epochs=3, synthetic=96, batch_size=32, learning_rate=5e-3,
                   patience=3, real=real, progress=False)  # fmt: skip
    losses = [epoch["loss"] for epoch in report["history"]]
    assert losses[-1] < losses[0]
    _, input_size, grey, meta = load_checkpoint(out)
    assert input_size == INPUT_SIZE and not grey and meta["arch"] == "crnn_tiny" and len(meta["history"]) == 3
    reading = CRNNText(Mode.JERSEY, weights=out).recognize([render_number("42", 40)])[0]
    assert reading.engine == "crnn" and len(reading.char_confidences) == len(reading.text)
    # Continuing from the saved weights starts where they ended, not from the beginning.
    again = train(tmp_path, tmp_path / "again.pt", arch="crnn_tiny", epochs=1, synthetic=96, batch_size=32,
                  learning_rate=5e-3, real=real, progress=False, start=out, tilt=30.0)  # fmt: skip
    assert again["history"][0]["loss"] < losses[0] and again["start"] == "digits.pt" and again["tilt"] == 30.0
    assert again["start_meta"]["history"] == report["history"]  # the weights' lineage travels with them


def test_missing_weights_are_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="recognizer weights not found"):
        CRNNText(Mode.JERSEY, weights=tmp_path / "absent.pt")


@pytest.mark.skipif(not DEFAULT_WEIGHTS.is_file(), reason="no shipped recognizer weights")
def test_shipped_weights_read_rendered_jersey_numbers_and_bibs():
    text = CRNNText(Mode.JERSEY)
    numbers = ["7", "23", "58", "90"]
    readings = text.recognize([render_number(n, 40) for n in numbers])
    assert [r.text for r in readings] == numbers
    assert all(r.confidence > 0.8 for r in readings)
    bib = render_number("T2182", 48, shirt=(255, 255, 255), ink=(20, 20, 20))
    assert text.recognize([bib])[0].text == "2182"  # the letter prefix is not a digit


def test_crop_views_move_the_framing_and_a_bad_count_is_refused():
    crop = render_number("23", 24)
    views = crop_views(crop, 5)
    assert len(views) == 5 and views[0] is crop
    h, w = crop.shape[:2]
    assert views[1].shape[0] > h and views[1].shape[1] > w  # padded all round
    assert views[2].shape[0] < h and views[2].shape[1] < w  # trimmed
    assert views[3].shape[0] == h and views[3].shape[1] > w  # padded at the sides
    assert views[4].shape == crop.shape and not np.array_equal(views[4], crop)  # blurred
    with pytest.raises(ValueError, match="test views must be 1 to 5"):
        crop_views(crop, 6)


def test_views_vote_by_summed_confidence_and_disagreement_lowers_it():
    views = [Reading("23", 0.9, (0.9, 0.9), "crnn"), Reading("2", 0.95, (0.95,), "crnn"),
             Reading("23", 0.7, (0.8, 0.6), "crnn")]  # fmt: skip
    agreed = _agreed(views)
    assert agreed.text == "23"  # 1.6 beats a single surer "2"
    assert agreed.confidence == pytest.approx(1.6 / 3)
    assert agreed.char_confidences == pytest.approx((1.7 / 3, 1.5 / 3))
    assert _agreed(views[:1]) == views[0]


@pytest.mark.skipif(not DEFAULT_WEIGHTS.is_file(), reason="no shipped recognizer weights")
def test_the_crnn_reads_one_reading_per_crop_with_views():
    numbers = ["7", "23", "58"]
    readings = CRNNText(Mode.JERSEY, views=5).recognize([render_number(n, 40) for n in numbers])
    assert [r.text for r in readings] == numbers


def tiny_training(seed: int) -> dict:
    """`train` options for a tiny recognizer on 32 rendered numbers drawn from `seed`: seconds a run."""
    rng = np.random.default_rng(seed)
    real = {"rendered": [(Sample(render_number(str(n), 40), str(n), "rendered"), str(n)) for n in rng.integers(0, 100, 32)]}
    return {"arch": "crnn_tiny", "synthetic": 32, "batch_size": 32, "learning_rate": 5e-3, "real": real,
            "progress": False}  # fmt: skip


def test_a_soup_averages_its_runs_and_reuses_finished_ones(tmp_path, monkeypatch):
    from jerseynum.training import train_recognizer

    options = tiny_training(seed=2)
    out, work = tmp_path / "soup.pt", tmp_path / "runs"
    meta = train_recognizer.train_soup(tmp_path, out, [1, 2], work, **options)
    assert [run["epochs"] for run in meta["soup"]] == [1, 2] and all(run["finished"] for run in meta["soup"])
    runs = [torch.load(work / f"soup-{n}-epochs.pt", weights_only=True)["state_dict"] for n in (1, 2)]
    soup = torch.load(out, weights_only=True)["state_dict"]
    key = next(k for k, v in soup.items() if v.is_floating_point() and not torch.equal(runs[0][k], runs[1][k]))
    assert torch.allclose(soup[key], (runs[0][key] + runs[1][key]) / 2)
    assert CRNNText(Mode.JERSEY, weights=out).recognize([render_number("42", 40)])[0].engine == "crnn"

    def no_training(*args, **kwargs):
        raise AssertionError("a finished run was trained again")

    monkeypatch.setattr(train_recognizer, "train", no_training)
    train_recognizer.train_soup(tmp_path, out, [1, 2], work, **options)  # both runs reused
    with pytest.raises(AssertionError, match="trained again"):  # another seed is another run
        train_recognizer.train_soup(tmp_path, out, [1, 2], work, **{**options, "seed": 1})
    with pytest.raises(AssertionError, match="trained again"):  # so is one on another data folder
        train_recognizer.train_soup(tmp_path / "other-data", out, [1, 2], work, **options)


def test_a_soup_from_a_start_checkpoint_is_reused_only_while_that_checkpoint_is_the_same(tmp_path, monkeypatch):
    from jerseynum.training import train_recognizer

    options = tiny_training(seed=3)
    first, second, start = tmp_path / "first.pt", tmp_path / "second.pt", tmp_path / "start.pt"
    train(tmp_path, first, epochs=1, **options)
    train(tmp_path, second, epochs=1, **{**options, "seed": 1})
    start.write_bytes(first.read_bytes())
    with pytest.raises(ValueError, match="holds a crnn_tiny recognizer, not crnn_small"):
        train(tmp_path, tmp_path / "small.pt", epochs=1, start=start, **{**options, "arch": "crnn_small"})
    out, work = tmp_path / "tuned.pt", tmp_path / "runs"
    meta = train_recognizer.train_soup(tmp_path, out, [1], work, start=start, **options)
    assert meta["soup"][0]["start"] == "start.pt" and meta["soup"][0]["start_sha256"] is not None

    def no_training(*args, **kwargs):
        raise AssertionError("a finished run was trained again")

    monkeypatch.setattr(train_recognizer, "train", no_training)
    train_recognizer.train_soup(tmp_path, out, [1], work, start=start, **options)  # the same start: reused
    start.write_bytes(second.read_bytes())  # another checkpoint under the same name
    with pytest.raises(AssertionError, match="trained again"):
        train_recognizer.train_soup(tmp_path, out, [1], work, start=start, **options)


def test_checkpoints_of_different_architectures_are_not_averaged(tmp_path):
    from jerseynum.stages.crnn import save_checkpoint
    from jerseynum.training.train_recognizer import average_checkpoints

    paths = []
    for arch in ("crnn_tiny", "crnn_small"):
        paths.append(tmp_path / f"{arch}.pt")
        save_checkpoint(paths[-1], build_recognizer(arch), arch, input_spec(arch)[0], {"arch": arch})
    with pytest.raises(ValueError, match="cannot average"):
        average_checkpoints(paths, tmp_path / "soup.pt")
    assert not (tmp_path / "soup.pt").exists()


def test_checkpoints_of_different_alphabets_are_not_averaged(tmp_path):
    from jerseynum.stages.crnn import save_checkpoint
    from jerseynum.training.train_recognizer import average_checkpoints

    paths = [tmp_path / "a.pt", tmp_path / "b.pt"]
    for path in paths:
        save_checkpoint(path, build_recognizer("crnn_tiny"), "crnn_tiny", input_spec("crnn_tiny")[0], {})
    other = torch.load(paths[1], weights_only=True)
    other["alphabet"] = other["alphabet"][::-1]  # same shapes, characters in another order
    torch.save(other, paths[1])
    with pytest.raises(ValueError, match="cannot average"):
        average_checkpoints(paths, tmp_path / "soup.pt")
    assert not (tmp_path / "soup.pt").exists()


def test_an_interrupted_run_leaves_its_output_as_it_was_and_keeps_its_best_epoch_apart(tmp_path, monkeypatch):
    out = tmp_path / "digits.pt"
    out.write_bytes(b"the shipped model")
    scored = []

    def evaluate_then_interrupt(*args):
        if scored:
            raise KeyboardInterrupt  # Ctrl-C during the second epoch
        scored.append(1)
        return {"all": 0.5}

    monkeypatch.setattr(train_recognizer, "evaluate", evaluate_then_interrupt)
    with pytest.raises(KeyboardInterrupt):
        train(tmp_path, out, epochs=3, **tiny_training(seed=4))
    assert out.read_bytes() == b"the shipped model"
    partial = train_recognizer.partial_path(out)
    assert partial.name == "digits.partial.pt" and load_checkpoint(partial)[3]["best_epoch"] == 1
    monkeypatch.undo()
    train(tmp_path, out, epochs=1, **tiny_training(seed=4))  # a finished run replaces the output, partial gone
    assert load_checkpoint(out)[3]["finished"] and not partial.exists()


def test_training_settings_that_cannot_work_are_refused_before_any_data_is_loaded(tmp_path):
    from jerseynum.training.train_recognizer import check_options

    (tmp_path / "damaged.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="unknown recognizer architecture 'bogus'"):
        check_options("bogus", "cpu")
    with pytest.raises(ValueError, match="unknown device 'gpu'"):
        check_options("crnn_tiny", "gpu")
    with pytest.raises(ValueError, match=r"unknown training sets \['basket'\]"):
        check_options("crnn_tiny", "cpu", tilt_sources=["basket"])
    with pytest.raises(FileNotFoundError, match="recognizer weights not found"):
        check_options("crnn_tiny", "cpu", tmp_path / "absent.pt")
    with pytest.raises(ValueError, match="damaged.pt: not a recognizer checkpoint"):
        check_options("crnn_tiny", "cpu", tmp_path / "damaged.pt")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="no CUDA GPU on this machine"):
            check_options("crnn_tiny", "cuda")
    check_options("crnn_tiny", "cpu", tilt_sources=["basketball"])  # what works passes
