//! The `[origin_mock]` table: the test origin that `cdn` starts next to the edge.

use crate::units::HumanDuration;
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;

/// Settings of origin-mock, the HTTP origin used by tests, demos and benchmarks.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OriginMockConfig {
    /// Address origin-mock listens on. Default: `"127.0.0.1:8081"`.
    #[serde(default = "default_listen")]
    pub listen: SocketAddr,
    /// Share of requests (0.0 to 1.0) answered with an injected `500`. Default: `0.0`.
    #[serde(default)]
    pub fail_rate: f64,
    /// Delay added before every response. Default: `"0s"`.
    #[serde(default)]
    pub delay: HumanDuration,
}

impl Default for OriginMockConfig {
    fn default() -> Self {
        Self {
            listen: default_listen(),
            fail_rate: 0.0,
            delay: HumanDuration::default(),
        }
    }
}

fn default_listen() -> SocketAddr {
    crate::DEFAULT_ORIGIN_MOCK_LISTEN
}
