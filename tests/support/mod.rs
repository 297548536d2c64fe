//! Starting and stopping real `cdn` processes on 127.0.0.1 for end-to-end tests, and talking
//! HTTP to them.
//!
//! Ports are chosen by the OS (bind to port 0, read the port, release it); if a process loses
//! the race for its port it exits, and the start is retried with new ports. Every process is
//! stopped (SIGTERM, then SIGKILL after a bounded wait) when its handle is dropped.

#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// The `cdn` binary under test.
pub fn cdn_bin() -> &'static str {
    env!("CARGO_BIN_EXE_cdn")
}

/// A loopback address with a port the OS just handed out.
pub fn free_addr() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port");
    l.local_addr().expect("local addr")
}

/// A child process that is stopped when dropped.
pub struct Proc {
    pub child: Child,
    pub name: String,
    pub log: PathBuf,
}

impl Proc {
    pub fn spawn(name: &str, args: &[&str], log: PathBuf) -> Proc {
        let out = std::fs::File::create(&log).expect("create log file");
        let err = out.try_clone().expect("clone log file");
        let child = Command::new(cdn_bin())
            .args(args)
            .env(
                "RUST_LOG",
                "info,pingora_core=warn,pingora_proxy=warn,pingora_cache=warn",
            )
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .expect("spawn cdn");
        Proc {
            child,
            name: name.to_string(),
            log,
        }
    }

    /// Whether the process is still running.
    pub fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Sends SIGTERM and waits up to `limit` for the exit.
    pub fn terminate(&mut self, limit: Duration) -> Option<ExitStatus> {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        None
    }

    /// Everything the process wrote so far.
    pub fn output(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if self.alive() && self.terminate(Duration::from_secs(5)).is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Polls `url` until it answers 200, the process dies, or `limit` passes.
fn wait_ready(proc: &mut Proc, url: &str, limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if !proc.alive() {
            return false;
        }
        if let Ok(r) = get(url, &[]) {
            if r.status == 200 {
                return true;
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

/// Polls until `addr` accepts a TCP connection, or `limit` passes.
fn wait_listening(addr: SocketAddr, limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

/// A scratch directory removed at drop.
pub fn scratch() -> tempfile::TempDir {
    tempfile::tempdir().expect("temp dir")
}

/// A running origin-mock.
pub struct Origin {
    pub proc: Proc,
    pub addr: SocketAddr,
    _dir: tempfile::TempDir,
}

impl Origin {
    pub fn start() -> Origin {
        Self::start_with(&[])
    }

    pub fn start_with(extra: &[&str]) -> Origin {
        for _ in 0..3 {
            if let Some(origin) = Self::spawn_at(free_addr(), extra, Duration::from_secs(20)) {
                return origin;
            }
        }
        panic!("origin-mock did not start");
    }

    /// An origin-mock on `addr` (e.g. one that replaces a stopped origin): the bind is retried
    /// for up to 5 s while the port is still being released.
    pub fn start_at(addr: SocketAddr, extra: &[&str]) -> Origin {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            if let Some(origin) = Self::spawn_at(addr, extra, Duration::from_secs(10)) {
                return origin;
            }
            assert!(
                Instant::now() < deadline,
                "origin-mock could not listen on {addr}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Starts `cdn origin` on `addr` and waits up to `limit` for it to answer.
    fn spawn_at(addr: SocketAddr, extra: &[&str], limit: Duration) -> Option<Origin> {
        let dir = scratch();
        let listen = addr.to_string();
        let mut args = vec!["origin", "--listen", &listen];
        args.extend_from_slice(extra);
        let mut proc = Proc::spawn("origin", &args, dir.path().join("origin.log"));
        let ready = wait_ready(&mut proc, &format!("http://{addr}/__stats"), limit);
        ready.then_some(Origin {
            proc,
            addr,
            _dir: dir,
        })
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// Requests origin-mock received for `path` (path only, any query).
    pub fn fetches(&self, path: &str) -> u64 {
        let stats = get(&self.url("/__stats"), &[]).expect("origin stats");
        let v: serde_json::Value = serde_json::from_slice(&stats.body).expect("stats json");
        v["paths"][path].as_u64().unwrap_or(0)
    }

    /// Requests origin-mock received with this `Host` header.
    pub fn requests_with_host(&self, host: &str) -> u64 {
        let stats = get(&self.url("/__stats"), &[]).expect("origin stats");
        let v: serde_json::Value = serde_json::from_slice(&stats.body).expect("stats json");
        v["hosts"][host].as_u64().unwrap_or(0)
    }

    /// Requests origin-mock received for paths starting with `prefix`.
    pub fn fetches_under(&self, prefix: &str) -> u64 {
        let stats = get(&self.url("/__stats"), &[]).expect("origin stats");
        let v: serde_json::Value = serde_json::from_slice(&stats.body).expect("stats json");
        v["paths"]
            .as_object()
            .map(|paths| {
                paths
                    .iter()
                    .filter(|(p, _)| p.starts_with(prefix))
                    .filter_map(|(_, n)| n.as_u64())
                    .sum()
            })
            .unwrap_or(0)
    }

    pub fn total(&self) -> u64 {
        let stats = get(&self.url("/__stats"), &[]).expect("origin stats");
        let v: serde_json::Value = serde_json::from_slice(&stats.body).expect("stats json");
        v["total"].as_u64().unwrap_or(0)
    }
}

/// A running edge.
pub struct EdgeProc {
    pub proc: Proc,
    pub addr: SocketAddr,
    pub admin: SocketAddr,
    pub dir: tempfile::TempDir,
}

impl EdgeProc {
    /// An edge in front of `origin`; `cache_toml` goes under `[edge.cache]`.
    pub fn start(origin: SocketAddr, cache_toml: &str) -> EdgeProc {
        Self::start_with(
            origin,
            "connect_timeout = \"1s\"\nread_timeout = \"5s\"",
            cache_toml,
        )
    }

    /// An edge in front of `origin` with `pool_toml` under `[edge.pool]` and `cache_toml`
    /// under `[edge.cache]`.
    pub fn start_with(origin: SocketAddr, pool_toml: &str, cache_toml: &str) -> EdgeProc {
        Self::start_pool(&[origin], pool_toml, cache_toml)
    }

    /// An edge in front of the pool `origins` (one `[[edge.origins]]` each, weight 1).
    pub fn start_pool(origins: &[SocketAddr], pool_toml: &str, cache_toml: &str) -> EdgeProc {
        let weighted: Vec<(SocketAddr, u32)> = origins.iter().map(|&a| (a, 1)).collect();
        Self::start_weighted(&weighted, pool_toml, cache_toml)
    }

    /// An edge in front of the pool `origins`, each with its weight.
    pub fn start_weighted(
        origins: &[(SocketAddr, u32)],
        pool_toml: &str,
        cache_toml: &str,
    ) -> EdgeProc {
        Self::start_custom(origins, "", pool_toml, cache_toml)
    }

    /// An edge in front of the pool `origins`, each with its weight; `edge_toml` goes under
    /// `[edge]`, `pool_toml` under `[edge.pool]` and `cache_toml` under `[edge.cache]`, which
    /// ends the file (so it may go on with tables of its own, such as `[[edge.routes]]`).
    pub fn start_custom(
        origins: &[(SocketAddr, u32)],
        edge_toml: &str,
        pool_toml: &str,
        cache_toml: &str,
    ) -> EdgeProc {
        let origins_toml: String = origins
            .iter()
            .map(|(a, w)| format!("[[edge.origins]]\naddress = \"{a}\"\nweight = {w}\n"))
            .collect();
        let dir = scratch();
        for _ in 0..3 {
            let addr = free_addr();
            let admin = free_addr();
            let config = format!(
                "[edge]\nlisten = [\"{addr}\"]\nthreads = 2\n{edge_toml}\n[edge.admin]\nlisten = \"{admin}\"\n\
                 {origins_toml}[edge.pool]\n{pool_toml}\n\
                 [edge.cache]\n{cache_toml}\n"
            );
            let path = dir.path().join("edge.toml");
            std::fs::write(&path, config).expect("write config");
            let path_s = path.display().to_string();
            let mut proc = Proc::spawn(
                "edge",
                &["edge", "--config", &path_s],
                dir.path().join("edge.log"),
            );
            // The admin API may answer a moment before the proxy listener accepts.
            if wait_ready(
                &mut proc,
                &format!("http://{admin}/healthz"),
                Duration::from_secs(20),
            ) && wait_listening(addr, Duration::from_secs(5))
            {
                return EdgeProc {
                    proc,
                    addr,
                    admin,
                    dir,
                };
            }
            eprintln!("edge did not start, retrying:\n{}", proc.output());
        }
        panic!("edge did not start");
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    pub fn admin_url(&self, path: &str) -> String {
        format!("http://{}{}", self.admin, path)
    }

    /// The admin API's Prometheus text.
    pub fn metrics(&self) -> String {
        let r = get(&self.admin_url("/metrics"), &[]).expect("metrics");
        String::from_utf8(r.body).expect("metrics text")
    }

    /// The value of the series whose line starts with `series` (name and labels as printed),
    /// 0 if absent.
    pub fn metric(&self, series: &str) -> f64 {
        self.metrics()
            .lines()
            .find(|l| l.starts_with(series) && l[series.len()..].starts_with(' '))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0.0)
    }

    /// The admin API's `GET /origins`.
    pub fn origins(&self) -> Vec<serde_json::Value> {
        let r = get(&self.admin_url("/origins"), &[]).expect("origins");
        assert_eq!(r.status, 200);
        serde_json::from_slice(&r.body).expect("origins json")
    }

    pub fn cache_stats(&self) -> serde_json::Value {
        let r = get(&self.admin_url("/cache/stats"), &[]).expect("cache stats");
        serde_json::from_slice(&r.body).expect("cache stats json")
    }
}

/// A response, whatever its status.
#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Resp {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn cache_status(&self) -> &str {
        self.header("cache-status").unwrap_or("")
    }

    pub fn is_hit(&self) -> bool {
        self.cache_status().contains("; hit")
    }
}

fn agent() -> ureq::Agent {
    ureq::AgentBuilder::new()
        .timeout(Duration::from_secs(20))
        .build()
}

fn into_resp(r: ureq::Response) -> Resp {
    let headers = r
        .headers_names()
        .into_iter()
        .flat_map(|name| {
            r.all(&name)
                .into_iter()
                .map(|v| (name.clone(), v.to_string()))
                .collect::<Vec<_>>()
        })
        .collect();
    let status = r.status();
    let mut body = Vec::new();
    let _ = r.into_reader().take(1 << 30).read_to_end(&mut body);
    Resp {
        status,
        headers,
        body,
    }
}

/// A request with any method and headers; non-2xx statuses are returned, not errors.
pub fn request(method: &str, url: &str, headers: &[(&str, &str)]) -> Result<Resp, String> {
    let mut req = agent().request(method, url);
    for (k, v) in headers {
        req = req.set(k, v);
    }
    match req.call() {
        Ok(r) => Ok(into_resp(r)),
        Err(ureq::Error::Status(_, r)) => Ok(into_resp(r)),
        Err(e) => Err(e.to_string()),
    }
}

/// A GET whose body must arrive complete: a connection cut mid-body is an error.
pub fn get_complete(url: &str) -> Result<Resp, String> {
    let r = agent().get(url).call().map_err(|e| e.to_string())?;
    let status = r.status();
    let declared: Option<usize> = r.header("content-length").and_then(|v| v.parse().ok());
    let cache_status = r.header("cache-status").unwrap_or("").to_string();
    let mut body = Vec::new();
    r.into_reader()
        .read_to_end(&mut body)
        .map_err(|e| format!("body cut short after {} bytes: {e}", body.len()))?;
    if declared.is_some_and(|d| d != body.len()) {
        return Err(format!(
            "body of {} bytes, {declared:?} declared",
            body.len()
        ));
    }
    Ok(Resp {
        status,
        headers: vec![("cache-status".into(), cache_status)],
        body,
    })
}

pub fn get(url: &str, headers: &[(&str, &str)]) -> Result<Resp, String> {
    request("GET", url, headers)
}

pub fn post(url: &str) -> Result<Resp, String> {
    request("POST", url, &[])
}

/// Sends raw bytes and returns the raw response (read until the server closes or 5 s pass).
pub fn raw(addr: SocketAddr, bytes: &[u8]) -> String {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(5))).ok();
    s.write_all(bytes).expect("write");
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    String::from_utf8_lossy(&out).into_owned()
}

/// Runs `cdn` with `args` to completion; returns (exit code, stdout, stderr).
pub fn run_cdn(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(cdn_bin())
        .args(args)
        .env("NO_COLOR", "1")
        .output()
        .expect("run cdn");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

pub fn write_file(dir: &Path, name: &str, text: &str) -> String {
    let p = dir.join(name);
    std::fs::write(&p, text).expect("write file");
    p.display().to_string()
}
