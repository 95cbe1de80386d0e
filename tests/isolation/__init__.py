"""Isolation and privileges: what keeps one tenant's data from another's beyond the
(tenant_id, id) key, and who may read or change what. Column tracking and the
per-tenant views (their columns, regeneration, names, options), tenant-id spellings,
row-level security for `authenticated` by JWT claims, roles given one tenant with
tenants.grant_tenant, service_role, EXECUTE on the write functions, SECURITY DEFINER
search paths and leaky functions. Rights are tested as the real roles, never judged
from a superuser's view (docs/semantics.md, "Tenant safety" and "Per-tenant views").
"""
