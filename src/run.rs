//! Starting the parts of the CDN that the command line asked for.

use cdn_config::{Config, ConfigErrors, OriginMockConfig, EMBEDDED_NAME};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// Why a command failed: the message for stderr and the exit status.
pub struct Failure {
    pub message: String,
    pub code: u8,
}

/// Exit status for user errors: bad flags, bad config (clap uses 2 too).
const USAGE: u8 = 2;
/// Exit status for failures at run time (a port in use, ...).
const RUNTIME: u8 = 1;

impl From<ConfigErrors> for Failure {
    fn from(e: ConfigErrors) -> Self {
        Failure {
            message: format!("config error:\n{e}"),
            code: USAGE,
        }
    }
}

fn runtime(message: String) -> Failure {
    Failure {
        message,
        code: RUNTIME,
    }
}

/// Logs go to stderr; `RUST_LOG` overrides the default (info for ours, warnings for pingora).
pub fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new(
            "info,pingora_core=warn,pingora_proxy=warn,pingora_cache=warn,pingora=warn",
        )
    });
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

/// `cdn config check FILE`.
pub fn config_check(file: &Path) -> Result<(), Failure> {
    let config = Config::load(file)?;
    let mut parts = Vec::new();
    if config.origin_mock.is_some() {
        parts.push("origin_mock");
    }
    if config.edge.is_some() {
        parts.push("edge");
    }
    println!("{}: ok ({})", file.display(), parts.join(", "));
    Ok(())
}

/// Fails early, with the address and the reason, when a listen address cannot be bound.
fn check_bindable(what: &str, addr: SocketAddr) -> Result<(), Failure> {
    std::net::TcpListener::bind(addr)
        .map(drop)
        .map_err(|e| runtime(format!("cannot start {what}: cannot listen on {addr}: {e}")))
}

fn check_edge_bindable(edge: &cdn_config::EdgeConfig) -> Result<(), Failure> {
    for addr in &edge.listen {
        check_bindable("the edge", *addr)?;
    }
    check_bindable("the edge admin API", edge.admin.listen)
}

/// `cdn edge --config FILE`.
pub fn edge(file: &Path) -> Result<(), Failure> {
    let config = Config::load(file)?;
    let edge = config.require_edge(file)?;
    check_edge_bindable(edge)?;
    tracing::info!(listen = ?edge.listen, admin = %edge.admin.listen, "edge starting");
    cdn_edge::Edge::new(edge).run_forever()
}

/// What `cdn origin` was asked for.
pub struct OriginRequest {
    pub config: Option<PathBuf>,
    pub listen: Option<SocketAddr>,
    pub fail_rate: Option<f64>,
    pub delay: Option<cdn_config::HumanDuration>,
}

/// `cdn origin (--config FILE | --listen ADDR)`.
pub fn origin(req: OriginRequest) -> Result<(), Failure> {
    let mut mock = match (&req.config, req.listen) {
        (Some(file), _) => Config::load(file)?.require_origin_mock(file)?.clone(),
        (None, Some(listen)) => OriginMockConfig {
            listen,
            ..OriginMockConfig::default()
        },
        (None, None) => OriginMockConfig::default(),
    };
    if let Some(rate) = req.fail_rate {
        mock.fail_rate = rate;
    }
    if let Some(delay) = req.delay {
        mock.delay = delay;
    }
    let checked = Config {
        origin_mock: Some(mock.clone()),
        edge: None,
    };
    let label = req
        .config
        .clone()
        .unwrap_or_else(|| PathBuf::from("<command line>"));
    checked.validate(&label)?;
    let runtime_ = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| runtime(format!("cannot start the async runtime: {e}")))?;
    runtime_.block_on(async move {
        let listener = bind_origin(&mock).await?;
        tracing::info!(listen = %mock.listen, "origin-mock serving");
        origin_mock::serve(listener, origin_options(&mock), shutdown_signal())
            .await
            .map_err(|e| runtime(format!("origin-mock failed: {e}")))
    })
}

fn origin_options(mock: &OriginMockConfig) -> origin_mock::MockOptions {
    origin_mock::MockOptions {
        fail_rate: mock.fail_rate,
        delay: mock.delay.get(),
    }
}

async fn bind_origin(mock: &OriginMockConfig) -> Result<tokio::net::TcpListener, Failure> {
    tokio::net::TcpListener::bind(mock.listen)
        .await
        .map_err(|e| {
            runtime(format!(
                "cannot start origin-mock: cannot listen on {}: {e}",
                mock.listen
            ))
        })
}

/// Completes on SIGTERM or Ctrl-C.
async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = ctrl_c => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = ctrl_c.await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}

/// `cdn` with no subcommand: every part of the config (the embedded default unless a file is
/// given), in one process. The edge's pingora server owns the signals: on SIGTERM or Ctrl-C it
/// stops, and the process exits with everything in it.
pub fn local_cdn(file: Option<&Path>) -> Result<(), Failure> {
    let (config, label) = match file {
        Some(f) => (Config::load(f)?, f.display().to_string()),
        None => (Config::embedded_default()?, EMBEDDED_NAME.to_string()),
    };
    if let Some(edge) = &config.edge {
        check_edge_bindable(edge)?;
    }
    let mut started = Vec::new();
    if let Some(mock) = config.origin_mock.clone() {
        let std_listener = std::net::TcpListener::bind(mock.listen).map_err(|e| {
            runtime(format!(
                "cannot start origin-mock: cannot listen on {}: {e}",
                mock.listen
            ))
        })?;
        std_listener
            .set_nonblocking(true)
            .map_err(|e| runtime(format!("cannot start origin-mock: {e}")))?;
        let options = origin_options(&mock);
        let edge_owns_signals = config.edge.is_some();
        let thread = std::thread::Builder::new()
            .name("origin-mock".into())
            .spawn(move || {
                let rt = match tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(1)
                    .enable_all()
                    .build()
                {
                    Ok(rt) => rt,
                    Err(e) => {
                        tracing::error!("origin-mock: cannot start its runtime: {e}");
                        return;
                    }
                };
                rt.block_on(async move {
                    let listener = match tokio::net::TcpListener::from_std(std_listener) {
                        Ok(l) => l,
                        Err(e) => {
                            tracing::error!("origin-mock: {e}");
                            return;
                        }
                    };
                    let stop = async move {
                        if edge_owns_signals {
                            std::future::pending::<()>().await
                        } else {
                            shutdown_signal().await
                        }
                    };
                    if let Err(e) = origin_mock::serve(listener, options, stop).await {
                        tracing::error!("origin-mock failed: {e}");
                    }
                });
            });
        let thread = thread.map_err(|e| runtime(format!("cannot start origin-mock: {e}")))?;
        started.push(format!("  origin-mock  http://{}", mock.listen));
        if config.edge.is_none() {
            println!("cdn: running from {label}\n{}", started.join("\n"));
            let _ = thread.join();
            return Ok(());
        }
    }
    let Some(edge) = &config.edge else {
        return Ok(());
    };
    let listen = edge
        .listen
        .first()
        .map_or_else(String::new, |a| a.to_string());
    started.push(format!(
        "  edge         http://{listen}  (admin API http://{})",
        edge.admin.listen
    ));
    let admin = edge.admin.listen;
    let url = format!("http://{listen}/bytes/1024?cc=max-age=60");
    println!(
        "cdn: running from {label}\n{}\n\nTry:\n  curl -si '{url}' | grep -i cache-status   # a miss: fetched from the origin and stored\n  curl -si '{url}' | grep -i cache-status   # a hit: served from the cache\n  curl -s http://{admin}/metrics | grep cdn_edge_requests_total\n\nCtrl-C or SIGTERM stops everything.",
        started.join("\n")
    );
    cdn_edge::Edge::new(edge).run_forever()
}
