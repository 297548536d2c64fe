//! origin-mock: a real HTTP/1.1 origin for the CDN's tests, demos and
//! benchmarks.
//!
//! * `GET|HEAD /bytes/{n}` serves `n` deterministic bytes (see
//!   [`body_bytes`]), streamed in 64 KiB chunks.
//! * Any other path serves `origin-mock: {path}\n` as `text/plain`, for any
//!   method.
//! * Query parameters shape the response: `cc=`, `status=`, `delay_ms=`,
//!   `etag=`, `last_modified=`, `vary=`, `set_cookie=`, `expires=`, `age=`,
//!   `date=`, `header=Name:Value` (repeatable) and `body=`.
//! * Failure shapes: `chunked=1` sends the body without `Content-Length`;
//!   `abort_after=N` announces the whole body, sends `N` bytes, then drops the
//!   connection (an origin dying mid-body).
//! * Conditional requests (`If-None-Match`, `If-Modified-Since`) get 304, and
//!   single byte ranges get 206/416 (`If-Range` honoured).
//! * `GET /__stats` reports request counts as JSON and `POST /__reset`
//!   zeroes them.

#![deny(missing_docs)]

mod behaviour;
mod body;
mod conditional;
mod control;
mod range;
mod respond;
mod stats;

use std::future::{Future, IntoFuture};
use std::sync::Arc;
use std::time::Duration;

use axum::routing::{get, post};
use axum::serve::ListenerExt;
use axum::Router;

pub use body::body_bytes;

/// How long in-flight responses may finish after shutdown is requested.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// Behaviour set for the whole server (from config or flags).
#[derive(Clone, Debug, Default)]
pub struct MockOptions {
    /// Share of requests (0.0..=1.0) answered with an injected 500.
    pub fail_rate: f64,
    /// Delay added before every response (on top of any `delay_ms=`).
    pub delay: Duration,
}

/// State shared by all handlers of one router.
#[derive(Debug)]
struct Shared {
    options: MockOptions,
    stats: stats::Stats,
}

/// The origin-mock axum Router, with its own fresh request counters, so
/// tests can mount it or serve it themselves.
pub fn router(options: MockOptions) -> Router {
    let shared = Arc::new(Shared {
        options,
        stats: stats::Stats::default(),
    });
    Router::new()
        .route("/__stats", get(control::stats))
        .route("/__reset", post(control::reset))
        .fallback(respond::mock)
        .with_state(shared)
}

/// Serves origin-mock on `listener` until `shutdown` completes (or this
/// future is dropped).
///
/// After `shutdown` completes, idle connections are closed and in-flight
/// responses get a few seconds to finish.
pub async fn serve(
    listener: tokio::net::TcpListener,
    options: MockOptions,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let listener = listener.tap_io(|tcp| {
        if let Err(err) = tcp.set_nodelay(true) {
            tracing::trace!("origin-mock: set_nodelay failed: {err}");
        }
    });
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = axum::serve(listener, router(options))
        .with_graceful_shutdown(async move {
            let _ = stopped.await;
        })
        .into_future();
    tokio::pin!(server);
    tokio::select! {
        result = &mut server => return result,
        () = shutdown => {}
    }
    let _ = stop.send(());
    match tokio::time::timeout(SHUTDOWN_GRACE, server).await {
        Ok(result) => result,
        Err(_) => {
            tracing::debug!("origin-mock: shutdown grace period over");
            Ok(())
        }
    }
}
