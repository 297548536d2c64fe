//! An edge in front of a pool of origins, end to end: real origin-mock processes (and, where a
//! fixed status is needed from one origin only, a tiny fixed-status origin in this process)
//! behind a real `cdn edge`. Selection policies, weights, retries and timeouts.

mod support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use support::{get, post, EdgeProc, Origin};

const RETRIES: &str = "cdn_edge_origin_retries_total{edge=\"cdn-edge\"}";

/// A pool with this policy and no breakers or outlier detection: these tests count every
/// try, and tests/breaker.rs checks the protections.
fn pool(policy: &str) -> String {
    format!(
        "policy = \"{policy}\"\nconnect_timeout = \"1s\"\nread_timeout = \"5s\"\n\
         [edge.pool.breaker]\nenabled = false\n[edge.pool.outlier]\nenabled = false"
    )
}

/// An address where nothing listens: an origin started and stopped, so connects are refused.
fn dead_origin() -> SocketAddr {
    let origin = Origin::start();
    let addr = origin.addr;
    drop(origin);
    addr
}

/// Sends `requests` GETs from `threads` concurrent clients; every one must answer 200.
fn concurrent_gets(edge: &EdgeProc, prefix: &str, threads: usize, requests: usize) {
    let clients: Vec<_> = (0..threads)
        .map(|t| {
            let base = edge.url(prefix);
            std::thread::spawn(move || {
                for i in 0..requests {
                    let r = get(&format!("{base}/{t}/{i}"), &[]).unwrap();
                    assert_eq!(r.status, 200);
                }
            })
        })
        .collect();
    for c in clients {
        c.join().unwrap();
    }
}

#[test]
fn consistent_hash_keeps_each_url_on_one_origin() {
    let origins = [Origin::start(), Origin::start(), Origin::start()];
    let addrs: Vec<SocketAddr> = origins.iter().map(|o| o.addr).collect();
    let edge = EdgeProc::start_pool(&addrs, &pool("consistent_hash"), "");
    // No freshness information: not stored, so every request goes to an origin.
    for round in 0..2 {
        for i in 0..30 {
            let r = get(&edge.url(&format!("/ch/{i}")), &[]).unwrap();
            assert_eq!(r.status, 200, "round {round}, url {i}");
        }
    }
    let stats: Vec<serde_json::Value> = origins
        .iter()
        .map(|o| serde_json::from_slice(&get(&o.url("/__stats"), &[]).unwrap().body).unwrap())
        .collect();
    let mut used = [0; 3];
    for i in 0..30 {
        let path = format!("/ch/{i}");
        let counts: Vec<u64> = stats
            .iter()
            .map(|s| s["paths"][&path].as_u64().unwrap_or(0))
            .collect();
        let home = counts.iter().position(|&n| n == 2);
        assert!(
            home.is_some() && counts.iter().sum::<u64>() == 2,
            "{path} was not fetched twice from one origin: {counts:?}"
        );
        used[home.unwrap_or(0)] += 1;
    }
    assert!(
        used.iter().filter(|&&n| n > 0).count() >= 2,
        "30 URLs all on one origin: {used:?}"
    );
}

#[test]
fn round_robin_spreads_evenly_and_weights_count() {
    let origins = [Origin::start(), Origin::start(), Origin::start()];
    let addrs: Vec<SocketAddr> = origins.iter().map(|o| o.addr).collect();
    let edge = EdgeProc::start_pool(&addrs, &pool("round_robin"), "");
    for i in 0..60 {
        assert_eq!(
            get(&edge.url(&format!("/rr/{i}")), &[]).unwrap().status,
            200
        );
    }
    let counts: Vec<u64> = origins.iter().map(|o| o.fetches_under("/rr/")).collect();
    assert_eq!(counts.iter().sum::<u64>(), 60, "{counts:?}");
    for n in &counts {
        assert!((18..=22).contains(n), "uneven round robin: {counts:?}");
    }

    let heavy = Origin::start();
    let light = Origin::start();
    let edge = EdgeProc::start_weighted(
        &[(heavy.addr, 3), (light.addr, 1)],
        &pool("round_robin"),
        "",
    );
    for i in 0..80 {
        assert_eq!(get(&edge.url(&format!("/w/{i}")), &[]).unwrap().status, 200);
    }
    let (h, l) = (heavy.fetches_under("/w/"), light.fetches_under("/w/"));
    assert_eq!(h + l, 80);
    assert!((55..=65).contains(&h), "weight 3 got {h}, weight 1 got {l}");
}

/// Under concurrent load, a policy that sees load sends clearly fewer requests to an origin
/// that answers in 200 ms than to one that answers at once.
fn slow_origin_gets_fewer(policy: &str) {
    let fast = Origin::start();
    let slow = Origin::start_with(&["--delay", "200ms"]);
    let edge = EdgeProc::start_pool(&[fast.addr, slow.addr], &pool(policy), "");
    concurrent_gets(&edge, "/load", 8, 12);
    let (f, s) = (fast.fetches_under("/load/"), slow.fetches_under("/load/"));
    eprintln!("{policy}: fast origin {f} requests, slow origin {s}");
    assert_eq!(f + s, 96, "{policy}: fast {f}, slow {s}");
    assert!(
        s * 4 < f,
        "{policy}: the slow origin got {s} requests, the fast one {f}"
    );
}

#[test]
fn least_conn_sends_less_to_a_slow_origin() {
    slow_origin_gets_fewer("least_conn");
}

#[test]
fn p2c_sends_less_to_a_slow_origin() {
    slow_origin_gets_fewer("p2c");
}

#[test]
fn a_dead_origin_is_retried_around() {
    let live = [Origin::start(), Origin::start()];
    let dead = dead_origin();
    let edge = EdgeProc::start_pool(
        &[live[0].addr, dead, live[1].addr],
        &pool("round_robin"),
        "",
    );
    for i in 0..30 {
        let r = get(&edge.url(&format!("/dead/{i}")), &[]).unwrap();
        assert_eq!(r.status, 200, "request {i}");
    }
    let counts: Vec<u64> = live.iter().map(|o| o.fetches_under("/dead/")).collect();
    assert_eq!(
        counts.iter().sum::<u64>(),
        30,
        "each request reached exactly one live origin: {counts:?}"
    );
    // Tries that land on the dead origin are retried once, on a live one.
    let retries = edge.metric(RETRIES);
    assert!(retries >= 5.0, "{retries} retries");
    let dead_tries = edge.metric(&format!(
        "cdn_edge_origin_requests_total{{origin=\"{dead}\",edge=\"cdn-edge\"}}"
    ));
    assert_eq!(dead_tries, retries, "only tries to the dead origin failed");
}

#[test]
fn a_post_is_never_retried() {
    let live = Origin::start();
    let dead = dead_origin();
    let edge = EdgeProc::start_pool(&[dead, live.addr], &pool("round_robin"), "");
    // Round robin alternates: half the POSTs land on the dead origin and fail.
    let statuses: Vec<u16> = (0..6)
        .map(|i| post(&edge.url(&format!("/form/{i}"))).unwrap().status)
        .collect();
    assert_eq!(
        statuses.iter().filter(|&&s| s == 502).count(),
        3,
        "{statuses:?}"
    );
    assert_eq!(statuses.iter().filter(|&&s| s == 200).count(), 3);
    assert_eq!(live.fetches_under("/form/"), 3, "no POST was sent twice");
    assert_eq!(edge.metric(RETRIES), 0.0);
    // The same pool retries GETs.
    for i in 0..6 {
        assert_eq!(
            get(&edge.url(&format!("/page/{i}")), &[]).unwrap().status,
            200
        );
    }
    assert_eq!(live.fetches_under("/page/"), 6);
}

#[test]
fn max_tries_1_turns_retries_off() {
    let live = Origin::start();
    let dead = dead_origin();
    let edge = EdgeProc::start_pool(
        &[dead, live.addr],
        &format!("max_tries = 1\n{}", pool("round_robin")),
        "",
    );
    let statuses: Vec<u16> = (0..4)
        .map(|i| get(&edge.url(&format!("/once/{i}")), &[]).unwrap().status)
        .collect();
    assert_eq!(statuses, vec![502, 200, 502, 200]);
    assert_eq!(edge.metric(RETRIES), 0.0);
}

#[test]
fn a_timeout_is_retried_on_another_origin() {
    let fast = Origin::start();
    let stuck = Origin::start_with(&["--delay", "3s"]);
    let edge = EdgeProc::start_pool(
        &[stuck.addr, fast.addr],
        "policy = \"round_robin\"\nread_timeout = \"300ms\"",
        "",
    );
    let started = Instant::now();
    for i in 0..4 {
        let r = get(&edge.url(&format!("/t/{i}")), &[]).unwrap();
        assert_eq!(r.status, 200, "request {i}");
    }
    // Round robin sends each request to the stuck origin first (its retry takes the fast
    // one's turn), so each waits one read timeout, then succeeds.
    assert_eq!(fast.fetches_under("/t/"), 4);
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(edge.metric(RETRIES), 4.0);
}

#[test]
fn total_timeout_bounds_the_exchange() {
    let origin = Origin::start();
    let edge = EdgeProc::start_with(
        origin.addr,
        "read_timeout = \"10s\"\ntotal_timeout = \"300ms\"",
        "",
    );
    let started = Instant::now();
    let r = get(&edge.url("/slow?delay_ms=3000"), &[]).unwrap();
    assert!(r.status == 502 || r.status == 504, "status {}", r.status);
    assert!(
        started.elapsed() < Duration::from_millis(2000),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(get(&edge.url("/quick"), &[]).unwrap().status, 200);
}

/// A minimal HTTP/1.1 origin answering every request with one status and an empty body, and
/// counting requests: for a status from one origin of a pool only (origin-mock's `status=`
/// would apply to every origin). Stopped when dropped.
struct FixedStatusOrigin {
    addr: SocketAddr,
    requests: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
}

impl FixedStatusOrigin {
    fn start(status: u16) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let requests = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (count, stopping) = (requests.clone(), stop.clone());
        std::thread::spawn(move || {
            while !stopping.load(Ordering::Relaxed) {
                let Ok((mut conn, _)) = listener.accept() else {
                    std::thread::sleep(Duration::from_millis(5));
                    continue;
                };
                let count = count.clone();
                std::thread::spawn(move || {
                    conn.set_nonblocking(false).ok();
                    conn.set_read_timeout(Some(Duration::from_secs(5))).ok();
                    let mut head = Vec::new();
                    let mut byte = [0u8; 1];
                    while !head.ends_with(b"\r\n\r\n") {
                        match conn.read(&mut byte) {
                            Ok(1) => head.push(byte[0]),
                            _ => return,
                        }
                    }
                    count.fetch_add(1, Ordering::Relaxed);
                    let _ = conn.write_all(
                        format!(
                            "HTTP/1.1 {status} Fixed\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
                        )
                        .as_bytes(),
                    );
                });
            }
        });
        Self {
            addr,
            requests,
            stop,
        }
    }

    fn requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }
}

impl Drop for FixedStatusOrigin {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

#[test]
fn gateway_errors_are_retried_on_another_origin() {
    for status in [502, 503, 504] {
        let failing = FixedStatusOrigin::start(status);
        let live = Origin::start();
        let edge = EdgeProc::start_pool(&[failing.addr, live.addr], &pool("round_robin"), "");
        for i in 0..6 {
            let r = get(&edge.url(&format!("/gw/{i}")), &[]).unwrap();
            assert_eq!(r.status, 200, "{status}: request {i}");
        }
        // Round robin sends each request to the failing origin first (its retry takes the
        // live one's turn).
        assert_eq!(live.fetches_under("/gw/"), 6, "{status}");
        assert_eq!(failing.requests(), 6, "{status}");
        assert_eq!(edge.metric(RETRIES), 6.0, "{status}");
        // A POST gets the origin's answer as it is.
        let statuses: Vec<u16> = (0..2)
            .map(|i| post(&edge.url(&format!("/gwpost/{i}"))).unwrap().status)
            .collect();
        assert_eq!(statuses, vec![status, 200], "{status}");
        assert_eq!(failing.requests(), 7, "{status}");
    }
}

#[test]
fn when_every_origin_fails_the_last_answer_is_passed_on() {
    let a = FixedStatusOrigin::start(503);
    let b = FixedStatusOrigin::start(503);
    let edge = EdgeProc::start_pool(&[a.addr, b.addr], &pool("round_robin"), "");
    let r = get(&edge.url("/all-down"), &[]).unwrap();
    assert_eq!(r.status, 503);
    assert_eq!(
        (a.requests(), b.requests()),
        (1, 1),
        "each origin tried once"
    );
    assert_eq!(edge.metric(RETRIES), 1.0);
}

#[test]
fn a_500_is_not_retried() {
    let failing = Origin::start_with(&["--fail-rate", "1.0"]);
    let live = Origin::start();
    let edge = EdgeProc::start_pool(&[failing.addr, live.addr], &pool("round_robin"), "");
    let statuses: Vec<u16> = (0..4)
        .map(|i| get(&edge.url(&format!("/e500/{i}")), &[]).unwrap().status)
        .collect();
    assert_eq!(statuses, vec![500, 200, 500, 200]);
    assert_eq!(live.fetches_under("/e500/"), 2);
    assert_eq!(edge.metric(RETRIES), 0.0);
}
