//! `cdn purge` and `cdn prewarm`: the commands that drive an edge's admin API (`POST /purge`,
//! `POST /prewarm`, `GET /prewarm/{id}`), with the CLI's exit statuses: 0 done, 1 the edge
//! could not do it (unreachable, refused, URLs that failed to prewarm), 2 bad input (flags, an
//! unreadable file, a list the edge rejects with 400 or 413).

use crate::run::{Failure, RUNTIME, USAGE};
use clap::Args;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::{IsTerminal, Read};
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// The admin API of the default config's edge.
const DEFAULT_ADMIN: &str = "http://127.0.0.1:9080";
/// How often `cdn prewarm` asks how its job stands.
const POLL_INTERVAL: Duration = Duration::from_millis(200);
/// Bound on one call to the admin API.
const CALL_TIMEOUT: Duration = Duration::from_secs(60);

/// `cdn purge`.
#[derive(Args, Debug)]
pub struct PurgeArgs {
    /// URLs whose cached responses to remove (every variant of each), e.g.
    /// http://cdn.example.com/a.css; with --prefix, URL prefixes.
    #[arg(value_name = "URL", required_unless_present = "tags")]
    urls: Vec<String>,
    /// Treat each URL as a prefix: remove every cached URL that starts with it, e.g.
    /// http://cdn.example.com/static/.
    #[arg(long, requires = "urls")]
    prefix: bool,
    /// Remove every response the origin tagged T (in its Surrogate-Key or Cache-Tag header);
    /// repeat for more tags.
    #[arg(long = "tag", value_name = "T")]
    tags: Vec<String>,
    /// The edge's admin API.
    #[arg(long, value_name = "URL", default_value = DEFAULT_ADMIN)]
    admin: String,
}

/// `cdn prewarm`.
#[derive(Args, Debug)]
pub struct PrewarmArgs {
    /// The URLs to fetch into the cache: one per line (blank lines and # comments skipped) or a
    /// JSON array; - reads standard input.
    #[arg(value_name = "FILE")]
    file: PathBuf,
    /// The edge's admin API.
    #[arg(long, value_name = "URL", default_value = DEFAULT_ADMIN)]
    admin: String,
}

/// `cdn purge [--admin URL] URL... [--prefix] [--tag T]...`: prints how many entries went.
pub fn purge(args: PurgeArgs) -> Result<(), Failure> {
    let list = if args.prefix { "prefixes" } else { "urls" };
    let mut body = serde_json::json!({ "tags": args.tags });
    body[list] = serde_json::json!(args.urls);
    let answer = call(
        &args.admin,
        "POST",
        "/purge",
        Some(("application/json", body.to_string())),
    )?;
    let purged = answer["purged"].as_u64().unwrap_or(0);
    let in_flight = answer["in_flight"].as_u64().unwrap_or(0);
    let entries = if purged == 1 { "entry" } else { "entries" };
    if in_flight > 0 {
        println!("purged {purged} {entries}; {in_flight} fetches in progress will not be stored");
    } else {
        println!("purged {purged} {entries}");
    }
    Ok(())
}

/// `cdn prewarm FILE [--admin URL]`: submits the list, follows the job with a progress bar
/// (on a terminal only), and prints a summary; exit status 1 if some URL failed.
pub fn prewarm(args: PrewarmArgs) -> Result<(), Failure> {
    let name = args.file.display().to_string();
    let mut text = String::new();
    let read = if name == "-" {
        std::io::stdin().read_to_string(&mut text).map(drop)
    } else {
        std::fs::read_to_string(&args.file).map(|t| text = t)
    };
    read.map_err(|e| Failure {
        message: format!("cannot read {name}: {e}"),
        code: USAGE,
    })?;
    let content_type = match text.trim_start().chars().next() {
        Some('[' | '{') => "application/json",
        _ => "text/plain",
    };
    let started = Instant::now();
    let job = call(&args.admin, "POST", "/prewarm", Some((content_type, text)))?;
    let Some(id) = job["id"].as_str().map(str::to_string) else {
        return Err(runtime(format!("the edge answered no job id: {job}")));
    };
    let total = job["total"].as_u64().unwrap_or(0);
    let bar = progress_bar(total);
    let report = loop {
        let report = call(&args.admin, "GET", &format!("/prewarm/{id}"), None)?;
        let settled = report["done"].as_u64().unwrap_or(0) + report["failed"].as_u64().unwrap_or(0);
        bar.set_position(settled);
        if report["state"] == "done" {
            break report;
        }
        std::thread::sleep(POLL_INTERVAL);
    };
    bar.finish_and_clear();
    let count = |field: &str| report[field].as_u64().unwrap_or(0);
    let (done, skipped, failed) = (count("done"), count("skipped"), count("failed"));
    println!(
        "prewarm job {id}: {done} of {total} URLs in the cache ({skipped} already fresh), {failed} failed, in {:.1}s",
        started.elapsed().as_secs_f64()
    );
    if failed == 0 {
        return Ok(());
    }
    for error in report["errors"].as_array().into_iter().flatten() {
        eprintln!(
            "  {}: {}",
            error["url"].as_str().unwrap_or("?"),
            error["error"].as_str().unwrap_or("?")
        );
    }
    let unlisted = count("errors_not_listed");
    if unlisted > 0 {
        eprintln!("  … and {unlisted} more");
    }
    Err(runtime(format!(
        "{failed} of {total} URLs failed to prewarm"
    )))
}

fn runtime(message: String) -> Failure {
    Failure {
        message,
        code: RUNTIME,
    }
}

/// A bar on stderr when it is a terminal; hidden otherwise, so scripts see only the summary.
fn progress_bar(total: u64) -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
    if let Ok(style) = ProgressStyle::with_template(
        "{bar:40} {pos}/{len} URLs, {elapsed} so far, about {eta} left",
    ) {
        bar.set_style(style);
    }
    bar
}

/// One call to the admin API; a 2xx answer's JSON, or the failure: 400 and 413 are the
/// user's input (exit 2), anything else the edge's side (exit 1).
fn call(
    admin: &str,
    method: &str,
    path: &str,
    body: Option<(&str, String)>,
) -> Result<serde_json::Value, Failure> {
    let url = format!("{}{path}", admin.trim_end_matches('/'));
    let agent = ureq::AgentBuilder::new()
        .timeout_connect(Duration::from_secs(5))
        .timeout(CALL_TIMEOUT)
        .build();
    let request = agent.request(method, &url);
    let sent = match body {
        Some((content_type, text)) => request.set("content-type", content_type).send_string(&text),
        None => request.call(),
    };
    let (status, response) = match sent {
        Ok(r) => (r.status(), r),
        Err(ureq::Error::Status(status, r)) => (status, r),
        Err(e) => {
            return Err(runtime(format!(
                "cannot reach the admin API at {admin}: {e}"
            )))
        }
    };
    let text = response.into_string().unwrap_or_default();
    let value: serde_json::Value = serde_json::from_str(&text).unwrap_or(serde_json::Value::Null);
    if (200..300).contains(&status) {
        return Ok(value);
    }
    let reason = value["error"]
        .as_str()
        .map_or_else(|| text.trim().to_string(), str::to_string);
    Err(Failure {
        message: format!("{method} {url}: {status}: {reason}"),
        code: if status == 400 || status == 413 {
            USAGE
        } else {
            RUNTIME
        },
    })
}
