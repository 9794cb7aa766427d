use anyhow::Context as _;
use api::cli::ApiCli;
use clap::Parser;
use poem::Server;
use poem::listener::TcpListener;
use tracing_subscriber::EnvFilter;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = ApiCli::parse();
    init_logs(cli.log_json);
    match run(cli).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = format!("{e:#}"), "cdr-api stopped");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(cli: ApiCli) -> anyhow::Result<()> {
    let state = api::state::AppState::connect(&cli.services, cli.limits.clone()).await?;
    tracing::info!(addr = %cli.http_addr, "cdr-api listening");
    Server::new(TcpListener::bind(cli.http_addr.clone()))
        .run_with_graceful_shutdown(
            api::app(state),
            async {
                let _ = tokio::signal::ctrl_c().await;
            },
            Some(std::time::Duration::from_secs(10)),
        )
        .await
        .with_context(|| format!("serving on {}", cli.http_addr))
}

fn init_logs(json: bool) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_target(false);
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
}
