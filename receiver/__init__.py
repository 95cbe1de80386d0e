"""The webhook receiver: verify, forward, map the answer. It knows no table.

One request, POST /api/optiqo-webhook, through the modules of this package:

1. `app.handle_webhook` takes it; `body.refused_unread` refuses a compressed body (415:
   the signature covers the bytes as sent, and nothing is inflated here) or one announced
   over OPTIQO_MAX_BODY_BYTES (413); `admission` finds room for a body nobody is known to
   have sent yet (else 503, unread); `body.read` reads at most OPTIQO_MAX_BODY_BYTES
   (413) within the read timeout (408).
2. `signatures.Verifier` checks the signature on those raw bytes, plain
   (`x-webhook-signature`) or Standard Webhooks, current and previous secrets (401).
   Nothing is parsed and no connection is taken before it holds. The plain scheme does
   not sign the delivery id header, so the id goes to the database bound to the body
   (`body.bound_to_body`: `<id>#<sha256 of the body>`).
3. `body.checked` parses the body strictly (`jsonguard`: duplicate keys, NaN, deep
   nesting, huge numbers...). A signed body that cannot become jsonb is kept as bytes by
   optiqoflow.record_unusable_delivery and answered 400 or 422. Bodies over 1 MiB are
   checked in a worker thread while the database applies them in a transaction that
   commits only once the check passed.
4. `database.call` makes the one call, `SELECT optiqoflow.apply_webhook($1, $2)`, with
   the body's bytes as they came, on a pooled autocommit connection taken in turn at the
   `database.Gate`, within its table's lane (`lanes`: at most OPTIQO_TABLE_CONNECTIONS
   deliveries to one table at once, so a table a session keeps locked cannot take every
   connection). Two optional paths, one module each: `groupcommit` (several real-time
   deliveries in one apply_webhook_group call and one commit, OPTIQO_GROUP_COMMIT) and
   `citus` (the tenant's worker first, OPTIQO_CITUS_DELEGATION).
5. `answers` decides the status: the database's answer passed on as 200 or 422, a
   transient SQLSTATE as 503 with Retry-After, anything else 500.
6. `logs.account` writes one JSON log line and updates the metrics (`metrics`).

Also GET /healthz, /readyz and /metrics (`health`; the database's own figures on
/metrics: `figures`), and GET /openapi.json (`openapi`: the published contract, the
record schemas from the database's optiqoflow.payload_schemas()). `config` reads the
environment once, at start-up; `state` holds what the handlers share. Everything about
data lives in PL/pgSQL, under db/functions/.
"""
