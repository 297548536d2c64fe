//! Active health checks of the origin pool (`[edge.pool.health]`).
//!
//! A pingora background service ([`HealthChecker`]) probes every origin once per `interval`,
//! all at once, each probe bounded by `timeout`: an HTTP/1.1 `GET` of `path` whose status must
//! be the expected one, or a bare TCP connect. `fall` failed probes in a row take an origin out
//! of the balancer (`set_health(i, false)`), `rise` good ones bring it back; each flip is
//! logged and counted in the metrics. The counters are kept in [`HealthStates`] for the admin
//! API's `GET /origins`.
//!
//! The HTTP probe is hand-written over a tokio `TcpStream` (one request line, one status line
//! read back) because all it needs is the status code: pingora's connector would bring
//! connection pooling and a full response parser into a loop that opens one short connection
//! per origin and second.

use crate::metrics::EdgeMetrics;
use crate::upstream::OriginPool;
use async_trait::async_trait;
use cdn_config::{HealthCheckKind, HealthConfig};
use pingora_core::server::ShutdownWatch;
use pingora_core::services::background::BackgroundService;
use serde::Serialize;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Most bytes read while looking for the status line.
const MAX_STATUS_LINE: usize = 1024;

/// The probe counters of one origin.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct CheckState {
    /// Good probes in a row (0 after a failed one).
    pub consecutive_ok: u32,
    /// Failed probes in a row (0 after a good one).
    pub consecutive_failed: u32,
    /// Why the last failed probe failed, if any failed yet.
    pub last_error: Option<String>,
}

impl CheckState {
    /// Counts a probe result for an origin that is `healthy` now; returns the origin's new
    /// health when the result crosses `rise` (while unhealthy) or `fall` (while healthy).
    pub fn record(
        &mut self,
        result: &Result<(), String>,
        healthy: bool,
        rise: u32,
        fall: u32,
    ) -> Option<bool> {
        match result {
            Ok(()) => {
                self.consecutive_ok = self.consecutive_ok.saturating_add(1);
                self.consecutive_failed = 0;
                (!healthy && self.consecutive_ok >= rise).then_some(true)
            }
            Err(e) => {
                self.consecutive_failed = self.consecutive_failed.saturating_add(1);
                self.consecutive_ok = 0;
                self.last_error = Some(e.clone());
                (healthy && self.consecutive_failed >= fall).then_some(false)
            }
        }
    }
}

/// The probe counters of every origin, in pool order.
#[derive(Debug)]
pub struct HealthStates(Vec<Mutex<CheckState>>);

impl HealthStates {
    /// Counters for `n` origins, all at zero.
    pub fn new(n: usize) -> Self {
        Self((0..n).map(|_| Mutex::default()).collect())
    }

    /// A copy of the counters of origin `index`.
    pub fn get(&self, index: usize) -> Option<CheckState> {
        self.0
            .get(index)
            .map(|m| m.lock().unwrap_or_else(PoisonError::into_inner).clone())
    }

    fn update<T>(&self, index: usize, f: impl FnOnce(&mut CheckState) -> T) -> Option<T> {
        self.0
            .get(index)
            .map(|m| f(&mut m.lock().unwrap_or_else(PoisonError::into_inner)))
    }
}

/// What a probe asks and accepts.
#[derive(Clone, Debug)]
struct Probe {
    kind: HealthCheckKind,
    path: String,
    timeout: Duration,
    expected_status: Option<u16>,
}

impl Probe {
    /// Probes the origin at `addr`, sending `host` as its `Host` (HTTP checks).
    async fn run(&self, addr: SocketAddr, host: &str) -> Result<(), String> {
        match tokio::time::timeout(self.timeout, self.attempt(addr, host)).await {
            Ok(result) => result,
            Err(_) => Err(format!("no answer within {:?}", self.timeout)),
        }
    }

    async fn attempt(&self, addr: SocketAddr, host: &str) -> Result<(), String> {
        let mut stream = TcpStream::connect(addr).await.map_err(io_error)?;
        if self.kind == HealthCheckKind::Tcp {
            return Ok(());
        }
        let request = format!(
            "GET {} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: cdn-edge-health-check\r\nConnection: close\r\n\r\n",
            self.path
        );
        stream
            .write_all(request.as_bytes())
            .await
            .map_err(io_error)?;
        let mut buf = Vec::with_capacity(256);
        let mut chunk = [0u8; 256];
        while !buf.windows(2).any(|w| w == b"\r\n") && buf.len() < MAX_STATUS_LINE {
            let n = stream.read(&mut chunk).await.map_err(io_error)?;
            if n == 0 {
                break;
            }
            buf.extend_from_slice(&chunk[..n]);
        }
        if buf.is_empty() {
            return Err("connection closed without a response".into());
        }
        let status = parse_status_line(&buf)?;
        let good = match self.expected_status {
            Some(expected) => status == expected,
            None => (200..300).contains(&status),
        };
        if good {
            Ok(())
        } else {
            Err(match self.expected_status {
                Some(expected) => format!("status {status}, expected {expected}"),
                None => format!("status {status}, expected 2xx"),
            })
        }
    }
}

/// A short description of an I/O error ("connection refused").
fn io_error(e: std::io::Error) -> String {
    if e.raw_os_error().is_some() && e.kind() != std::io::ErrorKind::Other {
        e.kind().to_string()
    } else {
        e.to_string()
    }
}

/// The status code of an HTTP/1.x status line at the start of `buf` (`HTTP/1.1 200 OK\r\n`).
pub fn parse_status_line(buf: &[u8]) -> Result<u16, String> {
    let line = buf.split(|&b| b == b'\n').next().unwrap_or_default();
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let bad = || {
        let shown: String = String::from_utf8_lossy(&line[..line.len().min(40)])
            .trim_end()
            .chars()
            .map(|c| if c.is_control() { '?' } else { c })
            .collect();
        format!("not an HTTP/1.x status line: {shown:?}")
    };
    let mut parts = line.splitn(3, |&b| b == b' ');
    let version = parts.next().unwrap_or_default();
    let code = parts.next().unwrap_or_default();
    if !version.starts_with(b"HTTP/1.") || code.len() != 3 || !code.iter().all(u8::is_ascii_digit) {
        return Err(bad());
    }
    let status = code.iter().fold(0u16, |n, d| n * 10 + u16::from(d - b'0'));
    if (100..=599).contains(&status) {
        Ok(status)
    } else {
        Err(bad())
    }
}

/// The background service that probes the pool's origins.
pub struct HealthChecker {
    pool: Arc<OriginPool>,
    states: Arc<HealthStates>,
    metrics: Arc<EdgeMetrics>,
    probe: Probe,
    interval: Duration,
    rise: u32,
    fall: u32,
}

impl HealthChecker {
    /// A checker of `pool` by `config`, keeping its counters in `states` (one per origin).
    pub fn new(
        config: &HealthConfig,
        pool: Arc<OriginPool>,
        states: Arc<HealthStates>,
        metrics: Arc<EdgeMetrics>,
    ) -> Self {
        Self {
            pool,
            states,
            metrics,
            probe: Probe {
                kind: config.kind,
                path: config.path.clone(),
                timeout: config.timeout.get(),
                expected_status: config.expected_status,
            },
            interval: config.interval.get(),
            rise: config.rise.max(1),
            fall: config.fall.max(1),
        }
    }

    /// Probes every origin at once and applies the results.
    pub async fn round(&self) {
        let mut probes = tokio::task::JoinSet::new();
        for (index, origin) in self.pool.origins().iter().enumerate() {
            let probe = self.probe.clone();
            let addr = origin.addr;
            let host = origin.host.clone().unwrap_or_else(|| origin.name.clone());
            probes.spawn(async move { (index, probe.run(addr, &host).await) });
        }
        while let Some(done) = probes.join_next().await {
            if let Ok((index, result)) = done {
                self.apply(index, &result);
            }
        }
    }

    /// Counts one probe result of origin `index`, flipping its health on `rise`/`fall`.
    fn apply(&self, index: usize, result: &Result<(), String>) {
        let healthy = self
            .pool
            .balancer()
            .snapshot()
            .backends()
            .get(index)
            .is_some_and(|b| b.healthy);
        let (rise, fall) = (self.rise, self.fall);
        let flip = self
            .states
            .update(index, |s| s.record(result, healthy, rise, fall))
            .flatten();
        let Some(now_healthy) = flip else { return };
        self.pool.balancer().set_health(index, now_healthy);
        if now_healthy {
            // Checks have seen it recover: what the breaker and outlier detection learnt while
            // it was down is out of date (Envoy unejects on a good check too).
            self.pool.restored(index);
        }
        self.metrics.origin_health(index, now_healthy);
        let name = self.pool.origin(index).map_or("?", |o| o.name.as_str());
        match result {
            Ok(()) => tracing::info!("origin {name} up after {rise} good checks"),
            Err(e) => tracing::warn!("origin {name} down after {fall} failed checks: {e}"),
        }
    }
}

#[async_trait]
impl BackgroundService for HealthChecker {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        let mut ticks = tokio::time::interval(self.interval);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = shutdown.changed() => return,
                _ = ticks.tick() => {}
            }
            tokio::select! {
                _ = shutdown.changed() => return,
                () = self.round() => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_lines_parse_and_garbage_does_not_panic() {
        assert_eq!(parse_status_line(b"HTTP/1.1 200 OK\r\n"), Ok(200));
        assert_eq!(parse_status_line(b"HTTP/1.0 503 Busy\r\nx: y"), Ok(503));
        assert_eq!(parse_status_line(b"HTTP/1.1 204\r\n"), Ok(204));
        for garbage in [
            &b""[..],
            b"\r\n",
            b"HTTP/1.1",
            b"HTTP/1.1 ",
            b"HTTP/1.1 20",
            b"HTTP/1.1 2000 OK",
            b"HTTP/1.1 abc OK",
            b"HTTP/1.1 999 Nope",
            b"HTTP/2 200 OK",
            b"SSH-2.0-OpenSSH\r\n",
            b"\xff\xfe\x00 200 x",
        ] {
            assert!(parse_status_line(garbage).is_err(), "{garbage:?}");
        }
    }

    #[test]
    fn rise_and_fall_flip_health_once() {
        let mut s = CheckState::default();
        let fail = Err("connection refused".to_string());
        assert_eq!(s.record(&fail, true, 2, 2), None);
        assert_eq!(s.record(&fail, true, 2, 2), Some(false));
        assert_eq!(s.consecutive_failed, 2);
        assert_eq!(s.last_error.as_deref(), Some("connection refused"));
        // Already down: more failures change nothing.
        assert_eq!(s.record(&fail, false, 2, 2), None);
        assert_eq!(s.record(&Ok(()), false, 2, 2), None);
        assert_eq!(s.record(&fail, false, 2, 2), None, "a failure resets rise");
        assert_eq!(s.record(&Ok(()), false, 2, 2), None);
        assert_eq!(s.record(&Ok(()), false, 2, 2), Some(true));
        assert_eq!((s.consecutive_ok, s.consecutive_failed), (2, 0));
        assert_eq!(s.record(&Ok(()), true, 2, 2), None);
    }

    #[tokio::test]
    async fn probes_tell_good_from_bad() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let answers: [&[u8]; 3] = [
                b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n",
                b"HTTP/1.1 500 Oops\r\ncontent-length: 0\r\n\r\n",
                b"garbage",
            ];
            for answer in answers {
                let (mut s, _) = listener.accept().await.unwrap();
                let mut buf = [0u8; 512];
                let _ = s.read(&mut buf).await;
                let _ = s.write_all(answer).await;
            }
        });
        let probe = Probe {
            kind: HealthCheckKind::Http,
            path: "/health".into(),
            timeout: Duration::from_secs(2),
            expected_status: None,
        };
        assert_eq!(probe.run(addr, "h").await, Ok(()));
        assert_eq!(
            probe.run(addr, "h").await,
            Err("status 500, expected 2xx".into())
        );
        assert!(probe.run(addr, "h").await.is_err());
        // Nothing listens any more.
        let closed = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap()
        };
        let tcp = Probe {
            kind: HealthCheckKind::Tcp,
            ..probe
        };
        assert_eq!(tcp.run(closed, "h").await, Err("connection refused".into()));
    }
}
