"""Faces: detection, tracking, quality and 128-d encodings."""
