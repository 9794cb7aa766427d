use clap::Parser;
use worker::cli::WorkerCli;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = WorkerCli::parse();
    jobs::runtime::init_logs(cli.log_json);
    match worker::pool::run(cli, jobs::runtime::shutdown_signal()).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = format!("{e:#}"), "cdr-worker stopped");
            std::process::ExitCode::FAILURE
        }
    }
}
