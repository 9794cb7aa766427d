//! Start-up refuses bad settings by name, the compose file is valid, and the settings
//! `.env.sample` and compose give the API are ones it starts with. No services needed.

use api::cli::ApiCli;
use clap::{CommandFactory, FromArgMatches};
use std::process::Command;

fn root() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// `NAME=value` lines as compose's `env_file` reads them: blank lines and `#` comments
/// skipped, the value taken verbatim.
fn env_file(text: &str) -> Vec<(String, String)> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| {
            let (name, value) = l.split_once('=').unwrap_or_else(|| panic!("not NAME=value: {l:?}"));
            (name.trim().to_string(), value.to_string())
        })
        .collect()
}

/// The API's settings from these environment variables, through `cdr-api`'s own parser
/// (each variable given as the flag it stands for) and its authentication check, as at
/// start-up. Nothing is read from this process's environment.
fn api_settings(env: &[(String, String)]) -> anyhow::Result<(ApiCli, api::auth::Auth)> {
    let command = ApiCli::command();
    let mut args = vec!["cdr-api".to_string()];
    for arg in command.get_arguments() {
        let Some(var) = arg.get_env().and_then(|v| v.to_str()) else { continue };
        let Some((_, value)) = env.iter().rev().find(|(name, _)| name == var) else { continue };
        let long = arg.get_long().unwrap_or_else(|| panic!("{var} has no flag"));
        if matches!(arg.get_action(), clap::ArgAction::SetTrue) {
            match value.to_ascii_lowercase().as_str() {
                "true" | "yes" | "on" | "1" => args.push(format!("--{long}")),
                "false" | "no" | "off" | "0" | "" => {}
                other => anyhow::bail!("{var}={other} is not a boolean"),
            }
        } else {
            args.push(format!("--{long}={value}"));
        }
    }
    let matches = command.mut_args(|a| a.env(None::<&'static str>)).try_get_matches_from(&args)?;
    let cli = ApiCli::from_arg_matches(&matches)?;
    let auth = cli.auth()?;
    Ok((cli, auth))
}

/// The environment compose gives one service, read from `docker-compose config`'s output
/// (its normalised layout: services at two spaces, `environment:` at four, variables at six).
fn compose_environment(config: &str, service: &str) -> Vec<(String, String)> {
    let mut lines = config.lines().skip_while(|l| *l != format!("  {service}:")).skip(1);
    let mut env = Vec::new();
    for line in lines.by_ref() {
        if !line.starts_with("    ") {
            return env;
        }
        if line == "    environment:" {
            break;
        }
    }
    for line in lines.take_while(|l| l.starts_with("      ")) {
        let (name, value) = line.trim().split_once(": ").unwrap_or_else(|| panic!("{line:?}"));
        let value = if let Some(v) = value.strip_prefix('\'').and_then(|v| v.strip_suffix('\'')) {
            v.replace("''", "'")
        } else if let Some(v) = value.strip_prefix('"').and_then(|v| v.strip_suffix('"')) {
            v.replace("\\\"", "\"").replace("\\\\", "\\")
        } else {
            value.to_string()
        };
        env.push((name.to_string(), value));
    }
    env
}

fn run(bin: &str, args: &[&str], env: &[(&str, &str)]) -> (bool, String) {
    let out = Command::new(bin)
        .args(args)
        .envs(env.iter().copied())
        .env_remove("DATABASE_URL")
        .output()
        .expect("run binary");
    (
        out.status.success(),
        format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)),
    )
}

#[test]
fn bad_settings_stop_start_up_naming_the_setting() {
    let api = env!("CARGO_BIN_EXE_cdr-api");
    let (ok, out) = run(api, &[], &[("CDR_MAX_BATCH_RECORDS", "lots")]);
    assert!(!ok);
    assert!(out.contains("max-batch-records") || out.contains("CDR_MAX_BATCH_RECORDS"), "{out}");
    let (ok, out) = run(api, &["--max-body-bytes=-5"], &[]);
    assert!(!ok);
    assert!(out.contains("max-body-bytes"), "{out}");
}

#[test]
fn help_documents_every_setting_with_its_variable() {
    let (ok, out) = run(env!("CARGO_BIN_EXE_cdr-api"), &["--help"], &[]);
    assert!(ok, "{out}");
    for var in [
        "DATABASE_URL",
        "AMQP_URL",
        "REDIS_URL",
        "ELASTICSEARCH_URL",
        "CDR_HTTP_ADDR",
        "CDR_NAMESPACE",
        "CDR_INDEX_ALIAS",
        "CDR_MAX_BATCH_RECORDS",
        "CDR_MAX_BODY_BYTES",
        "CDR_LOG_JSON",
    ] {
        assert!(out.contains(var), "--help does not mention {var}");
    }
}

/// `cp .env.sample .env` must give an API that starts: every setting it has parses, and it
/// carries a token for each role (placeholders, marked as such); without them it would not.
#[test]
fn the_env_sample_holds_settings_the_api_starts_with() {
    let text = std::fs::read_to_string(root().join(".env.sample")).expect("read .env.sample");
    let sample = env_file(&text);
    for arg in ApiCli::command().get_arguments() {
        if let Some(var) = arg.get_env().and_then(|v| v.to_str()) {
            assert!(text.contains(var), ".env.sample does not list {var}");
        }
    }
    let (cli, auth) = api_settings(&sample).unwrap_or_else(|e| panic!(".env.sample refused: {e:#}"));
    assert!(!auth.is_disabled(), "the sample must not turn authentication off");
    let roles = format!("{auth:?}");
    for role in ["ingest", "read", "admin"] {
        assert!(roles.contains(&format!("\"{role}\"")), "no {role} token in .env.sample: {roles}");
    }
    let tokens = cli.auth_tokens.expect("CDR_AUTH_TOKENS is set");
    for entry in tokens.split(',') {
        assert!(entry.contains("REPLACE-ME"), "not marked as a placeholder: {entry}");
    }
    // The same settings without their tokens are refused, as the API did before they were added.
    let without: Vec<_> = sample.iter().filter(|(name, _)| name != "CDR_AUTH_TOKENS").cloned().collect();
    let refused = api_settings(&without).expect_err("no tokens, no start");
    assert!(refused.to_string().contains("no API tokens"), "{refused:#}");
    let mut short = without.clone();
    short.push(("CDR_AUTH_TOKENS".into(), "ingest:short".into()));
    let refused = api_settings(&short).expect_err("a short token, no start");
    assert!(refused.to_string().contains("16 characters"), "{refused:#}");
}

#[test]
fn the_compose_file_passes_docker_compose_config() {
    // compose reads ../.env as operators would have it: copy the sample beside a copy of docker/.
    let root = root();
    let dir = std::env::temp_dir().join(format!("cdr-compose-{}", std::process::id()));
    std::fs::create_dir_all(dir.join("docker")).expect("temp dir");
    for f in ["compose.yaml", "Dockerfile"] {
        std::fs::copy(root.join("docker").join(f), dir.join("docker").join(f)).expect("copy");
    }
    std::fs::copy(root.join(".env.sample"), dir.join(".env")).expect("copy .env");
    let compose = |args: &[&str]| {
        Command::new("docker-compose")
            .args(["-f", "docker/compose.yaml", "config"])
            .args(args)
            .current_dir(&dir)
            .output()
            .expect("docker-compose is installed by scripts/test")
    };
    let quiet = compose(&["-q"]);
    let full = compose(&[]);
    let _ = std::fs::remove_dir_all(&dir);
    assert!(quiet.status.success(), "{}", String::from_utf8_lossy(&quiet.stderr));
    assert!(full.status.success(), "{}", String::from_utf8_lossy(&full.stderr));
    let config = String::from_utf8_lossy(&full.stdout);

    // The API container gets settings it starts with: the sample's tokens, compose's hosts.
    let api_env = compose_environment(&config, "api");
    let (cli, auth) =
        api_settings(&api_env).unwrap_or_else(|e| panic!("compose's api settings: {e:#}\n{config}"));
    assert!(!auth.is_disabled());
    assert_eq!(cli.http_addr, "0.0.0.0:8000");
    assert_eq!(cli.services.database_url, "postgres://cdr:cdr@postgres:5432/cdr");
    assert_eq!(cli.services.elasticsearch_url, "http://elasticsearch:9200");
    // The workers get the same service settings and the tuning from .env.
    let worker_env = compose_environment(&config, "worker");
    for (name, value) in [
        ("DATABASE_URL", "postgres://cdr:cdr@postgres:5432/cdr"),
        ("AMQP_URL", "amqp://guest:guest@rabbitmq:5672/%2f"),
        ("ELASTICSEARCH_URL", "http://elasticsearch:9200"),
        ("REDIS_URL", "redis://redis:6379/0"),
        ("CDR_WORKER_HTTP_ADDR", "0.0.0.0:9102"),
        ("CDR_WORKER_CONCURRENCY", "8"),
    ] {
        assert!(
            worker_env.iter().any(|(n, v)| n == name && v == value),
            "worker lacks {name}={value}: {worker_env:?}"
        );
    }
    // Indices are only ever created explicitly, with their mapping.
    let es_env = compose_environment(&config, "elasticsearch");
    assert!(
        es_env.iter().any(|(n, v)| n == "action.auto_create_index" && v == "false"),
        "automatic index creation is not off: {es_env:?}"
    );
}

/// Callers `eval "$(scripts/services up)"`: anything on stdout but the environment would run
/// as a command (a stale-pid notice from `pg_ctlcluster` once did).
#[test]
fn services_up_prints_nothing_but_the_environment() {
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/services");
    for command in ["up", "env"] {
        let out = Command::new(&script).arg(command).output().expect("scripts/services runs");
        assert!(out.status.success(), "{command}: {}", String::from_utf8_lossy(&out.stderr));
        let stdout = String::from_utf8_lossy(&out.stdout);
        let names: Vec<&str> = stdout
            .lines()
            .map(|line| {
                let assignment =
                    line.strip_prefix("export ").unwrap_or_else(|| panic!("{command}: {line:?}"));
                assignment.split_once('=').map(|(name, _)| name).unwrap_or_else(|| panic!("{line:?}"))
            })
            .collect();
        for name in ["DATABASE_URL", "AMQP_URL", "REDIS_URL", "ELASTICSEARCH_URL"] {
            assert!(names.contains(&name), "{command} does not export {name}: {stdout}");
        }
    }
}
