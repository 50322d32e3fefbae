"""Opus both ways (libopus driven directly, and through PyAV): the same contract.

Real libopus, the one PyAV loaded; each encoder's packets decode with
either decoder, so a browser (which decodes any Opus) hears the same.
"""

from __future__ import annotations

import numpy as np
import pytest

from assistline.media.frame import FRAME_SAMPLES, INTERNAL_RATE, Samples
from assistline.webrtc import _opus
from assistline.webrtc.opus import libopus_direct, new_decoder, new_encoder

WAYS = pytest.mark.parametrize("direct", [True, False], ids=["direct", "pyav"])


def tone(frequency: float, frames: int) -> Samples:
    """A sine with a little noise, ``frames`` × 20 ms at the internal rate."""
    n = np.arange(frames * FRAME_SAMPLES)
    noise = np.random.default_rng(7).normal(0, 200, len(n))
    signal = 8000 * np.sin(2 * np.pi * frequency * n / INTERNAL_RATE) + noise
    return np.rint(signal).astype(np.int16)


def dominant(samples: Samples) -> float:
    """The frequency of the strongest FFT bin (Hann window), in Hz."""
    spectrum = np.abs(np.fft.rfft(samples.astype(np.float64) * np.hanning(len(samples))))
    spectrum[0] = 0.0
    return float(np.argmax(spectrum)) * INTERNAL_RATE / len(samples)


def test_libopus_is_driven_directly_where_the_extension_was_built() -> None:
    # make test compiles the extension; PyAV's libavcodec has loaded a libopus.
    assert libopus_direct()


@pytest.mark.parametrize("decode_direct", [True, False], ids=["to-direct", "to-pyav"])
@WAYS
def test_a_tone_survives_encoding_and_decoding(direct: bool, decode_direct: bool) -> None:
    encoder, decoder = new_encoder(direct), new_decoder(decode_direct)
    signal = tone(1000.0, 50)
    decoded = []
    for index in range(50):
        payload = encoder.encode(signal[index * FRAME_SAMPLES : (index + 1) * FRAME_SAMPLES])
        assert payload is not None  # one packet a frame, from the first
        assert 1 <= len(payload) <= 200  # about 80 bytes at 32 kbit/s
        decoded.append(decoder.decode(payload))
    assert [len(samples) for samples in decoded] == [FRAME_SAMPLES] * 50
    assert {samples.dtype for samples in decoded} == {np.dtype(np.int16)}
    heard = np.concatenate(decoded[10:])
    assert dominant(heard) == pytest.approx(1000.0, abs=20)
    assert np.sqrt(np.mean(heard.astype(np.float64) ** 2)) > 3000


@WAYS
def test_a_refused_packet_raises_value_error_and_the_decoder_goes_on(direct: bool) -> None:
    encoder, decoder = new_encoder(direct), new_decoder(direct)
    good = encoder.encode(tone(1000.0, 1))
    assert good is not None
    with pytest.raises(ValueError, match="libopus refused the packet"):
        decoder.decode(b"\xff\xff\xff")  # code 3 with 63 frames: invalid
    with pytest.raises(ValueError, match="at least 1 byte, not 0"):
        decoder.decode(b"")
    assert len(decoder.decode(good)) == FRAME_SAMPLES


def test_the_direct_encoder_takes_exactly_20_ms() -> None:
    encoder = new_encoder(True)
    with pytest.raises(ValueError, match=r"^a 20 ms frame is 320 int16 samples \(640 bytes\)"):
        encoder.encode(np.zeros(FRAME_SAMPLES - 1, dtype=np.int16))


def test_libopus_rates_and_settings_are_checked() -> None:
    assert libopus_direct()
    with pytest.raises(ValueError, match="libopus takes 8, 12, 16, 24 or 48 kHz, not 44100 Hz"):
        _opus.Encoder(44_100, 32_000, 1)
    with pytest.raises(ValueError, match="libopus takes 8, 12, 16, 24 or 48 kHz, not 22050 Hz"):
        _opus.Decoder(22_050)
    with pytest.raises(ValueError, match="complexity 0-10"):
        _opus.Encoder(16_000, 32_000, 11)


def test_loading_a_library_that_is_not_loaded_is_refused() -> None:
    with pytest.raises(RuntimeError, match="libopus is not loaded"):
        _opus.load("/nonexistent/libopus.so.0")
