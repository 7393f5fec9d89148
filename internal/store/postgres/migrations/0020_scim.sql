-- SCIM 2.0 provisioning (issue 14; docs/design.md, "SCIM provisioning").
-- SQLite's twin has the same number.
--
-- A provisioned group: a stable id and a display name. Membership is not
-- here: it is the group name in the members' users.groups, which is what
-- policy reads on every issuance.
CREATE TABLE scim_groups (
    tenant_id    text        NOT NULL,
    id           text        NOT NULL,
    display_name text        NOT NULL,
    external_id  text        NOT NULL DEFAULT '',
    created_at   timestamptz NOT NULL,
    updated_at   timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, id),
    UNIQUE (tenant_id, display_name)
);

-- What SCIM keeps of a user beside the users row: the provisioning
-- client's externalId, and whether a SCIM DELETE removed the person (the
-- row stays, deprovisioned; SCIM answers 404 for it, RFC 7644 §3.6).
CREATE TABLE scim_users (
    tenant_id   text        NOT NULL,
    user_id     text        NOT NULL,
    external_id text        NOT NULL DEFAULT '',
    deleted     boolean     NOT NULL DEFAULT false,
    updated_at  timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, user_id)
);
