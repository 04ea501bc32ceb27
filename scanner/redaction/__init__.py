"""`likeness redact`: releasable copies with the selected people's faces covered and voices silenced.

- `plan`: who is removed from which recording, from a stored scan (no media decoded).
- `tracking`: follows each removed face through every frame, from the scan's sampled detections.
- `media`: rewrites videos, audio and stills with the covers and silences applied.
- `run`: writes the copies and `redaction.json`.
- `verify`: rescans the copies and reports what is still found of each removed person.
"""
