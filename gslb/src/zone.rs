//! The zones the gslb is authoritative for, built from `[[gslb.zones]]`: SOA and NS at the apex,
//! the CDN names (answered with edge addresses), the static records, and which names exist
//! (for NXDOMAIN versus NODATA).

use std::collections::{HashMap, HashSet};
use std::net::{Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

use cdn_config::{normalize_name, parse_mx, RecordKind, ZoneConfig};
use hickory_proto::rr::rdata::{CNAME, MX, NS, SOA, TXT};
use hickory_proto::rr::{LowerName, Name, RData, Record, RecordType};

/// SOA timers: refresh, retry, expire. Nothing transfers this zone (the gslb answers from
/// config), so they only need to be sane for tools that read them.
const SOA_REFRESH: i32 = 3600;
const SOA_RETRY: i32 = 600;
const SOA_EXPIRE: i32 = 604_800;
/// TTL of the SOA and NS records.
const APEX_TTL: u32 = 3600;

/// One zone.
#[derive(Debug)]
pub struct Zone {
    apex: LowerName,
    /// The SOA record, whose TTL is the negative-caching TTL (RFC 2308: min of TTL and
    /// MINIMUM), put in the authority section of negative answers.
    soa: Record,
    ns: Vec<Record>,
    cdn_exact: HashSet<LowerName>,
    /// Parents of the wildcard CDN names: `*.img.cdn.example.com` is stored as
    /// `img.cdn.example.com`.
    cdn_wildcards: Vec<LowerName>,
    records: HashMap<LowerName, Vec<Record>>,
    /// Every name that exists in the zone, empty non-terminals included.
    existing: HashSet<LowerName>,
    /// The names above in lowercase wire format, for the UDP fast path, which looks a question
    /// up straight from the datagram's bytes without building a `Name`.
    wire: WireNames,
}

/// A zone's names in lowercase wire format (length-prefixed labels, then a zero byte).
#[derive(Debug)]
struct WireNames {
    apex: Box<[u8]>,
    cdn_exact: HashSet<Box<[u8]>>,
    cdn_wildcards: Vec<Box<[u8]>>,
    records: HashSet<Box<[u8]>>,
}

/// `name` in wire format, uncompressed (already lowercase: it is a `LowerName`).
fn wire(name: &LowerName) -> Box<[u8]> {
    let mut out = Vec::with_capacity(name.len() + 2);
    for label in name.iter() {
        // A label is at most 63 bytes: `Name` refuses longer ones.
        out.push(u8::try_from(label.len()).unwrap_or(u8::MAX));
        out.extend_from_slice(label);
    }
    out.push(0);
    out.into_boxed_slice()
}

/// A question name as the fast path reads it from a datagram: lowercase wire format and the
/// offset of each label (the final zero byte included), so suffixes are compared only at label
/// boundaries.
#[derive(Debug)]
pub struct WireName<'a> {
    /// Lowercase wire format, ending with the zero byte.
    pub bytes: &'a [u8],
    /// Offset in `bytes` of every label, the root (final zero) included.
    pub starts: &'a [u8],
}

impl WireName<'_> {
    /// Whether `suffix` (wire format) is this name or one of its ancestors; the offset where it
    /// starts (0: the name itself).
    fn ends_with(&self, suffix: &[u8]) -> Option<usize> {
        let offset = self.bytes.len().checked_sub(suffix.len())?;
        let at_label = self.starts.iter().any(|&s| usize::from(s) == offset);
        (at_label && self.bytes.get(offset..) == Some(suffix)).then_some(offset)
    }
}

/// What the zone has for one question.
#[derive(Debug)]
pub enum Found<'z> {
    /// A CDN name and an address type: answer with edges.
    Edges,
    /// Records of the asked type (or the name's CNAME).
    Records(Vec<&'z Record>),
    /// The name exists but has no data of that type.
    NoData,
    /// The name does not exist.
    NxDomain,
}

fn name(text: &str, field: &str) -> Result<Name, String> {
    Name::from_str(&format!("{text}.")).map_err(|e| format!("{field}: {text:?}: {e}"))
}

impl Zone {
    /// Builds zone `config` (already validated); `negative_ttl` is the SOA MINIMUM.
    pub fn new(config: &ZoneConfig, negative_ttl: u32, field: &str) -> Result<Zone, String> {
        let apex_text =
            normalize_name(&config.name, false).map_err(|e| format!("{field}.name: {e}"))?;
        let apex = name(&apex_text, &format!("{field}.name"))?;
        let mut ns = Vec::new();
        for (i, server) in config.nameservers.iter().enumerate() {
            let host = normalize_name(server, false)
                .and_then(|n| name(&n, ""))
                .map_err(|e| format!("{field}.nameservers[{i}]: {e}"))?;
            ns.push(Record::from_rdata(
                apex.clone(),
                APEX_TTL,
                RData::NS(NS(host)),
            ));
        }
        let mname = match ns.first().map(|r| &r.data) {
            Some(RData::NS(NS(host))) => host.clone(),
            _ => apex.clone(),
        };
        let rname = normalize_name(&config.hostmaster, false)
            .and_then(|n| name(&n, ""))
            .map_err(|e| format!("{field}.hostmaster: {e}"))?;
        let soa = Record::from_rdata(
            apex.clone(),
            negative_ttl,
            RData::SOA(SOA::new(
                mname,
                rname,
                config.serial,
                SOA_REFRESH,
                SOA_RETRY,
                SOA_EXPIRE,
                negative_ttl,
            )),
        );
        let apex = LowerName::from(apex);
        let mut existing = HashSet::new();
        existing.insert(apex.clone());
        let add_existing = |n: &LowerName, existing: &mut HashSet<LowerName>| {
            let mut at = n.clone();
            while at.num_labels() > apex.num_labels() && existing.insert(at.clone()) {
                at = at.base_name();
            }
        };
        let mut cdn_exact = HashSet::new();
        let mut cdn_wildcards = Vec::new();
        for (i, text) in config.cdn_names.iter().enumerate() {
            let here = format!("{field}.cdn_names[{i}]");
            let normal = normalize_name(text, true).map_err(|e| format!("{here}: {e}"))?;
            match normal.strip_prefix("*.") {
                Some(parent) => {
                    let parent = LowerName::from(name(parent, &here)?);
                    add_existing(&parent, &mut existing);
                    cdn_wildcards.push(parent);
                }
                None => {
                    let exact = LowerName::from(name(&normal, &here)?);
                    add_existing(&exact, &mut existing);
                    cdn_exact.insert(exact);
                }
            }
        }
        let mut records: HashMap<LowerName, Vec<Record>> = HashMap::new();
        for (i, record) in config.records.iter().enumerate() {
            let here = format!("{field}.records[{i}]");
            let owner_text =
                normalize_name(&record.name, false).map_err(|e| format!("{here}.name: {e}"))?;
            let owner = name(&owner_text, &format!("{here}.name"))?;
            let ttl = u32::try_from(record.ttl.get().as_secs()).unwrap_or(u32::MAX);
            let value = record.value.trim();
            let bad = |what: &str| format!("{here}.value: {value:?} is not {what}");
            let data = match record.kind {
                RecordKind::A => RData::A(
                    value
                        .parse::<Ipv4Addr>()
                        .map_err(|_| bad("an IPv4 address"))?
                        .into(),
                ),
                RecordKind::AAAA => RData::AAAA(
                    value
                        .parse::<Ipv6Addr>()
                        .map_err(|_| bad("an IPv6 address"))?
                        .into(),
                ),
                RecordKind::CNAME => {
                    let target =
                        normalize_name(value, false).map_err(|e| format!("{here}.value: {e}"))?;
                    RData::CNAME(CNAME(name(&target, &format!("{here}.value"))?))
                }
                RecordKind::TXT => {
                    // A character-string holds at most 255 bytes: longer text is split.
                    let chunks = value
                        .as_bytes()
                        .chunks(255)
                        .map(|c| String::from_utf8_lossy(c).into_owned())
                        .collect();
                    RData::TXT(TXT::new(chunks))
                }
                RecordKind::MX => {
                    let (preference, host) =
                        parse_mx(value).map_err(|e| format!("{here}.value: {e}"))?;
                    RData::MX(MX::new(preference, name(&host, &format!("{here}.value"))?))
                }
            };
            let lower = LowerName::from(owner.clone());
            add_existing(&lower, &mut existing);
            records
                .entry(lower)
                .or_default()
                .push(Record::from_rdata(owner, ttl, data));
        }
        let wire = WireNames {
            apex: wire(&apex),
            cdn_exact: cdn_exact.iter().map(wire).collect(),
            cdn_wildcards: cdn_wildcards.iter().map(wire).collect(),
            records: records.keys().map(wire).collect(),
        };
        Ok(Zone {
            apex,
            soa,
            ns,
            cdn_exact,
            cdn_wildcards,
            records,
            existing,
            wire,
        })
    }

    /// The zone's apex.
    pub fn apex(&self) -> &LowerName {
        &self.apex
    }

    /// The SOA record (authority section of negative answers).
    pub fn soa(&self) -> &Record {
        &self.soa
    }

    /// Whether `qname` is a CDN name (exact, or below a wildcard's parent) and not a name with
    /// static records of its own.
    fn is_cdn_name(&self, qname: &LowerName) -> bool {
        if self.cdn_exact.contains(qname) {
            return true;
        }
        if self.records.contains_key(qname) {
            return false;
        }
        self.cdn_wildcards
            .iter()
            .any(|parent| qname.num_labels() > parent.num_labels() && parent.zone_of(qname))
    }

    /// [`is_cdn_name`](Self::is_cdn_name) on a wire-format name, without allocating.
    fn is_cdn_wire(&self, qname: &WireName<'_>) -> bool {
        if self.wire.cdn_exact.contains(qname.bytes) {
            return true;
        }
        if self.wire.records.contains(qname.bytes) {
            return false;
        }
        self.wire
            .cdn_wildcards
            .iter()
            .any(|parent| qname.ends_with(parent).is_some_and(|offset| offset > 0))
    }

    /// What the zone has for `qname` (inside the zone) and `qtype`.
    pub fn find(&self, qname: &LowerName, qtype: RecordType) -> Found<'_> {
        if self.is_cdn_name(qname) {
            return match qtype {
                RecordType::A | RecordType::AAAA | RecordType::ANY => Found::Edges,
                _ => Found::NoData,
            };
        }
        let mut found: Vec<&Record> = Vec::new();
        if *qname == self.apex {
            match qtype {
                RecordType::SOA => found.push(&self.soa),
                RecordType::NS => found.extend(self.ns.iter()),
                RecordType::ANY => found.extend(std::iter::once(&self.soa).chain(self.ns.iter())),
                _ => {}
            }
        }
        if let Some(records) = self.records.get(qname) {
            let cname = records
                .iter()
                .find(|r| r.record_type() == RecordType::CNAME);
            match cname {
                // A CNAME stands alone: it answers every type (the resolver follows it).
                Some(c) => found.push(c),
                None => found.extend(
                    records
                        .iter()
                        .filter(|r| qtype == RecordType::ANY || r.record_type() == qtype),
                ),
            }
        }
        if !found.is_empty() {
            Found::Records(found)
        } else if self.existing.contains(qname) {
            Found::NoData
        } else {
            Found::NxDomain
        }
    }
}

/// Every zone of the gslb; a question goes to the zone with the longest matching apex.
#[derive(Debug, Default)]
pub struct Zones {
    zones: Vec<Zone>,
}

impl Zones {
    /// The zones, longest apex first so that a child zone wins over its parent.
    pub fn new(mut zones: Vec<Zone>) -> Self {
        zones.sort_by_key(|z| std::cmp::Reverse(z.apex.num_labels()));
        Zones { zones }
    }

    /// The zone `qname` belongs to, if any of ours.
    pub fn zone_of(&self, qname: &LowerName) -> Option<&Zone> {
        self.zones.iter().find(|z| z.apex.zone_of(qname))
    }

    /// For the UDP fast path: whether `qname` is in one of our zones (the same one
    /// [`zone_of`](Self::zone_of) picks) and a CDN name there, i.e. whether
    /// [`Zone::find`] answers [`Found::Edges`] for an address type.
    pub fn is_cdn_name_wire(&self, qname: &WireName<'_>) -> bool {
        self.zones
            .iter()
            .find(|z| qname.ends_with(&z.wire.apex).is_some())
            .is_some_and(|z| z.is_cdn_wire(qname))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cdn_config::RecordConfig;

    fn lower(s: &str) -> LowerName {
        LowerName::from(Name::from_str(s).unwrap())
    }

    fn zone() -> Zone {
        let record = |name: &str, kind, value: &str| RecordConfig {
            name: name.into(),
            kind,
            value: value.into(),
            ttl: cdn_config::HumanDuration::from_secs(300),
        };
        let config = ZoneConfig {
            name: "cdn.example.com".into(),
            nameservers: vec!["ns1.cdn.example.com".into()],
            hostmaster: "hostmaster.cdn.example.com".into(),
            serial: 7,
            cdn_names: vec!["www.cdn.example.com".into(), "*.img.cdn.example.com".into()],
            records: vec![
                record("ns1.cdn.example.com", RecordKind::A, "127.0.0.1"),
                record("cdn.example.com", RecordKind::TXT, "v=spf1 -all"),
                record("cdn.example.com", RecordKind::MX, "10 mail.example.com"),
                record(
                    "alias.cdn.example.com",
                    RecordKind::CNAME,
                    "www.cdn.example.com",
                ),
                record("deep.a.b.cdn.example.com", RecordKind::A, "192.0.2.1"),
            ],
        };
        Zone::new(&config, 30, "gslb.zones[0]").unwrap()
    }

    #[test]
    fn answers_nodata_and_nxdomain() {
        let z = zone();
        assert!(matches!(
            z.find(&lower("www.cdn.example.com."), RecordType::A),
            Found::Edges
        ));
        assert!(matches!(
            z.find(&lower("WWW.cdn.example.com."), RecordType::AAAA),
            Found::Edges
        ));
        assert!(matches!(
            z.find(&lower("x.y.img.cdn.example.com."), RecordType::A),
            Found::Edges
        ));
        // The wildcard's parent exists but is not a CDN name itself.
        assert!(matches!(
            z.find(&lower("img.cdn.example.com."), RecordType::A),
            Found::NoData
        ));
        assert!(matches!(
            z.find(&lower("www.cdn.example.com."), RecordType::TXT),
            Found::NoData
        ));
        assert!(matches!(
            z.find(&lower("nope.cdn.example.com."), RecordType::A),
            Found::NxDomain
        ));
        // Empty non-terminal.
        assert!(matches!(
            z.find(&lower("b.cdn.example.com."), RecordType::A),
            Found::NoData
        ));
        match z.find(&lower("cdn.example.com."), RecordType::NS) {
            Found::Records(r) => assert_eq!(r.len(), 1),
            other => panic!("{other:?}"),
        }
        match z.find(&lower("cdn.example.com."), RecordType::SOA) {
            Found::Records(r) => assert_eq!(r[0].record_type(), RecordType::SOA),
            other => panic!("{other:?}"),
        }
        match z.find(&lower("alias.cdn.example.com."), RecordType::A) {
            Found::Records(r) => assert_eq!(r[0].record_type(), RecordType::CNAME),
            other => panic!("{other:?}"),
        }
        match z.find(&lower("cdn.example.com."), RecordType::MX) {
            Found::Records(r) => assert_eq!(r.len(), 1),
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            z.find(&lower("cdn.example.com."), RecordType::A),
            Found::NoData
        ));
    }

    #[test]
    fn longest_apex_wins() {
        let zones = Zones::new(vec![zone()]);
        assert!(zones.zone_of(&lower("a.cdn.example.com.")).is_some());
        assert!(zones.zone_of(&lower("example.com.")).is_none());
        assert!(zones.zone_of(&lower("xcdn.example.com.")).is_none());
    }
}
