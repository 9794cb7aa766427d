//! Exports: every CDR matching a `/search` query, streamed into a file a client downloads.
//!
//! An export job opens a point in time on the search index, a consistent snapshot: CDRs
//! indexed while it runs are neither half picked up nor repeated. It pages through that
//! snapshot in start-time order with `search_after` and writes each page as it arrives, so
//! a worker holds one page whatever the number of rows. The file is written under a
//! temporary name and renamed once complete, with its row count and SHA-256 in the job's
//! state. A job whose worker died is delivered again and starts over from a new snapshot:
//! the partial file is overwritten, never appended to.

mod columns;
mod run;
mod write;

pub use columns::COLUMNS;
pub use run::ExportRunner;

use crate::search::{Filters, ParamError, parse_filters};
use crate::state::{JobCounts, JobKind, JobState};
use chrono::{DateTime, Utc};
use poem_openapi::Object;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// The kind an export's state shows.
pub const KIND: &str = "export";

/// Parameters an export takes besides the `/search` filters.
const OWN_PARAMETERS: &[&str] = &["format", "columns"];

/// How the rows are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Format {
    /// RFC 4180 CSV with a header row.
    #[serde(rename = "csv")]
    Csv,
    /// The same, gzip-compressed.
    #[serde(rename = "csv.gz")]
    CsvGz,
    /// One JSON object per line.
    #[serde(rename = "ndjson")]
    Ndjson,
}

impl Format {
    pub const ALL: [Format; 3] = [Format::Csv, Format::CsvGz, Format::Ndjson];

    /// The name in `format=` and the file's extension.
    pub fn as_str(self) -> &'static str {
        match self {
            Format::Csv => "csv",
            Format::CsvGz => "csv.gz",
            Format::Ndjson => "ndjson",
        }
    }

    pub fn parse(s: &str) -> Option<Format> {
        Format::ALL.into_iter().find(|f| f.as_str() == s)
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Format::Csv => "text/csv; charset=utf-8",
            Format::CsvGz => "application/gzip",
            Format::Ndjson => "application/x-ndjson",
        }
    }
}

/// The message of an export job: the query as the client sent it (read again by the
/// worker with the same parser as `/search`, so both always mean the same rows).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ExportJob {
    pub job_id: String,
    pub enqueued_at: DateTime<Utc>,
    /// The `/search` filters, as `(name, value)` pairs.
    pub query: Vec<(String, String)>,
    pub format: Format,
    /// The columns written, in order.
    pub columns: Vec<String>,
}

impl ExportJob {
    /// An export of the request's parameters: the `/search` filters plus `format` (default
    /// `csv`) and `columns` (comma-separated, default every column). Anything else, and any
    /// value that cannot be used, is refused naming its parameter.
    pub fn from_query(pairs: &[(String, String)]) -> Result<ExportJob, ParamError> {
        parse_filters(pairs, OWN_PARAMETERS)?;
        let last = |name: &str| pairs.iter().rev().find(|(k, _)| k == name).map(|(_, v)| v.trim());
        let format = match last("format") {
            None | Some("") => Format::Csv,
            Some(f) => Format::parse(f).ok_or_else(|| {
                ParamError::new("format", format!("unknown format {f:?}; use csv, csv.gz or ndjson"))
            })?,
        };
        let columns = match last("columns") {
            None | Some("") => COLUMNS.iter().map(|c| (*c).to_string()).collect(),
            Some(list) => columns::parse(list)?,
        };
        let query = pairs.iter().filter(|(k, _)| !OWN_PARAMETERS.contains(&k.as_str())).cloned().collect();
        Ok(ExportJob { job_id: crate::new_job_id(), enqueued_at: Utc::now(), query, format, columns })
    }

    /// The filters of the query, as `/search` reads them.
    pub fn filters(&self) -> Result<Filters, ParamError> {
        parse_filters(&self.query, &[])
    }

    pub fn initial_state(&self) -> JobState {
        let mut state = JobState::enqueued(
            self.job_id.clone(),
            JobKind::new(KIND),
            JobCounts::default(),
            self.enqueued_at,
        );
        state.detail = serde_json::to_value(ExportProgress::start(self)).ok();
        state
    }
}

/// An export's `detail` in `/jobs/{id}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Object)]
pub struct ExportProgress {
    pub format: String,
    pub columns: Vec<String>,
    /// Rows written so far (all of them once the file is ready).
    pub rows: u64,
    /// Rows the snapshot holds: known once the first page is read.
    #[oai(nullable)]
    pub expected: Option<u64>,
    /// Bytes written so far (the file's size once ready).
    pub bytes: u64,
    /// The finished file's SHA-256, hex.
    #[oai(nullable)]
    pub sha256: Option<String>,
    /// Where the finished file is downloaded; null until then.
    #[oai(nullable)]
    pub download: Option<String>,
    /// When the finished file is deleted.
    #[oai(nullable)]
    pub expires_at: Option<DateTime<Utc>>,
}

impl ExportProgress {
    fn start(job: &ExportJob) -> Self {
        ExportProgress {
            format: job.format.as_str().to_string(),
            columns: job.columns.clone(),
            rows: 0,
            expected: None,
            bytes: 0,
            sha256: None,
            download: None,
            expires_at: None,
        }
    }
}

/// The longest time a finished export may be kept: ten years.
const MAX_TTL_HOURS: u64 = 10 * 366 * 24;

/// Where export files live and for how long. Both the API (which serves them) and the
/// workers (which write them) read the same settings, so they must see the same directory
/// (a shared volume when they run on different hosts).
#[derive(Debug, Clone, clap::Args)]
pub struct ExportSettings {
    /// Directory finished exports are written to and downloaded from.
    #[arg(long = "export-dir", env = "CDR_EXPORT_DIR", default_value = "exports")]
    pub dir: PathBuf,
    /// Hours a finished export is kept before it is deleted.
    #[arg(long = "export-ttl-hours", env = "CDR_EXPORT_TTL_HOURS", default_value_t = 72, value_parser = clap::value_parser!(u64).range(1..=MAX_TTL_HOURS))]
    pub ttl_hours: u64,
    /// Rows read from the index and written at once: what an export holds in memory.
    #[arg(long = "export-page-rows", env = "CDR_EXPORT_PAGE_ROWS", default_value_t = 5_000, value_parser = clap::value_parser!(u64).range(1..=10_000))]
    pub page_rows: u64,
}

impl Default for ExportSettings {
    fn default() -> Self {
        ExportSettings { dir: PathBuf::from("exports"), ttl_hours: 72, page_rows: 5_000 }
    }
}

impl ExportSettings {
    /// The finished file of export `job_id`.
    pub fn file(&self, job_id: &str, format: Format) -> PathBuf {
        self.dir.join(format!("{job_id}.{}", format.as_str()))
    }

    fn partial(&self, job_id: &str, format: Format) -> PathBuf {
        self.dir.join(format!("{job_id}.{}.part", format.as_str()))
    }

    pub fn ttl(&self) -> chrono::Duration {
        chrono::Duration::hours(i64::try_from(self.ttl_hours.min(MAX_TTL_HOURS)).unwrap_or(1))
    }

    /// Deletes finished and partial exports older than the time they are kept; returns how
    /// many files went. A partial file that old belongs to no running export.
    pub async fn expire(&self, now: DateTime<Utc>) -> std::io::Result<u64> {
        let mut gone = 0;
        let mut entries = match tokio::fs::read_dir(&self.dir).await {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
            Err(e) => return Err(e),
        };
        let limit = std::time::SystemTime::from(now - self.ttl());
        while let Some(entry) = entries.next_entry().await? {
            let name = entry.file_name();
            let name = name.to_string_lossy();
            let ours = Format::ALL.iter().any(|f| {
                name.ends_with(&format!(".{}", f.as_str()))
                    || name.ends_with(&format!(".{}.part", f.as_str()))
            });
            if !ours {
                continue;
            }
            let modified = entry.metadata().await?.modified()?;
            if modified < limit {
                tokio::fs::remove_file(entry.path()).await?;
                gone += 1;
            }
        }
        Ok(gone)
    }
}

impl crate::job::Job for ExportJob {
    const QUEUE: &'static str = "export";
    const KINDS: &'static [&'static str] = &[KIND];
    const RETRIED: bool = true;
    type Runner = ExportRunner;

    fn runner(env: &crate::job::WorkerEnv) -> ExportRunner {
        ExportRunner {
            jobs: env.jobs.clone(),
            search: env.search.clone(),
            settings: env.settings.exports.clone(),
            max_attempts: env.settings.max_attempts,
        }
    }

    fn job_id(&self) -> &str {
        &self.job_id
    }

    fn initial_state(&self) -> JobState {
        self.initial_state()
    }

    async fn run(&self, runner: &ExportRunner, attempt: u32) -> Result<(), crate::job::AttemptError> {
        runner.run(self, attempt).await.map_err(Into::into)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter().map(|(k, v)| ((*k).to_string(), (*v).to_string())).collect()
    }

    #[test]
    fn a_request_is_the_search_filters_plus_format_and_columns() {
        let job = ExportJob::from_query(&pairs(&[
            ("source", "pbx-1"),
            ("format", "csv.gz"),
            ("columns", "call_id,start_time,billsec"),
            ("dest_number", "44*"),
        ]))
        .expect("valid");
        assert_eq!(job.format, Format::CsvGz);
        assert_eq!(job.columns, ["call_id", "start_time", "billsec"]);
        assert_eq!(job.query, pairs(&[("source", "pbx-1"), ("dest_number", "44*")]));
        let filters = job.filters().expect("filters");
        assert_eq!(filters.source.as_deref(), Some("pbx-1"));

        let all = ExportJob::from_query(&[]).expect("defaults");
        assert_eq!(all.format, Format::Csv);
        assert_eq!(all.columns.len(), COLUMNS.len());
    }

    #[test]
    fn bad_parameters_are_refused_by_name() {
        for (list, parameter) in [
            (vec![("format", "xlsx")], "format"),
            (vec![("columns", "call_id,price")], "columns"),
            (vec![("columns", "call_id,call_id")], "columns"),
            (vec![("min_duration", "-3")], "min_duration"),
            (vec![("limit", "10")], "limit"),
        ] {
            let e = ExportJob::from_query(&pairs(&list)).expect_err("refused");
            assert_eq!(e.parameter, parameter, "{list:?}");
        }
    }

    #[tokio::test]
    async fn expiry_deletes_only_old_export_files() {
        let dir = std::env::temp_dir().join(format!("cdr-export-expiry-{}", crate::new_job_id()));
        tokio::fs::create_dir_all(&dir).await.expect("dir");
        let settings = ExportSettings { dir: dir.clone(), ttl_hours: 1, page_rows: 10 };
        for name in ["a.csv", "b.csv.gz.part", "c.ndjson", "notes.txt"] {
            tokio::fs::write(dir.join(name), b"x").await.expect("write");
        }
        assert_eq!(settings.expire(Utc::now()).await.expect("expire"), 0, "fresh files stay");
        let later = Utc::now() + chrono::Duration::hours(2);
        assert_eq!(settings.expire(later).await.expect("expire"), 3);
        assert!(dir.join("notes.txt").exists(), "files that are not exports are left alone");
        tokio::fs::remove_dir_all(&dir).await.expect("clean up");
    }
}
