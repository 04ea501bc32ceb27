"""The GE2E speaker encoder on numpy: same numbers as resemblyzer's torch model, no torch installed."""

from __future__ import annotations

import importlib.metadata
import importlib.util
import io
import pickle
import subprocess
import sys

import numpy as np
import pytest

from scanner.analysis.voices import encoder as se
from scanner.analysis.voices import torch_checkpoint
from tests.helpers import REPO

FIXTURES = REPO / "tests" / "fixtures"


def _reference_inputs() -> dict[str, np.ndarray]:
    spec = importlib.util.spec_from_file_location("make_ge2e_reference", FIXTURES / "make_ge2e_reference.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.reference_inputs()


@pytest.fixture(scope="module")
def encoder() -> se.SpeakerEncoder:
    return se.load_encoder()


def test_torch_is_not_installed_nor_locked():
    assert importlib.util.find_spec("torch") is None
    for name in ("torch", "webrtcvad", "typing"):
        with pytest.raises(importlib.metadata.PackageNotFoundError):
            importlib.metadata.distribution(name)
    lock = (REPO / "uv.lock").read_text()
    assert '\nname = "torch"\n' not in lock
    assert '\nname = "webrtcvad"\n' not in lock
    assert '\nname = "resemblyzer"\n' in lock


def test_loading_the_encoder_does_not_import_resemblyzer():
    code = ("import sys; from scanner.analysis.voices.encoder import load_encoder; load_encoder(); "
            "print('resemblyzer' in sys.modules, 'torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["False", "False"]


def test_weights_come_from_the_installed_wheel_and_are_checked(tmp_path):
    path = se.weights_path()
    assert path.name == "pretrained.pt" and path.parent.name == "resemblyzer"
    bad = tmp_path / "pretrained.pt"
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    bad.write_bytes(bytes(data))
    with pytest.raises(RuntimeError, match="sha256"):
        se.SpeakerEncoder.from_file(bad, sha256=se.WEIGHTS_SHA256)


def test_legacy_reader_refuses_code_in_the_pickle():
    buf = io.BytesIO()
    for obj in (torch_checkpoint.LEGACY_MAGIC, 1001, {}):
        pickle.dump(obj, buf, protocol=2)
    pickle.dump(subprocess.Popen, buf, protocol=2)  # a global outside the allowlist
    with pytest.raises(ValueError, match="unexpected object .*Popen"):
        torch_checkpoint.read_legacy_torch(buf.getvalue())
    with pytest.raises(ValueError, match="magic"):
        torch_checkpoint.read_legacy_torch(pickle.dumps(123, protocol=2))


@pytest.mark.parametrize("backend", ["onnxruntime", "numpy"])
def test_matches_resemblyzer_torch_reference(encoder, backend):
    """Embeddings of fixed inputs computed once by resemblyzer with torch (tests/fixtures/make_ge2e_reference.py)."""
    ref = np.load(FIXTURES / "ge2e_reference.npz")
    if backend != encoder.backend:
        encoder = se.SpeakerEncoder.from_file(se.weights_path(), sha256=se.WEIGHTS_SHA256, backend=backend)
    for name, wav in _reference_inputs().items():
        embed, partials, starts = encoder.embed_utterance(wav, return_partials=True)
        assert partials.shape == ref[f"{name}_partials"].shape, name
        np.testing.assert_allclose(partials, ref[f"{name}_partials"], atol=1e-4, err_msg=name)
        np.testing.assert_allclose(embed, ref[f"{name}_utterance"], atol=1e-4, err_msg=name)
    speech = _reference_inputs()["speech"]
    windows = encoder.embed_frames(encoder.mel(speech), ref["speech_windows150_starts"], n_frames=150)
    np.testing.assert_allclose(windows, ref["speech_windows150"], atol=1e-4)


def test_embed_windows_contract(encoder):
    rng = np.random.default_rng(1)
    y = (0.05 * rng.standard_normal(int(5.05 * se.SAMPLE_RATE))).astype(np.float32)
    times, emb = encoder.embed_windows(y, window_s=1.6, hop_s=0.8)
    assert emb.shape == (len(times), 256) and emb.dtype == np.float32
    np.testing.assert_allclose(times[:, 1] - times[:, 0], 1.6)
    np.testing.assert_allclose(np.diff(times[:, 0]), 0.8)
    assert times[0, 0] == 0 and times[-1, 1] <= 5.05 and times[-1, 1] + 0.8 > 5.05
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-5)
    assert (emb >= 0).all()
    # Windows picked from the track's mel frames are the same windows.
    again = encoder.embed_frames(encoder.mel(y), np.round(times[:, 0] / se.FRAME_S).astype(int))
    np.testing.assert_allclose(again, emb, atol=1e-6)
    # A track shorter than a window gives one padded window.
    times, emb = encoder.embed_windows(y[: se.SAMPLE_RATE // 2])
    assert times.tolist() == [[0.0, 1.6]] and emb.shape == (1, 256)
    assert encoder.embed_frames(encoder.mel(y), []).shape == (0, 256)


def test_unknown_backend_is_refused():
    with pytest.raises(ValueError, match="backend"):
        se.SpeakerEncoder({}, backend="torch")


def test_batches_give_the_same_embeddings(encoder):
    y = _reference_inputs()["speech"]
    mel = encoder.mel(y)
    starts = np.arange(0, len(mel) - 160, 20)
    whole = encoder.embed_frames(mel, starts)
    small = se.SpeakerEncoder.__new__(se.SpeakerEncoder)
    small.__dict__.update(encoder.__dict__, batch_size=3)
    np.testing.assert_allclose(small.embed_frames(mel, starts), whole, atol=1e-6)


def test_normalize_volume():
    y = np.full(1600, 0.001, np.float32)
    out = se.normalize_volume(y)
    assert 20 * np.log10(np.sqrt(np.mean(out.astype(np.float64) ** 2))) == pytest.approx(-30.0, abs=1e-3)
    loud = np.full(1600, 0.5, np.float32)
    assert se.normalize_volume(loud) is not None and np.array_equal(se.normalize_volume(loud), loud)
    assert not se.normalize_volume(np.zeros(10, np.float32)).any()


def test_onnx_graph_is_cached_and_a_damaged_copy_is_rebuilt(tmp_path, monkeypatch, encoder):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    state = torch_checkpoint.read_legacy_torch(se.weights_path().read_bytes())["model_state"]
    mels = np.random.default_rng(2).random((3, 160, se.N_MELS)).astype(np.float32)
    expected = encoder.forward(mels)
    first = se.SpeakerEncoder(state)
    cached = list((tmp_path / "likeness").glob("ge2e-*.onnx"))
    assert len(cached) == 1 and cached[0].stat().st_size > 1_000_000
    np.testing.assert_allclose(first.forward(mels), expected, atol=1e-6)
    cached[0].write_bytes(b"not a model")
    np.testing.assert_allclose(se.SpeakerEncoder(state).forward(mels), expected, atol=1e-6)
