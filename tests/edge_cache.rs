//! The edge as an HTTP cache, end to end: a real `cdn edge` in front of a real origin-mock.

mod support;

use std::time::Duration;
use support::{get, raw, EdgeProc, Origin};

fn setup() -> (Origin, EdgeProc) {
    let origin = Origin::start();
    let edge = EdgeProc::start(origin.addr, "");
    (origin, edge)
}

#[test]
fn miss_then_hit_fetches_the_origin_once() {
    let (origin, edge) = setup();
    let url = edge.url("/bytes/1024?cc=max-age%3D60");
    let first = get(&url, &[]).unwrap();
    assert_eq!(first.status, 200);
    assert_eq!(first.cache_status(), "cdn-edge; fwd=miss; stored");
    let second = get(&url, &[]).unwrap();
    assert_eq!(second.status, 200);
    assert!(second.is_hit(), "{}", second.cache_status());
    assert!(
        second.cache_status().contains("ttl=5"),
        "{}",
        second.cache_status()
    );
    assert_eq!(second.body, first.body);
    assert_eq!(second.body.len(), 1024);
    assert_eq!(
        origin.fetches("/bytes/1024"),
        1,
        "the origin is fetched once"
    );
    assert!(
        second.header("age").is_some(),
        "a cached response carries Age"
    );
    assert!(second.header("via").unwrap_or("").contains("cdn-edge"));
}

#[test]
fn max_age_expiry_refetches() {
    let (origin, edge) = setup();
    let url = edge.url("/expiring?cc=max-age%3D1");
    assert!(!get(&url, &[]).unwrap().is_hit());
    assert!(get(&url, &[]).unwrap().is_hit());
    std::thread::sleep(Duration::from_millis(2100));
    let after = get(&url, &[]).unwrap();
    assert!(
        !after.is_hit(),
        "an expired entry is not served as a hit: {}",
        after.cache_status()
    );
    assert_eq!(origin.fetches("/expiring"), 2);
}

#[test]
fn no_store_and_private_are_never_served_from_cache() {
    let (origin, edge) = setup();
    for (path, cc) in [
        ("/nostore", "no-store%2C%20max-age%3D60"),
        ("/private", "private%2C%20max-age%3D60"),
    ] {
        let url = edge.url(&format!("{path}?cc={cc}"));
        for _ in 0..3 {
            let r = get(&url, &[]).unwrap();
            assert_eq!(r.status, 200);
            assert_eq!(r.cache_status(), "cdn-edge; fwd=miss", "{path}");
        }
        assert_eq!(
            origin.fetches(path),
            3,
            "{path} must reach the origin every time"
        );
    }
}

#[test]
fn s_maxage_beats_max_age() {
    let (origin, edge) = setup();
    // max-age says stale at once, s-maxage (for shared caches like us) says fresh for a minute.
    let url = edge.url("/smax-long?cc=max-age%3D0%2C%20s-maxage%3D60");
    get(&url, &[]).unwrap();
    assert!(get(&url, &[]).unwrap().is_hit());
    assert_eq!(origin.fetches("/smax-long"), 1);
    // And the other way round: s-maxage=0 wins over max-age=60.
    let url = edge.url("/smax-zero?cc=max-age%3D60%2C%20s-maxage%3D0");
    get(&url, &[]).unwrap();
    assert!(!get(&url, &[]).unwrap().is_hit());
    assert_eq!(origin.fetches("/smax-zero"), 2);
}

#[test]
fn expires_is_honoured() {
    let (origin, edge) = setup();
    let url = edge.url("/expires-future?expires=60");
    get(&url, &[]).unwrap();
    let hit = get(&url, &[]).unwrap();
    assert!(hit.is_hit(), "{}", hit.cache_status());
    assert_eq!(origin.fetches("/expires-future"), 1);

    let url = edge.url("/expires-past?expires=-60");
    get(&url, &[]).unwrap();
    assert!(!get(&url, &[]).unwrap().is_hit());
    assert_eq!(origin.fetches("/expires-past"), 2);
}

#[test]
fn age_grows_while_cached() {
    let (_origin, edge) = setup();
    let url = edge.url("/aging?cc=max-age%3D60");
    get(&url, &[]).unwrap();
    let age =
        |r: &support::Resp| -> u64 { r.header("age").and_then(|a| a.parse().ok()).expect("Age") };
    let a1 = age(&get(&url, &[]).unwrap());
    std::thread::sleep(Duration::from_millis(2100));
    let a2 = age(&get(&url, &[]).unwrap());
    assert!(a2 >= a1 + 2, "Age should grow: {a1} then {a2}");
}

#[test]
fn no_freshness_is_not_stored_by_default() {
    let (origin, edge) = setup();
    let url = edge.url("/plain");
    get(&url, &[]).unwrap();
    get(&url, &[]).unwrap();
    assert_eq!(
        origin.fetches("/plain"),
        2,
        "RFC 9111: no freshness, no default TTL, no storage"
    );
}

#[test]
fn default_ttl_applies_to_responses_without_freshness() {
    let origin = Origin::start();
    let edge = EdgeProc::start(origin.addr, "default_ttl = \"60s\"");
    let url = edge.url("/plain-ttl");
    get(&url, &[]).unwrap();
    assert!(get(&url, &[]).unwrap().is_hit());
    assert_eq!(origin.fetches("/plain-ttl"), 1);
}

#[test]
fn the_cache_stays_within_max_size() {
    let origin = Origin::start();
    let edge = EdgeProc::start(
        origin.addr,
        "max_size = \"2MiB\"\nmax_object_size = \"256KiB\"",
    );
    let max = 2u64 << 20;
    let object = 100_000u64;
    // Five times the cache's size, in distinct objects.
    for i in 0..(5 * max / object + 1) {
        let r = get(
            &edge.url(&format!("/bytes/{object}?cc=max-age%3D600&n={i}")),
            &[],
        )
        .unwrap();
        assert_eq!(r.body.len() as u64, object);
    }
    let stats = edge.cache_stats();
    let bytes = stats["bytes"].as_u64().unwrap();
    assert!(
        bytes <= max,
        "cache holds {bytes} bytes, more than {max}: {stats}"
    );
    assert!(bytes >= max / 2, "cache should be well used: {stats}");
    assert!(stats["evictions"].as_u64().unwrap() > 0, "{stats}");
}

#[test]
fn objects_over_max_object_size_pass_through_uncached() {
    let origin = Origin::start();
    let edge = EdgeProc::start(origin.addr, "max_object_size = \"64KiB\"");
    let url = edge.url("/bytes/200000?cc=max-age%3D600");
    let direct = get(&origin.url("/bytes/200000"), &[]).unwrap();
    for _ in 0..2 {
        let r = get(&url, &[]).unwrap();
        assert_eq!(r.status, 200);
        assert_eq!(r.body, direct.body, "the whole body passes through");
        assert_eq!(r.cache_status(), "cdn-edge; fwd=miss");
    }
    assert_eq!(
        origin.fetches("/bytes/200000"),
        3,
        "two through the edge, one direct"
    );
}

#[test]
fn concurrent_misses_are_coalesced_into_one_fetch() {
    let (origin, edge) = setup();
    let url = edge.url("/bytes/300000?cc=max-age%3D60&delay_ms=300");
    let threads: Vec<_> = (0..20)
        .map(|_| {
            let url = url.clone();
            std::thread::spawn(move || get(&url, &[]).unwrap())
        })
        .collect();
    let bodies: Vec<_> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    for r in &bodies {
        assert_eq!(r.status, 200);
        assert_eq!(r.body.len(), 300_000);
        assert_eq!(r.body, bodies[0].body);
    }
    assert_eq!(
        origin.fetches("/bytes/300000"),
        1,
        "20 concurrent misses, one origin fetch"
    );
}

#[test]
fn equivalent_urls_share_one_entry() {
    let (origin, edge) = setup();
    get(&edge.url("/norm/%7Euser?cc=max-age%3D60"), &[]).unwrap();
    let r = get(
        &edge.url("/norm/~user?cc=max-age%3d60"),
        &[("host", &format!("LOCALHOST:{}", edge.addr.port()))],
    );
    // A different Host is a different site: the key includes the host.
    assert!(!r.unwrap().is_hit());
    let r = get(&edge.url("/norm/~user?cc=max-age%3d60"), &[]).unwrap();
    assert!(
        r.is_hit(),
        "percent-encoding case and unreserved escapes are normalised: {}",
        r.cache_status()
    );
    // One fetch for the first host (however its URL was spelled), one for the second host.
    assert_eq!(origin.total(), 2);
}

#[test]
fn requests_with_authorization_are_not_stored_without_permission() {
    let (origin, edge) = setup();
    let url = edge.url("/auth?cc=max-age%3D60");
    get(&url, &[("authorization", "Bearer x")]).unwrap();
    get(&url, &[("authorization", "Bearer x")]).unwrap();
    assert_eq!(origin.fetches("/auth"), 2);
    let url = edge.url("/auth-public?cc=public%2C%20max-age%3D60");
    get(&url, &[("authorization", "Bearer x")]).unwrap();
    assert!(get(&url, &[("authorization", "Bearer x")])
        .unwrap()
        .is_hit());
}

#[test]
fn set_cookie_responses_are_not_shared() {
    let (origin, edge) = setup();
    let url = edge.url("/cookie?cc=max-age%3D60&set_cookie=session%3Dabc");
    get(&url, &[]).unwrap();
    let second = get(&url, &[]).unwrap();
    assert!(!second.is_hit());
    assert_eq!(origin.fetches("/cookie"), 2);
}

#[test]
fn metrics_stats_and_access_log_record_requests() {
    let (_origin, edge) = setup();
    let url = edge.url("/bytes/2048?cc=max-age%3D60");
    get(&url, &[]).unwrap();
    get(&url, &[]).unwrap();
    // Requests are counted in their logging phase, just after the client has its response.
    let metrics =
        || String::from_utf8(get(&edge.admin_url("/metrics"), &[]).unwrap().body).unwrap();
    let mut text = metrics();
    for _ in 0..50 {
        if text.contains("cdn_edge_requests_total{cache_status=\"hit\",edge=\"cdn-edge\"} 1") {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
        text = metrics();
    }
    let metrics = text;
    for needle in [
        "cdn_edge_requests_total{cache_status=\"hit\",edge=\"cdn-edge\"} 1",
        "cdn_edge_requests_total{cache_status=\"miss\",edge=\"cdn-edge\"} 1",
        "cdn_edge_response_body_bytes_total{edge=\"cdn-edge\"} 4096",
        "cdn_edge_origin_fetches_total{result=\"ok\",edge=\"cdn-edge\"} 1",
        "cdn_edge_origin_response_seconds_count{edge=\"cdn-edge\"} 1",
        "cdn_edge_cache_entries{edge=\"cdn-edge\"} 1",
    ] {
        assert!(metrics.contains(needle), "missing {needle} in\n{metrics}");
    }
    let stats = edge.cache_stats();
    assert_eq!(stats["entries"], 1);
    assert_eq!(stats["max_bytes"], 512u64 << 20);
    let health = get(&edge.admin_url("/healthz"), &[]).unwrap();
    assert_eq!(health.status, 200);
    assert_eq!(get(&edge.admin_url("/nope"), &[]).unwrap().status, 404);

    let log = edge.proc.output();
    let line = log
        .lines()
        .find(|l| l.contains("access") && l.contains("cache=\"hit\""))
        .unwrap_or_else(|| panic!("no access log line for the hit in\n{log}"));
    for field in [
        "method=\"GET\"",
        "path=\"/bytes/2048?cc=max-age%3D60\"",
        "status=200",
        "bytes=2048",
        "total_ms=",
    ] {
        assert!(line.contains(field), "{field} missing from {line}");
    }
    assert!(log
        .lines()
        .any(|l| l.contains("cache=\"miss\"") && l.contains("upstream_ms=")));
}

#[test]
fn bad_requests_get_400_and_never_reach_the_origin() {
    let (origin, edge) = setup();
    let two_hosts = raw(edge.addr, b"GET /x HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n");
    assert!(two_hosts.starts_with("HTTP/1.1 400"), "{two_hosts}");
    let no_host = raw(edge.addr, b"GET /x HTTP/1.1\r\n\r\n");
    assert!(no_host.starts_with("HTTP/1.1 400"), "{no_host}");
    let bad_host = raw(edge.addr, b"GET /x HTTP/1.1\r\nHost: a/b\r\n\r\n");
    assert!(bad_host.starts_with("HTTP/1.1 400"), "{bad_host}");
    assert_eq!(origin.fetches("/x"), 0);
}

#[test]
fn origin_down_gives_a_fast_502() {
    let origin = Origin::start();
    let edge = EdgeProc::start(origin.addr, "");
    drop(origin);
    let started = std::time::Instant::now();
    let r = get(&edge.url("/down"), &[]).unwrap();
    assert_eq!(r.status, 502);
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[test]
fn uncacheable_methods_bypass_the_cache() {
    let (origin, edge) = setup();
    let r = support::post(&edge.url("/form?cc=max-age%3D60")).unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.cache_status(), "cdn-edge; fwd=bypass");
    support::post(&edge.url("/form?cc=max-age%3D60")).unwrap();
    assert_eq!(origin.fetches("/form"), 2);
}

/// The origin dies mid-body while several clients wait on the same fill: none of them may get
/// a response that looks complete, and nothing is stored.
#[test]
fn an_origin_dying_mid_body_never_yields_a_complete_looking_response() {
    // With a declared Content-Length a short body is visible to any client; with chunked
    // framing only a missing last chunk tells, so both are tried.
    for framing in ["chunked=0", "chunked=1"] {
        origin_dies_mid_body(framing);
    }
}

fn origin_dies_mid_body(framing: &str) {
    let (origin, edge) = setup();
    let url = edge.url(&format!(
        "/bytes/400000?cc=max-age%3D60&delay_ms=200&abort_after=150000&{framing}"
    ));
    let clients: Vec<_> = (0..5)
        .map(|_| {
            let url = url.clone();
            std::thread::spawn(move || support::get_complete(&url))
        })
        .collect();
    for c in clients {
        let outcome = c.join().unwrap();
        assert!(
            outcome.is_err(),
            "{framing}: a truncated body was delivered as complete: {:?}",
            outcome.map(|r| r.body.len())
        );
    }
    assert_eq!(
        origin.fetches("/bytes/400000"),
        1,
        "the waiting clients were coalesced"
    );
    let stats = edge.cache_stats();
    assert_eq!(stats["entries"], 0, "nothing stored: {stats}");
    assert_eq!(stats["fills_in_progress"], 0, "{stats}");
}

/// A response of unknown length (chunked) that turns out larger than `max_object_size` still
/// reaches the client whole, and is not stored.
#[test]
fn a_chunked_object_over_the_limit_passes_through_whole() {
    let origin = Origin::start();
    let edge = EdgeProc::start(origin.addr, "max_object_size = \"64KiB\"");
    let expected = get(&origin.url("/bytes/300000"), &[]).unwrap().body;
    for _ in 0..2 {
        let r =
            support::get_complete(&edge.url("/bytes/300000?cc=max-age%3D60&chunked=1")).unwrap();
        assert_eq!(r.status, 200);
        assert_eq!(r.body, expected);
    }
    assert_eq!(
        origin.fetches("/bytes/300000"),
        3,
        "not stored: every request reaches the origin"
    );
    assert_eq!(edge.cache_stats()["entries"], 0);
}

#[test]
fn the_clients_host_passes_through_unless_the_pool_overrides_it() {
    let (origin, edge) = setup();
    get(&edge.url("/host-a"), &[("host", "www.example.com")]).unwrap();
    assert_eq!(origin.requests_with_host("www.example.com"), 1);

    let origin = Origin::start();
    let edge = EdgeProc::start_with(origin.addr, "host = \"origin.example.net\"", "");
    get(&edge.url("/host-b"), &[("host", "www.example.com")]).unwrap();
    assert_eq!(origin.requests_with_host("origin.example.net"), 1);
    assert_eq!(origin.requests_with_host("www.example.com"), 0);
}

#[test]
fn a_slow_origin_hits_the_read_timeout() {
    let origin = Origin::start();
    let edge = EdgeProc::start_with(origin.addr, "read_timeout = \"300ms\"", "");
    let started = std::time::Instant::now();
    let r = get(&edge.url("/slow?delay_ms=3000"), &[]).unwrap();
    assert!(r.status == 504 || r.status == 502, "status {}", r.status);
    assert!(
        started.elapsed() < Duration::from_millis(2500),
        "{:?}",
        started.elapsed()
    );
}
