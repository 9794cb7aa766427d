#![doc = include_str!("../README.md")]

pub mod cli;
pub mod http;
pub mod lenient;
pub mod pool;

/// `cdr-worker reindex`: rebuilds the index in this process, under the same lease as
/// `POST /reindex`, so the two never run at once.
pub async fn reindex_now(cli: &cli::WorkerCli) -> anyhow::Result<()> {
    use jobs::job::Job as _;
    let runners = pool::connect(cli).await?;
    let job = jobs::reindex::ReindexJob::new();
    let jobs = &runners.env.jobs;
    jobs.create(&job.initial_state()).await?;
    if let Err(e) = jobs::reindex::claim(jobs, &job).await {
        jobs.delete(&job.job_id).await?;
        return Err(e.into());
    }
    tracing::info!(job_id = %job.job_id, "rebuilding the search index");
    let done = jobs::reindex::ReindexJob::runner(&runners.env).run(&job).await?;
    println!("reindexed {} rows, {} refused (job {})", done.indexed, done.refused, job.job_id);
    Ok(())
}
