//! The reference data ingest derives with (every source's dialling plan and every rate
//! deck), cached per process and reloaded when an operator changes it.

use super::book::{RateBook, Rating, RatingStatus, Side};
use crate::cdr::Cdr;
use crate::numbers::Normalised;
use crate::numbers::plans::{self, PlanBook};
use foldhash::HashMap;
use sea_orm::{DatabaseConnection, DbErr};
use std::sync::Arc;
use tokio::sync::Mutex;

/// What the system works out from one CDR, stored beside what the switch wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Derived {
    pub src: Normalised,
    pub dest: Normalised,
    pub sell: Rating,
    pub buy: Rating,
}

impl Derived {
    /// Nothing worked out: what a CDR stores when ingest neither normalises nor prices it,
    /// as the build the ingest benchmark compares against does (the jobs crate's
    /// `bench-without-rating` feature).
    pub fn nothing() -> Self {
        let unknown = || Normalised { e164: None, country: None, kind: "" };
        let unpriced =
            || Rating { status: RatingStatus::NoDeck, cost: None, currency: None, prefix: None, deck: None };
        Derived { src: unknown(), dest: unknown(), sell: unpriced(), buy: unpriced() }
    }
}

/// Dialling plans and rate decks as of one moment.
#[derive(Debug, Clone, Default)]
pub struct Catalogue {
    pub plans: PlanBook,
    pub rates: RateBook,
    /// Numbers already normalised under these plans, by plan and value as written.
    memo: Memo,
}

/// Normalisation costs microseconds to tens of them (libphonenumber's patterns), and calls
/// repeat their numbers: a PBX's callers, a carrier's busiest destinations. Bounded: emptied
/// when full; a new catalogue (a plan changed) starts empty. Looked up by plan, then value,
/// so that a number seen before costs no allocation to find.
#[derive(Debug, Clone, Default)]
struct Memo(Arc<std::sync::Mutex<MemoTable>>);

#[derive(Debug, Default)]
struct MemoTable {
    by_plan: HashMap<String, HashMap<String, Normalised>>,
    entries: usize,
}

/// Numbers the memo keeps at most (about 15 MiB).
const MEMO_ENTRIES: usize = 100_000;

impl Memo {
    fn get_or(&self, plan: &str, raw: &str, compute: impl FnOnce() -> Normalised) -> Normalised {
        let lock = || self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(known) = lock().by_plan.get(plan).and_then(|numbers| numbers.get(raw)) {
            return known.clone();
        }
        let n = compute();
        let mut memo = lock();
        if memo.entries >= MEMO_ENTRIES {
            *memo = MemoTable::default();
        }
        let numbers = memo.by_plan.entry(plan.to_string()).or_default();
        if numbers.insert(raw.to_string(), n.clone()).is_none() {
            memo.entries += 1;
        }
        n
    }
}

impl Catalogue {
    pub fn new(plans: PlanBook, rates: RateBook) -> Self {
        Catalogue { plans, rates, memo: Memo::default() }
    }
}

impl Catalogue {
    /// The caller's and callee's numbers by the source's plan, and the price of the call on
    /// both sides.
    pub fn derive(&self, cdr: &Cdr) -> Derived {
        self.derive_from(&Parties {
            source: &cdr.source,
            account_code: cdr.account_code.as_deref(),
            src_number: &cdr.src_number,
            dest_number: &cdr.dest_number,
            start_time: cdr.start_time,
            billsec: cdr.billsec,
        })
    }

    /// [`Catalogue::derive`] from the fields it reads, as a stored row has them.
    pub fn derive_from(&self, p: &Parties<'_>) -> Derived {
        let (plan_name, plan) = self.plans.named_for(p.source);
        let src = self.memo.get_or(plan_name, p.src_number, || plan.normalise(p.src_number));
        let dest = self.memo.get_or(plan_name, p.dest_number, || plan.normalise(p.dest_number));
        let rate = |side| {
            self.rates.rate(side, p.account_code, p.source, dest.e164.as_deref(), p.start_time, p.billsec)
        };
        Derived { sell: rate(Side::Sell), buy: rate(Side::Buy), src, dest }
    }
}

/// What deriving reads from a CDR.
#[derive(Debug, Clone, Copy)]
pub struct Parties<'a> {
    pub source: &'a str,
    pub account_code: Option<&'a str>,
    pub src_number: &'a str,
    pub dest_number: &'a str,
    pub start_time: chrono::DateTime<chrono::Utc>,
    pub billsec: i32,
}

/// Changes whenever a plan is saved or deleted or a deck added.
const VERSION_SQL: &str = "SELECT (SELECT count(*) FROM dialling_plans)::int8, \
     (SELECT coalesce((extract(epoch FROM max(updated_at)) * 1000000)::int8, 0) FROM dialling_plans), \
     (SELECT coalesce(max(id), 0) FROM rate_decks)::int8";

type Version = (i64, i64, i64);

/// The catalogue last loaded, with the version it was loaded at.
type Loaded = Option<(Version, Arc<Catalogue>)>;

/// The current [`Catalogue`], checked against the database once per use (one cheap query)
/// and reloaded only when it changed.
#[derive(Clone, Default)]
pub struct CatalogueCache {
    loaded: Arc<Mutex<Loaded>>,
}

impl CatalogueCache {
    pub async fn current(&self, db: &DatabaseConnection) -> Result<Arc<Catalogue>, DbErr> {
        let pool = db.get_postgres_connection_pool();
        let version: Version = sqlx::query_as(VERSION_SQL)
            .fetch_one(pool)
            .await
            .map_err(|e| DbErr::Custom(format!("catalogue version: {e}")))?;
        let mut loaded = self.loaded.lock().await;
        if let Some((v, catalogue)) = loaded.as_ref()
            && *v == version
        {
            return Ok(catalogue.clone());
        }
        let catalogue = Arc::new(Catalogue::new(plans::load(db).await?, super::store::load_book(db).await?));
        tracing::info!(plans = version.0, latest_deck = version.2, "dialling plans and rate decks loaded");
        *loaded = Some((version, catalogue.clone()));
        Ok(catalogue)
    }
}
