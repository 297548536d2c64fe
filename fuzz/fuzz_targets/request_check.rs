//! Any set of request headers: the edge's request check answers accept or 400, never panics.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: (&str, Vec<(&str, &[u8])>)| {
    let (target, headers) = input;
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
