"""Speech: turning voice messages into text, offline, with card numbers redacted.

It owns transcription jobs (vosk, model directory from settings, decoding in
worker threads or processes, never on an event loop), trimming by voice
activity, redaction of spoken card numbers, and delivery of transcripts to
agents.
"""
