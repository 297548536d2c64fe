//! Any host and request target: the cache key never panics, is idempotent, and keeps the host
//! apart from the path.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: (&str, &str)| {
    let (host, target) = input;
    let key = cdn_edge::cache_key::normalised_url(host, target);
    if !host.contains('/') {
        let (h, p) = key.split_at(key.find('/').unwrap_or(key.len()));
        assert_eq!(cdn_edge::cache_key::normalised_url(h, p), key);
    }
    if let Ok(req) = pingora_http::RequestHeader::build("GET", target.as_bytes(), None) {
        let _ = cdn_edge::cache_key::for_request(&req);
    }
});
