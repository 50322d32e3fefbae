import warnings
from collections.abc import Callable

import numpy as np
import numpy.typing as npt
import pytest

from assistline.media import g711
from assistline.media.g711 import decode_alaw, decode_ulaw, encode_alaw, encode_ulaw

with warnings.catch_warnings():
    # audioop is deprecated; it is the reference here and is never used in assistline/.
    warnings.simplefilter("ignore", DeprecationWarning)
    import audioop

EVERY_SAMPLE = np.arange(-32768, 32768, dtype=np.int16)
EVERY_CODE = np.arange(256, dtype=np.uint8)

Encoder = Callable[[npt.NDArray[np.int16]], npt.NDArray[np.uint8]]
Decoder = Callable[[npt.NDArray[np.uint8] | bytes], npt.NDArray[np.int16]]


@pytest.fixture(params=["c", "numpy"], autouse=True)
def implementation(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Run every test on the C look-ups and on the numpy fallback."""
    if request.param == "numpy":
        monkeypatch.setattr(g711, "ACCELERATED", False)
    return str(request.param)


def test_the_c_accelerator_is_built(implementation: str) -> None:
    # Development machines have a C compiler; a build that silently fell back
    # to numpy would make the benchmark measure the wrong code.
    assert implementation == "numpy" or g711.ACCELERATED


def test_ulaw_encodes_every_sample_as_audioop_does() -> None:
    codes = encode_ulaw(EVERY_SAMPLE)
    assert codes.dtype == np.uint8
    assert codes.tobytes() == audioop.lin2ulaw(EVERY_SAMPLE.tobytes(), 2)


def test_alaw_encodes_every_sample_as_audioop_does() -> None:
    codes = encode_alaw(EVERY_SAMPLE)
    assert codes.dtype == np.uint8
    assert codes.tobytes() == audioop.lin2alaw(EVERY_SAMPLE.tobytes(), 2)


def test_ulaw_decodes_every_code_as_audioop_does() -> None:
    samples = decode_ulaw(EVERY_CODE)
    assert samples.dtype == np.int16
    assert samples.tobytes() == audioop.ulaw2lin(EVERY_CODE.tobytes(), 2)


def test_alaw_decodes_every_code_as_audioop_does() -> None:
    samples = decode_alaw(EVERY_CODE)
    assert samples.dtype == np.int16
    assert samples.tobytes() == audioop.alaw2lin(EVERY_CODE.tobytes(), 2)


def test_known_codes() -> None:
    # Silence and the extremes. -1 shifts arithmetically to -1, not 0, so it is not silence.
    samples = np.array([0, -1, 32767, -32768], dtype=np.int16)
    assert encode_ulaw(samples).tolist() == [0xFF, 0x7E, 0x80, 0x00]
    assert encode_alaw(samples).tolist() == [0xD5, 0x55, 0xAA, 0x2A]
    assert decode_ulaw(b"\xff\x7f\x80\x00").tolist() == [0, 0, 32124, -32124]
    assert decode_alaw(b"\xd5\x55\xaa\x2a").tolist() == [8, -8, 32256, -32256]


@pytest.mark.parametrize(
    ("encode", "decode"), [(encode_ulaw, decode_ulaw), (encode_alaw, decode_alaw)]
)
def test_decoded_codes_encode_to_themselves(encode: Encoder, decode: Decoder) -> None:
    # Every code but μ-law's negative zero (0x7F decodes to 0, which encodes as 0xFF).
    decoded = decode(EVERY_CODE)
    reencoded = encode(decoded)
    differs = np.flatnonzero(reencoded != EVERY_CODE).tolist()
    assert differs == ([0x7F] if encode is encode_ulaw else [])


@pytest.mark.parametrize("decode", [decode_ulaw, decode_alaw])
def test_decoding_a_payload_equals_decoding_its_array(decode: Decoder) -> None:
    codes = np.random.default_rng(3).integers(0, 256, 160, dtype=np.uint8)
    assert np.array_equal(decode(codes.tobytes()), decode(codes))


@pytest.mark.parametrize("encode", [encode_ulaw, encode_alaw])
def test_encoding_keeps_the_frame_length(encode: Encoder) -> None:
    assert encode(np.zeros(160, dtype=np.int16)).shape == (160,)
    assert encode(np.zeros(0, dtype=np.int16)).shape == (0,)


def test_strided_input_encodes_like_a_copy() -> None:
    samples = np.random.default_rng(4).integers(-32768, 32768, 320).astype(np.int16)
    assert np.array_equal(encode_ulaw(samples[::2]), encode_ulaw(samples[::2].copy()))


@pytest.mark.parametrize("encode", [encode_ulaw, encode_alaw])
@pytest.mark.parametrize(
    ("bad", "message"),
    [
        (np.zeros(160, dtype=np.float32), "G.711 encoding takes int16 samples, not float32"),
        (np.zeros(160, dtype=np.int32), "G.711 encoding takes int16 samples, not int32"),
        (np.zeros(160, dtype=">i2"), "G.711 encoding takes int16 samples, not >i2"),
        (
            np.zeros((2, 160), dtype=np.int16),
            "G.711 encoding takes one-dimensional arrays, not shape (2, 160)",
        ),
        ([0] * 160, "G.711 encoding takes int16 samples, not list"),
    ],
)
def test_encoding_refuses_what_is_not_int16_mono(
    encode: Encoder, bad: object, message: str
) -> None:
    with pytest.raises(ValueError) as raised:
        encode(bad)  # type: ignore[arg-type]
    assert str(raised.value) == message


@pytest.mark.parametrize("decode", [decode_ulaw, decode_alaw])
@pytest.mark.parametrize(
    ("bad", "message"),
    [
        (np.zeros(160, dtype=np.int16), "G.711 decoding takes uint8 codes or bytes, not int16"),
        (
            np.zeros((1, 160), dtype=np.uint8),
            "G.711 decoding takes one-dimensional arrays, not shape (1, 160)",
        ),
        (bytearray(160), "G.711 decoding takes uint8 codes or bytes, not bytearray"),
    ],
)
def test_decoding_refuses_what_is_not_codes(decode: Decoder, bad: object, message: str) -> None:
    with pytest.raises(ValueError) as raised:
        decode(bad)  # type: ignore[arg-type]
    assert str(raised.value) == message
