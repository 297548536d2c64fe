//! Any set of request headers, and any raw header bytes: the edge's request checks answer
//! accept, 400 or 431, never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: (&str, Vec<(&str, &[u8])>, &[u8])| {
    let (target, headers, raw) = input;
    if let Err(refusal) = cdn_edge::request_check::check_raw(raw) {
        assert!(refusal.status == 400 || refusal.status == 431);
    }
    let Ok(mut req) = pingora_http::RequestHeader::build("GET", target.as_bytes(), None) else {
        return;
    };
    for (name, value) in headers {
        let _ = req.append_header(name.to_string(), value);
    }
    if let Err(refusal) = cdn_edge::request_check::check(&req) {
        assert_eq!(refusal.status, 400);
    }
});
