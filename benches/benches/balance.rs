//! Micro-benchmarks of choosing an origin: the pick of each policy at 10 and 1,000 backends,
//! and the circuit breaker's check, the costs a miss pays before it reaches an origin.
//!
//! A pick includes its in-flight guard (an atomic increment, and the decrement when the guard
//! drops at the end of the iteration), as the edge pays it.

use cdn_balance::{Backend, Balancer, Breaker, BreakerSettings, OutlierDetector, Picker, Policy};
use criterion::{black_box, criterion_group, criterion_main, BenchmarkId, Criterion};
use std::sync::Arc;
use std::time::Instant;

fn backends(n: usize) -> Vec<Backend> {
    (0..n)
        .map(|i| Backend::new(format!("10.0.{}.{}:80", i / 250, i % 250 + 1), 1))
        .collect()
}

fn policies() -> [(&'static str, Policy); 5] {
    [
        ("consistent_hash", Policy::consistent_hash()),
        ("least_conn", Policy::LeastConn),
        ("p2c", Policy::PowerOfTwo { use_latency: true }),
        ("round_robin", Policy::RoundRobin),
        ("random", Policy::Random),
    ]
}

fn pick(c: &mut Criterion) {
    // Keys as the edge hashes them: normalised cache-key URLs.
    let keys: Vec<String> = (0..1024)
        .map(|i| format!("www.example.com/assets/{i}/app.js"))
        .collect();
    let mut group = c.benchmark_group("pick");
    for n in [10, 1000] {
        for (name, policy) in policies() {
            let balancer = Balancer::new(policy, backends(n));
            let mut i = 0usize;
            group.bench_with_input(BenchmarkId::new(name, n), &n, |b, _| {
                b.iter(|| {
                    i = (i + 1) & 1023;
                    black_box(balancer.pick(keys[i].as_bytes()))
                })
            });
        }
    }
    group.finish();
}

fn protections(c: &mut Criterion) {
    let now = Instant::now();
    let breaker = Arc::new(Breaker::new(BreakerSettings::default(), now));
    c.bench_function("breaker/admit_closed", |b| {
        b.iter(|| black_box(breaker.admit(black_box(now))))
    });
    let open = Arc::new(Breaker::new(BreakerSettings::default(), now));
    for _ in 0..BreakerSettings::default().consecutive_failures {
        open.record(false, false, now);
    }
    c.bench_function("breaker/admit_open", |b| {
        b.iter(|| black_box(open.admit(black_box(now))))
    });
    c.bench_function("breaker/record_success", |b| {
        b.iter(|| black_box(breaker.record(true, false, black_box(now))))
    });
    let outliers = OutlierDetector::new(Default::default(), 10, now);
    c.bench_function("outlier/is_ejected", |b| {
        b.iter(|| black_box(outliers.is_ejected(black_box(3), now)))
    });
}

criterion_group!(benches, pick, protections);
criterion_main!(benches);
