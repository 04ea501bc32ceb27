"""Reading recordings and decoding them into the arrays the analysis stages need.

Everything here speaks `MediaError` to its callers: whatever goes wrong inside PyAV (FFmpeg) or
Pillow, the caller gets one exception type whose message is a one-line reason fit for a report.
Files are recognised by their content, never by their extension.

- `probe.probe(path)` -> `MediaInfo`; `frames.iter_frames` -> `Frame`s; `audio.load_audio` -> `AudioTrack`;
  `images.load_image` -> RGB array; `files.sha256_file`.
- `limits`: per-file time and memory limits and the header limits; `coverage`: what each pass decoded.
- `containers`: opening with FFmpeg and reading declared lengths; `prefetch`: decoding in a second thread.
- `objstore`: object-store URLs, listing and reading; `fileformat`: the YAML files people write.
"""
