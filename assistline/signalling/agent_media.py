"""The agent console's calls in the browser: the frames of ``/ws/agent`` that carry media.

An agent who chose to take calls in the console (``set_state`` with
``works_in`` "console") is offered contacts there instead of on the phone
(:mod:`assistline.queue.console_calls`). Console → server:

- ``accept`` ``{contact, sdp}``: take the offered contact, with the
  console's WebRTC offer (DTLS-SRTP only, the customer page's policy:
  :mod:`.sdp_policy`); answered with ``answer`` ``{contact, sdp}``. The
  console's candidates may be in the offer or trickled:
- ``candidate`` ``{contact, candidate, sdpMid, sdpMLineIndex}``;
- ``decline`` ``{contact}``: the offer goes to another agent;
- ``hangup`` ``{contact}``: end the call (or decline the offer);
- ``offer`` ``{contact, sdp}``: a new offer on the connected call (the
  console added its camera), answered with ``answer``;
- ``escalate_video`` ``{contact}``: ask the customer to add video; the page
  is told and renegotiates;
- ``hold`` ``{contact, on}``: put the customer on hold (they hear a beep
  every 10 s and the page says ``on_hold``; the agent hears nothing of
  them) or take them off it; answered with ``hold`` ``{contact, on}``;
- ``take_payment`` ``{contact, amount_cents}``: put the connected customer
  into secure capture (:mod:`assistline.ivr.assisted`); the agent stays on
  the line hearing no keypad tones. Progress comes as ``payment``
  ``{contact, progress}`` frames (masked: ``•••• •••• •••• 4242, Luhn ✓``)
  and the end as ``payment`` ``{contact, result: {outcome, amount_cents,
  brand, last4, confirmation}}``.

Server → console, besides the replies: ``escalate_video`` ``{contact}`` when
the customer turned video on (the console adds its camera and sends
``offer``). Every refusal is an ``error`` frame naming what was wrong.
"""

from __future__ import annotations

from typing import Any, Final

from aiohttp import web

from assistline.queue.contact_call import ContactCallError
from assistline.signalling import messages
from assistline.signalling.keys import CONTACT_CALLS_KEY
from assistline.signalling.sdp_policy import SdpRefused, check_offer

#: Frame types handled here, with the keys each must have (exactly).
FRAMES: Final[dict[str, frozenset[str]]] = {
    "accept": frozenset({"type", "contact", "sdp"}),
    "offer": frozenset({"type", "contact", "sdp"}),
    "candidate": frozenset({"type", "contact", "candidate", "sdpMid", "sdpMLineIndex"}),
    "decline": frozenset({"type", "contact"}),
    "hangup": frozenset({"type", "contact"}),
    "escalate_video": frozenset({"type", "contact"}),
    "take_payment": frozenset({"type", "contact", "amount_cents"}),
    "hold": frozenset({"type", "contact", "on"}),
}


class MediaFrameRefused(Exception):
    """A console's media frame was refused; ``code`` is the console's error code."""

    def __init__(self, code: str, text: str) -> None:
        super().__init__(text)
        self.code = code


async def handle(
    app: web.Application, agent_id: str, frame: dict[str, Any]
) -> dict[str, Any] | None:
    """Act on one media frame of ``agent_id``'s console: the reply, if any."""
    kind = frame["type"]
    if set(frame) != FRAMES[kind]:
        missing = sorted(FRAMES[kind] - set(frame))
        detail = f"lacks {missing[0]}" if missing else "has other fields"
        raise MediaFrameRefused("bad_message", f"{kind} {detail}")
    contact = frame["contact"]
    if not isinstance(contact, str) or not contact:
        raise MediaFrameRefused("bad_value", "contact must be the id of the offered contact")
    calls = app.get(CONTACT_CALLS_KEY)
    if calls is None:
        raise MediaFrameRefused("not_now", "this server takes no calls")
    console = calls.console
    try:
        match kind:
            case "accept" | "offer":
                sdp = _checked_offer(frame["sdp"])
                if kind == "accept":
                    answer = await console.accept(agent_id, contact, sdp)
                else:
                    answer = await console.renegotiate(contact, "agent", sdp, agent_id)
                return {"type": "answer", "contact": contact, "sdp": answer}
            case "candidate":
                try:
                    candidate = messages.Candidate(
                        candidate=frame["candidate"],
                        sdp_mid=frame["sdpMid"],
                        sdp_mline_index=frame["sdpMLineIndex"],
                    )
                except messages.MessageError as error:
                    raise MediaFrameRefused("bad_value", str(error)) from None
                await console.candidate(agent_id, contact, candidate)
            case "decline":
                console.decline(agent_id, contact)
            case "hangup":
                console.hangup(agent_id, contact)
            case "escalate_video":
                console.escalate(contact, "agent", agent_id)
            case "hold":
                if not isinstance(frame["on"], bool):
                    raise MediaFrameRefused("bad_value", "on must be true or false")
                await console.hold(agent_id, contact, frame["on"])
                return {"type": "hold", "contact": contact, "on": frame["on"]}
            case "take_payment":
                if calls.payments is None:
                    raise MediaFrameRefused("not_now", "secure payments are not set up here")
                await calls.payments.take(agent_id, contact, frame["amount_cents"])
    except ContactCallError as error:
        raise MediaFrameRefused(error.code, str(error)[:500]) from None
    return None


def _checked_offer(sdp: Any) -> str:
    if not isinstance(sdp, str) or not sdp or len(sdp) > messages.MAX_SDP:
        raise MediaFrameRefused(
            "bad_value", f"sdp must be an SDP offer of 1..{messages.MAX_SDP} characters"
        )
    try:
        check_offer(sdp)
    except SdpRefused as refused:
        raise MediaFrameRefused("sdp_refused", str(refused)) from None
    return sdp
