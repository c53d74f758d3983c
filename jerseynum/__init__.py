"""jerseynum: read the number a person wears, from sports video and race photos."""

__version__ = "0.1.0"
