//! The `[gslb]` table: the authoritative DNS server that answers each client with the nearest
//! healthy edge. Its zones, its map of client networks to regions, the edges it sends clients
//! to, and how it checks them.

use crate::cidr::Cidr;
use crate::units::HumanDuration;
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

/// Where the gslb answers DNS by default (UDP and TCP).
pub const DEFAULT_GSLB_LISTEN: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 5353);
/// Where the gslb's admin API (metrics, reload) listens by default.
pub const DEFAULT_GSLB_ADMIN_LISTEN: SocketAddr =
    SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 9353);

/// The gslb: an authoritative DNS server for the CDN's zones.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GslbConfig {
    /// Addresses the gslb answers DNS on, over UDP and TCP. Default: `["127.0.0.1:5353"]`.
    #[serde(default = "default_listen")]
    pub listen: Vec<SocketAddr>,
    /// UDP sockets per listen address (`SO_REUSEPORT`, the kernel spreads queries over them);
    /// `0` means one per CPU core. Default: `0`.
    #[serde(default)]
    pub udp_sockets: usize,
    /// Address of the admin API: `GET /metrics` (Prometheus), `GET /edges` (health and load
    /// of every edge), `POST /reload`. Default: `"127.0.0.1:9353"`.
    #[serde(default = "default_admin_listen")]
    pub admin_listen: SocketAddr,
    /// TTL of the dynamic answers (the edge addresses): short, so that clients follow health
    /// changes. Also the TTL of negative answers. Default: `"30s"`.
    #[serde(default = "default_ttl")]
    pub ttl: HumanDuration,
    /// How many edge addresses one answer carries (1 to 16), all from the nearest tier.
    /// Default: `1`.
    #[serde(default = "default_answers")]
    pub answers: usize,
    /// How an edge is picked among the nearest tier: `"weighted"` (weighted random),
    /// `"p2c"` (the less loaded of two weighted random edges, by the load each edge reports) or
    /// `"consistent_hash"` (a ring over the client's subnet: a subnet keeps its edge, and the
    /// edge's cache stays warm for it). Default: `"weighted"`.
    #[serde(default)]
    pub policy: GslbPolicy,
    /// Edges at most this many kilometres farther than the nearest healthy one form the
    /// nearest tier, among which `policy` picks. Default: `500.0`.
    #[serde(default = "default_tier_distance")]
    pub tier_distance_km: f64,
    /// Region of clients that no network of `regions` contains. Default: the first region.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub default_region: String,
    /// Addresses answered when no edge of the asked family is healthy; empty means every edge
    /// of that family, health ignored (an answer that may work beats no answer).
    /// Default: `[]`.
    #[serde(default)]
    pub fallback: Vec<IpAddr>,
    /// Active health checks of the edges.
    #[serde(default)]
    pub health: GslbHealthConfig,
    /// The zones the gslb is authoritative for (at least one).
    #[serde(default)]
    pub zones: Vec<ZoneConfig>,
    /// Where clients are: regions with coordinates and the client networks in each.
    #[serde(default)]
    pub regions: Vec<RegionConfig>,
    /// The edges clients are sent to (at least one).
    #[serde(default)]
    pub edges: Vec<GslbEdgeConfig>,
}

impl Default for GslbConfig {
    fn default() -> Self {
        Self {
            listen: default_listen(),
            udp_sockets: 0,
            admin_listen: default_admin_listen(),
            ttl: default_ttl(),
            answers: default_answers(),
            policy: GslbPolicy::default(),
            tier_distance_km: default_tier_distance(),
            default_region: String::new(),
            fallback: Vec::new(),
            health: GslbHealthConfig::default(),
            zones: Vec::new(),
            regions: Vec::new(),
            edges: Vec::new(),
        }
    }
}

impl GslbConfig {
    /// The region of unmatched clients: `default_region`, or the first region when unset.
    pub fn default_region_name(&self) -> Option<&str> {
        if self.default_region.is_empty() {
            self.regions.first().map(|r| r.name.as_str())
        } else {
            Some(self.default_region.as_str())
        }
    }
}

/// How the gslb picks an edge among the nearest tier.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GslbPolicy {
    /// Weighted random.
    #[default]
    Weighted,
    /// Power of two choices on the load each edge reports in its `/healthz`.
    P2c,
    /// Consistent hash of the client's subnet.
    ConsistentHash,
}

/// Active health checks of the edges: `GET health_url` every `interval`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GslbHealthConfig {
    /// Probe the edges; off = every edge counts as healthy and unloaded. Default: `true`.
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Time between two probes of one edge. Default: `"1s"`.
    #[serde(default = "default_interval")]
    pub interval: HumanDuration,
    /// Bound on one probe (at most `interval`). Default: `"500ms"`.
    #[serde(default = "default_timeout")]
    pub timeout: HumanDuration,
    /// Good probes in a row that bring an edge back. Default: `2`.
    #[serde(default = "default_rise_fall")]
    pub rise: u32,
    /// Failed probes in a row that take an edge out. Default: `2`.
    #[serde(default = "default_rise_fall")]
    pub fall: u32,
    /// An edge that sheds load gets clients again once its reported load falls to this.
    /// Default: `0.7`.
    #[serde(default = "default_load_low")]
    pub load_low: f64,
    /// An edge whose reported load reaches this sheds load: it gets no new clients while
    /// another healthy edge can take them. Default: `0.9`.
    #[serde(default = "default_load_high")]
    pub load_high: f64,
}

impl Default for GslbHealthConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            interval: default_interval(),
            timeout: default_timeout(),
            rise: default_rise_fall(),
            fall: default_rise_fall(),
            load_low: default_load_low(),
            load_high: default_load_high(),
        }
    }
}

/// One zone the gslb is authoritative for.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ZoneConfig {
    /// The zone's apex, e.g. `"cdn.example.com"`.
    pub name: String,
    /// The zone's name servers (NS records at the apex; the first is the SOA's primary).
    pub nameservers: Vec<String>,
    /// Mailbox of the zone's administrator, as a name (`hostmaster.cdn.example.com`).
    pub hostmaster: String,
    /// SOA serial. Default: `1`.
    #[serde(default = "default_serial")]
    pub serial: u32,
    /// The names answered with edge addresses (A and AAAA): exact names, or wildcards such as
    /// `"*.img.cdn.example.com"` (any name below `img.cdn.example.com`).
    #[serde(default)]
    pub cdn_names: Vec<String>,
    /// Static records for everything else in the zone.
    #[serde(default)]
    pub records: Vec<RecordConfig>,
}

/// A static record of a zone.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecordConfig {
    /// Owner name, inside the zone (`"ns1.cdn.example.com"`).
    pub name: String,
    /// `"A"`, `"AAAA"`, `"CNAME"`, `"TXT"` or `"MX"`.
    #[serde(rename = "type")]
    pub kind: RecordKind,
    /// The data: an address, a name, a text, or `"10 mail.example.com"` for MX.
    pub value: String,
    /// TTL. Default: `"1h"`.
    #[serde(default = "default_record_ttl")]
    pub ttl: HumanDuration,
}

/// Types of static records.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[allow(clippy::upper_case_acronyms)]
pub enum RecordKind {
    /// An IPv4 address.
    A,
    /// An IPv6 address.
    AAAA,
    /// An alias to another name.
    CNAME,
    /// Text.
    TXT,
    /// A mail exchanger: preference and name.
    MX,
}

/// A region: where a group of client networks is, on the globe.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegionConfig {
    /// The region's name (edges refer to it; it labels the metrics).
    pub name: String,
    /// Latitude in degrees (−90 to 90).
    pub latitude: f64,
    /// Longitude in degrees (−180 to 180).
    pub longitude: f64,
    /// Client networks in this region (IPv4 and IPv6 CIDRs). The longest matching prefix over
    /// all regions wins.
    #[serde(default)]
    pub networks: Vec<Cidr>,
}

/// An edge the gslb sends clients to.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GslbEdgeConfig {
    /// The edge's name (labels the metrics and the admin API).
    pub name: String,
    /// Its IPv4 address, answered to A queries.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ipv4: Option<Ipv4Addr>,
    /// Its IPv6 address, answered to AAAA queries.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ipv6: Option<Ipv6Addr>,
    /// The region it stands in (its location); or give `latitude` and `longitude`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// Latitude in degrees, when no `region` is given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latitude: Option<f64>,
    /// Longitude in degrees, when no `region` is given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub longitude: Option<f64>,
    /// Relative share of clients within its tier (0 to 1000; 0 = drained). Default: `1`.
    #[serde(default = "default_weight")]
    pub weight: u32,
    /// `http://HOST:PORT/PATH` of the edge's health endpoint (the edge admin API's
    /// `/healthz`), which reports `load` (0 to 1). Unset: never probed, always healthy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health_url: Option<String>,
}

fn yes() -> bool {
    true
}
fn default_listen() -> Vec<SocketAddr> {
    vec![DEFAULT_GSLB_LISTEN]
}
fn default_admin_listen() -> SocketAddr {
    DEFAULT_GSLB_ADMIN_LISTEN
}
fn default_ttl() -> HumanDuration {
    HumanDuration::from_secs(30)
}
fn default_answers() -> usize {
    1
}
fn default_tier_distance() -> f64 {
    500.0
}
fn default_interval() -> HumanDuration {
    HumanDuration::from_secs(1)
}
fn default_timeout() -> HumanDuration {
    HumanDuration::from_millis(500)
}
fn default_rise_fall() -> u32 {
    2
}
fn default_load_low() -> f64 {
    0.7
}
fn default_load_high() -> f64 {
    0.9
}
fn default_serial() -> u32 {
    1
}
fn default_record_ttl() -> HumanDuration {
    HumanDuration::from_secs(3600)
}
fn default_weight() -> u32 {
    1
}

/// Most addresses in one answer (`gslb.answers`).
const MAX_ANSWERS: usize = 16;
/// Largest edge weight (`gslb.edges[].weight`).
const MAX_WEIGHT: u32 = 1000;
/// Most probes in a row for `rise` and `fall`.
const MAX_RISE_FALL: u32 = 100;
/// Longest TTL (one week): longer would defeat failover.
const MAX_TTL: Duration = Duration::from_secs(7 * 24 * 3600);

/// A DNS name in lower case without its final dot, or why it is not one. `wildcard` allows a
/// leading `*.` label.
pub fn normalize_name(name: &str, wildcard: bool) -> Result<String, String> {
    let lower = name.trim_end_matches('.').to_ascii_lowercase();
    let body = match lower.strip_prefix("*.") {
        Some(rest) if wildcard => rest,
        Some(_) => return Err(format!("{name:?}: a wildcard is not allowed here")),
        None => lower.as_str(),
    };
    if body.is_empty() || body.len() > 253 {
        return Err(format!("{name:?} is not a DNS name"));
    }
    for label in body.split('.') {
        let ok = !label.is_empty()
            && label.len() <= 63
            && label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if !ok {
            return Err(format!(
                "{name:?} is not a DNS name (labels of letters, digits, - and _, 1 to 63 long)"
            ));
        }
    }
    Ok(lower)
}

/// Whether `name` is `zone` or below it (both normalised).
fn in_zone(name: &str, zone: &str) -> bool {
    name == zone
        || name
            .strip_suffix(zone)
            .is_some_and(|head| head.ends_with('.'))
}

/// Every problem of the `[gslb]` table, as `(field path, message)`.
pub(crate) fn problems(gslb: &GslbConfig, out: &mut Vec<(String, String)>) {
    let mut push = |field: String, message: String| out.push((field, message));
    if gslb.listen.is_empty() {
        push(
            "gslb.listen".into(),
            "no listen address: the gslb needs at least one".into(),
        );
    }
    if gslb.udp_sockets > 1024 {
        push(
            "gslb.udp_sockets".into(),
            format!(
                "{} is too many (at most 1024; 0 = one per core)",
                gslb.udp_sockets
            ),
        );
    }
    if gslb.ttl.get() > MAX_TTL {
        push(
            "gslb.ttl".into(),
            format!("{} is too long for failover (at most 1 week)", gslb.ttl),
        );
    }
    if !(1..=MAX_ANSWERS).contains(&gslb.answers) {
        push(
            "gslb.answers".into(),
            format!("must be between 1 and {MAX_ANSWERS}, got {}", gslb.answers),
        );
    }
    if !(gslb.tier_distance_km >= 0.0 && gslb.tier_distance_km.is_finite()) {
        push(
            "gslb.tier_distance_km".into(),
            format!("must be 0 or more, got {}", gslb.tier_distance_km),
        );
    }
    health_problems(&gslb.health, &mut push);
    if gslb.zones.is_empty() {
        push(
            "gslb.zones".into(),
            "no zones: add at least one [[gslb.zones]] the gslb is authoritative for".into(),
        );
    }
    let mut zone_names: Vec<String> = Vec::new();
    for (i, zone) in gslb.zones.iter().enumerate() {
        zone_problems(i, zone, &mut zone_names, &mut push);
    }
    let mut regions: HashSet<&str> = HashSet::new();
    let mut networks: HashMap<Cidr, String> = HashMap::new();
    if gslb.regions.is_empty() {
        push(
            "gslb.regions".into(),
            "no regions: add at least one [[gslb.regions]] (a name and coordinates)".into(),
        );
    }
    for (i, region) in gslb.regions.iter().enumerate() {
        let field = |name: &str| format!("gslb.regions[{i}].{name}");
        if region.name.is_empty() {
            push(field("name"), "must not be empty".into());
        } else if !regions.insert(region.name.as_str()) {
            push(field("name"), format!("{:?} is listed twice", region.name));
        }
        coordinate_problems(region.latitude, region.longitude, &field, &mut push);
        for (j, net) in region.networks.iter().enumerate() {
            let here = format!("gslb.regions[{i}].networks[{j}]");
            if let Some(first) = networks.get(net) {
                push(here, format!("{net} is already {first}"));
            } else {
                networks.insert(*net, here);
            }
        }
    }
    if !gslb.default_region.is_empty() && !regions.contains(gslb.default_region.as_str()) {
        push(
            "gslb.default_region".into(),
            format!("{:?} is not a region of gslb.regions", gslb.default_region),
        );
    }
    if gslb.edges.is_empty() {
        push(
            "gslb.edges".into(),
            "no edges: add at least one [[gslb.edges]] to send clients to".into(),
        );
    }
    let mut edge_names: HashSet<&str> = HashSet::new();
    for (i, edge) in gslb.edges.iter().enumerate() {
        let field = |name: &str| format!("gslb.edges[{i}].{name}");
        if edge.name.is_empty() || !edge.name.bytes().all(|b| b.is_ascii_graphic()) {
            push(
                field("name"),
                format!("{:?} is not a valid edge name (no spaces)", edge.name),
            );
        } else if !edge_names.insert(edge.name.as_str()) {
            push(field("name"), format!("{:?} is listed twice", edge.name));
        }
        if edge.ipv4.is_none() && edge.ipv6.is_none() {
            push(
                field("ipv4"),
                "the edge has no address: give ipv4, ipv6 or both".into(),
            );
        }
        match (&edge.region, edge.latitude, edge.longitude) {
            (Some(region), None, None) => {
                if !regions.contains(region.as_str()) {
                    push(
                        field("region"),
                        format!("{region:?} is not a region of gslb.regions"),
                    );
                }
            }
            (None, Some(lat), Some(lon)) => coordinate_problems(lat, lon, &field, &mut push),
            _ => push(
                field("region"),
                "give the edge's location as either region or latitude and longitude".into(),
            ),
        }
        if edge.weight > MAX_WEIGHT {
            push(
                field("weight"),
                format!("must be between 0 and {MAX_WEIGHT}, got {}", edge.weight),
            );
        }
        if let Some(url) = &edge.health_url {
            if let Err(why) = split_http_url(url) {
                push(field("health_url"), why);
            }
        }
    }
}

fn coordinate_problems(
    latitude: f64,
    longitude: f64,
    field: &dyn Fn(&str) -> String,
    push: &mut dyn FnMut(String, String),
) {
    if !(-90.0..=90.0).contains(&latitude) {
        push(
            field("latitude"),
            format!("must be between -90 and 90, got {latitude}"),
        );
    }
    if !(-180.0..=180.0).contains(&longitude) {
        push(
            field("longitude"),
            format!("must be between -180 and 180, got {longitude}"),
        );
    }
}

fn health_problems(health: &GslbHealthConfig, push: &mut dyn FnMut(String, String)) {
    let field = |name: &str| format!("gslb.health.{name}");
    if health.interval.get() < Duration::from_millis(10) {
        push(field("interval"), "must be at least 10ms".into());
    }
    if health.timeout.get().is_zero() {
        push(field("timeout"), "must be more than 0s".into());
    } else if health.timeout.get() > health.interval.get() {
        push(
            field("timeout"),
            format!(
                "{} is longer than gslb.health.interval ({}): a probe must end before the next",
                health.timeout, health.interval
            ),
        );
    }
    for (name, n) in [("rise", health.rise), ("fall", health.fall)] {
        if !(1..=MAX_RISE_FALL).contains(&n) {
            push(
                field(name),
                format!("must be between 1 and {MAX_RISE_FALL}, got {n}"),
            );
        }
    }
    let (low, high) = (health.load_low, health.load_high);
    if !(0.0..=1.0).contains(&high) {
        push(
            field("load_high"),
            format!("must be between 0.0 and 1.0, got {high}"),
        );
    }
    if !(0.0..=1.0).contains(&low) {
        push(
            field("load_low"),
            format!("must be between 0.0 and 1.0, got {low}"),
        );
    } else if low > high {
        push(
            field("load_low"),
            format!("{low} is above gslb.health.load_high ({high}): the low watermark must be the lower"),
        );
    }
}

fn zone_problems(
    i: usize,
    zone: &ZoneConfig,
    zone_names: &mut Vec<String>,
    push: &mut dyn FnMut(String, String),
) {
    let field = |name: &str| format!("gslb.zones[{i}].{name}");
    let apex = match normalize_name(&zone.name, false) {
        Ok(apex) => apex,
        Err(why) => {
            push(field("name"), why);
            return;
        }
    };
    if zone_names.contains(&apex) {
        push(field("name"), format!("zone {apex:?} is listed twice"));
    }
    zone_names.push(apex.clone());
    if zone.nameservers.is_empty() {
        push(
            field("nameservers"),
            "at least one name server (the NS records of the zone)".into(),
        );
    }
    for (j, ns) in zone.nameservers.iter().enumerate() {
        if let Err(why) = normalize_name(ns, false) {
            push(format!("gslb.zones[{i}].nameservers[{j}]"), why);
        }
    }
    if let Err(why) = normalize_name(&zone.hostmaster, false) {
        push(field("hostmaster"), why);
    }
    let mut cdn: HashSet<String> = HashSet::new();
    for (j, name) in zone.cdn_names.iter().enumerate() {
        let here = format!("gslb.zones[{i}].cdn_names[{j}]");
        match normalize_name(name, true) {
            Ok(n) if !in_zone(n.trim_start_matches("*."), &apex) => {
                push(here, format!("{name:?} is outside the zone {apex:?}"))
            }
            Ok(n) => {
                if !cdn.insert(n) {
                    push(here, format!("{name:?} is listed twice"));
                }
            }
            Err(why) => push(here, why),
        }
    }
    let mut kinds: HashMap<String, Vec<RecordKind>> = HashMap::new();
    for (j, record) in zone.records.iter().enumerate() {
        let here = |name: &str| format!("gslb.zones[{i}].records[{j}].{name}");
        let owner = match normalize_name(&record.name, false) {
            Ok(n) if in_zone(&n, &apex) => n,
            Ok(_) => {
                push(
                    here("name"),
                    format!("{:?} is outside the zone {apex:?}", record.name),
                );
                continue;
            }
            Err(why) => {
                push(here("name"), why);
                continue;
            }
        };
        if let Err(why) = record_value_problem(record) {
            push(here("value"), why);
        }
        if record.ttl.get() > MAX_TTL {
            push(here("ttl"), format!("{} is longer than a week", record.ttl));
        }
        let dynamic = cdn.contains(&owner);
        let existing = kinds.entry(owner.clone()).or_default();
        let clash = match record.kind {
            RecordKind::CNAME => !existing.is_empty() || dynamic || owner == apex,
            _ => existing.contains(&RecordKind::CNAME),
        } || (dynamic && matches!(record.kind, RecordKind::A | RecordKind::AAAA));
        if clash {
            push(
                here("type"),
                format!(
                    "{:?} {:?} clashes with the other data of {owner:?} (a CNAME stands alone, and cdn_names get their A/AAAA from the edges)",
                    record.name, record.kind
                ),
            );
        }
        existing.push(record.kind);
    }
}

fn record_value_problem(record: &RecordConfig) -> Result<(), String> {
    let value = record.value.trim();
    match record.kind {
        RecordKind::A => value
            .parse::<Ipv4Addr>()
            .map(drop)
            .map_err(|_| format!("{value:?} is not an IPv4 address")),
        RecordKind::AAAA => value
            .parse::<Ipv6Addr>()
            .map(drop)
            .map_err(|_| format!("{value:?} is not an IPv6 address")),
        RecordKind::CNAME => normalize_name(value, false).map(drop),
        RecordKind::TXT => Ok(()),
        RecordKind::MX => parse_mx(value).map(drop),
    }
}

/// An MX value `"10 mail.example.com"`: preference and exchange (normalised).
pub fn parse_mx(value: &str) -> Result<(u16, String), String> {
    let mut parts = value.split_whitespace();
    let (Some(pref), Some(host), None) = (parts.next(), parts.next(), parts.next()) else {
        return Err(format!(
            "{value:?} is not an MX value: write the preference and the host, e.g. \"10 mail.example.com\""
        ));
    };
    let pref = pref
        .parse::<u16>()
        .map_err(|_| format!("{value:?}: the MX preference must be a number 0 to 65535"))?;
    Ok((pref, normalize_name(host, false)?))
}

/// Splits `http://HOST:PORT/PATH` into the socket address and the path (`/` when absent).
/// Only IP literals: the gslb does not depend on a resolver to find its edges.
pub fn split_http_url(url: &str) -> Result<(SocketAddr, String), String> {
    let rest = url.strip_prefix("http://").ok_or_else(|| {
        format!("{url:?} is not an http:// URL (e.g. \"http://127.0.0.1:9080/healthz\")")
    })?;
    let (authority, path) = match rest.find('/') {
        Some(at) => (&rest[..at], &rest[at..]),
        None => (rest, "/"),
    };
    let addr: SocketAddr = authority.parse().map_err(|_| {
        format!("{url:?}: the host must be an IP address and a port, e.g. 127.0.0.1:9080")
    })?;
    if !path.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(format!(
            "{url:?}: the path has spaces or control characters"
        ));
    }
    Ok((addr, path.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_checked_and_lowered() {
        assert_eq!(
            normalize_name("WWW.Cdn.Example.COM.", false).unwrap(),
            "www.cdn.example.com"
        );
        assert!(normalize_name("*.cdn.example.com", false).is_err());
        assert_eq!(
            normalize_name("*.cdn.example.com", true).unwrap(),
            "*.cdn.example.com"
        );
        assert!(normalize_name("a..b", false).is_err());
        assert!(normalize_name("a b", false).is_err());
        assert!(in_zone("www.cdn.example.com", "cdn.example.com"));
        assert!(!in_zone("xcdn.example.com", "cdn.example.com"));
    }

    #[test]
    fn urls_and_mx_values_split() {
        let (addr, path) = split_http_url("http://127.0.0.1:9080/healthz").unwrap();
        assert_eq!(addr.port(), 9080);
        assert_eq!(path, "/healthz");
        assert_eq!(split_http_url("http://[::1]:80").unwrap().1, "/");
        assert!(split_http_url("https://127.0.0.1:1/").is_err());
        assert!(split_http_url("http://edge.example:80/").is_err());
        assert_eq!(
            parse_mx("10 Mail.example.com").unwrap(),
            (10, "mail.example.com".into())
        );
        assert!(parse_mx("mail.example.com").is_err());
    }
}
