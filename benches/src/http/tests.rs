//! The load generator against a real origin-mock served in-process.

use super::*;
use crate::workload::Trace;

/// origin-mock on a thread of its own (the bench builds its own runtime), for the test's life.
fn origin() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    listener.set_nonblocking(true).unwrap();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            let _ = origin_mock::serve(
                listener,
                origin_mock::MockOptions::default(),
                std::future::pending(),
            )
            .await;
        });
    });
    format!("http://{addr}")
}

fn options(url: &str, stop: Stop) -> HttpOptions {
    HttpOptions {
        threads: 2,
        connections: 4,
        ..HttpOptions::new(url, stop)
    }
}

#[test]
fn count_mode_sends_exactly_n_requests() {
    let base = origin();
    let mut opts = options(&format!("{base}/bytes/{{size}}"), Stop::Count(300));
    opts.sizes = Some(SizeModel::Fixed(100));
    opts.origin = Some(base.clone());
    let r = run(&opts).unwrap();
    assert_eq!((r.requests, r.answers), (300, 300));
    assert_eq!(r.status.get("2xx"), Some(&300));
    assert_eq!(r.body_bytes, 30_000);
    assert_eq!(r.errors.total(), 0);
    let origin = r.origin.clone().unwrap();
    assert_eq!(origin.requests, 300);
    assert!(origin.offload.abs() < 1e-9);
    assert_eq!(r.cache.hit_ratio, None);
    assert!(r.latency_ms.p50 > 0.0 && r.latency_ms.max >= r.latency_ms.p99);
    let json = serde_json::to_value(&r).unwrap();
    assert_eq!(json["answers"], 300);
    assert_eq!(json["load"]["model"], "closed");
    assert!(json["latency_ms"]["p99_9"].is_number());
    assert!(r.table().contains("300"));
}

#[test]
fn hit_ratio_is_read_from_cache_status_and_x_cache() {
    let base = origin();
    let trace = Trace::parse(
        "/h?header=Cache-Status:e%3B%20hit\n/m?header=Cache-Status:e%3B%20fwd%3Dmiss\n\
         /x?header=X-Cache:HIT\n/n\n",
        "t",
    )
    .unwrap();
    let mut opts = options(&format!("{base}/"), Stop::Count(400));
    opts.popularity = Popularity::Trace(Arc::new(trace));
    let r = run(&opts).unwrap();
    assert_eq!(r.cache.hits, 200);
    assert_eq!(r.cache.misses, 100);
    assert_eq!(r.cache.unknown, 100);
    assert!((r.cache.hit_ratio.unwrap() - 2.0 / 3.0).abs() < 1e-9);
}

#[test]
fn open_loop_latency_grows_when_the_origin_stalls() {
    let base = origin();
    let url = format!("{base}/slow?delay_ms=50");
    let mut closed = options(&url, Stop::Count(40));
    closed.connections = 2;
    let closed = run(&closed).unwrap();
    // Two connections serve at most ~40 req/s; asking for 100/s for one second makes the
    // backlog grow, and latency counted from the intended send time shows it.
    let mut open = options(&url, Stop::Duration(Duration::from_secs(1)));
    open.connections = 2;
    open.pace = Pace::Open { rate: 100.0 };
    let open = run(&open).unwrap();
    assert!(
        closed.latency_ms.p99 >= 50.0 && closed.latency_ms.p99 < 300.0,
        "{:?}",
        closed.latency_ms
    );
    assert!(open.answers >= 95, "{}", open.answers);
    assert!(
        open.latency_ms.p99 > 5.0 * closed.latency_ms.p99 && open.latency_ms.p99 > 800.0,
        "open {:?} closed {:?}",
        open.latency_ms,
        closed.latency_ms
    );
}

#[test]
fn zipf_requests_reach_the_origin_with_the_law_s_frequencies() {
    let base = origin();
    let mut opts = options(&format!("{base}/z/{{key}}"), Stop::Count(2000));
    opts.popularity = Popularity::zipf(1.0, 20).unwrap();
    run(&opts).unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let stats = rt.block_on(origin_stats(&base)).unwrap();
    let count = |k: u32| stats["paths"][format!("/z/{k}")].as_u64().unwrap_or(0) as f64;
    let h: f64 = (1..=20).map(|k| 1.0 / k as f64).sum();
    for k in [1, 2, 4] {
        let expected = 2000.0 / k as f64 / h;
        assert!(
            (count(k) - expected).abs() < 0.2 * expected,
            "key {k}: {} vs {expected}",
            count(k)
        );
    }
    assert!(count(1) > count(10));
}

#[test]
fn refused_connections_are_counted_as_connect_errors() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut opts = options(&format!("http://127.0.0.1:{port}/"), Stop::Count(8));
    opts.connections = 2;
    let r = run(&opts).unwrap();
    assert_eq!(r.errors.connect, 8);
    assert_eq!(r.answers, 0);
}

#[test]
fn bad_options_are_usage_errors() {
    let mut opts = options("http://127.0.0.1:1/bytes/{size}", Stop::Count(1));
    assert!(run(&opts).unwrap_err().usage);
    opts.targets = vec!["http://127.0.0.1:1/x".into()];
    opts.sizes = Some(SizeModel::Fixed(1));
    assert!(run(&opts).unwrap_err().message.contains("{size}"));
    assert_eq!(
        dechunk(b"3\r\nabc\r\n2;x\r\nde\r\n0\r\n\r\n"),
        b"abcde".to_vec()
    );
}
