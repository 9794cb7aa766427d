//! `cdr-load`: a load generator for the CDR pipeline.
//!
//! `cdr-load import` sends switch CSV files through the API; `cdr-load freeswitch` posts one
//! CDR per request as FreeSWITCH's mod_json_cdr does; `cdr-load parse` times reading a large
//! Master.csv; `cdr-load post` offers generated CDRs to `POST /cdrs` at a rate and reports what was
//! accepted, throughput and latency; `cdr-load queries` measures `/search` and `/stats`;
//! `cdr-load csv` writes generated rows shaped like the `cdrs` table, for a COPY baseline.

mod freeswitch;
mod generator;
mod import;
mod parse;
mod post;
mod queries;
mod stats;
mod wait;

use clap::{Parser, Subcommand};
use std::io::Write;

#[derive(Parser)]
#[command(name = "cdr-load", version, about = "Load generator and query benchmark for the CDR pipeline")]
struct Cli {
    /// Base URL of cdr-api.
    #[arg(long, env = "CDR_API_URL", default_value = "http://127.0.0.1:8000", global = true)]
    url: String,
    /// Bearer token for the API (ingest for `post`, read for `queries`; admin does both).
    #[arg(long, env = "CDR_API_TOKEN", hide_env_values = true, global = true)]
    token: Option<String>,
    /// Print the summary as one JSON object.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Offer CDRs to POST /cdrs.
    Post(post::PostArgs),
    /// Import switch CSV files (Asterisk, FreeSWITCH, generic) through POST /cdrs.
    Import(import::ImportArgs),
    /// Measure /search and /stats latency.
    Queries(queries::QueryArgs),
    /// Post one CDR per request to POST /cdrs/freeswitch, as FreeSWITCH's mod_json_cdr does.
    Freeswitch(freeswitch::FreeswitchArgs),
    /// Time reading and validating a large Asterisk Master.csv (no services needed).
    Parse(parse::ParseArgs),
    /// Wait, on one database connection, until N rows are stored (and, with --folded, no
    /// rollup sums are pending).
    Wait(wait::WaitArgs),
    /// Write N generated rows as CSV to stdout.
    Csv {
        #[arg(long, default_value_t = 1_000_000)]
        count: u64,
        #[arg(long, default_value_t = 1)]
        seed: u64,
    },
}

/// An HTTP client that sends the token with every request.
fn client(token: Option<&str>, connections: usize) -> anyhow::Result<reqwest::Client> {
    let mut headers = reqwest::header::HeaderMap::new();
    if let Some(token) = token {
        let mut value = reqwest::header::HeaderValue::from_str(&format!("Bearer {token}"))?;
        value.set_sensitive(true);
        headers.insert(reqwest::header::AUTHORIZATION, value);
    }
    Ok(reqwest::Client::builder().default_headers(headers).pool_max_idle_per_host(connections * 2).build()?)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let summary = match &cli.command {
        Command::Post(args) => {
            post::run(&cli.url, &client(cli.token.as_deref(), args.concurrency)?, args).await?
        }
        Command::Import(args) => import::run(&cli.url, &client(cli.token.as_deref(), 1)?, args).await?,
        Command::Queries(args) => queries::run(&cli.url, &client(cli.token.as_deref(), 1)?, args).await?,
        Command::Freeswitch(args) => {
            freeswitch::run(&cli.url, &client(cli.token.as_deref(), args.concurrency)?, args).await?
        }
        Command::Parse(args) => parse::run(args)?,
        Command::Wait(args) => wait::run(args).await?,
        Command::Csv { count, seed } => {
            let mut g =
                generator::Generator::new(*seed, &format!("copy{seed}"), 5, chrono::Duration::days(7));
            let now = chrono::Utc::now();
            let mut out = std::io::BufWriter::new(std::io::stdout().lock());
            for _ in 0..*count {
                let (_, cdr) = g.next_cdr(now);
                writeln!(out, "{}", generator::csv_line(&cdr, "copy"))?;
            }
            out.flush()?;
            return Ok(());
        }
    };
    if cli.json {
        println!("{summary}");
    } else {
        println!("{}", serde_json::to_string_pretty(&summary)?);
    }
    Ok(())
}
