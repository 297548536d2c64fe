//! Purge and prewarm end to end: a real `cdn edge` in front of a real origin-mock, driven
//! through the admin API and through `cdn purge` / `cdn prewarm`.

mod support;

use std::io::Read;
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use support::{free_addr, get, run_cdn, scratch, write_file, EdgeProc, Origin, Proc};

/// An edge in front of `origin` with `admin_toml` under `[edge.admin]` (after its `listen`)
/// and `prewarm_toml` under `[edge.prewarm]`; `{edge}` in `prewarm_toml` becomes the edge's
/// own address.
fn start_edge(origin: SocketAddr, admin_toml: &str, prewarm_toml: &str) -> EdgeProc {
    let dir = scratch();
    for _ in 0..3 {
        let addr = free_addr();
        let admin = free_addr();
        let prewarm_toml = prewarm_toml.replace("{edge}", &addr.to_string());
        let config = format!(
            "[edge]\nlisten = [\"{addr}\"]\nthreads = 2\naccess_log = false\n\
             [edge.admin]\nlisten = \"{admin}\"\n{admin_toml}\n\
             [[edge.origins]]\naddress = \"{origin}\"\n\
             [edge.pool]\nconnect_timeout = \"1s\"\nread_timeout = \"5s\"\n\
             [edge.prewarm]\n{prewarm_toml}\n"
        );
        let path = dir.path().join("edge.toml");
        std::fs::write(&path, config).expect("write config");
        let path = path.display().to_string();
        let mut proc = Proc::spawn(
            "edge",
            &["edge", "--config", &path],
            dir.path().join("edge.log"),
        );
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline && proc.alive() {
            let admin_up =
                get(&format!("http://{admin}/healthz"), &[]).is_ok_and(|r| r.status == 200);
            if admin_up && std::net::TcpStream::connect(addr).is_ok() {
                return EdgeProc {
                    proc,
                    addr,
                    admin,
                    dir,
                };
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        eprintln!("edge did not start, retrying:\n{}", proc.output());
    }
    panic!("edge did not start");
}

/// A `POST` with a body; returns the status and the JSON answer (`null` if not JSON).
fn post_body(url: &str, content_type: &str, body: &str) -> (u16, serde_json::Value) {
    let answer = ureq::post(url)
        .set("content-type", content_type)
        .timeout(Duration::from_secs(20))
        .send_string(body);
    let response = match answer {
        Ok(r) => r,
        Err(ureq::Error::Status(_, r)) => r,
        Err(e) => panic!("POST {url}: {e}"),
    };
    let status = response.status();
    let mut text = String::new();
    let _ = response.into_reader().read_to_string(&mut text);
    (status, serde_json::from_str(&text).unwrap_or_default())
}

fn purge(edge: &EdgeProc, body: serde_json::Value) -> u64 {
    let (status, answer) = post_body(
        &edge.admin_url("/purge"),
        "application/json",
        &body.to_string(),
    );
    assert_eq!(status, 200, "{answer}");
    answer["purged"].as_u64().expect("purged count")
}

/// Polls `GET /prewarm/{id}` until the job is done.
fn finished_job(edge: &EdgeProc, id: &str) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let r = get(&edge.admin_url(&format!("/prewarm/{id}")), &[]).expect("job report");
        if r.status == 200 {
            let report: serde_json::Value = serde_json::from_slice(&r.body).expect("json");
            if report["state"] == "done" {
                return report;
            }
        }
        assert!(Instant::now() < deadline, "prewarm job {id} did not finish");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn purge_by_url_prefix_and_tag_removes_exactly_those_entries() {
    let origin = Origin::start();
    let edge = start_edge(origin.addr, "max_body = \"1KiB\"", "");
    let cached = |path: &str| edge.url(&format!("{path}?cc=max-age%3D60"));
    let tagged =
        |path: &str, header: &str| edge.url(&format!("{path}?cc=max-age%3D60&header={header}"));
    let urls = [
        cached("/exact"),
        cached("/static/a.css"),
        cached("/static/img/b.png"),
        cached("/staticky"),
        tagged("/t/red-blue", "Surrogate-Key:red%20blue"),
        tagged("/t/blue", "Cache-Tag:blue"),
        tagged("/t/green", "Surrogate-Key:green"),
    ];
    for url in &urls {
        assert!(!get(url, &[]).unwrap().is_hit());
        assert!(get(url, &[]).unwrap().is_hit(), "{url} should be cached");
    }

    // Exact URL, spelt differently from the request but normalised to the same key.
    let exact = urls[0].replace("/exact", "/%65xact");
    assert_eq!(purge(&edge, serde_json::json!({"urls": [exact]})), 1);
    assert!(!get(&urls[0], &[]).unwrap().is_hit());
    assert_eq!(origin.fetches("/exact"), 2, "a purged URL is fetched again");
    assert_eq!(
        purge(&edge, serde_json::json!({"urls": [edge.url("/nothing")]})),
        0
    );

    assert_eq!(
        purge(
            &edge,
            serde_json::json!({"prefixes": [edge.url("/static/")]})
        ),
        2
    );
    assert!(!get(&urls[1], &[]).unwrap().is_hit());
    assert!(!get(&urls[2], &[]).unwrap().is_hit());
    assert!(
        get(&urls[3], &[]).unwrap().is_hit(),
        "/staticky is outside /static/"
    );

    // Every Vary variant of a URL goes with it.
    let varied = edge.url("/varied?cc=max-age%3D60&vary=Accept-Encoding");
    for encoding in ["gzip", "br"] {
        let headers = [("Accept-Encoding", encoding)];
        assert!(!get(&varied, &headers).unwrap().is_hit());
        assert!(
            get(&varied, &headers).unwrap().is_hit(),
            "{encoding} variant"
        );
    }
    assert_eq!(purge(&edge, serde_json::json!({"urls": [varied]})), 2);
    for encoding in ["gzip", "br"] {
        let headers = [("Accept-Encoding", encoding)];
        assert!(
            !get(&varied, &headers).unwrap().is_hit(),
            "{encoding} variant"
        );
    }

    assert_eq!(purge(&edge, serde_json::json!({"tags": ["blue"]})), 2);
    assert!(!get(&urls[4], &[]).unwrap().is_hit());
    assert!(!get(&urls[5], &[]).unwrap().is_hit());
    assert!(get(&urls[6], &[]).unwrap().is_hit(), "green is not blue");
    assert_eq!(origin.fetches_under("/t/"), 5);

    // Bad input: the reason comes back with a 400, and nothing is purged.
    let admin = edge.admin_url("/purge");
    let (status, answer) = post_body(&admin, "application/json", "{\"urls\": [");
    assert_eq!(status, 400);
    assert!(
        answer["error"]
            .as_str()
            .unwrap()
            .contains("not a purge request"),
        "{answer}"
    );
    let (status, answer) = post_body(&admin, "application/json", r#"{"urls": ["ftp://x/"]}"#);
    assert_eq!(status, 400);
    assert!(
        answer["error"].as_str().unwrap().starts_with("urls[0]"),
        "{answer}"
    );
    let (status, _) = post_body(&admin, "application/json", &"x".repeat(2000));
    assert_eq!(status, 413, "over edge.admin.max_body");
    assert_eq!(get(&admin, &[]).unwrap().status, 405);
    assert!(get(&urls[6], &[]).unwrap().is_hit());
}

#[test]
fn prewarm_fills_the_cache_so_requests_hit_without_the_origin() {
    let origin = Origin::start();
    let edge = start_edge(origin.addr, "", "concurrency = 2");
    let good: Vec<String> = (0..6)
        .map(|i| edge.url(&format!("/warm/{i}?cc=max-age%3D60")))
        .collect();
    let uncacheable = edge.url("/warm/private?cc=no-store");
    let missing = edge.url("/warm/missing?status=404&cc=max-age%3D60");
    let list = format!(
        "# a prewarm list\n{}\n\n{uncacheable}\n{missing}\n{}\n",
        good.join("\n"),
        good[0]
    );
    let (status, job) = post_body(&edge.admin_url("/prewarm"), "text/plain", &list);
    assert_eq!(status, 202, "{job}");
    assert_eq!(job["total"], 8, "duplicates are dropped: {job}");
    let id = job["id"].as_str().expect("job id").to_string();

    let report = finished_job(&edge, &id);
    assert_eq!(report["done"], 6, "{report}");
    assert_eq!(report["failed"], 2, "{report}");
    let errors = report["errors"].as_array().unwrap();
    let error_of = |url: &str| {
        errors
            .iter()
            .find(|e| e["url"] == url)
            .map(|e| e["error"].as_str().unwrap().to_string())
            .unwrap_or_default()
    };
    assert!(error_of(&uncacheable).contains("not cacheable"), "{report}");
    assert!(error_of(&missing).contains("404"), "{report}");

    let before = origin.fetches_under("/warm/");
    for url in &good {
        assert!(get(url, &[]).unwrap().is_hit(), "{url} was prewarmed");
    }
    assert_eq!(origin.fetches_under("/warm/"), before, "hits only");

    // Prewarming again skips what is fresh: no request at all.
    let json = serde_json::to_string(&good).unwrap();
    let (status, job) = post_body(&edge.admin_url("/prewarm"), "application/json", &json);
    assert_eq!(status, 202, "{job}");
    let report = finished_job(&edge, job["id"].as_str().unwrap());
    assert_eq!(
        (report["done"].as_u64(), report["skipped"].as_u64()),
        (Some(6), Some(6))
    );
    assert_eq!(origin.fetches_under("/warm/"), before);

    let (status, answer) = post_body(
        &edge.admin_url("/prewarm"),
        "text/plain",
        "http://h/a\nftp://h/b\n",
    );
    assert_eq!(status, 400);
    assert!(
        answer["error"].as_str().unwrap().starts_with("line 2:"),
        "{answer}"
    );
    let (status, _) = post_body(
        &edge.admin_url("/prewarm"),
        "application/json",
        "[\"http://h/a\"",
    );
    assert_eq!(status, 400);
    assert_eq!(
        get(&edge.admin_url("/prewarm/nope"), &[]).unwrap().status,
        404
    );
}

#[test]
fn the_startup_list_is_prewarmed() {
    let origin = Origin::start();
    let dir = scratch();
    // Any host will do: the edge forwards it to its origin and stores it under that host.
    let file = write_file(
        dir.path(),
        "prewarm.txt",
        "# from a file\nhttp://boot.test/boot/c?cc=max-age%3D60\n",
    );
    let edge = start_edge(
        origin.addr,
        "",
        &format!(
            "urls = [\"http://{{edge}}/boot/a?cc=max-age%3D60\", \"http://{{edge}}/boot/b?cc=max-age%3D60\"]\nfile = \"{file}\""
        ),
    );
    let report = finished_job(&edge, "startup");
    assert_eq!(report["total"], 3, "{report}");
    assert_eq!(report["done"], 3, "{report}");
    assert!(get(&edge.url("/boot/a?cc=max-age%3D60"), &[])
        .unwrap()
        .is_hit());
    assert!(get(&edge.url("/boot/b?cc=max-age%3D60"), &[])
        .unwrap()
        .is_hit());
    assert_eq!(origin.fetches_under("/boot/"), 3);
    let from_file = serde_json::json!({"urls": ["http://boot.test/boot/c?cc=max-age%3D60"]});
    assert_eq!(purge(&edge, from_file), 1);
}

#[test]
fn only_allowed_clients_may_change_state() {
    let origin = Origin::start();
    // 127.0.0.1 is not in the list.
    let edge = start_edge(origin.addr, "allow = [\"10.0.0.0/8\"]", "");
    let url = edge.url("/kept?cc=max-age%3D60");
    get(&url, &[]).unwrap();
    let body = serde_json::json!({ "urls": [url] }).to_string();
    let (status, answer) = post_body(&edge.admin_url("/purge"), "application/json", &body);
    assert_eq!(status, 403);
    assert!(
        answer["error"]
            .as_str()
            .unwrap()
            .contains("edge.admin.allow"),
        "{answer}"
    );
    let (status, _) = post_body(&edge.admin_url("/prewarm"), "text/plain", &url);
    assert_eq!(status, 403);
    assert!(get(&url, &[]).unwrap().is_hit(), "nothing was purged");
    // Reading stays open.
    assert_eq!(get(&edge.admin_url("/healthz"), &[]).unwrap().status, 200);
    assert_eq!(get(&edge.admin_url("/prewarm/1"), &[]).unwrap().status, 404);
}

#[test]
fn cdn_purge_and_cdn_prewarm_drive_the_admin_api() {
    let origin = Origin::start();
    let edge = start_edge(origin.addr, "", "");
    let admin = format!("http://{}", edge.admin);
    let dir = scratch();
    let urls: Vec<String> = (0..3)
        .map(|i| {
            edge.url(&format!(
                "/cli/{i}?cc=max-age%3D60&header=Surrogate-Key:cli"
            ))
        })
        .collect();
    let list = write_file(dir.path(), "urls.txt", &urls.join("\n"));

    let (code, out, err) = run_cdn(&["prewarm", &list, "--admin", &admin]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("3 of 3 URLs in the cache"), "{out}");
    assert!(get(&urls[0], &[]).unwrap().is_hit());

    let (code, out, err) = run_cdn(&["purge", "--admin", &admin, &urls[0]]);
    assert_eq!((code, out.trim()), (0, "purged 1 entry"), "{err}");
    let (code, out, _) = run_cdn(&["purge", "--admin", &admin, "--prefix", &edge.url("/cli/")]);
    assert_eq!((code, out.trim()), (0, "purged 2 entries"));
    let (code, out, err) = run_cdn(&["prewarm", &list, "--admin", &admin]);
    assert_eq!(code, 0, "{out}{err}");
    let (code, out, _) = run_cdn(&["purge", "--admin", &admin, "--tag", "cli"]);
    assert_eq!((code, out.trim()), (0, "purged 3 entries"));

    // A URL that fails to prewarm: exit 1 with the reason.
    let failing = write_file(dir.path(), "bad.txt", &edge.url("/cli/x?status=500"));
    let (code, out, err) = run_cdn(&["prewarm", &failing, "--admin", &admin]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(err.contains("500"), "{err}");
    // Bad input: exit 2.
    let not_urls = write_file(dir.path(), "junk.txt", "ftp://nope/\n");
    assert_eq!(run_cdn(&["prewarm", &not_urls, "--admin", &admin]).0, 2);
    assert_eq!(
        run_cdn(&["prewarm", "/no/such/file", "--admin", &admin]).0,
        2
    );
    assert_eq!(run_cdn(&["purge", "--admin", &admin]).0, 2);
    assert_eq!(run_cdn(&["purge", "--admin", &admin, "ftp://x/"]).0, 2);
    // No edge there: exit 1.
    let nobody = format!("http://{}", free_addr());
    assert_eq!(run_cdn(&["purge", "--admin", &nobody, &urls[0]]).0, 1);
}
