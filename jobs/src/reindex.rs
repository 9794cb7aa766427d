//! Rebuilding the search index from PostgreSQL with zero downtime.
//!
//! The table (or one month of it) is streamed in id order into new indices, one per month,
//! while the aliases keep serving the old ones; rows stored or indexed meanwhile are caught
//! up; then the read alias and each month's write alias move to the new indices in one
//! atomic step, and the old indices are deleted. A full rebuild also moves an installation
//! that served one index for every month to one per month.

use crate::error_code::ErrorCode;
use crate::search::{SearchError, SearchIndex, WriteTo, months::Layout};
use crate::state::{JobCounts, JobKind, JobState, JobStore};
use crate::store::partitions::{add_months, month_of};
use chrono::{DateTime, NaiveDate, Utc};
use entities::{cdrs, index_failures};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseConnection, DbErr, EntityTrait, PaginatorTrait, QueryFilter,
    QueryOrder, QuerySelect,
};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;
use tracing::{info, warn};

/// Only one rebuild runs at a time; this lease names it.
pub const LEASE: &str = "reindex";

/// The kinds a rebuild's state shows: of the search index, of the KPI rollups, and a
/// re-rate.
pub const KIND: &str = "reindex";
pub const ROLLUP_KIND: &str = "rollup_rebuild";
pub const RERATE_KIND: &str = "rerate";
const LEASE_TTL: Duration = Duration::from_secs(24 * 3600);
/// Rows stored or indexed this close before the rebuild started are caught up again:
/// a transaction can commit a little after the `ingested_at` it stamped.
const CATCH_UP_MARGIN: chrono::Duration = chrono::Duration::seconds(60);
const CHUNK_RETRIES: u32 = 8;

/// A rebuild of what is derived from the rows in PostgreSQL (the search index, the KPI
/// rollups, the calls' numbers and prices); every kind travels on the rebuild queue.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ReindexJob {
    pub job_id: String,
    pub enqueued_at: DateTime<Utc>,
    /// What is rebuilt: the search index (messages without the field, from earlier
    /// versions, are index rebuilds), the KPI rollups of a window, or the prices of calls.
    #[serde(default)]
    pub target: RebuildTarget,
    /// For an index rebuild: only this month's index (its first day); all months when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub month: Option<NaiveDate>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RebuildTarget {
    #[default]
    Index,
    Rollups(crate::rollups::rebuild::RebuildWindow),
    /// A re-rate of the calls in scope ([`crate::rating::rerate`]).
    Rerate(crate::rating::rerate::RerateScope),
}

/// Only one re-rate runs at a time; this lease names it.
pub const RERATE_LEASE: &str = "rerate";

/// Only one rollup rebuild runs at a time; this lease names it.
pub const ROLLUP_LEASE: &str = "rollup-rebuild";

impl ReindexJob {
    pub fn new() -> Self {
        ReindexJob {
            job_id: crate::new_job_id(),
            enqueued_at: Utc::now(),
            target: RebuildTarget::Index,
            month: None,
        }
    }

    /// A rebuild of one month's search index.
    pub fn month(month: NaiveDate) -> Self {
        ReindexJob { month: Some(month), ..Self::new() }
    }

    /// A rebuild of the KPI rollups of `window`.
    pub fn rollups(window: crate::rollups::rebuild::RebuildWindow) -> Self {
        ReindexJob { target: RebuildTarget::Rollups(window), ..Self::new() }
    }

    /// A re-rate of the calls in `scope`.
    pub fn rerate(scope: crate::rating::rerate::RerateScope) -> Self {
        ReindexJob { target: RebuildTarget::Rerate(scope), ..Self::new() }
    }

    pub fn kind(&self) -> JobKind {
        JobKind::new(match self.target {
            RebuildTarget::Index => KIND,
            RebuildTarget::Rollups(_) => ROLLUP_KIND,
            RebuildTarget::Rerate(_) => RERATE_KIND,
        })
    }

    /// The lease that keeps two rebuilds of the same thing from running at once.
    pub fn lease(&self) -> &'static str {
        match self.target {
            RebuildTarget::Index => LEASE,
            RebuildTarget::Rollups(_) => ROLLUP_LEASE,
            RebuildTarget::Rerate(_) => RERATE_LEASE,
        }
    }

    pub fn initial_state(&self) -> JobState {
        JobState::enqueued(self.job_id.clone(), self.kind(), JobCounts::default(), self.enqueued_at)
    }
}

impl Default for ReindexJob {
    fn default() -> Self {
        Self::new()
    }
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReindexError {
    #[error("a rebuild is already running (job {0})")]
    AlreadyRunning(String),
    #[error("database: {0}")]
    Database(#[from] DbErr),
    #[error("{0}")]
    Search(#[from] SearchError),
    #[error("job state store: {0}")]
    JobState(#[from] redis::RedisError),
    #[error("the index still serves every month from one index: rebuild all months first")]
    WholeRebuildFirst,
}

/// Claims the rebuild lease for a new job, unless a live rebuild holds it.
pub async fn claim(jobs: &JobStore, job: &ReindexJob) -> Result<(), ReindexError> {
    jobs.claim_lease(job.lease(), &job.job_id, LEASE_TTL).await?.map_err(ReindexError::AlreadyRunning)
}

#[derive(Clone)]
pub struct ReindexRunner {
    pub db: DatabaseConnection,
    pub jobs: JobStore,
    pub search: SearchIndex,
    /// Where a message that is not a rebuild job is parked for inspection.
    pub publisher: crate::queue::Publisher,
    pub chunk: u64,
    /// The dialling plans and rate decks re-rates price by.
    pub catalogue: crate::rating::CatalogueCache,
}

/// What a rebuild wrote.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Rebuilt {
    pub indexed: u64,
    /// Rows the new index refused for good: skipped, listed in `index_failures`.
    pub refused: u64,
}

impl ReindexRunner {
    /// Runs the whole rebuild; the job's state shows progress in `counts.indexed`. A
    /// redelivered job picks up where its earlier delivery stopped: if the alias already
    /// moved, it only finishes the clean-up.
    pub async fn run(&self, job: &ReindexJob) -> Result<Rebuilt, ReindexError> {
        match &job.target {
            RebuildTarget::Rollups(window) => return self.rebuild_rollups(job, window).await,
            RebuildTarget::Rerate(scope) => return self.rerate(job, scope).await,
            RebuildTarget::Index => {}
        }
        let known = self.jobs.get(&job.job_id).await?;
        if let Some(state) = &known
            && state.status == crate::state::JobStatus::Succeeded
        {
            // Done by an earlier delivery that died before its acknowledgement.
            if let Err(e) = self.jobs.release_lease(LEASE, &job.job_id).await {
                warn!(error = %e, "could not release the reindex lease");
            }
            return Ok(Rebuilt { indexed: state.counts.indexed, refused: state.counts.refused });
        }
        self.jobs.start_attempt(&job.initial_state()).await?;
        // What the catch-up looks back from: when an earlier delivery started, else when the
        // job was queued (moments before this first attempt).
        let started = known.and_then(|s| s.started_at).unwrap_or(job.enqueued_at);
        let result = self.rebuild(job, started).await;
        match &result {
            Ok(done) => {
                let counts =
                    JobCounts { indexed: done.indexed, refused: done.refused, ..JobCounts::default() };
                self.jobs.mark_succeeded(&job.job_id, &counts).await?;
                crate::metrics::count_job("reindex", "succeeded");
                info!(job_id = %job.job_id, indexed = done.indexed, refused = done.refused, "reindex succeeded");
            }
            Err(e) => {
                self.jobs.mark_failed(&job.job_id, e.code(), &e.to_string()).await?;
                crate::metrics::count_job("reindex", "failed");
                warn!(job_id = %job.job_id, error = %e, "reindex failed");
            }
        }
        crate::crash::point("reindex-before-ack");
        if let Err(e) = self.jobs.release_lease(LEASE, &job.job_id).await {
            warn!(error = %e, "could not release the reindex lease");
        }
        result
    }

    /// A rollup rebuild: one transaction, so a redelivery simply runs it again.
    async fn rebuild_rollups(
        &self,
        job: &ReindexJob,
        window: &crate::rollups::rebuild::RebuildWindow,
    ) -> Result<Rebuilt, ReindexError> {
        let work = async {
            let done = crate::rollups::rebuild::rebuild(&self.db, window).await?;
            info!(job_id = %job.job_id, rows = done.rows, corrected = done.corrected, "rollups rebuilt");
            Ok(done)
        };
        self.run_once(job, work, |done| JobCounts { received: done.rows, ..JobCounts::default() }).await?;
        Ok(Rebuilt::default())
    }

    /// A re-rate: chunks committed one by one with their progress, so a redelivery resumes
    /// after the last; the batches whose calls changed are queued for indexing as it goes
    /// (and found by the sweeper if that fails).
    async fn rerate(
        &self,
        job: &ReindexJob,
        scope: &crate::rating::rerate::RerateScope,
    ) -> Result<Rebuilt, ReindexError> {
        let on_chunk = |progress: crate::rating::rerate::RerateProgress, batches: Vec<String>| async move {
            if let Err(e) = self.jobs.set_rerate(&job.job_id, &progress).await {
                warn!(job_id = %job.job_id, error = %e, "could not record re-rate progress");
            }
            for batch in batches {
                if let Err(e) = crate::indexing::enqueue(&self.publisher, &self.jobs, &batch).await {
                    warn!(batch = %batch, error = %e, "could not queue indexing of re-rated calls; the sweeper will");
                }
            }
        };
        let work = async {
            let done = crate::rating::rerate::rerate(&self.db, &self.catalogue, &job.job_id, scope, on_chunk)
                .await?;
            if let Err(e) = self.jobs.set_rerate(&job.job_id, &done).await {
                warn!(job_id = %job.job_id, error = %e, "could not record re-rate progress");
            }
            info!(job_id = %job.job_id, scanned = done.scanned, changed = done.changed, "re-rate done");
            Ok(done)
        };
        self.run_once(job, work, |done| JobCounts { received: done.scanned, ..JobCounts::default() }).await?;
        Ok(Rebuilt::default())
    }

    /// Runs `work`, a rebuild that commits as it goes, unless an earlier delivery of `job`
    /// finished it; records the attempt and the outcome (counts from `counts`), counts it in
    /// the metrics and releases the job's lease. `Ok(None)` when there was nothing to do.
    async fn run_once<T>(
        &self,
        job: &ReindexJob,
        work: impl std::future::Future<Output = Result<T, ReindexError>>,
        counts: impl FnOnce(&T) -> JobCounts,
    ) -> Result<Option<T>, ReindexError> {
        let kind = job.kind();
        let kind = kind.as_str();
        let known = self.jobs.get(&job.job_id).await?;
        let result = if known.is_some_and(|s| s.status == crate::state::JobStatus::Succeeded) {
            Ok(None)
        } else {
            self.jobs.start_attempt(&job.initial_state()).await?;
            work.await.map(Some)
        };
        match &result {
            Ok(Some(done)) => {
                self.jobs.mark_succeeded(&job.job_id, &counts(done)).await?;
                crate::metrics::count_job(kind, "succeeded");
            }
            Ok(None) => {}
            Err(e) => {
                self.jobs.mark_failed(&job.job_id, e.code(), &e.to_string()).await?;
                crate::metrics::count_job(kind, "failed");
                warn!(job_id = %job.job_id, kind, error = %e, "rebuild failed");
            }
        }
        if let Err(e) = self.jobs.release_lease(job.lease(), &job.job_id).await {
            warn!(job_id = %job.job_id, kind, error = %e, "could not release the rebuild lease");
        }
        result
    }

    async fn rebuild(&self, job: &ReindexJob, started: DateTime<Utc>) -> Result<Rebuilt, ReindexError> {
        let generation = job.job_id.as_str();
        let mine = |index: &str| {
            index.ends_with(&format!("-{generation}")) && self.search.month_of_index(index).is_some()
        };
        let current = self.search.indices_with_aliases().await?;
        let mut known = BTreeSet::new();
        if current.iter().any(|(index, aliases)| mine(index) && aliases.contains(self.search.alias())) {
            // An earlier delivery moved the aliases and died before finishing: the indices they
            // serve are complete. Finish the catch-up and the clean-up only.
            info!(job_id = %job.job_id, "aliases already moved by an earlier delivery");
            self.catch_up(job, started, &mut known).await?;
            self.drop_replaced(job).await?;
            self.forget_failures_before(job, started).await?;
            let indexed = self.search.count(Some(&self.generation_pattern(generation))).await?;
            return Ok(Rebuilt { indexed, refused: self.refused_since(started).await? });
        }
        if job.month.is_some() && self.search.layout().await? == Some(Layout::Single) {
            return Err(ReindexError::WholeRebuildFirst);
        }
        // An interrupted earlier attempt may have left partial indices (never served ones:
        // that case is above).
        for index in current.keys().filter(|i| mine(i)) {
            self.search.delete_index(index).await?;
        }
        // A month's index is made when its first row comes (write_chunk); a rebuild of
        // everything over no rows at all still leaves this month's, so reads find the alias.
        if job.month.is_none() {
            let rows = self.scoped(job).limit(1).all(&self.db).await?;
            if rows.is_empty() {
                let month = month_of(Utc::now());
                self.search.create_month_index(month, generation).await?;
                known.insert(month);
            }
        }
        crate::crash::point("reindex-after-create");

        let mut last_id = 0_i64;
        let mut done = Rebuilt::default();
        loop {
            let rows =
                self.scoped(job).filter(cdrs::Column::Id.gt(last_id)).limit(self.chunk).all(&self.db).await?;
            let Some(last) = rows.last() else { break };
            last_id = last.id;
            let (written, refused) = self.write_chunk(generation, &rows, &job.job_id, &mut known).await?;
            done.indexed += written;
            done.refused += refused;
            self.jobs.add_indexed(&job.job_id, rows.len() as u64).await?;
            crate::crash::point("reindex-after-chunk");
        }
        done.refused += self.catch_up(job, started, &mut known).await?;
        let pattern = self.generation_pattern(generation);
        self.search.refresh(Some(&pattern)).await?;
        // What the aliases leave, read just before they move: every index serving the read
        // alias (for one month: that month's), but this rebuild's.
        let old: BTreeMap<String, BTreeSet<String>> = self
            .search
            .indices_with_aliases()
            .await?
            .into_iter()
            .filter(|(index, aliases)| !mine(index) && aliases.contains(self.search.alias()))
            .filter(|(index, _)| job.month.is_none() || self.search.month_of_index(index) == job.month)
            .collect();
        let new: Vec<String> = known.iter().map(|m| self.search.month_index(*m, generation)).collect();
        // Kept with the job so a later delivery knows what to delete after the swap.
        let replaced: Vec<&str> = old.keys().map(String::as_str).collect();
        self.jobs.set_note(&job.job_id, "replaces", &replaced.join(",")).await?;
        crate::crash::point("reindex-before-swap");
        self.search.swap_months(&old, &new).await?;
        crate::crash::point("reindex-after-swap");
        // Rows written to the old indices between the catch-up and the swap.
        done.refused += self.catch_up(job, started, &mut known).await?;
        self.drop_replaced(job).await?;
        self.forget_failures_before(job, started).await?;
        info!(job_id = %job.job_id, month = ?job.month, indices = ?new, replaced = ?replaced, rows = done.indexed, refused = done.refused, "aliases swapped");
        Ok(done)
    }

    /// The rows a rebuild covers, in id order: all of them, or one month's.
    fn scoped(&self, job: &ReindexJob) -> sea_orm::Select<cdrs::Entity> {
        let rows = cdrs::Entity::find().order_by_asc(cdrs::Column::Id);
        match job.month {
            Some(month) => rows
                .filter(cdrs::Column::StartTime.gte(crate::retention::month_start(month)))
                .filter(cdrs::Column::StartTime.lt(crate::retention::month_start(add_months(month, 1)))),
            None => rows,
        }
    }

    /// Every index a rebuild made.
    fn generation_pattern(&self, generation: &str) -> String {
        format!("{}-*-{generation}", self.search.alias())
    }

    /// Deletes the indices the aliases served before this rebuild.
    async fn drop_replaced(&self, job: &ReindexJob) -> Result<(), ReindexError> {
        let replaced = self.jobs.note(&job.job_id, "replaces").await?.unwrap_or_default();
        let generation = format!("-{}", job.job_id);
        for index in replaced.split(',').filter(|i| !i.is_empty() && !i.ends_with(&generation)) {
            self.search.delete_index(index).await?;
        }
        crate::crash::point("reindex-after-delete");
        Ok(())
    }

    /// Rows refused before this rebuild were all written again by it: those it accepted are
    /// failures no more, those it refused again were recorded anew. A month's rebuild only
    /// speaks for that month's rows.
    async fn forget_failures_before(
        &self,
        job: &ReindexJob,
        started: DateTime<Utc>,
    ) -> Result<(), ReindexError> {
        let backend = self.db.get_database_backend();
        let statement = match job.month {
            None => sea_orm::Statement::from_sql_and_values(
                backend,
                "DELETE FROM index_failures WHERE failed_at < $1",
                [started.into()],
            ),
            Some(month) => sea_orm::Statement::from_sql_and_values(
                backend,
                "DELETE FROM index_failures f USING cdrs c WHERE f.cdr_id = c.id AND f.failed_at < $1 \
                 AND c.start_time >= $2 AND c.start_time < $3",
                [
                    started.into(),
                    crate::retention::month_start(month).into(),
                    crate::retention::month_start(add_months(month, 1)).into(),
                ],
            ),
        };
        self.db.execute_raw(statement).await?;
        Ok(())
    }

    /// Rows the index refused since `since` (this rebuild's refusals).
    async fn refused_since(&self, since: DateTime<Utc>) -> Result<u64, ReindexError> {
        let n = index_failures::Entity::find()
            .filter(index_failures::Column::FailedAt.gte(since))
            .count(&self.db)
            .await?;
        Ok(n)
    }

    /// Re-writes rows stored or indexed since the rebuild began; returns the rows refused.
    async fn catch_up(
        &self,
        job: &ReindexJob,
        started: DateTime<Utc>,
        known: &mut BTreeSet<NaiveDate>,
    ) -> Result<u64, ReindexError> {
        let since = started - CATCH_UP_MARGIN;
        let mut last_id = 0_i64;
        let mut refused = 0;
        loop {
            let rows = self
                .scoped(job)
                .filter(cdrs::Column::Id.gt(last_id))
                .filter(Expr::cust_with_values(
                    "job_id IN (SELECT job_id FROM ingest_batches WHERE committed_at >= $1 OR indexed_at >= $1)",
                    [since],
                ))
                .limit(self.chunk)
                .all(&self.db)
                .await?;
            let Some(last) = rows.last() else {
                return Ok(refused);
            };
            last_id = last.id;
            refused += self.write_chunk(&job.job_id, &rows, "catch-up", known).await?.1;
        }
    }

    /// Writes one chunk, retrying what the engine refuses for now; rows refused for good
    /// are recorded and skipped. Returns (written, refused).
    async fn write_chunk(
        &self,
        generation: &str,
        rows: &[cdrs::Model],
        job_id: &str,
        known: &mut BTreeSet<NaiveDate>,
    ) -> Result<(u64, u64), ReindexError> {
        // A month that gained its first rows since the rebuild began gets its index now.
        for row in rows {
            let month = month_of(row.start_time);
            if known.insert(month) {
                self.search.create_month_index(month, generation).await?;
            }
        }
        let mut pending: Vec<cdrs::Model> = rows.to_vec();
        let mut written = 0;
        let mut refused = 0;
        for attempt in 0..=CHUNK_RETRIES {
            let outcome = match self.search.bulk_index(WriteTo::Rebuild { generation }, &pending).await {
                Ok(o) => o,
                Err(e) if e.is_transient() && attempt < CHUNK_RETRIES => {
                    tokio::time::sleep(backoff(attempt)).await;
                    continue;
                }
                Err(e) => return Err(e.into()),
            };
            written += outcome.indexed.len() as u64;
            crate::indexing::clear_failures(&self.db, &outcome.indexed).await?;
            for (id, reason) in &outcome.rejected {
                crate::indexing::record_failure(&self.db, *id, job_id, reason).await?;
            }
            if !outcome.rejected.is_empty() {
                warn!(job_id, refused = outcome.rejected.len(), first = %outcome.rejected[0].1, "rebuild skipped rows the index refused");
            }
            refused += outcome.rejected.len() as u64;
            if outcome.retryable.is_empty() {
                return Ok((written, refused));
            }
            let retry: std::collections::HashSet<i64> = outcome.retryable.iter().map(|(id, _)| *id).collect();
            pending.retain(|r| retry.contains(&r.id));
            tokio::time::sleep(backoff(attempt)).await;
        }
        Err(ReindexError::Search(SearchError::Status {
            status: 429,
            body: "rows still refused after retries".into(),
        }))
    }
}

impl ReindexError {
    /// The code a client sees in the job's state.
    pub fn code(&self) -> ErrorCode {
        match self {
            ReindexError::AlreadyRunning(_) | ReindexError::WholeRebuildFirst => ErrorCode::Conflict,
            ReindexError::Database(e) if crate::store::is_transient(e) => ErrorCode::DatabaseUnavailable,
            ReindexError::Database(_) => ErrorCode::DatabaseRefused,
            ReindexError::Search(e) if e.is_transient() => ErrorCode::SearchUnavailable,
            ReindexError::Search(_) => ErrorCode::SearchRefused,
            ReindexError::JobState(_) => ErrorCode::StateUnavailable,
        }
    }
}

fn backoff(attempt: u32) -> Duration {
    Duration::from_millis(200 * 2_u64.pow(attempt.min(7)))
}

/// A rebuild runs once per delivery; its failure is recorded in its state and it is not
/// retried by itself (an operator starts another).
impl crate::job::Job for ReindexJob {
    const QUEUE: &'static str = "reindex";
    const KINDS: &'static [&'static str] = &[KIND, ROLLUP_KIND, RERATE_KIND];
    type Runner = ReindexRunner;

    fn runner(env: &crate::job::WorkerEnv) -> ReindexRunner {
        ReindexRunner {
            db: env.db.clone(),
            jobs: env.jobs.clone(),
            search: env.search.clone(),
            publisher: env.publisher.clone(),
            chunk: env.settings.index_chunk,
            catalogue: env.catalogue.clone(),
        }
    }

    fn job_id(&self) -> &str {
        &self.job_id
    }

    fn initial_state(&self) -> JobState {
        self.initial_state()
    }

    async fn run(&self, runner: &ReindexRunner, _attempt: u32) -> Result<(), crate::job::AttemptError> {
        if let Err(e) = runner.run(self).await {
            warn!(job_id = %self.job_id, error = %e, "rebuild job ended in failure");
        }
        Ok(())
    }
}
