//! The CDN's GSLB: an authoritative DNS server that answers every lookup of a CDN name with the
//! nearest healthy edge for the asking client.
//!
//! A query flows as DESIGN.md draws it: UDP/TCP → [`zone`] check (REFUSED outside our zones)
//! → client location (the EDNS Client Subnet option if present, else the source address) →
//! region by longest-prefix match ([`network_map`]; the default region otherwise) → the
//! healthy edges nearest to that region ([`choice`], by great-circle [`distance`]) → one picked
//! among the nearest tier by weight, reported load (power of two choices) or a consistent hash
//! of the client subnet (through `cdn-balance`) → A/AAAA answer with a short TTL and the ECS
//! scope set ([`answer`]).
//!
//! [`health`] probes every edge's `/healthz` and publishes up/down and load into the edge
//! choice; the query path reads an atomically swapped snapshot and never waits on a probe.
//! Over UDP the common query (A/AAAA for a CDN name, at most an ECS option) skips hickory's
//! decoding and encoding: a hand-written fast path reads the datagram and writes the answer
//! without allocating, and hands anything else to hickory; on Linux the socket loops read and
//! send in batches (`recvmmsg`/`sendmmsg`).
//!
//! [`server`] owns the sockets (several `SO_REUSEPORT` UDP sockets, TCP through hickory's
//! `Server`), the admin API and reloads (`SIGHUP`, `POST /reload`), which swap the whole
//! [`Gslb`] state without closing a socket; a config that does not validate is rejected and the
//! old one keeps serving.
//!
//! ```no_run
//! # async fn run() -> Result<(), String> {
//! let config = cdn_config::Config::embedded_default().map_err(|e| e.to_string())?;
//! let gslb = config.gslb.clone().ok_or("no [gslb]")?;
//! let sockets = cdn_gslb::Sockets::bind(&gslb)?;
//! cdn_gslb::serve(sockets, gslb, cdn_gslb::ConfigSource::Embedded, std::future::pending()).await
//! # }
//! ```

#![warn(missing_docs)]

pub mod answer;
#[cfg(target_os = "linux")]
mod batch;
pub mod choice;
pub mod distance;
mod fast;
pub mod handler;
pub mod health;
pub mod metrics;
pub mod network_map;
pub mod server;
pub mod zone;

pub use answer::{Gslb, Reply, SharedGslb};
pub use handler::GslbHandler;
pub use metrics::GslbMetrics;
pub use server::{serve, ConfigSource, Sockets};
