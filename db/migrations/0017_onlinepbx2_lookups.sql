-- Indexes for the onlinePBX API 2.0 correlation: bridges by either leg, open legs by time.
-- depends: 0016_is_extension_inlined

-- Why: API 2.0 names no call, so each new leg is matched to a call through the bridges it
-- was in and through the open legs of the same caller a few minutes before. Without an
-- index for either lookup, both read every bridge and every leg ever stored: 2.8 and
-- 0.9 ms per lookup after 20,000 frames, and the pipeline went from 1,520 to 690 frames/s
-- over 30,000 frames (docs/performance.md, "Plans made on empty tables"). Open legs are the
-- calls under way, so their index stays small.

SET LOCAL ROLE cti_owner;

CREATE INDEX call_bridge_leg_a ON cti.call_bridge (leg_a);
CREATE INDEX call_bridge_leg_b ON cti.call_bridge (leg_b);
CREATE INDEX call_leg_open ON cti.call_leg (source, created_at) WHERE ended_at IS NULL;
