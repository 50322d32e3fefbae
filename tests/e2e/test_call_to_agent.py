"""The customer page in Chromium calls an agent's SIP phone, and each hears the other.

Everything real, on loopback: the control process's aiohttp app in this
process with SIP on (Kamailio as the edge, one media worker, WebRTC host
candidates on 127.0.0.1 only), PostgreSQL, baresip as Ada's phone (a
1100 Hz sine, answering by itself, dumping what it hears), and Debian's
Chromium whose fake microphone plays a 1 kHz sine from a WAV file. The page
opens its join link and the customer clicks *Call*; the test hears the
agent in the page with WebAudio, the customer at the phone in baresip's
dump, presses keypad keys and hangs up from the page.
"""

from __future__ import annotations

import asyncio
import math
import wave
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import numpy as np
import pytest
from playwright.async_api import BrowserContext, Page, expect

from assistline.settings import WebRtcSettings
from tests.e2e.conftest import API_KEY, CHROMIUM_ARGS, record_frames
from tests.e2e.pages import CONTACT, join_path
from tests.integration.sip.app_server import Server, ended_contact, sip_app
from tests.integration.sip.baresip_agent import Baresip
from tests.integration.sip.test_agent_bridge import (
    AGENT_HZ,
    assert_tone,
    dominant_hz,
    phone_of_ada,
)

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

CUSTOMER_HZ = 1000
#: The fake microphone's file: Chromium loops it for as long as the call lasts.
FAKE_MIC_RATE = 48_000
FAKE_MIC_SECONDS = 4

# Keeps the page's RTCPeerConnection (window.__peer) and every text #call-state shows,
# in order, however briefly (window.__callStates): ringing lasts as long as baresip
# takes to answer by itself, too short to catch by polling.
WATCH_PAGE = """
window.__callStates = [];
const Original = window.RTCPeerConnection;
window.RTCPeerConnection = class extends Original {
  constructor(config) {
    super(config);
    window.__peer = this;
  }
};
new MutationObserver(() => {
  const state = document.getElementById("call-state");
  const text = state ? state.textContent : "";
  if (text && window.__callStates.at(-1) !== text) window.__callStates.push(text);
}).observe(document, { subtree: true, childList: true, characterData: true });
"""

# The nominated candidate pairs of the page's peer: their state and addresses.
SELECTED_PAIRS = """async () => {
  const stats = await window.__peer.getStats();
  const pairs = [];
  stats.forEach((report) => {
    if (report.type !== "candidate-pair" || !report.nominated) return;
    pairs.push({
      state: report.state,
      local: stats.get(report.localCandidateId).address,
      remote: stats.get(report.remoteCandidateId).address,
    });
  });
  return pairs;
}"""

# The dominant frequency of what the page plays as the remote party (the stream
# customer.js gives #remote-audio), from an AnalyserNode's spectra over ~1 s.
MEASURE_REMOTE = """async () => {
  const stream = document.getElementById("remote-audio").srcObject;
  if (!stream || stream.getAudioTracks().length === 0) return { error: "no remote audio" };
  const context = new AudioContext();
  await context.resume();
  const source = context.createMediaStreamSource(stream);
  const analyser = context.createAnalyser();
  analyser.fftSize = 8192;
  analyser.smoothingTimeConstant = 0;
  const silent = context.createGain();
  silent.gain.value = 0;
  source.connect(analyser);
  analyser.connect(silent);
  silent.connect(context.destination);
  const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
  await sleep(250);  // the analyser's window fills
  const spectrum = new Float32Array(analyser.frequencyBinCount);
  const power = new Float64Array(analyser.frequencyBinCount);
  for (let n = 0; n < 10; n++) {
    analyser.getFloatFrequencyData(spectrum);
    for (let k = 1; k < spectrum.length; k++) power[k] += Math.pow(10, spectrum[k] / 10);
    await sleep(100);
  }
  let peak = 1;
  for (let k = 2; k < power.length; k++) if (power[k] > power[peak]) peak = k;
  const binHz = context.sampleRate / analyser.fftSize;
  const result = {
    hz: peak * binHz,
    binHz: binHz,
    peakDb: 10 * Math.log10(power[peak] / 10),
    sampleRate: context.sampleRate,
    state: context.state,
  };
  await context.close();
  return result;
}"""


def write_sine(path: Path, hz: int, rate: int, seconds: int) -> None:
    """A mono 16-bit WAV of a sine at ``hz``, half of full scale, a whole number of periods."""
    t = np.arange(rate * seconds) / rate
    samples = (0.5 * 32767 * np.sin(2 * math.pi * hz * t)).astype("<i2")
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(rate)
        wav.writeframes(samples.tobytes())


@pytest.fixture
def chromium_args(tmp_path: Path) -> list[str]:
    """The e2e flags, with a 1 kHz sine as the fake microphone."""
    mic = tmp_path / "customer-1khz.wav"
    write_sine(mic, CUSTOMER_HZ, FAKE_MIC_RATE, FAKE_MIC_SECONDS)
    return [*CHROMIUM_ARGS, f"--use-file-for-fake-audio-capture={mic}"]


@pytest.fixture
async def sip_server(database_url: str) -> AsyncIterator[Server]:
    """The real app with Kamailio and one media worker; Ada is an available agent."""
    async with sip_app(
        database_url,
        [("agent-ada", "Ada Agent", "ada")],
        available=["agent-ada"],
        api_keys=(API_KEY,),
        record_calls=False,
        webrtc=WebRtcSettings(ice_host_addresses=("127.0.0.1",)),
    ) as server:
        yield server


async def _create_contact(server: Server) -> dict[str, Any]:
    response = await server.client.post(
        "/api/v1/contacts", json=CONTACT, headers={"Authorization": f"Bearer {API_KEY}"}
    )
    assert response.status == 201, await response.text()
    created: dict[str, Any] = await response.json()
    return created


async def _dtmf_keys(phone: Baresip, count: int, after: int) -> list[str]:
    """The keys of the first ``count`` CALL_DTMF_START events from index ``after`` on."""
    async with asyncio.timeout(10):
        while True:
            keys = [
                str(e.get("param"))
                for e in phone.events[after:]
                if e.get("event") and e.get("type") == "CALL_DTMF_START"
            ]
            if len(keys) >= count:
                return keys
            await asyncio.sleep(0.05)


async def test_the_page_calls_an_agents_phone_each_hears_the_other_and_keys_reach_it(
    sip_server: Server,
    browser: BrowserContext,
    page: Page,
    db: asyncpg.Connection,
    tmp_path: Path,
) -> None:
    async with phone_of_ada(sip_server, tmp_path / "baresip") as phone:
        contact = await _create_contact(sip_server)
        await browser.add_init_script(WATCH_PAGE)
        frames = record_frames(page)
        await page.goto(sip_server.url + join_path(contact["contact"], contact["token"]))
        await page.get_by_role("button", name="Call", exact=True).click()

        call_state = page.locator("#call-state")
        await expect(call_state).to_have_text("You are talking with Ada Agent.", timeout=20_000)
        await phone.wait_event("CALL_ESTABLISHED")
        states = await page.evaluate("() => window.__callStates")
        assert states[-2:] == ["Calling Ada Agent…", "You are talking with Ada Agent."], states
        assert [(f["state"], f.get("agent")) for f in frames.of("state")][-2:] == [
            ("ringing", "Ada Agent"),
            ("connected", "Ada Agent"),
        ]
        await expect(page.locator("#connection")).to_contain_text("Audio: connected.")
        # Chromium hides host addresses behind mDNS names (.local), which the worker's aioice
        # cannot resolve on loopback, unless media permission is granted: the fake UI flag
        # grants it, so the page's candidates carry addresses and no flag turns mDNS off.
        candidates = [f["candidate"] for f in frames.of("candidate", "sent") if f["candidate"]]
        assert candidates and not [c for c in candidates if ".local" in c], candidates

        # The worker's only candidate is 127.0.0.1. Chromium may check it from its eth0
        # address too and pick that pair: the kernel still carries it over loopback.
        (pair,) = await page.evaluate(SELECTED_PAIRS)
        assert pair["remote"] == "127.0.0.1", pair
        await asyncio.sleep(1.0)  # the agent's tone has been flowing for a second
        heard = await page.evaluate(MEASURE_REMOTE)
        print(f"the page heard {heard}")
        assert "error" not in heard, heard
        assert abs(heard["hz"] - AGENT_HZ) <= 0.02 * AGENT_HZ, heard
        assert heard["peakDb"] > -50, heard

        # Keypad keys reach the agent's phone (RFC 4733), in order.
        after = len(phone.events)
        await page.get_by_role("button", name="Keypad").click()
        await expect(page.locator("#keypad")).to_be_visible()
        await page.get_by_role("button", name="5", exact=True).click()
        await page.get_by_role("button", name="Hash").click()
        assert await _dtmf_keys(phone, 2, after) == ["5", "#"]

        await page.get_by_role("button", name="Hang up").click()
        await expect(page.locator("#notice")).to_contain_text("The call has ended: you hung up.")
        await phone.wait_event("CALL_CLOSED")
        received = np.concatenate(phone.dumps("dec"))
        print(f"the agent heard {dominant_hz(received, 8000):.1f} Hz ({len(received)} samples)")
        assert_tone(received, 8000, CUSTOMER_HZ, "what the agent heard")

    assert await ended_contact(db, contact["contact"]) == "hangup"
