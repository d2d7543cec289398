//! `iter8 analyze`, `iter8 operator` and `iter8 analytics serve` take one set of Prometheus
//! flags: the same names, the same environment variables, Go durations everywhere.

use std::process::Command;

/// The three commands that reach Prometheus, as argument prefixes. `analyze` gets a manifest
/// path that is never read: flags are checked before anything else happens.
const COMMANDS: [&[&str]; 3] = [
    &["analyze", "-f", "unused.yaml", "--last", "5m"],
    &["operator"],
    &["analytics", "serve"],
];

const FLAGS: [&str; 11] = [
    "--prometheus-url",
    "--prometheus-timeout",
    "--prometheus-retries",
    "--prometheus-token-file",
    "--prometheus-token-env",
    "--prometheus-username",
    "--prometheus-password-file",
    "--prometheus-password-env",
    "--prometheus-ca-file",
    "--prometheus-insecure-skip-verify",
    "--prometheus-max-concurrent-queries",
];

fn iter8(args: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_iter8"))
        .args(args)
        .env_remove("ITER8_PROMETHEUS_URL")
        .env_remove("ITER8_PROMETHEUS_TIMEOUT")
        .envs(env.iter().copied())
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn every_command_offers_the_same_prometheus_flags_and_variables() {
    for command in COMMANDS {
        let (code, help, err) = iter8(&[command, &["--help"]].concat(), &[]);
        assert_eq!(code, 0, "{command:?}: {err}");
        for flag in FLAGS {
            assert!(help.contains(flag), "{command:?} lacks {flag}:\n{help}");
        }
        assert!(
            help.contains("[env: ITER8_PROMETHEUS_URL="),
            "{command:?}:\n{help}"
        );
        assert!(
            help.contains("[env: ITER8_PROMETHEUS_TOKEN_FILE="),
            "{command:?}:\n{help}"
        );
    }
}

#[test]
fn every_command_takes_the_timeout_as_a_go_duration_and_names_the_flag_when_it_is_not() {
    for command in COMMANDS {
        for bad in ["10", "1.5", "0s", "soon"] {
            let (code, _, err) = iter8(&[command, &["--prometheus-timeout", bad]].concat(), &[]);
            assert_eq!(code, 2, "{command:?} --prometheus-timeout {bad}: {err}");
            assert!(
                err.contains(&format!("invalid value '{bad}' for '--prometheus-timeout")),
                "{command:?} --prometheus-timeout {bad}: {err}"
            );
        }
        let (code, _, err) = iter8(command, &[("ITER8_PROMETHEUS_TIMEOUT", "10")]);
        assert_eq!(
            code, 2,
            "{command:?} with ITER8_PROMETHEUS_TIMEOUT=10: {err}"
        );
        assert!(err.contains("--prometheus-timeout"), "{err}");
    }
}

#[test]
fn the_url_comes_from_the_flag_its_old_spelling_or_the_environment() {
    let dir = std::env::temp_dir().join(format!("iter8-prom-flags-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let manifest = dir.join("exp.yaml");
    std::fs::copy(
        concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/examples/bookinfo/canary_reviews-v2_to_reviews-v3.yaml"
        ),
        &manifest,
    )
    .unwrap();
    let analyze = ["analyze", "-f", manifest.to_str().unwrap(), "--last", "5m"];
    // A URL without a scheme is refused, naming it: proof of where the URL was read from.
    for (flag, env) in [
        (&["--prometheus-url", "flag.example:9090"][..], None),
        (&["--prometheus", "alias.example:9090"][..], None),
        (&[][..], Some("env.example:9090")),
    ] {
        let vars: Vec<(&str, &str)> = env
            .map(|u| ("ITER8_PROMETHEUS_URL", u))
            .into_iter()
            .collect();
        let (code, _, err) = iter8(&[&analyze[..], flag].concat(), &vars);
        let host = env
            .or(flag.get(1).copied())
            .and_then(|u| u.split(':').next())
            .unwrap();
        assert_eq!(code, 2, "{err}");
        assert!(
            err.contains("Prometheus URL") && err.contains(host),
            "{host}: {err}"
        );
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn every_command_needs_at_least_one_concurrent_prometheus_query() {
    for command in COMMANDS {
        let (code, _, err) = iter8(
            &[command, &["--prometheus-max-concurrent-queries", "0"]].concat(),
            &[],
        );
        assert_eq!(code, 2, "{command:?}: {err}");
        assert!(
            err.contains("invalid value '0' for '--prometheus-max-concurrent-queries"),
            "{command:?}: {err}"
        );
    }
}
