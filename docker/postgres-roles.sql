-- Least privilege for the API role in the subscription store. Run by the table owner after the
-- migrations (`db-migrate` in docker-compose.yml), every start, so new tables are covered:
--   psql -v ON_ERROR_STOP=1 [-v api_role=paycycle_api] -f docker/postgres-roles.sql
-- The API answers /churn, /recommend, /offer from request bodies and models; the store is read
-- by /cancel-intent (customer, subscription, plan, earlier intents) and batch `scores`.
\if :{?api_role}
\else
  \set api_role paycycle_api
\endif

REVOKE ALL ON SCHEMA public FROM PUBLIC;
GRANT USAGE ON SCHEMA public TO :"api_role";
REVOKE ALL ON ALL TABLES IN SCHEMA public FROM :"api_role";
REVOKE ALL ON ALL SEQUENCES IN SCHEMA public FROM :"api_role";

GRANT SELECT ON scores, customers, subscriptions, plans, addons TO :"api_role";
-- intents are inserted by the API and settled later by the pipeline (`paycycle saves`)
GRANT SELECT, INSERT ON cancel_intents TO :"api_role";
-- /cancel-intent locks the customer's row (SELECT ... FOR NO KEY UPDATE) so two visits cannot
-- both pass the frequency cap; PostgreSQL asks for UPDATE on some column for that lock, so the
-- role gets it on the key column only (changing a key is refused by the foreign keys anyway)
GRANT UPDATE (customer_id) ON customers TO :"api_role";
-- Idempotency-Key store of /cancel-intent, when the migration that adds it has run
SELECT format('GRANT SELECT, INSERT, UPDATE, DELETE ON cancel_intent_keys TO %I', :'api_role')
WHERE to_regclass('public.cancel_intent_keys') IS NOT NULL \gexec
-- rollouts (migration 0007): the service reads the running rollout and records its guard
-- readings or the breach that ended it; which challenger, and the stage, are the driver's
SELECT format('GRANT SELECT, UPDATE (state, reason, finished_at, readings, readings_at, timeline) '
              'ON rollouts TO %I', :'api_role')
WHERE to_regclass('public.rollouts') IS NOT NULL \gexec
-- the id sequences behind those two tables (BIGSERIAL or identity), and no other sequence
SELECT format('GRANT USAGE, SELECT ON SEQUENCE %s TO %I', s.oid::regclass, :'api_role')
FROM pg_class s JOIN pg_depend d ON d.classid = 'pg_class'::regclass AND d.objid = s.oid
WHERE s.relkind = 'S' AND d.deptype IN ('a', 'i')
  AND d.refobjid IN (SELECT to_regclass(t) FROM unnest(ARRAY['public.cancel_intents',
                                                             'public.cancel_intent_keys']) t) \gexec
