"""The benchmark scripts on a data folder without the shared sets: one line naming what is missing, exit status 2,
and no result table replaced."""

import subprocess
import sys

import pytest

from jerseynum.training import require_sets
from tests.conftest import REPO

NEED_SHARED_DATA = ["sure_digits", "text_crops", "tracklets", "legibility", "metadata", "detector_side", "minus_one",
                    "photos"]  # fmt: skip


def test_a_missing_set_is_named_with_where_the_data_comes_from(tmp_path):
    (tmp_path / "rbnr_bib_photos").mkdir()
    require_sets(tmp_path, ["rbnr_bib_photos"])
    with pytest.raises(FileNotFoundError, match="no misc_bib_photos under .*: the shared data is never copied"):
        require_sets(tmp_path, ["rbnr_bib_photos", "misc_bib_photos"])


def test_every_benchmark_on_the_shared_data_refuses_a_folder_without_it_in_one_line(tmp_path):
    results = REPO / "benchmarks" / "results"
    before = {path: path.stat().st_mtime_ns for path in results.glob("*.json")}
    runs = {name: subprocess.Popen([sys.executable, f"benchmarks/{name}.py", "--data", str(tmp_path)], cwd=REPO,
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            for name in NEED_SHARED_DATA}  # fmt: skip
    for name, run in runs.items():
        _, stderr = run.communicate(timeout=300)
        assert run.returncode == 2 and f"{name}.py: error: no " in stderr and "Traceback" not in stderr, stderr
    assert {path: path.stat().st_mtime_ns for path in results.glob("*.json")} == before
