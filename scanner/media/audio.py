"""The audio of a recording as mono float32 samples at the analysis rate (`load_audio`).

Audio keeps its time line: a packet the decoder rejects becomes silence of the same length, so
later time codes stay true, and the track's `coverage` says what was decoded. Decoding stops at
`max_duration_s`, which bounds memory.
"""

from __future__ import annotations

import logging
import math
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from scanner.media.containers import declared_seconds, describe_av_error, open_container, stream_seconds
from scanner.media.coverage import StreamTally, decoded_packets
from scanner.media.files import check_readable_file
from scanner.media.images import open_image
from scanner.media.limits import (
    DEFAULT_MAX_AUDIO_S,
    DEFAULT_MAX_PIXELS,
    MAX_SAMPLE_RATE,
    MIN_SAMPLE_RATE,
    Deadline,
    active_deadline,
    check_deadline,
    format_duration,
)
from scanner.models import AudioTrack, MediaError, NoAudio, StreamCoverage

log = logging.getLogger(__name__)


def load_audio(
    path: Path,
    sample_rate: int = 16000,
    max_duration_s: float = DEFAULT_MAX_AUDIO_S,
    deadline: Deadline | None = None,
) -> AudioTrack | None:
    """Decode the first audio stream to mono float32 at `sample_rate`.

    Parameters
    ----------
    path : Path
        Any container FFmpeg reads (video files included).
    sample_rate : int, default=16000
        Output rate in Hz; 16 kHz is what speech models expect.
    max_duration_s : float, default=14400 (4 hours)
        Decoding stops after this much audio, bounding memory (4 h at 16 kHz is 920 MB of
        float32).
    deadline : Deadline or None
        Stop with MediaError once it expires, checked before each decoded audio frame
        (default: the enclosing `time_limit`).

    Returns
    -------
    AudioTrack or None
        None when the file has no audio stream (or is a still image).

    Raises
    ------
    MediaError
        Unreadable file, an audio stream from which no sample could be decoded, an implausible
        sample rate, or the deadline passed.
    """
    path = Path(path)
    deadline = active_deadline(deadline)
    check_deadline(deadline)
    check_readable_file(path)
    if open_image(path, DEFAULT_MAX_PIXELS * 10) is not None:
        return None  # still images have no sound; FFmpeg's image demuxer need not be involved
    container = open_container(path)
    with container:
        if not container.streams.audio:
            return None
        stream = container.streams.audio[0]
        stream.thread_type = "AUTO"
        original_rate = int(stream.codec_context.sample_rate or 0)
        if original_rate and not (MIN_SAMPLE_RATE <= original_rate <= MAX_SAMPLE_RATE):
            raise MediaError(f"implausible audio sample rate in the header ({original_rate} Hz)")
        # Resample with the channel layout kept and average the channels ourselves: FFmpeg's own
        # downmix adds the channels at -3 dB each, which lifts identical channels above full
        # scale and would show up as false clipping in the voice analysis.
        resampler = av.AudioResampler(format="fltp", layout=None, rate=int(sample_rate))
        limit = int(max_duration_s * sample_rate)
        # Samples go straight into one buffer sized from the declared duration (grown if the
        # stream runs longer): joining a list of chunks at the end would hold the track twice.
        declared = stream_seconds(stream) or (container.duration / av.time_base if container.duration else 0.0)
        buffer = np.empty(min(limit, int(max(1.0, declared) * sample_rate * 1.01) + sample_rate), dtype=np.float32)
        total = 0
        heard = 0  # decoded samples, the silence put in for rejected stretches not counted

        def take(frames, raw: bool = False) -> bool:
            nonlocal total, buffer, heard
            for out in frames:
                data = (out if raw else out.to_ndarray()).mean(axis=0, dtype=np.float32)
                heard += 0 if raw else data.size
                if total + data.size > buffer.size:
                    grown = np.empty(max(total + data.size, int(buffer.size * 1.5)), dtype=np.float32)
                    grown[:total] = buffer[:total]
                    buffer = grown
                buffer[total: total + data.size] = data
                total += data.size
            return total >= limit

        time_base = stream.time_base or Fraction(1, int(sample_rate))
        length = declared_seconds(container, stream)
        tally = StreamTally("audio", time_base, stream.start_time, 0.0, length if length is not None else math.inf)

        def silence(seconds: float) -> None:
            # A rejected packet becomes silence of its length, so later time codes stay true.
            n = int(round(seconds * sample_rate))
            if n > 0:
                take([np.zeros((1, n), dtype=np.float32)], raw=True)

        def rejected() -> None:
            if tally.failed:
                silence(tally.failed[-1].duration)

        try:
            full = False
            for frames in decoded_packets(container, stream, tally, deadline, rejected):
                for frame in frames:
                    frame.pts = None  # let the resampler count samples itself (avoids pts-gap errors)
                    if take(resampler.resample(frame)):
                        full = True
                        break
                if full:
                    limit_text = format_duration(max_duration_s)
                    tally.cut(limit / sample_rate, f"decoding stops at the {limit_text} audio limit")
                    break
            if not full:
                take(resampler.resample(None))
        except (av.FFmpegError, ValueError, OSError) as exc:
            tally.stopped(exc)
            if heard == 0:
                raise NoAudio(f"no decodable audio: {describe_av_error(exc)}", _audio_result(tally)) from None
            log.warning("%s: audio decoding stopped early after %.1f s: %s", path, total / sample_rate, exc)
        coverage = _audio_result(tally)
        if heard == 0:
            raise NoAudio("audio stream holds no decodable samples (truncated or corrupt file)", coverage)
        samples = buffer[: min(total, limit)]
        if samples.size < 0.9 * buffer.size:  # a declared duration far too long: give the slack back
            samples = samples.copy()
        del buffer
        np.clip(samples, -1.0, 1.0, out=samples)
        return AudioTrack(samples=samples, sample_rate=int(sample_rate), original_sample_rate=original_rate,
                          coverage=coverage)


def _audio_result(tally: StreamTally) -> StreamCoverage:
    """The pass's coverage; a stream without a declared length lasts as long as its data."""
    tally.close_open_end()
    return tally.result()
