"""likeness: find identifiable faces and voices in recordings, score cloneability, check consent."""

__version__ = "0.1.0"
