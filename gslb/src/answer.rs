//! The gslb's state for one config ([`Gslb`]) and the answer to one query ([`Gslb::reply`]):
//! zone check, client location (ECS or source address), region, edge choice, response.
//!
//! A [`Gslb`] is immutable once built, except for the health it publishes into its
//! [`EdgeChoice`]; a reload builds a new one and swaps it in whole.

use std::net::IpAddr;
use std::sync::Arc;

use cdn_config::GslbConfig;
use hickory_proto::op::{Edns, Metadata, OpCode, ResponseCode};
use hickory_proto::rr::rdata::opt::{ClientSubnet, EdnsCode, EdnsOption};
use hickory_proto::rr::{DNSClass, RData, Record, RecordType};
use hickory_server::zone_handler::MessageRequest;
use prometheus::IntCounter;

use crate::choice::{EdgeChoice, EdgeInfo, EdgeStatus, Family, HealthView};
use crate::distance::Coordinates;
use crate::metrics::GslbMetrics;
use crate::network_map::{mask, NetworkMap};
use crate::zone::{Found, Zone, Zones};

/// Our EDNS UDP payload size: the DNS Flag Day 2020 value, which avoids IP fragmentation on
/// every common path.
pub const UDP_PAYLOAD: u16 = 1232;
/// The consistent-hash policy hashes the client's IPv4 /24 (the usual ECS source prefix)…
const HASH_PREFIX_V4: u8 = 24;
/// …or IPv6 /56 (a typical customer allocation).
const HASH_PREFIX_V6: u8 = 56;

/// Everything the gslb answers from, for one config.
pub struct Gslb {
    config: GslbConfig,
    zones: Zones,
    networks: NetworkMap<usize>,
    regions: Vec<String>,
    default_region: usize,
    choice: EdgeChoice,
    ttl: u32,
    consistent_hash: bool,
    /// `answer_counters[region][edge]`.
    answer_counters: Vec<Vec<IntCounter>>,
    fallback_counters: Vec<IntCounter>,
}

/// Where a query's client is, as the edge choice needs it (see [`Gslb::locate`]).
pub(crate) struct Client {
    region: usize,
    /// ECS scope of an answer for this client (before capping to the family's width).
    pub(crate) scope: u8,
    key: [u8; 16],
    key_len: usize,
}

impl Client {
    /// The consistent-hash key: the client's subnet (empty under other policies).
    fn key(&self) -> &[u8] {
        self.key.get(..self.key_len).unwrap_or_default()
    }

    /// The client's region.
    pub(crate) fn region(&self) -> usize {
        self.region
    }
}

/// A response before encoding: what [`Gslb::reply`] decided.
#[derive(Debug)]
pub struct Reply {
    /// Header of the response.
    pub metadata: Metadata,
    /// Answer section.
    pub answers: Vec<Record>,
    /// Authority section (the SOA of negative answers).
    pub authorities: Vec<Record>,
    /// The response's OPT record, when the query had one (with the ECS scope when used).
    pub edns: Option<Edns>,
}

impl Gslb {
    /// Builds the state for `config` (already validated). Edges that `previous` knew keep
    /// their health, so a reload does not flap them.
    pub fn build(
        config: &GslbConfig,
        metrics: &GslbMetrics,
        previous: Option<&Gslb>,
    ) -> Result<Gslb, String> {
        let ttl = u32::try_from(config.ttl.get().as_secs()).unwrap_or(u32::MAX);
        let zones = config
            .zones
            .iter()
            .enumerate()
            .map(|(i, z)| Zone::new(z, ttl, &format!("gslb.zones[{i}]")))
            .collect::<Result<Vec<_>, _>>()?;
        let mut networks = NetworkMap::new();
        let mut coordinates = Vec::new();
        for (i, region) in config.regions.iter().enumerate() {
            for net in &region.networks {
                networks.insert(net.0.addr(), net.0.prefix_len(), i);
            }
            coordinates.push(Coordinates {
                latitude: region.latitude,
                longitude: region.longitude,
            });
        }
        let regions: Vec<String> = config.regions.iter().map(|r| r.name.clone()).collect();
        let default_region = config
            .default_region_name()
            .and_then(|name| regions.iter().position(|r| r == name))
            .ok_or_else(|| "gslb.default_region: no such region".to_string())?;
        let mut edges = Vec::new();
        for (i, e) in config.edges.iter().enumerate() {
            let location = match (&e.region, e.latitude, e.longitude) {
                (Some(region), _, _) => regions
                    .iter()
                    .position(|r| r == region)
                    .and_then(|r| coordinates.get(r).copied())
                    .ok_or_else(|| format!("gslb.edges[{i}].region: no region {region:?}"))?,
                (None, Some(latitude), Some(longitude)) => Coordinates {
                    latitude,
                    longitude,
                },
                _ => return Err(format!("gslb.edges[{i}]: no location")),
            };
            edges.push(EdgeInfo {
                name: e.name.clone(),
                ipv4: e.ipv4.map(IpAddr::V4),
                ipv6: e.ipv6.map(IpAddr::V6),
                weight: e.weight,
                location,
            });
        }
        let known = previous.map(|p| (p.choice.edges().to_vec(), p.choice.health()));
        let initial = HealthView {
            edges: edges
                .iter()
                .map(|e| {
                    known
                        .as_ref()
                        .and_then(|(names, view)| {
                            let i = names.iter().position(|k| k.name == e.name)?;
                            view.edges.get(i).copied()
                        })
                        .unwrap_or_default()
                })
                .collect(),
        };
        let answer_counters = regions
            .iter()
            .map(|r| edges.iter().map(|e| metrics.answers(r, &e.name)).collect())
            .collect();
        let fallback_counters = regions.iter().map(|r| metrics.fallbacks(r)).collect();
        let choice = EdgeChoice::new(
            edges,
            &coordinates,
            config.policy,
            config.answers,
            config.tier_distance_km,
            &config.fallback,
            initial,
        );
        Ok(Gslb {
            config: config.clone(),
            zones: Zones::new(zones),
            networks,
            regions,
            default_region,
            choice,
            ttl,
            consistent_hash: config.policy == cdn_config::GslbPolicy::ConsistentHash,
            answer_counters,
            fallback_counters,
        })
    }

    /// The config this state was built from.
    pub fn config(&self) -> &GslbConfig {
        &self.config
    }

    /// The edge choice (the health checker publishes into it).
    pub fn choice(&self) -> &EdgeChoice {
        &self.choice
    }

    /// The answer to `request` from a client at `source`. Counts the query in `metrics`.
    pub fn reply(&self, request: &MessageRequest, source: IpAddr, metrics: &GslbMetrics) -> Reply {
        let mut reply = Reply {
            metadata: Metadata::response_from_request(&request.metadata),
            answers: Vec::new(),
            authorities: Vec::new(),
            edns: None,
        };
        let qtype = request
            .queries
            .queries()
            .first()
            .map_or(RecordType::Unknown(0), |q| q.query_type());
        let rcode = self.fill(request, source, metrics, &mut reply);
        reply.metadata.response_code = rcode;
        metrics.query(qtype, rcode);
        tracing::debug!(
            target: "cdn_gslb::query",
            id = request.metadata.id,
            client = %source,
            query = ?request.queries.queries().first().map(|q| q.name().to_string()),
            ?qtype,
            ?rcode,
            answers = reply.answers.len(),
            "answered"
        );
        reply
    }

    /// Fills `reply` and returns its response code.
    fn fill(
        &self,
        request: &MessageRequest,
        source: IpAddr,
        metrics: &GslbMetrics,
        reply: &mut Reply,
    ) -> ResponseCode {
        if let Some(query_edns) = &request.edns {
            let mut edns = Edns::new();
            edns.set_max_payload(UDP_PAYLOAD).set_version(0);
            reply.edns = Some(edns);
            if query_edns.version() > 0 {
                return ResponseCode::BADVERS;
            }
        }
        if request.metadata.op_code != OpCode::Query {
            return ResponseCode::NotImp;
        }
        let [query] = request.queries.queries() else {
            return ResponseCode::FormErr;
        };
        let subnet = match request
            .edns
            .as_ref()
            .and_then(|e| e.option(EdnsCode::Subnet))
        {
            Some(EdnsOption::Subnet(subnet)) => {
                if !ecs_is_valid(subnet) {
                    metrics.ecs_invalid();
                    return ResponseCode::FormErr;
                }
                Some(subnet)
            }
            _ => None,
        };
        if query.query_class() != DNSClass::IN && query.query_class() != DNSClass::ANY {
            return ResponseCode::Refused;
        }
        let Some(zone) = self.zones.zone_of(query.name()) else {
            return ResponseCode::Refused;
        };
        metrics.ecs(subnet.is_some());
        reply.metadata.authoritative = true;
        let mut scope = 0u8;
        let rcode = match zone.find(query.name(), query.query_type()) {
            Found::Edges => {
                let owner = query.original().name();
                let families: &[Family] = match query.query_type() {
                    RecordType::AAAA => &[Family::V6],
                    RecordType::A => &[Family::V4],
                    _ => &[Family::V4, Family::V6],
                };
                let client = self.locate(subnet.map(|s| (s.addr(), s.source_prefix())), source);
                scope = client.scope;
                for &family in families {
                    for addr in self.choose(&client, family) {
                        let data = match addr {
                            IpAddr::V4(a) => RData::A(a.into()),
                            IpAddr::V6(a) => RData::AAAA(a.into()),
                        };
                        reply
                            .answers
                            .push(Record::from_rdata(owner.clone(), self.ttl, data));
                    }
                }
                if reply.answers.is_empty() {
                    reply.authorities.push(zone.soa().clone());
                }
                ResponseCode::NoError
            }
            Found::Records(records) => {
                reply.answers.extend(records.into_iter().cloned());
                ResponseCode::NoError
            }
            Found::NoData => {
                reply.authorities.push(zone.soa().clone());
                ResponseCode::NoError
            }
            Found::NxDomain => {
                reply.authorities.push(zone.soa().clone());
                ResponseCode::NXDomain
            }
        };
        if let (Some(subnet), Some(edns)) = (subnet, reply.edns.as_mut()) {
            // Echo the option with the scope the answer holds for (0: valid for everybody).
            let scope = scope.min(if subnet.addr().is_ipv4() { 32 } else { 128 });
            edns.options_mut()
                .insert(EdnsOption::Subnet(ClientSubnet::new(
                    subnet.addr(),
                    subnet.source_prefix(),
                    scope,
                )));
        }
        rcode
    }

    /// Where the client of a query is: its ECS `subnet` (address and source prefix) if the
    /// query had a valid one, else its `source` address. Region, the ECS scope the answer holds
    /// for, and the consistent-hash key. Shared by the hickory path and the UDP fast path.
    pub(crate) fn locate(&self, subnet: Option<(IpAddr, u8)>, source: IpAddr) -> Client {
        let client = match subnet {
            Some((addr, _)) => addr,
            None => unmap(source),
        };
        let (region, mut scope) = match subnet {
            // Source prefix 0: the resolver tells nothing about the client (RFC 7871
            // §7.1.2): the default region, for everybody.
            Some((_, 0)) => (self.default_region, 0),
            _ => {
                let located = self.networks.lookup(client);
                (
                    located.value.copied().unwrap_or(self.default_region),
                    located.scope,
                )
            }
        };
        let mut key = [0u8; 16];
        let mut key_len = 0;
        if self.consistent_hash {
            let prefix = if client.is_ipv4() {
                HASH_PREFIX_V4
            } else {
                HASH_PREFIX_V6
            };
            scope = scope.max(prefix);
            match mask(client, prefix) {
                IpAddr::V4(a) => {
                    key[..4].copy_from_slice(&a.octets());
                    key_len = 3;
                }
                IpAddr::V6(a) => {
                    key.copy_from_slice(&a.octets());
                    key_len = 7;
                }
            }
        }
        Client {
            region,
            scope,
            key,
            key_len,
        }
    }

    /// The edge addresses of `family` for `client`, counted in the answer and fallback
    /// metrics.
    pub(crate) fn choose(
        &self,
        client: &Client,
        family: Family,
    ) -> impl Iterator<Item = IpAddr> + '_ {
        let region = client.region;
        let chosen = self.choice.choose(region, family, client.key());
        if chosen.fallback {
            if let Some(c) = self.fallback_counters.get(region) {
                c.inc();
            }
        }
        let counters = self.answer_counters.get(region);
        chosen.addresses.into_iter().map(move |(edge, addr)| {
            if let Some(c) = edge.and_then(|e| counters?.get(e)) {
                c.inc();
            }
            addr
        })
    }

    /// The zones (the fast path looks names up in them).
    pub(crate) fn zones(&self) -> &Zones {
        &self.zones
    }

    /// TTL of the edge answers.
    pub(crate) fn ttl(&self) -> u32 {
        self.ttl
    }

    /// Health of every edge, for the admin API: name and status.
    pub fn edge_health(&self) -> Vec<(String, EdgeStatus)> {
        let view = self.choice.health();
        self.choice
            .edges()
            .iter()
            .zip(view.edges.iter())
            .map(|(e, s)| (e.name.clone(), *s))
            .collect()
    }

    /// Names of the regions, in config order.
    pub fn regions(&self) -> &[String] {
        &self.regions
    }
}

/// RFC 7871 §7.1.1: the address must have no bit set past the source prefix, and the prefix
/// must fit the family. (hickory decodes only the prefix's bytes; bits inside the last byte
/// are ours to check.)
fn ecs_is_valid(subnet: &ClientSubnet) -> bool {
    let prefix = subnet.source_prefix();
    let addr = subnet.addr();
    let max = if addr.is_ipv4() { 32 } else { 128 };
    prefix <= max && mask(addr, prefix) == addr
}

/// An IPv4 client seen through a dual-stack socket, as IPv4.
fn unmap(addr: IpAddr) -> IpAddr {
    match addr {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(addr, IpAddr::V4),
        v4 => v4,
    }
}

/// A shared handle on the current state, swapped whole by reloads.
pub type SharedGslb = Arc<arc_swap::ArcSwap<Gslb>>;
