//! Micro-benchmarks of the edge's per-request work on a cache hit: building the cache key, and
//! the storage's lookup and body read; plus the storage's insert of a new object.
//!
//! The storage is used through pingora-cache's `Storage` trait, as the proxy uses it. Its
//! futures never wait on I/O (moka is synchronous), so each measurement runs its whole batch of
//! iterations inside one `block_on` of a current-thread tokio runtime: the runtime's entry cost
//! is paid once per batch, not once per iteration.

use bytes::Bytes;
use cdn_config::Eviction;
use cdn_edge::cache_key;
use cdn_edge::storage::CacheStorage;
use criterion::{black_box, criterion_group, criterion_main, Criterion};
use pingora_cache::trace::Span;
use pingora_cache::{CacheKey, CacheMeta, Storage};
use pingora_http::{RequestHeader, ResponseHeader};
use std::time::{Duration, Instant, SystemTime};
use tokio::runtime::Runtime;

const OBJECT_SIZE: usize = 1024;

fn runtime() -> Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
}

fn storage() -> &'static CacheStorage {
    // 256 MiB, as in benches/compare-nginx.sh; `Storage` needs `&'static self`.
    Box::leak(Box::new(CacheStorage::new(
        256 << 20,
        64 << 20,
        Eviction::Lfu,
    )))
}

/// Metadata of a response fresh for an hour, with typical origin headers.
fn meta() -> CacheMeta {
    let now = SystemTime::now();
    let mut header = ResponseHeader::build(200, Some(4)).unwrap();
    header
        .insert_header("content-type", "application/octet-stream")
        .unwrap();
    header
        .insert_header("content-length", OBJECT_SIZE.to_string())
        .unwrap();
    header
        .insert_header("cache-control", "max-age=3600")
        .unwrap();
    header.insert_header("server", "origin-mock").unwrap();
    CacheMeta::new(now + Duration::from_secs(3600), now, 0, 0, header)
}

async fn store(storage: &'static CacheStorage, key: &CacheKey, meta: &CacheMeta, body: Bytes) {
    let trace = Span::inactive().handle();
    let mut miss = storage
        .get_miss_handler(key, meta, &trace)
        .await
        .expect("miss handler");
    miss.write_body(body, true).await.expect("write body");
    miss.finish().await.expect("finish");
}

fn cache_key(c: &mut Criterion) {
    let mut group = c.benchmark_group("cache_key");
    let mut req =
        RequestHeader::build("GET", b"/static/img/logo.png?v=3&size=large", None).unwrap();
    req.insert_header("host", "www.example.com").unwrap();
    req.insert_header(
        "user-agent",
        "Mozilla/5.0 (X11; Linux x86_64) Firefox/128.0",
    )
    .unwrap();
    req.insert_header("accept", "image/avif,image/webp,*/*")
        .unwrap();
    req.insert_header("accept-encoding", "gzip, deflate, br")
        .unwrap();
    group.bench_function("for_request", |b| {
        b.iter(|| cache_key::for_request(black_box(&req)))
    });
    group.bench_function("normalised_url_escapes", |b| {
        b.iter(|| {
            cache_key::normalised_url(
                black_box("WWW.Example.COM:80"),
                black_box("/%7euser/docs/caf%c3%a9%20menu.pdf?q=%41%42%43&path=a%2fb%2Fc"),
            )
        })
    });
    group.finish();
}

fn storage_hit(c: &mut Criterion) {
    let rt = runtime();
    let storage = storage();
    let key = CacheKey::new("www.example.com/bytes/1024", "");
    let body = Bytes::from(vec![7u8; OBJECT_SIZE]);
    rt.block_on(store(storage, &key, &meta(), body));
    let trace = Span::inactive().handle();

    let mut group = c.benchmark_group("storage");
    group.bench_function("hit_1KiB_lookup_and_read", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let start = Instant::now();
                for _ in 0..iters {
                    let (meta, mut hit) = storage
                        .lookup(black_box(&key), &trace)
                        .await
                        .unwrap()
                        .expect("stored");
                    let mut read = 0;
                    while let Some(chunk) = hit.read_body().await.unwrap() {
                        read += chunk.len();
                    }
                    assert_eq!(read, OBJECT_SIZE);
                    black_box(meta);
                }
                start.elapsed()
            })
        })
    });
    group.finish();
}

fn storage_insert(c: &mut Criterion) {
    let rt = runtime();
    let storage = storage();
    let meta = meta();
    let body = Bytes::from(vec![7u8; OBJECT_SIZE]);
    let mut next = 0u64;

    let mut group = c.benchmark_group("storage");
    group.bench_function("insert_1KiB_distinct_keys", |b| {
        b.iter_custom(|iters| {
            // The keys are made before the clock starts; each is new to the storage.
            let keys: Vec<CacheKey> = (0..iters)
                .map(|i| CacheKey::new(format!("www.example.com/objects/{}", next + i), ""))
                .collect();
            next += iters;
            rt.block_on(async {
                let start = Instant::now();
                for key in &keys {
                    store(storage, key, &meta, body.clone()).await;
                }
                start.elapsed()
            })
        })
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    targets = cache_key, storage_hit, storage_insert
}
criterion_main!(benches);
