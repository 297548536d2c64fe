//! The origin pool: which origin a request goes to and how the edge connects to it.
//!
//! This pool takes the origins in turn (round robin); selection policies, health checks
//! and circuit breaking come with the balance crate.

use cdn_config::{OriginConfig, PoolConfig};
use pingora_core::upstreams::peer::HttpPeer;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

/// One origin of the pool.
#[derive(Clone, Debug)]
pub struct Origin {
    /// Where it listens.
    pub addr: SocketAddr,
    /// The `Host` header it is sent, if not the client's.
    pub host: Option<String>,
}

/// The origins an edge fetches from, with the connection settings they share.
#[derive(Debug)]
pub struct OriginPool {
    origins: Vec<Origin>,
    next: AtomicUsize,
    connect_timeout: Duration,
    read_timeout: Duration,
}

impl OriginPool {
    /// The pool described by the edge's `[edge.pool]` and `[[edge.origins]]`.
    pub fn from_config(pool: &PoolConfig, origins: &[OriginConfig]) -> Self {
        Self {
            origins: origins
                .iter()
                .map(|o| Origin {
                    addr: o.address,
                    host: o.host.clone().or_else(|| pool.host.clone()),
                })
                .collect(),
            next: AtomicUsize::new(0),
            connect_timeout: pool.connect_timeout.get(),
            read_timeout: pool.read_timeout.get(),
        }
    }

    /// The index of the origin for the next request (round robin), `None` for an empty pool.
    pub fn pick(&self) -> Option<usize> {
        if self.origins.is_empty() {
            return None;
        }
        Some(self.next.fetch_add(1, Ordering::Relaxed) % self.origins.len())
    }

    /// The origin at `index`.
    pub fn origin(&self, index: usize) -> Option<&Origin> {
        self.origins.get(index)
    }

    /// How to reach the origin at `index`: address and timeouts.
    pub fn peer(&self, index: usize) -> Option<Box<HttpPeer>> {
        let origin = self.origins.get(index)?;
        let mut peer = HttpPeer::new(origin.addr, false, String::new());
        peer.options.connection_timeout = Some(self.connect_timeout);
        peer.options.read_timeout = Some(self.read_timeout);
        Some(Box::new(peer))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cdn_config::HumanDuration;

    #[test]
    fn origins_are_taken_in_turn_with_their_host() {
        let pool = PoolConfig {
            connect_timeout: HumanDuration::from_secs(1),
            read_timeout: HumanDuration::from_secs(2),
            host: Some("pool.example".into()),
        };
        let origins = vec![
            OriginConfig {
                address: "127.0.0.1:1".parse().unwrap(),
                host: None,
            },
            OriginConfig {
                address: "127.0.0.1:2".parse().unwrap(),
                host: Some("own.example".into()),
            },
        ];
        let p = OriginPool::from_config(&pool, &origins);
        let picks: Vec<usize> = (0..4).filter_map(|_| p.pick()).collect();
        assert_eq!(picks, vec![0, 1, 0, 1]);
        assert_eq!(p.origin(0).unwrap().host.as_deref(), Some("pool.example"));
        assert_eq!(p.origin(1).unwrap().host.as_deref(), Some("own.example"));
        let peer = p.peer(1).unwrap();
        assert_eq!(peer.options.read_timeout, Some(Duration::from_secs(2)));
    }
}
