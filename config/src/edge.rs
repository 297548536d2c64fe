//! The `[edge]` table: one caching reverse proxy, its listeners, its origins and its cache.

use crate::units::{HumanDuration, HumanSize};
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;

/// One edge: an HTTP reverse-proxy cache in front of an origin pool.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EdgeConfig {
    /// The cache's name in `Cache-Status` response headers (RFC 9211), e.g.
    /// `Cache-Status: cdn-edge; hit; ttl=57`. Default: `"cdn-edge"`.
    #[serde(default = "default_name")]
    pub name: String,
    /// Addresses the edge serves HTTP on. Default: `["127.0.0.1:8080"]`.
    #[serde(default = "default_listen")]
    pub listen: Vec<SocketAddr>,
    /// Worker threads for the proxy. `0` means one per CPU core. Default: `0`.
    #[serde(default)]
    pub threads: usize,
    /// Whether each request is logged (method, path, status, cache status, bytes, times) at
    /// info level on the `access` target. Default: `true`.
    #[serde(default = "yes")]
    pub access_log: bool,
    /// On SIGTERM, how long the edge keeps serving requests already in flight before it stops
    /// (whole seconds, rounded up). Default: `"1s"`.
    #[serde(default = "default_shutdown_grace")]
    pub shutdown_grace: HumanDuration,
    /// The admin API: health, metrics, cache statistics.
    #[serde(default)]
    pub admin: AdminConfig,
    /// How the edge talks to its origins.
    #[serde(default)]
    pub pool: PoolConfig,
    /// The origins the edge fetches from (at least one). Requests are spread over them in turn.
    #[serde(default)]
    pub origins: Vec<OriginConfig>,
    /// The cache: size, eviction, freshness defaults.
    #[serde(default)]
    pub cache: CacheConfig,
}

impl Default for EdgeConfig {
    fn default() -> Self {
        Self {
            name: default_name(),
            listen: default_listen(),
            threads: 0,
            access_log: true,
            shutdown_grace: default_shutdown_grace(),
            admin: AdminConfig::default(),
            pool: PoolConfig::default(),
            origins: vec![OriginConfig {
                address: crate::DEFAULT_ORIGIN_MOCK_LISTEN,
                host: None,
            }],
            cache: CacheConfig::default(),
        }
    }
}

/// The edge's admin listener.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminConfig {
    /// Address of the admin API (`/healthz`, `/metrics`, `/cache/stats`). Keep it on a private
    /// or loopback address. Default: `"127.0.0.1:9080"`.
    #[serde(default = "default_admin_listen")]
    pub listen: SocketAddr,
}

impl Default for AdminConfig {
    fn default() -> Self {
        Self {
            listen: default_admin_listen(),
        }
    }
}

/// Connection settings shared by every origin of the pool.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PoolConfig {
    /// How long to wait for a TCP connection to an origin. Default: `"2s"`.
    #[serde(default = "default_connect_timeout")]
    pub connect_timeout: HumanDuration,
    /// How long to wait for each read from an origin (the response header, then each piece of
    /// body). Default: `"30s"`.
    #[serde(default = "default_read_timeout")]
    pub read_timeout: HumanDuration,
    /// `Host` header sent to every origin of the pool instead of the client's. Unset: the
    /// client's `Host` passes through (or an origin's own `host`). Default: unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
}

impl Default for PoolConfig {
    fn default() -> Self {
        Self {
            connect_timeout: default_connect_timeout(),
            read_timeout: default_read_timeout(),
            host: None,
        }
    }
}

/// One origin server.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OriginConfig {
    /// `IP:port` of the origin (plain HTTP/1.1). Required.
    pub address: SocketAddr,
    /// `Host` header for this origin, overriding the pool's and the client's. Default: unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
}

/// The cache of one edge.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CacheConfig {
    /// Upper bound of the bytes the cache holds (bodies and headers). Default: `"512MiB"`.
    #[serde(default = "default_max_size")]
    pub max_size: HumanSize,
    /// Responses larger than this pass through uncached. At most `max_size` and 4 TiB.
    /// Default: `"64MiB"`.
    #[serde(default = "default_max_object_size")]
    pub max_object_size: HumanSize,
    /// Which entries go when the cache is full: `"lru"` (least recently used) or `"lfu"` (least
    /// frequently used: TinyLFU admission, which resists scans). Default: `"lfu"`.
    #[serde(default)]
    pub eviction: Eviction,
    /// Freshness lifetime for cacheable responses that carry no freshness information
    /// (`Cache-Control: max-age`/`s-maxage` or `Expires`). `"0s"` stores nothing without it, as
    /// RFC 9111 says. Default: `"0s"`.
    #[serde(default)]
    pub default_ttl: HumanDuration,
    /// How long a request waits for another request's in-flight fetch of the same object
    /// before going to the origin itself. Default: `"5s"`.
    #[serde(default = "default_lock_timeout")]
    pub lock_timeout: HumanDuration,
}

impl Default for CacheConfig {
    fn default() -> Self {
        Self {
            max_size: default_max_size(),
            max_object_size: default_max_object_size(),
            eviction: Eviction::default(),
            default_ttl: HumanDuration::default(),
            lock_timeout: default_lock_timeout(),
        }
    }
}

/// The eviction policy of a cache.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Eviction {
    /// Least recently used.
    Lru,
    /// Least frequently used (TinyLFU admission over an LRU), resistant to one-off scans.
    #[default]
    Lfu,
}

fn yes() -> bool {
    true
}
fn default_shutdown_grace() -> HumanDuration {
    HumanDuration::from_secs(1)
}
fn default_name() -> String {
    "cdn-edge".to_string()
}
fn default_listen() -> Vec<SocketAddr> {
    vec![crate::DEFAULT_EDGE_LISTEN]
}
fn default_admin_listen() -> SocketAddr {
    crate::DEFAULT_ADMIN_LISTEN
}
fn default_connect_timeout() -> HumanDuration {
    HumanDuration::from_secs(2)
}
fn default_read_timeout() -> HumanDuration {
    HumanDuration::from_secs(30)
}
fn default_max_size() -> HumanSize {
    HumanSize::from_mib(512)
}
fn default_max_object_size() -> HumanSize {
    HumanSize::from_mib(64)
}
fn default_lock_timeout() -> HumanDuration {
    HumanDuration::from_secs(5)
}
