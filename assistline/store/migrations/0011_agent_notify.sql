-- Agents' SIP credentials change outside the server too (`assistline agent
-- add`, `agent set-password`): every change of the agent table's
-- credentials notifies `assistline_agents`, and a running server reloads its
-- SIP edge's credentials table (no restart).
CREATE FUNCTION notify_agent_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('assistline_agents', '');
    RETURN NULL;
END;
$$;

CREATE TRIGGER agent_credentials_changed
AFTER INSERT OR DELETE OR UPDATE OF sip_username, sip_realm, sip_ha1 ON agent
FOR EACH STATEMENT EXECUTE FUNCTION notify_agent_change();
