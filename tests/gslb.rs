//! End-to-end tests of the gslb: a real `cdn gslb` process on 127.0.0.1, spoken to over UDP and
//! TCP with hickory's DNS messages; edge health endpoints are small HTTP servers in the test
//! whose answers (up, down, load) the test controls.

mod support;

use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::rdata::opt::{ClientSubnet, EdnsCode, EdnsOption};
use hickory_proto::rr::{Name, RData, RecordType};
use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use support::{free_addr, get, post, scratch, write_file, Proc};

/// A running `cdn gslb`.
struct Gslb {
    proc: Proc,
    dns: SocketAddr,
    admin: SocketAddr,
    config: String,
    _dir: tempfile::TempDir,
}

/// The config of a test gslb: `{DNS}` and `{ADMIN}` are filled in; `body` holds regions and
/// edges and anything else under `[gslb]`.
fn gslb_toml(dns: SocketAddr, admin: SocketAddr, top: &str, body: &str) -> String {
    format!(
        r#"[gslb]
listen = ["{dns}"]
admin_listen = "{admin}"
udp_sockets = 2
{top}

[[gslb.zones]]
name = "cdn.example.com"
nameservers = ["ns1.cdn.example.com"]
hostmaster = "hostmaster.cdn.example.com"
cdn_names = ["www.cdn.example.com", "*.img.cdn.example.com"]

[[gslb.zones.records]]
name = "ns1.cdn.example.com"
type = "A"
value = "127.0.0.1"

[[gslb.zones.records]]
name = "alias.cdn.example.com"
type = "CNAME"
value = "www.cdn.example.com"

[[gslb.zones.records]]
name = "cdn.example.com"
type = "MX"
value = "10 mail.example.com"

[[gslb.zones.records]]
name = "big.cdn.example.com"
type = "TXT"
value = "{big}"

{body}
"#,
        big = "x".repeat(700)
    )
}

/// Two regions: us (10.0.0.0/8, the default) and eu (192.0.2.0/24 and 10.1.0.0/16 inside
/// us's /8); edge us-1 in us, eu-1 in eu.
const TWO_REGIONS: &str = r#"
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

[[gslb.edges]]
name = "us-1"
ipv4 = "127.0.0.11"
ipv6 = "fd00::11"
region = "us"

[[gslb.edges]]
name = "eu-1"
ipv4 = "127.0.0.22"
ipv6 = "fd00::22"
region = "eu"
"#;

impl Gslb {
    /// Starts `cdn gslb` with the config `make(dns, admin)`, retrying with new ports if it
    /// loses the race for one.
    fn start(make: impl Fn(SocketAddr, SocketAddr) -> String) -> Gslb {
        let dir = scratch();
        for attempt in 0..3 {
            let (dns, admin) = (free_addr(), free_addr());
            let config = write_file(dir.path(), "gslb.toml", &make(dns, admin));
            let log = dir.path().join(format!("gslb-{attempt}.log"));
            let mut proc = Proc::spawn("gslb", &["gslb", "--config", &config], log);
            let deadline = Instant::now() + Duration::from_secs(20);
            while Instant::now() < deadline && proc.alive() {
                if get(&format!("http://{admin}/healthz"), &[]).is_ok_and(|r| r.status == 200) {
                    return Gslb {
                        proc,
                        dns,
                        admin,
                        config,
                        _dir: dir,
                    };
                }
                std::thread::sleep(Duration::from_millis(25));
            }
            eprintln!("gslb did not start (attempt {attempt}):\n{}", proc.output());
        }
        panic!("gslb did not start");
    }

    fn udp(&self, message: &Message) -> Option<Vec<u8>> {
        udp_exchange(self.dns, message)
    }

    fn ask(&self, name: &str, qtype: RecordType, ecs: Option<&str>) -> Message {
        let message = query(name, qtype, ecs);
        self.udp(&message)
            .decode()
            .unwrap_or_else(|| panic!("no answer to {name}:\n{}", self.proc.output()))
    }

    fn metrics(&self) -> String {
        let r = get(&format!("http://{}/metrics", self.admin), &[]).expect("metrics");
        String::from_utf8_lossy(&r.body).into_owned()
    }
}

/// A query message, with EDNS (payload 1232) and optionally ECS `"addr/prefix"`.
fn query(name: &str, qtype: RecordType, ecs: Option<&str>) -> Message {
    let mut message = Message::query();
    message.metadata.recursion_desired = false;
    message.add_query(Query::query(Name::from_str(name).expect("name"), qtype));
    let mut edns = Edns::new();
    edns.set_max_payload(1232);
    if let Some(subnet) = ecs {
        let (addr, prefix) = subnet.split_once('/').expect("addr/prefix");
        edns.options_mut()
            .insert(EdnsOption::Subnet(ClientSubnet::new(
                addr.parse().expect("addr"),
                prefix.parse().expect("prefix"),
                0,
            )));
    }
    message.set_edns(edns);
    message
}

fn udp_exchange(server: SocketAddr, message: &Message) -> Option<Vec<u8>> {
    let bytes = message.to_vec().expect("encode");
    udp_raw(server, &bytes)
}

fn udp_raw(server: SocketAddr, bytes: &[u8]) -> Option<Vec<u8>> {
    let socket = UdpSocket::bind("127.0.0.1:0").expect("bind");
    socket
        .set_read_timeout(Some(Duration::from_millis(700)))
        .expect("timeout");
    socket.send_to(bytes, server).expect("send");
    let mut buf = [0u8; 4096];
    let (n, _) = socket.recv_from(&mut buf).ok()?;
    Some(buf[..n].to_vec())
}

trait Decode {
    fn decode(self) -> Option<Message>;
}

impl Decode for Option<Vec<u8>> {
    fn decode(self) -> Option<Message> {
        self.map(|b| Message::from_vec(&b).expect("a DNS response"))
    }
}

/// Sends every message on one TCP connection back to back (pipelined), reads the answers.
fn tcp_exchange(server: SocketAddr, messages: &[Message]) -> Vec<Message> {
    let mut stream = TcpStream::connect(server).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    let mut out = Vec::new();
    for m in messages {
        let bytes = m.to_vec().expect("encode");
        out.extend_from_slice(&(bytes.len() as u16).to_be_bytes());
        out.extend_from_slice(&bytes);
    }
    stream.write_all(&out).expect("write");
    let mut answers = Vec::new();
    for _ in messages {
        let mut len = [0u8; 2];
        stream.read_exact(&mut len).expect("length");
        let mut body = vec![0u8; usize::from(u16::from_be_bytes(len))];
        stream.read_exact(&mut body).expect("body");
        answers.push(Message::from_vec(&body).expect("a DNS response"));
    }
    answers
}

/// The addresses in the answer section.
fn addresses(m: &Message) -> Vec<IpAddr> {
    m.answers
        .iter()
        .filter_map(|r| match &r.data {
            RData::A(a) => Some(IpAddr::V4(a.0)),
            RData::AAAA(a) => Some(IpAddr::V6(a.0)),
            _ => None,
        })
        .collect()
}

fn ip(s: &str) -> IpAddr {
    s.parse().expect("ip")
}

/// The ECS option of a response: (source prefix, scope prefix).
fn ecs_of(m: &Message) -> Option<(u8, u8)> {
    match m.edns.as_ref()?.option(EdnsCode::Subnet)? {
        EdnsOption::Subnet(s) => Some((s.source_prefix(), s.scope_prefix())),
        _ => None,
    }
}

trait Ask {
    fn get(self) -> Message;
}

impl Ask for Option<Message> {
    fn get(self) -> Message {
        self.expect("an answer")
    }
}

#[test]
fn answers_follow_the_cidr_table_by_source_and_by_ecs_with_scope() {
    let g = Gslb::start(|d, a| gslb_toml(d, a, "ttl = \"20s\"", TWO_REGIONS));
    // Loopback matches no network: the default region (the first, us).
    let m = g.ask("www.cdn.example.com.", RecordType::A, None);
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    assert!(m.metadata.authoritative);
    assert_eq!(addresses(&m), [ip("127.0.0.11")]);
    assert_eq!(m.answers[0].ttl, 20);
    assert_eq!(ecs_of(&m), None, "no ECS asked, none answered");
    assert_eq!(m.edns.as_ref().map(|e| e.max_payload()), Some(1232));

    let cases = [
        // (client subnet, edge, scope)
        ("192.0.2.0/24", "127.0.0.22", 24),
        ("10.1.7.0/24", "127.0.0.22", 16),
        // Inside 10/8 but next to 10.1/16: the uniform block is 10.2.0.0/15, not the /8.
        ("10.2.0.0/24", "127.0.0.11", 15),
        ("10.200.0.0/24", "127.0.0.11", 9),
        // Unmatched: the default region, for the widest block without a network of the table
        // (203 = 11001011 and 192 = 11000000 share four leading bits: 200.0.0.0/5 is empty).
        ("203.0.113.0/24", "127.0.0.11", 5),
    ];
    for (subnet, edge, scope) in cases {
        let m = g.ask("www.cdn.example.com.", RecordType::A, Some(subnet));
        assert_eq!(addresses(&m), [ip(edge)], "{subnet}");
        let source: u8 = subnet.split('/').nth(1).unwrap().parse().unwrap();
        assert_eq!(ecs_of(&m), Some((source, scope)), "{subnet}");
    }
    // Wildcards, IPv6 subnets and AAAA.
    let m = g.ask(
        "a.b.img.cdn.example.com.",
        RecordType::AAAA,
        Some("2001:db8:2::/56"),
    );
    assert_eq!(addresses(&m), [ip("fd00::22")]);
    assert_eq!(ecs_of(&m), Some((56, 48)));
    // Source prefix 0: no client information, the default region for everybody (scope 0).
    let m = g.ask("www.cdn.example.com.", RecordType::A, Some("0.0.0.0/0"));
    assert_eq!(addresses(&m), [ip("127.0.0.11")]);
    assert_eq!(ecs_of(&m), Some((0, 0)));
    // Bits set past the source prefix: FORMERR (RFC 7871 7.1.1).
    let m = g.ask("www.cdn.example.com.", RecordType::A, Some("192.0.3.0/23"));
    assert_eq!(m.metadata.response_code, ResponseCode::FormErr);

    let metrics = g.metrics();
    for needle in [
        "cdn_gslb_queries_total{qtype=\"A\",rcode=\"NOERROR\"}",
        "cdn_gslb_answers_total{edge=\"eu-1\",region=\"eu\"} 3",
        "cdn_gslb_ecs_queries_total{source=\"ecs\"}",
        "cdn_gslb_ecs_queries_total{source=\"invalid\"} 1",
        "cdn_gslb_edge_up{edge=\"us-1\"} 1",
    ] {
        assert!(metrics.contains(needle), "{needle} missing from\n{metrics}");
    }
}

#[test]
fn every_response_code_truncation_and_tcp() {
    let g = Gslb::start(|d, a| gslb_toml(d, a, "", TWO_REGIONS));
    let rcode = |m: &Message| m.metadata.response_code;
    // The apex: SOA and NS, authoritative.
    let m = g.ask("cdn.example.com.", RecordType::SOA, None);
    assert!(m.metadata.authoritative);
    assert_eq!(m.answers[0].record_type(), RecordType::SOA);
    let m = g.ask("cdn.example.com.", RecordType::NS, None);
    assert!(
        matches!(&m.answers[0].data, RData::NS(ns) if ns.0.to_string() == "ns1.cdn.example.com.")
    );
    // Static records.
    let m = g.ask("ns1.cdn.example.com.", RecordType::A, None);
    assert_eq!(addresses(&m), [ip("127.0.0.1")]);
    let m = g.ask("alias.cdn.example.com.", RecordType::A, None);
    assert_eq!(m.answers[0].record_type(), RecordType::CNAME);
    let m = g.ask("cdn.example.com.", RecordType::MX, None);
    assert_eq!(m.answers[0].record_type(), RecordType::MX);
    // NXDOMAIN and NODATA carry the SOA in the authority section.
    let m = g.ask("nope.cdn.example.com.", RecordType::A, None);
    assert_eq!(rcode(&m), ResponseCode::NXDomain);
    assert!(m.metadata.authoritative);
    assert_eq!(m.authorities[0].record_type(), RecordType::SOA);
    let m = g.ask("www.cdn.example.com.", RecordType::TXT, None);
    assert_eq!(rcode(&m), ResponseCode::NoError);
    assert!(m.answers.is_empty());
    assert_eq!(m.authorities[0].record_type(), RecordType::SOA);
    // Outside our zones.
    let m = g.ask("www.example.org.", RecordType::A, None);
    assert_eq!(rcode(&m), ResponseCode::Refused);
    assert!(!m.metadata.authoritative);
    // Another opcode.
    let mut notify = query("cdn.example.com.", RecordType::SOA, None);
    notify.metadata.op_code = OpCode::Notify;
    assert_eq!(rcode(&g.udp(&notify).decode().get()), ResponseCode::NotImp);
    // Parses, but malformed: two questions.
    let mut two = query("www.cdn.example.com.", RecordType::A, None);
    two.add_query(Query::query(
        Name::from_str("cdn.example.com.").unwrap(),
        RecordType::SOA,
    ));
    assert_eq!(rcode(&g.udp(&two).decode().get()), ResponseCode::FormErr);
    // A question followed by a truncated OPT record: a broken query, FORMERR.
    let mut broken = query("www.cdn.example.com.", RecordType::A, None)
        .to_vec()
        .unwrap();
    broken.truncate(broken.len() - 3);
    let m = udp_raw(g.dns, &broken).decode().get();
    assert_eq!(rcode(&m), ResponseCode::FormErr);
    // Garbage: no reply, no crash.
    for garbage in [&b"hello"[..], &[0xff; 40][..], &[0u8; 3][..]] {
        assert_eq!(udp_raw(g.dns, garbage), None);
    }
    // A response is never answered.
    let mut response = query("www.cdn.example.com.", RecordType::A, None);
    response.metadata.message_type = MessageType::Response;
    assert_eq!(g.udp(&response), None);
    // Without EDNS a UDP answer is at most 512 bytes: TC set; TCP has the whole record.
    let mut plain = query("big.cdn.example.com.", RecordType::TXT, None);
    plain.edns = None;
    let m = g.udp(&plain).decode().get();
    assert!(m.metadata.truncation, "{m:?}");
    let answers = tcp_exchange(
        g.dns,
        &[
            plain.clone(),
            query("www.cdn.example.com.", RecordType::A, None),
        ],
    );
    assert!(!answers[0].metadata.truncation);
    match &answers[0].answers[0].data {
        RData::TXT(t) => assert_eq!(t.txt_data.iter().map(|s| s.len()).sum::<usize>(), 700),
        other => panic!("{other:?}"),
    }
    assert_eq!(answers[0].metadata.id, plain.metadata.id);
    assert_eq!(addresses(&answers[1]), [ip("127.0.0.11")], "pipelined");
    // With EDNS the client's payload size is used: 700 bytes fit in 1232.
    let m = g.ask("big.cdn.example.com.", RecordType::TXT, None);
    assert!(!m.metadata.truncation);
    // Still serving after all that.
    assert_eq!(
        addresses(&g.ask("www.cdn.example.com.", RecordType::A, None)),
        [ip("127.0.0.11")]
    );
    let log = g.proc.output();
    assert!(!log.contains("panicked"), "{log}");
}

/// An HTTP health endpoint the test controls: up or down (listener closed), and the load it
/// reports.
struct HealthEndpoint {
    addr: SocketAddr,
    up: Arc<AtomicBool>,
    load_millis: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl HealthEndpoint {
    fn start() -> HealthEndpoint {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr");
        drop(listener);
        let up = Arc::new(AtomicBool::new(true));
        let load_millis = Arc::new(AtomicU64::new(100));
        let stop = Arc::new(AtomicBool::new(false));
        let (up2, load2, stop2) = (up.clone(), load_millis.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            let mut listener: Option<TcpListener> = None;
            while !stop2.load(Ordering::Relaxed) {
                if !up2.load(Ordering::Relaxed) {
                    listener = None; // closed: probes get "connection refused"
                    std::thread::sleep(Duration::from_millis(5));
                    continue;
                }
                if listener.is_none() {
                    listener = TcpListener::bind(addr).ok();
                    if let Some(l) = &listener {
                        l.set_nonblocking(true).expect("nonblocking");
                    }
                }
                let Some(l) = &listener else {
                    std::thread::sleep(Duration::from_millis(5));
                    continue;
                };
                match l.accept() {
                    Ok((mut s, _)) => {
                        let _ = s.set_nonblocking(false);
                        let _ = s.set_read_timeout(Some(Duration::from_millis(500)));
                        let mut buf = [0u8; 1024];
                        let _ = s.read(&mut buf);
                        let load = load2.load(Ordering::Relaxed) as f64 / 1000.0;
                        let body = format!("{{\"status\":\"ok\",\"in_flight\":0,\"load\":{load}}}");
                        let _ = write!(
                            s,
                            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                            body.len()
                        );
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(2)),
                }
            }
        });
        HealthEndpoint {
            addr,
            up,
            load_millis,
            stop,
            thread: Some(thread),
        }
    }

    fn url(&self) -> String {
        format!("http://{}/healthz", self.addr)
    }

    fn set_up(&self, up: bool) {
        self.up.store(up, Ordering::Relaxed);
    }

    fn set_load(&self, load: f64) {
        self.load_millis
            .store((load * 1000.0) as u64, Ordering::Relaxed);
    }
}

impl Drop for HealthEndpoint {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Polls (bounded) until `www` answers `want` for a loopback client; returns how long it took.
fn wait_for_answer(g: &Gslb, want: &str, limit: Duration) -> Duration {
    let start = Instant::now();
    loop {
        let m = g.ask("www.cdn.example.com.", RecordType::A, None);
        if addresses(&m) == [ip(want)] {
            return start.elapsed();
        }
        assert!(
            start.elapsed() < limit,
            "still {:?} after {limit:?}, want {want}; edges: {}\n{}",
            addresses(&m),
            get(&format!("http://{}/edges", g.admin), &[])
                .map(|r| String::from_utf8_lossy(&r.body).into_owned())
                .unwrap_or_default(),
            g.proc.output()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_dead_edge_leaves_the_answers_and_comes_back_and_an_overloaded_one_is_avoided() {
    let near = HealthEndpoint::start();
    let far = HealthEndpoint::start();
    let (near_url, far_url) = (near.url(), far.url());
    // Both edges are for loopback clients' region (us); "far" stands in Frankfurt.
    let g = Gslb::start(|d, a| {
        gslb_toml(
            d,
            a,
            "",
            &format!(
                r#"
[gslb.health]
interval = "100ms"
timeout = "80ms"
rise = 2
fall = 3
load_low = 0.5
load_high = 0.9

[[gslb.regions]]
name = "us"
latitude = 38.9
longitude = -77.0
networks = ["10.0.0.0/8"]

[[gslb.edges]]
name = "near"
ipv4 = "127.0.0.11"
region = "us"
health_url = "{near_url}"

[[gslb.edges]]
name = "far"
ipv4 = "127.0.0.22"
latitude = 50.1
longitude = 8.7
health_url = "{far_url}"
"#
            ),
        )
    });
    wait_for_answer(&g, "127.0.0.11", Duration::from_secs(5));

    // fall × interval = 300 ms (+ one interval of phase, one of probe time, and slack).
    near.set_up(false);
    let left = wait_for_answer(&g, "127.0.0.22", Duration::from_secs(3));
    assert!(left <= Duration::from_millis(900), "left after {left:?}");
    let edges = get(&format!("http://{}/edges", g.admin), &[]).unwrap();
    let edges: serde_json::Value = serde_json::from_slice(&edges.body).unwrap();
    assert_eq!(edges[0]["up"], false, "{edges}");
    assert!(edges[0]["last_error"].is_string(), "{edges}");
    assert!(g.metrics().contains("cdn_gslb_edge_up{edge=\"near\"} 0"));

    // rise × interval = 200 ms.
    near.set_up(true);
    let back = wait_for_answer(&g, "127.0.0.11", Duration::from_secs(3));
    assert!(back <= Duration::from_millis(900), "back after {back:?}");

    // Over the high watermark: clients go to the far edge while it can take them…
    near.set_load(0.95);
    wait_for_answer(&g, "127.0.0.22", Duration::from_secs(3));
    assert!(g
        .metrics()
        .contains("cdn_gslb_edge_shedding{edge=\"near\"} 1"));
    // …between the watermarks it keeps shedding…
    near.set_load(0.7);
    std::thread::sleep(Duration::from_millis(300));
    let m = g.ask("www.cdn.example.com.", RecordType::A, None);
    assert_eq!(addresses(&m), [ip("127.0.0.22")]);
    // …and below the low one it is back.
    near.set_load(0.2);
    wait_for_answer(&g, "127.0.0.11", Duration::from_secs(3));

    // Nobody healthy: the fallback (every edge) rather than nothing.
    near.set_up(false);
    far.set_up(false);
    let start = Instant::now();
    loop {
        let m = g.ask("www.cdn.example.com.", RecordType::A, None);
        if addresses(&m).len() == 2 {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(3), "{m:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(g
        .metrics()
        .contains("cdn_gslb_fallback_answers_total{region=\"us\"}"));
}

#[test]
fn a_reload_with_a_broken_file_keeps_the_old_config() {
    let mut g = Gslb::start(|d, a| gslb_toml(d, a, "", TWO_REGIONS));
    let pid = g.proc.child.id().to_string();
    assert_eq!(
        addresses(&g.ask("www.cdn.example.com.", RecordType::A, None)),
        [ip("127.0.0.11")]
    );
    let good = std::fs::read_to_string(&g.config).unwrap();

    // Broken TOML, then a valid file with a bad value: both rejected, the old answers stay.
    for broken in [
        "[gslb\nlisten = ".to_string(),
        good.replace(
            "ipv4 = \"127.0.0.11\"",
            "ipv4 = \"127.0.0.11\"\nweight = 5000",
        ),
    ] {
        std::fs::write(&g.config, &broken).unwrap();
        let r = post(&format!("http://{}/reload", g.admin)).unwrap();
        assert_eq!(r.status, 400);
        let body = String::from_utf8_lossy(&r.body).into_owned();
        assert!(
            body.contains("gslb.toml"),
            "the error names the file: {body}"
        );
        let status = std::process::Command::new("kill")
            .args(["-HUP", &pid])
            .status()
            .unwrap();
        assert!(status.success());
        std::thread::sleep(Duration::from_millis(200));
        assert!(g.proc.alive());
        assert_eq!(
            addresses(&g.ask("www.cdn.example.com.", RecordType::A, None)),
            [ip("127.0.0.11")]
        );
    }
    assert!(g.proc.output().contains("rejected"), "{}", g.proc.output());
    assert!(g
        .metrics()
        .contains("cdn_gslb_reloads_total{result=\"rejected\"} 4"));

    // A good new config is taken on SIGHUP, on the same sockets.
    std::fs::write(&g.config, good.replace("127.0.0.11", "127.0.0.33")).unwrap();
    let status = std::process::Command::new("kill")
        .args(["-HUP", &pid])
        .status()
        .unwrap();
    assert!(status.success());
    let start = Instant::now();
    while addresses(&g.ask("www.cdn.example.com.", RecordType::A, None)) != [ip("127.0.0.33")] {
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "{}",
            g.proc.output()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn gslb_config_errors_exit_2_with_the_field() {
    let dir = scratch();
    let config = write_file(
        dir.path(),
        "bad.toml",
        &gslb_toml(free_addr(), free_addr(), "answers = 0", TWO_REGIONS)
            .replace("region = \"eu\"", "region = \"mars\""),
    );
    let (code, _, err) = support::run_cdn(&["gslb", "--config", &config]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("gslb.answers"), "{err}");
    assert!(
        err.contains("gslb.edges[1].region: \"mars\" is not a region"),
        "{err}"
    );
    let (code, _, err) = support::run_cdn(&["config", "check", &config]);
    assert_eq!(code, 2, "{err}");
}

/// The no-argument `cdn`: two edges (127.0.0.1, 127.0.0.2) and the gslb on 127.0.0.1:5353, as
/// the README shows with dig.
#[test]
fn cdn_without_arguments_answers_like_the_readme() {
    let dir = scratch();
    let mut cdn = Proc::spawn("cdn", &[], dir.path().join("cdn.log"));
    let dns: SocketAddr = "127.0.0.1:5353".parse().unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    // Until both edges have passed their health checks.
    loop {
        let edges = get("http://127.0.0.1:9353/edges", &[])
            .ok()
            .and_then(|r| serde_json::from_slice::<serde_json::Value>(&r.body).ok());
        let ready = edges.as_ref().and_then(|e| e.as_array()).is_some_and(|a| {
            a.len() == 2
                && a.iter()
                    .all(|e| e["up"] == true && e["probes"].as_u64() >= Some(2))
        });
        if ready {
            break;
        }
        assert!(cdn.alive(), "cdn exited:\n{}", cdn.output());
        assert!(
            Instant::now() < deadline,
            "not ready: {edges:?}\n{}",
            cdn.output()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let m = udp_exchange(dns, &query("www.cdn.example.com.", RecordType::A, None))
        .decode()
        .get();
    assert_eq!(addresses(&m), [ip("127.0.0.1")]);
    let m = udp_exchange(
        dns,
        &query("www.cdn.example.com.", RecordType::A, Some("192.0.2.0/24")),
    )
    .decode()
    .get();
    assert_eq!(addresses(&m), [ip("127.0.0.2")]);
    assert_eq!(ecs_of(&m), Some((24, 24)));
    let m = udp_exchange(dns, &query("nope.cdn.example.com.", RecordType::A, None))
        .decode()
        .get();
    assert_eq!(m.metadata.response_code, ResponseCode::NXDomain);
    // The second edge serves too, and reports its load.
    let h = get("http://127.0.0.2:9080/healthz", &[]).unwrap();
    let h: serde_json::Value = serde_json::from_slice(&h.body).unwrap();
    assert_eq!(h["edge"], "cdn-edge-eu");
    assert!(h["load"].as_f64().is_some(), "{h}");
    let status = cdn.terminate(Duration::from_secs(15)).expect("stops");
    assert!(status.success(), "{status:?}\n{}", cdn.output());
}
