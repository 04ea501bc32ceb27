"""Voice activity detection: where in a recording someone speaks.

The detector is Silero VAD, a small pretrained network (an STFT front end, convolutions and an LSTM)
that gives each 32 ms of 16 kHz audio a speech probability. Its ONNX export ships inside the
`silero-vad` wheel (`silero_vad/data/silero_vad_16k_sequence.onnx`, MIT); the scanner loads that file
with onnxruntime from the installed distribution without importing the package (whose `__init__`
imports torch) and never downloads anything. The "sequence" export takes many frames per call
(each with the 64 samples before it as context) and carries the LSTM state between calls, so an hour
of audio is a few hundred calls.

A model rather than an energy detector because room noise, breathing and music are not speech;
accuracy and cost: bench/voices.md, "Speech detection".
"""

from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import scipy.ndimage

from scanner.analysis.voices.model_files import shipped_file

MODEL_FILE = "silero_vad_16k_sequence.onnx"
"""The ONNX export used, inside the `silero_vad/data` folder of the silero-vad distribution."""

MODEL_SHA256 = "9ccdacc4719d8aa7e45a77536bfabec45a03ba1f2fad5e241ab4060b24238a85"
"""SHA-256 of `MODEL_FILE` as shipped in silero-vad 6.2.3. Kept in this module's text on purpose: the
analysis cache key hashes this module, so another model invalidates every cached analysis."""

SAMPLE_RATE = 16000
"""The only rate the model takes: 16 kHz mono float32."""

FRAME_SAMPLES = 512
"""Samples per speech probability (32 ms)."""

CONTEXT_SAMPLES = 64
"""Samples of the previous frame each frame is given as context, as the streaming model keeps them."""

BLOCK_FRAMES = 512
"""Frames per model call (about 16 s of audio)."""


def model_path() -> Path:
    """Path of the ONNX model inside the installed `silero-vad` distribution (the package is not imported).

    Raises FileNotFoundError when the package or its model is not installed.
    """
    return shipped_file("silero_vad", f"data/{MODEL_FILE}", "the speech detector's model")


@functools.lru_cache(maxsize=1)
def _session():
    import onnxruntime

    data = model_path().read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    if digest != MODEL_SHA256:
        raise RuntimeError(f"{MODEL_FILE} is not the speech detector this scanner was checked against "
                           f"(sha256 {digest[:12]}, expected {MODEL_SHA256[:12]}); install silero-vad 6.2.3")
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = 1  # the scan parallelises over files and workers, not inside one model
    options.inter_op_num_threads = 1
    options.log_severity_level = 3  # the export carries unused initialisers that onnxruntime warns about
    return onnxruntime.InferenceSession(data, sess_options=options, providers=["CPUExecutionProvider"])


def speech_probabilities(samples: np.ndarray) -> np.ndarray:
    """Speech probability of every 32 ms frame of 16 kHz audio, shape (ceil(n / 512),), float32.

    Frame i covers samples 512 i to 512 (i + 1); the last frame is zero-padded. The audio is read in
    blocks of `BLOCK_FRAMES` frames, so memory stays at a few MB whatever the length.
    """
    y = np.asarray(samples, dtype=np.float32).ravel()
    n = (len(y) + FRAME_SAMPLES - 1) // FRAME_SAMPLES
    if n == 0:
        return np.zeros(0, np.float32)
    session = _session()
    h = np.zeros((1, 1, 128), np.float32)
    c = np.zeros((1, 1, 128), np.float32)
    out = np.empty(n, np.float32)
    context = np.zeros(CONTEXT_SAMPLES, np.float32)
    for first in range(0, n, BLOCK_FRAMES):
        count = min(BLOCK_FRAMES, n - first)
        frames = np.zeros((count, FRAME_SAMPLES), np.float32)
        piece = y[first * FRAME_SAMPLES: (first + count) * FRAME_SAMPLES]
        frames.reshape(-1)[: len(piece)] = piece
        block = np.empty((count, CONTEXT_SAMPLES + FRAME_SAMPLES), np.float32)
        block[:, CONTEXT_SAMPLES:] = frames
        block[0, :CONTEXT_SAMPLES] = context
        block[1:, :CONTEXT_SAMPLES] = frames[:-1, -CONTEXT_SAMPLES:]
        context = frames[-1, -CONTEXT_SAMPLES:].copy()
        probs, h, c = session.run(["speech_probs", "hn", "cn"], {"input": block, "h": h, "c": c})
        out[first: first + count] = np.asarray(probs, np.float32).ravel()
    return out


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    m = np.concatenate([[False], np.asarray(mask, bool), [False]])
    edges = np.flatnonzero(m[1:] != m[:-1])
    return list(zip(edges[0::2].tolist(), edges[1::2].tolist()))


@dataclass(frozen=True)
class SpeechDetector:
    """Mark speech in 16 kHz audio from Silero VAD's frame probabilities.

    Parameters
    ----------
    threshold : probability at which speech starts (default 0.5, Silero's own default). Speech goes on
        while the probability stays above `threshold - release` (default release 0.15, as Silero's
        `get_speech_timestamps`), so a word's softer middle does not end it. Other thresholds:
        bench/voices.md, "Speech detection".
    pad_s : speech is extended by this much on both sides, to keep soft onsets and endings (default 0.15 s).
    min_gap_s : pauses shorter than this inside speech are bridged (default 0.3 s).
    min_speech_s : speech stretches shorter than this are dropped (default 0.25 s).
    """

    threshold: float = 0.5
    release: float = 0.15
    pad_s: float = 0.15
    min_gap_s: float = 0.3
    min_speech_s: float = 0.25

    def frame_mask(self, probabilities: np.ndarray) -> np.ndarray:
        """Speech (True) per 32 ms frame from the frame probabilities, before padding and bridging."""
        p = np.asarray(probabilities, np.float32)
        start = p >= self.threshold
        hold = p >= self.threshold - self.release
        # A run of "hold" frames is speech when it contains a frame that reaches the threshold.
        labels, count = scipy.ndimage.label(hold)
        if count == 0:
            return np.zeros(len(p), bool)
        keep = np.zeros(count + 1, bool)
        keep[np.unique(labels[start])] = True
        keep[0] = False
        return keep[labels]

    def detect(self, samples: np.ndarray, hop_s: float = 0.01, n_frames: int | None = None) -> np.ndarray:
        """Speech (True) per analysis frame of `hop_s` seconds (frame i centred on i * hop_s, like a centred STFT).

        `n_frames` fixes the length of the mask (default: one frame per hop plus one, as a centred STFT gives).
        """
        y = np.asarray(samples, np.float32)
        if n_frames is None:
            n_frames = int(len(y) / (hop_s * SAMPLE_RATE)) + 1
        return self.mask_from_probabilities(speech_probabilities(y), hop_s, n_frames)

    def mask_from_probabilities(self, probabilities: np.ndarray, hop_s: float, n_frames: int) -> np.ndarray:
        """`detect` from precomputed `speech_probabilities`."""
        if n_frames <= 0 or len(probabilities) == 0:
            return np.zeros(max(0, n_frames), bool)
        coarse = self.frame_mask(probabilities)
        frame_s = FRAME_SAMPLES / SAMPLE_RATE
        idx = np.minimum((np.arange(n_frames) * hop_s / frame_s).astype(np.int64), len(coarse) - 1)
        speech = coarse[idx]
        gap = int(round(self.min_gap_s / hop_s))
        for a, b in _runs(~speech):
            if 0 < a and b < len(speech) and b - a < gap:
                speech[a:b] = True
        shortest = int(round(self.min_speech_s / hop_s))
        for a, b in _runs(speech):
            if b - a < shortest:
                speech[a:b] = False
        pad = int(round(self.pad_s / hop_s))
        if pad > 0 and speech.any():
            speech = scipy.ndimage.binary_dilation(speech, structure=np.ones(2 * pad + 1, bool))
        return speech
