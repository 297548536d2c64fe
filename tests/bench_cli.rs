//! End-to-end tests of `cdn bench`: the load generator against a real edge in front of a real
//! origin-mock, the hit-ratio lab, and the exit status of bad flags.

mod support;

use support::*;

fn json(stdout: &str) -> serde_json::Value {
    serde_json::from_str(stdout).unwrap_or_else(|e| panic!("not JSON ({e}):\n{stdout}"))
}

#[test]
fn bench_http_through_an_edge_reports_hits_and_origin_offload() {
    let origin = Origin::start();
    let edge = EdgeProc::start(origin.addr, "max_size = \"64MiB\"");
    let url = format!(
        "http://{}/bytes/{{size}}?cc=max-age%3D600&k={{key}}",
        edge.addr
    );
    let origin_base = format!("http://{}", origin.addr);
    let dir = scratch();
    let plot = dir.path().join("run.svg");
    let plot_s = plot.display().to_string();
    let (code, stdout, stderr) = run_cdn(&[
        "bench",
        "http",
        &url,
        "--zipf",
        "1.0",
        "--keys",
        "50",
        "--size",
        "2KiB",
        "--requests",
        "1000",
        "--connections",
        "8",
        "--threads",
        "1",
        "--origin",
        &origin_base,
        "--json",
        "--plot",
        &plot_s,
    ]);
    assert_eq!(code, 0, "stderr: {stderr}");
    let r = json(&stdout);
    assert_eq!(r["answers"], 1000, "{r}");
    assert_eq!(r["status"]["2xx"], 1000);
    assert_eq!(r["body_bytes"], 1000 * 2048);
    assert_eq!(r["errors"]["connect"], 0);
    // Every key is fetched from the origin once (the edge's cache lock coalesces concurrent
    // misses); everything else is a hit, and the edge's Cache-Status says which.
    let origin_requests = r["origin"]["requests"].as_u64().unwrap();
    let misses = r["cache"]["misses"].as_u64().unwrap();
    assert!((10..=50).contains(&origin_requests), "{r}");
    assert_eq!(misses, origin_requests, "{r}");
    assert_eq!(r["cache"]["hits"].as_u64().unwrap() + misses, 1000);
    let offload = r["origin"]["offload"].as_f64().unwrap();
    assert!((offload - (1.0 - origin_requests as f64 / 1000.0)).abs() < 1e-9);
    assert!(r["latency_ms"]["p99"].as_f64().unwrap() > 0.0);
    let svg = std::fs::read_to_string(&plot).expect("the plot was written");
    assert!(svg.contains("<svg"), "{svg}");
}

#[test]
fn bench_http_prints_a_summary_table() {
    let origin = Origin::start();
    let url = origin.url("/bytes/100");
    let (code, stdout, stderr) =
        run_cdn(&["bench", "http", &url, "-n", "50", "-c", "2", "-t", "1"]);
    assert_eq!(code, 0, "stderr: {stderr}");
    assert!(
        stdout.contains("requests") && stdout.contains("p99"),
        "{stdout}"
    );
    assert_eq!(origin.total(), 50);
}

#[test]
fn bench_hitratio_json_orders_the_policies() {
    let (code, stdout, stderr) = run_cdn(&[
        "bench",
        "hitratio",
        "--zipf",
        "0.9",
        "--keys",
        "5000",
        "--requests",
        "100000",
        "--cache-size",
        "5%",
        "--json",
    ]);
    assert_eq!(code, 0, "stderr: {stderr}");
    let r = json(&stdout);
    let miss = |p: &str| {
        r["policies"][p]["miss_ratio"]
            .as_f64()
            .unwrap_or_else(|| panic!("no {p}: {r}"))
    };
    for p in ["lru", "lfu", "belady", "top_c"] {
        assert!((0.0..=1.0).contains(&miss(p)), "{p}: {r}");
    }
    assert!(
        miss("belady") <= miss("lfu") && miss("belady") <= miss("lru"),
        "{r}"
    );
    assert!(miss("belady") <= miss("top_c"), "{r}");
    assert!(miss("lfu") < miss("lru"), "{r}");
    assert_eq!(r["trace"]["requests"], 100_000);
    assert!(r["trace"]["distinct_keys"].as_u64().unwrap() <= 5000);
    assert!(r["cache"]["objects"].as_u64().unwrap() > 0);
}

#[test]
fn bench_hitratio_on_a_hand_made_trace() {
    let dir = scratch();
    let trace = write_file(dir.path(), "trace.txt", "a\nb\nc\na\nd\na\nb\nc\n");
    let (code, stdout, stderr) = run_cdn(&[
        "bench",
        "hitratio",
        "--trace",
        &trace,
        "--cache-size",
        "2",
        "--json",
    ]);
    assert_eq!(code, 0, "stderr: {stderr}");
    let r = json(&stdout);
    assert_eq!(r["policies"]["lru"]["hits"], 1, "{r}");
    assert_eq!(r["policies"]["belady"]["hits"], 3, "{r}");
    assert_eq!(r["trace"]["distinct_keys"], 4);
}

#[test]
fn bad_bench_flags_exit_2() {
    for args in [
        &["bench", "http", "ftp://x/"][..],
        &["bench", "http", "http://127.0.0.1:1/{size}", "-n", "1"],
        &["bench", "http", "http://127.0.0.1:1/", "--rate", "0"],
        &[
            "bench",
            "http",
            "http://127.0.0.1:1/",
            "--zipf",
            "1",
            "--keys",
            "0",
        ],
        &["bench", "hitratio", "--zipf", "0.9", "--cache-size", "lots"],
        &["bench", "hitratio", "--zipf", "0.9", "--cache-size", "1MiB"],
        &[
            "bench",
            "hitratio",
            "--trace",
            "/nonexistent/trace",
            "--cache-size",
            "10",
        ],
        &["bench", "dns", "127.0.0.1:53"],
        &[
            "bench",
            "dns",
            "127.0.0.1:53",
            "--name",
            "x",
            "--ecs",
            "10.0.0.0/99",
        ],
        &["bench", "compare", "--workloads", "everything"],
    ] {
        let (code, _stdout, stderr) = run_cdn(args);
        assert_eq!(code, 2, "{args:?}: {stderr}");
        assert!(!stderr.is_empty(), "{args:?}");
    }
}
