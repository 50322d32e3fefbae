"""IVR: payment-line flows, the AR payment policy and secure card capture.

It owns flows declared in data files and the sans-IO state machine that runs
them, prompts (text-to-speech with a cache, recorded overrides), the
accounts-receivable policy that computes what a caller may pay, and the one
secure-capture path that takes card data with recording paused and keypad
tones kept from agents and stores.
"""
