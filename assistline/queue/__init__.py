"""Queue: routing contacts to agents, the virtual queue and callbacks.

It owns agent states and the choice of agent for each waiting contact, queue
positions, callbacks booked now or for a chosen time, and the compliance
rules every outbound attempt must pass (calling windows in the customer's
local time, contact caps, consent and opt-out). Claims go through
PostgreSQL with ``FOR UPDATE SKIP LOCKED`` and leases so nodes can share it.
"""
