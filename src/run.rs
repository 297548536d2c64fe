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
pub(crate) const USAGE: u8 = 2;
/// Exit status for failures at run time (a port in use, ...).
pub(crate) const RUNTIME: u8 = 1;

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
            // hickory-server logs every DNS request at info: that halves the gslb's throughput.
            "info,pingora_core=warn,pingora_proxy=warn,pingora_cache=warn,pingora=warn,hickory_server=warn",
        )
    });
    // Colours only for a terminal: a log file or a pipe gets plain text.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr())
        && std::env::var_os("NO_COLOR").is_none();
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(ansi)
        .try_init();
}

/// `cdn bench …`: the bench crate runs it; usage errors exit 2 like every bad flag.
pub fn bench(command: cdn_bench::cli::BenchCommand) -> Result<(), Failure> {
    cdn_bench::cli::run(command).map_err(|e| Failure {
        code: if e.usage { USAGE } else { RUNTIME },
        message: format!("cdn bench: {e}"),
    })
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
    // The tables added with the gslb are listed after the first two, so that the line for a
    // plain edge config reads as it always did.
    let mut added = Vec::new();
    if !config.more_edges.is_empty() {
        added.push("more_edges");
    }
    if config.gslb.is_some() {
        added.push("gslb");
    }
    if parts.is_empty() {
        parts = std::mem::take(&mut added);
    }
    let added = if added.is_empty() {
        String::new()
    } else {
        format!(" + {}", added.join(", "))
    };
    println!("{}: ok ({}){added}", file.display(), parts.join(", "));
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

/// `cdn gslb --config FILE`: the gslb alone, until SIGTERM or Ctrl-C; SIGHUP reloads FILE.
pub fn gslb(file: &Path) -> Result<(), Failure> {
    let config = Config::load(file)?;
    let gslb = config.require_gslb(file)?.clone();
    let sockets = cdn_gslb::Sockets::bind(&gslb).map_err(runtime)?;
    tracing::info!(listen = ?gslb.listen, admin = %gslb.admin_listen, "gslb starting");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| runtime(format!("cannot start the async runtime: {e}")))?;
    rt.block_on(cdn_gslb::serve(
        sockets,
        gslb,
        cdn_gslb::ConfigSource::File(file.to_path_buf()),
        shutdown_signal(),
    ))
    .map_err(runtime)
}

/// Starts the gslb on its own thread and runtime. `stop` ends it (pending when the edge's
/// server owns the signals and exits the process).
fn spawn_gslb(
    sockets: cdn_gslb::Sockets,
    gslb: cdn_config::GslbConfig,
    source: cdn_gslb::ConfigSource,
    own_signals: bool,
) -> Result<std::thread::JoinHandle<()>, Failure> {
    std::thread::Builder::new()
        .name("gslb".into())
        .spawn(move || {
            let rt = match tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    tracing::error!("gslb: cannot start its runtime: {e}");
                    return;
                }
            };
            let stop = async move {
                if own_signals {
                    shutdown_signal().await
                } else {
                    std::future::pending::<()>().await
                }
            };
            if let Err(e) = rt.block_on(cdn_gslb::serve(sockets, gslb, source, stop)) {
                tracing::error!("gslb failed: {e}");
            }
        })
        .map_err(|e| runtime(format!("cannot start the gslb: {e}")))
}

/// What `cdn sign` was asked for.
pub struct SignArgs {
    pub config: Option<PathBuf>,
    pub url: String,
    pub kid: String,
    pub ttl: String,
    pub ip: Option<std::net::IpAddr>,
    pub acl: Option<String>,
}

/// `cdn sign URL --kid K --ttl T [--ip A] [--acl PREFIX] [--config FILE]`: prints the URL
/// signed with the key of the route that covers it.
pub fn sign(args: SignArgs) -> Result<(), Failure> {
    let config = match &args.config {
        Some(f) => Config::load(f)?,
        None => Config::embedded_default()?,
    };
    let label = args
        .config
        .as_ref()
        .map_or_else(|| EMBEDDED_NAME.to_string(), |f| f.display().to_string());
    let routes = config.edge.as_ref().map_or(&[][..], |e| &e.routes[..]);
    // A bare number is seconds, as in `--ttl 60`.
    let ttl = match args.ttl.trim().parse::<u64>() {
        Ok(secs) => secs,
        Err(_) => args
            .ttl
            .parse::<cdn_config::HumanDuration>()
            .map(|d| d.get().as_secs())
            .map_err(|e| Failure {
                message: format!("--ttl: {e}"),
                code: USAGE,
            })?,
    };
    let now = cdn_edge::signed_url::unix_now();
    let url = cdn_edge::signed_url::sign_for_route(
        routes,
        &args.url,
        &args.kid,
        ttl,
        args.ip,
        args.acl.as_deref(),
        now,
    )
    .map_err(|e| Failure {
        message: format!("cannot sign with {label}: {e}"),
        code: USAGE,
    })?;
    println!("{url}");
    Ok(())
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
        ..Config::default()
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
    let edges = config.edges();
    for edge in &edges {
        check_edge_bindable(edge)?;
    }
    let mut started = Vec::new();
    let mut gslb_thread = None;
    if let Some(gslb) = config.gslb.clone() {
        let sockets = cdn_gslb::Sockets::bind(&gslb).map_err(runtime)?;
        let source = match file {
            Some(f) => cdn_gslb::ConfigSource::File(f.to_path_buf()),
            None => cdn_gslb::ConfigSource::Embedded,
        };
        let dns = gslb
            .listen
            .first()
            .map_or_else(String::new, |a| a.to_string());
        started.push(format!(
            "  gslb         dns://{dns} (UDP and TCP)  (admin API http://{})",
            gslb.admin_listen
        ));
        gslb_thread = Some(spawn_gslb(sockets, gslb, source, config.edge.is_none())?);
    }
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
        if let Some(thread) = gslb_thread {
            println!("cdn: running from {label}\n{}", started.join("\n"));
            let _ = thread.join();
        }
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
    for more in edges.iter().skip(1) {
        started.push(format!(
            "  edge         http://{}  (admin API http://{})",
            more.listen
                .first()
                .map_or_else(String::new, |a| a.to_string()),
            more.admin.listen
        ));
    }
    let admin = edge.admin.listen;
    let url = format!("http://{listen}/bytes/1024?cc=max-age=60");
    let dig = config.gslb.as_ref().and_then(|g| {
        let dns = g.listen.first()?;
        let name = g.zones.first()?.cdn_names.iter().find(|n| !n.starts_with('*'))?;
        Some(format!(
            "\n  dig @{} -p {} {name}                          # the edge nearest to you\n  dig @{} -p {} {name} +subnet=192.0.2.0/24   # for a client in 192.0.2.0/24",
            dns.ip(),
            dns.port(),
            dns.ip(),
            dns.port()
        ))
    });
    println!(
        "cdn: running from {label}\n{}\n\nTry:\n  curl -si '{url}' | grep -i cache-status   # a miss: fetched from the origin and stored\n  curl -si '{url}' | grep -i cache-status   # a hit: served from the cache\n  curl -s http://{admin}/metrics | grep cdn_edge_requests_total{}\n\nCtrl-C or SIGTERM stops everything.",
        started.join("\n"),
        dig.unwrap_or_default()
    );
    // Every edge is a pingora server of its own; each handles SIGTERM, and the first to finish
    // exits the process with everything in it.
    for more in edges.into_iter().skip(1) {
        let name = more.name.clone();
        std::thread::Builder::new()
            .name(format!("edge {name}"))
            .spawn(move || cdn_edge::Edge::new(&more).run_forever())
            .map_err(|e| runtime(format!("cannot start edge {name}: {e}")))?;
    }
    cdn_edge::Edge::new(edge).run_forever()
}
