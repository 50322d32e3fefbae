"""G.711 and resampling, measured against audioop and PyAV in one process.

``run()`` returns one flat dict; ``python bench/_media_codecs.py`` prints it as
JSON on its last line and exits 1 when a target is missed. The target (issue
3): G.711 encoding and decoding at least as fast as ``audioop`` per 20 ms
frame, doing the work the media core needs: an int16 frame to an array of
codes, and an RTP payload (bytes) to an int16 frame (the ``*_frame_path_*``
figures; ``audioop`` returns bytes, so it pays a ``numpy.frombuffer`` there).
The bytes-only figures (``encode``/``decode``: ``audioop`` returning bytes, ours
numpy arrays) are reported as information: creating any numpy array costs
more than ``audioop``'s whole bytes-to-bytes decode. ``g711_accelerated`` says
whether the C look-ups (``_g711.c``) ran. Times are the median over
repetitions of the mean over one second of frames, ours and the reference
interleaved so machine noise hits both alike.

Resampling is reported, not targeted: microseconds per 20 ms frame for our
:class:`~assistline.media.resample.Resampler` and for PyAV's
``av.AudioResampler`` configured to come closest to the requirement
(``filter_size=128, cutoff=0.95``), and both converters' passband ripple and
stopband attenuation measured on their int16 output.
"""

from __future__ import annotations

import json
import statistics
import sys
import time
import warnings
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import av
import numpy as np
import numpy.typing as npt

from assistline.media import g711
from assistline.media.frame import samples_per_frame
from assistline.media.resample import Resampler

if TYPE_CHECKING:
    from typing_extensions import Buffer

with warnings.catch_warnings():
    # audioop is deprecated; it is the reference here and is never used in assistline/.
    warnings.simplefilter("ignore", DeprecationWarning)
    import audioop

Samples = npt.NDArray[np.int16]
Codes = npt.NDArray[np.uint8]
Floats = npt.NDArray[np.float64]

G711_REPEATS = 41
G711_PASSES = 10
RESAMPLE_REPEATS = 11
PYAV_OPTIONS = {"filter_size": "128", "cutoff": "0.95"}
TIMED_PAIRS = [(8_000, 16_000), (16_000, 8_000), (48_000, 16_000), (16_000, 48_000)]
QUALITY_PAIRS = [*TIMED_PAIRS, (8_000, 48_000), (48_000, 8_000)]


def _speech_like(seconds: int = 1, rate: int = 8_000) -> Samples:
    """Voiced bursts at about -20 dBFS RMS alternating with quiet noise, like a call.

    ``audioop``'s encoder takes longer on loud samples (it searches the segment
    table sample by sample), so the input mixes loud and quiet frames.
    """
    rng = np.random.default_rng(11)
    t = np.arange(rate * seconds) / rate
    phase = 2 * np.pi * np.cumsum(140 + 30 * np.sin(2 * np.pi * 0.7 * t)) / rate
    voiced = np.zeros(len(t))
    for harmonic in range(1, 20):
        voiced += np.sin(harmonic * phase) / harmonic
    envelope = np.where((t * 4).astype(int) % 2 == 0, 1.0, 0.0)
    loud = 3300 * voiced / np.std(voiced) * envelope
    quiet = rng.normal(0, 30, len(t))
    speech: Samples = np.clip(np.round(loud + quiet), -32768, 32767).astype(np.int16)
    return speech


def _frames(samples: Samples, rate: int) -> list[Samples]:
    step = samples_per_frame(rate)
    return [samples[i : i + step] for i in range(0, len(samples) - step + 1, step)]


def _per_frame_us(
    contenders: dict[str, Callable[[], object]], frames: int, repeats: int, passes: int = 1
) -> dict[str, float]:
    """The median microseconds per frame of each contender, timed in turns.

    Each timing covers ``passes`` runs of a contender over its ``frames`` frames in all.
    """
    times: dict[str, list[float]] = {name: [] for name in contenders}
    for run_once in contenders.values():
        run_once()  # warm up caches and lazy initialisation
    for _ in range(repeats):
        for name, run_once in contenders.items():
            start = time.perf_counter()
            for _ in range(passes):
                run_once()
            times[name].append((time.perf_counter() - start) / frames * 1e6)
    return {name: statistics.median(values) for name, values in times.items()}


def _over(function: Callable[[Any], object], items: list[Any]) -> Callable[[], object]:
    def run_once() -> None:
        for item in items:
            function(item)

    return run_once


def _audioop_encoder(lin2law: Callable[[Buffer, int], bytes]) -> Callable[[Samples], bytes]:
    def encode(frame: Samples) -> bytes:
        # numpy arrays have the buffer protocol; numpy's stubs do not declare it.
        return lin2law(frame, 2)  # type: ignore[arg-type]

    return encode


def _audioop_decoder(law2lin: Callable[[Buffer, int], bytes]) -> Callable[[Codes], bytes]:
    def decode(codes: Codes) -> bytes:
        return law2lin(codes, 2)  # type: ignore[arg-type]

    return decode


def _audioop_frame_encoder(lin2law: Callable[[Buffer, int], bytes]) -> Callable[[Samples], Codes]:
    def encode(frame: Samples) -> Codes:
        return np.frombuffer(lin2law(frame, 2), dtype=np.uint8)  # type: ignore[arg-type]

    return encode


def _audioop_payload_decoder(law2lin: Callable[[Buffer, int], bytes]) -> Callable[[bytes], Samples]:
    def decode(payload: bytes) -> Samples:
        return np.frombuffer(law2lin(payload, 2), dtype=np.int16)

    return decode


def _g711_timings() -> dict[str, Any]:
    frames = _frames(_speech_like(), 8_000)
    result: dict[str, Any] = {}
    laws = {
        "ulaw": (g711.encode_ulaw, g711.decode_ulaw, audioop.lin2ulaw, audioop.ulaw2lin),
        "alaw": (g711.encode_alaw, g711.decode_alaw, audioop.lin2alaw, audioop.alaw2lin),
    }
    for law, (encode, decode, lin2law, law2lin) in laws.items():
        codes = [encode(frame) for frame in frames]
        payloads = [c.tobytes() for c in codes]
        reference = _audioop_encoder(lin2law)
        if any(c.tobytes() != reference(f) for c, f in zip(codes, frames, strict=True)):
            raise AssertionError(f"{law} encoding differs from audioop")
        timings = _per_frame_us(
            {
                "encode_ours": _over(encode, frames),
                "encode_audioop": _over(reference, frames),
                "encode_frame_path_ours": _over(encode, frames),
                "encode_frame_path_audioop": _over(_audioop_frame_encoder(lin2law), frames),
                "decode_ours": _over(decode, codes),
                "decode_audioop": _over(_audioop_decoder(law2lin), codes),
                "decode_frame_path_ours": _over(decode, payloads),
                "decode_frame_path_audioop": _over(_audioop_payload_decoder(law2lin), payloads),
            },
            len(frames) * G711_PASSES,
            G711_REPEATS,
            G711_PASSES,
        )
        for key, value in timings.items():
            result[f"g711_{law}_{key}_us"] = round(value, 3)
        for op in ("encode", "decode", "encode_frame_path", "decode_frame_path"):
            ratio = timings[f"{op}_ours"] / timings[f"{op}_audioop"]
            result[f"g711_{law}_{op}_ours_over_audioop"] = round(ratio, 3)
    return result


def _pyav_converter(from_rate: int, to_rate: int) -> Callable[[Samples], Samples]:
    resampler = av.AudioResampler(format="s16", layout="mono", rate=to_rate, options=PYAV_OPTIONS)

    def convert(frame: Samples) -> Samples:
        wrapped = av.AudioFrame.from_ndarray(frame.reshape(1, -1), format="s16", layout="mono")
        wrapped.sample_rate = from_rate
        outputs = [out.to_ndarray()[0] for out in resampler.resample(wrapped)]
        if len(outputs) == 1:
            only: Samples = outputs[0]
            return only
        return np.concatenate(outputs) if outputs else np.zeros(0, dtype=np.int16)

    return convert


def _ours_converter(from_rate: int, to_rate: int) -> Callable[[Samples], Samples]:
    return Resampler(from_rate, to_rate).process_frame


def _resample_timings() -> dict[str, float]:
    result: dict[str, float] = {}
    for from_rate, to_rate in TIMED_PAIRS:
        frames = _frames(_speech_like(rate=from_rate), from_rate)
        timings = _per_frame_us(
            {
                "ours": _over(_ours_converter(from_rate, to_rate), frames),
                "pyav": _over(_pyav_converter(from_rate, to_rate), frames),
            },
            len(frames),
            RESAMPLE_REPEATS,
        )
        for name, value in timings.items():
            result[f"resample_{from_rate}_{to_rate}_{name}_us"] = round(value, 1)
    return result


def _tones(rate: int, freqs: list[int], amplitude: float, seconds: int = 2) -> Samples:
    phases = np.random.default_rng(len(freqs)).uniform(0, 2 * np.pi, len(freqs))
    t = np.arange(rate * seconds) / rate
    signal = np.zeros(len(t))
    for freq, phase in zip(freqs, phases, strict=True):
        signal += amplitude * np.sin(2 * np.pi * freq * t + phase)
    return np.round(signal).astype(np.int16)


def _amplitudes(samples: Samples, rate: int) -> Floats:
    """Amplitude per 1 Hz bin over one second, after half a second to settle."""
    window = samples[rate // 2 : rate // 2 + rate].astype(np.float64)
    amplitudes: Floats = np.abs(np.fft.rfft(window)) / (rate / 2)
    return amplitudes


def _quality(
    make: Callable[[int, int], Callable[[Samples], Samples]], from_rate: int, to_rate: int
) -> tuple[float, float]:
    """Passband ripple (dB, to 0.45 × the lower rate) and stopband attenuation (dB)."""

    def convert(samples: Samples) -> Samples:
        frame_by_frame = make(from_rate, to_rate)
        pieces = [frame_by_frame(frame) for frame in _frames(samples, from_rate)]
        return np.concatenate(pieces)

    low = min(from_rate, to_rate)
    nyquist = low // 2
    passband = [round(f) for f in np.linspace(50, 0.45 * low, 20)]
    gains = _amplitudes(convert(_tones(from_rate, passband, 1500)), to_rate)[passband] / 1500
    ripple = float(np.ptp(20 * np.log10(gains)))
    worst = 1e-12
    if from_rate > to_rate:  # aliases of tones above the output's Nyquist frequency
        for freq in [nyquist + 3, nyquist + 37, *range(nyquist + 211, from_rate // 2, 613)]:
            alias = abs((freq + nyquist) % to_rate - nyquist)
            out = _amplitudes(convert(_tones(from_rate, [freq], 20000)), to_rate)
            worst = max(worst, float(out[alias]) / 20000)
    else:  # images of tones below the input's Nyquist frequency
        for freq in [*range(100, nyquist, 487), nyquist - 37, nyquist - 3]:
            out = _amplitudes(convert(_tones(from_rate, [freq], 20000)), to_rate)
            worst = max(worst, float(out[nyquist + 1 :].max()) / 20000)
    return round(ripple, 4), round(-20 * float(np.log10(worst)), 1)


def _resample_quality() -> dict[str, float]:
    result: dict[str, float] = {}
    for name, make in (("ours", _ours_converter), ("pyav", _pyav_converter)):
        for from_rate, to_rate in QUALITY_PAIRS:
            ripple, stopband = _quality(make, from_rate, to_rate)
            result[f"resample_{from_rate}_{to_rate}_{name}_ripple_db"] = ripple
            result[f"resample_{from_rate}_{to_rate}_{name}_stopband_db"] = stopband
    return result


def run() -> dict[str, Any]:
    """Measure everything and say whether the G.711 target is met."""
    result: dict[str, Any] = {"name": "media_codecs"}
    result.update(_g711_timings())
    result.update(_resample_timings())
    result.update(_resample_quality())
    for from_rate, to_rate in QUALITY_PAIRS:
        result[f"resample_{from_rate}_{to_rate}_delay_samples"] = Resampler(
            from_rate, to_rate
        ).delay
    result["g711_accelerated"] = g711.ACCELERATED
    # The target compares the work the media core needs done: an int16 frame to a
    # uint8 array of codes, an RTP payload to an int16 frame. audioop returns bytes,
    # so it pays a numpy.frombuffer for that; the bytes-only ratios are reported too.
    encode_met = all(
        result[f"g711_{law}_encode_frame_path_ours_over_audioop"] <= 1 for law in ("ulaw", "alaw")
    )
    decode_met = all(
        result[f"g711_{law}_decode_frame_path_ours_over_audioop"] <= 1 for law in ("ulaw", "alaw")
    )
    result["g711_encode_at_least_as_fast_as_audioop"] = encode_met
    result["g711_decode_at_least_as_fast_as_audioop"] = decode_met
    result["targets_met"] = encode_met and decode_met
    return result


if __name__ == "__main__":
    outcome = run()
    print(json.dumps(outcome))
    sys.exit(0 if outcome["targets_met"] else 1)
