"""SIP: media workers running pjsua2, and the Kamailio edge in front of them.

It owns the media worker process (pjsua2 on one dedicated thread, at most
four calls each), SIP legs and their codecs, outbound calls through trunks,
the control ↔ worker command/event protocol, worker supervision, and the
generated Kamailio configuration (registrar, dispatcher, anti-flood, TLS).
"""
