"""Media core: the sans-IO audio building blocks every call passes through.

It owns the one media model (20 ms frames of signed 16-bit mono PCM at the
internal rate), the codecs and resamplers at a leg's edge, tone generation,
DTMF detection and suppression, RFC 4733 telephone events, voice activity
detection, the recorder and the bridge that decides who hears whom. Nothing
here imports asyncio, pjsua2, aiortc or asyncpg: media workers wrap it.
"""
