//! What serde cannot check: values that must fit together.

use crate::{Config, EdgeConfig, PoolPolicy};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

/// Objects above this cannot be weighed by the cache (moka weighs in `u32` units of 1 KiB).
const MAX_OBJECT_SIZE_LIMIT: u64 = (u32::MAX as u64) << 10;

/// Most tries per request (`edge.pool.max_tries`).
const MAX_TRIES: u32 = 10;
/// Largest origin weight (`edge.origins[].weight`).
const MAX_WEIGHT: u32 = 1000;
/// Most ring points per weight unit (`edge.pool.vnodes`).
const MAX_VNODES: u32 = 1000;
/// Most points on a consistent-hash ring (`vnodes` × total weight): 8 bytes each.
const MAX_RING_POINTS: u64 = 1_000_000;

/// Most probes in a row for `edge.pool.health.rise` and `fall`.
const MAX_RISE_FALL: u32 = 100;

/// Every problem as `(field path, message)`.
pub(crate) fn problems(config: &Config) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut listeners: Vec<(String, SocketAddr)> = Vec::new();

    if let Some(mock) = &config.origin_mock {
        if !(0.0..=1.0).contains(&mock.fail_rate) || mock.fail_rate.is_nan() {
            out.push((
                "origin_mock.fail_rate".into(),
                format!("must be between 0.0 and 1.0, got {}", mock.fail_rate),
            ));
        }
        listeners.push(("origin_mock.listen".into(), mock.listen));
    }
    if let Some(edge) = &config.edge {
        edge_problems(edge, &mut out);
        for (i, addr) in edge.listen.iter().enumerate() {
            listeners.push((format!("edge.listen[{i}]"), *addr));
        }
        listeners.push(("edge.admin.listen".into(), edge.admin.listen));
    }
    if config.origin_mock.is_none() && config.edge.is_none() {
        out.push((
            String::new(),
            "nothing to run: the file has neither [edge] nor [origin_mock]".into(),
        ));
    }

    let mut seen: HashMap<SocketAddr, &str> = HashMap::new();
    for (field, addr) in &listeners {
        if let Some(first) = seen.get(addr) {
            out.push((
                field.clone(),
                format!("{addr} is already used by {first}: every listener needs its own port"),
            ));
        } else {
            seen.insert(*addr, field);
        }
    }
    out
}

fn edge_problems(edge: &EdgeConfig, out: &mut Vec<(String, String)>) {
    if edge.name.is_empty() || !edge.name.bytes().all(is_token_char) {
        out.push((
            "edge.name".into(),
            format!(
                "{:?} is not a valid cache name: use letters, digits and - . _ (it appears in Cache-Status headers)",
                edge.name
            ),
        ));
    }
    if edge.listen.is_empty() {
        out.push((
            "edge.listen".into(),
            "no listen address: the edge needs at least one".into(),
        ));
    }
    if edge.threads > 1024 {
        out.push((
            "edge.threads".into(),
            format!(
                "{} threads is too many (at most 1024; 0 means one per core)",
                edge.threads
            ),
        ));
    }
    if edge.origins.is_empty() {
        out.push((
            "edge.origins".into(),
            "no origins: add at least one [[edge.origins]] with an address".into(),
        ));
    }
    for (field, host) in std::iter::once(("edge.pool.host".to_string(), &edge.pool.host)).chain(
        edge.origins
            .iter()
            .enumerate()
            .map(|(i, o)| (format!("edge.origins[{i}].host"), &o.host)),
    ) {
        if let Some(host) = host {
            if host.is_empty() || !host.bytes().all(is_host_char) {
                out.push((field, format!("{host:?} is not a valid Host header value")));
            }
        }
    }
    pool_problems(edge, out);
    if edge.pool.connect_timeout.get().is_zero() {
        out.push((
            "edge.pool.connect_timeout".into(),
            "must be more than 0s".into(),
        ));
    }
    if edge.pool.read_timeout.get().is_zero() {
        out.push((
            "edge.pool.read_timeout".into(),
            "must be more than 0s".into(),
        ));
    }
    let cache = &edge.cache;
    if cache.max_size.bytes() < 1024 * 1024 {
        out.push((
            "edge.cache.max_size".into(),
            format!(
                "{} is too small: the cache needs at least 1MiB",
                cache.max_size
            ),
        ));
    }
    if cache.max_object_size.bytes() == 0 {
        out.push((
            "edge.cache.max_object_size".into(),
            "must be more than 0".into(),
        ));
    } else if cache.max_object_size > cache.max_size {
        out.push((
            "edge.cache.max_object_size".into(),
            format!(
                "{} is larger than edge.cache.max_size ({}): no object that size could be stored",
                cache.max_object_size, cache.max_size
            ),
        ));
    } else if cache.max_object_size.bytes() > MAX_OBJECT_SIZE_LIMIT {
        out.push((
            "edge.cache.max_object_size".into(),
            format!("{} is larger than the 4TiB limit", cache.max_object_size),
        ));
    }
}

/// The selection policy, the retry settings and the origins' weights.
fn pool_problems(edge: &EdgeConfig, out: &mut Vec<(String, String)>) {
    let pool = &edge.pool;
    if !(1..=MAX_VNODES).contains(&pool.vnodes) {
        out.push((
            "edge.pool.vnodes".into(),
            format!("must be between 1 and {MAX_VNODES}, got {}", pool.vnodes),
        ));
    }
    if let Some(c) = pool.bounded_load {
        if !(c >= 1.0 && c.is_finite()) {
            out.push((
                "edge.pool.bounded_load".into(),
                format!("must be at least 1.0 (e.g. 1.25), got {c}"),
            ));
        } else if pool.policy != PoolPolicy::ConsistentHash {
            out.push((
                "edge.pool.bounded_load".into(),
                "only applies to policy = \"consistent_hash\": remove it or change the policy"
                    .into(),
            ));
        }
    }
    if let Some(total) = pool.total_timeout {
        if total.get().is_zero() {
            out.push((
                "edge.pool.total_timeout".into(),
                "must be more than 0s (leave it unset for no bound)".into(),
            ));
        }
    }
    if pool.idle_timeout.get().is_zero() {
        out.push((
            "edge.pool.idle_timeout".into(),
            "must be more than 0s".into(),
        ));
    }
    if !(1..=MAX_TRIES).contains(&pool.max_tries) {
        out.push((
            "edge.pool.max_tries".into(),
            format!(
                "must be between 1 (no retries) and {MAX_TRIES}, got {}",
                pool.max_tries
            ),
        ));
    }
    if !(0.0..=1.0).contains(&pool.retry_budget) {
        out.push((
            "edge.pool.retry_budget".into(),
            format!("must be between 0.0 and 1.0, got {}", pool.retry_budget),
        ));
    }
    health_problems(edge, out);
    let mut seen: HashMap<SocketAddr, usize> = HashMap::new();
    for (i, origin) in edge.origins.iter().enumerate() {
        if origin.weight > MAX_WEIGHT {
            out.push((
                format!("edge.origins[{i}].weight"),
                format!("must be between 0 and {MAX_WEIGHT}, got {}", origin.weight),
            ));
        }
        if let Some(&first) = seen.get(&origin.address) {
            out.push((
                format!("edge.origins[{i}].address"),
                format!(
                    "{} is already edge.origins[{first}]: list each origin once (use weight for a bigger share)",
                    origin.address
                ),
            ));
        } else {
            seen.insert(origin.address, i);
        }
    }
    if !edge.origins.is_empty() && edge.origins.iter().all(|o| o.weight == 0) {
        out.push((
            "edge.origins".into(),
            "every origin has weight 0: at least one must be above 0 to get requests".into(),
        ));
    }
    let total_weight: u64 = edge.origins.iter().map(|o| u64::from(o.weight)).sum();
    if pool.policy == PoolPolicy::ConsistentHash
        && u64::from(pool.vnodes) * total_weight > MAX_RING_POINTS
    {
        out.push((
            "edge.pool.vnodes".into(),
            format!(
                "{} points per weight unit × total weight {total_weight} is more than {MAX_RING_POINTS} ring points: lower vnodes or the weights",
                pool.vnodes
            ),
        ));
    }
}

/// The active health checks (`edge.pool.health`).
fn health_problems(edge: &EdgeConfig, out: &mut Vec<(String, String)>) {
    let health = &edge.pool.health;
    let field = |name: &str| format!("edge.pool.health.{name}");
    if !health.path.starts_with('/') || !health.path.bytes().all(|b| b.is_ascii_graphic()) {
        out.push((
            field("path"),
            format!(
                "{:?} is not a request path: start it with / and use no spaces or control characters",
                health.path
            ),
        ));
    }
    if health.interval.get() < Duration::from_millis(10) {
        out.push((field("interval"), "must be at least 10ms".into()));
    }
    if health.timeout.get().is_zero() {
        out.push((field("timeout"), "must be more than 0s".into()));
    } else if health.timeout.get() > health.interval.get() {
        out.push((
            field("timeout"),
            format!(
                "{} is longer than edge.pool.health.interval ({}): a probe must end before the next round",
                health.timeout, health.interval
            ),
        ));
    }
    for (name, n) in [("rise", health.rise), ("fall", health.fall)] {
        if !(1..=MAX_RISE_FALL).contains(&n) {
            out.push((
                field(name),
                format!("must be between 1 and {MAX_RISE_FALL}, got {n}"),
            ));
        }
    }
    if let Some(status) = health.expected_status {
        if !(100..=599).contains(&status) {
            out.push((
                field("expected_status"),
                format!("{status} is not an HTTP status (100 to 599)"),
            ));
        }
    }
}

/// RFC 9110 `tchar`, what a cache name in `Cache-Status` may contain.
fn is_token_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// Characters of a `Host` value: a reg-name, an IP literal, and a port.
fn is_host_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=:[]%".contains(&b)
}
