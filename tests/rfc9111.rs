//! HTTP caching conformance, one test per rule, each named after the section of RFC 9111 (or
//! RFC 9110 for conditional and range requests, RFC 5861 for the stale extensions) it checks.
//! Every test runs a real origin-mock behind a real `cdn edge` and talks HTTP to both.

mod support;

use std::time::{Duration, Instant};
use support::{get, request, EdgeProc, Origin};

/// Starts an origin and an edge in front of it; `cache_toml` goes under `[edge.cache]`.
fn start_with(cache_toml: &str) -> (Origin, EdgeProc) {
    let origin = Origin::start();
    let edge = EdgeProc::start(origin.addr, cache_toml);
    (origin, edge)
}

fn start() -> (Origin, EdgeProc) {
    start_with("")
}

/// `cc=` for origin-mock, percent-encoded.
fn cc(value: &str) -> String {
    value
        .replace('=', "%3D")
        .replace(',', "%2C")
        .replace(' ', "%20")
        .replace('"', "%22")
}

#[test]
fn s4_1_vary_stores_one_variant_per_value_of_the_named_header() {
    let (origin, edge) = start();
    let url = edge.url(&format!("/v?vary=Accept-Language&cc={}", cc("max-age=60")));
    let en = [("accept-language", "en")];
    let fr = [("accept-language", "fr")];
    assert!(!get(&url, &en).unwrap().is_hit());
    assert!(get(&url, &en).unwrap().is_hit());
    assert!(!get(&url, &fr).unwrap().is_hit(), "another variant");
    assert!(get(&url, &fr).unwrap().is_hit());
    assert!(
        get(&url, &en).unwrap().is_hit(),
        "the first variant is kept"
    );
    assert_eq!(origin.fetches("/v"), 2);
}

#[test]
fn s4_1_vary_star_is_never_served_from_the_cache() {
    let (origin, edge) = start();
    let url = edge.url(&format!("/vs?vary=*&cc={}", cc("max-age=60")));
    for _ in 0..3 {
        assert!(!get(&url, &[]).unwrap().is_hit());
    }
    assert_eq!(origin.fetches("/vs"), 3);
}

#[test]
fn s4_3_1_a_stale_entry_is_revalidated_and_a_304_refreshes_it() {
    let (origin, edge) = start();
    // Two seconds of freshness, so that the refreshed entry is still fresh for the next
    // request whatever the rounding of the 304's `Date`.
    let url = edge.url(&format!("/rv?etag=v1&cc={}", cc("max-age=2")));
    let first = get(&url, &[]).unwrap();
    std::thread::sleep(Duration::from_millis(2100));
    let second = get(&url, &[]).unwrap();
    assert_eq!(second.status, 200);
    assert_eq!(second.body, first.body);
    assert!(
        second.cache_status().contains("fwd=stale; fwd-status=304"),
        "{}",
        second.cache_status()
    );
    // Refreshed: fresh again for max-age.
    assert!(get(&url, &[]).unwrap().is_hit());
    assert_eq!(origin.fetches("/rv"), 2);
}

#[test]
fn s5_2_2_4_a_no_cache_response_is_revalidated_before_every_use() {
    let (origin, edge) = start();
    let url = edge.url(&format!("/nc?etag=n1&cc={}", cc("no-cache, max-age=600")));
    let first = get(&url, &[]).unwrap();
    for _ in 0..2 {
        let again = get(&url, &[]).unwrap();
        assert_eq!(again.body, first.body);
        assert!(
            again.cache_status().contains("fwd-status=304"),
            "{}",
            again.cache_status()
        );
    }
    assert_eq!(origin.fetches("/nc"), 3);
}

#[test]
fn s5_2_2_2_must_revalidate_is_never_served_stale_504_instead() {
    let (mut origin, edge) = start();
    let url = edge.url(&format!(
        "/mr?cc={}",
        cc("max-age=1, must-revalidate, stale-if-error=600")
    ));
    assert_eq!(get(&url, &[]).unwrap().status, 200);
    origin.proc.terminate(Duration::from_secs(5));
    std::thread::sleep(Duration::from_millis(1100));
    assert_eq!(get(&url, &[]).unwrap().status, 504);
}

#[test]
fn s4_3_2_if_none_match_is_answered_304_from_the_cache() {
    let (origin, edge) = start();
    let url = edge.url(&format!("/inm?etag=e7&cc={}", cc("max-age=60")));
    assert_eq!(get(&url, &[]).unwrap().status, 200);
    let r = get(&url, &[("if-none-match", "\"e7\"")]).unwrap();
    assert_eq!(r.status, 304);
    assert!(r.body.is_empty());
    assert_eq!(r.header("etag"), Some("\"e7\""));
    let r = get(&url, &[("if-none-match", "\"other\"")]).unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(origin.fetches("/inm"), 1);
}

#[test]
fn s4_3_2_if_modified_since_is_answered_304_from_the_cache() {
    let (origin, edge) = start();
    let url = edge.url(&format!(
        "/ims?last_modified=1700000000&cc={}",
        cc("max-age=60")
    ));
    assert_eq!(get(&url, &[]).unwrap().status, 200);
    let later = "Wed, 22 Nov 2023 00:00:00 GMT";
    assert_eq!(
        get(&url, &[("if-modified-since", later)]).unwrap().status,
        304
    );
    let earlier = "Sat, 01 Jan 2000 00:00:00 GMT";
    assert_eq!(
        get(&url, &[("if-modified-since", earlier)]).unwrap().status,
        200
    );
    assert_eq!(origin.fetches("/ims"), 1);
}

/// Stores `path` (fresh for `max_age` seconds), then sends it again with each set of request
/// headers in turn, checking whether the cache answered (`true`) or the origin did. Returns how
/// many requests reached the origin.
fn ask_again(path: &str, max_age: u32, asks: &[(&[(&str, &str)], bool)]) -> u64 {
    let (origin, edge) = start();
    let url = edge.url(&format!("{path}?cc={}", cc(&format!("max-age={max_age}"))));
    assert_eq!(get(&url, &[]).unwrap().status, 200);
    for (headers, from_cache) in asks {
        let r = get(&url, headers).unwrap();
        assert_eq!(r.status, 200);
        assert_eq!(r.is_hit(), *from_cache, "{headers:?}: {}", r.cache_status());
    }
    origin.fetches(path)
}

#[test]
fn s5_2_1_4_request_no_cache_goes_to_the_origin() {
    let fetches = ask_again(
        "/rnc",
        60,
        &[(&[], true), (&[("cache-control", "no-cache")], false)],
    );
    assert_eq!(fetches, 2);
}

#[test]
fn s5_2_1_1_request_max_age_0_goes_to_the_origin() {
    let fetches = ask_again(
        "/rma",
        60,
        &[
            (&[("cache-control", "max-age=30")], true),
            (&[("cache-control", "max-age=0")], false),
        ],
    );
    assert_eq!(fetches, 2);
}

#[test]
fn s5_2_1_3_min_fresh_refuses_an_entry_about_to_go_stale() {
    let fetches = ask_again(
        "/mf",
        30,
        &[
            (&[("cache-control", "min-fresh=5")], true),
            (&[("cache-control", "min-fresh=120")], false),
        ],
    );
    assert_eq!(fetches, 2);
}

#[test]
fn s5_2_1_2_max_stale_accepts_a_stale_entry() {
    let (origin, edge) = start();
    let url = edge.url(&format!("/ms?cc={}", cc("max-age=1")));
    get(&url, &[]).unwrap();
    std::thread::sleep(Duration::from_millis(1100));
    let r = get(&url, &[("cache-control", "max-stale=60")]).unwrap();
    assert!(r.is_hit(), "{}", r.cache_status());
    assert_eq!(origin.fetches("/ms"), 1);
    assert!(
        !get(&url, &[]).unwrap().is_hit(),
        "without max-stale: refetched"
    );
    assert_eq!(origin.fetches("/ms"), 2);
}

#[test]
fn s5_2_1_7_only_if_cached_answers_504_on_a_miss() {
    let (origin, edge) = start();
    let url = edge.url(&format!("/oic?cc={}", cc("max-age=60")));
    let only = [("cache-control", "only-if-cached")];
    assert_eq!(get(&url, &only).unwrap().status, 504);
    assert_eq!(origin.fetches("/oic"), 0);
    get(&url, &[]).unwrap();
    let r = get(&url, &only).unwrap();
    assert_eq!(r.status, 200);
    assert!(r.is_hit());
}

#[test]
fn s5_4_pragma_no_cache_counts_only_without_cache_control() {
    let fetches = ask_again(
        "/pr",
        60,
        &[
            (&[("pragma", "no-cache")], false),
            (
                &[("pragma", "no-cache"), ("cache-control", "max-age=60")],
                true,
            ),
        ],
    );
    assert_eq!(fetches, 2);
}

#[test]
fn s4_head_is_served_from_a_stored_get_and_a_head_miss_stores_no_empty_get() {
    let (origin, edge) = start();
    let url = edge.url(&format!("/bytes/1000?cc={}", cc("max-age=60")));
    let head = request("HEAD", &url, &[]).unwrap();
    assert_eq!(head.status, 200);
    assert!(head.body.is_empty());
    let full = get(&url, &[]).unwrap();
    assert_eq!(
        full.body.len(),
        1000,
        "a HEAD miss must not leave an empty GET"
    );
    let head = request("HEAD", &url, &[]).unwrap();
    assert!(head.is_hit());
    assert_eq!(head.header("content-length"), Some("1000"));
    assert!(origin.fetches("/bytes/1000") <= 2);
}

#[test]
fn rfc9110_s14_a_range_of_a_cached_object_is_a_206() {
    let (origin, edge) = start();
    let url = edge.url(&format!("/bytes/1000?cc={}", cc("max-age=60")));
    let full = get(&url, &[]).unwrap();
    let r = get(&url, &[("range", "bytes=10-19")]).unwrap();
    assert_eq!(r.status, 206);
    assert_eq!(r.header("content-range"), Some("bytes 10-19/1000"));
    assert_eq!(r.body, full.body[10..20]);
    assert!(r.is_hit());
    let tail = get(&url, &[("range", "bytes=-5")]).unwrap();
    assert_eq!(tail.body, full.body[995..]);
    assert_eq!(get(&url, &[("range", "bytes=5000-")]).unwrap().status, 416);
    assert_eq!(origin.fetches("/bytes/1000"), 1);
}

#[test]
fn rfc9110_s14_a_range_miss_stores_the_whole_object() {
    let (origin, edge) = start();
    let url = edge.url(&format!("/bytes/2000?cc={}", cc("max-age=60")));
    let r = get(&url, &[("range", "bytes=100-199")]).unwrap();
    assert_eq!(r.status, 206);
    assert_eq!(r.header("content-range"), Some("bytes 100-199/2000"));
    assert_eq!(r.body.len(), 100);
    let full = get(&url, &[]).unwrap();
    assert!(full.is_hit(), "{}", full.cache_status());
    assert_eq!(full.body.len(), 2000);
    assert_eq!(full.body[100..200], r.body[..]);
    assert_eq!(origin.fetches("/bytes/2000"), 1);
}

#[test]
fn s4_4_an_unsafe_request_invalidates_its_url_and_location() {
    let (origin, edge) = start();
    let page = format!("/inv/page?cc={}", cc("max-age=60"));
    let other = format!("/inv/other?cc={}", cc("max-age=60"));
    for u in [&page, &other] {
        get(&edge.url(u), &[]).unwrap();
        assert!(get(&edge.url(u), &[]).unwrap().is_hit());
    }
    // A POST to the page whose answer points at the other URL invalidates both.
    let location = format!("header=Location:{}", other.replace('%', "%25"));
    let post = request(
        "POST",
        &edge.url(&format!("/inv/page?cc={}&{location}", cc("max-age=60"))),
        &[],
    )
    .unwrap();
    assert_eq!(post.status, 200);
    // The stored page's URL carries its query: purge the exact URL the GETs used.
    let r = request("DELETE", &edge.url(&page), &[]).unwrap();
    assert_eq!(r.status, 200);
    assert!(!get(&edge.url(&page), &[]).unwrap().is_hit());
    assert!(!get(&edge.url(&other), &[]).unwrap().is_hit());
    assert!(origin.fetches("/inv/other") >= 2);
    // A failed unsafe request invalidates nothing.
    assert!(get(&edge.url(&page), &[]).unwrap().is_hit());
    let failed = request(
        "POST",
        &edge.url(&format!("/inv/page?cc={}&status=500", cc("max-age=60"))),
        &[],
    )
    .unwrap();
    assert_eq!(failed.status, 500);
    assert!(get(&edge.url(&page), &[]).unwrap().is_hit());
}

#[test]
fn s4_2_2_heuristic_freshness_only_when_enabled_and_only_for_listed_statuses() {
    // Last modified ten days ago: 10% gives a day, capped to an hour by config.
    let ten_days_ago = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        - 10 * 86_400;
    let path = format!("/h?last_modified={ten_days_ago}");
    let (origin, edge) = start_with("heuristic_freshness = true\nheuristic_max_ttl = \"1h\"");
    get(&edge.url(&path), &[]).unwrap();
    let hit = get(&edge.url(&path), &[]).unwrap();
    assert!(hit.is_hit(), "{}", hit.cache_status());
    let ttl: i64 = hit
        .cache_status()
        .rsplit("ttl=")
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!((3500..=3600).contains(&ttl), "ttl {ttl}");
    // 302 is not heuristically cacheable.
    let redirect = format!("{path}&status=302&header=Location:/x");
    get(&edge.url(&redirect), &[]).unwrap();
    assert!(!get(&edge.url(&redirect), &[]).unwrap().is_hit());
    assert_eq!(origin.fetches("/h"), 3);

    let (origin, edge) = start();
    get(&edge.url(&path), &[]).unwrap();
    assert!(
        !get(&edge.url(&path), &[]).unwrap().is_hit(),
        "off by default"
    );
    assert_eq!(origin.fetches("/h"), 2);
}

#[test]
fn s4_2_3_age_counts_the_origins_age() {
    let (_origin, edge) = start();
    let url = edge.url(&format!("/age?age=30&cc={}", cc("max-age=60")));
    get(&url, &[]).unwrap();
    let hit = get(&url, &[]).unwrap();
    assert!(hit.is_hit());
    let age: u64 = hit.header("age").unwrap().parse().unwrap();
    assert!((30..=32).contains(&age), "Age {age}");
    let ttl: i64 = hit
        .cache_status()
        .rsplit("ttl=")
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!((27..=30).contains(&ttl), "ttl {ttl}");
}

#[test]
fn s3_1_hop_by_hop_headers_are_not_stored_and_the_rest_pass_unchanged() {
    let (_origin, edge) = start();
    let url = edge.url(&format!(
        "/hop?cc={}&header=Connection:x-hop&header=X-Hop:secret&header=X-Kept:yes&header=Keep-Alive:timeout%3D5",
        cc("max-age=60")
    ));
    for _ in 0..2 {
        let r = get(&url, &[]).unwrap();
        assert_eq!(r.header("x-hop"), None);
        assert_eq!(r.header("keep-alive"), None);
        assert_eq!(r.header("x-kept"), Some("yes"));
    }
}

#[test]
fn coalescing_200_concurrent_misses_make_one_origin_fetch() {
    let (origin, edge) = start();
    let url = edge.url(&format!("/co?delay_ms=500&cc={}", cc("max-age=60")));
    let clients: Vec<_> = (0..200)
        .map(|_| {
            let url = url.clone();
            std::thread::spawn(move || get(&url, &[]).map(|r| r.status))
        })
        .collect();
    for c in clients {
        assert_eq!(c.join().unwrap(), Ok(200));
    }
    assert_eq!(origin.fetches("/co"), 1);
}

#[test]
fn rfc5861_s3_stale_while_revalidate_serves_at_once_and_refreshes_once() {
    let (origin, edge) = start();
    let url = edge.url(&format!(
        "/swr?delay_ms=300&cc={}",
        cc("max-age=3, stale-while-revalidate=60")
    ));
    get(&url, &[]).unwrap();
    std::thread::sleep(Duration::from_millis(3100));
    let clients: Vec<_> = (0..10)
        .map(|_| {
            let url = url.clone();
            std::thread::spawn(move || {
                let started = Instant::now();
                let r = get(&url, &[]).unwrap();
                (r.status, r.cache_status().to_string(), started.elapsed())
            })
        })
        .collect();
    for c in clients {
        let (status, cache_status, took) = c.join().unwrap();
        assert_eq!(status, 200);
        assert!(cache_status.contains("hit"), "{cache_status}");
        assert!(took < Duration::from_millis(250), "{took:?}");
    }
    let started = Instant::now();
    while origin.fetches("/swr") < 2 {
        assert!(started.elapsed() < Duration::from_secs(3), "no refresh");
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(origin.fetches("/swr"), 2, "one background refresh");
    let fresh = get(&url, &[]).unwrap();
    assert!(fresh.is_hit());
    assert!(!fresh.cache_status().contains("ttl=-"));
}

#[test]
fn rfc5861_s4_stale_if_error_serves_the_stale_entry_when_the_origin_is_gone() {
    let (mut origin, edge) = start();
    let url = edge.url(&format!("/sie?cc={}", cc("max-age=1, stale-if-error=600")));
    let first = get(&url, &[]).unwrap();
    origin.proc.terminate(Duration::from_secs(5));
    std::thread::sleep(Duration::from_millis(1100));
    let r = get(&url, &[]).unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.body, first.body);
    assert!(
        r.cache_status().contains("fwd=stale") && r.cache_status().contains("ttl=-"),
        "{}",
        r.cache_status()
    );
}

#[test]
fn rfc5861_s4_stale_if_error_from_config_when_the_origin_answers_500() {
    let (mut origin, edge) = start_with("stale_if_error = \"10m\"");
    let url = edge.url(&format!("/sie5?cc={}", cc("max-age=1")));
    let first = get(&url, &[]).unwrap();
    // The same origin address now answers every request with a 500.
    origin.proc.terminate(Duration::from_secs(5));
    let failing = Origin::start_at(origin.addr, &["--fail-rate", "1.0"]);
    std::thread::sleep(Duration::from_millis(1100));
    let r = get(&url, &[]).unwrap();
    assert_eq!(r.status, 200, "{}", r.cache_status());
    assert_eq!(r.body, first.body);
    assert!(
        r.cache_status().contains("fwd=stale"),
        "{}",
        r.cache_status()
    );
    assert!(failing.fetches("/sie5") >= 1);
    // Without the config default, the 500 is passed on.
    let (mut origin, edge) = start();
    let url = edge.url(&format!("/sie6?cc={}", cc("max-age=1")));
    get(&url, &[]).unwrap();
    origin.proc.terminate(Duration::from_secs(5));
    let _failing = Origin::start_at(origin.addr, &["--fail-rate", "1.0"]);
    std::thread::sleep(Duration::from_millis(1100));
    assert_eq!(get(&url, &[]).unwrap().status, 500);
}

#[test]
fn rfc9112_malformed_requests_get_400_and_oversized_headers_431() {
    let (origin, edge) = start();
    let folded = support::raw(
        edge.addr,
        b"GET /bad/fold HTTP/1.1\r\nHost: a\r\nX-A: b\r\n c\r\n\r\n",
    );
    assert!(folded.starts_with("HTTP/1.1 400"), "{folded}");
    let both = support::raw(
        edge.addr,
        b"POST /bad/both HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    );
    assert!(both.starts_with("HTTP/1.1 400"), "{both}");
    let dup = support::raw(
        edge.addr,
        b"POST /bad/dup HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd",
    );
    assert!(dup.starts_with("HTTP/1.1 400"), "{dup}");
    let mut big = b"GET /bad/big HTTP/1.1\r\nHost: a\r\n".to_vec();
    for i in 0..100 {
        big.extend_from_slice(format!("X-Filler-{i}: {}\r\n", "v".repeat(1000)).as_bytes());
    }
    big.extend_from_slice(b"\r\n");
    let r = support::raw(edge.addr, &big);
    assert!(r.starts_with("HTTP/1.1 431"), "{}", &r[..r.len().min(200)]);
    assert_eq!(origin.total(), 0, "nothing reached the origin");
}
