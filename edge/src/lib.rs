//! The CDN edge: a caching reverse proxy built on Pingora.
//!
//! A request flows through the [`proxy::EdgeProxy`] phases in the order of DESIGN.md:
//! [`request_check`] → the request's [`route`] (its [`access_list`], [`rate_limit`] and
//! [`signed_url`] check, whose token parameters then leave the URI) → cache key ([`cache_key`])
//! → cache lookup in [`storage`] (moka, bounded in bytes, LRU or TinyLFU) → on a miss, one
//! origin fetch per key (pingora's cache lock) from the [`upstream`] pool (chosen by policy, retried on another origin by [`retry`]'s rules) →
//! [`freshness`] decides whether to store → the body streams to the client
//! and into storage at once → [`cache_status`] labels the response, [`metrics`] and
//! [`access_log`] record it. The [`admin`] API serves health, metrics and cache statistics,
//! [`purge`] and [`prewarm`].
//!
//! ```no_run
//! let config = cdn_config::Config::embedded_default().unwrap();
//! cdn_edge::Edge::new(config.edge.as_ref().unwrap()).run_forever();
//! ```

pub mod access_list;
pub mod access_log;
pub mod admin;
pub mod cache_key;
pub mod cache_status;
pub mod client_directives;
pub mod freshness;
pub mod health;
pub mod hop_by_hop;
pub mod invalidation;
pub mod metrics;
pub mod prewarm;
pub mod proxy;
pub mod purge;
pub mod rate_limit;
pub mod request_check;
pub mod retry;
pub mod route;
pub mod server;
pub mod signed_url;
pub mod storage;
pub mod upstream;
pub mod vary;

pub use server::Edge;
