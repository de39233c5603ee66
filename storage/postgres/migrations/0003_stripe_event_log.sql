-- A tenant's log of recent Stripe events (engine.StripeEventRecord): a ring
-- of engine.StripeEventLogSize slots, each rewritten in turn.
CREATE TABLE stripe_event_log (
	platform text NOT NULL,
	mode     smallint NOT NULL,
	slot     smallint NOT NULL,
	record   jsonb NOT NULL,
	PRIMARY KEY (platform, mode, slot)
);
