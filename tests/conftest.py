"""Shared fixtures. Models load once per session; real-data tests skip where ../shared/data is absent."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from jerseynum.config import PipelineConfig
from jerseynum.pipeline import Pipeline
from jerseynum.stages.text import TextRecognizer, TextStage, text_recognizer
from jerseynum.types import Mode

REPO = Path(__file__).resolve().parent.parent
DATA = Path(os.environ.get("JERSEYNUM_DATA", REPO.parent / "shared" / "data"))


def data_set(name: str) -> Path:
    """A shared real data set, or a skip with the reason."""
    path = DATA / name
    if not path.is_dir():
        pytest.skip(f"real data not available: {path} is absent (set JERSEYNUM_DATA to a copy of shared/data)")
    return path


# The text tests run against the project's trained recognizer and against RapidOCR.
@pytest.fixture(scope="session", params=["crnn", "rapidocr"])
def jersey_text(request) -> TextRecognizer:
    return text_recognizer(request.param, Mode.JERSEY)


@pytest.fixture(scope="session", params=["crnn", "rapidocr"])
def bib_text(request) -> TextRecognizer:
    return text_recognizer(request.param, Mode.BIB)


@pytest.fixture(scope="session", params=[("crnn",), ("rapidocr",), ("rapidocr", "crnn")], ids="+".join)
def bib_stage(request) -> TextStage:
    return TextStage(request.param, Mode.BIB)


@pytest.fixture(scope="session")
def jersey_pipeline() -> Pipeline:
    return Pipeline(PipelineConfig(mode=Mode.JERSEY))


@pytest.fixture(scope="session")
def bib_pipeline() -> Pipeline:
    return Pipeline(PipelineConfig(mode=Mode.BIB))
