"""Faces: detection, tracking, quality and 128-d encodings.

`analyzer.FaceAnalyzer` runs the stage on one recording with `settings.FaceSettings`; its steps are
`detection` (where the faces are), `quality` (how usable each is), `tracking` (one face through
time), `track_encoding` (who each track is) and `grouping` (tracks into people). `recognition`
encodes and compares faces (also for enrolment); `dlib_models` is the one door to dlib.
"""
