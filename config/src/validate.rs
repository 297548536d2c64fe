//! What serde cannot check: values that must fit together.

use crate::{Config, EdgeConfig};
use std::collections::HashMap;
use std::net::SocketAddr;

/// Objects above this cannot be weighed by the cache (moka weighs in `u32` units of 1 KiB).
const MAX_OBJECT_SIZE_LIMIT: u64 = (u32::MAX as u64) << 10;

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

/// RFC 9110 `tchar`, what a cache name in `Cache-Status` may contain.
fn is_token_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// Characters of a `Host` value: a reg-name, an IP literal, and a port.
fn is_host_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=:[]%".contains(&b)
}
