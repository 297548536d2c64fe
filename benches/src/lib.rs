//! The CDN's bench suite: what `cdn bench …` runs, plus the micro-benchmarks beside it.
//!
//! * [`http`]: `cdn bench http`, a CDN-aware HTTP/1.1 load generator: closed or open loop
//!   (latency from the intended send time, so a stalled server cannot hide its stall), Zipf,
//!   uniform or replayed-trace popularity, object sizes through origin-mock's `/bytes/{n}`, and
//!   results that know about caches (hit ratio from `Cache-Status`/`X-Cache`, origin offload
//!   from origin-mock's `/__stats`).
//! * [`dns`]: `cdn bench dns`, queries per second and latency against a DNS server, with
//!   optional EDNS Client Subnet drawn from a CIDR list.
//! * [`compare`]: `cdn bench compare`, the same workloads against our edge, nginx and Varnish in
//!   one run, printed as one table.
//! * [`hitratio`]: `cdn bench hitratio`, a trace replayed through our cache policies next to
//!   Bélády's offline optimum and the "C most popular" bound.
//! * `benches/edge.rs`: criterion micro-benchmarks of the edge's hot paths
//!   (`cargo bench -p cdn-bench`).
//!
//! The `cdn` binary parses its command line with [`cli::BenchCommand`] and calls [`cli::run`].
//! See `benches/README.md` for what each measures and the latest figures.

pub mod cli;
pub mod compare;
pub mod dns;
pub mod failure;
pub mod hitratio;
pub mod http;
pub mod latency;
pub mod load;
mod plot;
mod progress;
pub mod workload;

pub use failure::BenchError;
