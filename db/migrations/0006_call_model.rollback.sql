-- Undo 0006 (drops all call state; `pgcti rebuild` re-derives it from the raw log after re-applying).
DROP TABLE cti.call_transfer, cti.call_bridge, cti.call_leg, cti.call;
