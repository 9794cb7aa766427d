use clap::Parser;
use worker::cli::{WorkerCli, WorkerCommand};

/// mimalloc rather than the system allocator: a batch is decoded, derived and encoded
/// through many short-lived strings on several threads at once, and glibc's malloc and free
/// took about a quarter of the worker's CPU profile of a priced ingest.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = WorkerCli::parse();
    jobs::runtime::init_logs(cli.log_json);
    jobs::crash::setup();
    let result = match cli.command {
        Some(WorkerCommand::Reindex) => worker::reindex_now(&cli).await,
        Some(WorkerCommand::Run) | None => worker::pool::run(cli, jobs::runtime::shutdown_signal()).await,
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = format!("{e:#}"), "cdr-worker stopped");
            std::process::ExitCode::FAILURE
        }
    }
}
