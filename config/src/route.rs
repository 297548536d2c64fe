//! The `[[edge.routes]]` tables: per host and path prefix, who may fetch (access lists,
//! `Referer`), whether a signed URL is needed, and how fast a client may ask.
//!
//! A request takes the route with the longest matching `prefix` among those whose `host` is
//! its own or unset (on a tie, the one naming the host); a request matching no route passes
//! unchecked. Later issues add cache rules to the same routes.

use crate::cidr::Cidr;
use crate::units::HumanDuration;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::path::PathBuf;

/// One route: where it applies and the protections it carries.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteConfig {
    /// The `Host` it applies to (compared without case and port). Unset: every host.
    /// Default: unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// Path prefix, compared with the request path after normalisation (escapes of unreserved
    /// characters decoded, `.`/`..` segments resolved, repeated `/` merged), byte for byte:
    /// `"/private/"` covers `/private/a` but not `/private`. Default: `"/"`.
    #[serde(default = "default_prefix")]
    pub prefix: String,
    /// Client CIDRs that may use the route (a bare address is a /32 or /128). Empty: every
    /// client. Default: `[]`.
    #[serde(default)]
    pub allow: Vec<Cidr>,
    /// Client CIDRs refused with 403, even when `allow` lists them too. Default: `[]`.
    #[serde(default)]
    pub deny: Vec<Cidr>,
    /// Sites whose pages may link here (classic hotlink protection): a `Referer` whose host is
    /// one of these (`"*.example.com"` covers the subdomains of example.com) passes, any other
    /// gets 403. Empty: `Referer` is not checked. Default: `[]`.
    #[serde(default)]
    pub referers: Vec<String>,
    /// With `referers` set, whether a request without `Referer` passes (browsers leave it out
    /// for typed URLs and under some privacy settings). Default: `true`.
    #[serde(default = "yes")]
    pub allow_no_referer: bool,
    /// Requires a signed URL. Unset: no signature needed. Default: unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signed: Option<SignedUrlConfig>,
    /// Limits the request rate. Unset: no limit. Default: unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limit: Option<RateLimitConfig>,
}

impl Default for RouteConfig {
    fn default() -> Self {
        Self {
            host: None,
            prefix: default_prefix(),
            allow: Vec::new(),
            deny: Vec::new(),
            referers: Vec::new(),
            allow_no_referer: true,
            signed: None,
            rate_limit: None,
        }
    }
}

/// What a signed URL must carry on a route, and the keys that may sign it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignedUrlConfig {
    /// The keys accepted (at least one). Several at once allow rotation: add a key, sign with
    /// it, then remove the old one once its links have expired.
    pub keys: Vec<SigningKeyConfig>,
    /// Whether every token must be bound to the client's IP address (the `ip` parameter).
    /// Tokens that carry an IP are checked against the client whatever this says.
    /// Default: `false`.
    #[serde(default)]
    pub bind_ip: bool,
    /// Whether a signature works only once: the edge remembers used signatures until they
    /// expire and answers 403 `reused` to the second use. Default: `false`.
    #[serde(default)]
    pub single_use: bool,
    /// How long after `expires` a token is still accepted, for signers whose clocks run a
    /// little ahead. Default: `"30s"`.
    #[serde(default = "default_clock_skew")]
    pub clock_skew: HumanDuration,
    /// Query parameter carrying the expiry (Unix seconds). Default: `"expires"`.
    #[serde(default = "default_expires_param")]
    pub expires_param: String,
    /// Query parameter naming the key. Default: `"kid"`.
    #[serde(default = "default_kid_param")]
    pub kid_param: String,
    /// Query parameter carrying the signature. Default: `"sig"`.
    #[serde(default = "default_sig_param")]
    pub sig_param: String,
    /// Query parameter carrying a path prefix that the token covers instead of one path.
    /// Default: `"acl"`.
    #[serde(default = "default_acl_param")]
    pub acl_param: String,
    /// Query parameter carrying the client IP the token is bound to. Default: `"ip"`.
    #[serde(default = "default_ip_param")]
    pub ip_param: String,
}

impl SignedUrlConfig {
    /// A route's signature settings with the default parameter names.
    pub fn with_keys(keys: Vec<SigningKeyConfig>) -> Self {
        Self {
            keys,
            bind_ip: false,
            single_use: false,
            clock_skew: default_clock_skew(),
            expires_param: default_expires_param(),
            kid_param: default_kid_param(),
            sig_param: default_sig_param(),
            acl_param: default_acl_param(),
            ip_param: default_ip_param(),
        }
    }

    /// Every token parameter name, in the order expires, kid, sig, acl, ip.
    pub fn param_names(&self) -> [&str; 5] {
        [
            &self.expires_param,
            &self.kid_param,
            &self.sig_param,
            &self.acl_param,
            &self.ip_param,
        ]
    }
}

/// One HMAC key. Its secret comes from exactly one of `secret`, `secret_file`, `secret_env`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SigningKeyConfig {
    /// The key's id, sent in the `kid` parameter (letters, digits, `-`, `_`, `.`, `~`).
    pub kid: String,
    /// The secret itself (its UTF-8 bytes; at least 16). Never logged. Default: unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<Secret>,
    /// A file holding the secret (one trailing newline is ignored). Default: unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_file: Option<PathBuf>,
    /// An environment variable holding the secret. Default: unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_env: Option<String>,
}

/// Fewest bytes in a signing secret: below that, guessing it offline is within reach.
pub const MIN_SECRET_BYTES: usize = 16;

impl SigningKeyConfig {
    /// The secret's bytes, read from wherever the config says. The message of an error says
    /// where it looked, never what it found.
    pub fn secret_bytes(&self) -> Result<Vec<u8>, String> {
        let bytes = match (&self.secret, &self.secret_file, &self.secret_env) {
            (Some(s), None, None) => s.0.as_bytes().to_vec(),
            (None, Some(path), None) => {
                let mut bytes = std::fs::read(path)
                    .map_err(|e| format!("cannot read secret_file {}: {e}", path.display()))?;
                if bytes.last() == Some(&b'\n') {
                    bytes.pop();
                    if bytes.last() == Some(&b'\r') {
                        bytes.pop();
                    }
                }
                bytes
            }
            (None, None, Some(var)) => std::env::var_os(var)
                .ok_or_else(|| format!("environment variable {var} is not set"))?
                .into_encoded_bytes(),
            (None, None, None) => {
                return Err("no secret: set one of secret, secret_file or secret_env".into())
            }
            _ => return Err("set only one of secret, secret_file or secret_env".into()),
        };
        if bytes.len() < MIN_SECRET_BYTES {
            return Err(format!(
                "the secret has {} bytes: use at least {MIN_SECRET_BYTES} (32 random bytes are best)",
                bytes.len()
            ));
        }
        Ok(bytes)
    }
}

/// A secret from the config file. Its `Debug` shows no byte of it, so that logging a config
/// never leaks a key.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Secret(pub String);

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

/// A token-bucket limit on a route.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimitConfig {
    /// Requests per second allowed in the long run (more than 0, e.g. `0.5` or `100`).
    pub rate: f64,
    /// Requests allowed at once after a quiet spell (at least 1).
    pub burst: u32,
    /// What has a bucket of its own: `"client"` (each client address, grouped by
    /// `ipv4_prefix`/`ipv6_prefix`), `"route"` (one bucket for everyone) or `"kid"` (each
    /// signing key of a signed route). Default: `"client"`.
    #[serde(default)]
    pub key: LimitKey,
    /// Clients whose IPv4 addresses share these leading bits share a bucket (`24`: one per
    /// /24). 0 to 32. Default: `32`.
    #[serde(default = "default_ipv4_prefix")]
    pub ipv4_prefix: u8,
    /// The same for IPv6 (`64`: one per /64, usually one subscriber). 0 to 128. Default: `64`.
    #[serde(default = "default_ipv6_prefix")]
    pub ipv6_prefix: u8,
    /// Most buckets remembered at once. Buckets idle long enough to be full again are dropped
    /// first (they hold nothing), then the least used. Default: `100000`.
    #[serde(default = "default_max_keys")]
    pub max_keys: u64,
    /// Client CIDRs never limited (monitoring, partners). Default: `[]`.
    #[serde(default)]
    pub bypass: Vec<Cidr>,
}

/// What a rate limit counts requests by.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LimitKey {
    /// The client address, grouped by prefix.
    #[default]
    Client,
    /// The route as a whole.
    Route,
    /// The signed URL's key id.
    Kid,
}

fn yes() -> bool {
    true
}
fn default_prefix() -> String {
    "/".to_string()
}
fn default_clock_skew() -> HumanDuration {
    HumanDuration::from_secs(30)
}
fn default_expires_param() -> String {
    "expires".to_string()
}
fn default_kid_param() -> String {
    "kid".to_string()
}
fn default_sig_param() -> String {
    "sig".to_string()
}
fn default_acl_param() -> String {
    "acl".to_string()
}
fn default_ip_param() -> String {
    "ip".to_string()
}
fn default_ipv4_prefix() -> u8 {
    32
}
fn default_ipv6_prefix() -> u8 {
    64
}
fn default_max_keys() -> u64 {
    100_000
}

/// Most buckets a limit may remember (`max_keys`).
pub const MAX_LIMIT_KEYS: u64 = 10_000_000;

/// The problems of the routes, as `(field path, message)`.
pub(crate) fn problems(routes: &[RouteConfig], out: &mut Vec<(String, String)>) {
    let mut seen: Vec<(Option<String>, &str)> = Vec::new();
    for (i, route) in routes.iter().enumerate() {
        let field = |name: &str| format!("edge.routes[{i}].{name}");
        let host = route.host.as_ref().map(|h| h.to_ascii_lowercase());
        if let Some(h) = &host {
            if h.is_empty()
                || !h
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-._[]:".contains(&b))
            {
                out.push((field("host"), format!("{h:?} is not a host name")));
            }
        }
        if !route.prefix.starts_with('/') || !route.prefix.bytes().all(|b| b.is_ascii_graphic()) {
            out.push((
                field("prefix"),
                format!(
                    "{:?} is not a path prefix: start it with / and use no spaces or control characters",
                    route.prefix
                ),
            ));
        }
        if let Some(j) = seen
            .iter()
            .position(|(h, p)| *h == host && *p == route.prefix)
        {
            out.push((
                field("prefix"),
                format!(
                    "{:?} is already the prefix of edge.routes[{j}] for the same host: merge the two",
                    route.prefix
                ),
            ));
        }
        seen.push((host, &route.prefix));
        for (k, r) in route.referers.iter().enumerate() {
            let name = r.strip_prefix("*.").unwrap_or(r);
            if name.is_empty()
                || !name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-.:".contains(&b))
            {
                out.push((
                    field(&format!("referers[{k}]")),
                    format!("{r:?} is not a host name (\"example.com\" or \"*.example.com\")"),
                ));
            }
        }
        if let Some(signed) = &route.signed {
            signed_problems(signed, &field, out);
        }
        if let Some(limit) = &route.rate_limit {
            limit_problems(limit, route.signed.is_some(), &field, out);
        }
    }
}

fn signed_problems(
    signed: &SignedUrlConfig,
    field: &dyn Fn(&str) -> String,
    out: &mut Vec<(String, String)>,
) {
    if signed.keys.is_empty() {
        out.push((
            field("signed.keys"),
            "no keys: add at least one [[edge.routes.signed.keys]] with a kid and a secret".into(),
        ));
    }
    let mut kids: Vec<&str> = Vec::new();
    for (k, key) in signed.keys.iter().enumerate() {
        let key_field = |name: &str| field(&format!("signed.keys[{k}].{name}"));
        if key.kid.is_empty() || !key.kid.bytes().all(is_url_safe) {
            out.push((
                key_field("kid"),
                format!(
                    "{:?} is not a key id: use letters, digits and - _ . ~",
                    key.kid
                ),
            ));
        } else if kids.contains(&key.kid.as_str()) {
            out.push((
                key_field("kid"),
                format!("{:?} is listed twice: each key needs its own id", key.kid),
            ));
        }
        kids.push(&key.kid);
        let source = if key.secret_file.is_some() {
            "secret_file"
        } else if key.secret_env.is_some() {
            "secret_env"
        } else {
            "secret"
        };
        if let Err(message) = key.secret_bytes() {
            out.push((key_field(source), message));
        }
    }
    let names = signed.param_names();
    let labels = [
        "expires_param",
        "kid_param",
        "sig_param",
        "acl_param",
        "ip_param",
    ];
    for (n, (name, label)) in names.iter().zip(labels).enumerate() {
        if name.is_empty() || !name.bytes().all(is_url_safe) {
            out.push((
                field(&format!("signed.{label}")),
                format!("{name:?} is not a query parameter name: use letters, digits and - _ . ~"),
            ));
        } else if names[..n].contains(name) {
            out.push((
                field(&format!("signed.{label}")),
                format!("{name:?} names another token parameter too: each needs its own"),
            ));
        }
    }
    if signed.clock_skew.get() > std::time::Duration::from_secs(3600) {
        out.push((
            field("signed.clock_skew"),
            format!(
                "{} is more than 1h: fix the clocks instead",
                signed.clock_skew
            ),
        ));
    }
}

fn limit_problems(
    limit: &RateLimitConfig,
    signed: bool,
    field: &dyn Fn(&str) -> String,
    out: &mut Vec<(String, String)>,
) {
    if !(limit.rate.is_finite() && limit.rate > 0.0 && limit.rate <= 1e9) {
        out.push((
            field("rate_limit.rate"),
            format!(
                "must be more than 0 and at most 1e9 requests per second, got {}",
                limit.rate
            ),
        ));
    }
    if limit.burst == 0 {
        out.push((
            field("rate_limit.burst"),
            "must be at least 1 (1 = no bursts)".into(),
        ));
    }
    if limit.ipv4_prefix > 32 {
        out.push((
            field("rate_limit.ipv4_prefix"),
            format!("must be between 0 and 32, got {}", limit.ipv4_prefix),
        ));
    }
    if limit.ipv6_prefix > 128 {
        out.push((
            field("rate_limit.ipv6_prefix"),
            format!("must be between 0 and 128, got {}", limit.ipv6_prefix),
        ));
    }
    if !(1..=MAX_LIMIT_KEYS).contains(&limit.max_keys) {
        out.push((
            field("rate_limit.max_keys"),
            format!(
                "must be between 1 and {MAX_LIMIT_KEYS}, got {}",
                limit.max_keys
            ),
        ));
    }
    if limit.key == LimitKey::Kid && !signed {
        out.push((
            field("rate_limit.key"),
            "\"kid\" needs a signed route: add [edge.routes.signed] or key by \"client\"".into(),
        ));
    }
}

/// Characters that need no escaping in a query: RFC 3986 unreserved.
fn is_url_safe(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-._~".contains(&b)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::Config;

    /// A route with every optional field set, so that serialising it shows them all.
    pub(crate) fn route_with_every_option() -> RouteConfig {
        let key = SigningKeyConfig {
            kid: "k1".into(),
            secret: Some(Secret("0123456789abcdef".into())),
            secret_file: Some("/k1.key".into()),
            secret_env: Some("K1".into()),
        };
        RouteConfig {
            host: Some("h".into()),
            allow: vec!["10.0.0.0/8".parse().unwrap()],
            deny: vec!["10.1.0.0/16".parse().unwrap()],
            referers: vec!["example.com".into()],
            signed: Some(SignedUrlConfig::with_keys(vec![key])),
            rate_limit: Some(RateLimitConfig {
                rate: 1.0,
                burst: 10,
                key: LimitKey::Client,
                ipv4_prefix: 24,
                ipv6_prefix: 64,
                max_keys: 10,
                bypass: vec!["192.0.2.0/24".parse().unwrap()],
            }),
            ..RouteConfig::default()
        }
    }

    fn errors(text: &str) -> String {
        match Config::from_toml_str(text, "r.toml") {
            Ok(_) => panic!("expected errors for:\n{text}"),
            Err(e) => e.to_string(),
        }
    }

    const ORIGIN: &str = "[edge]\n[[edge.origins]]\naddress = \"127.0.0.1:1\"\n";

    #[test]
    fn a_protected_route_parses() {
        let text = format!(
            "[edge]\ntrusted_proxies = [\"127.0.0.1\"]\n{}[[edge.routes]]\nprefix = \"/p/\"\ndeny = [\"10.0.0.0/8\"]\n\
             [edge.routes.signed]\nsingle_use = true\n[[edge.routes.signed.keys]]\nkid = \"k1\"\nsecret = \"0123456789abcdef\"\n\
             [edge.routes.rate_limit]\nrate = 2.5\nburst = 5\nkey = \"kid\"\n",
            "[[edge.origins]]\naddress = \"127.0.0.1:1\"\n"
        );
        let c = Config::from_toml_str(&text, "r.toml").unwrap();
        let edge = c.edge.unwrap();
        let route = &edge.routes[0];
        assert_eq!(route.prefix, "/p/");
        assert_eq!(edge.trusted_proxies[0].to_string(), "127.0.0.1/32");
        let signed = route.signed.as_ref().unwrap();
        assert!(signed.single_use);
        assert_eq!(signed.sig_param, "sig");
        assert_eq!(route.rate_limit.as_ref().unwrap().key, LimitKey::Kid);
        let again = Config::from_toml_str(&c_to_toml(&text), "again.toml").unwrap();
        assert_eq!(again.edge.unwrap().routes, edge.routes);
    }

    fn c_to_toml(text: &str) -> String {
        Config::from_toml_str(text, "r.toml").unwrap().to_toml()
    }

    #[test]
    fn route_errors_name_the_field() {
        let e = errors(&format!(
            "{ORIGIN}[[edge.routes]]\nprefix = \"p\"\ndeny = [\"10.0.0.0/40\"]\n"
        ));
        assert!(e.contains("edge.routes[0].deny"), "{e}");
        let e = errors(&format!(
            "{ORIGIN}[[edge.routes]]\nprefix = \"p\"\n[[edge.routes]]\nprefix = \"/a/\"\n\
             [edge.routes.signed]\nkeys = [{{ kid = \"k 1\", secret = \"short\" }}]\nsig_param = \"kid\"\n\
             [edge.routes.rate_limit]\nrate = 0.0\nburst = 0\n[[edge.routes]]\nprefix = \"/a/\"\n\
             [edge.routes.rate_limit]\nrate = 1.0\nburst = 1\nkey = \"kid\"\n"
        ));
        for needle in [
            "edge.routes[0].prefix: \"p\" is not a path prefix",
            "edge.routes[1].signed.keys[0].kid: \"k 1\" is not a key id",
            "edge.routes[1].signed.keys[0].secret: the secret has 5 bytes",
            "edge.routes[1].signed.sig_param: \"kid\" names another token parameter",
            "edge.routes[1].rate_limit.rate: must be more than 0",
            "edge.routes[1].rate_limit.burst: must be at least 1",
            "edge.routes[2].prefix: \"/a/\" is already the prefix of edge.routes[1]",
            "edge.routes[2].rate_limit.key: \"kid\" needs a signed route",
        ] {
            assert!(e.contains(needle), "missing {needle} in\n{e}");
        }
        assert!(!e.contains("short"), "a secret leaked into an error:\n{e}");
    }

    #[test]
    fn cidrs_parse_addresses_and_clear_host_bits() {
        let c: Cidr = "10.1.2.3/8".parse().unwrap();
        assert_eq!(c.to_string(), "10.0.0.0/8");
        let one: Cidr = "192.0.2.7".parse().unwrap();
        assert_eq!(one.to_string(), "192.0.2.7/32");
        assert!(one.contains("::ffff:192.0.2.7".parse().unwrap()));
        let v6: Cidr = "2001:db8::/32".parse().unwrap();
        assert!(v6.contains("2001:db8:1::1".parse().unwrap()));
        assert!("10.0.0.0/33".parse::<Cidr>().is_err());
        assert!("example.com".parse::<Cidr>().is_err());
    }

    #[test]
    fn secrets_never_show_in_debug() {
        let key = SigningKeyConfig {
            kid: "k1".into(),
            secret: Some(Secret("do-not-print-this-secret".into())),
            secret_file: None,
            secret_env: None,
        };
        let text = format!("{key:?}");
        assert!(!text.contains("do-not-print"), "{text}");
        assert!(text.contains("<redacted>"), "{text}");
    }

    #[test]
    fn secrets_come_from_one_source() {
        let mut key = SigningKeyConfig {
            kid: "k1".into(),
            secret: None,
            secret_file: None,
            secret_env: Some("CDN_TEST_SECRET_THAT_IS_NOT_SET".into()),
        };
        let e = key.secret_bytes().unwrap_err();
        assert!(
            e.contains("CDN_TEST_SECRET_THAT_IS_NOT_SET is not set"),
            "{e}"
        );
        let dir = std::env::temp_dir().join(format!("cdn-secret-{}", std::process::id()));
        std::fs::write(&dir, "0123456789abcdef0123\n").unwrap();
        key.secret_env = None;
        key.secret_file = Some(dir.clone());
        assert_eq!(key.secret_bytes().unwrap(), b"0123456789abcdef0123");
        key.secret = Some(Secret("short".into()));
        assert!(key.secret_bytes().unwrap_err().contains("only one"));
        key.secret_file = None;
        let e = key.secret_bytes().unwrap_err();
        assert!(e.contains("at least 16") && !e.contains("short"), "{e}");
        let _ = std::fs::remove_file(dir);
    }
}
