//! `cdn bench http`: the HTTP/1.1 keep-alive load generator.
//!
//! `connections` tasks on a tokio runtime each hold one connection to a target (targets are
//! shared out round-robin) and take tickets from one [`Schedule`] (closed or open loop, count or
//! duration). Each ticket's object comes from the task's [`KeySampler`], its request bytes from
//! the [`Target`]'s template. Results: throughput, HDR latency percentiles, errors by kind,
//! status classes, hit ratio from the cache's own headers, and origin offload from
//! origin-mock's `/__stats` when `origin` is given.

mod conn;
mod target;

pub use conn::{cache_status_verdict, x_cache_verdict, Answer, CacheVerdict, Connection};
pub use target::Target;

use crate::latency::{timeline_report, Percentiles, Recorder, SecondReport, Timeline};
use crate::load::{wait_until_due, Pace, Schedule, Stop};
use crate::progress::{Counters, Progress};
use crate::workload::{KeySampler, Popularity, SizeModel};
use crate::BenchError;
use conn::ExchangeError;
use serde::Serialize;
use std::fmt::Write as _;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Pause after a failed connect before the next try, so a refused port is not hammered in a
/// busy loop that would only measure how fast the kernel says no.
const RECONNECT_PAUSE: Duration = Duration::from_millis(10);

/// What `cdn bench http` was asked to do.
#[derive(Clone, Debug)]
pub struct HttpOptions {
    /// Target URL templates (see [`Target`]); connections are shared out among them.
    pub targets: Vec<String>,
    /// Which object each request asks for.
    pub popularity: Popularity,
    /// Object sizes, put into the URL's `{size}`.
    pub sizes: Option<SizeModel>,
    /// Closed or open loop.
    pub pace: Pace,
    /// Count or duration.
    pub stop: Stop,
    /// Connections kept open (each with one request in flight).
    pub connections: usize,
    /// Runtime worker threads.
    pub threads: usize,
    /// Longest wait for one request (connect included).
    pub timeout: Duration,
    /// Extra request headers, `Name: value`.
    pub headers: Vec<String>,
    /// origin-mock's base URL, to read `/__stats` before and after.
    pub origin: Option<String>,
    /// Seed of the key samplers (task `i` uses `seed + i`).
    pub seed: u64,
    /// Show a progress bar (only drawn on a terminal).
    pub progress: bool,
}

impl HttpOptions {
    /// Options for a closed-loop run of `stop` against `url` with default settings.
    pub fn new(url: &str, stop: Stop) -> Self {
        Self {
            targets: vec![url.to_string()],
            popularity: Popularity::One,
            sizes: None,
            pace: Pace::Closed,
            stop,
            connections: 64,
            threads: default_threads(),
            timeout: Duration::from_secs(10),
            headers: Vec::new(),
            origin: None,
            seed: 1,
            progress: false,
        }
    }
}

/// One worker thread per core.
pub fn default_threads() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get())
}

/// Errors by kind.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct ErrorCounts {
    /// Could not connect.
    pub connect: u64,
    /// No complete answer within the timeout.
    pub timeout: u64,
    /// Connection reset or closed mid-response.
    pub io: u64,
    /// A response that was not HTTP/1.1.
    pub protocol: u64,
    /// Answers with a 4xx status.
    pub status_4xx: u64,
    /// Answers with a 5xx status.
    pub status_5xx: u64,
}

impl ErrorCounts {
    fn add(&mut self, o: &ErrorCounts) {
        self.connect += o.connect;
        self.timeout += o.timeout;
        self.io += o.io;
        self.protocol += o.protocol;
        self.status_4xx += o.status_4xx;
        self.status_5xx += o.status_5xx;
    }

    /// All errors.
    pub fn total(&self) -> u64 {
        self.connect + self.timeout + self.io + self.protocol + self.status_4xx + self.status_5xx
    }
}

/// What the caches said.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct CacheCounts {
    /// Answers served from the cache.
    pub hits: u64,
    /// Answers the cache fetched from the origin.
    pub misses: u64,
    /// Answers with no cache header.
    pub unknown: u64,
    /// hits / (hits + misses), when any answer had a cache header.
    pub hit_ratio: Option<f64>,
}

/// What origin-mock saw during the run.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct OriginCounts {
    /// Requests origin-mock received during the run.
    pub requests: u64,
    /// 1 − origin requests / answers: the share of load the cache kept from the origin.
    pub offload: f64,
}

/// How the load was applied.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct LoadReport {
    /// `closed` or `open`.
    pub model: &'static str,
    /// Intended requests per second (open loop).
    pub rate: Option<f64>,
    /// Connections.
    pub connections: usize,
    /// `N requests` or `D s`.
    pub stop: String,
}

/// The results of `cdn bench http`, as printed by `--json`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct HttpReport {
    /// Target URLs.
    pub targets: Vec<String>,
    /// The popularity of objects.
    pub workload: String,
    /// Object sizes, if set.
    pub sizes: Option<String>,
    /// How the load was applied.
    pub load: LoadReport,
    /// From the start to the last answer.
    pub elapsed_s: f64,
    /// Requests finished (answers and failures).
    pub requests: u64,
    /// Answers received, any status.
    pub answers: u64,
    /// Answers per second.
    pub requests_per_sec: f64,
    /// Body bytes received.
    pub body_bytes: u64,
    /// Body bytes per second.
    pub bytes_per_sec: f64,
    /// Latency of answers (from the intended send time in an open loop).
    pub latency_ms: Percentiles,
    /// Answers per status class (`2xx`, …).
    pub status: std::collections::BTreeMap<String, u64>,
    /// Errors by kind.
    pub errors: ErrorCounts,
    /// Hit ratio from `Cache-Status` / `X-Cache`.
    pub cache: CacheCounts,
    /// origin-mock's view, when `--origin` was given.
    pub origin: Option<OriginCounts>,
    /// Second by second.
    pub timeline: Vec<SecondReport>,
}

/// One task's tallies, merged at the end.
#[derive(Default)]
struct Tally {
    errors: ErrorCounts,
    status: [u64; 6],
    hits: u64,
    misses: u64,
    unknown: u64,
    body_bytes: u64,
}

/// Runs the load on its own runtime and returns the report.
pub fn run(opts: &HttpOptions) -> Result<HttpReport, BenchError> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(opts.threads.max(1))
        .enable_all()
        .build()
        .map_err(|e| BenchError::runtime(format!("cannot start the async runtime: {e}")))?;
    runtime.block_on(run_async(opts))
}

/// Checks the options and resolves the targets.
fn prepare(opts: &HttpOptions) -> Result<Vec<Target>, BenchError> {
    if opts.targets.is_empty() {
        return Err(BenchError::usage("give at least one target URL"));
    }
    if opts.connections == 0 {
        return Err(BenchError::usage("--connections must be at least 1"));
    }
    if let Pace::Open { rate } = opts.pace {
        if !(rate.is_finite() && rate > 0.0) {
            return Err(BenchError::usage("--rate must be a positive number"));
        }
    }
    let keyed = opts.popularity.has_keys();
    let targets = opts
        .targets
        .iter()
        .map(|u| Target::parse(u, keyed, &opts.headers))
        .collect::<Result<Vec<_>, _>>()?;
    let trace_sizes = matches!(&opts.popularity, Popularity::Trace(t) if t.has_sizes());
    if targets.iter().any(Target::wants_size) && opts.sizes.is_none() && !trace_sizes {
        return Err(BenchError::usage(
            "the URL has {size} but no size was given: add --size (e.g. 1KiB or 1KiB..1MiB)",
        ));
    }
    if opts.sizes.is_some() && !targets.iter().any(Target::wants_size) {
        return Err(BenchError::usage(
            "--size needs {size} in the URL, e.g. http://EDGE/bytes/{size}",
        ));
    }
    Ok(targets)
}

/// Runs the load on the current runtime.
pub async fn run_async(opts: &HttpOptions) -> Result<HttpReport, BenchError> {
    let targets = Arc::new(prepare(opts)?);
    let origin_before = match &opts.origin {
        Some(base) => Some(origin_total(base).await?),
        None => None,
    };
    let schedule = Arc::new(Schedule::new(opts.pace, opts.stop));
    let timeline = Arc::new(Timeline::new(schedule.start()));
    let counters = Arc::new(Counters::default());
    let progress = Progress::start(opts.progress, schedule.clone(), counters.clone());
    let mut tasks = Vec::with_capacity(opts.connections);
    for i in 0..opts.connections {
        let sampler = KeySampler::new(&opts.popularity, opts.seed.wrapping_add(i as u64))?;
        let task = ConnectionTask {
            targets: targets.clone(),
            target: i % targets.len(),
            sizes: opts.sizes,
            timeout: opts.timeout,
            schedule: schedule.clone(),
            timeline: timeline.clone(),
            counters: counters.clone(),
        };
        tasks.push(tokio::spawn(task.run(sampler)));
    }
    let mut tally = Tally::default();
    for t in tasks {
        let part = t
            .await
            .map_err(|e| BenchError::runtime(format!("a load task failed: {e}")))?;
        tally.errors.add(&part.errors);
        for (a, b) in tally.status.iter_mut().zip(part.status) {
            *a += b;
        }
        tally.hits += part.hits;
        tally.misses += part.misses;
        tally.unknown += part.unknown;
        tally.body_bytes += part.body_bytes;
    }
    let elapsed = schedule.start().elapsed();
    drop(progress);
    let origin_after = match &opts.origin {
        Some(base) => Some(origin_total(base).await?),
        None => None,
    };
    let timeline = Arc::try_unwrap(timeline)
        .map_err(|_| BenchError::runtime("load tasks still hold the timeline"))?;
    let (latency, seconds) = timeline.finish();
    let answers: u64 = tally.status.iter().sum();
    let secs = elapsed.as_secs_f64().max(1e-9);
    let status = ["1xx", "2xx", "3xx", "4xx", "5xx"]
        .iter()
        .enumerate()
        .filter(|(i, _)| tally.status[i + 1] > 0)
        .map(|(i, name)| (name.to_string(), tally.status[i + 1]))
        .collect();
    let judged = tally.hits + tally.misses;
    Ok(HttpReport {
        targets: opts.targets.clone(),
        workload: opts.popularity.to_string(),
        sizes: opts.sizes.map(|s| s.to_string()),
        load: LoadReport {
            model: opts.pace.model(),
            rate: opts.pace.rate(),
            connections: opts.connections,
            stop: opts.stop.to_string(),
        },
        elapsed_s: secs,
        requests: answers
            + tally.errors.connect
            + tally.errors.timeout
            + tally.errors.io
            + tally.errors.protocol,
        answers,
        requests_per_sec: answers as f64 / secs,
        body_bytes: tally.body_bytes,
        bytes_per_sec: tally.body_bytes as f64 / secs,
        latency_ms: Percentiles::of(&latency),
        status,
        errors: tally.errors,
        cache: CacheCounts {
            hits: tally.hits,
            misses: tally.misses,
            unknown: tally.unknown,
            hit_ratio: (judged > 0).then(|| tally.hits as f64 / judged as f64),
        },
        origin: match (origin_before, origin_after) {
            (Some(before), Some(after)) => {
                let requests = after.saturating_sub(before);
                Some(OriginCounts {
                    requests,
                    offload: if answers > 0 {
                        1.0 - requests as f64 / answers as f64
                    } else {
                        0.0
                    },
                })
            }
            _ => None,
        },
        timeline: timeline_report(&seconds),
    })
}

/// One connection's share of the load.
struct ConnectionTask {
    targets: Arc<Vec<Target>>,
    target: usize,
    sizes: Option<SizeModel>,
    timeout: Duration,
    schedule: Arc<Schedule>,
    timeline: Arc<Timeline>,
    counters: Arc<Counters>,
}

impl ConnectionTask {
    async fn run(self, mut sampler: KeySampler) -> Tally {
        let target = &self.targets[self.target];
        let mut recorder = Recorder::new(&self.timeline);
        let mut tally = Tally::default();
        let mut request = Vec::with_capacity(512);
        let mut conn: Option<Connection> = None;
        while let Some(ticket) = self.schedule.next_ticket() {
            let sent = wait_until_due(&ticket).await;
            target.write_request(sampler.pick(ticket.seq), self.sizes.as_ref(), &mut request);
            let deadline = tokio::time::Instant::now() + self.timeout;
            let outcome = tokio::time::timeout_at(deadline, async {
                if conn.is_none() {
                    conn = Some(
                        Connection::open(target.addr)
                            .await
                            .map_err(|_| Failed::Connect)?,
                    );
                }
                match &mut conn {
                    Some(c) => c.exchange(&request).await.map_err(Failed::Exchange),
                    None => Err(Failed::Connect),
                }
            })
            .await;
            let done = Instant::now();
            match outcome {
                Ok(Ok(answer)) => {
                    recorder.answer(
                        done,
                        done.saturating_duration_since(sent),
                        answer.body_bytes,
                    );
                    self.counters.answers.fetch_add(1, Ordering::Relaxed);
                    let class = (answer.status / 100).min(5) as usize;
                    tally.status[class] += 1;
                    match class {
                        4 => tally.errors.status_4xx += 1,
                        5 => tally.errors.status_5xx += 1,
                        _ => {}
                    }
                    match answer.cache {
                        CacheVerdict::Hit => tally.hits += 1,
                        CacheVerdict::Miss => tally.misses += 1,
                        CacheVerdict::Unknown => tally.unknown += 1,
                    }
                    tally.body_bytes += answer.body_bytes;
                    if !answer.reusable {
                        conn = None;
                    }
                }
                Ok(Err(failed)) => {
                    recorder.error(done);
                    self.counters.errors.fetch_add(1, Ordering::Relaxed);
                    conn = None;
                    match failed {
                        Failed::Connect => {
                            tally.errors.connect += 1;
                            tokio::time::sleep(RECONNECT_PAUSE).await;
                        }
                        Failed::Exchange(ExchangeError::Io(_)) => tally.errors.io += 1,
                        Failed::Exchange(ExchangeError::Protocol(_)) => tally.errors.protocol += 1,
                    }
                }
                Err(_) => {
                    recorder.error(done);
                    self.counters.errors.fetch_add(1, Ordering::Relaxed);
                    tally.errors.timeout += 1;
                    conn = None;
                }
            }
        }
        recorder.flush();
        tally
    }
}

/// Why a request got no answer.
enum Failed {
    Connect,
    Exchange(ExchangeError),
}

/// origin-mock's request count so far (`GET {base}/__stats`, field `total`).
pub async fn origin_total(base: &str) -> Result<u64, BenchError> {
    let stats = origin_stats(base).await?;
    stats["total"].as_u64().ok_or_else(|| {
        BenchError::runtime(format!(
            "{base}/__stats: no \"total\" count: is it origin-mock?"
        ))
    })
}

/// origin-mock's `/__stats` JSON.
pub async fn origin_stats(base: &str) -> Result<serde_json::Value, BenchError> {
    let url = format!("{}/__stats", base.trim_end_matches('/'));
    let body = get_body(&url).await?;
    serde_json::from_slice(&body)
        .map_err(|e| BenchError::runtime(format!("{url}: not JSON ({e}): is it origin-mock?")))
}

/// The body of one GET (small control requests, not load).
pub async fn get_body(url: &str) -> Result<Vec<u8>, BenchError> {
    request_body("GET", url).await
}

/// One request with `method` to `url` on a fresh connection; the body of a 2xx answer.
pub async fn request_body(method: &str, url: &str) -> Result<Vec<u8>, BenchError> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let target = Target::parse(url, false, &[])?;
    let mut request = Vec::new();
    target.write_request(crate::workload::Pick::One, None, &mut request);
    // A one-off request: swap the method and ask the server to close, then read to the end.
    let text = String::from_utf8_lossy(&request)
        .replacen("GET ", &format!("{method} "), 1)
        .replacen(
            "\r\n\r\n",
            "\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            1,
        );
    let fetch = async {
        let mut s = tokio::net::TcpStream::connect(target.addr).await?;
        s.write_all(text.as_bytes()).await?;
        let mut out = Vec::new();
        s.read_to_end(&mut out).await?;
        Ok::<_, std::io::Error>(out)
    };
    let raw = tokio::time::timeout(Duration::from_secs(10), fetch)
        .await
        .map_err(|_| BenchError::runtime(format!("{url}: no answer within 10 s")))?
        .map_err(|e| BenchError::runtime(format!("{url}: {e}")))?;
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| BenchError::runtime(format!("{url}: not an HTTP response")))?;
    let head = String::from_utf8_lossy(&raw[..split]);
    let status_ok = head
        .split_whitespace()
        .nth(1)
        .is_some_and(|s| s.starts_with('2'));
    if !status_ok {
        let first = head.lines().next().unwrap_or("");
        return Err(BenchError::runtime(format!("{url}: {first}")));
    }
    let body = raw[split + 4..].to_vec();
    if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        return Ok(dechunk(&body));
    }
    Ok(body)
}

/// Decodes a complete chunked body held in memory (control requests only).
fn dechunk(mut body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(i) = body.windows(2).position(|w| w == b"\r\n") {
        let size_text = String::from_utf8_lossy(&body[..i]);
        let hex = size_text.split(';').next().unwrap_or("").trim();
        let Ok(size) = usize::from_str_radix(hex, 16) else {
            break;
        };
        body = &body[i + 2..];
        if size == 0 || body.len() < size {
            break;
        }
        out.extend_from_slice(&body[..size]);
        body = body.get(size + 2..).unwrap_or_default();
    }
    out
}

impl HttpReport {
    /// The summary table printed at the end of a run.
    pub fn table(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "cdn bench http: {} ({}{}), {}, {} connections, {}",
            self.targets.join(" "),
            self.workload,
            self.sizes
                .as_ref()
                .map_or(String::new(), |s| format!(", sizes {s}")),
            match self.load.rate {
                Some(r) => format!("open loop at {r} req/s"),
                None => "closed loop".to_string(),
            },
            self.load.connections,
            self.load.stop,
        );
        let _ = writeln!(
            out,
            "  requests   {:>12}  {:>12.1} req/s  in {:.2} s",
            self.answers, self.requests_per_sec, self.elapsed_s
        );
        let _ = writeln!(
            out,
            "  transfer   {:>12}  {:>12}/s",
            human_bytes(self.body_bytes as f64),
            human_bytes(self.bytes_per_sec)
        );
        let _ = writeln!(out, "  latency    {}", self.latency_ms);
        let status: Vec<String> = self
            .status
            .iter()
            .map(|(k, v)| format!("{k} {v}"))
            .collect();
        let _ = writeln!(out, "  status     {}", status.join(", "));
        let c = &self.cache;
        match c.hit_ratio {
            Some(r) => {
                let _ = writeln!(
                    out,
                    "  cache      hit ratio {r:.4}  ({} hits, {} misses, {} without a cache header)",
                    c.hits, c.misses, c.unknown
                );
            }
            None => {
                let _ = writeln!(out, "  cache      no Cache-Status or X-Cache header seen");
            }
        }
        if let Some(o) = &self.origin {
            let _ = writeln!(
                out,
                "  origin     {} requests, offload {:.4}",
                o.requests, o.offload
            );
        }
        let e = &self.errors;
        let _ = writeln!(
            out,
            "  errors     {} (connect {}, timeout {}, io {}, protocol {}, 4xx {}, 5xx {})",
            e.total(),
            e.connect,
            e.timeout,
            e.io,
            e.protocol,
            e.status_4xx,
            e.status_5xx
        );
        out
    }
}

/// Bytes in binary units, for tables.
pub fn human_bytes(n: f64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n;
    let mut unit = 0;
    while v >= 1024.0 && unit < UNITS.len() - 1 {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{v:.0} B")
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests;
