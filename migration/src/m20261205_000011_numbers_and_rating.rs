//! Numbers and money: what the system derives from a CDR's parties (E.164 forms, the
//! destination's country and type) and its price on each side (sell to the customer, buy
//! from the carrier), beside the values the switch wrote, which stay untouched.
//!
//! New nullable columns on a partitioned table are catalogue-only changes: no partition is
//! rewritten. Rows stored before this version have no derived values until a re-rate
//! covers them.
//!
//! The KPI rollups gain the sums money needs (cost on each side in millionths, exact and
//! summed as integers, and the calls rated on each side):
//! new columns with a constant default, again catalogue-only; pending rows written before
//! have no such arrays and count as zero.
//!
//! `kpi_country_hour` sums calls per hour by destination country and number type (and
//! source, direction, disposition); calls stored before have neither, so it starts as the
//! hourly sums under `''`.
//!
//! `cdrs.derived_at` says when a re-rate last rewrote a row's derived values (NULL: as
//! ingested); it versions the row's search document, so a write of older values never
//! replaces newer ones. `ingest_batches.revision` counts the re-rates that touched a batch, so
//! an index job that read it before one does not mark it indexed.
//!
//! `dialling_plans` holds how each source writes numbers; `rate_decks` and
//! `rate_deck_rates` hold price lists, one version per (side, applies to, effective from),
//! never edited in place. `rating_history` keeps a record's previous price whenever a
//! re-rate changes it.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

const UP: &str = r#"
ALTER TABLE cdrs
    ADD COLUMN src_e164 TEXT,
    ADD COLUMN dest_e164 TEXT,
    ADD COLUMN dest_country TEXT,
    ADD COLUMN dest_type TEXT,
    ADD COLUMN sell_rating TEXT,
    ADD COLUMN sell_cost NUMERIC(24, 6),
    ADD COLUMN sell_currency TEXT,
    ADD COLUMN sell_prefix TEXT,
    ADD COLUMN sell_deck BIGINT,
    ADD COLUMN buy_rating TEXT,
    ADD COLUMN buy_cost NUMERIC(24, 6),
    ADD COLUMN buy_currency TEXT,
    ADD COLUMN buy_prefix TEXT,
    ADD COLUMN buy_deck BIGINT,
    ADD COLUMN derived_at TIMESTAMPTZ;

ALTER TABLE ingest_batches ADD COLUMN revision INTEGER NOT NULL DEFAULT 0;

ALTER TABLE kpi_pending
    ADD COLUMN dest_country TEXT[],
    ADD COLUMN dest_type TEXT[],
    ADD COLUMN sell_rated BIGINT[],
    ADD COLUMN buy_rated BIGINT[],
    ADD COLUMN sell_micros BIGINT[],
    ADD COLUMN buy_micros BIGINT[];

ALTER TABLE kpi_minute
    ADD COLUMN sell_rated BIGINT NOT NULL DEFAULT 0, ADD COLUMN buy_rated BIGINT NOT NULL DEFAULT 0,
    ADD COLUMN sell_micros BIGINT NOT NULL DEFAULT 0, ADD COLUMN buy_micros BIGINT NOT NULL DEFAULT 0;
ALTER TABLE kpi_hour
    ADD COLUMN sell_rated BIGINT NOT NULL DEFAULT 0, ADD COLUMN buy_rated BIGINT NOT NULL DEFAULT 0,
    ADD COLUMN sell_micros BIGINT NOT NULL DEFAULT 0, ADD COLUMN buy_micros BIGINT NOT NULL DEFAULT 0;
ALTER TABLE kpi_day
    ADD COLUMN sell_rated BIGINT NOT NULL DEFAULT 0, ADD COLUMN buy_rated BIGINT NOT NULL DEFAULT 0,
    ADD COLUMN sell_micros BIGINT NOT NULL DEFAULT 0, ADD COLUMN buy_micros BIGINT NOT NULL DEFAULT 0;
ALTER TABLE kpi_account_hour
    ADD COLUMN sell_rated BIGINT NOT NULL DEFAULT 0, ADD COLUMN buy_rated BIGINT NOT NULL DEFAULT 0,
    ADD COLUMN sell_micros BIGINT NOT NULL DEFAULT 0, ADD COLUMN buy_micros BIGINT NOT NULL DEFAULT 0;

CREATE TABLE kpi_country_hour (
    dest_country TEXT NOT NULL, dest_type TEXT NOT NULL, bucket TIMESTAMPTZ NOT NULL, source TEXT NOT NULL,
    direction TEXT NOT NULL, disposition TEXT NOT NULL,
    attempts BIGINT NOT NULL, effective BIGINT NOT NULL, billsec BIGINT NOT NULL, duration BIGINT NOT NULL,
    sell_rated BIGINT NOT NULL DEFAULT 0, buy_rated BIGINT NOT NULL DEFAULT 0,
    sell_micros BIGINT NOT NULL DEFAULT 0, buy_micros BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (dest_country, dest_type, bucket, source, direction, disposition)
);
-- Every call stored so far has no destination country or type yet: its hourly sums, as they are.
INSERT INTO kpi_country_hour (dest_country, dest_type, bucket, source, direction, disposition,
                              attempts, effective, billsec, duration)
SELECT '', '', bucket, source, direction, disposition, attempts, effective, billsec, duration FROM kpi_hour;

CREATE TABLE dialling_plans (
    source                 TEXT PRIMARY KEY,
    home_country           TEXT,
    international_prefixes TEXT[] NOT NULL DEFAULT '{}',
    national_prefix        TEXT,
    strip_prefixes         TEXT[] NOT NULL DEFAULT '{}',
    digits_are_e164        BOOLEAN NOT NULL DEFAULT false,
    updated_at             TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE rate_decks (
    id             BIGSERIAL PRIMARY KEY,
    name           TEXT NOT NULL,
    side           TEXT NOT NULL CHECK (side IN ('sell', 'buy')),
    applies_to     TEXT NOT NULL,
    effective_from TIMESTAMPTZ NOT NULL,
    currency       TEXT NOT NULL,
    prefixes       INTEGER NOT NULL,
    created_at     TIMESTAMPTZ NOT NULL DEFAULT now(),
    UNIQUE (side, applies_to, effective_from)
);

CREATE TABLE rate_deck_rates (
    deck_id           BIGINT NOT NULL REFERENCES rate_decks (id),
    prefix            TEXT NOT NULL,
    destination       TEXT NOT NULL,
    rate_per_minute   NUMERIC(24, 6) NOT NULL,
    connect_fee       NUMERIC(24, 6) NOT NULL,
    min_seconds       INTEGER NOT NULL,
    increment_seconds INTEGER NOT NULL,
    PRIMARY KEY (deck_id, prefix)
);

CREATE TABLE rating_history (
    cdr_id        BIGINT NOT NULL,
    start_time    TIMESTAMPTZ NOT NULL,
    job_id        TEXT NOT NULL,
    sell_rating   TEXT,
    sell_cost     NUMERIC(24, 6),
    sell_currency TEXT,
    sell_deck     BIGINT,
    buy_rating    TEXT,
    buy_cost      NUMERIC(24, 6),
    buy_currency  TEXT,
    buy_deck      BIGINT,
    replaced_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (cdr_id, job_id)
);

CREATE TABLE rerate_progress (
    job_id      TEXT PRIMARY KEY,
    after_start TIMESTAMPTZ,
    after_id    BIGINT,
    scanned     BIGINT NOT NULL DEFAULT 0,
    changed     BIGINT NOT NULL DEFAULT 0,
    done        BOOLEAN NOT NULL DEFAULT false,
    updated_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);
"#;

const DOWN: &str = r#"
DROP TABLE rerate_progress;
DROP TABLE rating_history;
DROP TABLE rate_deck_rates;
DROP TABLE rate_decks;
DROP TABLE dialling_plans;
DROP TABLE kpi_country_hour;
ALTER TABLE kpi_pending DROP COLUMN dest_country, DROP COLUMN dest_type, DROP COLUMN sell_rated, DROP COLUMN buy_rated, DROP COLUMN sell_micros, DROP COLUMN buy_micros;
ALTER TABLE kpi_minute DROP COLUMN sell_rated, DROP COLUMN buy_rated, DROP COLUMN sell_micros, DROP COLUMN buy_micros;
ALTER TABLE kpi_hour DROP COLUMN sell_rated, DROP COLUMN buy_rated, DROP COLUMN sell_micros, DROP COLUMN buy_micros;
ALTER TABLE kpi_day DROP COLUMN sell_rated, DROP COLUMN buy_rated, DROP COLUMN sell_micros, DROP COLUMN buy_micros;
ALTER TABLE kpi_account_hour DROP COLUMN sell_rated, DROP COLUMN buy_rated, DROP COLUMN sell_micros, DROP COLUMN buy_micros;
ALTER TABLE cdrs
    DROP COLUMN src_e164, DROP COLUMN dest_e164, DROP COLUMN dest_country, DROP COLUMN dest_type,
    DROP COLUMN sell_rating, DROP COLUMN sell_cost, DROP COLUMN sell_currency, DROP COLUMN sell_prefix,
    DROP COLUMN sell_deck, DROP COLUMN buy_rating, DROP COLUMN buy_cost, DROP COLUMN buy_currency,
    DROP COLUMN buy_prefix, DROP COLUMN buy_deck, DROP COLUMN derived_at;
ALTER TABLE ingest_batches DROP COLUMN revision;
"#;

sql_migration!(UP, DOWN);
