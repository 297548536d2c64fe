//! Prewarming: fetching a list of URLs into the cache before clients ask for them.
//!
//! `POST /prewarm` on the admin API takes the list (a JSON array of URLs, `{"urls": [...]}`, or
//! plain text with one URL per line, `#` comments allowed), answers `202 Accepted` at once with
//! a job id, and the job runs in the background; `GET /prewarm/{id}` reports it. The URLs in
//! `edge.prewarm.urls` and `edge.prewarm.file` run the same way at start-up as the job
//! `startup`.
//!
//! Each URL is fetched through the edge's own proxy listener, as a client would (a `GET` with
//! the URL's `Host`), rather than by driving the cache from inside: pingora's proxy phases are
//! the only code path that turns a request into a stored response, and going through them
//! means the routes, the caching rules, request coalescing (a prewarm and a client missing on
//! one URL make one origin fetch), origin choice, retries and the metrics all apply unchanged.
//! The price: a route that requires signed URLs or limits rates applies to the prewarm too,
//! whose client address is the loopback one. URLs with a fresh entry already are skipped
//! without a request. At most `edge.prewarm.concurrency` fetches are in flight at once over
//! every job together, each bounded by `edge.prewarm.timeout`.
//!
//! A URL counts as done when the edge answered 2xx and the response is in the cache (its
//! `Cache-Status` says `stored` or `hit`); otherwise it fails with the reason (status, not
//! stored, connection error, timeout).

use crate::purge::CacheUrl;
use crate::storage::CacheStorage;
use async_trait::async_trait;
use pingora_core::connectors::http::Connector;
use pingora_core::server::ShutdownWatch;
use pingora_core::services::background::BackgroundService;
use pingora_core::upstreams::peer::HttpPeer;
use pingora_http::RequestHeader;
use serde::{Deserialize, Serialize};
use std::collections::{HashSet, VecDeque};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

/// Jobs remembered for `GET /prewarm/{id}`; the oldest finished one goes first.
const MAX_JOBS: usize = 64;
/// Per-URL errors listed in a job's report; further ones are only counted.
const MAX_ERRORS_LISTED: usize = 1000;
/// How long an idle connection to the edge's own listener is kept for the next fetch.
const IDLE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long the start-up job waits for the proxy listener to accept connections.
const LISTENER_WAIT: Duration = Duration::from_secs(30);
/// Bad lines quoted in a 400.
const MAX_BAD_LINES_SHOWN: usize = 5;
/// The id of the job that prewarms the config's list at start-up.
pub const STARTUP_JOB: &str = "startup";

/// One URL that failed, and why.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UrlError {
    /// The URL as given.
    pub url: String,
    /// What went wrong.
    pub error: String,
}

/// Where a job stands, as `GET /prewarm/{id}` reports it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobReport {
    /// The job's id.
    pub id: String,
    /// `"running"` or `"done"`.
    pub state: String,
    /// URLs in the job (duplicates removed).
    pub total: u64,
    /// URLs now in the cache: fetched and stored, or skipped as fresh already.
    pub done: u64,
    /// Of `done`, URLs skipped because a fresh entry was stored already.
    pub skipped: u64,
    /// URLs that could not be prewarmed.
    pub failed: u64,
    /// Why URLs failed (the first 1000).
    pub errors: Vec<UrlError>,
    /// Failed URLs beyond those listed in `errors`.
    pub errors_not_listed: u64,
    /// Time since the job started, or its whole run time once done, in milliseconds.
    pub elapsed_ms: u64,
}

/// Why a prewarm job was not started.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PrewarmRefusal {
    /// The body is not a URL list (400), with the reason.
    BadList(String),
    /// Every remembered job is still running (429).
    Busy,
}

/// One job's progress, updated by its fetches.
struct Job {
    id: String,
    total: u64,
    done: AtomicU64,
    skipped: AtomicU64,
    failed: AtomicU64,
    errors: Mutex<Vec<UrlError>>,
    started: Instant,
    run_time: Mutex<Option<Duration>>,
}

impl Job {
    fn new(id: String, total: usize) -> Self {
        Self {
            id,
            total: total as u64,
            done: AtomicU64::new(0),
            skipped: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            errors: Mutex::new(Vec::new()),
            started: Instant::now(),
            run_time: Mutex::new(None),
        }
    }

    fn record(&self, url: &str, outcome: Result<Warmed, String>) {
        match outcome {
            Ok(warmed) => {
                if warmed == Warmed::AlreadyFresh {
                    self.skipped.fetch_add(1, Ordering::Relaxed);
                }
                self.done.fetch_add(1, Ordering::Relaxed);
            }
            Err(error) => {
                tracing::debug!(job = %self.id, url, error, "prewarm failed");
                self.failed.fetch_add(1, Ordering::Relaxed);
                let mut errors = self.errors.lock().unwrap_or_else(PoisonError::into_inner);
                if errors.len() < MAX_ERRORS_LISTED {
                    errors.push(UrlError {
                        url: url.to_string(),
                        error,
                    });
                }
            }
        }
    }

    fn is_done(&self) -> bool {
        self.run_time
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .is_some()
    }

    fn finish(&self) {
        let elapsed = self.started.elapsed();
        *self.run_time.lock().unwrap_or_else(PoisonError::into_inner) = Some(elapsed);
        tracing::info!(
            job = %self.id,
            total = self.total,
            done = self.done.load(Ordering::Relaxed),
            skipped = self.skipped.load(Ordering::Relaxed),
            failed = self.failed.load(Ordering::Relaxed),
            elapsed_ms = elapsed.as_millis() as u64,
            "prewarm job finished"
        );
    }

    fn report(&self) -> JobReport {
        let run_time = *self.run_time.lock().unwrap_or_else(PoisonError::into_inner);
        let errors = self
            .errors
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        let failed = self.failed.load(Ordering::Relaxed);
        JobReport {
            id: self.id.clone(),
            state: if run_time.is_some() {
                "done"
            } else {
                "running"
            }
            .to_string(),
            total: self.total,
            done: self.done.load(Ordering::Relaxed),
            skipped: self.skipped.load(Ordering::Relaxed),
            failed,
            errors_not_listed: failed.saturating_sub(errors.len() as u64),
            errors,
            elapsed_ms: run_time
                .unwrap_or_else(|| self.started.elapsed())
                .as_millis() as u64,
        }
    }
}

/// How a URL got into the cache.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Warmed {
    Fetched,
    AlreadyFresh,
}

/// A URL to prewarm: as given (for reports) and parsed.
#[derive(Debug)]
pub struct Target {
    /// The URL as the list gave it.
    pub given: String,
    /// The URL split the way the cache key needs it.
    pub url: CacheUrl,
}

/// Runs prewarm jobs for one edge.
pub struct Prewarmer {
    /// The proxy listener fetches go through.
    via: SocketAddr,
    storage: &'static CacheStorage,
    /// Fetches in flight, over every job.
    permits: Arc<Semaphore>,
    timeout: Duration,
    /// Keeps connections to the listener alive from one fetch to the next.
    connector: Connector,
    jobs: Mutex<VecDeque<Arc<Job>>>,
    next_id: AtomicU64,
}

impl Prewarmer {
    /// A prewarmer that fetches through the first of `listen` (an unspecified address is
    /// reached on loopback), checks `storage` for fresh entries first, and keeps at most
    /// `concurrency` fetches in flight, each bounded by `timeout`.
    pub fn new(
        listen: &[SocketAddr],
        storage: &'static CacheStorage,
        concurrency: u32,
        timeout: Duration,
    ) -> Self {
        let mut via = listen
            .first()
            .copied()
            .unwrap_or(cdn_config::DEFAULT_EDGE_LISTEN);
        if via.ip().is_unspecified() {
            via.set_ip(match via.ip() {
                IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::LOCALHOST),
                IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::LOCALHOST),
            });
        }
        Self {
            via,
            storage,
            permits: Arc::new(Semaphore::new(concurrency.max(1) as usize)),
            timeout,
            connector: Connector::new(None),
            jobs: Mutex::new(VecDeque::new()),
            next_id: AtomicU64::new(1),
        }
    }

    /// Starts a job for a `POST /prewarm` body (in the current tokio runtime) and returns its
    /// first report.
    pub fn submit(self: &Arc<Self>, body: &[u8]) -> Result<JobReport, PrewarmRefusal> {
        let targets = parse_list(body).map_err(PrewarmRefusal::BadList)?;
        let id = self.next_id.fetch_add(1, Ordering::Relaxed).to_string();
        let job = self.register(Job::new(id, targets.len()))?;
        tracing::info!(job = %job.id, total = job.total, "prewarm job started");
        tokio::spawn(self.clone().run(job.clone(), targets));
        Ok(job.report())
    }

    /// The report of job `id`, if it is still remembered.
    pub fn report(&self, id: &str) -> Option<JobReport> {
        self.jobs
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .find(|j| j.id == id)
            .map(|j| j.report())
    }

    fn register(&self, job: Job) -> Result<Arc<Job>, PrewarmRefusal> {
        let mut jobs = self.jobs.lock().unwrap_or_else(PoisonError::into_inner);
        if jobs.len() >= MAX_JOBS {
            let oldest_done = jobs
                .iter()
                .position(|j| j.is_done())
                .ok_or(PrewarmRefusal::Busy)?;
            jobs.remove(oldest_done);
        }
        let job = Arc::new(job);
        jobs.push_back(job.clone());
        Ok(job)
    }

    /// Prewarms the config's list at start-up, as the job [`STARTUP_JOB`], once the proxy
    /// listener accepts connections. Lines that are not URLs count as failed URLs.
    async fn run_startup(self: &Arc<Self>, lines: Vec<String>) {
        let mut targets = Vec::new();
        let mut bad = Vec::new();
        let mut seen = HashSet::new();
        for line in lines {
            match CacheUrl::parse(&line) {
                Ok(url) => {
                    if seen.insert(url.key()) {
                        targets.push(Target { given: line, url });
                    }
                }
                Err(e) => bad.push((line, e)),
            }
        }
        let Ok(job) = self.register(Job::new(STARTUP_JOB.into(), targets.len() + bad.len())) else {
            return;
        };
        for (line, e) in bad {
            job.record(&line, Err(e));
        }
        let deadline = Instant::now() + LISTENER_WAIT;
        while tokio::net::TcpStream::connect(self.via).await.is_err() {
            if Instant::now() > deadline {
                tracing::error!(via = %self.via, "prewarm: the proxy listener never accepted");
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        tracing::info!(total = job.total, "prewarm job startup started");
        self.clone().run(job, targets).await;
    }

    async fn run(self: Arc<Self>, job: Arc<Job>, targets: Vec<Target>) {
        let mut fetches = JoinSet::new();
        for target in targets {
            let Ok(permit) = self.permits.clone().acquire_owned().await else {
                break;
            };
            let prewarmer = self.clone();
            let job = job.clone();
            fetches.spawn(async move {
                let outcome = prewarmer.warm(&target.url).await;
                job.record(&target.given, outcome);
                drop(permit);
            });
            // Reap finished fetches so the set stays as small as the permits.
            while fetches.try_join_next().is_some() {}
        }
        while fetches.join_next().await.is_some() {}
        job.finish();
    }

    async fn warm(&self, url: &CacheUrl) -> Result<Warmed, String> {
        if self.storage.has_fresh(&url.key()) {
            return Ok(Warmed::AlreadyFresh);
        }
        match tokio::time::timeout(self.timeout, self.fetch(url)).await {
            Ok(outcome) => outcome.map(|()| Warmed::Fetched),
            Err(_) => Err(format!("no complete answer within {:?}", self.timeout)),
        }
    }

    /// One `GET` through the proxy listener, on a kept-alive connection when there is one (a
    /// connection the edge closed meanwhile is retried once on a new one).
    async fn fetch(&self, url: &CacheUrl) -> Result<(), String> {
        let mut peer = HttpPeer::new(self.via, false, String::new());
        peer.options.connection_timeout = Some(self.timeout);
        peer.options.read_timeout = Some(self.timeout);
        for attempt in 0..2 {
            let (mut session, reused) = self
                .connector
                .get_http_session(&peer)
                .await
                .map_err(|e| format!("cannot connect to the edge at {}: {e}", self.via))?;
            match exchange(&mut session, url).await {
                Ok(answer) => {
                    self.connector
                        .release_http_session(session, &peer, Some(IDLE_TIMEOUT))
                        .await;
                    return answer;
                }
                Err(_) if reused && attempt == 0 => continue,
                Err(e) => return Err(e),
            }
        }
        Err("the edge closed the connection".into())
    }
}

/// Sends the request and reads the whole answer; the outer `Err` is a transport failure, the
/// inner result what the answer says about the URL.
async fn exchange(
    session: &mut pingora_core::protocols::http::client::HttpSession,
    url: &CacheUrl,
) -> Result<Result<(), String>, String> {
    let transport = |e: Box<pingora_core::Error>| e.to_string();
    let mut req =
        RequestHeader::build("GET", url.path_and_query.as_bytes(), Some(3)).map_err(transport)?;
    req.insert_header(http::header::HOST, url.host.as_str())
        .map_err(transport)?;
    req.insert_header(http::header::USER_AGENT, "cdn-prewarm")
        .map_err(transport)?;
    session
        .write_request_header(Box::new(req))
        .await
        .map_err(transport)?;
    session.finish_request_body().await.map_err(transport)?;
    session.read_response_header().await.map_err(transport)?;
    let (status, cache_status) = match session.response_header() {
        Some(resp) => (
            resp.status.as_u16(),
            resp.headers
                .get("cache-status")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_string(),
        ),
        None => return Err("no response header".into()),
    };
    // The whole body: the edge stores a response once it has all of it.
    while session
        .read_response_body()
        .await
        .map_err(transport)?
        .is_some()
    {}
    Ok(judge(status, &cache_status))
}

/// Whether an answer means the URL is in the cache now.
fn judge(status: u16, cache_status: &str) -> Result<(), String> {
    if !(200..300).contains(&status) {
        return Err(format!("the edge answered {status}"));
    }
    let stored = cache_status
        .split(';')
        .map(str::trim)
        .any(|p| p == "hit" || p == "stored");
    if stored {
        Ok(())
    } else {
        Err(format!(
            "not stored: the response is not cacheable (Cache-Status: {cache_status:?})"
        ))
    }
}

/// The body of `POST /prewarm` as `{"urls": [...]}`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UrlList {
    urls: Vec<String>,
}

/// Parses a URL list: a JSON array of strings, `{"urls": [...]}`, or text with one URL per
/// line (blank lines and `#` comments skipped). Duplicates (by cache key) are dropped. `Err`
/// is the reason for a 400.
pub fn parse_list(body: &[u8]) -> Result<Vec<Target>, String> {
    let text = std::str::from_utf8(body)
        .map_err(|e| format!("the body is not UTF-8 text: {e}"))?
        .trim();
    let (lines, numbered): (Vec<String>, bool) = match text.chars().next() {
        None => return Err("no URLs: send a JSON array of URLs or one URL per line".into()),
        Some('[') => (
            serde_json::from_str::<Vec<String>>(text)
                .map_err(|e| format!("not a JSON array of URL strings: {e}"))?,
            false,
        ),
        Some('{') => (
            serde_json::from_str::<UrlList>(text)
                .map_err(|e| format!("not a JSON object {{\"urls\": [...]}}: {e}"))?
                .urls,
            false,
        ),
        Some(_) => (text.lines().map(str::to_string).collect(), true),
    };
    let mut targets = Vec::new();
    let mut bad = Vec::new();
    let mut seen = HashSet::new();
    for (i, line) in lines.iter().enumerate() {
        let line = line.trim();
        if numbered && (line.is_empty() || line.starts_with('#')) {
            continue;
        }
        match CacheUrl::parse(line) {
            Ok(url) => {
                if seen.insert(url.key()) {
                    targets.push(Target {
                        given: line.to_string(),
                        url,
                    });
                }
            }
            Err(e) if numbered => bad.push(format!("line {}: {e}", i + 1)),
            Err(e) => bad.push(format!("urls[{i}]: {e}")),
        }
    }
    if !bad.is_empty() {
        let more = bad.len().saturating_sub(MAX_BAD_LINES_SHOWN);
        let mut reason = bad
            .into_iter()
            .take(MAX_BAD_LINES_SHOWN)
            .collect::<Vec<_>>()
            .join("; ");
        if more > 0 {
            reason.push_str(&format!("; and {more} more"));
        }
        return Err(reason);
    }
    if targets.is_empty() {
        return Err("no URLs: the list holds only blank lines and comments".into());
    }
    Ok(targets)
}

/// The background service that prewarms `edge.prewarm.urls` and `edge.prewarm.file` at
/// start-up.
pub struct StartupPrewarm {
    /// The edge's prewarmer (shared with the admin API, which reports the job).
    pub prewarmer: Arc<Prewarmer>,
    /// `edge.prewarm.urls`.
    pub urls: Vec<String>,
    /// `edge.prewarm.file`.
    pub file: Option<PathBuf>,
}

#[async_trait]
impl BackgroundService for StartupPrewarm {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        let mut lines = self.urls.clone();
        if let Some(file) = &self.file {
            match tokio::fs::read_to_string(file).await {
                Ok(text) => lines.extend(
                    text.lines()
                        .map(str::trim)
                        .filter(|l| !l.is_empty() && !l.starts_with('#'))
                        .map(str::to_string),
                ),
                Err(e) => tracing::error!(
                    file = %file.display(),
                    "prewarm: cannot read edge.prewarm.file: {e}"
                ),
            }
        }
        if lines.is_empty() {
            return;
        }
        tokio::select! {
            () = self.prewarmer.run_startup(lines) => {}
            _ = shutdown.changed() => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(body: &str) -> Result<Vec<String>, String> {
        parse_list(body.as_bytes()).map(|t| t.iter().map(|t| t.url.key()).collect())
    }

    #[test]
    fn lists_parse_as_json_or_lines() {
        let expect = vec!["h/a".to_string(), "h/b".to_string()];
        assert_eq!(keys(r#"["http://h/a", "http://h/b"]"#).unwrap(), expect);
        assert_eq!(
            keys(r#"{"urls": ["http://h/a", "http://h/b"]}"#).unwrap(),
            expect
        );
        assert_eq!(
            keys("# warm these\nhttp://h/a\n\n  http://h/b  \r\nhttp://H/a\n").unwrap(),
            expect
        );
    }

    #[test]
    fn bad_lists_say_why() {
        assert!(keys("").unwrap_err().contains("no URLs"));
        assert!(keys("# only a comment\n").unwrap_err().contains("no URLs"));
        assert!(keys("[\"http://h/a\"")
            .unwrap_err()
            .contains("not a JSON array"));
        assert!(keys("[1, 2]").unwrap_err().contains("not a JSON array"));
        assert!(keys(r#"{"url": []}"#)
            .unwrap_err()
            .contains("unknown field"));
        let e = keys("http://h/a\nftp://h/b\nhttp://h/c\n").unwrap_err();
        assert!(e.starts_with("line 2:"), "{e}");
        let e = keys(r#"["http://h/a", "mailto:x"]"#).unwrap_err();
        assert!(e.starts_with("urls[1]:"), "{e}");
        let many: String = (0..20).map(|i| format!("ftp://h/{i}\n")).collect();
        assert!(keys(&many).unwrap_err().ends_with("and 15 more"));
        assert!(parse_list(b"\xff").unwrap_err().contains("UTF-8"));
    }

    #[test]
    fn only_stored_2xx_answers_count() {
        assert!(judge(200, "cdn-edge; fwd=miss; stored").is_ok());
        assert!(judge(200, "cdn-edge; hit; ttl=59").is_ok());
        assert!(judge(200, "cdn-edge; fwd=stale; stored").is_ok());
        let e = judge(200, "cdn-edge; fwd=miss").unwrap_err();
        assert!(e.contains("not cacheable"), "{e}");
        assert!(judge(404, "cdn-edge; fwd=miss; stored")
            .unwrap_err()
            .contains("404"));
    }

    #[test]
    fn jobs_report_progress_and_old_ones_make_room() {
        let storage: &'static CacheStorage = Box::leak(Box::new(CacheStorage::new(
            1 << 20,
            1 << 20,
            cdn_config::Eviction::Lru,
        )));
        let p = Prewarmer::new(
            &["0.0.0.0:8080".parse().unwrap()],
            storage,
            4,
            Duration::from_secs(1),
        );
        assert_eq!(p.via, "127.0.0.1:8080".parse().unwrap());
        let job = p.register(Job::new("1".into(), 3)).unwrap();
        job.record("http://h/a", Ok(Warmed::Fetched));
        job.record("http://h/b", Ok(Warmed::AlreadyFresh));
        job.record("http://h/c", Err("boom".into()));
        let r = p.report("1").unwrap();
        assert_eq!((r.state.as_str(), r.total, r.done), ("running", 3, 2));
        assert_eq!((r.skipped, r.failed, r.errors.len()), (1, 1, 1));
        job.finish();
        assert_eq!(p.report("1").unwrap().state, "done");
        assert!(p.report("2").is_none());
        for i in 2..=MAX_JOBS {
            p.register(Job::new(i.to_string(), 1)).unwrap();
        }
        // Full: the finished job 1 makes room; then every job is running.
        p.register(Job::new("new".into(), 1)).unwrap();
        assert!(p.report("1").is_none());
        assert_eq!(
            p.register(Job::new("more".into(), 1)).err(),
            Some(PrewarmRefusal::Busy)
        );
    }
}
