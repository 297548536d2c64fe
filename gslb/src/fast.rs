//! The UDP fast path: the common query (one A or AAAA question for a CDN name, class IN, at
//! most an OPT record carrying at most an ECS option) read straight from the datagram's bytes
//! and answered by writing the response's bytes, with no `Message`, `Name` or `Record` built
//! and no allocation.
//!
//! Why: decoding into hickory's types and encoding back cost more than the answer itself
//! (region lookup and edge pick), and this is the query a CDN's GSLB gets nearly always.
//!
//! The rule that keeps it correct: [`answer`] either writes exactly the response the hickory
//! path ([`crate::handler`]) would write — same header flags, question, answers, OPT, ECS scope —
//! and counts the same metrics, or it returns `false` having changed nothing (no metric, no
//! pick), and the hickory path answers. Anything unusual goes there: other types or classes,
//! names outside the CDN names, compression pointers in the question, other EDNS options or
//! versions, invalid ECS (FORMERR), answers that might not fit the client's payload size (TC),
//! regions without an edge of the family (NODATA with the SOA). A test feeds generated queries
//! through both paths and compares the decoded responses.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;

use crate::answer::{Gslb, UDP_PAYLOAD};
use crate::choice::Family;
use crate::metrics::GslbMetrics;
use crate::network_map::mask;
use crate::zone::WireName;

/// Header length.
const HEADER_LEN: usize = 12;
/// Longest name in wire format (RFC 1035 §2.3.4).
const MAX_NAME: usize = 255;
/// OPT record type.
const TYPE_OPT: u16 = 41;
/// EDNS option code of the Client Subnet (RFC 7871).
const OPTION_ECS: u16 = 8;
/// Class IN.
const CLASS_IN: u16 = 1;
/// Bytes of an OPT record without options: root name, type, class, TTL, RDLENGTH.
const OPT_FIXED: usize = 11;
/// Bytes of an answer record besides its address: name pointer, type, class, TTL, RDLENGTH.
const ANSWER_FIXED: usize = 12;

/// An ECS option as read from a query.
#[derive(Clone, Copy)]
struct Subnet {
    addr: IpAddr,
    source_prefix: u8,
    /// Family code (1 IPv4, 2 IPv6).
    family: u16,
}

/// What the fast path takes from a query.
struct Query<'d> {
    id: [u8; 2],
    recursion_desired: bool,
    checking_disabled: bool,
    /// The question as sent (name in its original case, type, class): copied to the response.
    question: &'d [u8],
    family: Family,
    /// `Some(payload size)` when the query has an OPT record.
    edns: Option<u16>,
    subnet: Option<Subnet>,
}

fn u16_at(data: &[u8], at: usize) -> Option<u16> {
    let bytes = data.get(at..at.checked_add(2)?)?;
    Some(u16::from_be_bytes([bytes[0], bytes[1]]))
}

/// Reads the question name at `data[12..]` in lowercase into `name`, with its label offsets
/// into `starts`. Returns the name's length, or `None` for anything the fast path leaves to
/// hickory (compression pointers, extended label types, over-long names).
fn read_name(
    data: &[u8],
    name: &mut [u8; MAX_NAME],
    starts: &mut [u8; 128],
) -> Option<(usize, usize)> {
    let mut at = HEADER_LEN;
    let mut len = 0usize;
    let mut labels = 0usize;
    loop {
        let label = usize::from(*data.get(at)?);
        // 0x40 and 0xC0 (pointers, extended types) go to hickory.
        if label > 63 {
            return None;
        }
        *starts.get_mut(labels)? = u8::try_from(len).ok()?;
        labels += 1;
        let end = len + 1 + label;
        if end > MAX_NAME {
            return None;
        }
        name[len] = data[at];
        let text = data.get(at + 1..at + 1 + label)?;
        for (out, byte) in name[len + 1..end].iter_mut().zip(text) {
            *out = byte.to_ascii_lowercase();
        }
        len = end;
        at += 1 + label;
        if label == 0 {
            return Some((len, labels));
        }
    }
}

/// Parses `data` if it is a query the fast path answers, else `None`. `name`/`starts` receive
/// the lowercase question name.
fn parse<'d>(
    data: &'d [u8],
    name: &mut [u8; MAX_NAME],
    starts: &mut [u8; 128],
) -> Option<(Query<'d>, usize, usize)> {
    let header = data.get(..HEADER_LEN)?;
    let flags = header[2];
    // A query (QR clear) with opcode QUERY; AA and TC of a query mean nothing.
    if flags & 0xF8 != 0 {
        return None;
    }
    let counts = [
        u16_at(header, 4)?,
        u16_at(header, 6)?,
        u16_at(header, 8)?,
        u16_at(header, 10)?,
    ];
    if counts[0] != 1 || counts[1] != 0 || counts[2] != 0 || counts[3] > 1 {
        return None;
    }
    let (name_len, labels) = read_name(data, name, starts)?;
    let qtype_at = HEADER_LEN + name_len;
    let family = match RecordType::from(u16_at(data, qtype_at)?) {
        RecordType::A => Family::V4,
        RecordType::AAAA => Family::V6,
        _ => return None,
    };
    if u16_at(data, qtype_at + 2)? != CLASS_IN {
        return None;
    }
    let question_end = qtype_at + 4;
    let question = data.get(HEADER_LEN..question_end)?;
    let mut query = Query {
        id: [header[0], header[1]],
        recursion_desired: flags & 0x01 != 0,
        checking_disabled: header[3] & 0x10 != 0,
        question,
        family,
        edns: None,
        subnet: None,
    };
    if counts[3] == 0 {
        return (data.len() == question_end).then_some((query, name_len, labels));
    }
    // The OPT record: root name, type 41, class = payload size, TTL = extended rcode, version
    // (must be 0: otherwise BADVERS) and flags, then the options.
    let opt = data.get(question_end..)?;
    if opt.len() < OPT_FIXED || opt[0] != 0 || u16_at(opt, 1)? != TYPE_OPT || opt[6] != 0 {
        return None;
    }
    let payload = u16_at(opt, 3)?;
    let rdata = &opt[OPT_FIXED..];
    if usize::from(u16_at(opt, 9)?) != rdata.len() {
        return None;
    }
    query.edns = Some(payload);
    if rdata.is_empty() {
        return Some((query, name_len, labels));
    }
    // Exactly one option, ECS, exactly as long as its source prefix needs.
    if u16_at(rdata, 0)? != OPTION_ECS || usize::from(u16_at(rdata, 2)?) + 4 != rdata.len() {
        return None;
    }
    let family_code = u16_at(rdata, 4)?;
    let source_prefix = *rdata.get(6)?;
    let address = rdata.get(8..)?;
    let width = match family_code {
        1 => 32,
        2 => 128,
        _ => return None,
    };
    if source_prefix > width || address.len() != usize::from(source_prefix.div_ceil(8)) {
        return None;
    }
    let addr = if family_code == 1 {
        let mut octets = [0u8; 4];
        octets.get_mut(..address.len())?.copy_from_slice(address);
        IpAddr::V4(Ipv4Addr::from(octets))
    } else {
        let mut octets = [0u8; 16];
        octets.get_mut(..address.len())?.copy_from_slice(address);
        IpAddr::V6(Ipv6Addr::from(octets))
    };
    // Bits past the source prefix: FORMERR, which the hickory path answers and counts.
    if mask(addr, source_prefix) != addr {
        return None;
    }
    query.subnet = Some(Subnet {
        addr,
        source_prefix,
        family: family_code,
    });
    Some((query, name_len, labels))
}

/// Answers `datagram` from `source` into `out` if it is a query the fast path takes (see the
/// module documentation); `false` (with nothing counted or chosen) otherwise.
pub(crate) fn answer(
    gslb: &Gslb,
    datagram: &[u8],
    source: SocketAddr,
    metrics: &GslbMetrics,
    out: &mut Vec<u8>,
) -> bool {
    let mut name = [0u8; MAX_NAME];
    let mut starts = [0u8; 128];
    let Some((query, name_len, labels)) = parse(datagram, &mut name, &mut starts) else {
        return false;
    };
    let wire = WireName {
        bytes: &name[..name_len],
        starts: &starts[..labels],
    };
    if !gslb.zones().is_cdn_name_wire(&wire) {
        return false;
    }
    let choice = gslb.choice();
    let client = gslb.locate(query.subnet.map(|s| (s.addr, s.source_prefix)), source.ip());
    // No edge of the family for this region: NODATA with the SOA, from the hickory path.
    if !choice.serves(client.region(), query.family) {
        return false;
    }
    // The UDP size limit, as the hickory path computes it (RFC 6891: below 512 counts as 512).
    let limit = match query.edns {
        Some(payload) => payload.clamp(512, UDP_PAYLOAD),
        None => 512,
    };
    let (rtype, rdlength): (u16, usize) = match query.family {
        Family::V4 => (1, 4),
        Family::V6 => (28, 16),
    };
    let ecs_len = query
        .subnet
        .map_or(0, |s| 8 + usize::from(s.source_prefix.div_ceil(8)));
    let opt_len = query.edns.map_or(0, |_| OPT_FIXED + ecs_len);
    // Sized as hickory writes it, so that both paths truncate alike: it spells out the first
    // answer's name (`name_len` bytes instead of a 2-byte pointer).
    let worst = HEADER_LEN
        + query.question.len()
        + choice.max_addresses(query.family) * (ANSWER_FIXED + rdlength)
        + name_len.saturating_sub(2)
        + opt_len;
    // Might be truncated: the hickory path sets TC and drops what does not fit.
    if worst > usize::from(limit) {
        return false;
    }

    // From here on the query is answered here: count it as the hickory path does.
    metrics.ecs(query.subnet.is_some());
    out.clear();
    out.extend_from_slice(&query.id);
    // QR, opcode QUERY, AA, RD copied; RA clear; CD copied; rcode NOERROR.
    out.push(0x84 | u8::from(query.recursion_desired));
    out.push(if query.checking_disabled { 0x10 } else { 0 });
    out.extend_from_slice(&[0, 1, 0, 0, 0, 0, 0, u8::from(query.edns.is_some())]);
    out.extend_from_slice(query.question);
    let ttl = gslb.ttl().to_be_bytes();
    let mut answers = 0u16;
    for addr in gslb.choose(&client, query.family) {
        // A pointer to the question's name, right after the header.
        out.extend_from_slice(&[0xC0, HEADER_LEN as u8]);
        out.extend_from_slice(&rtype.to_be_bytes());
        out.extend_from_slice(&CLASS_IN.to_be_bytes());
        out.extend_from_slice(&ttl);
        match addr {
            IpAddr::V4(a) => {
                out.extend_from_slice(&4u16.to_be_bytes());
                out.extend_from_slice(&a.octets());
            }
            IpAddr::V6(a) => {
                out.extend_from_slice(&16u16.to_be_bytes());
                out.extend_from_slice(&a.octets());
            }
        }
        answers += 1;
    }
    out[6..8].copy_from_slice(&answers.to_be_bytes());
    if query.edns.is_some() {
        // Our OPT: payload size 1232, extended rcode 0, version 0, no flags.
        out.push(0);
        out.extend_from_slice(&TYPE_OPT.to_be_bytes());
        out.extend_from_slice(&UDP_PAYLOAD.to_be_bytes());
        out.extend_from_slice(&[0, 0, 0, 0]);
        let rdlength = u16::try_from(ecs_len).unwrap_or(0);
        out.extend_from_slice(&rdlength.to_be_bytes());
        if let Some(subnet) = query.subnet {
            // Echo the option with the scope the answer holds for (0: valid for everybody).
            let width = if subnet.family == 1 { 32 } else { 128 };
            let scope = client.scope.min(width);
            let address_len = usize::from(subnet.source_prefix.div_ceil(8));
            out.extend_from_slice(&OPTION_ECS.to_be_bytes());
            out.extend_from_slice(&u16::try_from(4 + address_len).unwrap_or(0).to_be_bytes());
            out.extend_from_slice(&subnet.family.to_be_bytes());
            out.push(subnet.source_prefix);
            out.push(scope);
            // `parse` checked that the prefix fits the family, so the slices are in range.
            match subnet.addr {
                IpAddr::V4(a) => {
                    out.extend_from_slice(a.octets().get(..address_len).unwrap_or_default())
                }
                IpAddr::V6(a) => {
                    out.extend_from_slice(a.octets().get(..address_len).unwrap_or_default())
                }
            }
        }
    }
    let qtype = match query.family {
        Family::V4 => RecordType::A,
        Family::V6 => RecordType::AAAA,
    };
    metrics.query(qtype, ResponseCode::NoError);
    tracing::debug!(
        target: "cdn_gslb::query",
        id = u16::from_be_bytes(query.id),
        client = %source.ip(),
        ?qtype,
        answers,
        "answered (fast path)"
    );
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::GslbHandler;
    use proptest::prelude::*;

    /// Two zones (a child zone inside the first), CDN names exact and wildcard, static records,
    /// three regions of which one has only IPv4 edges (its AAAA answers are NODATA).
    fn config(policy: &str, answers: usize, fallback: &str) -> cdn_config::GslbConfig {
        let text = format!(
            r#"[gslb]
listen = ["127.0.0.1:5300"]
admin_listen = "127.0.0.1:5301"
policy = "{policy}"
answers = {answers}
fallback = [{fallback}]
ttl = "45s"

[[gslb.zones]]
name = "cdn.example.com"
nameservers = ["ns1.cdn.example.com"]
hostmaster = "hostmaster.cdn.example.com"
cdn_names = ["www.cdn.example.com", "*.img.cdn.example.com", "static.cdn.example.com"]

[[gslb.zones.records]]
name = "ns1.cdn.example.com"
type = "A"
value = "127.0.0.1"

[[gslb.zones.records]]
name = "alias.cdn.example.com"
type = "CNAME"
value = "www.cdn.example.com"

[[gslb.zones.records]]
name = "own.img.cdn.example.com"
type = "TXT"
value = "a static name below the wildcard"

[[gslb.zones]]
name = "sub.cdn.example.com"
nameservers = ["ns1.sub.cdn.example.com"]
hostmaster = "hostmaster.sub.cdn.example.com"
cdn_names = ["www.sub.cdn.example.com"]

[[gslb.regions]]
name = "us"
latitude = 38.9
longitude = -77.0
networks = ["10.0.0.0/8", "2001:db8:1::/48"]

[[gslb.regions]]
name = "eu"
latitude = 50.1
longitude = 8.7
networks = ["192.0.2.0/24", "10.1.0.0/16", "2001:db8:2::/48"]

[[gslb.regions]]
name = "ap"
latitude = 35.7
longitude = 139.7
networks = ["203.0.113.0/24"]

[[gslb.edges]]
name = "us-1"
ipv4 = "127.0.0.11"
ipv6 = "fd00::11"
region = "us"

[[gslb.edges]]
name = "us-2"
ipv4 = "127.0.0.12"
ipv6 = "fd00::12"
region = "us"

[[gslb.edges]]
name = "eu-1"
ipv4 = "127.0.0.21"
ipv6 = "fd00::21"
region = "eu"

[[gslb.edges]]
name = "ap-1"
ipv4 = "127.0.0.31"
region = "ap"
"#
        );
        let config = cdn_config::Config::from_toml_str(&text, "test.toml").unwrap();
        config.validate(std::path::Path::new("test.toml")).unwrap();
        config.gslb.unwrap()
    }

    const NAMES: &[&str] = &[
        "www.cdn.example.com",
        "x.img.cdn.example.com",
        "a.b.img.cdn.example.com",
        "img.cdn.example.com",
        "own.img.cdn.example.com",
        "static.cdn.example.com",
        "www.sub.cdn.example.com",
        "sub.cdn.example.com",
        "ns1.cdn.example.com",
        "alias.cdn.example.com",
        "nope.cdn.example.com",
        "cdn.example.com",
        "wwwcdn.example.com",
        "example.org",
        "",
    ];

    /// One generated query: its parts, some of them broken on purpose.
    #[derive(Debug, Clone)]
    struct Case {
        id: u16,
        flags: [u8; 2],
        name: usize,
        /// Bit i set: label byte i upper-cased.
        case_bits: u64,
        qtype: u16,
        qclass: u16,
        /// Payload, version, DO flag, ECS option, extra option.
        edns: Option<(u16, u8, bool, Option<Ecs>, bool)>,
        /// Added to ARCOUNT (and QDCOUNT when 2): counts that do not match the body.
        count_skew: u8,
        trailing: Vec<u8>,
        source: IpAddr,
    }

    #[derive(Debug, Clone)]
    struct Ecs {
        family: u16,
        source_prefix: u8,
        scope: u8,
        address: Vec<u8>,
        /// Added to the address length the prefix asks for (0 most of the time).
        length_skew: i8,
    }

    fn bytes(case: &Case) -> Vec<u8> {
        let mut d = Vec::new();
        d.extend_from_slice(&case.id.to_be_bytes());
        d.extend_from_slice(&case.flags);
        let arcount = u16::from(case.edns.is_some());
        let (qd, ar) = match case.count_skew {
            1 => (1, arcount + 1),
            2 => (2, arcount),
            3 => (0, arcount),
            _ => (1, arcount),
        };
        for count in [qd, 0, 0, ar] {
            d.extend_from_slice(&count.to_be_bytes());
        }
        let mut i = 0;
        for label in NAMES[case.name].split('.').filter(|l| !l.is_empty()) {
            d.push(label.len() as u8);
            for b in label.bytes() {
                let upper = case.case_bits >> (i % 64) & 1 == 1;
                d.push(if upper { b.to_ascii_uppercase() } else { b });
                i += 1;
            }
        }
        d.push(0);
        d.extend_from_slice(&case.qtype.to_be_bytes());
        d.extend_from_slice(&case.qclass.to_be_bytes());
        if let Some((payload, version, dnssec_ok, ecs, extra)) = &case.edns {
            let mut rdata = Vec::new();
            if let Some(e) = ecs {
                let want = usize::from(e.source_prefix.div_ceil(8));
                let len = (want as isize + isize::from(e.length_skew)).max(0) as usize;
                let mut address = e.address.clone();
                address.resize(len, 0);
                rdata.extend_from_slice(&OPTION_ECS.to_be_bytes());
                rdata.extend_from_slice(&(4 + len as u16).to_be_bytes());
                rdata.extend_from_slice(&e.family.to_be_bytes());
                rdata.push(e.source_prefix);
                rdata.push(e.scope);
                rdata.extend_from_slice(&address);
            }
            if *extra {
                // A COOKIE option: the fast path leaves it to hickory.
                rdata.extend_from_slice(&[0, 10, 0, 8, 1, 2, 3, 4, 5, 6, 7, 8]);
            }
            d.push(0);
            d.extend_from_slice(&TYPE_OPT.to_be_bytes());
            d.extend_from_slice(&payload.to_be_bytes());
            d.extend_from_slice(&[0, *version, if *dnssec_ok { 0x80 } else { 0 }, 0]);
            d.extend_from_slice(&(rdata.len() as u16).to_be_bytes());
            d.extend_from_slice(&rdata);
        }
        d.extend_from_slice(&case.trailing);
        d
    }

    fn ecs() -> impl Strategy<Value = Ecs> {
        let family = prop_oneof![8 => Just(1u16), 3 => Just(2u16), 1 => any::<u16>()];
        let prefix = prop_oneof![
            Just(24u8),
            Just(0u8),
            Just(16u8),
            Just(32u8),
            Just(48u8),
            Just(56u8),
            0u8..=140
        ];
        let address = prop_oneof![
            Just(vec![192, 0, 2]),
            Just(vec![10, 1, 7, 0]),
            Just(vec![10, 2, 0]),
            Just(vec![203, 0, 113]),
            Just(vec![0x20, 0x01, 0x0d, 0xb8, 0x00, 0x02, 0, 0]),
            Just(vec![0x20, 0x01, 0x0d, 0xb8, 0x00, 0x01, 0x80]),
            proptest::collection::vec(any::<u8>(), 0..17),
        ];
        let skew = prop_oneof![12 => Just(0i8), 1 => -1i8..=1];
        (family, prefix, any::<u8>(), address, skew, any::<bool>()).prop_map(
            |(family, source_prefix, scope, mut address, length_skew, clear_tail)| {
                // Mostly valid: the bits past the prefix cleared.
                if clear_tail {
                    for (i, b) in address.iter_mut().enumerate() {
                        let from = (i * 8) as u32;
                        let keep = u32::from(source_prefix).saturating_sub(from).min(8);
                        *b &= if keep == 0 { 0 } else { 0xFFu8 << (8 - keep) };
                    }
                }
                Ecs {
                    family,
                    source_prefix,
                    scope: if scope > 200 { scope } else { 0 },
                    address,
                    length_skew,
                }
            },
        )
    }

    fn case() -> impl Strategy<Value = Case> {
        let flags = prop_oneof![
            Just([0u8, 0u8]),
            Just([1, 0]),
            Just([1, 0x20]),
            Just([0, 0x10]),
            any::<[u8; 2]>()
        ];
        let qtype = prop_oneof![6 => Just(1u16), 3 => Just(28u16), 1 => Just(255u16), 1 => Just(16u16), 1 => Just(6u16), 1 => any::<u16>()];
        let qclass = prop_oneof![8 => Just(1u16), 1 => Just(255u16), 1 => Just(3u16)];
        let payload = prop_oneof![Just(1232u16), Just(4096), Just(512), Just(0), any::<u16>()];
        let version = prop_oneof![8 => Just(0u8), 1 => any::<u8>()];
        let edns = proptest::option::weighted(
            0.8,
            (
                payload,
                version,
                any::<bool>(),
                proptest::option::weighted(0.8, ecs()),
                proptest::bool::weighted(0.1),
            ),
        );
        let skew = prop_oneof![20 => Just(0u8), 1 => 1u8..=3];
        let trailing =
            prop_oneof![20 => Just(vec![]), 1 => proptest::collection::vec(any::<u8>(), 1..4)];
        let source = prop_oneof![
            Just(IpAddr::from([127, 0, 0, 1])),
            Just(IpAddr::from([10, 1, 2, 3])),
            Just(IpAddr::from([203, 0, 113, 9])),
            Just("2001:db8:2::5".parse().unwrap()),
            Just("::ffff:192.0.2.7".parse().unwrap()),
            any::<[u8; 4]>().prop_map(IpAddr::from),
        ];
        (
            (
                any::<u16>(),
                flags,
                prop_oneof![2 => 0..3usize, 1 => 0..NAMES.len()],
                any::<u64>(),
            ),
            (qtype, qclass, edns, skew, trailing, source),
        )
            .prop_map(
                |(
                    (id, flags, name, case_bits),
                    (qtype, qclass, edns, count_skew, trailing, source),
                )| {
                    Case {
                        id,
                        flags,
                        name,
                        case_bits,
                        qtype,
                        qclass,
                        edns,
                        count_skew,
                        trailing,
                        source,
                    }
                },
            )
    }

    /// The counters of `handler`'s metrics, as text (the series that both paths count).
    fn counters(handler: &GslbHandler) -> String {
        handler
            .metrics
            .render()
            .lines()
            .filter(|l| !l.starts_with('#') && !l.starts_with("cdn_gslb_edge_"))
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// Both responses decode (with hickory) to the same message: header, question, every
    /// section, OPT and its options. (The bytes differ: hickory compresses the first answer's
    /// name only from the second answer on.)
    fn same_meaning(
        fast: &[u8],
        slow: &[u8],
        case: &Case,
        ordered: bool,
    ) -> Result<(), TestCaseError> {
        use hickory_proto::op::Message;
        let mut f = Message::from_vec(fast).map_err(|e| TestCaseError::fail(format!("{e}")))?;
        let mut s = Message::from_vec(slow).map_err(|e| TestCaseError::fail(format!("{e}")))?;
        if !ordered {
            // Random picks: the same addresses, in any order.
            f.answers.sort_by_key(|r| r.data.to_string());
            s.answers.sort_by_key(|r| r.data.to_string());
        }
        prop_assert_eq!(&f.metadata, &s.metadata, "{:?}", case);
        prop_assert_eq!(&f.queries, &s.queries, "{:?}", case);
        prop_assert_eq!(&f.answers, &s.answers, "{:?}", case);
        prop_assert_eq!(&f.authorities, &s.authorities, "{:?}", case);
        prop_assert_eq!(&f.additionals, &s.additionals, "{:?}", case);
        prop_assert_eq!(&f.edns, &s.edns, "{:?}", case);
        // Record equality ignores letter case of names: the owner must be the question's
        // spelling, as hickory writes it.
        for (a, b) in f.answers.iter().zip(&s.answers) {
            prop_assert_eq!(a.name.to_string(), b.name.to_string());
        }
        Ok(())
    }

    /// Feeds `cases` to a handler with the fast path and to another on hickory alone, both on
    /// `config`: the responses mean the same (the answers in the same order if `ordered`) and
    /// the metrics are the same. Returns how
    /// many the fast path answered.
    fn compare(
        config: &cdn_config::GslbConfig,
        cases: &[Case],
        ordered: bool,
    ) -> Result<usize, TestCaseError> {
        let with_fast = GslbHandler::from_config(config).unwrap();
        let hickory_only = GslbHandler::from_config(config).unwrap();
        let mut fast_count = 0;
        for case in cases {
            let datagram = bytes(case);
            let source = SocketAddr::new(case.source, 5300);
            let mut fast_out = Vec::new();
            let mut slow_out = Vec::new();
            let mut probe = Vec::new();
            // The fast path on a throwaway handler first, to know whether it answers.
            let probe_handler = GslbHandler::from_config(config).unwrap();
            let took = answer(
                &probe_handler.state.load(),
                &datagram,
                source,
                &probe_handler.metrics,
                &mut probe,
            );
            fast_count += usize::from(took);
            let a = with_fast.answer_datagram(&datagram, source, &mut fast_out);
            let b =
                hickory_only.answer_datagram_with_hickory_only(&datagram, source, &mut slow_out);
            prop_assert_eq!(a, b, "{:?}", case);
            if a {
                same_meaning(&fast_out, &slow_out, case, ordered)?;
            }
            if took {
                same_meaning(&probe, &slow_out, case, ordered)?;
                // Never longer than hickory's (which writes the first answer's name in full).
                prop_assert!(probe.len() <= slow_out.len());
            }
        }
        prop_assert_eq!(counters(&with_fast), counters(&hickory_only));
        Ok(fast_count)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(128))]

        /// Consistent hashing (deterministic picks) over tiers of several edges, 2 answers.
        #[test]
        fn fast_path_answers_like_hickory(cases in proptest::collection::vec(case(), 1..64)) {
            compare(&config("consistent_hash", 2, ""), &cases, true)?;
        }

        /// Many answers and a configured fallback: responses near the size limits (TC).
        #[test]
        fn fast_path_leaves_big_answers_to_hickory(cases in proptest::collection::vec(case(), 1..32)) {
            compare(&config("weighted", 16, r#""192.0.2.9", "2001:db8::9""#), &cases, false)?;
        }
    }

    /// The benchmark's query (A, ECS 192.0.2.0/24) and a plain one take the fast path.
    #[test]
    fn the_common_queries_take_the_fast_path() {
        let config = config("consistent_hash", 1, "");
        let handler = GslbHandler::from_config(&config).unwrap();
        let base = Case {
            id: 7,
            flags: [1, 0],
            name: 0,
            case_bits: 0,
            qtype: 1,
            qclass: 1,
            edns: Some((
                4096,
                0,
                false,
                Some(Ecs {
                    family: 1,
                    source_prefix: 24,
                    scope: 0,
                    address: vec![192, 0, 2],
                    length_skew: 0,
                }),
                false,
            )),
            count_skew: 0,
            trailing: vec![],
            source: IpAddr::from([127, 0, 0, 1]),
        };
        let plain = Case {
            edns: None,
            qtype: 28,
            source: "2001:db8:1::1".parse().unwrap(),
            ..base.clone()
        };
        let mut cases = vec![base, plain];
        cases.push(Case {
            name: 1,
            case_bits: u64::MAX,
            ..cases[0].clone()
        });
        let state = handler.state.load();
        for case in &cases {
            let mut out = Vec::new();
            let source = SocketAddr::new(case.source, 5300);
            assert!(
                answer(&state, &bytes(case), source, &handler.metrics, &mut out),
                "{case:?}"
            );
        }
        let counted = compare(&config, &cases, true).unwrap();
        assert_eq!(counted, cases.len());
    }
}
