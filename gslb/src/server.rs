//! Running the gslb: its sockets (several `SO_REUSEPORT` UDP sockets and a TCP listener per
//! address), the admin API (metrics, edge health, reload), and reloads on `SIGHUP` or
//! `POST /reload` that swap the state without touching the sockets.

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arc_swap::ArcSwap;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use cdn_config::{Config, GslbConfig, EMBEDDED_NAME};
use serde_json::json;
use socket2::{Domain, Socket, Type};

use crate::answer::{Gslb, SharedGslb};
use crate::handler::GslbHandler;
use crate::health::HealthChecker;
use crate::metrics::GslbMetrics;

/// How long an idle TCP connection is kept (RFC 7766 suggests seconds, not minutes).
const TCP_IDLE_TIMEOUT: Duration = Duration::from_secs(10);
/// Responses queued per TCP connection before its reader waits (pipelined queries).
const TCP_RESPONSE_BUFFER: usize = 32;
/// Kernel receive buffer asked for each UDP socket: bursts of queries wait there, not dropped.
const UDP_RECV_BUFFER: usize = 4 << 20;
/// Largest UDP datagram read (a query is far smaller; the rest is cut and fails to decode).
const UDP_READ_BUFFER: usize = 4096;

/// Where a reload reads the config from.
#[derive(Clone, Debug)]
pub enum ConfigSource {
    /// A config file, read again on each reload.
    File(PathBuf),
    /// The embedded default config (reloads re-read it: a no-op that still checks the path).
    Embedded,
}

impl ConfigSource {
    fn load(&self) -> Result<GslbConfig, String> {
        let (config, label) = match self {
            ConfigSource::File(path) => (Config::load(path), path.display().to_string()),
            ConfigSource::Embedded => (Config::embedded_default(), EMBEDDED_NAME.to_string()),
        };
        let config = config.map_err(|e| e.to_string())?;
        config
            .gslb
            .ok_or_else(|| format!("{label}: the new config has no [gslb] table"))
    }
}

/// The gslb's sockets, bound before it starts so that a taken port fails the command at once.
pub struct Sockets {
    udp: Vec<std::net::UdpSocket>,
    tcp: Vec<std::net::TcpListener>,
    admin: std::net::TcpListener,
}

fn udp_socket(addr: SocketAddr, reuse_port: bool) -> std::io::Result<std::net::UdpSocket> {
    let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, None)?;
    if addr.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    if reuse_port {
        socket.set_reuse_port(true)?;
    }
    // Best effort: the kernel caps it at net.core.rmem_max.
    let _ = socket.set_recv_buffer_size(UDP_RECV_BUFFER);
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    Ok(socket.into())
}

impl Sockets {
    /// Binds every listen address of `config` (UDP sockets, TCP listener) and the admin API.
    pub fn bind(config: &GslbConfig) -> Result<Sockets, String> {
        let per_address = if config.udp_sockets == 0 {
            std::thread::available_parallelism().map_or(2, |n| n.get())
        } else {
            config.udp_sockets
        };
        let mut udp = Vec::new();
        let mut tcp = Vec::new();
        for addr in &config.listen {
            let fail =
                |e: std::io::Error| format!("cannot start the gslb: cannot listen on {addr}: {e}");
            for _ in 0..per_address {
                udp.push(udp_socket(*addr, per_address > 1).map_err(fail)?);
            }
            let listener = std::net::TcpListener::bind(addr).map_err(fail)?;
            listener.set_nonblocking(true).map_err(fail)?;
            tcp.push(listener);
        }
        let admin = std::net::TcpListener::bind(config.admin_listen).map_err(|e| {
            format!(
                "cannot start the gslb admin API: cannot listen on {}: {e}",
                config.admin_listen
            )
        })?;
        admin
            .set_nonblocking(true)
            .map_err(|e| format!("cannot start the gslb admin API: {e}"))?;
        Ok(Sockets { udp, tcp, admin })
    }
}

/// Applies new configs to a running gslb.
struct Reloader {
    source: ConfigSource,
    state: SharedGslb,
    checker: Mutex<HealthChecker>,
    metrics: Arc<GslbMetrics>,
    /// Reloads one at a time (SIGHUP and the admin API may race).
    reloading: tokio::sync::Mutex<()>,
}

impl Reloader {
    /// Reads, checks and applies the config; on any error the running state is left alone.
    async fn reload(&self) -> Result<String, String> {
        let _one = self.reloading.lock().await;
        let result = self.apply();
        self.metrics.reload(result.is_ok());
        match &result {
            Ok(note) => tracing::info!("gslb config reloaded{note}"),
            Err(e) => tracing::error!("gslb config rejected, the previous one keeps serving:\n{e}"),
        }
        result
    }

    fn apply(&self) -> Result<String, String> {
        let config = self.source.load()?;
        let old = self.state.load_full();
        let new = Arc::new(Gslb::build(&config, &self.metrics, Some(&old))?);
        let checker = HealthChecker::start(Arc::clone(&new), Arc::clone(&self.metrics));
        self.state.store(Arc::clone(&new));
        *self.checker.lock().unwrap_or_else(|e| e.into_inner()) = checker;
        for gone in old
            .config()
            .edges
            .iter()
            .filter(|e| !config.edges.iter().any(|n| n.name == e.name))
        {
            self.metrics.forget_edge(&gone.name);
        }
        let running = old.config();
        let restart_only = running.listen != config.listen
            || running.udp_sockets != config.udp_sockets
            || running.admin_listen != config.admin_listen;
        Ok(if restart_only {
            " (listen addresses change only on restart: the sockets stay as they are)".into()
        } else {
            String::new()
        })
    }
}

/// Runs the gslb on `sockets` with `config` until `shutdown` completes. Reloads read `source`.
/// Must be called inside a multi-threaded tokio runtime.
pub async fn serve(
    sockets: Sockets,
    config: GslbConfig,
    source: ConfigSource,
    shutdown: impl Future<Output = ()>,
) -> Result<(), String> {
    let metrics = Arc::new(GslbMetrics::new());
    let gslb = Arc::new(Gslb::build(&config, &metrics, None)?);
    let checker = HealthChecker::start(Arc::clone(&gslb), Arc::clone(&metrics));
    let state: SharedGslb = Arc::new(ArcSwap::new(gslb));
    let handler = GslbHandler::new(Arc::clone(&state), Arc::clone(&metrics));

    let mut udp_tasks = Vec::new();
    for socket in sockets.udp {
        let socket = tokio::net::UdpSocket::from_std(socket)
            .map_err(|e| format!("cannot start the gslb: {e}"))?;
        #[cfg(target_os = "linux")]
        udp_tasks.push(tokio::spawn(crate::batch::serve_udp(
            socket,
            handler.clone(),
            UDP_READ_BUFFER,
            usize::from(crate::answer::UDP_PAYLOAD),
        )));
        #[cfg(not(target_os = "linux"))]
        udp_tasks.push(tokio::spawn(serve_udp(socket, handler.clone())));
    }
    let mut dns = hickory_server::Server::new(handler);
    for listener in sockets.tcp {
        let listener = tokio::net::TcpListener::from_std(listener)
            .map_err(|e| format!("cannot start the gslb: {e}"))?;
        dns.register_listener(listener, TCP_IDLE_TIMEOUT, TCP_RESPONSE_BUFFER);
    }

    let reloader = Arc::new(Reloader {
        source,
        state,
        checker: Mutex::new(checker),
        metrics,
        reloading: tokio::sync::Mutex::new(()),
    });
    let admin = tokio::net::TcpListener::from_std(sockets.admin)
        .map_err(|e| format!("cannot start the gslb admin API: {e}"))?;
    let router = Router::new()
        .route(
            "/healthz",
            get(|| async { axum::Json(json!({"status": "ok"})) }),
        )
        .route("/metrics", get(metrics_page))
        .route("/edges", get(edges_page))
        .route("/reload", post(reload_now))
        .with_state(Arc::clone(&reloader));
    let admin_task = tokio::spawn(async move {
        if let Err(e) = axum::serve(admin, router).await {
            tracing::error!("gslb admin API failed: {e}");
        }
    });
    let hangup_task = tokio::spawn(reload_on_hangup(Arc::clone(&reloader)));

    shutdown.await;
    for task in udp_tasks.iter().chain([&admin_task, &hangup_task]) {
        task.abort();
    }
    let _ = dns.shutdown_gracefully().await;
    Ok(())
}

/// One UDP socket's loop: read a datagram, answer it in place, send. No task per query.
/// (Linux batches the syscalls instead: [`crate::batch`].)
#[cfg(not(target_os = "linux"))]
async fn serve_udp(socket: tokio::net::UdpSocket, handler: GslbHandler) {
    let mut buf = vec![0u8; UDP_READ_BUFFER];
    let mut out = Vec::with_capacity(usize::from(crate::answer::UDP_PAYLOAD));
    loop {
        let (len, source) = match socket.recv_from(&mut buf).await {
            Ok(got) => got,
            Err(e) => {
                // ICMP errors from earlier sends surface here on Linux: not fatal.
                tracing::debug!("gslb udp receive: {e}");
                continue;
            }
        };
        if handler.answer_datagram(&buf[..len], source, &mut out) {
            if let Err(e) = socket.send_to(&out, source).await {
                tracing::debug!(%source, "gslb udp send: {e}");
            }
        }
    }
}

#[cfg(unix)]
async fn reload_on_hangup(reloader: Arc<Reloader>) {
    use tokio::signal::unix::{signal, SignalKind};
    let mut hangup = match signal(SignalKind::hangup()) {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!("gslb: cannot listen for SIGHUP, reload with POST /reload: {e}");
            return;
        }
    };
    while hangup.recv().await.is_some() {
        let _ = reloader.reload().await;
    }
}

#[cfg(not(unix))]
async fn reload_on_hangup(_reloader: Arc<Reloader>) {}

async fn metrics_page(State(reloader): State<Arc<Reloader>>) -> Response {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        reloader.metrics.render(),
    )
        .into_response()
}

async fn edges_page(State(reloader): State<Arc<Reloader>>) -> Response {
    let report = reloader
        .checker
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .report();
    axum::Json(report).into_response()
}

async fn reload_now(State(reloader): State<Arc<Reloader>>) -> Response {
    match reloader.reload().await {
        Ok(note) => axum::Json(json!({"reloaded": true, "note": note})).into_response(),
        Err(error) => (
            StatusCode::BAD_REQUEST,
            axum::Json(json!({"reloaded": false, "error": error})),
        )
            .into_response(),
    }
}
