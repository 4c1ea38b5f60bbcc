-- Undo 0025: nothing is stored differently; the older release's migrate puts its own logic
-- back (cti.presence_from_onlinepbx2), and the newer function is left to it to replace.
SELECT 1;
