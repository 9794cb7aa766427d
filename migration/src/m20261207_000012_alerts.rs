//! Alerts: rules over the `/stats` KPIs of a sliding window, and what fired.
//!
//! `alert_rules` holds each rule with its current state (`firing`) and its last reading.
//! `alert_events` records every transition (firing or resolved) once per rule and
//! evaluation (`UNIQUE (rule_id, evaluation)`: a redelivered evaluation adds nothing), and
//! is the outbox of its webhook notification: `delivered_at` is set when the receiver
//! answered 2xx, so each transition is delivered once. Events outlive their rule.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

const UP: &str = r#"
CREATE TABLE alert_rules (
    id BIGSERIAL PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    filters JSONB NOT NULL DEFAULT '{}',
    metric TEXT NOT NULL,
    condition TEXT NOT NULL,
    threshold DOUBLE PRECISION NOT NULL,
    window_minutes INTEGER NOT NULL,
    min_attempts BIGINT NOT NULL DEFAULT 0,
    webhook_url TEXT,
    webhook_secret TEXT,
    enabled BOOLEAN NOT NULL DEFAULT true,
    snoozed_until TIMESTAMPTZ,
    firing BOOLEAN NOT NULL DEFAULT false,
    last_value DOUBLE PRECISION,
    last_baseline DOUBLE PRECISION,
    last_attempts BIGINT,
    last_evaluated_at TIMESTAMPTZ,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE alert_events (
    id BIGSERIAL PRIMARY KEY,
    rule_id BIGINT REFERENCES alert_rules (id) ON DELETE SET NULL,
    rule_name TEXT NOT NULL,
    state TEXT NOT NULL,
    metric TEXT NOT NULL,
    value DOUBLE PRECISION,
    baseline DOUBLE PRECISION,
    threshold DOUBLE PRECISION NOT NULL,
    attempts BIGINT NOT NULL,
    window_from TIMESTAMPTZ NOT NULL,
    window_to TIMESTAMPTZ NOT NULL,
    evaluation TEXT NOT NULL,
    at TIMESTAMPTZ NOT NULL DEFAULT now(),
    webhook_url TEXT,
    webhook_secret TEXT,
    queued_at TIMESTAMPTZ,
    delivered_at TIMESTAMPTZ,
    delivery_attempts INTEGER NOT NULL DEFAULT 0,
    last_error TEXT,
    UNIQUE (rule_id, evaluation)
);
CREATE INDEX alert_events_by_time ON alert_events (at DESC, id DESC);
CREATE INDEX alert_events_undelivered ON alert_events (id)
    WHERE delivered_at IS NULL AND webhook_url IS NOT NULL;
"#;

const DOWN: &str = r#"
DROP TABLE alert_events;
DROP TABLE alert_rules;
"#;

sql_migration!(UP, DOWN);
