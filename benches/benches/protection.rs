//! Micro-benchmarks of the edge's protections on the request path: verifying a signed URL, a
//! rate-limit decision with one bucket and with a million buckets tracked, and finding a
//! request's route.
//!
//! Targets (issue 5): verification ≤ 1 µs, a limiter decision ≤ 100 ns at both sizes.

use cdn_config::{
    LimitKey, RateLimitConfig, RouteConfig, Secret, SignedUrlConfig, SigningKeyConfig,
};
use cdn_edge::rate_limit::RateLimiter;
use cdn_edge::route::RouteTable;
use cdn_edge::signed_url::{sign, SignRequest, SignedUrlPolicy, TokenParams};
use criterion::{black_box, criterion_group, criterion_main, Criterion};
use std::net::{IpAddr, Ipv4Addr};

const SECRET: &str = "bench-secret-0123456789abcdef0123";
const NOW: u64 = 1_700_000_000;

fn signed_url(c: &mut Criterion) {
    let policy =
        SignedUrlPolicy::from_config(&SignedUrlConfig::with_keys(vec![SigningKeyConfig {
            kid: "k1".into(),
            secret: Some(Secret(SECRET.into())),
            secret_file: None,
            secret_env: None,
        }]));
    // A typical video segment link with an unrelated parameter.
    let url = sign(&SignRequest {
        url: "/private/videos/2024/launch/1080p/segment-00042.ts?quality=hd",
        kid: "k1",
        secret: SECRET.as_bytes(),
        expires: NOW + 3600,
        ip: None,
        acl: None,
        params: &TokenParams::default(),
    })
    .expect("sign");
    let (path, query) = url.split_once('?').expect("query");
    let client = Some(IpAddr::V4(Ipv4Addr::new(203, 0, 113, 7)));
    assert!(policy.verify(path, Some(query), client, NOW).is_ok());
    c.bench_function("signed_url/verify", |b| {
        b.iter(|| policy.verify(black_box(path), black_box(Some(query)), client, NOW))
    });
    c.bench_function("signed_url/strip_token", |b| {
        b.iter(|| policy.strip_token(black_box(path), black_box(Some(query))))
    });
}

/// A limiter that never refuses during the run (so each decision is the allowed path), and
/// whose buckets never fall idle.
fn limiter(rate: f64, max_keys: u64) -> RateLimiter {
    RateLimiter::from_config(
        &RateLimitConfig {
            rate,
            burst: 1_000_000,
            key: LimitKey::Client,
            ipv4_prefix: 32,
            ipv6_prefix: 64,
            max_keys,
            bypass: Vec::new(),
        },
        &[],
    )
}

fn rate_limit(c: &mut Criterion) {
    let one = limiter(1e9, 10);
    let client = Some(IpAddr::V4(Ipv4Addr::new(198, 51, 100, 1)));
    c.bench_function("rate_limit/1_key", |b| {
        b.iter(|| one.check(black_box(client), None))
    });

    // A million clients tracked; decisions for clients picked across them.
    let n: u32 = 1_000_000;
    let many = limiter(1.0, u64::from(n) * 2);
    let addr = |i: u32| Some(IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + i)));
    for i in 0..n {
        let _ = many.check(addr(i), None);
    }
    println!("rate_limit/1m_keys: {} buckets tracked", many.tracked());
    let mut i: u32 = 0;
    c.bench_function("rate_limit/1m_keys", |b| {
        b.iter(|| {
            // A multiplicative step spreads the clients over the whole table.
            i = i.wrapping_add(611_953) % n;
            many.check(black_box(addr(i)), None)
        })
    });
}

fn route_lookup(c: &mut Criterion) {
    let routes: Vec<RouteConfig> = ["/", "/private/", "/limited/", "/videos/", "/videos/live/"]
        .iter()
        .map(|p| RouteConfig {
            prefix: p.to_string(),
            ..RouteConfig::default()
        })
        .collect();
    let table = RouteTable::new(&routes, &[]);
    c.bench_function("route/find", |b| {
        b.iter(|| {
            table.find(
                black_box(Some("cdn.example.com")),
                black_box("/videos/live/abc/seg-1.ts"),
            )
        })
    });
}

criterion_group!(benches, signed_url, rate_limit, route_lookup);
criterion_main!(benches);
