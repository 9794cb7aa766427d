use anyhow::Context as _;
use api::cli::ApiCli;
use clap::Parser;
use poem::Server;
use poem::listener::TcpListener;

/// In-flight requests get this long to finish after SIGTERM.
const GRACE: std::time::Duration = std::time::Duration::from_secs(10);

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = ApiCli::parse();
    jobs::runtime::init_logs(cli.log_json);
    match run(cli).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = format!("{e:#}"), "cdr-api stopped");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(cli: ApiCli) -> anyhow::Result<()> {
    let auth = cli.auth()?;
    if auth.is_disabled() {
        tracing::warn!(
            "authentication is disabled (CDR_AUTH_DISABLED): anyone who can reach the API can read every CDR"
        );
    }
    let mut state = api::state::AppState::connect(&cli.services, cli.limits.clone()).await?;
    state.auth = auth;
    tracing::info!(addr = %cli.http_addr, "cdr-api listening");
    Server::new(TcpListener::bind(cli.http_addr.clone()))
        .run_with_graceful_shutdown(api::app(state), jobs::runtime::shutdown_signal(), Some(GRACE))
        .await
        .with_context(|| format!("serving on {}", cli.http_addr))
}
