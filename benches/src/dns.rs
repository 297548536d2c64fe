//! `cdn bench dns`: queries per second and latency against a DNS server, over UDP or TCP, in a
//! closed or open loop (the same [`Schedule`] as the HTTP bench), with names from a list or
//! generated, and optional EDNS Client Subnet options drawn at random from a CIDR list so a
//! geo-aware server (our gslb) takes its geo path.
//!
//! Queries are encoded by hand rather than with hickory-proto: a query is a 12-byte header, one
//! question and at most one OPT record, written into a reused buffer with no allocation, and of
//! the answer only the header (id, QR, TC, RCODE) is read. That keeps the generator's cost per
//! query far below the server's, and keeps this crate free of the DNS library's version pin.

use crate::latency::{timeline_report, Percentiles, Recorder, SecondReport, Timeline};
use crate::load::{wait_until_due, Pace, Schedule, Stop};
use crate::progress::{Counters, Progress};
use crate::BenchError;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::Path;
use std::str::FromStr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// EDNS UDP payload size advertised when an OPT record is sent (the DNS Flag Day 2020 value).
const EDNS_PAYLOAD: u16 = 1232;

/// UDP or TCP.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Transport {
    /// One socket per connection, one query in flight on each.
    Udp,
    /// One TCP connection per connection, queries sent one after another on it.
    Tcp,
}

/// A network in CIDR notation, for drawing ECS client addresses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cidr {
    /// The network address.
    pub addr: IpAddr,
    /// The prefix length.
    pub prefix: u8,
}

impl FromStr for Cidr {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let (addr, prefix) = s
            .trim()
            .split_once('/')
            .ok_or_else(|| format!("{s:?}: expected ADDRESS/PREFIX, e.g. 192.0.2.0/24"))?;
        let addr: IpAddr = addr.parse().map_err(|e| format!("{s:?}: {e}"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix: u8 = prefix
            .parse()
            .ok()
            .filter(|&p| p <= max)
            .ok_or_else(|| format!("{s:?}: prefix must be 0..={max}"))?;
        Ok(Self { addr, prefix })
    }
}

impl Cidr {
    /// A random address inside this network.
    pub fn random_addr(&self, rng: &mut impl Rng) -> IpAddr {
        match self.addr {
            IpAddr::V4(a) => {
                let host_bits = 32 - u32::from(self.prefix);
                let mask = if host_bits == 32 {
                    u32::MAX
                } else {
                    (1u32 << host_bits) - 1
                };
                IpAddr::V4(Ipv4Addr::from(
                    (u32::from(a) & !mask) | (rng.gen::<u32>() & mask),
                ))
            }
            IpAddr::V6(a) => {
                let host_bits = 128 - u32::from(self.prefix);
                let mask = if host_bits == 128 {
                    u128::MAX
                } else {
                    (1u128 << host_bits) - 1
                };
                IpAddr::V6(Ipv6Addr::from(
                    (u128::from(a) & !mask) | (rng.gen::<u128>() & mask),
                ))
            }
        }
    }
}

/// Which names are queried.
#[derive(Clone, Debug, PartialEq)]
pub enum Names {
    /// These names and types, drawn uniformly at random.
    List(Vec<(String, u16)>),
    /// A fresh name under this zone for every query (`q<n>.<zone>`), which defeats any answer
    /// cache and measures the server's lookup path.
    Random {
        /// The zone.
        zone: String,
        /// The query type.
        qtype: u16,
    },
}

impl Names {
    /// Reads `NAME [TYPE]` lines from a file (blank lines and `#` comments skipped).
    pub fn load(path: &Path, default_type: u16) -> Result<Self, BenchError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| BenchError::usage(format!("cannot read names {}: {e}", path.display())))?;
        let mut names = Vec::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let mut fields = line.split_whitespace();
            let name = fields.next().unwrap_or_default().to_string();
            let qtype = match fields.next() {
                Some(t) => qtype(t)
                    .map_err(|e| BenchError::usage(format!("{}:{}: {e}", path.display(), n + 1)))?,
                None => default_type,
            };
            check_name(&name)
                .map_err(|e| BenchError::usage(format!("{}:{}: {e}", path.display(), n + 1)))?;
            names.push((name, qtype));
        }
        if names.is_empty() {
            return Err(BenchError::usage(format!(
                "{} has no names",
                path.display()
            )));
        }
        Ok(Self::List(names))
    }
}

/// A query type by name (`A`, `AAAA`, …, or `TYPE65`).
pub fn qtype(name: &str) -> Result<u16, String> {
    let upper = name.to_ascii_uppercase();
    Ok(match upper.as_str() {
        "A" => 1,
        "NS" => 2,
        "CNAME" => 5,
        "SOA" => 6,
        "PTR" => 12,
        "MX" => 15,
        "TXT" => 16,
        "AAAA" => 28,
        "SRV" => 33,
        "HTTPS" => 65,
        "ANY" => 255,
        _ => upper
            .strip_prefix("TYPE")
            .and_then(|n| n.parse().ok())
            .ok_or_else(|| format!("unknown query type {name:?}"))?,
    })
}

/// Checks that `name` can be encoded: labels of 1–63 bytes, 255 bytes in all.
pub fn check_name(name: &str) -> Result<(), String> {
    let trimmed = name.trim_end_matches('.');
    if trimmed.len() > 253 {
        return Err(format!("name {name:?} is longer than 253 characters"));
    }
    if !trimmed.is_empty() && trimmed.split('.').any(|l| l.is_empty() || l.len() > 63) {
        return Err(format!("name {name:?} has an empty or over-long label"));
    }
    Ok(())
}

/// Writes a recursion-desired query for `name`/`qtype` with id `id` into `out` (cleared first);
/// with `ecs`, an OPT record carrying an EDNS Client Subnet option (RFC 7871) for that address
/// and source prefix, with the address bits beyond the prefix zeroed as the RFC requires.
pub fn encode_query(id: u16, name: &str, qtype: u16, ecs: Option<(IpAddr, u8)>, out: &mut Vec<u8>) {
    out.clear();
    let additional: u16 = ecs.is_some().into();
    out.extend_from_slice(&id.to_be_bytes());
    out.extend_from_slice(&[0x01, 0x00]); // RD
    out.extend_from_slice(&[0, 1, 0, 0, 0, 0]);
    out.extend_from_slice(&additional.to_be_bytes());
    for label in name
        .trim_end_matches('.')
        .split('.')
        .filter(|l| !l.is_empty())
    {
        out.push(label.len() as u8);
        out.extend_from_slice(label.as_bytes());
    }
    out.push(0);
    out.extend_from_slice(&qtype.to_be_bytes());
    out.extend_from_slice(&[0, 1]); // IN
    if let Some((addr, prefix)) = ecs {
        let (family, bytes): (u16, Vec<u8>) = match addr {
            IpAddr::V4(a) => (1, a.octets().to_vec()),
            IpAddr::V6(a) => (2, a.octets().to_vec()),
        };
        let prefix = prefix.min(bytes.len() as u8 * 8);
        let kept = usize::from(prefix).div_ceil(8);
        let mut address = bytes[..kept].to_vec();
        if prefix % 8 != 0 {
            if let Some(last) = address.last_mut() {
                *last &= 0xffu8 << (8 - prefix % 8);
            }
        }
        let option_len = 4 + address.len() as u16;
        out.push(0); // root name
        out.extend_from_slice(&41u16.to_be_bytes()); // OPT
        out.extend_from_slice(&EDNS_PAYLOAD.to_be_bytes());
        out.extend_from_slice(&[0, 0, 0, 0]); // extended rcode, version, flags
        out.extend_from_slice(&(4 + option_len).to_be_bytes());
        out.extend_from_slice(&8u16.to_be_bytes()); // ECS
        out.extend_from_slice(&option_len.to_be_bytes());
        out.extend_from_slice(&family.to_be_bytes());
        out.push(prefix);
        out.push(0); // scope prefix: 0 in queries
        out.extend_from_slice(&address);
    }
}

/// The header fields of an answer the bench reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AnswerHeader {
    /// The query id it answers.
    pub id: u16,
    /// RCODE (low 4 bits).
    pub rcode: u8,
    /// Truncated (TC).
    pub truncated: bool,
}

/// Reads the header of a DNS answer; `None` when it is not one (too short, or QR clear).
pub fn answer_header(msg: &[u8]) -> Option<AnswerHeader> {
    if msg.len() < 12 || msg[2] & 0x80 == 0 {
        return None;
    }
    Some(AnswerHeader {
        id: u16::from_be_bytes([msg[0], msg[1]]),
        rcode: msg[3] & 0x0f,
        truncated: msg[2] & 0x02 != 0,
    })
}

fn rcode_name(rcode: u8) -> String {
    match rcode {
        0 => "NOERROR".into(),
        1 => "FORMERR".into(),
        2 => "SERVFAIL".into(),
        3 => "NXDOMAIN".into(),
        4 => "NOTIMP".into(),
        5 => "REFUSED".into(),
        n => format!("RCODE{n}"),
    }
}

/// What `cdn bench dns` was asked to do.
#[derive(Clone, Debug)]
pub struct DnsOptions {
    /// The server.
    pub server: SocketAddr,
    /// The names queried.
    pub names: Names,
    /// Networks to draw ECS client addresses from (none: no ECS option).
    pub ecs: Vec<Cidr>,
    /// ECS source prefix for IPv4 addresses.
    pub ecs_prefix_v4: u8,
    /// ECS source prefix for IPv6 addresses.
    pub ecs_prefix_v6: u8,
    /// UDP or TCP.
    pub transport: Transport,
    /// Closed or open loop.
    pub pace: Pace,
    /// Count or duration.
    pub stop: Stop,
    /// Sockets (UDP) or connections (TCP), each with one query in flight.
    pub connections: usize,
    /// Runtime worker threads.
    pub threads: usize,
    /// Longest wait for one answer.
    pub timeout: Duration,
    /// Seed of the name and address choices.
    pub seed: u64,
    /// Show a progress bar (only drawn on a terminal).
    pub progress: bool,
}

/// Failures by kind.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct DnsErrors {
    /// Could not open the socket or connection.
    pub connect: u64,
    /// No answer within the timeout.
    pub timeout: u64,
    /// Send or receive failed, or TCP closed.
    pub io: u64,
}

/// The results of `cdn bench dns`, as printed by `--json`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct DnsReport {
    /// The server.
    pub server: String,
    /// UDP or TCP.
    pub transport: Transport,
    /// `closed` or `open`.
    pub model: &'static str,
    /// Intended queries per second (open loop).
    pub rate: Option<f64>,
    /// Sockets or connections.
    pub connections: usize,
    /// Names queried: `N names` or `random under ZONE`.
    pub names: String,
    /// Whether queries carried ECS.
    pub ecs: bool,
    /// From the start to the last answer.
    pub elapsed_s: f64,
    /// Queries finished (answers and failures).
    pub queries: u64,
    /// Answers received.
    pub answers: u64,
    /// Answers per second.
    pub queries_per_sec: f64,
    /// Latency of answers (from the intended send time in an open loop).
    pub latency_ms: Percentiles,
    /// Answers by RCODE.
    pub rcodes: BTreeMap<String, u64>,
    /// Answers with TC set.
    pub truncated: u64,
    /// Failures by kind.
    pub errors: DnsErrors,
    /// Second by second.
    pub timeline: Vec<SecondReport>,
}

#[derive(Default)]
struct DnsTally {
    rcodes: [u64; 16],
    truncated: u64,
    errors: DnsErrors,
}

/// Runs the load on its own runtime and returns the report.
pub fn run(opts: &DnsOptions) -> Result<DnsReport, BenchError> {
    if opts.connections == 0 {
        return Err(BenchError::usage("--connections must be at least 1"));
    }
    if let Names::List(list) = &opts.names {
        if list.is_empty() {
            return Err(BenchError::usage("give at least one name"));
        }
    }
    if let Names::Random { zone, .. } = &opts.names {
        check_name(&format!("q18446744073709551615.{zone}")).map_err(BenchError::usage)?;
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(opts.threads.max(1))
        .enable_all()
        .build()
        .map_err(|e| BenchError::runtime(format!("cannot start the async runtime: {e}")))?;
    runtime.block_on(run_async(opts))
}

async fn run_async(opts: &DnsOptions) -> Result<DnsReport, BenchError> {
    let schedule = Arc::new(Schedule::new(opts.pace, opts.stop));
    let timeline = Arc::new(Timeline::new(schedule.start()));
    let counters = Arc::new(Counters::default());
    let progress = Progress::start(opts.progress, schedule.clone(), counters.clone());
    let opts_shared = Arc::new(opts.clone());
    let mut tasks = Vec::new();
    for i in 0..opts.connections {
        let task = QueryTask {
            opts: opts_shared.clone(),
            schedule: schedule.clone(),
            timeline: timeline.clone(),
            counters: counters.clone(),
            rng: SmallRng::seed_from_u64(opts.seed.wrapping_add(i as u64)),
        };
        tasks.push(tokio::spawn(task.run()));
    }
    let mut tally = DnsTally::default();
    for t in tasks {
        let part = t
            .await
            .map_err(|e| BenchError::runtime(format!("a load task failed: {e}")))?;
        for (a, b) in tally.rcodes.iter_mut().zip(part.rcodes) {
            *a += b;
        }
        tally.truncated += part.truncated;
        tally.errors.connect += part.errors.connect;
        tally.errors.timeout += part.errors.timeout;
        tally.errors.io += part.errors.io;
    }
    let elapsed = schedule.start().elapsed().as_secs_f64().max(1e-9);
    drop(progress);
    let timeline = Arc::try_unwrap(timeline)
        .map_err(|_| BenchError::runtime("load tasks still hold the timeline"))?;
    let (latency, seconds) = timeline.finish();
    let answers: u64 = tally.rcodes.iter().sum();
    let e = &tally.errors;
    Ok(DnsReport {
        server: opts.server.to_string(),
        transport: opts.transport,
        model: opts.pace.model(),
        rate: opts.pace.rate(),
        connections: opts.connections,
        names: match &opts.names {
            Names::List(l) => format!("{} names", l.len()),
            Names::Random { zone, .. } => format!("random names under {zone}"),
        },
        ecs: !opts.ecs.is_empty(),
        elapsed_s: elapsed,
        queries: answers + e.connect + e.timeout + e.io,
        answers,
        queries_per_sec: answers as f64 / elapsed,
        latency_ms: Percentiles::of(&latency),
        rcodes: tally
            .rcodes
            .iter()
            .enumerate()
            .filter(|(_, &n)| n > 0)
            .map(|(r, &n)| (rcode_name(r as u8), n))
            .collect(),
        truncated: tally.truncated,
        errors: tally.errors,
        timeline: timeline_report(&seconds),
    })
}

/// An open socket or connection.
enum Channel {
    Udp(tokio::net::UdpSocket),
    Tcp(tokio::net::TcpStream),
}

impl Channel {
    async fn open(transport: Transport, server: SocketAddr) -> std::io::Result<Self> {
        Ok(match transport {
            Transport::Udp => {
                let local: SocketAddr = if server.is_ipv4() {
                    (Ipv4Addr::UNSPECIFIED, 0).into()
                } else {
                    (Ipv6Addr::UNSPECIFIED, 0).into()
                };
                let socket = tokio::net::UdpSocket::bind(local).await?;
                socket.connect(server).await?;
                Self::Udp(socket)
            }
            Transport::Tcp => {
                let stream = tokio::net::TcpStream::connect(server).await?;
                stream.set_nodelay(true)?;
                Self::Tcp(stream)
            }
        })
    }

    /// Sends `query` and waits for the answer with id `id` (late answers to earlier, timed-out
    /// queries on the same UDP socket are skipped).
    async fn ask(
        &mut self,
        query: &[u8],
        id: u16,
        buf: &mut [u8],
    ) -> std::io::Result<AnswerHeader> {
        match self {
            Self::Udp(socket) => {
                socket.send(query).await?;
                loop {
                    let n = socket.recv(buf).await?;
                    if let Some(h) = answer_header(&buf[..n]) {
                        if h.id == id {
                            return Ok(h);
                        }
                    }
                }
            }
            Self::Tcp(stream) => {
                let mut framed = Vec::with_capacity(query.len() + 2);
                framed.extend_from_slice(&(query.len() as u16).to_be_bytes());
                framed.extend_from_slice(query);
                stream.write_all(&framed).await?;
                loop {
                    let mut len = [0u8; 2];
                    stream.read_exact(&mut len).await?;
                    let len = usize::from(u16::from_be_bytes(len));
                    let mut msg = vec![0u8; len];
                    stream.read_exact(&mut msg).await?;
                    match answer_header(&msg) {
                        Some(h) if h.id == id => return Ok(h),
                        Some(_) => continue,
                        None => {
                            return Err(std::io::Error::new(
                                std::io::ErrorKind::InvalidData,
                                "not a DNS answer",
                            ))
                        }
                    }
                }
            }
        }
    }
}

/// One socket's share of the load.
struct QueryTask {
    opts: Arc<DnsOptions>,
    schedule: Arc<Schedule>,
    timeline: Arc<Timeline>,
    counters: Arc<Counters>,
    rng: SmallRng,
}

impl QueryTask {
    async fn run(mut self) -> DnsTally {
        let timeline = self.timeline.clone();
        let mut recorder = Recorder::new(&timeline);
        let mut tally = DnsTally::default();
        let mut channel: Option<Channel> = None;
        let mut query = Vec::with_capacity(512);
        let mut buf = vec![0u8; 65_535];
        let mut name = String::new();
        while let Some(ticket) = self.schedule.next_ticket() {
            let sent = wait_until_due(&ticket).await;
            let id: u16 = self.rng.gen();
            let qtype = self.pick_name(ticket.seq, &mut name);
            let ecs = self.pick_ecs();
            encode_query(id, &name, qtype, ecs, &mut query);
            let deadline = tokio::time::Instant::now() + self.opts.timeout;
            let transport = self.opts.transport;
            let server = self.opts.server;
            let outcome = tokio::time::timeout_at(deadline, async {
                if channel.is_none() {
                    channel = Some(Channel::open(transport, server).await.map_err(|_| true)?);
                }
                match &mut channel {
                    Some(c) => c.ask(&query, id, &mut buf).await.map_err(|_| false),
                    None => Err(true),
                }
            })
            .await;
            let done = Instant::now();
            match outcome {
                Ok(Ok(header)) => {
                    recorder.answer(done, done.saturating_duration_since(sent), 0);
                    self.counters.answers.fetch_add(1, Ordering::Relaxed);
                    tally.rcodes[usize::from(header.rcode)] += 1;
                    tally.truncated += u64::from(header.truncated);
                }
                Ok(Err(connect)) => {
                    recorder.error(done);
                    self.counters.errors.fetch_add(1, Ordering::Relaxed);
                    channel = None;
                    if connect {
                        tally.errors.connect += 1;
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    } else {
                        tally.errors.io += 1;
                    }
                }
                Err(_) => {
                    recorder.error(done);
                    self.counters.errors.fetch_add(1, Ordering::Relaxed);
                    tally.errors.timeout += 1;
                    // A TCP stream may be mid-message; a UDP socket can stay (stale answers
                    // are skipped by id).
                    if transport == Transport::Tcp {
                        channel = None;
                    }
                }
            }
        }
        recorder.flush();
        tally
    }

    /// Writes the name of query `seq` into `name` and returns its type.
    fn pick_name(&mut self, seq: u64, name: &mut String) -> u16 {
        name.clear();
        match &self.opts.names {
            Names::List(list) => {
                let (n, t) = &list[self.rng.gen_range(0..list.len())];
                name.push_str(n);
                *t
            }
            Names::Random { zone, qtype } => {
                let _ = write!(name, "q{seq}.{zone}");
                *qtype
            }
        }
    }

    fn pick_ecs(&mut self) -> Option<(IpAddr, u8)> {
        if self.opts.ecs.is_empty() {
            return None;
        }
        let cidr = self.opts.ecs[self.rng.gen_range(0..self.opts.ecs.len())];
        let addr = cidr.random_addr(&mut self.rng);
        let prefix = if addr.is_ipv4() {
            self.opts.ecs_prefix_v4
        } else {
            self.opts.ecs_prefix_v6
        };
        Some((addr, prefix))
    }
}

impl DnsReport {
    /// The summary table printed at the end of a run.
    pub fn table(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "cdn bench dns: {} over {:?}, {}{}, {}, {} {}",
            self.server,
            self.transport,
            self.names,
            if self.ecs { " with ECS" } else { "" },
            match self.rate {
                Some(r) => format!("open loop at {r} q/s"),
                None => "closed loop".into(),
            },
            self.connections,
            if self.transport == Transport::Udp {
                "sockets"
            } else {
                "connections"
            },
        );
        let _ = writeln!(
            out,
            "  queries    {:>12}  {:>12.1} q/s  in {:.2} s",
            self.answers, self.queries_per_sec, self.elapsed_s
        );
        let _ = writeln!(out, "  latency    {}", self.latency_ms);
        let rcodes: Vec<String> = self
            .rcodes
            .iter()
            .map(|(k, v)| format!("{k} {v}"))
            .collect();
        let _ = writeln!(
            out,
            "  rcodes     {}  (truncated {})",
            rcodes.join(", "),
            self.truncated
        );
        let e = &self.errors;
        let _ = writeln!(
            out,
            "  errors     {} (connect {}, timeout {}, io {})",
            e.connect + e.timeout + e.io,
            e.connect,
            e.timeout,
            e.io
        );
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries_encode_as_the_rfcs_say() {
        let mut q = Vec::new();
        encode_query(0x1234, "cdn.example.", 1, None, &mut q);
        assert_eq!(
            q,
            b"\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\x03cdn\x07example\x00\x00\x01\x00\x01"
        );
        encode_query(
            1,
            "a",
            28,
            Some(("192.0.2.77".parse().unwrap(), 20)),
            &mut q,
        );
        let opt = &q[12 + 3 + 4..];
        assert_eq!(q[11], 1, "one additional record");
        // OPT: root, type 41, payload 1232, ttl 0, rdlen 11; ECS: code 8, len 7, family 1,
        // source /20, scope 0, 3 address bytes with the bits past /20 zeroed (77 → 0, .2 → .0).
        assert_eq!(
            opt,
            b"\x00\x00\x29\x04\xd0\x00\x00\x00\x00\x00\x0b\x00\x08\x00\x07\x00\x01\x14\x00\xc0\x00\x00"
        );
        encode_query(
            1,
            "a",
            1,
            Some(("2001:db8::1".parse().unwrap(), 56)),
            &mut q,
        );
        assert_eq!(q.len(), 12 + 3 + 4 + 11 + 4 + 4 + 7);
    }

    #[test]
    fn names_types_and_cidrs_parse() {
        assert_eq!(qtype("aaaa"), Ok(28));
        assert_eq!(qtype("TYPE99"), Ok(99));
        assert!(qtype("BOGUS").is_err());
        assert!(check_name(&"a".repeat(64)).is_err());
        assert!(check_name("a..b").is_err());
        assert!(check_name("example.com.").is_ok());
        let c: Cidr = "10.1.0.0/16".parse().unwrap();
        let mut rng = SmallRng::seed_from_u64(1);
        for _ in 0..100 {
            match c.random_addr(&mut rng) {
                IpAddr::V4(a) => assert_eq!(&a.octets()[..2], &[10, 1]),
                other => panic!("{other}"),
            }
        }
        assert!("10.0.0.0/33".parse::<Cidr>().is_err());
        assert!("10.0.0.0".parse::<Cidr>().is_err());
        let v6: Cidr = "2001:db8::/32".parse().unwrap();
        assert!(
            matches!(v6.random_addr(&mut rng), IpAddr::V6(a) if a.segments()[..2] == [0x2001, 0xdb8])
        );
        assert_eq!(
            answer_header(b"\x00\x07\x81\x83\0\0\0\0\0\0\0\0"),
            Some(AnswerHeader {
                id: 7,
                rcode: 3,
                truncated: false
            })
        );
        assert_eq!(answer_header(b"\x00\x07\x01\x00\0\0\0\0\0\0\0\0"), None);
    }

    /// A DNS "server" answering every query NOERROR (or NXDOMAIN for names starting with `nx`),
    /// over UDP and TCP on the same port.
    fn server() -> SocketAddr {
        let udp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let addr = udp.local_addr().unwrap();
        let tcp = std::net::TcpListener::bind(addr).unwrap();
        fn answer(q: &[u8]) -> Vec<u8> {
            let mut a = q.to_vec();
            a[2] |= 0x80;
            if q.get(13..15) == Some(b"nx") {
                a[3] = 3;
            }
            a
        }
        std::thread::spawn(move || {
            let mut buf = [0u8; 512];
            while let Ok((n, from)) = udp.recv_from(&mut buf) {
                let _ = udp.send_to(&answer(&buf[..n]), from);
            }
        });
        std::thread::spawn(move || {
            use std::io::{Read, Write};
            for stream in tcp.incoming() {
                let Ok(mut s) = stream else { return };
                std::thread::spawn(move || loop {
                    let mut len = [0u8; 2];
                    if s.read_exact(&mut len).is_err() {
                        return;
                    }
                    let mut q = vec![0u8; usize::from(u16::from_be_bytes(len))];
                    if s.read_exact(&mut q).is_err() {
                        return;
                    }
                    let a = answer(&q);
                    let _ = s.write_all(&(a.len() as u16).to_be_bytes());
                    let _ = s.write_all(&a);
                });
            }
        });
        addr
    }

    fn options(server: SocketAddr, transport: Transport) -> DnsOptions {
        DnsOptions {
            server,
            names: Names::List(vec![("cdn.example".into(), 1), ("nx.example".into(), 1)]),
            ecs: vec!["198.51.100.0/24".parse().unwrap()],
            ecs_prefix_v4: 24,
            ecs_prefix_v6: 56,
            transport,
            pace: Pace::Closed,
            stop: Stop::Count(400),
            connections: 4,
            threads: 2,
            timeout: Duration::from_secs(2),
            seed: 1,
            progress: false,
        }
    }

    #[test]
    fn udp_and_tcp_count_answers_by_rcode() {
        let addr = server();
        for transport in [Transport::Udp, Transport::Tcp] {
            let r = run(&options(addr, transport)).unwrap();
            assert_eq!(r.answers, 400, "{transport:?}");
            let (ok, nx) = (r.rcodes["NOERROR"], r.rcodes["NXDOMAIN"]);
            assert_eq!(ok + nx, 400);
            assert!(ok > 120 && nx > 120, "{:?}", r.rcodes);
            assert_eq!(r.errors, DnsErrors::default());
            let json = serde_json::to_value(&r).unwrap();
            assert_eq!(json["answers"], 400);
            assert!(r.table().contains("NOERROR"));
        }
    }

    #[test]
    fn silent_servers_time_out() {
        let silent = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let mut opts = options(silent.local_addr().unwrap(), Transport::Udp);
        opts.stop = Stop::Count(2);
        opts.connections = 2;
        opts.timeout = Duration::from_millis(100);
        let r = run(&opts).unwrap();
        assert_eq!((r.answers, r.errors.timeout), (0, 2));
    }
}
