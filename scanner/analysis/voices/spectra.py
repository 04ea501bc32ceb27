"""Spectra of the voice stage: librosa's short-time Fourier transform and mel filters, without
importing librosa in every scan.

Importing librosa brings numba, scipy.signal and scipy.stats with it: about 1.9 CPU s in every worker
process that analyses a voice, more than the voice stage spends on a minute of speech. The transform
here frames, windows and transforms the samples exactly as `librosa.stft` does (a periodic Hann window,
frames `hop` samples apart, numpy's real FFT, complex64 out for float32 in), and the mel filters are
librosa's own (`librosa.filters.mel`), computed by librosa once and kept in the model cache.
tests/test_voices.py holds both to librosa's results.
"""

from __future__ import annotations

import functools
from importlib import metadata

import numpy as np

from scanner.analysis.model_cache import cache_path, store

#: Frames transformed at once: blocks that stay in the processor's cache, as librosa's do.
BLOCK_FRAMES = 128


@functools.lru_cache(maxsize=8)
def hann_window(length: int) -> np.ndarray:
    """The periodic Hann window of `length` samples, float64: scipy's ``get_window("hann", length)``,
    the window `librosa.stft` uses by default."""
    return 0.5 + 0.5 * np.cos(np.linspace(-np.pi, np.pi, length + 1))[:-1]


def stft(y: np.ndarray, n_fft: int, hop_length: int, win_length: int | None = None,
         center: bool = False) -> np.ndarray:
    """`librosa.stft(y, n_fft=n_fft, hop_length=hop_length, win_length=win_length, center=center,
    pad_mode="constant")` for a 1-D float32 signal: shape (1 + n_fft // 2, frames), complex64.

    A Hann window of `win_length` samples (default `n_fft`) centred in `n_fft`; with `center`, the
    signal is padded with n_fft // 2 zeros at both ends so that frame t is centred on sample
    t * hop_length. Frames: 1 + (len - n_fft) // hop_length of the (padded) signal, none when shorter.
    """
    y = np.asarray(y, dtype=np.float32)
    if center:
        y = np.pad(y, n_fft // 2)
    win_length = n_fft if win_length is None else win_length
    window = np.zeros(n_fft)
    offset = (n_fft - win_length) // 2
    window[offset:offset + win_length] = hann_window(win_length)
    n_frames = 0 if len(y) < n_fft else 1 + (len(y) - n_fft) // hop_length
    out = np.empty((1 + n_fft // 2, n_frames), dtype=np.complex64)
    frames = np.lib.stride_tricks.sliding_window_view(y, n_fft)[::hop_length]
    for start in range(0, n_frames, BLOCK_FRAMES):
        block = frames[start:start + BLOCK_FRAMES]
        out[:, start:start + len(block)] = np.fft.rfft(window * block, axis=-1).T
    return out


def fft_frequencies(sr: float, n_fft: int) -> np.ndarray:
    """Centre frequency (Hz) of each row of `stft`'s result: `librosa.fft_frequencies`."""
    return np.fft.rfftfreq(n=n_fft, d=1.0 / sr)


def mel_filters(sr: int, n_fft: int, n_mels: int) -> np.ndarray:
    """librosa's mel filter bank (`librosa.filters.mel` with its defaults: Slaney mel scale and area
    normalisation), shape (n_mels, 1 + n_fft // 2), float32.

    Kept in the model cache under librosa's version, so librosa is imported only the first time; a
    cache that cannot be read or written only costs that import again.
    """
    return _mel_filters(sr, n_fft, n_mels).copy()


@functools.lru_cache(maxsize=4)
def _mel_filters(sr: int, n_fft: int, n_mels: int) -> np.ndarray:
    try:
        version = metadata.version("librosa")
    except metadata.PackageNotFoundError:
        version = "unknown"
    path = cache_path(f"librosa-{version}-mel-{sr}-{n_fft}-{n_mels}.npy")
    if path is not None and path.is_file():
        try:
            stored = np.load(path, allow_pickle=False)
            if stored.shape == (n_mels, 1 + n_fft // 2) and stored.dtype == np.float32:
                return stored
        except (OSError, ValueError):
            pass
    import librosa

    filters = librosa.filters.mel(sr=sr, n_fft=n_fft, n_mels=n_mels).astype(np.float32)

    def write(partial):
        with open(partial, "wb") as file:
            np.save(file, filters, allow_pickle=False)

    store(path, write)
    return filters
