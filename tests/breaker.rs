//! The protections in front of each origin, end to end: real origin-mock processes behind a real
//! `cdn edge`. A circuit breaker opens on an origin answering 500s (visible in `GET /origins`
//! and the metrics), sends its traffic to the other origins, half-opens after its cool-down,
//! reopens on a failed probe and closes once the origin recovers; passive outlier detection
//! ejects a dead origin without any health check; and with every origin out, clients get stale
//! copies where the cache has them and a fast 503 with `Retry-After` otherwise.

mod support;

use std::net::SocketAddr;
use std::time::{Duration, Instant};
use support::{get, EdgeProc, Origin};

/// How long a state change may take beyond its configured time.
const MARGIN: Duration = Duration::from_secs(3);

fn entry(edge: &EdgeProc, addr: SocketAddr) -> serde_json::Value {
    edge.origins()
        .into_iter()
        .find(|o| o["address"] == addr.to_string())
        .unwrap_or_else(|| panic!("{addr} not in /origins"))
}

fn series(name: &str, addr: SocketAddr) -> String {
    format!("cdn_edge_{name}{{origin=\"{addr}\",edge=\"cdn-edge\"}}")
}

/// Polls `/origins` until `addr`'s breaker reads `state`; panics after `limit`.
fn wait_breaker(edge: &EdgeProc, addr: SocketAddr, state: &str, limit: Duration) {
    let started = Instant::now();
    while entry(edge, addr)["breaker"] != state {
        assert!(
            started.elapsed() < limit,
            "breaker of {addr} not {state} after {limit:?}: {:?}",
            edge.origins()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_failing_origin_trips_its_breaker_which_half_opens_and_closes_on_recovery() {
    let healthy = Origin::start();
    let mut failing = Origin::start_with(&["--fail-rate", "1.0"]);
    let b = failing.addr;
    let edge = EdgeProc::start_pool(
        &[healthy.addr, b],
        "policy = \"round_robin\"\nconnect_timeout = \"1s\"\nread_timeout = \"5s\"\n\
         [edge.pool.breaker]\nconsecutive_failures = 3\ncool_down = \"1s\"\nhalf_open_probes = 1\n\
         [edge.pool.outlier]\nenabled = false",
        "",
    );
    // Round robin: every other request meets the failing origin, whose 500 is passed on.
    let mut failures = 0;
    for i in 0..6 {
        let r = get(&edge.url(&format!("/a/{i}")), &[]).unwrap();
        failures += u32::from(r.status == 500);
    }
    assert_eq!(failures, 3);
    let e = entry(&edge, b);
    assert_eq!(e["breaker"], "open", "{e}");
    assert_eq!(e["breaker_opened"], 1);
    assert_eq!(
        e["error_rate"], 0.0,
        "the window starts again when the breaker opens"
    );
    assert_eq!(edge.metric(&series("origin_breaker_state", b)), 1.0);
    assert_eq!(edge.metric(&series("origin_breaker_opened_total", b)), 1.0);
    assert_eq!(edge.metric(&series("origin_requests_total", b)), 3.0);

    // While open, everything goes to the other origin.
    for i in 0..10 {
        assert_eq!(get(&edge.url(&format!("/b/{i}")), &[]).unwrap().status, 200);
    }
    assert_eq!(healthy.fetches_under("/b/"), 10);
    assert_eq!(edge.metric(&series("origin_requests_total", b)), 3.0);

    // After the cool-down one probe goes through; it fails, so the breaker opens again.
    wait_breaker(&edge, b, "half_open", Duration::from_secs(1) + MARGIN);
    let mut i = 0;
    while edge.metric(&series("origin_requests_total", b)) < 4.0 {
        assert!(i < 10, "no probe reached the origin: {:?}", edge.origins());
        get(&edge.url(&format!("/c/{i}")), &[]).unwrap();
        i += 1;
    }
    let e = entry(&edge, b);
    assert_eq!(e["breaker"], "open", "{e}");
    assert_eq!(e["breaker_opened"], 2);

    // The origin recovers: the next probe succeeds and closes the breaker.
    failing.proc.terminate(Duration::from_secs(5));
    let recovered = Origin::start_at(b, &[]);
    wait_breaker(&edge, b, "half_open", Duration::from_secs(1) + MARGIN);
    let mut i = 0;
    while recovered.fetches_under("/d/") == 0 {
        assert!(i < 10, "no probe reached the origin: {:?}", edge.origins());
        assert_eq!(get(&edge.url(&format!("/d/{i}")), &[]).unwrap().status, 200);
        i += 1;
    }
    assert_eq!(entry(&edge, b)["breaker"], "closed");
    assert_eq!(edge.metric(&series("origin_breaker_state", b)), 0.0);
    // Closed again: round robin gives it its share.
    for i in 0..10 {
        assert_eq!(get(&edge.url(&format!("/e/{i}")), &[]).unwrap().status, 200);
    }
    assert_eq!(recovered.fetches_under("/e/"), 5);
}

#[test]
fn outlier_detection_ejects_a_dead_origin_without_health_checks() {
    let live = [Origin::start(), Origin::start()];
    let dead = {
        let gone = Origin::start();
        gone.addr
    };
    let edge = EdgeProc::start_pool(
        &[live[0].addr, dead, live[1].addr],
        "policy = \"round_robin\"\nconnect_timeout = \"1s\"\nread_timeout = \"5s\"\n\
         [edge.pool.breaker]\nenabled = false\n\
         [edge.pool.outlier]\nconsecutive_failures = 2\nbase_ejection = \"30s\"",
        "",
    );
    // Clients see no error: the refused connects are retried on a live origin. After two of
    // them the dead origin is ejected, and nothing is tried on it (or retried) any more.
    for i in 0..30 {
        let r = get(&edge.url(&format!("/o/{i}")), &[]).unwrap();
        assert_eq!(r.status, 200, "request {i}");
    }
    assert_eq!(
        edge.metric("cdn_edge_origin_retries_total{edge=\"cdn-edge\"}"),
        2.0
    );
    assert_eq!(edge.metric(&series("origin_requests_total", dead)), 2.0);
    let e = entry(&edge, dead);
    assert_eq!(e["ejected"], true, "{e}");
    assert_eq!(e["ejections"], 1);
    assert!(e["ejected_for_ms"].as_u64().unwrap() > 20_000, "{e}");
    assert_eq!(e["healthy"], true, "ejection is not a health check verdict");
    assert_eq!(edge.metric(&series("origin_ejected", dead)), 1.0);
    assert_eq!(edge.metric(&series("origin_ejections_total", dead)), 1.0);
    // The two live origins share the load; neither is ejected.
    assert_eq!(
        live[0].fetches_under("/o/") + live[1].fetches_under("/o/"),
        30
    );
    assert!(live[0].fetches_under("/o/") >= 13 && live[1].fetches_under("/o/") >= 13);
}

#[test]
fn with_every_origin_out_clients_get_stale_copies_or_a_fast_503() {
    let mut origin = Origin::start();
    let edge = EdgeProc::start_with(
        origin.addr,
        "connect_timeout = \"1s\"\nread_timeout = \"5s\"\n\
         [edge.pool.breaker]\nconsecutive_failures = 2\ncool_down = \"30s\"",
        "",
    );
    let kept = "/kept?cc=max-age%3D1%2C%20stale-if-error%3D600";
    let first = get(&edge.url(kept), &[]).unwrap();
    assert_eq!(first.status, 200);
    origin.proc.terminate(Duration::from_secs(5));
    std::thread::sleep(Duration::from_millis(1100));

    // Connects are refused: the first two misses get a 502 and open the breaker.
    for i in 0..2 {
        assert_eq!(
            get(&edge.url(&format!("/gone/{i}")), &[]).unwrap().status,
            502
        );
    }
    assert_eq!(entry(&edge, origin.addr)["breaker"], "open");

    // A stored (now stale) object is served from the cache, stale-if-error allowing it.
    let stale = get(&edge.url(kept), &[]).unwrap();
    assert_eq!(stale.status, 200);
    assert_eq!(stale.body, first.body);
    assert!(
        stale.cache_status().contains("fwd=stale; ttl=-")
            && stale.cache_status().contains("detail=stale-if-error"),
        "{}",
        stale.cache_status()
    );

    // Anything else: a 503 at once, told when to come back (the breaker's cool-down).
    let started = Instant::now();
    let r = get(&edge.url("/gone/again"), &[]).unwrap();
    assert_eq!(r.status, 503);
    assert!(
        started.elapsed() < Duration::from_millis(500),
        "{:?}",
        started.elapsed()
    );
    let retry_after: u64 = r.header("retry-after").unwrap().parse().unwrap();
    assert!(
        (25..=30).contains(&retry_after),
        "Retry-After {retry_after}"
    );
}
