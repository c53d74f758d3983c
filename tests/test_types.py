import pytest

from jerseynum.types import Mode, Reading


@pytest.mark.parametrize(
    "mode, text, accepted",
    [
        (Mode.JERSEY, "7", True),
        (Mode.JERSEY, "0", True),
        (Mode.JERSEY, "99", True),
        (Mode.JERSEY, "07", False),  # no jersey carries a leading zero ...
        (Mode.JERSEY, "00", True),  # ... but for "00", a number of its own
        (Mode.JERSEY, "100", False),
        (Mode.JERSEY, "", False),
        (Mode.JERSEY, "1a", False),
        (Mode.BIB, "0891", True),  # bibs keep their printed leading zeros
        (Mode.BIB, "7", False),  # a lone digit on a runner is far likelier a belt or a fragment than a bib
        (Mode.BIB, "42", True),
        (Mode.BIB, "123456", True),
        (Mode.BIB, "1234567", False),
    ],
)
def test_mode_accepts_only_numbers_of_its_range(mode, text, accepted):
    assert mode.accepts(text) is accepted


def test_reading_needs_one_confidence_per_character():
    with pytest.raises(ValueError):
        Reading("12", 0.9, (0.9,), "test")
