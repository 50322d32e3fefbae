"""Signalling: the control process's HTTP face (aiohttp).

It owns the REST API under ``/api/v1`` and its OpenAPI document, the
WebSocket signalling that relays SDP and ICE candidates to media workers,
authentication of customers, agents and business backends, problem-details
errors and request ids, and serving the web client. It never handles media.
"""
