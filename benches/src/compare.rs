//! `cdn bench compare`: the same workloads against our edge and — when installed — nginx
//! (`proxy_cache`) and Varnish, in one run, printed as one table.
//!
//! Everything runs on 127.0.0.1: one origin-mock (`cdn origin`), our edge (`cdn edge`), nginx
//! and `varnishd`, each started here with a config written to a scratch directory and stopped
//! when the run ends (also on error). Every cache gets the same size (`--cache-size`) and the
//! same number of server threads (`--workers`), and all three coalesce concurrent misses (the
//! edge's cache lock, nginx's `proxy_cache_lock`, Varnish's waiting list). `benches/compare.sh`
//! installs nginx and Varnish with apt-get, builds the release binary and runs this.
//!
//! Workloads, each run on every system in turn with the in-process load generator:
//! * `hits-1k`, `hits-100k`: one warmed object, every request a hit;
//! * `zipf`: Zipf α 0.9 over four times more 16 KiB objects than the cache holds, cold start;
//! * `stampede`: 1,000 connections each asking at once for one cold object whose origin takes
//!   100 ms, counting how many requests reached the origin (ideal: 1).

use crate::http::{self, HttpOptions, HttpReport};
use crate::load::Stop;
use crate::workload::Popularity;
use crate::BenchError;
use serde::Serialize;
use std::fmt::Write as _;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Size of the `zipf` workload's objects.
const ZIPF_OBJECT: u64 = 16 << 10;
/// Connections (and requests) of the stampede.
const STAMPEDE: usize = 1000;

/// What `cdn bench compare` was asked to do.
#[derive(Clone, Debug)]
pub struct CompareOptions {
    /// Length of each workload's run on each system.
    pub duration: Duration,
    /// Connections of the load generator.
    pub connections: usize,
    /// Cache size of every system.
    pub cache_bytes: u64,
    /// Server threads of every system.
    pub workers: usize,
    /// `edge`, `nginx`, `varnish`.
    pub systems: Vec<String>,
    /// `hits-1k`, `hits-100k`, `zipf`, `stampede`.
    pub workloads: Vec<String>,
    /// Compare DNS (gslb against Knot) instead.
    pub dns: bool,
    /// Show progress on stderr.
    pub progress: bool,
}

/// One workload on one system.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct CompareRow {
    /// The workload.
    pub workload: String,
    /// The system.
    pub system: String,
    /// Answers per second.
    pub requests_per_sec: f64,
    /// 99th percentile latency (ms).
    pub p99_ms: f64,
    /// Hit ratio from the cache's headers.
    pub hit_ratio: Option<f64>,
    /// Requests origin-mock received during the run.
    pub origin_requests: u64,
    /// Failed requests and 4xx/5xx answers.
    pub errors: u64,
    /// This system's req/s over our edge's on the same workload.
    pub ratio_to_edge: Option<f64>,
}

/// The results of `cdn bench compare`, as printed by `--json`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct CompareReport {
    /// When and where.
    pub machine: String,
    /// Versions of the peers.
    pub versions: Vec<String>,
    /// Systems asked for but not installed.
    pub skipped: Vec<String>,
    /// The settings every system shared.
    pub settings: String,
    /// One row per workload and system.
    pub rows: Vec<CompareRow>,
}

/// Runs the comparison.
pub fn run(opts: &CompareOptions) -> Result<CompareReport, BenchError> {
    if opts.dns {
        return Err(dns_comparison_unavailable());
    }
    for w in &opts.workloads {
        if !["hits-1k", "hits-100k", "zipf", "stampede"].contains(&w.as_str()) {
            return Err(BenchError::usage(format!(
                "unknown workload {w:?}: choose from hits-1k, hits-100k, zipf, stampede"
            )));
        }
    }
    for s in &opts.systems {
        if !["edge", "nginx", "varnish"].contains(&s.as_str()) {
            return Err(BenchError::usage(format!(
                "unknown system {s:?}: choose from edge, nginx, varnish"
            )));
        }
    }
    if opts.connections == 0 || opts.workers == 0 {
        return Err(BenchError::usage(
            "--connections and --workers must be at least 1",
        ));
    }
    let scratch = Scratch::new()?;
    let control = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| BenchError::runtime(format!("cannot start the async runtime: {e}")))?;
    let cdn = std::env::current_exe()
        .map_err(|e| BenchError::runtime(format!("cannot find the cdn binary: {e}")))?;

    let origin_addr = free_addr()?;
    let mut processes = Vec::new();
    processes.push(Server::spawn(
        "origin-mock",
        Command::new(&cdn).args(["origin", "--listen", &origin_addr.to_string()]),
        &scratch.path.join("origin.log"),
    )?);
    let origin = format!("http://{origin_addr}");
    wait_ready(&control, &mut processes[0], &format!("{origin}/__stats"))?;

    let mut systems: Vec<(String, String)> = Vec::new();
    let mut skipped = Vec::new();
    let mut versions = Vec::new();
    for name in &opts.systems {
        let started = match name.as_str() {
            "edge" => start_edge(&cdn, opts, origin_addr, &scratch.path).map(Some),
            "nginx" => start_nginx(opts, origin_addr, &scratch.path),
            _ => start_varnish(opts, origin_addr, &scratch.path),
        }?;
        match started {
            Some((mut server, base, ready_url, version)) => {
                wait_ready(&control, &mut server, &ready_url)?;
                processes.push(server);
                systems.push((name.clone(), base));
                versions.extend(version);
            }
            None => skipped.push(format!(
                "{name} (not installed: benches/compare.sh installs it)"
            )),
        }
    }

    let mut rows = Vec::new();
    for workload in &opts.workloads {
        let mut edge_rate = None;
        for (system, base) in &systems {
            if opts.progress {
                eprintln!("==> {workload} on {system}");
            }
            let report = run_workload(&control, opts, workload, system, base, &origin)?;
            let errors = report.errors.total();
            let row = CompareRow {
                workload: workload.clone(),
                system: system.clone(),
                requests_per_sec: report.requests_per_sec,
                p99_ms: report.latency_ms.p99,
                hit_ratio: report.cache.hit_ratio,
                origin_requests: report.origin.as_ref().map_or(0, |o| o.requests),
                errors,
                ratio_to_edge: None,
            };
            if system == "edge" {
                edge_rate = Some(row.requests_per_sec);
            }
            rows.push(row);
        }
        if let Some(edge) = edge_rate.filter(|r| *r > 0.0) {
            for row in rows.iter_mut().filter(|r| &r.workload == workload) {
                row.ratio_to_edge = Some(row.requests_per_sec / edge);
            }
        }
    }
    drop(processes);
    Ok(CompareReport {
        machine: machine_description(),
        versions,
        skipped,
        settings: format!(
            "cache {} per system, {} server threads, load generator: {} connections, {} threads, {:.0} s per run, on the same cores",
            cdn_config::HumanSize::from_bytes(opts.cache_bytes),
            opts.workers,
            opts.connections,
            http::default_threads(),
            opts.duration.as_secs_f64()
        ),
        rows,
    })
}

/// Runs one workload on one system: warms what must be warm, loads, and reports.
fn run_workload(
    control: &tokio::runtime::Runtime,
    opts: &CompareOptions,
    workload: &str,
    system: &str,
    base: &str,
    origin: &str,
) -> Result<HttpReport, BenchError> {
    let max_age = "cc=max-age%3D3600";
    let mut load = HttpOptions::new(base, Stop::Duration(opts.duration));
    load.connections = opts.connections;
    load.origin = Some(origin.to_string());
    load.progress = opts.progress;
    load.timeout = Duration::from_secs(10);
    match workload {
        "hits-1k" | "hits-100k" => {
            let size = if workload == "hits-1k" {
                1024
            } else {
                100 * 1024
            };
            let url = format!("{base}/bytes/{size}?{max_age}");
            // Two requests: the first stores the object, the second must be a hit.
            control.block_on(http::get_body(&url))?;
            control.block_on(http::get_body(&url))?;
            load.targets = vec![url];
        }
        "zipf" => {
            let keys = (opts.cache_bytes * 4 / ZIPF_OBJECT).max(1);
            load.targets = vec![format!("{base}/bytes/{ZIPF_OBJECT}?{max_age}&k={{key}}")];
            load.popularity = Popularity::zipf(0.9, keys)?;
        }
        _ => {
            // A fresh object per system (and per run), slow at the origin so requests pile up.
            let nonce = std::process::id();
            load.targets = vec![format!(
                "{base}/bytes/102400?{max_age}&delay_ms=100&stampede={system}-{nonce}"
            )];
            load.connections = STAMPEDE;
            load.stop = Stop::Count(STAMPEDE as u64);
        }
    }
    http::run(&load)
}

fn dns_comparison_unavailable() -> BenchError {
    BenchError::usage(
        "cdn bench compare --dns is not available yet: it needs `cdn gslb`, which this build does not have",
    )
}

/// A scratch directory removed when dropped.
struct Scratch {
    path: PathBuf,
}

impl Scratch {
    fn new() -> Result<Self, BenchError> {
        let path = std::env::temp_dir().join(format!("cdn-bench-compare-{}", std::process::id()));
        std::fs::create_dir_all(&path)
            .map_err(|e| BenchError::runtime(format!("cannot create {}: {e}", path.display())))?;
        // nginx's and Varnish's workers run as unprivileged users when started as root.
        set_mode(&path, 0o755);
        Ok(Self { path })
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

#[cfg(unix)]
fn set_mode(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    let _ = std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode));
}

#[cfg(not(unix))]
fn set_mode(_path: &Path, _mode: u32) {}

/// A server process, stopped (SIGTERM, then SIGKILL after 5 s) when dropped.
struct Server {
    name: String,
    child: Child,
    log: PathBuf,
}

impl Server {
    fn spawn(name: &str, command: &mut Command, log: &Path) -> Result<Self, BenchError> {
        let out = std::fs::File::create(log)
            .map_err(|e| BenchError::runtime(format!("cannot create {}: {e}", log.display())))?;
        let err = out
            .try_clone()
            .map_err(|e| BenchError::runtime(format!("cannot open {}: {e}", log.display())))?;
        let child = command
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .map_err(|e| BenchError::runtime(format!("cannot start {name}: {e}")))?;
        Ok(Self {
            name: name.to_string(),
            child,
            log: log.to_path_buf(),
        })
    }

    fn exited(&mut self) -> bool {
        !matches!(self.child.try_wait(), Ok(None))
    }

    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if self.exited() {
            return;
        }
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if self.exited() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A loopback address nobody listens on now.
fn free_addr() -> Result<SocketAddr, BenchError> {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map_err(|e| BenchError::runtime(format!("no free port: {e}")))
}

/// Waits (at most 20 s) until `url` answers 2xx; fails with the server's log if it exits.
fn wait_ready(
    control: &tokio::runtime::Runtime,
    server: &mut Server,
    url: &str,
) -> Result<(), BenchError> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if control.block_on(http::get_body(url)).is_ok() {
            return Ok(());
        }
        if server.exited() {
            return Err(BenchError::runtime(format!(
                "{} exited during start-up:\n{}",
                server.name,
                server.log_tail()
            )));
        }
        if Instant::now() > deadline {
            return Err(BenchError::runtime(format!(
                "{} did not answer {url} within 20 s:\n{}",
                server.name,
                server.log_tail()
            )));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A started system: the process, its base URL, a URL that answers once it is ready, and a
/// version line.
type Started = (Server, String, String, Option<String>);

fn start_edge(
    cdn: &Path,
    opts: &CompareOptions,
    origin: SocketAddr,
    dir: &Path,
) -> Result<Started, BenchError> {
    let (listen, admin) = (free_addr()?, free_addr()?);
    let config = format!(
        "# Written by cdn bench compare.\n[edge]\nlisten = [\"{listen}\"]\nthreads = {}\naccess_log = false\n\n\
         [edge.admin]\nlisten = \"{admin}\"\n\n[[edge.origins]]\naddress = \"{origin}\"\n\n\
         [edge.cache]\nmax_size = \"{}B\"\n",
        opts.workers, opts.cache_bytes
    );
    let path = dir.join("edge.toml");
    write(&path, &config)?;
    let server = Server::spawn(
        "edge",
        Command::new(cdn).arg("edge").arg("--config").arg(&path),
        &dir.join("edge.log"),
    )?;
    let base = format!("http://{listen}");
    Ok((
        server,
        base.clone(),
        format!("{base}/bytes/1?cc=no-store"),
        None,
    ))
}

fn find_program(candidates: &[&str]) -> Option<PathBuf> {
    for c in candidates {
        let p = Path::new(c);
        if p.is_absolute() && p.is_file() {
            return Some(p.to_path_buf());
        }
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .flat_map(|dir| candidates.iter().map(move |c| dir.join(c)))
        .find(|p| p.is_file())
}

fn version_of(program: &Path, flag: &str) -> Option<String> {
    let out = Command::new(program).arg(flag).output().ok()?;
    let text =
        String::from_utf8_lossy(&out.stderr).to_string() + &String::from_utf8_lossy(&out.stdout);
    text.lines().next().map(|l| l.trim().to_string())
}

fn write(path: &Path, text: &str) -> Result<(), BenchError> {
    std::fs::write(path, text)
        .map_err(|e| BenchError::runtime(format!("cannot write {}: {e}", path.display())))
}

fn start_nginx(
    opts: &CompareOptions,
    origin: SocketAddr,
    dir: &Path,
) -> Result<Option<Started>, BenchError> {
    let Some(nginx) = find_program(&["/usr/sbin/nginx", "nginx"]) else {
        return Ok(None);
    };
    let listen = free_addr()?;
    let root = dir.join("nginx");
    for sub in ["cache", "temp"] {
        std::fs::create_dir_all(root.join(sub))
            .map_err(|e| BenchError::runtime(format!("cannot create nginx dirs: {e}")))?;
    }
    set_mode(&root, 0o755);
    let r = root.display();
    // As benches/compare-nginx.sh: the cache on disk (nginx's normal setup, hits come from the
    // page cache), sendfile off (its default), keepalive_requests raised so nginx does not close
    // client connections after 1000 requests (the edge does not), a keepalive upstream pool.
    let config = format!(
        "# Written by cdn bench compare.\n\
         worker_processes {workers};\nerror_log {r}/error.log warn;\npid {r}/nginx.pid;\n\
         events {{ worker_connections 8192; }}\n\
         http {{\n  access_log off;\n  keepalive_requests 1000000;\n\
           client_body_temp_path {r}/temp/client_body;\n  proxy_temp_path {r}/temp/proxy;\n\
           fastcgi_temp_path {r}/temp/fastcgi;\n  uwsgi_temp_path {r}/temp/uwsgi;\n  scgi_temp_path {r}/temp/scgi;\n\
           proxy_cache_path {r}/cache levels=1:2 keys_zone=cdn:64m max_size={size} inactive=60m use_temp_path=off;\n\
           upstream origin {{ server {origin}; keepalive 64; }}\n\
           server {{\n    listen {listen};\n    location / {{\n      proxy_pass http://origin;\n\
               proxy_http_version 1.1;\n      proxy_set_header Connection \"\";\n\
               proxy_cache cdn;\n      proxy_cache_lock on;\n      proxy_cache_lock_timeout 5s;\n\
               add_header X-Cache-Status $upstream_cache_status;\n    }}\n  }}\n}}\n",
        workers = opts.workers,
        size = opts.cache_bytes,
    );
    let conf = root.join("nginx.conf");
    write(&conf, &config)?;
    let server = Server::spawn(
        "nginx",
        Command::new(&nginx)
            .arg("-p")
            .arg(&root)
            .arg("-c")
            .arg(&conf)
            .args(["-g", "daemon off;"]),
        &root.join("stderr.log"),
    )?;
    let base = format!("http://{listen}");
    let version = version_of(&nginx, "-v");
    Ok(Some((
        server,
        base.clone(),
        format!("{base}/bytes/1?cc=no-store"),
        version,
    )))
}

fn start_varnish(
    opts: &CompareOptions,
    origin: SocketAddr,
    dir: &Path,
) -> Result<Option<Started>, BenchError> {
    let Some(varnishd) = find_program(&["/usr/sbin/varnishd", "varnishd"]) else {
        return Ok(None);
    };
    let listen = free_addr()?;
    let root = dir.join("varnish");
    std::fs::create_dir_all(&root)
        .map_err(|e| BenchError::runtime(format!("cannot create varnish dir: {e}")))?;
    set_mode(&root, 0o755);
    // X-Cache so the bench can read hits; everything else is Varnish's built-in VCL (which
    // honours Cache-Control and coalesces concurrent misses on its waiting list).
    let vcl = format!(
        "vcl 4.1;\nbackend origin {{ .host = \"{}\"; .port = \"{}\"; }}\n\
         sub vcl_deliver {{\n  if (obj.hits > 0) {{ set resp.http.X-Cache = \"HIT\"; }} else {{ set resp.http.X-Cache = \"MISS\"; }}\n}}\n",
        origin.ip(),
        origin.port()
    );
    let vcl_path = root.join("bench.vcl");
    write(&vcl_path, &vcl)?;
    set_mode(&vcl_path, 0o644);
    let server = Server::spawn(
        "varnish",
        Command::new(&varnishd)
            .arg("-F")
            .arg("-n")
            .arg(root.join("work"))
            .arg("-a")
            .arg(listen.to_string())
            .arg("-f")
            .arg(&vcl_path)
            .arg("-s")
            .arg(format!("malloc,{}", opts.cache_bytes))
            .args(["-p", &format!("thread_pools={}", opts.workers)]),
        &root.join("stderr.log"),
    )?;
    let base = format!("http://{listen}");
    let version = version_of(&varnishd, "-V");
    Ok(Some((
        server,
        base.clone(),
        format!("{base}/bytes/1?cc=no-store"),
        version,
    )))
}

fn machine_description() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let date = Command::new("date")
        .args(["-u", "+%Y-%m-%d %H:%M UTC"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    format!("{date}, {} cores, {cpu}", http::default_threads())
}

impl CompareReport {
    /// The comparison table.
    pub fn table(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "cdn bench compare: {}", self.machine);
        let _ = writeln!(out, "settings: {}", self.settings);
        if !self.versions.is_empty() {
            let _ = writeln!(out, "peers: {}", self.versions.join("; "));
        }
        for s in &self.skipped {
            let _ = writeln!(out, "skipped: {s}");
        }
        let _ = writeln!(
            out,
            "\n{:<10} {:<8} {:>10} {:>10} {:>9} {:>8} {:>7} {:>9}",
            "workload", "system", "req/s", "p99", "hit ratio", "origin", "errors", "vs edge"
        );
        for r in &self.rows {
            let _ = writeln!(
                out,
                "{:<10} {:<8} {:>10.0} {:>10} {:>9} {:>8} {:>7} {:>9}",
                r.workload,
                r.system,
                r.requests_per_sec,
                crate::latency::format_ms(r.p99_ms),
                r.hit_ratio.map_or("-".into(), |h| format!("{h:.3}")),
                r.origin_requests,
                r.errors,
                r.ratio_to_edge.map_or("-".into(), |x| format!("{x:.2}×")),
            );
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_names_are_usage_errors() {
        let opts = CompareOptions {
            duration: Duration::from_secs(1),
            connections: 1,
            cache_bytes: 1 << 20,
            workers: 1,
            systems: vec!["edge".into()],
            workloads: vec!["hits-2k".into()],
            dns: false,
            progress: false,
        };
        assert!(run(&opts).unwrap_err().usage);
        let opts = CompareOptions {
            workloads: vec!["zipf".into()],
            systems: vec!["squid".into()],
            ..opts
        };
        assert!(run(&opts).unwrap_err().message.contains("squid"));
    }

    #[test]
    fn the_table_shows_ratios_to_the_edge() {
        let row = |system: &str, rps: f64, ratio: Option<f64>| CompareRow {
            workload: "hits-1k".into(),
            system: system.into(),
            requests_per_sec: rps,
            p99_ms: 2.0,
            hit_ratio: Some(1.0),
            origin_requests: 0,
            errors: 0,
            ratio_to_edge: ratio,
        };
        let report = CompareReport {
            machine: "m".into(),
            versions: vec![],
            skipped: vec!["varnish (not installed)".into()],
            settings: "s".into(),
            rows: vec![
                row("edge", 1000.0, Some(1.0)),
                row("nginx", 1500.0, Some(1.5)),
            ],
        };
        let t = report.table();
        assert!(t.contains("1.50×") && t.contains("skipped: varnish"), "{t}");
    }
}
