//! KPI rollups: per-minute sums by source, direction, disposition, account code and
//! destination prefix, kept exactly in step with the stored CDRs.
//!
//! The ingest transaction that stores a batch appends the sums of the rows it actually
//! inserted to `kpi_pending`, one row of parallel arrays per batch (duplicates add nothing; a redelivered job rolls back with its
//! sums), and [`fold::Folder`] moves pending sums into `kpi_minute` in single statements
//! that delete what they add. A sum is therefore counted once, whatever crashes where, and
//! readers that add `kpi_pending` to `kpi_minute` see exactly the rows committed.

pub mod fold;

/// The rollup dimensions and sums of a set of CDR rows named `rows`, grouped by the first
/// seven output columns after the leading `job_id` parameter. Shared by the ingest statement
/// and the rebuild from `cdrs`, so both derive every dimension the same way.
pub const SUMS_OF_ROWS: &str = "date_trunc('minute', start_time, 'UTC'), source, coalesce(direction, ''), \
     disposition, coalesce(account_code, ''), \
     coalesce(substring(regexp_replace(dest_number, '^(\\+|00)', '') from '^[0-9]{1,3}'), ''), \
     count(*), count(*) FILTER (WHERE disposition IN ('ANSWERED', 'BUSY', 'NO ANSWER') OR hangup_cause = 'CALL_REJECTED'), \
     coalesce(sum(billsec), 0), coalesce(sum(duration), 0)";

/// Pending sums as rows (each pending row holds one batch's sums as parallel arrays).
pub const PENDING_ROWS: &str = "SELECT p.job_id, u.* FROM kpi_pending p, \
     unnest(p.bucket, p.source, p.direction, p.disposition, p.account_code, p.dest_prefix, \
            p.attempts, p.effective, p.billsec, p.duration) \
     AS u(bucket, source, direction, disposition, account_code, dest_prefix, attempts, effective, billsec, duration)";

/// Every CDR stored, as the rollups count them: folded plus pending. Cheap at any size.
pub const TOTAL_SQL: &str = "SELECT ((SELECT attempts FROM kpi_totals WHERE id = 1) + \
     (SELECT coalesce(sum(a), 0) FROM kpi_pending, unnest(attempts) AS a))::int8 AS total";
