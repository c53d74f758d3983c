"""How counts read in what the commands print and the pages show."""


def counted(count: int, noun: str, plural: str | None = None) -> str:
    """"1 photo", "2 photos": a count with its noun (an -s plural unless `plural` is given)."""
    return f"{count} {noun if count == 1 else plural or noun + 's'}"
