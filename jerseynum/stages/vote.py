"""Vote: turn the per-frame readings of a tracklet into one number, or NO_NUMBER when the evidence is weak.

Each reading that the mode accepts votes for its digit string with a weight equal to its confidence; readings
under `min_confidence` are ignored. The leader wins when its weight reaches `min_weight` and its share of all
weight reaches `min_share`. The defaults were chosen on the development data (README, "Choosing the vote's
thresholds"); they are parameters so a user can trade recall for precision.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

from jerseynum.types import NO_NUMBER, Mode, Reading


@dataclass(frozen=True)
class VoteResult:
    number: int
    text: str
    confidence: float
    reason: str
    votes: dict[str, float]


@dataclass(frozen=True)
class VoteSettings:
    min_confidence: float = 0.5  # a reading below this does not vote
    # ... nor does one read in a detected line unless the recognizer's doubt (1 - confidence) times the legibility
    # classifier's doubt about the line (1 - its score) is at most this: either may be unsure, not both. At 0.02 a
    # reading at 0.9 needs a line scoring 0.8, one at 0.98 any line (README, "A -1 you can trust"). 0.01 lost an
    # RBNR runner read right (2475 at 0.931 from a line scored 0.81).
    max_line_doubt: float = 0.02
    # A line scored at least this is legible. Once one voting reading comes from a legible line, readings from
    # lines scored under it do not vote: a runner's shirt year read in every frame must not outvote the bib read
    # in the one frame where the classifier calls the bib legible.
    legible_line: float = 0.5
    # A number read on two or more lines (frames) whose mean score is under this is print the classifier keeps
    # calling illegible (a shirt's year read in all 8 frames, its lines scored 0.06-0.13), not a number a person
    # reads. One line's score is noisy, so a single line never decides: the 1st percentile of the line scores of
    # right bib readings on the RBNR runners is 0.24, and a mean over several lines strays less.
    min_repeated_line_legibility: float = 0.2
    min_weight: float = 0.5  # the winner needs at least this much summed confidence
    min_share: float = 0.5  # ... and at least this share of all votes
    settle_weight: float = 3.0  # early stop: the leader has this much weight ...
    settle_share: float = 0.85  # ... and this share, so more frames would not change the outcome


BIB_VOTE = VoteSettings(min_confidence=0.8)
"""Bib mode: RapidOCR reads a legible bib with near certainty (on the RBNR runners it reads right, the 5th
percentile of its confidence is 0.998), while what it reads into a belt, a fold or a blurred bib has a median of
0.76; so bib readings vote from 0.8, and jersey readings, read far less surely, from 0.5 (README, "A -1 you can
trust")."""


def part_of(text: str, longer: str) -> bool:
    """Whether the digit string `text` lies inside the longer `longer` (1104 in 11040): a piece of it."""
    return len(longer) > len(text) and text in longer


class Vote:
    def __init__(self, mode: Mode = Mode.JERSEY, settings: VoteSettings = VoteSettings()) -> None:
        self.mode = mode
        self.settings = settings

    def counts(self, reading: Reading) -> bool:
        """Whether `reading` votes: a number of the mode, confident enough, from a legible enough line."""
        s = self.settings
        if reading.confidence < s.min_confidence or not self.mode.accepts(reading.text):
            return False
        if reading.line_legibility is None:
            return True
        return (1.0 - reading.confidence) * (1.0 - reading.line_legibility) <= s.max_line_doubt

    def voters(self, readings: list[Reading]) -> list[Reading]:
        """The readings that vote: those that count, less those from illegible lines once a legible line voted."""
        counted = [reading for reading in readings if self.counts(reading)]
        legible = self.settings.legible_line
        if any(r.line_legibility is not None and r.line_legibility >= legible for r in counted):
            counted = [r for r in counted if r.line_legibility is None or r.line_legibility >= legible]
        return counted

    def tally(self, readings: list[Reading]) -> dict[str, float]:
        """Summed confidence per accepted digit string, best first."""
        votes: dict[str, float] = defaultdict(float)
        for reading in self.voters(readings):
            votes[reading.text] += reading.confidence
        return dict(sorted(votes.items(), key=lambda item: -item[1]))

    def repeatedly_illegible(self, winners: list[Reading]) -> tuple[int, float] | None:
        """How many lines the winning `winners` came from and their mean score, when there are two or more, every
        one scored, and that mean is under `min_repeated_line_legibility`; else None. Two engines reading one line
        share its box and score, so a line counts once."""
        lines = {(r.box, r.line_legibility) for r in winners}
        if len(lines) < 2 or any(score is None for _, score in lines):
            return None
        mean = sum(score for _, score in lines) / len(lines)
        return (len(lines), mean) if mean < self.settings.min_repeated_line_legibility else None

    def decide(self, readings: list[Reading]) -> VoteResult:
        votes = self.tally(readings)
        if not votes:
            return VoteResult(NO_NUMBER, "", 0.0, f"no accepted reading among {len(readings)}", votes)
        text, weight = next(iter(votes.items()))
        share = weight / sum(votes.values())
        if weight < self.settings.min_weight:
            return VoteResult(NO_NUMBER, "", 0.0, f"weak: {text} has weight {weight:.2f} < {self.settings.min_weight}", votes)
        if share < self.settings.min_share:
            return VoteResult(NO_NUMBER, "", 0.0, f"split: {text} has share {share:.2f} < {self.settings.min_share}", votes)
        winners = [reading for reading in self.voters(readings) if reading.text == text]
        if (illegible := self.repeatedly_illegible(winners)) is not None:
            lines, mean = illegible
            reason = f"illegible print: {text} read on {lines} lines scored {mean:.2f} on average"
            return VoteResult(NO_NUMBER, "", 0.0, reason, votes)
        # Probability that at least one agreeing reading is right, discounted by the dissent.
        agreeing_wrong = 1.0
        for reading in winners:
            agreeing_wrong *= 1.0 - min(reading.confidence, 1.0)
        confidence = (1.0 - agreeing_wrong) * share
        return VoteResult(int(text), text, confidence, f"{text}: weight {weight:.2f}, share {share:.2f}", votes)

    def longer_than(self, text: str, readings: list[Reading]) -> str | None:
        """A voting reading that contains `text` and is longer (`text` may be a fragment of it), if any."""
        return next((r.text for r in readings if part_of(text, r.text) and self.counts(r)), None)

    def settled(self, readings: list[Reading]) -> bool:
        """True once the leader is so far ahead that the remaining frames need not be read."""
        votes = self.tally(readings)
        if not votes:
            return False
        weight = next(iter(votes.values()))
        s = self.settings
        return weight >= s.settle_weight and weight / sum(votes.values()) >= s.settle_share
