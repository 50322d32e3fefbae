from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import time
import warnings
import wave
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

from assistline.media.bridge import Bridge, TapPoint
from assistline.media.frame import FRAME_SAMPLES, INTERNAL_RATE, AudioFrame, Samples
from assistline.media.recorder import (
    MAX_DATA_BYTES,
    PauseInterval,
    Recorder,
    sidecar_path,
    wav_header,
)

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    import audioop

REPO = Path(__file__).resolve().parents[3]


def known_samples(index: int, channel: int) -> Samples:
    """Frame ``index`` of a deterministic full-scale signal, different per channel."""
    n = np.arange(index * FRAME_SAMPLES, (index + 1) * FRAME_SAMPLES, dtype=np.int64)
    return ((n * (7919 + 104 * channel) + 31 * channel) % 65536 - 32768).astype(np.int16)


def known_frame(index: int, channel: int) -> AudioFrame:
    return AudioFrame(known_samples(index, channel), index * FRAME_SAMPLES)


def read_wav(path: Path) -> tuple[int, int, npt.NDArray[np.int16]]:
    with wave.open(str(path), "rb") as wav:
        assert wav.getsampwidth() == 2
        channels, rate = wav.getnchannels(), wav.getframerate()
        data = np.frombuffer(wav.readframes(wav.getnframes()), dtype="<i2")
    return channels, rate, data.reshape(-1, channels)


def stereo_expected(frames: range) -> npt.NDArray[np.int16]:
    return np.concatenate(
        [np.stack([known_samples(i, 0), known_samples(i, 1)], axis=1) for i in frames]
    )


def wave_module_header(channels: int, rate: int, data_bytes: int) -> bytes:
    out = io.BytesIO()
    with wave.open(out, "wb") as wav:
        wav.setnchannels(channels)
        wav.setsampwidth(2)
        wav.setframerate(rate)
        wav.writeframes(bytes(data_bytes))
    return out.getvalue()[:44]


@pytest.mark.parametrize("channels", [1, 2, 6])
@pytest.mark.parametrize("rate", [8000, 16000, 44100, 48000])
@pytest.mark.parametrize("frames", [0, 1, 320, 16001])
def test_header_is_byte_exact_with_the_wave_module(channels: int, rate: int, frames: int) -> None:
    data_bytes = frames * channels * 2
    assert wav_header(channels, rate, data_bytes) == wave_module_header(channels, rate, data_bytes)


def test_header_for_the_largest_data_chunk() -> None:
    header = wav_header(1, 16000, MAX_DATA_BYTES - 1)
    assert header[4:8] == b"\xfe\xff\xff\xff"
    assert int.from_bytes(header[40:44], "little") == MAX_DATA_BYTES - 1


def test_bad_headers_are_refused_with_exact_messages() -> None:
    with pytest.raises(ValueError, match="^a WAV file has 1 to 65535 channels, not 0$"):
        wav_header(0, 16000, 0)
    with pytest.raises(ValueError, match="^a WAV sample rate must be positive and fit 32 bits"):
        wav_header(1, 0, 0)
    with pytest.raises(
        ValueError, match="^WAV data must be whole 4-byte sample frames and at most"
    ):
        wav_header(2, 16000, 6)
    with pytest.raises(ValueError, match=f"at most {MAX_DATA_BYTES} bytes, not -2$"):
        wav_header(1, 16000, -2)
    with pytest.raises(ValueError, match="^WAV data must be whole 2-byte"):
        wav_header(1, 16000, MAX_DATA_BYTES + 1)


def test_stereo_round_trips_through_the_wave_module(tmp_path: Path) -> None:
    path = tmp_path / "call.wav"
    with Recorder(path, flush_every=3) as recorder:
        for i in range(10):
            recorder.write(known_frame(i, 0), known_frame(i, 1))
    channels, rate, data = read_wav(path)
    assert (channels, rate) == (2, INTERNAL_RATE)
    assert np.array_equal(data, stereo_expected(range(10)))
    assert path.stat().st_size == 44 + 10 * FRAME_SAMPLES * 4


def test_a_missing_side_is_silence(tmp_path: Path) -> None:
    path = tmp_path / "call.wav"
    with Recorder(path) as recorder:
        recorder.write(known_frame(0, 0), None)
        recorder.write(None, known_frame(1, 1))
        recorder.write(None)
    _, _, data = read_wav(path)
    assert np.array_equal(data[:320, 0], known_samples(0, 0)) and not data[:320, 1].any()
    assert np.array_equal(data[320:640, 1], known_samples(1, 1)) and not data[320:640, 0].any()
    assert not data[640:].any() and len(data) == 960


def test_mono_is_a_saturating_mix_like_audioop_add(tmp_path: Path) -> None:
    path = tmp_path / "mono.wav"
    with Recorder(path, channels=1) as recorder:
        for i in range(5):
            recorder.write(known_frame(i, 0), known_frame(i, 1))
        recorder.write(known_frame(5, 0))
        recorder.write(None, known_frame(6, 1))
        recorder.write(None, None)
        # A strided view is written as well as a contiguous array.
        recorder.feed(AudioFrame(np.repeat(known_samples(8, 0), 2)[::2], 0))
    channels, _, data = read_wav(path)
    assert channels == 1
    mixed = [
        np.frombuffer(
            audioop.add(known_samples(i, 0).tobytes(), known_samples(i, 1).tobytes(), 2), "<i2"
        )
        for i in range(5)
    ]
    expected = np.concatenate(
        [*mixed, known_samples(5, 0), known_samples(6, 1), np.zeros(320, np.int16)]
        + [known_samples(8, 0)]
    )
    assert np.array_equal(data[:, 0], expected)
    assert (data[:, 0] == 32767).any() and (data[:, 0] == -32768).any()


def test_pause_writes_silence_of_exactly_the_paused_duration(tmp_path: Path) -> None:
    path = tmp_path / "call.wav"
    with Recorder(path) as recorder:
        for i in range(3):
            recorder.write(known_frame(i, 0), known_frame(i, 1))
        recorder.pause()
        assert recorder.paused
        for i in range(3, 7):
            recorder.write(known_frame(i, 0), known_frame(i, 1))
        recorder.resume()
        for i in range(7, 9):
            recorder.write(known_frame(i, 0), known_frame(i, 1))
        assert recorder.pauses == (PauseInterval(960, 2240),)
    _, _, data = read_wav(path)
    assert len(data) == 9 * FRAME_SAMPLES
    assert np.array_equal(data[:960], stereo_expected(range(3)))
    assert not data[960:2240].any()
    assert np.array_equal(data[2240:], stereo_expected(range(7, 9)))
    assert json.loads(sidecar_path(path).read_text()) == {
        "format": "assistline.recording/1",
        "recording": "call.wav",
        "channels": 2,
        "rate": 16000,
        "samples": 2880,
        "seconds": 0.18,
        "complete": True,
        "pauses": [
            {"start_sample": 960, "end_sample": 2240, "start_seconds": 0.06, "end_seconds": 0.14}
        ],
    }


def test_write_frames_writes_what_as_many_writes_would(tmp_path: Path) -> None:
    """Byte for byte, sidecar included, with a pause and a flush inside a block."""
    frames = [(known_samples(i, 0), known_samples(i, 1)) for i in range(120)]

    def left(span: range) -> Samples:
        return np.concatenate([frames[i][0] for i in span])

    def right(span: range) -> Samples:
        return np.concatenate([frames[i][1] for i in span])

    with Recorder(tmp_path / "one.wav") as recorder:
        for i in range(120):
            if i == 70:
                recorder.pause()
            if i == 90:
                recorder.resume()
            recorder.write(known_frame(i, 0), known_frame(i, 1))
    with Recorder(tmp_path / "many.wav") as recorder:
        recorder.write_frames(left(range(70)), right(range(70)))
        recorder.pause()
        recorder.write_frames(left(range(70, 90)), right(range(70, 90)))
        recorder.resume()
        recorder.write_frames(left(range(90, 120)), right(range(90, 120)))
    assert (tmp_path / "many.wav").read_bytes() == (tmp_path / "one.wav").read_bytes()
    sidecar = json.loads((tmp_path / "many.json").read_text())
    assert sidecar | {"recording": "one.wav"} == json.loads((tmp_path / "one.json").read_text())
    with Recorder(tmp_path / "bad.wav") as recorder:
        with pytest.raises(ValueError, match="whole 20 ms frames"):
            recorder.write_frames(left(range(1))[:100], right(range(1))[:100])
    with Recorder(tmp_path / "mono.wav", channels=1) as recorder:
        with pytest.raises(ValueError, match="stereo only"):
            recorder.write_frames(left(range(1)), right(range(1)))


def test_pause_and_resume_are_idempotent(tmp_path: Path) -> None:
    path = tmp_path / "call.wav"
    recorder = Recorder(path, channels=1)
    recorder.resume()
    assert not recorder.pauses and not recorder.paused
    recorder.write(known_frame(0, 0))
    recorder.pause()
    recorder.pause()
    recorder.write(known_frame(1, 0))
    recorder.pause()
    recorder.resume()
    recorder.resume()
    recorder.write(known_frame(2, 0))
    recorder.pause()
    recorder.write(known_frame(3, 0))
    recorder.resume()
    assert recorder.pauses == (PauseInterval(320, 640), PauseInterval(960, 1280))
    recorder.close()
    before = sidecar_path(path).read_bytes()
    recorder.pause()
    recorder.resume()
    recorder.close()
    assert sidecar_path(path).read_bytes() == before
    assert recorder.pauses == (PauseInterval(320, 640), PauseInterval(960, 1280))
    _, _, data = read_wav(path)
    assert np.array_equal(data[:320, 0], known_samples(0, 0))
    assert not data[320:640].any()
    assert np.array_equal(data[640:960, 0], known_samples(2, 0))
    assert not data[960:].any()


def test_the_sidecar_shows_an_open_pause_while_paused(tmp_path: Path) -> None:
    path = tmp_path / "call.wav"
    recorder = Recorder(path)
    assert json.loads(sidecar_path(path).read_text())["complete"] is False
    recorder.write(None, None)
    recorder.pause()
    recorder.write(known_frame(1, 0), known_frame(1, 1))
    # What an auditor finds if the worker dies now: paused since 320, never resumed.
    document = json.loads(sidecar_path(path).read_text())
    assert document["complete"] is False
    assert document["pauses"] == [
        {"start_sample": 320, "end_sample": None, "start_seconds": 0.02, "end_seconds": None}
    ]
    assert set(document) == {
        "format", "recording", "channels", "rate", "samples", "seconds", "complete", "pauses"
    }  # fmt: skip
    # Closing while paused ends the pause at the end of the recording.
    recorder.close()
    assert recorder.pauses == (PauseInterval(320, 640),)
    assert json.loads(sidecar_path(path).read_text())["pauses"][0]["end_sample"] == 640
    assert not list(tmp_path.glob("*.tmp"))


def test_flush_keeps_the_file_readable_while_writing(tmp_path: Path) -> None:
    path = tmp_path / "call.wav"
    recorder = Recorder(path, flush_every=5)
    for i in range(7):
        recorder.write(known_frame(i, 0), known_frame(i, 1))
    assert (recorder.samples_written, recorder.samples_flushed) == (7 * 320, 5 * 320)
    _, _, data = read_wav(path)
    assert np.array_equal(data, stereo_expected(range(5)))
    recorder.flush()
    _, _, data = read_wav(path)
    assert np.array_equal(data, stereo_expected(range(7)))
    # A manual flush restarts the count to the next one.
    for i in range(7, 11):
        recorder.write(known_frame(i, 0), known_frame(i, 1))
    assert recorder.samples_flushed == 7 * 320
    recorder.write(known_frame(11, 0), known_frame(11, 1))
    assert recorder.samples_flushed == 12 * 320
    recorder.write(known_frame(12, 0), known_frame(12, 1))
    recorder.close()
    assert recorder.closed and recorder.samples_flushed == 13 * 320
    _, _, data = read_wav(path)
    assert np.array_equal(data, stereo_expected(range(13)))


def test_a_pause_flushes_so_the_file_covers_everything_before_it(tmp_path: Path) -> None:
    recorder = Recorder(tmp_path / "call.wav", flush_every=1000)
    recorder.write(None, None)
    recorder.pause()
    assert recorder.samples_flushed == 320
    recorder.close()


def test_bad_use_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "call.wav"
    with pytest.raises(ValueError, match=r"^a recording has 1 \(mono mix\) or 2 \(stereo\)"):
        Recorder(path, channels=3)
    with pytest.raises(
        ValueError, match="^flush_every counts frames and must be at least 1, not 0$"
    ):
        Recorder(path, flush_every=0)
    assert not path.exists()
    recorder = Recorder(path)
    with pytest.raises(FileExistsError):
        Recorder(path)
    recorder.close()
    with pytest.raises(ValueError, match="^the recording is closed$"):
        recorder.write(None, None)
    with pytest.raises(ValueError, match="^the recording is closed$"):
        recorder.flush()


def test_the_recorder_is_a_bridge_pair_tap(tmp_path: Path) -> None:
    path = tmp_path / "call.wav"
    bridge = Bridge()
    bridge.add_party("customer")
    bridge.add_party("agent")
    with Recorder(path) as recorder:
        bridge.add_pair_tap(recorder, TapPoint("customer"), TapPoint("agent"))
        for i in range(4):
            bridge.tick({"customer": known_frame(i, 0), "agent": known_frame(i, 1)})
    _, _, data = read_wav(path)
    assert np.array_equal(data, stereo_expected(range(4)))


# The child writes the known signal in real time, flushing every argv[2] frames,
# and reports each flush; the parent kills it between two flushes.
CHILD = """
import sys, time
from assistline.media.recorder import Recorder
from tests.unit.media.test_recorder import known_frame

recorder = Recorder(sys.argv[1], flush_every=int(sys.argv[2]))
reported = 0
for i in range(100_000):
    recorder.write(known_frame(i, 0), known_frame(i, 1))
    if recorder.samples_flushed != reported:
        reported = recorder.samples_flushed
        print(reported, flush=True)
    time.sleep(0.02)
"""


@pytest.mark.parametrize(
    ("flush_every", "flushes", "kill_after"),
    [
        # Every 100 ms; killed 50 ms later, the unflushed frames still in user space.
        (5, 4, 0.05),
        # Every 400 ms; killed 300 ms later, when the 8 KiB file buffer has already
        # spilled frames that the header does not cover yet onto the disk.
        (20, 2, 0.3),
    ],
)
def test_a_recording_killed_mid_write_is_readable_to_its_last_flush(
    tmp_path: Path, flush_every: int, flushes: int, kill_after: float
) -> None:
    path = tmp_path / "killed.wav"
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(path), str(flush_every)],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert child.stdout is not None
    try:
        flushed: list[int] = []
        while len(flushed) < flushes:
            line = child.stdout.readline()
            assert line, f"the writer died: {child.communicate()[1]}"
            flushed.append(int(line))
        time.sleep(kill_after)
        child.send_signal(signal.SIGKILL)
        assert child.wait(timeout=10) == -signal.SIGKILL
    finally:
        if child.poll() is None:
            child.kill()
        child.communicate(timeout=10)
    assert flushed == [(n + 1) * flush_every * FRAME_SAMPLES for n in range(flushes)]
    channels, rate, data = read_wav(path)
    assert (channels, rate) == (2, INTERNAL_RATE)
    frames = len(data) // FRAME_SAMPLES
    assert len(data) % FRAME_SAMPLES == 0 and len(data) >= flushed[-1]
    assert np.array_equal(data, stereo_expected(range(frames)))
    uncovered = os.path.getsize(path) - 44 - len(data) * 4
    if flush_every == 20:
        assert uncovered > 0
    else:
        assert uncovered >= 0


def test_a_recording_at_8_khz_has_its_rate_in_header_and_sidecar(tmp_path: Path) -> None:
    """A narrowband bridge's recording (sip/conference.py): written whole, at 8 kHz."""
    left = np.arange(160 * 50, dtype=np.int16)
    right = -left
    with Recorder(tmp_path / "narrow.wav", rate=8000) as recorder:
        assert recorder.rate == 8000
        recorder.write_frames(left[:4000], right[:4000])
        recorder.pause()
        recorder.write_frames(left[4000:], right[4000:])
        with pytest.raises(ValueError, match="at 8000 Hz is written with write_frames"):
            recorder.write(None, None)
        with pytest.raises(ValueError, match="whole 20 ms frames"):
            recorder.write_frames(left[:100], right[:100])
    with wave.open(str(tmp_path / "narrow.wav"), "rb") as wav:
        assert (wav.getnchannels(), wav.getframerate(), wav.getnframes()) == (2, 8000, 8000)
        audio = np.frombuffer(wav.readframes(8000), "<i2").reshape(-1, 2)
    assert np.array_equal(audio[:4000, 0], left[:4000])
    assert not audio[4000:].any()
    sidecar = json.loads((tmp_path / "narrow.json").read_text())
    assert (sidecar["rate"], sidecar["seconds"]) == (8000, 1.0)
    assert sidecar["pauses"] == [
        {"start_sample": 4000, "end_sample": 8000, "start_seconds": 0.5, "end_seconds": 1.0}
    ]


@pytest.mark.parametrize("rate", [7999, 4000, 96000])
def test_a_recording_rate_must_make_20_ms_frames(tmp_path: Path, rate: int) -> None:
    with pytest.raises(ValueError, match="8000..48000 Hz in 20 ms frames"):
        Recorder(tmp_path / "x.wav", rate=rate)
