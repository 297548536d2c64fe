//! The `[[more_edges]]` tables: further edges that `cdn` runs beside `[edge]`, each with every
//! setting of `[edge]` but its own name and addresses. The default config uses one so that the
//! gslb has two edges to choose from on one machine.
//!
//! Why not `[[edge]]`: `[edge]` is a single table that every command, test and the config
//! reference address as `edge.…`; an array of tables would rename every field to `edge[].…`.
//! Copies that differ only in where they listen cover a local multi-edge setup without that.

use crate::EdgeConfig;
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;

/// One more edge: a copy of `[edge]` with its own name and addresses.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MoreEdgeConfig {
    /// Its cache name (`Cache-Status`, metrics), like `edge.name`.
    pub name: String,
    /// Addresses it serves HTTP on, like `edge.listen`.
    pub listen: Vec<SocketAddr>,
    /// Address of its admin API, like `edge.admin.listen`.
    pub admin_listen: SocketAddr,
}

impl MoreEdgeConfig {
    /// The full config of this edge: `base` with this name and these addresses.
    pub fn apply(&self, base: &EdgeConfig) -> EdgeConfig {
        let mut edge = base.clone();
        edge.name = self.name.clone();
        edge.listen = self.listen.clone();
        edge.admin.listen = self.admin_listen;
        edge
    }
}
