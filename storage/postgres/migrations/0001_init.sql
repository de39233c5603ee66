-- dream-api schema, version 1. Up only: a later change is a new file.
-- Mode columns hold engine.Mode (0 live, 1 test). Times that are part of a
-- key or compared in SQL are unix milliseconds (bigint), as in the Pebble
-- store; records keep their own times inside their JSON.

CREATE TABLE meta (
	name  text PRIMARY KEY,
	value bytea NOT NULL
);

CREATE TABLE platforms (
	id     text PRIMARY KEY,
	record jsonb NOT NULL
);

CREATE TABLE api_keys (
	platform    text NOT NULL,
	id          text NOT NULL,
	secret_hash bytea NOT NULL,
	publishable text NOT NULL,
	record      jsonb NOT NULL,
	PRIMARY KEY (platform, id)
);
CREATE INDEX api_keys_secret_hash ON api_keys (secret_hash);
CREATE INDEX api_keys_publishable ON api_keys (publishable);

CREATE TABLE tiers (
	platform text NOT NULL,
	mode     smallint NOT NULL,
	config   jsonb NOT NULL,
	PRIMARY KEY (platform, mode)
);

CREATE TABLE customers (
	platform text NOT NULL,
	mode     smallint NOT NULL,
	id       text NOT NULL,
	email    text NOT NULL, -- lowercased; '' when none
	record   jsonb NOT NULL,
	PRIMARY KEY (platform, mode, id)
);
CREATE INDEX customers_email ON customers (platform, mode, email);

CREATE TABLE platform_quotas (
	platform text PRIMARY KEY,
	record   jsonb NOT NULL
);

CREATE TABLE aggregates (
	platform text NOT NULL,
	mode     smallint NOT NULL,
	record   jsonb NOT NULL,
	PRIMARY KEY (platform, mode)
);

CREATE TABLE counters (
	platform     text NOT NULL,
	mode         smallint NOT NULL,
	customer     text NOT NULL,
	feature      text NOT NULL,
	period_start bigint NOT NULL,
	count        bigint NOT NULL,
	period_end   bigint NOT NULL,
	PRIMARY KEY (platform, mode, customer, feature, period_start)
);

CREATE TABLE policy_state (
	platform text NOT NULL,
	mode     smallint NOT NULL,
	customer text NOT NULL,
	feature  text NOT NULL,
	state    bytea NOT NULL,
	PRIMARY KEY (platform, mode, customer, feature)
);

CREATE TABLE idempotency (
	platform     text NOT NULL,
	mode         smallint NOT NULL,
	key          text NOT NULL,
	request_hash bytea NOT NULL,
	request_id   text NOT NULL,
	sealed       boolean NOT NULL,
	status       integer NOT NULL,
	body         bytea NOT NULL,
	created_at   bigint NOT NULL,
	PRIMARY KEY (platform, mode, key)
);
CREATE INDEX idempotency_created_at ON idempotency (created_at);

CREATE TABLE plugin_settings (
	platform text NOT NULL,
	mode     smallint NOT NULL,
	settings jsonb NOT NULL,
	PRIMARY KEY (platform, mode)
);

CREATE TABLE plugin_versions (
	platform text NOT NULL,
	mode     smallint NOT NULL,
	version  text NOT NULL,
	record   jsonb NOT NULL,
	module   bytea NOT NULL,
	PRIMARY KEY (platform, mode, version)
);

CREATE TABLE outbox (
	id     text PRIMARY KEY,
	record jsonb NOT NULL
);

CREATE TABLE cors (
	platform text PRIMARY KEY,
	origins  jsonb NOT NULL
);

CREATE TABLE cors_origins (
	origin   text NOT NULL,
	platform text NOT NULL,
	PRIMARY KEY (origin, platform)
);

CREATE TABLE stripe_connections (
	platform text NOT NULL,
	mode     smallint NOT NULL,
	record   jsonb NOT NULL,
	PRIMARY KEY (platform, mode)
);

CREATE TABLE stripe_accounts (
	account  text PRIMARY KEY,
	platform text NOT NULL
);

CREATE TABLE stripe_catalogs (
	platform text NOT NULL,
	mode     smallint NOT NULL,
	record   jsonb NOT NULL,
	PRIMARY KEY (platform, mode)
);

CREATE TABLE stripe_customers (
	platform  text NOT NULL,
	mode      smallint NOT NULL,
	stripe_id text NOT NULL,
	customer  text NOT NULL,
	PRIMARY KEY (platform, mode, stripe_id)
);

CREATE TABLE stripe_subscriptions (
	platform text NOT NULL,
	mode     smallint NOT NULL,
	id       text NOT NULL,
	record   jsonb NOT NULL,
	PRIMARY KEY (platform, mode, id)
);

CREATE TABLE stripe_events (
	platform   text NOT NULL,
	mode       smallint NOT NULL,
	event_id   text NOT NULL,
	applied_at bigint NOT NULL,
	PRIMARY KEY (platform, mode, event_id)
);

CREATE TABLE platform_billing (
	platform text PRIMARY KEY,
	record   jsonb NOT NULL
);

-- The change log: every applied change to state that nodes cache, in
-- commit order (writers take one advisory lock to append), polled by every
-- node. Rows older than the retention are deleted.
CREATE TABLE changes (
	seq        bigserial PRIMARY KEY,
	kind       text NOT NULL,
	platform   text NOT NULL,
	mode       smallint NOT NULL,
	payload    jsonb NOT NULL,
	created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX changes_created_at ON changes (created_at);

CREATE TABLE webhook_endpoints (
	platform text NOT NULL,
	mode     smallint NOT NULL,
	id       text NOT NULL,
	record   jsonb NOT NULL,
	PRIMARY KEY (platform, mode, id)
);

CREATE TABLE webhook_events (
	platform   text NOT NULL,
	mode       smallint NOT NULL,
	id         text NOT NULL,
	created_at bigint NOT NULL,
	record     bytea NOT NULL, -- JSON, byte for byte: the body is signed
	PRIMARY KEY (platform, mode, id)
);
CREATE INDEX webhook_events_created_at ON webhook_events (created_at);

CREATE TABLE webhook_deliveries (
	platform   text NOT NULL,
	mode       smallint NOT NULL,
	endpoint   text NOT NULL,
	event      text NOT NULL,
	pending    boolean NOT NULL,
	created_at bigint NOT NULL,
	record     jsonb NOT NULL,
	PRIMARY KEY (platform, mode, endpoint, event)
);
CREATE INDEX webhook_deliveries_pending ON webhook_deliveries (pending, platform, mode, endpoint, event);
CREATE INDEX webhook_deliveries_created_at ON webhook_deliveries (created_at);

CREATE TABLE developers (
	id     text PRIMARY KEY,
	email  text NOT NULL, -- lowercased
	record jsonb NOT NULL
);
CREATE INDEX developers_email ON developers (email);

CREATE TABLE sessions (
	token_hash bytea PRIMARY KEY,
	record     jsonb NOT NULL
);

CREATE TABLE usage_days (
	platform text NOT NULL,
	mode     smallint NOT NULL,
	day      text NOT NULL, -- YYYY-MM-DD
	feature  text NOT NULL,
	shard    smallint NOT NULL,
	count    bigint NOT NULL,
	denied   bigint NOT NULL,
	PRIMARY KEY (platform, mode, day, feature, shard)
);

CREATE TABLE customer_passwords (
	platform text NOT NULL,
	mode     smallint NOT NULL,
	customer text NOT NULL,
	record   jsonb NOT NULL,
	PRIMARY KEY (platform, mode, customer)
);

CREATE TABLE signin_sessions (
	id       text PRIMARY KEY,
	platform text NOT NULL,
	mode     smallint NOT NULL,
	customer text NOT NULL,
	record   jsonb NOT NULL
);
CREATE INDEX signin_sessions_customer ON signin_sessions (platform, mode, customer, id);

CREATE TABLE password_resets (
	id     text PRIMARY KEY,
	record jsonb NOT NULL
);

CREATE TABLE signing_keys (
	id     text PRIMARY KEY,
	record jsonb NOT NULL
);
