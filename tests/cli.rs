//! The `cdn` command line: config checking, help, exit codes, and the no-argument local CDN.

mod support;

use std::time::{Duration, Instant};
use support::{get, run_cdn, scratch, write_file, Proc};

#[test]
fn config_check_accepts_the_examples_and_the_default() {
    let examples = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/single-edge.toml");
    let (code, out, err) = run_cdn(&["config", "check", examples]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("ok (origin_mock, edge)"), "{out}");

    let (code, out, _) = run_cdn(&["config", "default"]);
    assert_eq!(code, 0);
    let dir = scratch();
    let printed = write_file(dir.path(), "default.toml", &out);
    assert_eq!(
        run_cdn(&["config", "check", &printed]).0,
        0,
        "the printed default must check"
    );
}

#[test]
fn config_check_names_file_field_and_problem() {
    let dir = scratch();
    let cases: &[(&str, &str, &[&str])] = &[
        (
            "bad-size.toml",
            "[edge]\n[[edge.origins]]\naddress = \"127.0.0.1:1\"\n[edge.cache]\nmax_size = \"12XB\"\n",
            &["bad-size.toml:5:", "edge.cache.max_size", "invalid size \"12XB\""],
        ),
        (
            "unknown.toml",
            "[edge]\ncolour = \"blue\"\n",
            &["unknown.toml:2:", "unknown field `colour`"],
        ),
        (
            "bad-duration.toml",
            "[edge.pool]\nread_timeout = \"soon\"\n",
            &["bad-duration.toml:2:", "edge.pool.read_timeout", "invalid duration \"soon\""],
        ),
        (
            "bad-addr.toml",
            "[[edge.origins]]\naddress = \"not-an-address\"\n",
            &["bad-addr.toml:2:", "edge.origins[0].address", "invalid socket address"],
        ),
        ("syntax.toml", "[edge\n", &["syntax.toml:1:"]),
        (
            "semantic.toml",
            "[origin_mock]\nlisten = \"127.0.0.1:9000\"\n[edge]\nlisten = [\"127.0.0.1:9000\"]\n",
            &[
                "semantic.toml: edge.origins: no origins",
                "semantic.toml: edge.listen[0]: 127.0.0.1:9000 is already used by origin_mock.listen",
            ],
        ),
    ];
    for (name, text, expected) in cases {
        let path = write_file(dir.path(), name, text);
        let (code, out, err) = run_cdn(&["config", "check", &path]);
        assert_eq!(code, 2, "{name}: {out}{err}");
        for e in *expected {
            assert!(err.contains(e), "{name}: expected {e:?} in:\n{err}");
        }
        assert!(
            !err.contains("panicked") && !err.contains("backtrace"),
            "{err}"
        );
    }
    let (code, _, err) = run_cdn(&["config", "check", "/nonexistent/cdn.toml"]);
    assert_eq!(code, 2);
    assert!(
        err.contains("/nonexistent/cdn.toml: cannot read the file"),
        "{err}"
    );
}

#[test]
fn bad_config_or_flags_exit_2_for_every_command() {
    let dir = scratch();
    let path = write_file(
        dir.path(),
        "bad.toml",
        "[edge.cache]\nmax_size = \"huge\"\n",
    );
    for args in [
        vec!["edge", "--config", path.as_str()],
        vec!["--config", path.as_str()],
        vec!["origin", "--config", path.as_str()],
    ] {
        let (code, _, err) = run_cdn(&args);
        assert_eq!(code, 2, "{args:?}: {err}");
        assert!(err.contains("edge.cache.max_size"), "{args:?}: {err}");
    }
    let edge_only = write_file(
        dir.path(),
        "edge-only.toml",
        "[[edge.origins]]\naddress = \"127.0.0.1:1\"\n",
    );
    let (code, _, err) = run_cdn(&["origin", "--config", &edge_only]);
    assert_eq!(code, 2);
    assert!(err.contains("missing table [origin_mock]"), "{err}");
    let (code, _, err) = run_cdn(&["origin", "--listen", "nope"]);
    assert_eq!(code, 2, "{err}");
    let (code, _, err) = run_cdn(&["origin", "--listen", "127.0.0.1:1", "--fail-rate", "3"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("origin_mock.fail_rate"), "{err}");
    assert_eq!(run_cdn(&["frobnicate"]).0, 2);
}

#[test]
fn every_subcommand_has_help() {
    for args in [
        vec!["--help"],
        vec!["edge", "--help"],
        vec!["origin", "--help"],
        vec!["config", "--help"],
        vec!["config", "check", "--help"],
        vec!["config", "default", "--help"],
        vec!["purge", "--help"],
        vec!["prewarm", "--help"],
    ] {
        let (code, out, _) = run_cdn(&args);
        assert_eq!(code, 0, "{args:?}");
        assert!(out.contains("Usage:"), "{args:?}: {out}");
    }
}

/// `cdn` with no arguments runs the default topology on its fixed ports: origin-mock on 8081,
/// the edge on 8080, its admin API on 9080.
#[test]
fn cdn_without_arguments_serves_a_hit_and_stops_on_sigterm() {
    let dir = scratch();
    let mut cdn = Proc::spawn("cdn", &[], dir.path().join("cdn.log"));
    let deadline = Instant::now() + Duration::from_secs(20);
    while get("http://127.0.0.1:9080/healthz", &[]).map(|r| r.status) != Ok(200) {
        assert!(cdn.alive(), "cdn exited:\n{}", cdn.output());
        assert!(
            Instant::now() < deadline,
            "cdn did not start:\n{}",
            cdn.output()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let banner = cdn.output();
    for needle in [
        "origin-mock  http://127.0.0.1:8081",
        "edge         http://127.0.0.1:8080",
        "http://127.0.0.1:9080",
        "curl",
    ] {
        assert!(banner.contains(needle), "{needle} missing from:\n{banner}");
    }
    let url = "http://127.0.0.1:8080/bytes/1024?cc=max-age%3D60&test=no-args";
    let miss = get(url, &[]).unwrap();
    assert_eq!(miss.cache_status(), "cdn-edge; fwd=miss; stored");
    let hit = get(url, &[]).unwrap();
    assert!(hit.is_hit(), "{}", hit.cache_status());
    let origin = get("http://127.0.0.1:8081/__stats", &[]).unwrap();
    assert_eq!(origin.status, 200);

    let stopped = Instant::now();
    let status = cdn
        .terminate(Duration::from_secs(15))
        .expect("cdn stops on SIGTERM");
    assert!(status.success(), "{status:?}:\n{}", cdn.output());
    assert!(stopped.elapsed() < Duration::from_secs(10));
    assert!(
        get("http://127.0.0.1:8081/__stats", &[]).is_err(),
        "origin-mock stopped too"
    );
    assert!(get("http://127.0.0.1:8080/", &[]).is_err(), "edge stopped");
}

#[test]
fn origin_runs_alone_from_a_config_file() {
    let dir = scratch();
    let addr = support::free_addr();
    let path = write_file(
        dir.path(),
        "o.toml",
        &format!("[origin_mock]\nlisten = \"{addr}\"\n"),
    );
    let mut origin = Proc::spawn(
        "origin",
        &["origin", "--config", &path],
        dir.path().join("o.log"),
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok(r) = get(&format!("http://{addr}/bytes/10"), &[]) {
            assert_eq!(r.body.len(), 10);
            break;
        }
        assert!(
            origin.alive() && Instant::now() < deadline,
            "{}",
            origin.output()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let status = origin
        .terminate(Duration::from_secs(10))
        .expect("stops on SIGTERM");
    assert!(status.success());
}
