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
    /// The origins the edge fetches from (at least one). Requests are spread over them by
    /// `pool.policy`.
    #[serde(default)]
    pub origins: Vec<OriginConfig>,
    /// The cache: size, eviction, freshness defaults.
    #[serde(default)]
    pub cache: CacheConfig,
    /// Proxies (CIDRs) whose `X-Forwarded-For` names the client: with none, the client is the
    /// socket peer, whatever headers it sends. Default: `[]`.
    #[serde(default)]
    pub trusted_proxies: Vec<crate::Cidr>,
    /// Per host and path prefix: access lists, signed URLs, rate limits. Default: none.
    #[serde(default)]
    pub routes: Vec<crate::route::RouteConfig>,
    /// Filling the cache ahead of clients: `POST /prewarm` jobs and the start-up list.
    #[serde(default)]
    pub prewarm: PrewarmConfig,
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
                weight: 1,
                host: None,
            }],
            cache: CacheConfig::default(),
            trusted_proxies: Vec::new(),
            routes: Vec::new(),
            prewarm: PrewarmConfig::default(),
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
    /// Clients (CIDRs or addresses) that may call the endpoints that change state (`POST
    /// /purge`, `POST /prewarm`, every `POST`); others get 403. The read-only endpoints answer
    /// whoever reaches the listener. Default: `["127.0.0.0/8", "::1"]`.
    #[serde(default = "default_admin_allow")]
    pub allow: Vec<crate::Cidr>,
    /// Largest request body the admin API reads (a purge or prewarm list); a larger one gets
    /// 413. 1KiB to 1GiB. Default: `"4MiB"`.
    #[serde(default = "default_admin_max_body")]
    pub max_body: HumanSize,
}

impl Default for AdminConfig {
    fn default() -> Self {
        Self {
            listen: default_admin_listen(),
            allow: default_admin_allow(),
            max_body: default_admin_max_body(),
        }
    }
}

/// Prewarming: fetching URLs into the cache before clients ask for them, through the edge's
/// own proxy listener (so routes, caching rules and coalescing apply as for a client).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PrewarmConfig {
    /// Most prewarm fetches in flight at once, over every job together (1 to 1024).
    /// Default: `8`.
    #[serde(default = "default_prewarm_concurrency")]
    pub concurrency: u32,
    /// Bound on one prewarm fetch (connect, header and whole body); one that takes longer
    /// counts as failed. Default: `"60s"`.
    #[serde(default = "default_prewarm_timeout")]
    pub timeout: HumanDuration,
    /// URLs (`http://host/path?query`) prewarmed at start-up, as the job `startup`.
    /// Default: `[]`.
    #[serde(default)]
    pub urls: Vec<String>,
    /// A file of URLs prewarmed at start-up after `urls`: one per line, blank lines and lines
    /// starting with `#` skipped. Default: unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<std::path::PathBuf>,
}

impl Default for PrewarmConfig {
    fn default() -> Self {
        Self {
            concurrency: default_prewarm_concurrency(),
            timeout: default_prewarm_timeout(),
            urls: Vec::new(),
            file: None,
        }
    }
}

/// How the edge spreads requests over its origins, and how it talks to them: selection
/// policy, timeouts and retries, shared by every origin of the pool.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PoolConfig {
    /// Which origin a request goes to: `"round_robin"` (smooth weighted round robin),
    /// `"random"` (weighted random), `"least_conn"` (fewest requests in flight per unit of
    /// weight), `"p2c"` (power of two choices: the less loaded of two weighted random origins,
    /// load scaled by each origin's latency EWMA) or `"consistent_hash"` (a Ketama ring over
    /// `hash_key`: each origin sees a stable slice of the URL space). Default: `"round_robin"`.
    #[serde(default)]
    pub policy: PoolPolicy,
    /// What `consistent_hash` hashes: `"cache_key"` (the request's normalised URL, so each
    /// origin or parent cache holds its own slice of the objects) or `"client"` (the client's
    /// IP address: a client sticks to one origin). Ignored by the other policies.
    /// Default: `"cache_key"`.
    #[serde(default)]
    pub hash_key: HashKey,
    /// Ring points per unit of origin weight for `consistent_hash` (nginx uses 160); more
    /// points spread keys more evenly and cost memory. 1 to 1000. Default: `160`.
    #[serde(default = "default_vnodes")]
    pub vnodes: u32,
    /// Bounded loads for `consistent_hash` (Mirrokni et al.): a key whose origin already has
    /// `bounded_load ×` the average number of requests in flight goes to the next origin on
    /// the ring instead. At least 1.0, e.g. `1.25`. Unset: keys always go to their own origin.
    /// Default: unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bounded_load: Option<f64>,
    /// How long to wait for a TCP connection to an origin. Default: `"2s"`.
    #[serde(default = "default_connect_timeout")]
    pub connect_timeout: HumanDuration,
    /// How long to wait for each read from an origin (the response header, then each piece of
    /// body). Default: `"30s"`.
    #[serde(default = "default_read_timeout")]
    pub read_timeout: HumanDuration,
    /// Bound on a whole exchange with one origin (connect, response header, body). No single
    /// wait lasts longer than this, and the exchange is aborted when a piece of the response
    /// arrives after it. A response header that comes too late counts as a timeout (retried
    /// like one). Unset: no bound beyond `connect_timeout` and `read_timeout`. Default: unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total_timeout: Option<HumanDuration>,
    /// How long an idle keep-alive connection to an origin is kept for reuse. Default: `"60s"`.
    #[serde(default = "default_idle_timeout")]
    pub idle_timeout: HumanDuration,
    /// Tries per request, the first included (1 = never retry; at most 10). A request is
    /// retried only if its method is idempotent (never a `POST`), no byte of the response has
    /// reached the client, and the origin failed to connect, timed out or answered 502, 503 or
    /// 504; each retry goes to an origin not tried yet, after a short jittered back-off.
    /// Default: `3`.
    #[serde(default = "default_max_tries")]
    pub max_tries: u32,
    /// Share of the requests in flight that may be retries at once (0.0 to 1.0), so that a
    /// failing pool is not hit by a retry storm. At least 3 retries may always be in flight, so
    /// that retries still happen at low traffic. Default: `0.2`.
    #[serde(default = "default_retry_budget")]
    pub retry_budget: f64,
    /// `Host` header sent to every origin of the pool instead of the client's. Unset: the
    /// client's `Host` passes through (or an origin's own `host`). Default: unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// Active health checks of every origin of the pool.
    #[serde(default)]
    pub health: HealthConfig,
    /// The circuit breaker of each origin of the pool.
    #[serde(default)]
    pub breaker: BreakerConfig,
    /// Passive outlier detection: origins that fail several requests in a row are ejected.
    #[serde(default)]
    pub outlier: OutlierConfig,
}

impl Default for PoolConfig {
    fn default() -> Self {
        Self {
            policy: PoolPolicy::default(),
            hash_key: HashKey::default(),
            vnodes: default_vnodes(),
            bounded_load: None,
            connect_timeout: default_connect_timeout(),
            read_timeout: default_read_timeout(),
            total_timeout: None,
            idle_timeout: default_idle_timeout(),
            max_tries: default_max_tries(),
            retry_budget: default_retry_budget(),
            host: None,
            health: HealthConfig::default(),
            breaker: BreakerConfig::default(),
            outlier: OutlierConfig::default(),
        }
    }
}

/// The circuit breaker each origin of a pool has: it opens (the origin gets no requests) when
/// the failure rate over the last `window` requests reaches `failure_rate` (once `min_calls`
/// are in), or on `consecutive_failures` failures in a row; after `cool_down` it lets
/// `half_open_probes` probe requests through: as many successes close it, a failure opens it
/// again. A failure is a connect error, a timeout or a 5xx. Independently, `max_in_flight`
/// caps the requests an origin has at once (Envoy's "circuit breaker" on concurrency).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BreakerConfig {
    /// Whether the failure rules apply. Off: only `max_in_flight` does. Default: `true`.
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Requests in the sliding window whose failure rate is watched (1 to 10000).
    /// Default: `20`.
    #[serde(default = "default_breaker_window")]
    pub window: u32,
    /// Requests the window must hold before the failure rate counts (1 to `window`).
    /// Default: `10`.
    #[serde(default = "default_breaker_min_calls")]
    pub min_calls: u32,
    /// Failure share of the window that opens the breaker (above 0.0, at most 1.0).
    /// Default: `0.5`.
    #[serde(default = "default_breaker_failure_rate")]
    pub failure_rate: f64,
    /// Failures in a row that open the breaker whatever the rate; `0` turns this rule off.
    /// Default: `5`.
    #[serde(default = "default_consecutive_failures")]
    pub consecutive_failures: u32,
    /// How long an open breaker sends nothing to its origin. Default: `"10s"`.
    #[serde(default = "default_breaker_cool_down")]
    pub cool_down: HumanDuration,
    /// Probe requests let through at once after the cool-down; this many successes close the
    /// breaker (1 to 100). Default: `3`.
    #[serde(default = "default_half_open_probes")]
    pub half_open_probes: u32,
    /// Most requests in flight to one origin at once; an origin at its cap is skipped like
    /// an open one. `0`: no cap. Default: `1024`.
    #[serde(default = "default_max_in_flight")]
    pub max_in_flight: u32,
}

impl Default for BreakerConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            window: default_breaker_window(),
            min_calls: default_breaker_min_calls(),
            failure_rate: default_breaker_failure_rate(),
            consecutive_failures: default_consecutive_failures(),
            cool_down: default_breaker_cool_down(),
            half_open_probes: default_half_open_probes(),
            max_in_flight: default_max_in_flight(),
        }
    }
}

/// Passive outlier detection: an origin whose requests fail `consecutive_failures` times in a
/// row (connect errors, timeouts, 5xx) is ejected from the pool for `base_ejection` × the
/// number of times it was ejected (since it last stayed in for `max_ejection`), at most
/// `max_ejection`, and never more than `max_ejected_share` of the pool at once.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutlierConfig {
    /// Whether outliers are ejected. Default: `true`.
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Failures in a row that eject an origin (1 to 1000). Default: `5`.
    #[serde(default = "default_consecutive_failures")]
    pub consecutive_failures: u32,
    /// Length of a first ejection. Default: `"30s"`.
    #[serde(default = "default_base_ejection")]
    pub base_ejection: HumanDuration,
    /// Longest ejection (at least `base_ejection`). Default: `"300s"`.
    #[serde(default = "default_max_ejection")]
    pub max_ejection: HumanDuration,
    /// Largest share of the pool ejected at once, rounded down (0.0 to 1.0): `0.5` ejects
    /// one of two or three origins, two of four. Default: `0.5`.
    #[serde(default = "default_max_ejected_share")]
    pub max_ejected_share: f64,
}

impl Default for OutlierConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            consecutive_failures: default_consecutive_failures(),
            base_ejection: default_base_ejection(),
            max_ejection: default_max_ejection(),
            max_ejected_share: default_max_ejected_share(),
        }
    }
}

/// Active health checks: every `interval`, each origin is probed (all at once, each bounded by
/// `timeout`); `fall` failed probes in a row take it out of the pool, `rise` good ones in a row
/// bring it back. An origin starts healthy.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HealthConfig {
    /// Whether origins are probed. Off: every origin counts as healthy. Default: `false`.
    #[serde(default)]
    pub enabled: bool,
    /// `"http"` (a `GET` of `path`, good if the status is `expected_status`) or `"tcp"` (good
    /// if a TCP connection opens). Default: `"http"`.
    #[serde(default)]
    pub kind: HealthCheckKind,
    /// Path the HTTP check asks for (starts with `/`). Default: `"/"`.
    #[serde(default = "default_health_path")]
    pub path: String,
    /// Time between two rounds of probes. Default: `"1s"`.
    #[serde(default = "default_health_interval")]
    pub interval: HumanDuration,
    /// Bound on one probe (connect, request, status line). At most `interval`.
    /// Default: `"500ms"`.
    #[serde(default = "default_health_timeout")]
    pub timeout: HumanDuration,
    /// Good probes in a row that bring an unhealthy origin back (1 to 100). Default: `2`.
    #[serde(default = "default_rise_fall")]
    pub rise: u32,
    /// Failed probes in a row that take a healthy origin out (1 to 100). Default: `2`.
    #[serde(default = "default_rise_fall")]
    pub fall: u32,
    /// The status a good HTTP check answers (100 to 599). Unset: any 2xx. Default: unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expected_status: Option<u16>,
}

impl Default for HealthConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            kind: HealthCheckKind::default(),
            path: default_health_path(),
            interval: default_health_interval(),
            timeout: default_health_timeout(),
            rise: default_rise_fall(),
            fall: default_rise_fall(),
            expected_status: None,
        }
    }
}

/// How an origin is probed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HealthCheckKind {
    /// An HTTP/1.1 `GET` whose status must be the expected one.
    #[default]
    Http,
    /// A TCP connection that must open.
    Tcp,
}

/// How a pool chooses an origin.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PoolPolicy {
    /// Smooth weighted round robin.
    #[default]
    RoundRobin,
    /// Weighted random.
    Random,
    /// Fewest requests in flight per unit of weight, ties at random.
    LeastConn,
    /// Power of two choices, load weighed by latency.
    P2c,
    /// Consistent hashing of `hash_key` on a Ketama ring.
    ConsistentHash,
}

/// What consistent hashing hashes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HashKey {
    /// The request's cache key (normalised host, path and query).
    #[default]
    CacheKey,
    /// The client's IP address.
    Client,
}

/// One origin server.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OriginConfig {
    /// `IP:port` of the origin (plain HTTP/1.1). Required; each origin has its own.
    pub address: SocketAddr,
    /// Relative share of the requests (0 to 1000): an origin of weight 2 gets twice the
    /// requests of one of weight 1 (for `consistent_hash`, twice the keys). `0` drains it: it
    /// gets no requests. At least one origin needs a weight above 0. Default: `1`.
    #[serde(default = "default_weight")]
    pub weight: u32,
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
    /// Response headers whose values tag the stored response for `POST /purge` by tag (tags
    /// separated by spaces or commas; case-sensitive). Default: `["Surrogate-Key",
    /// "Cache-Tag"]`.
    #[serde(default = "default_tag_headers")]
    pub tag_headers: Vec<String>,
    /// Heuristic freshness (RFC 9111 section 4.2.2): a response with no explicit freshness but
    /// a `Last-Modified` is fresh for 10% of the time since then, for the status codes RFC 9111
    /// calls heuristically cacheable only. Default: `false`.
    #[serde(default)]
    pub heuristic_freshness: bool,
    /// Upper bound of a heuristic freshness lifetime. Default: `"1d"`.
    #[serde(default = "default_heuristic_max_ttl")]
    pub heuristic_max_ttl: HumanDuration,
    /// How long past its freshness a stored response may be served when the origin fails
    /// (refused or timed-out connection, 5xx), for responses without their own
    /// `stale-if-error` (RFC 5861). Never for `must-revalidate`, `proxy-revalidate`,
    /// `no-cache` or `s-maxage` responses. Default: `"0s"`.
    #[serde(default)]
    pub stale_if_error: HumanDuration,
    /// How long past its freshness a stored response may be served at once while one
    /// background request refreshes it, for responses without their own
    /// `stale-while-revalidate` (RFC 5861); same exceptions. Default: `"0s"`.
    #[serde(default)]
    pub stale_while_revalidate: HumanDuration,
}

impl Default for CacheConfig {
    fn default() -> Self {
        Self {
            max_size: default_max_size(),
            max_object_size: default_max_object_size(),
            eviction: Eviction::default(),
            default_ttl: HumanDuration::default(),
            lock_timeout: default_lock_timeout(),
            tag_headers: default_tag_headers(),
            heuristic_freshness: false,
            heuristic_max_ttl: default_heuristic_max_ttl(),
            stale_if_error: HumanDuration::default(),
            stale_while_revalidate: HumanDuration::default(),
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
fn default_admin_allow() -> Vec<crate::Cidr> {
    vec![
        crate::Cidr(ipnet::IpNet::V4(ipnet::Ipv4Net::new_assert(
            std::net::Ipv4Addr::new(127, 0, 0, 0),
            8,
        ))),
        crate::Cidr(ipnet::IpNet::from(std::net::IpAddr::V6(
            std::net::Ipv6Addr::LOCALHOST,
        ))),
    ]
}
fn default_admin_max_body() -> HumanSize {
    HumanSize::from_mib(4)
}
fn default_prewarm_concurrency() -> u32 {
    8
}
fn default_prewarm_timeout() -> HumanDuration {
    HumanDuration::from_secs(60)
}
fn default_tag_headers() -> Vec<String> {
    vec!["Surrogate-Key".to_string(), "Cache-Tag".to_string()]
}
fn default_connect_timeout() -> HumanDuration {
    HumanDuration::from_secs(2)
}
fn default_read_timeout() -> HumanDuration {
    HumanDuration::from_secs(30)
}
fn default_idle_timeout() -> HumanDuration {
    HumanDuration::from_secs(60)
}
fn default_vnodes() -> u32 {
    160
}
fn default_max_tries() -> u32 {
    3
}
fn default_retry_budget() -> f64 {
    0.2
}
fn default_health_path() -> String {
    "/".to_string()
}
fn default_health_interval() -> HumanDuration {
    HumanDuration::from_secs(1)
}
fn default_health_timeout() -> HumanDuration {
    HumanDuration::from_millis(500)
}
fn default_rise_fall() -> u32 {
    2
}
fn default_breaker_window() -> u32 {
    20
}
fn default_breaker_min_calls() -> u32 {
    10
}
fn default_breaker_failure_rate() -> f64 {
    0.5
}
fn default_consecutive_failures() -> u32 {
    5
}
fn default_breaker_cool_down() -> HumanDuration {
    HumanDuration::from_secs(10)
}
fn default_half_open_probes() -> u32 {
    3
}
fn default_max_in_flight() -> u32 {
    1024
}
fn default_base_ejection() -> HumanDuration {
    HumanDuration::from_secs(30)
}
fn default_max_ejection() -> HumanDuration {
    HumanDuration::from_secs(300)
}
fn default_max_ejected_share() -> f64 {
    0.5
}
fn default_weight() -> u32 {
    1
}
fn default_max_size() -> HumanSize {
    HumanSize::from_mib(512)
}
fn default_max_object_size() -> HumanSize {
    HumanSize::from_mib(64)
}
fn default_heuristic_max_ttl() -> HumanDuration {
    HumanDuration::from_secs(86_400)
}
fn default_lock_timeout() -> HumanDuration {
    HumanDuration::from_secs(5)
}
