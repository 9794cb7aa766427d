//! Every kind of job, listed once.

use super::Job;

/// Something done once per registered job type: declaring its queue, starting its workers,
/// finding the queue of a job kind.
pub trait Visit {
    fn job<J: Job>(&mut self);
}

/// Visits every job type. A new kind of job is registered here, in one line.
pub fn each(visit: &mut impl Visit) {
    visit.job::<crate::ingest::IngestJob>();
    visit.job::<crate::indexing::IndexJob>();
    visit.job::<crate::reindex::ReindexJob>();
    visit.job::<crate::retention::MaintenanceJob>();
    visit.job::<crate::export::ExportJob>();
    visit.job::<crate::alerts::evaluate::AlertsJob>();
    visit.job::<crate::alerts::webhook::WebhookJob>();
}

/// The queue names (within a deployment) of every job type, in registration order.
pub fn queues() -> Vec<&'static str> {
    struct Queues(Vec<&'static str>);
    impl Visit for Queues {
        fn job<J: Job>(&mut self) {
            self.0.push(J::QUEUE);
        }
    }
    let mut q = Queues(Vec::new());
    each(&mut q);
    q.0
}

/// The queue (within a deployment) whose messages carry jobs of `kind`.
pub fn queue_of_kind(kind: &str) -> Option<&'static str> {
    struct Find<'a>(&'a str, Option<&'static str>);
    impl Visit for Find<'_> {
        fn job<J: Job>(&mut self) {
            if self.1.is_none() && J::KINDS.contains(&self.0) {
                self.1 = Some(J::QUEUE);
            }
        }
    }
    let mut f = Find(kind, None);
    each(&mut f);
    f.1
}

/// Every job kind a state may show.
pub fn kinds() -> Vec<&'static str> {
    struct Kinds(Vec<&'static str>);
    impl Visit for Kinds {
        fn job<J: Job>(&mut self) {
            self.0.extend_from_slice(J::KINDS);
        }
    }
    let mut k = Kinds(Vec::new());
    each(&mut k);
    k.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queues_and_kinds_are_unique_and_every_kind_has_its_queue() {
        let queues = queues();
        let mut sorted = queues.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted.len(), queues.len(), "two job types share a queue: {queues:?}");
        let kinds = kinds();
        for kind in &kinds {
            assert!(queue_of_kind(kind).is_some(), "{kind} has no queue");
        }
        assert_eq!(queue_of_kind("ingest"), Some("ingest"));
        assert_eq!(queue_of_kind("rerate"), Some("reindex"));
        assert_eq!(queue_of_kind("export"), Some("export"));
        assert_eq!(queue_of_kind("no-such-kind"), None);
    }
}
