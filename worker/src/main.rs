use clap::Parser;
use worker::cli::{WorkerCli, WorkerCommand};

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
