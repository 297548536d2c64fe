//! The CDN's benchmarks. This library holds no code: the crate exists for what sits beside it.
//!
//! * `benches/edge.rs`: criterion micro-benchmarks of the edge's hot paths (cache key, storage
//!   hit, storage insert); run with `cargo bench -p cdn-bench`.
//! * `compare-nginx.sh`: a load test (wrk) of cache hits on our edge and on nginx's
//!   `proxy_cache`, both in front of origin-mock; run with `benches/compare-nginx.sh`.
//!
//! See `benches/README.md` for what each measures and the latest figures.
