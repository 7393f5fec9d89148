-- SCIM 2.0 provisioning (issue 14; docs/design.md, "SCIM provisioning").
-- PostgreSQL's twin has the same number.
--
-- A provisioned group: a stable id and a display name. Membership is not
-- here: it is the group name in the members' users.group_names, which is
-- what policy reads on every issuance.
CREATE TABLE scim_groups (
    tenant_id    TEXT    NOT NULL,
    id           TEXT    NOT NULL,
    display_name TEXT    NOT NULL,
    external_id  TEXT    NOT NULL DEFAULT '',
    created_at   INTEGER,
    updated_at   INTEGER,
    PRIMARY KEY (tenant_id, id),
    UNIQUE (tenant_id, display_name)
);

-- What SCIM keeps of a user beside the users row: the provisioning
-- client's externalId, and whether a SCIM DELETE removed the person (the
-- row stays, deprovisioned; SCIM answers 404 for it, RFC 7644 §3.6).
CREATE TABLE scim_users (
    tenant_id   TEXT    NOT NULL,
    user_id     TEXT    NOT NULL,
    external_id TEXT    NOT NULL DEFAULT '',
    deleted     INTEGER NOT NULL DEFAULT 0,
    updated_at  INTEGER,
    PRIMARY KEY (tenant_id, user_id)
);
