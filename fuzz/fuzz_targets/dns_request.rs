//! Any datagram from any source, through the gslb's whole request path (decode, zone, ECS,
//! region, edge choice, encode): it is answered with a well-formed DNS response carrying the
//! query's id, or dropped, and never panics.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::net::{IpAddr, SocketAddr};
use std::sync::OnceLock;

fn handler() -> &'static cdn_gslb::GslbHandler {
    static HANDLER: OnceLock<cdn_gslb::GslbHandler> = OnceLock::new();
    HANDLER.get_or_init(|| {
        let config = cdn_config::Config::embedded_default().expect("the default config is valid");
        let gslb = config.gslb.expect("the default config has a [gslb]");
        cdn_gslb::GslbHandler::from_config(&gslb).expect("the default gslb builds")
    })
}

fuzz_target!(|input: (u128, bool, u16, &[u8])| {
    let (addr, v4, port, datagram) = input;
    let ip = if v4 {
        IpAddr::from((addr as u32).to_be_bytes())
    } else {
        IpAddr::from(addr.to_be_bytes())
    };
    let mut out = Vec::new();
    if handler().answer_datagram(datagram, SocketAddr::new(ip, port), &mut out) {
        let response = hickory_proto::op::Message::from_vec(&out).expect("a decodable response");
        assert_eq!(
            response.metadata.id,
            u16::from_be_bytes([datagram[0], datagram[1]])
        );
        assert_eq!(
            response.metadata.message_type,
            hickory_proto::op::MessageType::Response
        );
        assert!(out.len() <= 1232, "a UDP answer within our payload size");
    }
});
