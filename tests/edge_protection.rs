//! Edge protection end to end, through a real `cdn edge` and origin-mock: signed URLs (cache
//! sharing, every refusal reason, key rotation, `cdn sign`), the token-bucket rate limit,
//! access lists and `Referer` checks.

mod support;

use cdn_edge::signed_url::{sign, unix_now, SignRequest, TokenParams};
use std::net::IpAddr;
use support::{get, run_cdn, write_file, EdgeProc, Origin, Resp};

/// A request header.
type Header<'a> = (&'a str, &'a str);

const K1: &str = "k1-secret-for-tests-only-0123456";
const K2: &str = "k2-secret-for-tests-only-6543210";

/// Routes of the signed-URL edge. 127.0.0.1 is a trusted proxy, so that `X-Forwarded-For`
/// plays the client address.
fn signed_routes() -> String {
    format!(
        r#"
[[edge.routes]]
prefix = "/private/"
[edge.routes.signed]
[[edge.routes.signed.keys]]
kid = "k1"
secret = "{K1}"
[[edge.routes.signed.keys]]
kid = "k2"
secret = "{K2}"

[[edge.routes]]
prefix = "/bound/"
[edge.routes.signed]
bind_ip = true
keys = [{{ kid = "k1", secret = "{K1}" }}]

[[edge.routes]]
prefix = "/once/"
[edge.routes.signed]
single_use = true
keys = [{{ kid = "k1", secret = "{K1}" }}]
"#
    )
}

fn start(origin: &Origin, routes: &str) -> EdgeProc {
    EdgeProc::start_custom(
        &[(origin.addr, 1)],
        "trusted_proxies = [\"127.0.0.1\"]",
        "connect_timeout = \"1s\"\nread_timeout = \"5s\"",
        routes,
    )
}

/// `path` signed with `kid`, valid until `expires`.
fn signed(path: &str, kid: &str, expires: u64, ip: Option<IpAddr>) -> String {
    let secret = if kid == "k2" { K2 } else { K1 };
    sign(&SignRequest {
        url: path,
        kid,
        secret: secret.as_bytes(),
        expires,
        ip,
        acl: None,
        params: &TokenParams::default(),
    })
    .expect("sign")
}

fn refused(r: &Resp) -> (u16, &str) {
    (r.status, r.header("cdn-refused").unwrap_or(""))
}

#[test]
fn signed_urls_share_one_entry_and_every_failure_says_why() {
    let origin = Origin::start();
    let edge = start(&origin, &signed_routes());
    let now = unix_now();

    // A thousand differently signed links would make one entry: twenty do here.
    for i in 0..20 {
        let kid = if i % 2 == 0 { "k1" } else { "k2" };
        let url = signed("/private/obj?cc=max-age%3D60", kid, now + 60 + i, None);
        let r = get(&edge.url(&url), &[]).unwrap();
        assert_eq!(
            r.status,
            200,
            "link {i} ({kid}): {:?}",
            r.header("cdn-refused")
        );
        assert_eq!(r.is_hit(), i > 0, "link {i}: {}", r.cache_status());
    }
    assert_eq!(
        origin.fetches("/private/obj"),
        1,
        "one origin fetch for every link"
    );

    let client = [("x-forwarded-for", "203.0.113.7")];
    // (path, link, request headers, reason)
    let cases: Vec<(&str, String, &[Header], &str)> = vec![
        ("/private/none", "/private/none".into(), &[], "missing"),
        (
            "/private/old",
            signed("/private/old", "k1", now - 120, None),
            &[],
            "expired",
        ),
        (
            "/private/tampered",
            signed("/private/original", "k1", now + 60, None)
                .replace("/private/original", "/private/tampered"),
            &[],
            "bad-signature",
        ),
        (
            "/private/kid",
            signed("/private/kid", "k1", now + 60, None).replace("kid=k1", "kid=k9"),
            &[],
            "unknown-key",
        ),
        (
            "/bound/a",
            signed("/bound/a", "k1", now + 60, "203.0.113.8".parse().ok()),
            &client,
            "ip-mismatch",
        ),
        (
            "/bound/unbound",
            signed("/bound/unbound", "k1", now + 60, None),
            &client,
            "missing",
        ),
    ];
    for (path, url, headers, reason) in &cases {
        let r = get(&edge.url(url), headers).unwrap();
        assert_eq!(refused(&r), (403, *reason), "{url}");
        assert_eq!(origin.fetches(path), 0, "{path} must not reach the origin");
    }

    // Bound to the right address, it passes.
    let bound = signed("/bound/a", "k1", now + 60, "203.0.113.7".parse().ok());
    assert_eq!(get(&edge.url(&bound), &client).unwrap().status, 200);

    // A single-use link works once.
    let once = signed("/once/a", "k1", now + 60, None);
    assert_eq!(get(&edge.url(&once), &[]).unwrap().status, 200);
    assert_eq!(
        refused(&get(&edge.url(&once), &[]).unwrap()),
        (403, "reused")
    );
    assert_eq!(origin.fetches("/once/a"), 1);

    // Paths outside every route need nothing.
    assert_eq!(get(&edge.url("/public/a"), &[]).unwrap().status, 200);

    for reason in [
        "expired",
        "bad-signature",
        "unknown-key",
        "ip-mismatch",
        "reused",
    ] {
        let series =
            format!("cdn_edge_requests_refused_total{{reason=\"{reason}\",edge=\"cdn-edge\"}}");
        assert_eq!(edge.metric(&series), 1.0, "{series}");
    }
    assert_eq!(
        edge.metric("cdn_edge_requests_refused_total{reason=\"missing\",edge=\"cdn-edge\"}"),
        2.0
    );
    let log = edge.proc.output();
    assert!(
        !log.contains(K1) && !log.contains(K2),
        "a secret was logged"
    );
}

#[test]
fn cdn_sign_prints_a_link_the_edge_accepts() {
    let origin = Origin::start();
    let edge = start(&origin, &signed_routes());
    // The same routes in a config file of their own, as an operator would have.
    let config = format!(
        "[edge]\n[[edge.origins]]\naddress = \"{}\"\n{}",
        origin.addr,
        signed_routes()
    );
    let file = write_file(edge.dir.path(), "sign.toml", &config);
    let url = edge.url("/private/signed-by-cli");
    let (code, out, err) = run_cdn(&[
        "sign", "--config", &file, &url, "--kid", "k2", "--ttl", "1h",
    ]);
    assert_eq!(code, 0, "{err}");
    let link = out.trim();
    assert!(link.starts_with(&format!("{url}?expires=")), "{link}");
    assert_eq!(get(link, &[]).unwrap().status, 200, "{link}");

    let (code, _, err) = run_cdn(&[
        "sign", "--config", &file, &url, "--kid", "k9", "--ttl", "60",
    ]);
    assert_eq!(code, 2);
    assert!(err.contains("no key \"k9\""), "{err}");
    assert!(!err.contains(K1), "{err}");
}

#[test]
fn rate_limits_access_lists_and_referers() {
    let origin = Origin::start();
    // One token per 10 s: no refill can sneak in while the test runs.
    let routes = r#"
[[edge.routes]]
prefix = "/limited/"
[edge.routes.rate_limit]
rate = 0.1
burst = 5
bypass = ["192.0.2.0/24"]

[[edge.routes]]
prefix = "/internal/"
allow = ["10.0.0.0/8"]
deny = ["10.66.0.0/16"]

[[edge.routes]]
prefix = "/img/"
referers = ["example.com", "*.example.org"]
allow_no_referer = false
"#;
    let edge = start(&origin, routes);

    let from = |ip: &'static str| [("x-forwarded-for", ip)];
    let url = edge.url("/limited/a?cc=max-age%3D60");
    let burst = 5;
    let results: Vec<Resp> = (0..burst + 10)
        .map(|_| get(&url, &from("198.51.100.1")).unwrap())
        .collect();
    let passed = results.iter().filter(|r| r.status == 200).count();
    assert_eq!(passed, burst, "exactly burst requests pass");
    for r in results.iter().filter(|r| r.status != 200) {
        assert_eq!(refused(r), (429, "rate-limited"));
        let retry: u64 = r.header("retry-after").unwrap().parse().unwrap();
        assert!((1..=10).contains(&retry), "Retry-After: {retry}");
        assert_eq!(r.header("ratelimit-policy"), Some("\"burst\";q=5;w=50"));
        assert!(r
            .header("ratelimit")
            .unwrap()
            .starts_with("\"burst\";r=0;t="));
    }
    // Another client has its own bucket; an allow-listed one is never limited.
    assert_eq!(get(&url, &from("198.51.100.2")).unwrap().status, 200);
    for _ in 0..30 {
        assert_eq!(get(&url, &from("192.0.2.44")).unwrap().status, 200);
    }
    assert_eq!(
        edge.metric("cdn_edge_requests_refused_total{reason=\"rate-limited\",edge=\"cdn-edge\"}"),
        10.0
    );

    // Access lists: allowed, denied inside the allowed range, not allowed.
    let internal = edge.url("/internal/a");
    assert_eq!(get(&internal, &from("10.1.2.3")).unwrap().status, 200);
    assert_eq!(
        refused(&get(&internal, &from("10.66.0.9")).unwrap()),
        (403, "denied")
    );
    assert_eq!(
        refused(&get(&internal, &from("192.0.2.1")).unwrap()),
        (403, "denied")
    );
    // Without X-Forwarded-For, the peer itself (127.0.0.1) is the client.
    assert_eq!(refused(&get(&internal, &[]).unwrap()), (403, "denied"));
    assert_eq!(origin.fetches("/internal/a"), 1);

    // Referer allow-list.
    let img = edge.url("/img/a");
    let with = |referer: &'static str| [("referer", referer)];
    assert_eq!(
        get(&img, &with("https://example.com/page")).unwrap().status,
        200
    );
    assert_eq!(
        get(&img, &with("https://www.example.org/")).unwrap().status,
        200
    );
    assert_eq!(
        refused(&get(&img, &with("https://evil.test/")).unwrap()),
        (403, "referer")
    );
    assert_eq!(refused(&get(&img, &[]).unwrap()), (403, "referer"));
}
