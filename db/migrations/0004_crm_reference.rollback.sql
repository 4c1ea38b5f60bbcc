-- Undo 0004 (drops the reference CRM's data).
DROP TABLE crm.client_phone, crm.client, crm.workstation, crm.employee, crm.company;
DROP FUNCTION crm.tg_client_phone__normalize();
