//! The CDN edge: a caching reverse proxy built on Pingora.
//!
//! A request flows through the [`proxy::EdgeProxy`] phases in the order of DESIGN.md:
//! [`request_check`] → cache key ([`cache_key`]) → cache lookup in [`storage`] (moka, bounded in
//! bytes, LRU or TinyLFU) → on a miss, one origin fetch per key (pingora's cache lock) from the
//! [`upstream`] pool (chosen by policy, retried on another origin by [`retry`]'s rules) →
//! [`freshness`] decides whether to store → the body streams to the client
//! and into storage at once → [`cache_status`] labels the response, [`metrics`] and
//! [`access_log`] record it. The [`admin`] API serves health, metrics and cache statistics.
//!
//! ```no_run
//! let config = cdn_config::Config::embedded_default().unwrap();
//! cdn_edge::Edge::new(config.edge.as_ref().unwrap()).run_forever();
//! ```

pub mod access_log;
pub mod admin;
pub mod cache_key;
pub mod cache_status;
pub mod freshness;
pub mod health;
pub mod metrics;
pub mod proxy;
pub mod request_check;
pub mod retry;
pub mod server;
pub mod storage;
pub mod upstream;

pub use server::Edge;
