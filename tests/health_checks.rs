//! Active health checks end to end: real origin-mock processes behind a real `cdn edge` with
//! `[edge.pool.health]` on, probing every 200 ms with `rise = 2` and `fall = 2`. An origin that
//! stops is taken out (visible in `GET /origins` and the metrics) while clients keep getting
//! 200s, comes back after `rise` good checks once it listens again, an origin answering 500s
//! fails its HTTP check, and with no origin left clients get a fast 503 with `Retry-After`.

mod support;

use std::net::SocketAddr;
use std::time::{Duration, Instant};
use support::{get, EdgeProc, Origin};

const HEALTH: &str = "policy = \"round_robin\"\nconnect_timeout = \"1s\"\nread_timeout = \"5s\"\n\
[edge.pool.health]\nenabled = true\npath = \"/health\"\ninterval = \"200ms\"\ntimeout = \"150ms\"\n\
rise = 2\nfall = 2";

/// How long a state change may take: `fall` (or `rise`) × interval, plus a generous margin.
const WITHIN: Duration = Duration::from_secs(3);

/// The `/origins` entry of the origin at `addr`.
fn entry(edge: &EdgeProc, addr: SocketAddr) -> serde_json::Value {
    edge.origins()
        .into_iter()
        .find(|o| o["address"] == addr.to_string())
        .unwrap_or_else(|| panic!("{addr} not in /origins"))
}

/// Polls `/origins` until the origin at `addr` is `healthy` (or not), calling `meanwhile`
/// between polls; returns how long it took. Panics after [`WITHIN`].
fn wait_health(
    edge: &EdgeProc,
    addr: SocketAddr,
    healthy: bool,
    mut meanwhile: impl FnMut(),
) -> Duration {
    let started = Instant::now();
    loop {
        if entry(edge, addr)["healthy"] == healthy {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < WITHIN,
            "{addr} not healthy={healthy} after {WITHIN:?}: {:?}\n{}",
            edge.origins(),
            edge.proc.output()
        );
        meanwhile();
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn healthy_gauge(addr: SocketAddr) -> String {
    format!("cdn_edge_origin_healthy{{origin=\"{addr}\",edge=\"cdn-edge\"}}")
}

fn changes(addr: SocketAddr) -> String {
    format!("cdn_edge_origin_health_changes_total{{origin=\"{addr}\",edge=\"cdn-edge\"}}")
}

fn requests_to(addr: SocketAddr) -> String {
    format!("cdn_edge_origin_requests_total{{origin=\"{addr}\",edge=\"cdn-edge\"}}")
}

#[test]
fn a_stopped_origin_is_taken_out_and_rejoins_after_rise_checks() {
    let mut origins = vec![Origin::start(), Origin::start(), Origin::start()];
    let addrs: Vec<SocketAddr> = origins.iter().map(|o| o.addr).collect();
    let edge = EdgeProc::start_pool(&addrs, HEALTH, "");
    let victim = addrs[1];

    // Checks run and count: every origin answers its probe.
    wait_health(&edge, victim, true, || {});
    let started = Instant::now();
    while entry(&edge, victim)["checks"]["consecutive_ok"]
        .as_u64()
        .unwrap_or(0)
        < 1
    {
        assert!(started.elapsed() < WITHIN, "{:?}", edge.origins());
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(edge.metric(&healthy_gauge(victim)), 1.0);

    // Stop it: clients keep getting 200s (a failed try is retried elsewhere) while the checks
    // notice, within fall × interval plus margin.
    drop(origins.remove(1));
    let mut sent = 0;
    let took = wait_health(&edge, victim, false, || {
        let r = get(&edge.url(&format!("/during/{sent}")), &[]).unwrap();
        assert_eq!(r.status, 200, "request {sent} while the origin goes down");
        sent += 1;
    });
    assert!(took < WITHIN, "{took:?}");
    let down = entry(&edge, victim);
    assert_eq!(down["checks"]["consecutive_ok"], 0, "{down}");
    assert!(down["checks"]["consecutive_failed"].as_u64().unwrap() >= 2);
    assert_eq!(down["checks"]["last_error"], "connection refused", "{down}");
    assert_eq!(edge.metric(&healthy_gauge(victim)), 0.0);
    assert_eq!(edge.metric(&changes(victim)), 1.0);
    assert!(
        edge.proc.output().contains(&format!(
            "origin {victim} down after 2 failed checks: connection refused"
        )),
        "{}",
        edge.proc.output()
    );

    // Out of the pool: it gets no more tries, and every request is served by the others.
    let tries_before = edge.metric(&requests_to(victim));
    for i in 0..30 {
        let r = get(&edge.url(&format!("/after/{i}")), &[]).unwrap();
        assert_eq!(r.status, 200, "request {i} after the origin went down");
    }
    assert_eq!(edge.metric(&requests_to(victim)), tries_before);
    let served: u64 = origins.iter().map(|o| o.fetches_under("/after/")).sum();
    assert_eq!(served, 30);

    // Back on the same address: it rejoins after `rise` good checks and gets its turn again.
    let back = Origin::start_at(victim, &[]);
    wait_health(&edge, victim, true, || {});
    assert_eq!(edge.metric(&healthy_gauge(victim)), 1.0);
    assert_eq!(edge.metric(&changes(victim)), 2.0);
    assert!(edge
        .proc
        .output()
        .contains(&format!("origin {victim} up after 2 good checks")));
    for i in 0..30 {
        let r = get(&edge.url(&format!("/back/{i}")), &[]).unwrap();
        assert_eq!(r.status, 200, "request {i} after the origin came back");
    }
    assert_eq!(back.fetches_under("/back/"), 10, "round robin over three");
}

#[test]
fn an_origin_answering_500_fails_its_http_check() {
    let good = Origin::start();
    let bad = Origin::start_with(&["--fail-rate", "1.0"]);
    let edge = EdgeProc::start_pool(&[good.addr, bad.addr], HEALTH, "");
    wait_health(&edge, bad.addr, false, || {});
    let e = entry(&edge, bad.addr);
    assert_eq!(e["checks"]["last_error"], "status 500, expected 2xx", "{e}");
    assert!(bad.fetches("/health") >= 2, "the check asked for its path");
    assert_eq!(edge.metric(&healthy_gauge(bad.addr)), 0.0);
    assert_eq!(entry(&edge, good.addr)["healthy"], true);
    for i in 0..10 {
        assert_eq!(
            get(&edge.url(&format!("/ok/{i}")), &[]).unwrap().status,
            200
        );
    }
    assert_eq!(good.fetches_under("/ok/"), 10);
    assert_eq!(bad.fetches_under("/ok/"), 0);
}

#[test]
fn no_origin_left_gives_a_fast_503_with_retry_after() {
    let origins = vec![Origin::start(), Origin::start()];
    let addrs: Vec<SocketAddr> = origins.iter().map(|o| o.addr).collect();
    let edge = EdgeProc::start_pool(&addrs, HEALTH, "");
    assert_eq!(get(&edge.url("/up"), &[]).unwrap().status, 200);
    drop(origins);
    for addr in &addrs {
        wait_health(&edge, *addr, false, || {});
    }
    let started = Instant::now();
    let r = get(&edge.url("/none"), &[]).unwrap();
    let elapsed = started.elapsed();
    assert_eq!(r.status, 503);
    assert_eq!(r.header("retry-after"), Some("1"));
    assert!(elapsed < Duration::from_secs(1), "{elapsed:?}");
}

#[test]
fn origins_endpoint_without_health_checks() {
    let origin = Origin::start();
    let edge = EdgeProc::start(origin.addr, "");
    assert_eq!(get(&edge.url("/x"), &[]).unwrap().status, 200);
    // The request's in-flight guard goes after its logging phase, just after the response.
    let started = Instant::now();
    let mut all = edge.origins();
    while all[0]["in_flight"] != 0 && started.elapsed() < Duration::from_secs(1) {
        std::thread::sleep(Duration::from_millis(10));
        all = edge.origins();
    }
    assert_eq!(all.len(), 1);
    let o = &all[0];
    assert_eq!(o["address"], origin.addr.to_string());
    assert_eq!(o["host"], serde_json::Value::Null);
    assert_eq!(o["weight"], 1);
    assert_eq!(o["healthy"], true);
    assert_eq!(o["in_flight"], 0);
    assert!(o["latency_ms"].as_f64().is_some_and(|l| l >= 0.0), "{o}");
    assert!(
        o.get("checks").is_none(),
        "no checks without health checks: {o}"
    );
}
