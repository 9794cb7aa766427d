//! Start-up refuses bad settings by name, and the compose file is valid. No services needed.

use std::process::Command;

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

#[test]
fn the_compose_file_passes_docker_compose_config() {
    // compose reads ../.env as operators would have it: copy the sample beside a copy of docker/.
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let dir = std::env::temp_dir().join(format!("cdr-compose-{}", std::process::id()));
    std::fs::create_dir_all(dir.join("docker")).expect("temp dir");
    for f in ["compose.yaml", "Dockerfile"] {
        std::fs::copy(root.join("docker").join(f), dir.join("docker").join(f)).expect("copy");
    }
    std::fs::copy(root.join(".env.sample"), dir.join(".env")).expect("copy .env");
    let out = Command::new("docker-compose")
        .args(["-f", "docker/compose.yaml", "config", "-q"])
        .current_dir(&dir)
        .output()
        .expect("docker-compose is installed by scripts/test");
    let _ = std::fs::remove_dir_all(&dir);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
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
