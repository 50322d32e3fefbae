-- Receive quality per leg, from the worker's media_stats events (summed over
-- the leg's audio streams: a re-INVITE can replace a stream mid-call).
ALTER TABLE call_record
    ADD COLUMN rx_packets bigint,
    ADD COLUMN rx_lost bigint,
    ADD COLUMN rx_jitter_max_ms integer,
    ADD COLUMN jbuf_lost bigint,
    ADD COLUMN jbuf_discarded bigint;
