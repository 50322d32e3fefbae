"""WebRTC legs: the customer's side of a click-for-assistance call.

This package owns the aiortc peers that live inside media workers, one per
contact, beside the SIP leg each is bridged to: answering the browser's
offer relayed by the control process (which never touches media), DTLS-SRTP
only, Opus in and out converted at the leg's edge to the internal rate of
the media model, ICE servers taken only from settings (never aiortc's
default public STUN server) and host candidates only on the configured
addresses, and ending a leg whose browser stops answering ICE consent
checks (RFC 7675) so that its agent leg can be hung up.
"""
