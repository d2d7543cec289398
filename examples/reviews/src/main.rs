//! `reviews --version v4 [--port 9080] [--latency 500ms]`: one version of the tutorial's
//! `reviews` service on 127.0.0.1, until Ctrl-C.

use std::process::ExitCode;

use iter8_example_reviews::{Behavior, ReviewsServer, parse_duration};

const USAGE: &str = "usage: reviews --version v2|v3|v4|v5|v6 [--port PORT] [--latency 500ms]";

fn parse(args: &[String]) -> Result<(String, u16, Option<std::time::Duration>), String> {
    let (mut version, mut port, mut latency) = (None, 9080u16, None);
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        let mut value = || it.next().cloned().ok_or(format!("{flag} needs a value"));
        match flag.as_str() {
            "--version" => version = Some(value()?),
            "--port" => {
                let v = value()?;
                port = v.parse().map_err(|_| format!("bad port `{v}`"))?;
            }
            "--latency" => latency = Some(parse_duration(&value()?).map_err(|e| e.to_string())?),
            "-h" | "--help" => return Err(USAGE.to_string()),
            other => return Err(format!("unknown flag `{other}`\n{USAGE}")),
        }
    }
    let version = version.ok_or(format!("--version is required\n{USAGE}"))?;
    Ok((version, port, latency))
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (version, port, latency) = match parse(&args) {
        Ok(parsed) => parsed,
        Err(message) => {
            eprintln!("{message}");
            return ExitCode::from(2);
        }
    };
    let behavior = match Behavior::of(&version) {
        Ok(b) => latency.map_or(b, |l| b.with_latency(l)),
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async {
        let name = format!("reviews-{}", version.trim_start_matches("reviews-"));
        let server = match ReviewsServer::start(&name, behavior, port).await {
            Ok(s) => s,
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::FAILURE;
            }
        };
        println!("{name} listening on http://{}", server.addr());
        let _ = tokio::signal::ctrl_c().await;
        ExitCode::SUCCESS
    })
}
