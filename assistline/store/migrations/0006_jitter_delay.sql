-- The largest average delay any of a leg's jitter buffers reported (ms): what
-- sip.jitter_discard = none costs in latency, beside what it saves in frames.
ALTER TABLE call_record ADD COLUMN jbuf_delay_max_ms integer;
