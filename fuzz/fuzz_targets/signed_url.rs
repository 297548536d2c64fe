//! Any path and query against a signed route: the token parser and verifier never panic, a
//! URL signed for any path verifies, and stripping leaves no token parameter behind.
#![no_main]

use cdn_config::{Secret, SignedUrlConfig, SigningKeyConfig};
use cdn_edge::signed_url::{sign, SignRequest, SignedUrlPolicy, TokenParams};
use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;

const SECRET: &str = "fuzz-secret-0123456789abcdef";
const NOW: u64 = 1_700_000_000;

fn policy() -> &'static SignedUrlPolicy {
    static POLICY: OnceLock<SignedUrlPolicy> = OnceLock::new();
    POLICY.get_or_init(|| {
        SignedUrlPolicy::from_config(&SignedUrlConfig::with_keys(vec![SigningKeyConfig {
            kid: "k1".into(),
            secret: Some(Secret(SECRET.into())),
            secret_file: None,
            secret_env: None,
        }]))
    })
}

fuzz_target!(|input: (&str, &str, [u8; 4], bool)| {
    let (path, query, ip, bind) = input;
    let client = Some(std::net::IpAddr::from(ip));
    let p = policy();
    let _ = p.verify(path, Some(query), client, NOW);
    if let Some(stripped) = p.strip_token(path, Some(query)) {
        assert!(stripped.starts_with(path));
        let q = stripped[path.len()..].strip_prefix('?').unwrap_or("");
        assert!(q
            .split('&')
            .all(|pair| !["expires", "kid", "sig", "acl", "ip"]
                .contains(&pair.split('=').next().unwrap_or(""))));
    }
    // Whatever a signer signs, the edge accepts (paths as a client would send them).
    if path.starts_with('/')
        && path
            .bytes()
            .all(|b| b.is_ascii_graphic() && b != b'?' && b != b'#')
    {
        let url = sign(&SignRequest {
            url: path,
            kid: "k1",
            secret: SECRET.as_bytes(),
            expires: NOW + 1,
            ip: bind.then_some(client).flatten(),
            acl: None,
            params: &TokenParams::default(),
        })
        .expect("a path signs");
        let (signed_path, signed_query) = url.split_once('?').expect("a query");
        assert_eq!(signed_path, path);
        assert!(
            p.verify(signed_path, Some(signed_query), client, NOW)
                .is_ok(),
            "{url}"
        );
    }
});
