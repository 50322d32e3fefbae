"""assistline: telephony and real-time media for contact centres that collect payments.

One import package holds every component; see ``DESIGN.md`` for the shape:
a control process (``signalling``, ``queue``, ``ivr``, ``speech``, ``store``)
and media workers (``sip``, ``media``).
"""

__version__ = "0.1.0"
