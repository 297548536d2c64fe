//! Every configuration type of the CDN, their defaults, their validation, and the embedded
//! default config.
//!
//! One TOML file describes the whole CDN: `[origin_mock]` (the test origin) and `[edge]` (the
//! caching proxy, its listeners, origins and cache), `[[more_edges]]` (copies of the edge on
//! other addresses) and `[gslb]` (the authoritative DNS that sends clients to the nearest healthy
//! edge). Unknown fields are errors, sizes and
//! durations are written for humans (`"512MiB"`, `"30s"`), and every error names the file, the
//! field and what is wrong.
//!
//! ```
//! let config = cdn_config::Config::from_toml_str("[edge]\n[[edge.origins]]\naddress = \"127.0.0.1:8081\"\n", "inline.toml").unwrap();
//! assert_eq!(config.edge.unwrap().cache.max_size.bytes(), 512 * 1024 * 1024);
//! ```

mod cidr;
mod edge;
mod error;
mod gslb;
mod more_edges;
mod origin_mock;
mod route;
mod units;
mod validate;

pub use cidr::Cidr;
pub use edge::{
    AdminConfig, BreakerConfig, CacheConfig, EdgeConfig, Eviction, HashKey, HealthCheckKind,
    HealthConfig, OriginConfig, OutlierConfig, PoolConfig, PoolPolicy, PrewarmConfig,
};
pub use error::{ConfigError, ConfigErrors};
pub use gslb::{
    normalize_name, parse_mx, split_http_url, GslbConfig, GslbEdgeConfig, GslbHealthConfig,
    GslbPolicy, RecordConfig, RecordKind, RegionConfig, ZoneConfig, DEFAULT_GSLB_ADMIN_LISTEN,
    DEFAULT_GSLB_LISTEN,
};
pub use more_edges::MoreEdgeConfig;
pub use origin_mock::OriginMockConfig;
pub use route::{
    LimitKey, RateLimitConfig, RouteConfig, Secret, SignedUrlConfig, SigningKeyConfig,
    MIN_SECRET_BYTES,
};
pub use units::{HumanDuration, HumanSize};

use serde::{Deserialize, Serialize};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::Path;

/// The default config that `cdn` runs with no arguments and `cdn config default` prints: the
/// same text as `examples/single-edge.toml`.
pub const DEFAULT_TOML: &str = include_str!("../default.toml");

/// Where origin-mock listens by default.
pub const DEFAULT_ORIGIN_MOCK_LISTEN: SocketAddr =
    SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 8081);
/// Where the edge serves HTTP by default.
pub const DEFAULT_EDGE_LISTEN: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 8080);
/// Where the edge's admin API listens by default.
pub const DEFAULT_ADMIN_LISTEN: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 9080);

/// The whole CDN's config: each table is optional, and each command uses the tables it needs
/// (`cdn edge` needs `[edge]`, `cdn origin` needs `[origin_mock]`, `cdn` starts every table
/// present).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The test origin. Absent: `cdn` does not start one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub origin_mock: Option<OriginMockConfig>,
    /// The edge. Absent: `cdn` does not start one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub edge: Option<EdgeConfig>,
    /// More edges run beside `[edge]` (copies of it with their own name and addresses).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub more_edges: Vec<MoreEdgeConfig>,
    /// The gslb (authoritative DNS). Absent: `cdn` does not start one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gslb: Option<GslbConfig>,
}

/// Label used for the embedded default config in error messages.
pub const EMBEDDED_NAME: &str = "<embedded default>";

impl Config {
    /// Reads, parses and validates a config file.
    pub fn load(path: &Path) -> Result<Config, ConfigErrors> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            ConfigErrors(vec![ConfigError {
                file: path.to_path_buf(),
                position: None,
                field: String::new(),
                message: format!("cannot read the file: {e}"),
            }])
        })?;
        Self::from_toml_str(&text, path)
    }

    /// The embedded default config, parsed and validated.
    pub fn embedded_default() -> Result<Config, ConfigErrors> {
        Self::from_toml_str(DEFAULT_TOML, EMBEDDED_NAME)
    }

    /// Parses and validates config text; `file` names it in errors.
    pub fn from_toml_str(text: &str, file: impl AsRef<Path>) -> Result<Config, ConfigErrors> {
        let file = file.as_ref().to_path_buf();
        let config = parse(text, &file)?;
        config.validate(&file)?;
        Ok(config)
    }

    /// Checks what serde cannot: clashing listen addresses, an empty origin list, sizes that do
    /// not fit together, values out of range. Returns every problem, not just the first.
    pub fn validate(&self, file: &Path) -> Result<(), ConfigErrors> {
        let problems = validate::problems(self);
        if problems.is_empty() {
            return Ok(());
        }
        Err(ConfigErrors(
            problems
                .into_iter()
                .map(|(field, message)| ConfigError {
                    file: file.to_path_buf(),
                    position: None,
                    field,
                    message,
                })
                .collect(),
        ))
    }

    /// The edge table, or an error naming the file when it is missing.
    pub fn require_edge(&self, file: &Path) -> Result<&EdgeConfig, ConfigErrors> {
        self.edge.as_ref().ok_or_else(|| missing(file, "edge"))
    }

    /// Every edge `cdn` runs: `[edge]`, then each of `[[more_edges]]`.
    pub fn edges(&self) -> Vec<EdgeConfig> {
        let Some(base) = &self.edge else {
            return Vec::new();
        };
        std::iter::once(base.clone())
            .chain(self.more_edges.iter().map(|more| more.apply(base)))
            .collect()
    }

    /// The gslb table, or an error naming the file when it is missing.
    pub fn require_gslb(&self, file: &Path) -> Result<&GslbConfig, ConfigErrors> {
        self.gslb.as_ref().ok_or_else(|| missing(file, "gslb"))
    }

    /// The origin-mock table, or an error naming the file when it is missing.
    pub fn require_origin_mock(&self, file: &Path) -> Result<&OriginMockConfig, ConfigErrors> {
        self.origin_mock
            .as_ref()
            .ok_or_else(|| missing(file, "origin_mock"))
    }

    /// Serialises the config back to TOML (every field, defaults included).
    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(self).unwrap_or_else(|e| format!("# cannot print config: {e}\n"))
    }
}

fn missing(file: &Path, table: &str) -> ConfigErrors {
    ConfigErrors(vec![ConfigError {
        file: file.to_path_buf(),
        position: None,
        field: table.to_string(),
        message: format!("missing table [{table}]"),
    }])
}

fn parse(text: &str, file: &Path) -> Result<Config, ConfigErrors> {
    let deserializer = toml::Deserializer::new(text);
    serde_path_to_error::deserialize(deserializer).map_err(|e| {
        let field = e.path().to_string();
        let inner = e.into_inner();
        let position = inner.span().map(|span| line_col(text, span.start));
        ConfigErrors(vec![ConfigError {
            file: file.to_path_buf(),
            position,
            field: if field == "." { String::new() } else { field },
            message: inner.message().trim().to_string(),
        }])
    })
}

/// 1-based line and column of a byte offset.
fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text.as_bytes()[..offset.min(text.len())];
    let line = before.iter().filter(|&&b| b == b'\n').count() + 1;
    let col = before.iter().rev().take_while(|&&b| b != b'\n').count() + 1;
    (line, col)
}

#[cfg(test)]
mod tests;
