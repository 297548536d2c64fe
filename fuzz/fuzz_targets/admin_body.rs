//! Any body posted to the admin API's `/purge` or `/prewarm`: parsed or refused with a reason,
//! never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|body: &[u8]| {
    let _ = cdn_edge::purge::PurgeRequest::parse(body);
    if let Ok(targets) = cdn_edge::prewarm::parse_list(body) {
        for t in targets {
            // Every accepted URL has a cache key with a host and a path.
            assert!(t.url.key().contains('/'), "{:?}", t.given);
        }
    }
});
