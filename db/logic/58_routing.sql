-- Routing from the CRM: the client's own manager answers first.
--
-- Rules:
-- - The PBX asks, at the first ring, with the caller's number and the line dialled
--   (cti.route_v1). The number is read with the phone rules, the client found with the
--   same adapter as every lookup (cti.crm_lookup), the manager's extension with
--   cti.crm_extension_for_employee.
-- - A known client (exactly one record) whose manager has an extension that is available
--   (or whose state pgcti does not know) gets that extension, reason 'manager'. Otherwise
--   no extension, with the reason: the PBX goes on with its own dialplan (the line's group).
--   A manager busy, ringing, offline, paused, away or in do not disturb is passed over.
-- - Every answer is logged (cti.route_decision) with its reason, and joined later with the
--   call that followed: the inbound call from that number to that line that started
--   within 30 s of the question (cti.route_decisions_v1).
-- - It never fails the PBX for a bad input: a number that does not parse is an answer
--   with its reason. The routing login's statement_timeout bounds its time; the dialplan
--   falls back to the group when it passes (docs/asterisk-way-back.md#routing-from-the-crm).
-- Why one row with a reason rather than a list: the dialplan rings one extension first,
-- then goes on with its own group, which already knows who is in it.

CREATE OR REPLACE FUNCTION cti.route_v1(p_caller text, p_dialled text DEFAULT NULL)
RETURNS TABLE (extension text, reason text)
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    v_caller text := CASE WHEN length(p_caller) <= 64 THEN cti.normalize_phone(p_caller) END;
    v_dialled text := CASE WHEN length(p_dialled) <= 64 THEN cti.normalize_phone(p_dialled) END;
    v_clients int := 0;
    v_client bigint;
    v_manager bigint;
    v_extension text;
    v_state text;
    v_answer text;
    v_reason text;
BEGIN
    IF v_caller IS NULL OR cti.is_extension(v_caller) THEN
        v_reason := CASE WHEN v_caller IS NULL THEN 'no caller number' ELSE 'an internal caller' END;
    ELSE
        SELECT count(*), min(l.client_id), min(l.manager_id) INTO v_clients, v_client, v_manager
          FROM cti.crm_lookup(v_caller) l;
        IF v_clients = 0 THEN
            v_reason := 'unknown caller';
        ELSIF v_clients > 1 THEN
            v_reason := 'several clients share the number';
            v_client := NULL;
            v_manager := NULL;
        ELSIF v_manager IS NULL THEN
            v_reason := 'the client has no manager';
        ELSE
            v_extension := cti.crm_extension_for_employee(v_manager);
            v_state := coalesce((SELECT cti.presence_state(p) FROM cti.presence p WHERE p.extension = v_extension), 'unknown');
            IF v_extension IS NULL THEN
                v_reason := 'the manager has no extension';
            ELSIF v_state IN ('available', 'unknown') THEN
                v_answer := v_extension;
                v_reason := 'manager';
            ELSE
                v_reason := 'the manager is ' || v_state;
            END IF;
        END IF;
    END IF;
    INSERT INTO cti.route_decision (caller, dialled, client_id, manager_id, manager_extension, extension, reason)
    VALUES (v_caller, v_dialled, v_client, v_manager, v_extension, v_answer, v_reason);
    RETURN QUERY SELECT v_answer, v_reason;
END
$$;

COMMENT ON FUNCTION cti.route_v1(text, text) IS 'Routing API v1: which extension the PBX rings first for this caller (the client''s manager when free), with the reason; NULL: its own dialplan';

-- Each routing answer and what followed: the call (inbound, from that number to that line,
-- started within 30 s), who answered it, and whether that was the extension routed to.
CREATE OR REPLACE VIEW cti.route_decisions_v1 AS
SELECT d.id AS decision_id, d.asked_at, d.caller, d.dialled, d.client_id, d.manager_id, d.manager_extension,
       d.extension, d.reason, c.id AS call_id, c.answered_by, c.outcome,
       CASE WHEN c.id IS NULL THEN NULL
            WHEN d.manager_extension IS NOT NULL AND c.answered_by = d.manager_extension THEN 'answered by the manager'
            WHEN c.answered_by IS NOT NULL THEN 'answered by another'
            WHEN c.ended_at IS NOT NULL THEN 'not answered'
            ELSE 'in progress' END AS what_happened
  FROM cti.route_decision d
  LEFT JOIN LATERAL (SELECT c.* FROM cti.call c
                      WHERE c.external_number = d.caller AND c.direction = 'inbound'
                        AND c.started_at BETWEEN d.asked_at - interval '30 seconds' AND d.asked_at + interval '30 seconds'
                        AND (d.dialled IS NULL OR c.dialled IS NULL OR c.dialled = d.dialled
                             OR cti.normalize_phone(c.dialled) = d.dialled)
                      ORDER BY abs(extract(epoch FROM c.started_at - d.asked_at)), c.id
                      LIMIT 1) c ON true;

COMMENT ON VIEW cti.route_decisions_v1 IS 'Every routing answer with its reason and the call that followed: answered by the manager, by another, or not';

-- Per manager and day: known clients' inbound calls (the client's manager as the lookup
-- gave it at the first ring), how many that manager answered, how many another answered,
-- how many nobody did; the share answered by the client's own manager.
CREATE OR REPLACE VIEW cti.manager_answer_share_v1 AS
WITH calls AS (
    SELECT c.started_at::date AS day, (c.client_card ->> 'manager_id')::bigint AS manager_id,
           c.client_card ->> 'manager_surname' AS manager_surname, c.answered_by, c.ended_at, c.outcome
      FROM cti.call c
     WHERE c.direction = 'inbound' AND c.client_match = 'exact' AND c.started_at IS NOT NULL
       AND c.client_card ->> 'manager_id' IS NOT NULL
), managers AS (  -- each manager's extension, asked once per manager
    SELECT m.manager_id, cti.crm_extension_for_employee(m.manager_id) AS extension
      FROM (SELECT DISTINCT manager_id FROM calls) m
)
SELECT k.day, k.manager_id, m.extension AS manager_extension,
       count(*) AS calls,
       count(*) FILTER (WHERE k.answered_by = m.extension) AS answered_by_manager,
       count(*) FILTER (WHERE k.answered_by IS NOT NULL AND k.answered_by IS DISTINCT FROM m.extension) AS answered_by_others,
       count(*) FILTER (WHERE k.answered_by IS NULL AND k.ended_at IS NOT NULL) AS not_answered,
       round(count(*) FILTER (WHERE k.answered_by = m.extension)::numeric
             / nullif(count(*) FILTER (WHERE k.ended_at IS NOT NULL OR k.answered_by IS NOT NULL), 0), 3) AS manager_share,
       max(k.manager_surname) AS manager_surname  -- as the lookup gave it, for reports
  FROM calls k JOIN managers m ON m.manager_id = k.manager_id
 GROUP BY k.day, k.manager_id, m.extension;

COMMENT ON VIEW cti.manager_answer_share_v1 IS 'Per day and manager: known clients'' inbound calls, answered by their own manager, by another, not answered; the manager''s share';
