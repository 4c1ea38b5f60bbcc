-- A batch's callback tasks are tracked once its rounds are done, in frame order.
-- depends: 0009_asterisk_calls

-- Why: tasks depend on the order of one party's calls, and rounds derive each call's frames
-- in order but not every frame of the batch in frame order. Raising (and going frame by
-- frame) whenever one party had two calls in a batch sent most live batches frame by frame.
-- Now a round hands back the derivations that touch tasks, and 65_processing.sql tracks
-- them after the last round, sorted by frame.

SET LOCAL ROLE cti_owner;

ALTER TYPE cti.derivation_result
    ADD ATTRIBUTE callback_steps cti.call_derivation[],  -- derivations whose tasks are not tracked yet
    ADD ATTRIBUTE callback_keys bigint[];                -- the frame of each (its place in the batch)
