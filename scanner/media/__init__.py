"""Reading recordings and decoding them into the arrays the analysis stages need.

Everything here speaks `MediaError` to its callers: whatever goes wrong inside PyAV (FFmpeg) or
Pillow, the caller gets one exception type whose message is a one-line reason fit for a report.
Decoding recognises a file by its content, never by its extension.

- `probe.probe(path)` -> `MediaInfo`; `frames.iter_frames` -> `Frame`s; `audio.load_audio` -> `AudioTrack`;
  `images.load_image` -> RGB array; `files.sha256_file`.
- `limits`: per-file time and memory limits and the header limits; `coverage`: what each pass decoded.
- `containers`: opening with FFmpeg and reading declared lengths; `prefetch`: decoding in a second thread.
- `sniff`: whether a file is a recording, by name or first bytes; `objstore`: object-store URLs,
  listing and reading; `fileformat`: the YAML files people write.
"""
