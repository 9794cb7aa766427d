//! Rate decks in PostgreSQL: saved once per version, never edited, loaded whole.

use super::book::{AppliesTo, DeckVersion, RateBook, Side};
use super::deck::DeckRates;
use super::price::Rate;
use chrono::{DateTime, Utc};
use poem_openapi::Object;
use rust_decimal::Decimal;
use sea_orm::{DatabaseConnection, DbErr};
use serde::Serialize;
use std::collections::HashMap;
use std::str::FromStr;

/// A deck version as listed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Object)]
pub struct DeckSummary {
    /// The version's id, as CDRs rated by it name it (`sell_deck`, `buy_deck`).
    pub id: i64,
    pub name: String,
    /// `sell` (the customer's price) or `buy` (the carrier's cost).
    pub side: String,
    /// `account:<code>`, `source:<name>` or `all`.
    pub applies_to: String,
    /// Calls starting from this instant on are priced by this version, until the next one.
    pub effective_from: DateTime<Utc>,
    pub currency: String,
    pub prefixes: i32,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, thiserror::Error)]
pub enum SaveError {
    #[error(
        "a {side} deck for {applies_to} effective from {effective_from} exists already (deck {id}); versions are never replaced, give another effective_from"
    )]
    Exists { side: &'static str, applies_to: String, effective_from: DateTime<Utc>, id: i64 },
    #[error(
        "the deck is in {given} but the decks here are in {kept}: every deck has one currency so that sums add up"
    )]
    Currency { given: String, kept: String },
    #[error("{0}")]
    Database(#[from] DbErr),
}

fn db_err(e: sqlx::Error) -> DbErr {
    DbErr::Custom(format!("rate decks: {e}"))
}

const SUMMARY: &str =
    "SELECT id, name, side, applies_to, effective_from, currency, prefixes, created_at FROM rate_decks";

const LISTED: &str = "SELECT id, name, side, applies_to, effective_from, currency, prefixes, created_at FROM rate_decks \
     ORDER BY side DESC, applies_to, effective_from DESC";

type SummaryRow = (i64, String, String, String, DateTime<Utc>, String, i32, DateTime<Utc>);

fn summary(r: SummaryRow) -> DeckSummary {
    let (id, name, side, applies_to, effective_from, currency, prefixes, created_at) = r;
    DeckSummary { id, name, side, applies_to, effective_from, currency, prefixes, created_at }
}

/// Saves a new deck version with all its rates in one transaction.
pub async fn save(
    db: &DatabaseConnection,
    name: &str,
    side: Side,
    applies_to: &AppliesTo,
    effective_from: DateTime<Utc>,
    deck: &DeckRates,
) -> Result<DeckSummary, SaveError> {
    let pool = db.get_postgres_connection_pool();
    let mut txn = pool.begin().await.map_err(db_err)?;
    // One deck saved at a time, so the currency check and the version's uniqueness hold.
    sqlx::query("LOCK TABLE rate_decks IN SHARE ROW EXCLUSIVE MODE")
        .execute(&mut *txn)
        .await
        .map_err(db_err)?;
    let kept: Option<String> = sqlx::query_scalar("SELECT currency FROM rate_decks LIMIT 1")
        .fetch_optional(&mut *txn)
        .await
        .map_err(db_err)?;
    if let Some(kept) = kept.filter(|k| *k != deck.currency) {
        return Err(SaveError::Currency { given: deck.currency.clone(), kept });
    }
    let existing: Option<i64> = sqlx::query_scalar(
        "SELECT id FROM rate_decks WHERE side = $1 AND applies_to = $2 AND effective_from = $3",
    )
    .bind(side.as_str())
    .bind(applies_to.to_string())
    .bind(effective_from)
    .fetch_optional(&mut *txn)
    .await
    .map_err(db_err)?;
    if let Some(id) = existing {
        return Err(SaveError::Exists {
            side: side.as_str(),
            applies_to: applies_to.to_string(),
            effective_from,
            id,
        });
    }
    let row: SummaryRow = sqlx::query_as(
        "INSERT INTO rate_decks (name, side, applies_to, effective_from, currency, prefixes) \
         VALUES ($1, $2, $3, $4, $5, $6) \
         RETURNING id, name, side, applies_to, effective_from, currency, prefixes, created_at",
    )
    .bind(name)
    .bind(side.as_str())
    .bind(applies_to.to_string())
    .bind(effective_from)
    .bind(&deck.currency)
    .bind(i32::try_from(deck.rates.len()).unwrap_or(i32::MAX))
    .fetch_one(&mut *txn)
    .await
    .map_err(db_err)?;
    let column = |f: fn(&Rate) -> String| deck.rates.iter().map(f).collect::<Vec<String>>();
    sqlx::query(
        "INSERT INTO rate_deck_rates (deck_id, prefix, destination, rate_per_minute, connect_fee, min_seconds, increment_seconds) \
         SELECT $1, * FROM unnest($2::text[], $3::text[], $4::text[]::numeric[], $5::text[]::numeric[], $6::int4[], $7::int4[])",
    )
    .bind(row.0)
    .bind(column(|r| r.prefix.to_string()))
    .bind(column(|r| r.destination.clone()))
    .bind(column(|r| r.rate_per_minute.to_string()))
    .bind(column(|r| r.connect_fee.to_string()))
    .bind(deck.rates.iter().map(|r| i32::try_from(r.min_seconds).unwrap_or(i32::MAX)).collect::<Vec<_>>())
    .bind(deck.rates.iter().map(|r| i32::try_from(r.increment_seconds).unwrap_or(i32::MAX)).collect::<Vec<_>>())
    .execute(&mut *txn)
    .await
    .map_err(db_err)?;
    txn.commit().await.map_err(db_err)?;
    Ok(summary(row))
}

/// Every deck version, newest effective first within each side and set of calls.
pub async fn list(db: &DatabaseConnection) -> Result<Vec<DeckSummary>, DbErr> {
    let rows: Vec<SummaryRow> =
        sqlx::query_as(LISTED).fetch_all(db.get_postgres_connection_pool()).await.map_err(db_err)?;
    Ok(rows.into_iter().map(summary).collect())
}

type RateRow = (i64, String, String, String, String, i32, i32);

/// Every deck version with its rates, ready to price calls. A deck this version cannot read
/// is logged and left out rather than stopping ingest.
pub async fn load_book(db: &DatabaseConnection) -> Result<RateBook, DbErr> {
    let pool = db.get_postgres_connection_pool();
    let decks: Vec<SummaryRow> = sqlx::query_as(SUMMARY).fetch_all(pool).await.map_err(db_err)?;
    if decks.is_empty() {
        return Ok(RateBook::default());
    }
    let rows: Vec<RateRow> = sqlx::query_as(
        "SELECT deck_id, prefix, destination, rate_per_minute::text, connect_fee::text, min_seconds, increment_seconds \
         FROM rate_deck_rates",
    )
    .fetch_all(pool)
    .await
    .map_err(db_err)?;
    let mut rates: HashMap<i64, Vec<Rate>> = HashMap::new();
    for (deck, prefix, destination, per_minute, fee, min, inc) in rows {
        let (Ok(rate_per_minute), Ok(connect_fee)) =
            (Decimal::from_str(&per_minute), Decimal::from_str(&fee))
        else {
            tracing::warn!(deck, %prefix, "rate with an unreadable amount left out");
            continue;
        };
        let min_seconds = u32::try_from(min).unwrap_or(0);
        let increment_seconds = u32::try_from(inc).unwrap_or(1).max(1);
        let rate = Rate {
            prefix: prefix.into(),
            destination,
            rate_per_minute,
            connect_fee,
            min_seconds,
            increment_seconds,
        };
        rates.entry(deck).or_default().push(rate);
    }
    let versions =
        decks.into_iter().filter_map(|(id, _, side, applies_to, effective_from, currency, _, _)| {
            match (Side::from_str(&side), AppliesTo::from_str(&applies_to)) {
                (Ok(side), Ok(to)) => Some(DeckVersion::new(
                    id,
                    side,
                    to,
                    effective_from,
                    currency.into(),
                    rates.remove(&id).unwrap_or_default(),
                )),
                _ => {
                    tracing::warn!(deck = id, %side, %applies_to, "deck this version cannot read left out");
                    None
                }
            }
        });
    Ok(RateBook::new(versions))
}
