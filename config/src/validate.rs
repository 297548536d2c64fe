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

/// Most requests in a breaker's window (`edge.pool.breaker.window`; the balance crate's
/// `MAX_BREAKER_WINDOW`).
const MAX_BREAKER_WINDOW: u32 = 10_000;

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
    for (i, more) in config.more_edges.iter().enumerate() {
        let field = |name: &str| format!("more_edges[{i}].{name}");
        if config.edge.is_none() {
            out.push((
                field("name"),
                "more_edges copy [edge], which is missing: add an [edge] table".into(),
            ));
        }
        if more.name.is_empty() || !more.name.bytes().all(is_token_char) {
            out.push((
                field("name"),
                format!(
                    "{:?} is not a valid cache name: use letters, digits and - . _",
                    more.name
                ),
            ));
        }
        if more.listen.is_empty() {
            out.push((
                field("listen"),
                "no listen address: an edge needs at least one".into(),
            ));
        }
        for (j, addr) in more.listen.iter().enumerate() {
            listeners.push((format!("more_edges[{i}].listen[{j}]"), *addr));
        }
        listeners.push((field("admin_listen"), more.admin_listen));
    }
    if let Some(gslb) = &config.gslb {
        crate::gslb::problems(gslb, &mut out);
        for (i, addr) in gslb.listen.iter().enumerate() {
            listeners.push((format!("gslb.listen[{i}]"), *addr));
        }
        listeners.push(("gslb.admin_listen".into(), gslb.admin_listen));
    }
    if config.origin_mock.is_none() && config.edge.is_none() && config.gslb.is_none() {
        out.push((
            String::new(),
            "nothing to run: the file has neither [edge], [gslb] nor [origin_mock]".into(),
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
    crate::route::problems(&edge.routes, out);
    purge_prewarm_problems(edge, out);
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
    breaker_problems(edge, out);
    outlier_problems(edge, out);
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

/// The circuit breaker (`edge.pool.breaker`).
fn breaker_problems(edge: &EdgeConfig, out: &mut Vec<(String, String)>) {
    let b = &edge.pool.breaker;
    let field = |name: &str| format!("edge.pool.breaker.{name}");
    if !(1..=MAX_BREAKER_WINDOW).contains(&b.window) {
        out.push((
            field("window"),
            format!(
                "must be between 1 and {}, got {}",
                MAX_BREAKER_WINDOW, b.window
            ),
        ));
    } else if !(1..=b.window).contains(&b.min_calls) {
        out.push((
            field("min_calls"),
            format!(
                "must be between 1 and window ({}), got {}",
                b.window, b.min_calls
            ),
        ));
    }
    if !(b.failure_rate > 0.0 && b.failure_rate <= 1.0) {
        out.push((
            field("failure_rate"),
            format!("must be above 0.0 and at most 1.0, got {}", b.failure_rate),
        ));
    }
    if b.cool_down.get().is_zero() {
        out.push((field("cool_down"), "must be more than 0s".into()));
    }
    if !(1..=100).contains(&b.half_open_probes) {
        out.push((
            field("half_open_probes"),
            format!("must be between 1 and 100, got {}", b.half_open_probes),
        ));
    }
}

/// Passive outlier detection (`edge.pool.outlier`).
fn outlier_problems(edge: &EdgeConfig, out: &mut Vec<(String, String)>) {
    let o = &edge.pool.outlier;
    let field = |name: &str| format!("edge.pool.outlier.{name}");
    if !(1..=1000).contains(&o.consecutive_failures) {
        out.push((
            field("consecutive_failures"),
            format!("must be between 1 and 1000, got {}", o.consecutive_failures),
        ));
    }
    if o.base_ejection.get().is_zero() {
        out.push((field("base_ejection"), "must be more than 0s".into()));
    }
    if o.max_ejection.get() < o.base_ejection.get() {
        out.push((
            field("max_ejection"),
            format!(
                "must be at least base_ejection ({}), got {}",
                o.base_ejection, o.max_ejection
            ),
        ));
    }
    if !(0.0..=1.0).contains(&o.max_ejected_share) {
        out.push((
            field("max_ejected_share"),
            format!("must be between 0.0 and 1.0, got {}", o.max_ejected_share),
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

/// Most prewarm fetches in flight at once (`edge.prewarm.concurrency`).
const MAX_PREWARM_CONCURRENCY: u32 = 1024;

/// The admin API's body bound, the cache's tag headers and the prewarm settings.
fn purge_prewarm_problems(edge: &EdgeConfig, out: &mut Vec<(String, String)>) {
    let max_body = edge.admin.max_body.bytes();
    if !(1024..=1 << 30).contains(&max_body) {
        out.push((
            "edge.admin.max_body".into(),
            format!("must be between 1KiB and 1GiB, got {max_body} bytes"),
        ));
    }
    for (i, name) in edge.cache.tag_headers.iter().enumerate() {
        if name.is_empty() || !name.bytes().all(is_token_char) {
            out.push((
                format!("edge.cache.tag_headers[{i}]"),
                format!("{name:?} is not a valid header name"),
            ));
        }
    }
    let prewarm = &edge.prewarm;
    if !(1..=MAX_PREWARM_CONCURRENCY).contains(&prewarm.concurrency) {
        out.push((
            "edge.prewarm.concurrency".into(),
            format!(
                "must be between 1 and {MAX_PREWARM_CONCURRENCY}, got {}",
                prewarm.concurrency
            ),
        ));
    }
    if prewarm.timeout.get().is_zero() {
        out.push(("edge.prewarm.timeout".into(), "must be more than 0s".into()));
    }
    for (i, url) in prewarm.urls.iter().enumerate() {
        if url.trim().is_empty() || url.chars().any(char::is_whitespace) {
            out.push((
                format!("edge.prewarm.urls[{i}]"),
                format!("{url:?} is not a URL like \"http://cdn.example.com/path\""),
            ));
        }
    }
}

#[cfg(test)]
mod purge_prewarm_tests {
    use crate::Config;

    #[test]
    fn admin_allow_prewarm_and_tag_headers_parse_and_are_checked() {
        let ok = Config::from_toml_str(
            "[edge]\n[edge.admin]\nallow = [\"10.0.0.0/8\", \"::1\", \"192.0.2.7\"]\n\
             [[edge.origins]]\naddress = \"127.0.0.1:8081\"\n\
             [edge.prewarm]\nurls = [\"http://cdn.example.com/a\"]\nfile = \"/tmp/list\"\n",
            "t.toml",
        )
        .unwrap();
        let edge = ok.edge.unwrap();
        assert_eq!(edge.admin.allow.len(), 3);
        assert!(edge.admin.allow[0].contains("10.1.2.3".parse().unwrap()));
        assert_eq!(edge.prewarm.concurrency, 8);
        assert_eq!(edge.cache.tag_headers, ["Surrogate-Key", "Cache-Tag"]);

        let text = "[edge]\n[edge.admin]\nmax_body = \"10B\"\n\
                    [[edge.origins]]\naddress = \"127.0.0.1:8081\"\n\
                    [edge.cache]\ntag_headers = [\"Bad Header\"]\n\
                    [edge.prewarm]\nconcurrency = 0\ntimeout = \"0s\"\nurls = [\"http://a b\"]\n";
        let errors = Config::from_toml_str(text, "t.toml")
            .unwrap_err()
            .to_string();
        for field in [
            "edge.admin.max_body",
            "edge.cache.tag_headers[0]",
            "edge.prewarm.concurrency",
            "edge.prewarm.timeout",
            "edge.prewarm.urls[0]",
        ] {
            assert!(errors.contains(field), "{field} not named in:\n{errors}");
        }
        let bad_cidr = "[edge]\n[edge.admin]\nallow = [\"10.0.0.0/33\"]\n";
        let e = Config::from_toml_str(bad_cidr, "t.toml")
            .unwrap_err()
            .to_string();
        assert!(e.contains("edge.admin.allow"), "{e}");
    }
}
