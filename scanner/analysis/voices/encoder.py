"""A pretrained neural speaker encoder (GE2E) run without torch: speaker embeddings on onnxruntime.

The network is the GE2E speaker encoder (Wan et al. 2018) trained and published by the
`resemblyzer` package (Apache-2.0), whose wheel ships the weights as `resemblyzer/pretrained.pt`.
The scanner reads that file from the installed distribution without importing resemblyzer (which
imports torch; the file is read by `scanner.analysis.voices.torch_checkpoint`) and runs the forward pass on
onnxruntime (an LSTM graph built in memory from those weights) or, as a readable reference, on numpy:

- front end: a power mel spectrogram of 16 kHz mono audio, 40 mel bands, 25 ms windows
  (n_fft 400, Hann), 10 ms hop, centred frames, exactly as resemblyzer's `wav_to_mel_spectrogram`
  (librosa's `melspectrogram` with its defaults; not a log spectrogram);
- network: 3 LSTM layers of 256 units over a window of mel frames, the last layer's final hidden
  state through a linear layer to 256 values, ReLU, L2-normalised: one embedding per window, its
  entries non-negative, so the cosine similarity of two embeddings lies in [0, 1];
- utterances: partial windows of 160 frames (1.6 s) laid every 1/`rate` seconds, embedded,
  averaged and renormalised (resemblyzer's `embed_utterance`).

Windows of equal length are batched through the LSTM, so the cost is a few large matrix products per
time step instead of one small one per window.

Public API (shared by the voice stage's diarization and the voiceprints):

- `load_encoder()` -> the process-wide `SpeakerEncoder` (weights read once, checked by SHA-256).
- `SpeakerEncoder.mel(samples)` -> mel frames (n_frames, 40) of a whole track, computed once.
- `SpeakerEncoder.embed_frames(mel, starts, n_frames=160)` -> embeddings of windows picked from those
  frames (window k covers frames starts[k] .. starts[k] + n_frames).
- `SpeakerEncoder.embed_windows(samples, window_s=1.6, hop_s=0.8)` -> (times, embeddings) of sliding
  windows over a track.
- `SpeakerEncoder.embed_utterance(samples)` -> one embedding of a stretch of speech (256,).
- `normalize_volume(samples)`: the level normalisation resemblyzer applies before embedding (-30 dBFS,
  raise only); the embeddings depend on the input level, so apply it to what is embedded.
"""

from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from scanner.analysis.model_cache import cache_path, store
from scanner.analysis.voices import spectra
from scanner.analysis.voices.model_files import shipped_file
from scanner.analysis.voices.torch_checkpoint import read_legacy_torch

SAMPLE_RATE = 16000
"""Sample rate the encoder was trained on; every input must be 16 kHz mono float32 in [-1, 1]."""

N_MELS = 40
"""Mel bands of the front end."""

WINDOW_SAMPLES = 400
"""STFT window (and FFT size) in samples: 25 ms at 16 kHz."""

HOP_SAMPLES = 160
"""STFT hop in samples: 10 ms at 16 kHz, so one mel frame every 10 ms."""

FRAME_S = HOP_SAMPLES / SAMPLE_RATE
"""Seconds between mel frames (0.01)."""

PARTIAL_FRAMES = 160
"""Frames of one partial window of an utterance (1.6 s), as the encoder was trained."""

EMBEDDING_DIM = 256
"""Length of an embedding."""

TARGET_DBFS = -30.0
"""Level resemblyzer normalises utterances to before embedding (`normalize_volume`)."""

WEIGHTS_FILE = "pretrained.pt"
"""Name of the weights file inside the `resemblyzer` package."""

WEIGHTS_SHA256 = "39373b86598fa3da9fcddee6142382efe09777e8d37dc9c0561f41f0070f134e"
"""SHA-256 of the weights file this module was checked against (resemblyzer 0.1.4's `pretrained.pt`).
Kept in this module's text on purpose: the analysis cache key hashes this file, so other weights
would invalidate every cached voiceprint."""

_LSTM_LAYERS = 3
_HIDDEN = 256


def weights_path() -> Path:
    """Path of `pretrained.pt` inside the installed `resemblyzer` distribution (resemblyzer is not imported).

    Raises FileNotFoundError when the package or its weights are not installed.
    """
    return shipped_file("resemblyzer", WEIGHTS_FILE, "the speaker encoder's weights")


# --------------------------------------------------------------------------------------------
# Front end
# --------------------------------------------------------------------------------------------


def normalize_volume(samples: np.ndarray, target_dbfs: float = TARGET_DBFS, increase_only: bool = True) -> np.ndarray:
    """`samples` scaled so that their RMS level is `target_dbfs` (resemblyzer's preprocessing).

    With `increase_only` (the default, as resemblyzer does), louder input is left as it is. Silent
    input is returned unchanged.
    """
    y = np.asarray(samples, dtype=np.float32)
    rms = float(np.sqrt(np.mean(np.square(y, dtype=np.float64)))) if len(y) else 0.0
    if rms <= 0.0:
        return y
    change_db = target_dbfs - 20.0 * np.log10(rms)
    if increase_only and change_db < 0:
        return y
    return (y * np.float32(10.0 ** (change_db / 20.0))).astype(np.float32)


def mel_frames(samples: np.ndarray) -> np.ndarray:
    """Power mel spectrogram of 16 kHz samples, shape (n_frames, 40), frame i centred on sample 160 i.

    Identical to resemblyzer's `wav_to_mel_spectrogram` (librosa STFT: n_fft 400, Hann window, hop 160,
    centred with zero padding; power 2; Slaney mel filters, 40 bands). `len(samples) // 160 + 1` frames.
    """
    y = np.ascontiguousarray(samples, dtype=np.float32)
    spec = np.abs(spectra.stft(y, n_fft=WINDOW_SAMPLES, hop_length=HOP_SAMPLES, center=True))
    return (spectra.mel_filters(SAMPLE_RATE, WINDOW_SAMPLES, N_MELS) @ (spec * spec)).T.astype(np.float32)


# --------------------------------------------------------------------------------------------
# The network
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Layer:
    w_ih: np.ndarray  # (in, 4H), gate columns ordered i, f, o, g; i, f, o pre-scaled by 1/2
    w_hh: np.ndarray  # (H, 4H), same order and scaling
    bias: np.ndarray  # (4H,), b_ih + b_hh, same order and scaling


def _prepare_layer(w_ih: np.ndarray, w_hh: np.ndarray, b_ih: np.ndarray, b_hh: np.ndarray) -> _Layer:
    """Reorder torch's gate blocks (i, f, g, o) to (i, f, o, g) and halve the sigmoid gates.

    sigmoid(x) = (1 + tanh(x / 2)) / 2, so one tanh over all four gates serves every one of them.
    """
    h = w_hh.shape[1]
    order = np.concatenate([np.arange(0, 2 * h), np.arange(3 * h, 4 * h), np.arange(2 * h, 3 * h)])
    scale = np.concatenate([np.full(3 * h, 0.5, np.float32), np.ones(h, np.float32)])
    return _Layer(
        w_ih=np.ascontiguousarray((w_ih[order] * scale[:, None]).T, dtype=np.float32),
        w_hh=np.ascontiguousarray((w_hh[order] * scale[:, None]).T, dtype=np.float32),
        bias=((b_ih + b_hh)[order] * scale).astype(np.float32),
    )


def _one_blas_thread():
    """BLAS on one thread for the LSTM's small per-step matrix products (numpy backend).

    Split over threads, a (batch, 256) x (256, 1024) product costs more in hand-offs and spinning than
    it saves, and scans already run one worker process per core (bench/voices.md, "Speed and memory").
    """
    from threadpoolctl import threadpool_limits

    return threadpool_limits(limits=1, user_api="blas")


_ONNX_GRAPH_VERSION = 1
"""Bumped whenever `_onnx_model_bytes` changes the graph, so that cached copies are rebuilt."""


def _onnx_cache_path(state: dict[str, np.ndarray]) -> Path | None:
    """Where the serialised graph of these weights is kept between runs (`model_cache`), named by a
    digest of the weights; None when no cache folder is known.

    Building the graph needs the `onnx` package, whose import is slow in every worker process; the
    cached bytes load without it (bench/voices.md, "Speed and memory").
    """
    digest = hashlib.sha256()
    for name in sorted(state):
        digest.update(name.encode())
        digest.update(np.ascontiguousarray(state[name], np.float32).tobytes())
    return cache_path(f"ge2e-v{_ONNX_GRAPH_VERSION}-{digest.hexdigest()[:16]}.onnx")


def _onnx_session(state: dict[str, np.ndarray]):
    """An onnxruntime session computing the encoder's un-normalised output from time-major mel windows.

    Input "mels" (T, B, 40) float32; output (B, 256): ReLU(linear(last hidden state of the third
    LSTM layer)). One intra-op thread: scans run one worker process per core. The graph is read from
    the cache (`_onnx_cache_path`) when there, else built and cached (a cache that cannot be written is
    skipped).
    """
    import onnxruntime as ort

    cache = _onnx_cache_path(state)
    model = None
    if cache is not None and cache.is_file():
        model = cache.read_bytes()
    if model is None:
        model = _onnx_model_bytes(state)
        store(cache, lambda partial: partial.write_bytes(model))
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    try:
        return ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])
    except Exception:
        # A damaged cached copy: build the graph again rather than fail the scan.
        return ort.InferenceSession(_onnx_model_bytes(state), options, providers=["CPUExecutionProvider"])


def _onnx_model_bytes(state: dict[str, np.ndarray]) -> bytes:
    """The encoder as a serialised ONNX model (see `_onnx_session`).

    ONNX orders an LSTM's gate blocks i, o, f, c where torch orders them i, f, g, o.
    """
    from onnx import TensorProto, helper, numpy_helper

    def gates(w: np.ndarray) -> np.ndarray:
        i, f, g, o = np.split(np.asarray(w, np.float32), 4, axis=0)
        return np.concatenate([i, o, f, g], axis=0)

    nodes, weights, x = [], [], "mels"
    weights.append(numpy_helper.from_array(np.array([1], np.int64), "axis1"))
    for k in range(_LSTM_LAYERS):
        w = gates(state[f"lstm.weight_ih_l{k}"])[None]
        r = gates(state[f"lstm.weight_hh_l{k}"])[None]
        b = np.concatenate([gates(state[f"lstm.bias_ih_l{k}"]), gates(state[f"lstm.bias_hh_l{k}"])])[None]
        weights += [numpy_helper.from_array(w, f"W{k}"), numpy_helper.from_array(r, f"R{k}"),
                    numpy_helper.from_array(b, f"B{k}")]
        nodes.append(helper.make_node("LSTM", [x, f"W{k}", f"R{k}", f"B{k}"], [f"Y{k}", f"H{k}"], hidden_size=_HIDDEN))
        nodes.append(helper.make_node("Squeeze", [f"Y{k}", "axis1"], [f"S{k}"]))  # (T, 1, B, H) -> (T, B, H)
        x = f"S{k}"
    weights += [numpy_helper.from_array(np.array([0], np.int64), "axis0"),
                numpy_helper.from_array(np.ascontiguousarray(np.asarray(state["linear.weight"], np.float32).T), "LW"),
                numpy_helper.from_array(np.asarray(state["linear.bias"], np.float32), "LB")]
    nodes += [helper.make_node("Squeeze", [f"H{_LSTM_LAYERS - 1}", "axis0"], ["last"]),
              helper.make_node("MatMul", ["last", "LW"], ["projected"]),
              helper.make_node("Add", ["projected", "LB"], ["biased"]),
              helper.make_node("Relu", ["biased"], ["embedding"])]
    graph = helper.make_graph(
        nodes, "ge2e", [helper.make_tensor_value_info("mels", TensorProto.FLOAT, ["T", "B", N_MELS])],
        [helper.make_tensor_value_info("embedding", TensorProto.FLOAT, ["B", EMBEDDING_DIM])], weights)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model.SerializeToString()


class SpeakerEncoder:
    """The GE2E speaker encoder without torch (onnxruntime or numpy).

    Parameters
    ----------
    state : the network's weights by their torch names (`lstm.weight_ih_l0` ... `linear.bias`), as in
        resemblyzer's checkpoint `model_state`.
    batch_size : windows pushed through the LSTM together (default 64: large enough for efficient
        matrix products, small enough to keep the per-layer buffers at a few tens of MB).
    backend : "onnxruntime" (default: the same network as an ONNX graph of three LSTM operators, built
        in memory from these weights and run on one thread; the faster one, bench/voices.md, "Speed and
        memory") or "numpy" (the forward pass written out step by step, the readable reference).
        Both match resemblyzer's torch model to 1e-4 (tests/test_speaker_encoder.py).
    """

    def __init__(self, state: dict[str, np.ndarray], batch_size: int = 64, backend: str = "onnxruntime"):
        if backend not in ("onnxruntime", "numpy"):
            raise ValueError(f"backend must be 'onnxruntime' or 'numpy', not {backend!r}")
        self.batch_size = int(batch_size)
        self.backend = backend
        self._session = _onnx_session(state) if backend == "onnxruntime" else None
        self.layers = [
            _prepare_layer(*(np.asarray(state[f"lstm.{name}_l{k}"], np.float32)
                             for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")))
            for k in range(_LSTM_LAYERS)
        ]
        self.linear_w = np.ascontiguousarray(np.asarray(state["linear.weight"], np.float32).T)
        self.linear_b = np.asarray(state["linear.bias"], np.float32)

    @classmethod
    def from_file(cls, path: Path | str, sha256: str | None = None, **kwargs) -> "SpeakerEncoder":
        """Read a resemblyzer checkpoint (legacy torch format); with `sha256`, refuse any other file."""
        data = Path(path).read_bytes()
        if sha256 is not None:
            digest = hashlib.sha256(data).hexdigest()
            if digest != sha256:
                raise RuntimeError(f"{path} is not the speaker encoder this scanner was checked against "
                                   f"(sha256 {digest[:12]}, expected {sha256[:12]}); install resemblyzer 0.1.4")
        checkpoint = read_legacy_torch(data)
        return cls(checkpoint["model_state"], **kwargs)

    # -- forward pass ----------------------------------------------------------------------

    def forward(self, mels: np.ndarray) -> np.ndarray:
        """Embeddings of a batch of equal-length windows of mel frames, (B, T, 40) -> (B, 256) float32.

        Each embedding is non-negative and has unit L2 norm (an all-zero network output, which real
        input never gives, stays zero).
        """
        mels = np.asarray(mels, np.float32)
        if mels.ndim != 3 or mels.shape[2] != N_MELS:
            raise ValueError(f"expected mel windows of shape (batch, frames, {N_MELS}), got {mels.shape}")
        out = np.empty((len(mels), EMBEDDING_DIM), np.float32)
        if self._session is not None:  # onnxruntime keeps to its own one thread
            for a in range(0, len(mels), self.batch_size):
                out[a:a + self.batch_size] = self._forward_onnx(mels[a:a + self.batch_size])
            return out
        with _one_blas_thread():
            for a in range(0, len(mels), self.batch_size):
                out[a:a + self.batch_size] = self._forward_batch(mels[a:a + self.batch_size])
        return out

    def _forward_onnx(self, mels: np.ndarray) -> np.ndarray:
        raw = self._session.run(None, {"mels": np.ascontiguousarray(mels.transpose(1, 0, 2))})[0]
        norm = np.linalg.norm(raw, axis=1, keepdims=True)
        return (raw / np.where(norm > 0, norm, 1.0)).astype(np.float32)

    def _forward_batch(self, mels: np.ndarray) -> np.ndarray:
        b, t, _ = mels.shape
        hsz = _HIDDEN
        seq = np.ascontiguousarray(mels.transpose(1, 0, 2))  # time-major (T, B, D)
        h = np.zeros((b, hsz), np.float32)
        for k, layer in enumerate(self.layers):
            last = k == len(self.layers) - 1
            x_proj = (seq.reshape(t * b, -1) @ layer.w_ih + layer.bias).reshape(t, b, 4 * hsz)
            h = np.zeros((b, hsz), np.float32)
            c = np.zeros((b, hsz), np.float32)
            outputs = None if last else np.empty((t, b, hsz), np.float32)
            gates = np.empty((b, 4 * hsz), np.float32)
            for step in range(t):
                np.matmul(h, layer.w_hh, out=gates)
                gates += x_proj[step]
                np.tanh(gates, out=gates)
                sig = gates[:, : 3 * hsz]
                sig += 1.0
                sig *= 0.5
                # c = f * c + i * g ; h = o * tanh(c)
                c *= gates[:, hsz: 2 * hsz]
                c += gates[:, :hsz] * gates[:, 3 * hsz:]
                h = gates[:, 2 * hsz: 3 * hsz] * np.tanh(c)
                if outputs is not None:
                    outputs[step] = h
            if outputs is not None:
                seq = outputs
        raw = np.maximum(h @ self.linear_w + self.linear_b, 0.0)
        norm = np.linalg.norm(raw, axis=1, keepdims=True)
        return (raw / np.where(norm > 0, norm, 1.0)).astype(np.float32)

    # -- embeddings ------------------------------------------------------------------------

    @staticmethod
    def mel(samples: np.ndarray) -> np.ndarray:
        """Mel frames of a whole track (see `mel_frames`); compute once, then pick windows with `embed_frames`."""
        return mel_frames(samples)

    def embed_frames(self, mel: np.ndarray, starts, n_frames: int = PARTIAL_FRAMES) -> np.ndarray:
        """Embeddings of windows of `n_frames` mel frames starting at the frame indexes `starts`, (n, 256).

        Frame i of `mel` is centred on time i * `FRAME_S`; a window starting at frame s covers
        s * FRAME_S to (s + n_frames) * FRAME_S seconds. Frames past the end of `mel` are zero
        (silence), as resemblyzer pads the last window. Returns (0, 256) for no starts.
        """
        starts = np.asarray(starts, dtype=np.int64).ravel()
        if len(starts) == 0:
            return np.zeros((0, EMBEDDING_DIM), np.float32)
        if n_frames < 1:
            raise ValueError("n_frames must be at least 1")
        if starts.min() < 0:
            raise ValueError("window starts must be non-negative")
        need = int(starts.max()) + n_frames
        mel = np.asarray(mel, np.float32)
        if need > len(mel):
            mel = np.vstack([mel, np.zeros((need - len(mel), N_MELS), np.float32)])
        index = starts[:, None] + np.arange(n_frames)[None, :]
        return self.forward(mel[index])

    def embed_windows(self, samples: np.ndarray, window_s: float = 1.6, hop_s: float = 0.8
                      ) -> tuple[np.ndarray, np.ndarray]:
        """Embeddings of sliding windows over a track of 16 kHz samples.

        Windows of `window_s` seconds (rounded to 10 ms frames) start every `hop_s` seconds from 0
        while they end within the track; a track shorter than one window gives one window, padded
        with silence. Returns (times, embeddings): times shape (n, 2), start and end in seconds
        (the end may pass the track's end only in that padded case); embeddings shape (n, 256),
        float32, L2-normalised. The input level matters (see `normalize_volume`); it is used as given.
        """
        n_frames = max(1, int(round(window_s / FRAME_S)))
        step = max(1, int(round(hop_s / FRAME_S)))
        mel = self.mel(samples)
        total = len(samples) / SAMPLE_RATE
        last = int(np.floor(total / FRAME_S + 1e-6)) - n_frames
        starts = np.arange(0, last + 1, step) if last >= 0 else np.array([0])
        times = np.stack([starts * FRAME_S, (starts + n_frames) * FRAME_S], axis=1)
        return times, self.embed_frames(mel, starts, n_frames)

    def utterance_starts(self, n_samples: int, rate: float = 1.3, min_coverage: float = 0.75) -> np.ndarray:
        """Frame indexes of the partial windows resemblyzer's `embed_utterance` lays over `n_samples` samples.

        A window of `PARTIAL_FRAMES` frames every round(100 / rate) frames covering the utterance; the
        last one is dropped when less than `min_coverage` of it holds audio (unless it is the only one).
        """
        if not 0 < min_coverage <= 1:
            raise ValueError("min_coverage must be in (0, 1]")
        total_frames = int(np.ceil((n_samples + 1) / HOP_SAMPLES))
        step = int(np.round((SAMPLE_RATE / rate) / HOP_SAMPLES))
        if not 0 < step <= PARTIAL_FRAMES:
            raise ValueError(f"rate must be between {SAMPLE_RATE / (HOP_SAMPLES * PARTIAL_FRAMES)} and "
                             f"{SAMPLE_RATE / HOP_SAMPLES} windows per second")
        steps = max(1, total_frames - PARTIAL_FRAMES + step + 1)
        starts = np.arange(0, steps, step)
        coverage = (n_samples - starts[-1] * HOP_SAMPLES) / (PARTIAL_FRAMES * HOP_SAMPLES)
        if coverage < min_coverage and len(starts) > 1:
            starts = starts[:-1]
        return starts

    def embed_utterance(self, samples: np.ndarray, rate: float = 1.3, min_coverage: float = 0.75,
                        return_partials: bool = False):
        """One embedding (256,) of a stretch of 16 kHz speech, as resemblyzer's `embed_utterance`.

        The speech is cut into 1.6 s partial windows (`utterance_starts`), padded with silence at the
        end where needed; their embeddings are averaged and the mean is L2-normalised. With
        `return_partials`, also returns the partial embeddings (n, 256) and their start frames.
        The input level matters (see `normalize_volume`); it is used as given.
        """
        y = np.asarray(samples, np.float32)
        starts = self.utterance_starts(len(y), rate, min_coverage)
        end = int(starts[-1] + PARTIAL_FRAMES) * HOP_SAMPLES
        if end >= len(y):
            y = np.pad(y, (0, end - len(y)))
        partials = self.embed_frames(self.mel(y), starts)
        embed = mean_embedding(partials)
        if return_partials:
            return embed, partials, starts
        return embed


def mean_embedding(embeddings: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
    """The L2-normalised (weighted) mean of embeddings (n, 256) -> (256,); zeros for none."""
    e = np.asarray(embeddings, np.float32).reshape(-1, EMBEDDING_DIM)
    if len(e) == 0:
        return np.zeros(EMBEDDING_DIM, np.float32)
    mean = np.average(e, axis=0, weights=weights) if weights is not None else e.mean(axis=0)
    norm = float(np.linalg.norm(mean))
    return (mean / norm if norm > 0 else mean).astype(np.float32)


@functools.lru_cache(maxsize=1)
def load_encoder() -> SpeakerEncoder:
    """The speaker encoder from the installed resemblyzer's weights, read once per process.

    Raises FileNotFoundError when resemblyzer is not installed, RuntimeError when its weights are not
    the ones this module was checked against (`WEIGHTS_SHA256`).
    """
    return SpeakerEncoder.from_file(weights_path(), sha256=WEIGHTS_SHA256)
