"""Which legs have received no RTP for the timeout: exact cases."""

from __future__ import annotations

import pytest

from assistline.errors import ConfigurationError
from assistline.settings import SipSettings
from assistline.sip.rtp_timeout import RtpSilence


def test_a_leg_whose_count_stops_moving_is_silent_after_the_timeout() -> None:
    silence = RtpSilence(timeout=60)
    assert silence.check([("a", 10), ("b", 10)], now=0) == []
    assert silence.check([("a", 10), ("b", 500)], now=30) == []
    assert silence.check([("a", 10), ("b", 900)], now=59.9) == []
    assert silence.check([("a", 10), ("b", 900)], now=60) == ["a"]
    assert silence.check([("b", 900)], now=119.8) == []  # a: hung up, forgotten
    assert silence.check([("b", 900)], now=119.9) == ["b"]


def test_a_leg_not_counted_starts_its_clock_again() -> None:
    silence = RtpSilence(timeout=10)
    silence.check([("a", 5)], now=0)
    assert silence.check([("a", None)], now=8) == []  # on hold: not counted
    assert silence.check([("a", 5)], now=12) == []  # counted again from here
    assert silence.check([("a", 5)], now=21.9) == []
    assert silence.check([("a", 5)], now=22) == ["a"]


def test_media_timeout_is_zero_or_five_seconds_to_an_hour() -> None:
    assert SipSettings(media_timeout=0).media_timeout == 0
    assert SipSettings(media_timeout=5).media_timeout == 5
    for wrong in (1, -3, 7200):
        with pytest.raises(ConfigurationError, match="sip.media_timeout"):
            SipSettings(media_timeout=wrong)
