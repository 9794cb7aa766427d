//! Prometheus metrics of both binaries, in one process-wide registry.
//!
//! Counters are bumped where the work happens; gauges that describe shared state (queue
//! depths, index backlog) are sampled when `/metrics` is scraped.

use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry,
    TextEncoder,
};
use std::sync::LazyLock;

/// Seconds; from a quick ingest of a small batch to a large rebuild.
const JOB_BUCKETS: [f64; 12] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0, 60.0, 600.0];
const HTTP_BUCKETS: [f64; 11] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0];

pub struct Metrics {
    registry: Registry,
    /// Jobs that reached a final state, by kind and status.
    pub jobs: IntCounterVec,
    /// Wall time of successful job attempts, by kind.
    pub job_seconds: HistogramVec,
    /// CDRs by what became of them: received, rejected, inserted, duplicate, indexed.
    pub records: IntCounterVec,
    /// HTTP requests by route template and status.
    pub http_requests: IntCounterVec,
    pub http_seconds: HistogramVec,
    /// Messages waiting per queue, sampled at scrape time.
    pub queue_depth: IntGaugeVec,
    /// Consumers per queue (a worker process takes each of its queues with one), sampled at
    /// scrape time.
    pub queue_consumers: IntGaugeVec,
    /// Rows in PostgreSQL not yet in the index, sampled at scrape time.
    pub index_backlog: IntGauge,
    /// API handlers that panicked (answered 500 by the catch-panic layer). A plain counter,
    /// so it is exported at 0 from the start: a scrape without it is a broken exporter, not
    /// a healthy API, and an alert on any increase needs no label to exist first.
    pub api_panics: IntCounter,
    /// Alert rules firing now (1) or not (0), by rule, sampled at scrape time.
    pub alert_firing: IntGaugeVec,
    /// Jobs by current status (those changed within the state TTL), sampled at scrape time.
    pub jobs_in_status: IntGaugeVec,
    /// Alert rules that fired or resolved.
    pub alert_transitions: IntCounterVec,
    /// Alert notifications by outcome: delivered, failed (an attempt the receiver refused).
    pub webhook_deliveries: IntCounterVec,
}

fn build() -> Result<Metrics, prometheus::Error> {
    let registry = Registry::new();
    let m = Metrics {
        jobs: IntCounterVec::new(
            Opts::new("cdr_jobs_total", "Jobs that ended, by kind and final status"),
            &["kind", "status"],
        )?,
        job_seconds: HistogramVec::new(
            HistogramOpts::new("cdr_job_duration_seconds", "Duration of successful job attempts")
                .buckets(JOB_BUCKETS.to_vec()),
            &["kind"],
        )?,
        records: IntCounterVec::new(
            Opts::new(
                "cdr_records_total",
                "CDRs by outcome: received, rejected, inserted, duplicate, indexed",
            ),
            &["outcome"],
        )?,
        http_requests: IntCounterVec::new(
            Opts::new("cdr_http_requests_total", "HTTP requests"),
            &["route", "status"],
        )?,
        http_seconds: HistogramVec::new(
            HistogramOpts::new("cdr_http_request_duration_seconds", "HTTP request latency")
                .buckets(HTTP_BUCKETS.to_vec()),
            &["route"],
        )?,
        queue_depth: IntGaugeVec::new(
            Opts::new("cdr_queue_depth", "Messages waiting in a job queue"),
            &["queue"],
        )?,
        queue_consumers: IntGaugeVec::new(
            Opts::new("cdr_queue_consumers", "Consumers taking from a job queue"),
            &["queue"],
        )?,
        index_backlog: IntGauge::new("cdr_index_backlog", "Rows stored but not yet searchable")?,
        api_panics: IntCounter::new("cdr_api_panics_total", "API requests whose handler panicked")?,
        alert_firing: IntGaugeVec::new(
            Opts::new("cdr_alert_firing", "Alert rules firing now (1) or not (0)"),
            &["rule"],
        )?,
        jobs_in_status: IntGaugeVec::new(
            Opts::new(
                "cdr_jobs_in_status",
                "Jobs by current status, among those changed within the state TTL",
            ),
            &["status"],
        )?,
        alert_transitions: IntCounterVec::new(
            Opts::new("cdr_alert_transitions_total", "Alert rules that fired or resolved"),
            &["state"],
        )?,
        webhook_deliveries: IntCounterVec::new(
            Opts::new("cdr_alert_notifications_total", "Alert notification attempts by outcome"),
            &["outcome"],
        )?,
        registry,
    };
    m.registry.register(Box::new(m.jobs.clone()))?;
    m.registry.register(Box::new(m.job_seconds.clone()))?;
    m.registry.register(Box::new(m.records.clone()))?;
    m.registry.register(Box::new(m.http_requests.clone()))?;
    m.registry.register(Box::new(m.http_seconds.clone()))?;
    m.registry.register(Box::new(m.queue_depth.clone()))?;
    m.registry.register(Box::new(m.queue_consumers.clone()))?;
    m.registry.register(Box::new(m.index_backlog.clone()))?;
    m.registry.register(Box::new(m.api_panics.clone()))?;
    m.registry.register(Box::new(m.alert_firing.clone()))?;
    m.registry.register(Box::new(m.alert_transitions.clone()))?;
    m.registry.register(Box::new(m.jobs_in_status.clone()))?;
    m.registry.register(Box::new(m.webhook_deliveries.clone()))?;
    Ok(m)
}

static METRICS: LazyLock<Metrics> = LazyLock::new(|| {
    // Names and labels are constants: failing here is a programming error caught by tests.
    build().unwrap_or_else(|e| panic!("metric definitions are invalid: {e}"))
});

pub fn metrics() -> &'static Metrics {
    &METRICS
}

/// Counts CDRs with an outcome.
pub fn count_records(outcome: &str, n: u64) {
    metrics().records.with_label_values(&[outcome]).inc_by(n);
}

/// Counts a job that ended.
pub fn count_job(kind: &str, status: &str) {
    metrics().jobs.with_label_values(&[kind, status]).inc();
}

/// The registry in Prometheus' text format.
pub fn render() -> String {
    let mut buf = Vec::new();
    let encoder = TextEncoder::new();
    if let Err(e) = encoder.encode(&metrics().registry.gather(), &mut buf) {
        tracing::warn!(error = %e, "could not encode metrics");
    }
    String::from_utf8(buf).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_metric_renders_with_its_name() {
        count_records("received", 3);
        count_job("ingest", "succeeded");
        metrics().job_seconds.with_label_values(&["ingest"]).observe(0.2);
        metrics().http_requests.with_label_values(&["/cdrs", "202"]).inc();
        metrics().http_seconds.with_label_values(&["/cdrs"]).observe(0.01);
        metrics().queue_depth.with_label_values(&["cdr.ingest"]).set(4);
        metrics().index_backlog.set(7);
        let text = render();
        for name in [
            "cdr_records_total{outcome=\"received\"} 3",
            "cdr_jobs_total{kind=\"ingest\",status=\"succeeded\"} 1",
            "cdr_job_duration_seconds_bucket",
            "cdr_http_requests_total{route=\"/cdrs\",status=\"202\"} 1",
            "cdr_http_request_duration_seconds_count",
            "cdr_queue_depth{queue=\"cdr.ingest\"} 4",
            "cdr_index_backlog 7",
            // Exported before any panic, so its absence from a scrape is a failure.
            "cdr_api_panics_total 0",
        ] {
            assert!(text.contains(name), "{name} missing from:\n{text}");
        }
    }
}
