//! Micro-benchmarks of the gslb's UDP request path, datagram in, datagram out, without sockets:
//! the common query (A with an ECS option) on the hand-written fast path, and the same query
//! with a COOKIE option added, which the fast path leaves to hickory (decode, answer, encode).
//! The difference is what the fast path saves per query.

use cdn_gslb::GslbHandler;
use criterion::{black_box, criterion_group, criterion_main, Criterion};
use std::net::SocketAddr;

/// A query for `www.cdn.example.com` A with EDNS (payload 4096) and ECS 192.0.2.0/24, as
/// `benches/compare-knot.sh` sends it; `cookie` adds a client COOKIE option.
fn query(cookie: bool) -> Vec<u8> {
    let mut d = vec![0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 1];
    for label in ["www", "cdn", "example", "com"] {
        d.push(label.len() as u8);
        d.extend_from_slice(label.as_bytes());
    }
    d.extend_from_slice(&[0, 0, 1, 0, 1]);
    let mut options = vec![0, 8, 0, 7, 0, 1, 24, 0, 192, 0, 2];
    if cookie {
        options.extend_from_slice(&[0, 10, 0, 8, 1, 2, 3, 4, 5, 6, 7, 8]);
    }
    d.extend_from_slice(&[0, 0, 41, 0x10, 0, 0, 0, 0, 0]);
    d.extend_from_slice(&(options.len() as u16).to_be_bytes());
    d.extend_from_slice(&options);
    d
}

fn answer(c: &mut Criterion) {
    let config = cdn_config::Config::embedded_default().expect("the default config is valid");
    let gslb = config.gslb.expect("the default config has a [gslb]");
    let handler = GslbHandler::from_config(&gslb).expect("the default gslb builds");
    let source: SocketAddr = "127.0.0.1:5300".parse().expect("a socket address");
    let mut out = Vec::with_capacity(1232);
    let mut group = c.benchmark_group("gslb_answer_datagram");
    for (label, cookie) in [("fast_path_a_ecs", false), ("hickory_a_ecs_cookie", true)] {
        let datagram = query(cookie);
        assert!(handler.answer_datagram(&datagram, source, &mut out));
        group.bench_function(label, |b| {
            b.iter(|| handler.answer_datagram(black_box(&datagram), source, &mut out))
        });
    }
    group.finish();
}

criterion_group!(benches, answer);
criterion_main!(benches);
