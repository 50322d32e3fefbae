from __future__ import annotations

import warnings

import numpy as np
import numpy.typing as npt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from assistline.media.bridge import Bridge, TapPoint
from assistline.media.frame import FRAME_SAMPLES, AudioFrame, Samples

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    import audioop

RNG = np.random.default_rng(20240603)


def noise(low: int = -32768, high: int = 32767) -> Samples:
    return RNG.integers(low, high, FRAME_SAMPLES, endpoint=True).astype(np.int16)


def const(value: int) -> Samples:
    return np.full(FRAME_SAMPLES, value, dtype=np.int16)


def f(samples: Samples, timestamp: int = 0) -> AudioFrame:
    return AudioFrame(samples, timestamp)


def saturated(total: npt.NDArray[np.int64] | npt.NDArray[np.float64]) -> Samples:
    clipped: Samples = np.clip(total, -32768, 32767).astype(np.int16)
    return clipped


def bridge_of(*parties: str) -> Bridge:
    bridge = Bridge()
    for party in parties:
        bridge.add_party(party)
    return bridge


class Recording:
    """A tap that keeps what it was fed."""

    def __init__(self) -> None:
        self.frames: list[AudioFrame] = []
        self.pairs: list[tuple[AudioFrame, AudioFrame]] = []

    def feed(self, frame: AudioFrame) -> None:
        self.frames.append(frame)

    def feed_pair(self, left: AudioFrame, right: AudioFrame) -> None:
        self.pairs.append((left, right))


class Player:
    """A source playing given frames, then silence, noting when it was asked."""

    def __init__(self, *frames: Samples) -> None:
        self.queue = list(frames)
        self.asked: list[int] = []

    def read(self, timestamp: int) -> AudioFrame | None:
        self.asked.append(timestamp)
        return AudioFrame(self.queue.pop(0), 999) if self.queue else None


class Negate:
    """A stateful filter: counts its calls and inverts the audio."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, frame: AudioFrame) -> AudioFrame:
        self.calls += 1
        return AudioFrame((-frame.samples.astype(np.int32)).clip(-32768, 32767).astype(np.int16), 0)


def test_two_parties_hear_each_other_exactly() -> None:
    bridge = bridge_of("customer", "agent")
    a, b = noise(), noise()
    heard = bridge.tick({"customer": f(a, 5000), "agent": f(b, 77)})
    assert list(heard) == ["customer", "agent"]
    assert np.array_equal(heard["customer"].samples, b)
    assert np.array_equal(heard["agent"].samples, a)
    assert heard["customer"].timestamp == heard["agent"].timestamp == 0
    assert bridge.tick({})["agent"].timestamp == FRAME_SAMPLES
    assert bridge.timestamp == 2 * FRAME_SAMPLES


def test_three_parties_each_hear_the_sum_of_the_others() -> None:
    bridge = bridge_of("a", "b", "c")
    a, b, c = noise(-10000, 10000), noise(-10000, 10000), noise(-10000, 10000)
    heard = bridge.tick({"a": f(a), "b": f(b), "c": f(c)})
    wide = [x.astype(np.int32) for x in (a, b, c)]
    assert np.array_equal(heard["a"].samples, (wide[1] + wide[2]).astype(np.int16))
    assert np.array_equal(heard["b"].samples, (wide[0] + wide[2]).astype(np.int16))
    assert np.array_equal(heard["c"].samples, (wide[0] + wide[1]).astype(np.int16))


def test_a_missing_frame_is_silence() -> None:
    bridge = bridge_of("a", "b", "c")
    a = noise()
    heard = bridge.tick({"a": f(a)})
    assert np.array_equal(heard["b"].samples, a)
    assert np.array_equal(heard["c"].samples, a)
    assert not heard["a"].samples.any()


def test_sums_saturate_at_the_int16_limits() -> None:
    bridge = bridge_of("a", "b", "c")
    heard = bridge.tick({"a": f(const(32767)), "b": f(const(32767))})
    assert np.array_equal(heard["c"].samples, const(32767))
    heard = bridge.tick({"a": f(const(-32768)), "b": f(const(-32768))})
    assert np.array_equal(heard["c"].samples, const(-32768))
    heard = bridge.tick({"a": f(const(-32768)), "b": f(const(32767))})
    assert np.array_equal(heard["c"].samples, const(-1))


def test_two_speakers_mix_like_audioop_add() -> None:
    bridge = bridge_of("a", "b", "c")
    for _ in range(20):
        a, b = noise(), noise()
        heard = bridge.tick({"a": f(a), "b": f(b)})
        reference = np.frombuffer(audioop.add(a.tobytes(), b.tobytes(), 2), dtype=np.int16)
        assert np.array_equal(heard["c"].samples, reference)


def test_gain_is_applied_to_the_input_before_the_mix() -> None:
    bridge = bridge_of("a", "b", "c")
    bridge.set_gain("a", 0.5)
    a, b = noise(-10000, 10000), noise(-10000, 10000)
    heard = bridge.tick({"a": f(a), "b": f(b)})
    expected = np.rint(a * 0.5).astype(np.int32) + b
    assert np.array_equal(heard["c"].samples, expected.astype(np.int16))
    assert np.array_equal(heard["a"].samples, b)
    # Half-way values round to even, as numpy's rint does.
    heard = bridge.tick({"a": f(np.array([1, 3, -1, -3] * 80, dtype=np.int16))})
    assert heard["b"].samples[:4].tolist() == [0, 2, 0, -2]


def test_gain_in_db_and_headroom_before_the_output_clip() -> None:
    bridge = bridge_of("a", "b", "c")
    bridge.set_gain_db("a", 6.0)
    a = noise()
    heard = bridge.tick({"a": f(a)})
    assert np.array_equal(heard["c"].samples, saturated(np.rint(a * 10 ** (6.0 / 20))))
    # A boosted speaker is clipped once, at the output, not at its own input.
    bridge.set_gain("a", 2.0)
    heard = bridge.tick({"a": f(const(20000)), "b": f(const(-10000))})
    assert np.array_equal(heard["c"].samples, const(30000))
    bridge.set_gain("a", 0.0)
    assert not bridge.tick({"a": f(a)})["b"].samples.any()


@pytest.mark.parametrize("gain", [-0.1, 16.5, float("nan"), float("inf")])
def test_a_gain_out_of_range_is_refused(gain: float) -> None:
    bridge = bridge_of("a")
    with pytest.raises(ValueError, match=r"^a gain is between 0 and 16.0 \(linear\), not "):
        bridge.set_gain("a", gain)


def test_a_gain_in_db_must_be_finite_and_at_most_24() -> None:
    bridge = bridge_of("a")
    with pytest.raises(ValueError, match="^a gain in dB must be finite, not inf$"):
        bridge.set_gain_db("a", float("inf"))
    with pytest.raises(ValueError, match="^a gain is between"):
        bridge.set_gain_db("a", 24.1)


def test_the_hearing_matrix_is_directional() -> None:
    bridge = bridge_of("customer", "agent", "supervisor")
    assert bridge.hears("agent", "customer")
    assert not bridge.hears("agent", "agent")
    # A whisper: the supervisor coaches the agent, the customer does not hear it.
    bridge.set_hears("customer", "supervisor", False)
    c, a, s = noise(-9000, 9000), noise(-9000, 9000), noise(-9000, 9000)
    heard = bridge.tick({"customer": f(c), "agent": f(a), "supervisor": f(s)})
    assert np.array_equal(heard["customer"].samples, a)
    assert np.array_equal(heard["agent"].samples, (c.astype(np.int32) + s).astype(np.int16))
    assert np.array_equal(heard["supervisor"].samples, (c.astype(np.int32) + a).astype(np.int16))
    assert not bridge.hears("customer", "supervisor")
    assert bridge.hears("supervisor", "customer")


def test_hold_isolates_a_party_with_music() -> None:
    bridge = bridge_of("a", "b", "held")
    for other in ("a", "b"):
        bridge.set_hears(other, "held", False)
        bridge.set_hears("held", other, False)
    music = const(1234)
    bridge.add_source("music", Player(music, music), heard_by=["held"])
    a, b, held = noise(), noise(), noise()
    for _ in range(2):
        heard = bridge.tick({"a": f(a), "b": f(b), "held": f(held)})
        assert np.array_equal(heard["a"].samples, b)
        assert np.array_equal(heard["b"].samples, a)
        assert np.array_equal(heard["held"].samples, music)
    # Music over: the held party hears nothing at all.
    heard = bridge.tick({"a": f(a), "b": f(b), "held": f(held)})
    assert not heard["held"].samples.any()
    bridge.remove_source("music")
    for other in ("a", "b"):
        bridge.set_hears(other, "held", True)
        bridge.set_hears("held", other, True)
    heard = bridge.tick({"a": f(const(1)), "b": f(const(2)), "held": f(const(4))})
    assert [heard[p].samples[0] for p in ("a", "b", "held")] == [6, 5, 3]


def test_mute_silences_a_party_for_everyone_and_unmute_restores() -> None:
    bridge = bridge_of("a", "b", "c")
    bridge.set_hears("c", "a", False)
    tap = Recording()
    bridge.add_tap(tap, "a")
    bridge.set_muted("a", True)
    a, b = noise(-9000, 9000), noise(-9000, 9000)
    heard = bridge.tick({"a": f(a), "b": f(b)})
    assert not heard["b"].samples.any()
    assert np.array_equal(heard["c"].samples, b)
    assert np.array_equal(heard["a"].samples, b)
    assert np.array_equal(tap.frames[0].samples, a)
    bridge.set_muted("a", False)
    heard = bridge.tick({"a": f(a), "b": f(b)})
    assert np.array_equal(heard["b"].samples, a)
    # The matrix edit made before the mute is still there.
    assert np.array_equal(heard["c"].samples, b)


def test_taps_get_raw_input_or_output_with_bridge_timestamps() -> None:
    bridge = bridge_of("customer", "agent")
    bridge.set_gain("customer", 0.25)
    said, heard_by_agent, pair = Recording(), Recording(), Recording()
    bridge.add_tap(said, "customer", "input")
    bridge.add_tap(heard_by_agent, "agent", "output")
    bridge.add_pair_tap(pair, TapPoint("customer"), ("agent", "input"))
    bridge.tick({})
    c, a = noise(), noise()
    heard = bridge.tick({"customer": f(c, 48000), "agent": f(a, 8)})
    assert [frame.timestamp for frame in said.frames] == [0, FRAME_SAMPLES]
    assert np.array_equal(said.frames[1].samples, c)
    assert heard_by_agent.frames[1] is heard["agent"]
    assert np.array_equal(heard_by_agent.frames[1].samples, np.rint(c * 0.25).astype(np.int16))
    left, right = pair.pairs[1]
    assert np.array_equal(left.samples, c) and np.array_equal(right.samples, a)
    assert left.timestamp == right.timestamp == FRAME_SAMPLES
    assert not pair.pairs[0][0].samples.any()
    bridge.remove_tap(said)
    bridge.remove_tap(pair)
    bridge.tick({})
    assert (len(said.frames), len(pair.pairs), len(heard_by_agent.frames)) == (2, 2, 3)


def test_sources_are_heard_only_by_their_listeners() -> None:
    bridge = bridge_of("customer", "agent")
    prompt = const(-700)
    player = Player(prompt)
    bridge.add_source("prompt", player, heard_by=["customer"])
    said = Recording()
    bridge.add_tap(said, "prompt")
    bridge.tick({})
    c, a = noise(-9000, 9000), noise(-9000, 9000)
    heard = bridge.tick({"customer": f(c), "agent": f(a)})
    assert player.asked == [0, FRAME_SAMPLES]
    assert set(heard) == {"customer", "agent"}
    assert np.array_equal(heard["agent"].samples, c)
    assert np.array_equal(heard["customer"].samples, a)
    assert np.array_equal(said.frames[0].samples, prompt)
    assert said.frames[0].timestamp == 0
    assert bridge.sources == ("prompt",) and bridge.parties == ("customer", "agent")
    # A party added later does not hear an existing source unless told to.
    bridge.add_party("supervisor")
    assert not bridge.hears("supervisor", "prompt")


def test_a_source_heard_at_the_first_tick() -> None:
    bridge = bridge_of("customer", "agent")
    bridge.add_source("prompt", Player(const(100)), heard_by=["customer"], gain=2.0)
    heard = bridge.tick({"agent": f(const(50))})
    assert heard["customer"].samples[0] == 250
    assert heard["agent"].samples[0] == 0


def test_removing_a_party_mid_stream() -> None:
    bridge = bridge_of("a", "b", "c")
    single, pair = Recording(), Recording()
    bridge.add_tap(single, "c", "output")
    bridge.add_pair_tap(pair, TapPoint("a"), TapPoint("c"))
    bridge.set_input_filter("a", Negate(), toward=["c", "b"])
    a, b, c = noise(-9000, 9000), noise(-9000, 9000), noise(-9000, 9000)
    bridge.tick({"a": f(a), "b": f(b), "c": f(c)})
    bridge.remove_party("c")
    heard = bridge.tick({"a": f(a), "b": f(b)})
    assert set(heard) == {"a", "b"}
    assert np.array_equal(heard["a"].samples, b)
    assert np.array_equal(heard["b"].samples, -a)
    assert len(single.frames) == 1
    left, right = pair.pairs[1]
    assert np.array_equal(left.samples, a) and not right.samples.any()
    with pytest.raises(ValueError, match="^no party 'c' on this bridge$"):
        bridge.tick({"c": f(c)})
    # The same id can join again, as a new party that everyone hears.
    bridge.add_party("c")
    heard = bridge.tick({"a": f(const(1)), "b": f(const(2)), "c": f(const(4))})
    assert [heard[p].samples[0] for p in ("a", "b", "c")] == [6, 3, 3]
    assert pair.pairs[2][1].samples[0] == 4


def test_an_input_filter_applies_only_toward_its_listeners() -> None:
    bridge = bridge_of("customer", "agent", "supervisor")
    bridge.set_hears("customer", "supervisor", False)
    suppressor = Negate()
    detector = Recording()
    bridge.add_tap(detector, "customer")
    bridge.set_input_filter("customer", suppressor, toward=["agent"])
    c = noise(-9000, 9000)
    heard = bridge.tick({"customer": f(c)})
    assert np.array_equal(heard["agent"].samples, -c)
    assert np.array_equal(heard["supervisor"].samples, c)
    assert np.array_equal(detector.frames[0].samples, c)
    assert suppressor.calls == 1
    bridge.clear_input_filter("customer")
    bridge.clear_input_filter("customer")
    heard = bridge.tick({"customer": f(c)})
    assert np.array_equal(heard["agent"].samples, c)
    assert suppressor.calls == 1


def test_an_input_filter_runs_once_per_tick_for_many_listeners_then_gain() -> None:
    bridge = bridge_of("customer", "agent", "supervisor")
    bridge.set_gain("customer", 0.5)
    suppressor = Negate()
    bridge.set_input_filter("customer", suppressor, toward=["agent", "supervisor"])
    c = noise(-9000, 9000)
    for _ in range(3):
        heard = bridge.tick({"customer": f(c)})
    expected = np.rint(-c.astype(np.float64) * 0.5).astype(np.int16)
    assert np.array_equal(heard["agent"].samples, expected)
    assert np.array_equal(heard["supervisor"].samples, expected)
    assert suppressor.calls == 3


def test_parties_join_between_ticks() -> None:
    bridge = bridge_of("a")
    assert not bridge.tick({"a": f(const(3))})["a"].samples.any()
    bridge.add_party("b")
    heard = bridge.tick({"a": f(const(3)), "b": f(const(5))})
    assert (heard["a"].samples[0], heard["b"].samples[0]) == (5, 3)
    assert Bridge().tick({}) == {}


def test_bad_topology_is_refused_with_exact_messages() -> None:
    bridge = bridge_of("a")
    bridge.add_source("moh", Player(), heard_by=[])
    with pytest.raises(ValueError, match="^'a' is already on this bridge$"):
        bridge.add_party("a")
    with pytest.raises(ValueError, match="^'moh' is already on this bridge$"):
        bridge.add_source("moh", Player(), heard_by=[])
    with pytest.raises(ValueError, match="^no party 'x' on this bridge$"):
        bridge.add_source("p", Player(), heard_by=["x"])
    with pytest.raises(ValueError, match="^no party 'moh' on this bridge$"):
        bridge.set_hears("moh", "a", True)
    with pytest.raises(ValueError, match="^no party or source 'x' on this bridge$"):
        bridge.set_hears("a", "x", True)
    with pytest.raises(ValueError, match="^no party 'moh' on this bridge$"):
        bridge.add_tap(Recording(), "moh", "output")
    with pytest.raises(ValueError, match="^no party 'moh' on this bridge$"):
        bridge.remove_party("moh")
    with pytest.raises(ValueError, match="^no source 'a' on this bridge$"):
        bridge.remove_source("a")
    with pytest.raises(ValueError, match="^no party 'moh' on this bridge$"):
        bridge.tick({"moh": f(const(0))})
    with pytest.raises(ValueError, match="^no party 'x' on this bridge$"):
        bridge.set_input_filter("a", Negate(), toward=["x"])
    with pytest.raises(ValueError, match="^a tap side is 'input' or 'output', not 'middle'$"):
        bridge.add_pair_tap(Recording(), TapPoint("a"), ("a", "middle"))  # type: ignore[arg-type]


@settings(max_examples=60, deadline=None)
@given(
    n=st.integers(1, 5),
    seed=st.integers(0, 2**32 - 1),
    gains=st.lists(st.sampled_from([0.0, 0.5, 1.0, 1.5, 3.0]), min_size=5, max_size=5),
)
def test_the_mix_matches_a_naive_loop(n: int, seed: int, gains: list[float]) -> None:
    rng = np.random.default_rng(seed)
    names = [f"p{i}" for i in range(n)]
    bridge = bridge_of(*names)
    hears = rng.integers(0, 2, (n, n)).astype(bool)
    for i, listener in enumerate(names):
        bridge.set_gain(listener, gains[i])
        for j, speaker in enumerate(names):
            bridge.set_hears(listener, speaker, bool(hears[i, j]))
    inputs = [rng.integers(-32768, 32767, FRAME_SAMPLES, endpoint=True) for _ in names]
    heard = bridge.tick({p: f(x.astype(np.int16)) for p, x in zip(names, inputs, strict=True)})
    for i, listener in enumerate(names):
        total = np.zeros(FRAME_SAMPLES, dtype=np.int64)
        for j in range(n):
            if hears[i, j]:
                total += np.rint(inputs[j] * gains[j]).astype(np.int64)
        assert np.array_equal(heard[listener].samples, saturated(total))
