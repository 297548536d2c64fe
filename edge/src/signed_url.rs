//! Signed timestamp URLs (anti-hotlink): a link carries an expiry, a key id and an
//! HMAC-SHA256 signature, and the edge serves it only while it is valid.
//!
//! The token travels in query parameters (names per route; by default `expires`, `kid`, `sig`,
//! plus the optional `acl` and `ip`). The signature is the unpadded base64url HMAC-SHA256,
//! under the key named by `kid`, of the **canonical string**: four lines joined by `\n`, no
//! trailing newline,
//!
//! ```text
//! path=/private/a.mp4          (or acl=/private/ when the token covers a prefix)
//! expires=1700000000           (Unix seconds, decimal)
//! kid=k1
//! ip=203.0.113.7               (empty after `ip=` when the token is not bound to an address)
//! ```
//!
//! `path` is the URL's path exactly as sent (percent-encoding as is, no query). With `acl`,
//! the token covers every path that starts with the prefix once normalised. The first line's
//! label keeps a token for one path from passing as a token for a prefix.
//!
//! Verification is constant-time (`ring::hmac::verify`) and its failures say only what kind of
//! failure it was (`missing`, `expired`, `bad-signature`, `unknown-key`, `ip-mismatch`,
//! `reused`), never what the signature should have been.
//!
//! ```
//! use cdn_edge::signed_url::{sign, SignRequest, TokenParams};
//!
//! let url = sign(&SignRequest {
//!     url: "http://cdn.example.com/private/a.mp4",
//!     kid: "k1",
//!     secret: b"0123456789abcdef0123456789abcdef",
//!     expires: 1_700_000_000,
//!     ip: None,
//!     acl: None,
//!     params: &TokenParams::default(),
//! })
//! .unwrap();
//! assert!(url.starts_with("http://cdn.example.com/private/a.mp4?expires=1700000000&kid=k1&sig="));
//! ```

use crate::route::{self, Reason};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use cdn_config::{RouteConfig, SignedUrlConfig};
use ring::hmac;
use std::fmt;
use std::net::IpAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Bytes of an HMAC-SHA256 signature.
const SIG_LEN: usize = 32;

/// Most used signatures a single-use route remembers. Each must be validly signed, so only
/// links the operator handed out can fill it; past it the least recently seen are forgotten.
const SINGLE_USE_CAPACITY: u64 = 1 << 20;

/// The names of a token's query parameters.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenParams {
    /// Expiry, Unix seconds.
    pub expires: String,
    /// Key id.
    pub kid: String,
    /// Signature, base64url.
    pub sig: String,
    /// Path prefix covered instead of one path.
    pub acl: String,
    /// Client IP the token is bound to.
    pub ip: String,
}

impl Default for TokenParams {
    fn default() -> Self {
        Self::from_config(&SignedUrlConfig::with_keys(Vec::new()))
    }
}

impl TokenParams {
    /// The names a route's config gives.
    pub fn from_config(c: &SignedUrlConfig) -> Self {
        Self {
            expires: c.expires_param.clone(),
            kid: c.kid_param.clone(),
            sig: c.sig_param.clone(),
            acl: c.acl_param.clone(),
            ip: c.ip_param.clone(),
        }
    }

    fn is_token_param(&self, name: &str) -> bool {
        name == self.expires
            || name == self.kid
            || name == self.sig
            || name == self.acl
            || name == self.ip
    }
}

/// What one URL is signed for. Operators sign from their own Rust code with [`sign`].
pub struct SignRequest<'a> {
    /// The URL (absolute, or a path with an optional query).
    pub url: &'a str,
    /// The key's id.
    pub kid: &'a str,
    /// The key's secret.
    pub secret: &'a [u8],
    /// Expiry, Unix seconds.
    pub expires: u64,
    /// Binds the token to this client address.
    pub ip: Option<IpAddr>,
    /// Makes the token cover every path under this prefix instead of the URL's path only.
    pub acl: Option<&'a str>,
    /// Query parameter names (the route's).
    pub params: &'a TokenParams,
}

/// Why a URL cannot be signed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignError(pub String);

impl fmt::Display for SignError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for SignError {}

/// The canonical string that is signed (see the module documentation).
pub fn canonical_string(scope: Scope<'_>, expires: u64, kid: &str, ip: Option<&str>) -> String {
    let (label, value) = match scope {
        Scope::Path(p) => ("path=", p),
        Scope::Acl(a) => ("acl=", a),
    };
    let ip = ip.unwrap_or("");
    let mut s = String::with_capacity(label.len() + value.len() + kid.len() + ip.len() + 40);
    s.push_str(label);
    s.push_str(value);
    s.push_str("\nexpires=");
    s.push_str(itoa(expires, &mut [0; 20]));
    s.push_str("\nkid=");
    s.push_str(kid);
    s.push_str("\nip=");
    s.push_str(ip);
    s
}

/// Decimal digits of `n` without going through the formatter (this is on the request path).
fn itoa(mut n: u64, buf: &mut [u8; 20]) -> &str {
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    std::str::from_utf8(&buf[i..]).unwrap_or("0")
}

/// What a token covers: one path, or every path under a prefix.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope<'a> {
    /// Exactly this path (as sent, without the query).
    Path(&'a str),
    /// Every path starting with this prefix once normalised.
    Acl(&'a str),
}

/// Returns `url` with a token appended to its query: `expires`, `kid`, then `acl` and `ip`
/// if given, then `sig`.
pub fn sign(req: &SignRequest<'_>) -> Result<String, SignError> {
    let (before_path, path_and_query) = split_url(req.url)?;
    let (path, query) = match path_and_query.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (path_and_query, None),
    };
    if req.kid.is_empty()
        || !req
            .kid
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b))
    {
        return Err(SignError(format!(
            "{:?} is not a key id: use letters, digits and - _ . ~",
            req.kid
        )));
    }
    if let Some(acl) = req.acl {
        if !acl.starts_with('/') {
            return Err(SignError(format!("acl {acl:?} must start with /")));
        }
        if !route::normalised_path(path).starts_with(acl) {
            return Err(SignError(format!(
                "acl {acl:?} does not cover the URL's path {path:?}"
            )));
        }
    }
    if query.into_iter().flat_map(|q| q.split('&')).any(|pair| {
        req.params
            .is_token_param(pair.split('=').next().unwrap_or(""))
    }) {
        return Err(SignError(
            "the URL already carries token parameters: sign the bare URL".into(),
        ));
    }
    let ip = req.ip.map(|ip| ip.to_canonical().to_string());
    let scope = match req.acl {
        Some(acl) => Scope::Acl(acl),
        None => Scope::Path(path),
    };
    let key = hmac::Key::new(hmac::HMAC_SHA256, req.secret);
    let canonical = canonical_string(scope, req.expires, req.kid, ip.as_deref());
    let sig = URL_SAFE_NO_PAD.encode(hmac::sign(&key, canonical.as_bytes()).as_ref());

    let mut out = String::with_capacity(req.url.len() + 120);
    out.push_str(before_path);
    out.push_str(path);
    out.push('?');
    if let Some(q) = query.filter(|q| !q.is_empty()) {
        out.push_str(q);
        out.push('&');
    }
    let p = req.params;
    out.push_str(&format!(
        "{}={}&{}={}",
        p.expires, req.expires, p.kid, req.kid
    ));
    if let Some(acl) = req.acl {
        let encoded: String = form_urlencoded::byte_serialize(acl.as_bytes()).collect();
        out.push_str(&format!("&{}={encoded}", p.acl));
    }
    if let Some(ip) = &ip {
        let encoded: String = form_urlencoded::byte_serialize(ip.as_bytes()).collect();
        out.push_str(&format!("&{}={encoded}", p.ip));
    }
    out.push_str(&format!("&{}={sig}", p.sig));
    Ok(out)
}

/// Signs `url` the way `cdn sign` does: with key `kid` of the signed route that covers the
/// URL in `routes` (an edge's `[[edge.routes]]`), valid for `ttl` seconds from `now`.
pub fn sign_for_route(
    routes: &[RouteConfig],
    url: &str,
    kid: &str,
    ttl: u64,
    ip: Option<IpAddr>,
    acl: Option<&str>,
    now: u64,
) -> Result<String, SignError> {
    let (head, path_and_query) = split_url(url)?;
    let host = head.split_once("://").map(|(_, h)| h);
    let path = path_and_query.split('?').next().unwrap_or("/");
    let table = route::RouteTable::new(routes, &[]);
    let config = table
        .position(host, path)
        .and_then(|i| routes.get(i))
        .ok_or_else(|| SignError(format!("no route of the config covers {url}")))?;
    let signed = config.signed.as_ref().ok_or_else(|| {
        SignError(format!(
            "the route for {url} (prefix {:?}) needs no signature: add [edge.routes.signed] to it",
            config.prefix
        ))
    })?;
    let key = signed.keys.iter().find(|k| k.kid == kid).ok_or_else(|| {
        let kids: Vec<&str> = signed.keys.iter().map(|k| k.kid.as_str()).collect();
        SignError(format!(
            "the route for {url} has no key {kid:?} (it has {})",
            kids.join(", ")
        ))
    })?;
    if signed.bind_ip && ip.is_none() {
        return Err(SignError(format!(
            "the route for {url} binds tokens to the client address: give --ip"
        )));
    }
    let secret = key
        .secret_bytes()
        .map_err(|e| SignError(format!("key {kid:?}: {e}")))?;
    sign(&SignRequest {
        url,
        kid,
        secret: &secret,
        expires: now.saturating_add(ttl),
        ip,
        acl,
        params: &TokenParams::from_config(signed),
    })
}

/// Splits an absolute URL into `scheme://authority` and the path with its query; a URL that
/// is already a path comes back whole as the second part.
fn split_url(url: &str) -> Result<(&str, &str), SignError> {
    let bad = || SignError(format!("{url:?} is not an http(s) URL or a path"));
    if url.starts_with('/') {
        return Ok(("", url));
    }
    let rest = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"))
        .ok_or_else(bad)?;
    let authority_len = rest.find(['/', '?']).unwrap_or(rest.len());
    if authority_len == 0 || url.contains('#') {
        return Err(bad());
    }
    let split = url.len() - rest.len() + authority_len;
    let (head, tail) = url.split_at(split);
    if tail.is_empty() {
        return Ok((head, "/"));
    }
    if tail.starts_with('?') {
        return Err(bad());
    }
    Ok((head, tail))
}

/// One accepted key.
struct VerifyKey {
    kid: String,
    key: hmac::Key,
}

/// The signature rules of one route: its keys, parameter names, clock skew, IP binding and
/// single-use memory. Its `Debug` names the key ids only.
pub struct SignedUrlPolicy {
    params: TokenParams,
    keys: Vec<VerifyKey>,
    bind_ip: bool,
    clock_skew: u64,
    /// Signatures already used, each until its token expires (single-use routes only).
    used: Option<moka::sync::Cache<[u8; SIG_LEN], u64>>,
}

impl fmt::Debug for SignedUrlPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SignedUrlPolicy")
            .field("params", &self.params)
            .field(
                "kids",
                &self.keys.iter().map(|k| &k.kid).collect::<Vec<_>>(),
            )
            .field("bind_ip", &self.bind_ip)
            .field("clock_skew", &self.clock_skew)
            .field("single_use", &self.used.is_some())
            .finish()
    }
}

/// Expires each used signature when its token does (the value is the token's end, Unix s).
struct UntilTokenEnds;

impl moka::Expiry<[u8; SIG_LEN], u64> for UntilTokenEnds {
    fn expire_after_create(
        &self,
        _key: &[u8; SIG_LEN],
        ends: &u64,
        _created_at: std::time::Instant,
    ) -> Option<Duration> {
        Some(Duration::from_secs(ends.saturating_sub(unix_now())).max(Duration::from_secs(1)))
    }
}

/// Seconds since the Unix epoch (0 if the clock is before it).
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// A token that passed: what the rest of the request needs from it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// The key that signed it.
    pub kid: String,
}

/// The token parameters of one query, raw (not percent-decoded).
#[derive(Default)]
struct RawToken<'a> {
    expires: Option<&'a str>,
    kid: Option<&'a str>,
    sig: Option<&'a str>,
    acl: Option<&'a str>,
    ip: Option<&'a str>,
    /// A token parameter given twice: ambiguous, refused.
    repeated: bool,
}

impl<'a> RawToken<'a> {
    fn parse(query: &'a str, params: &TokenParams) -> Self {
        let mut t = RawToken::default();
        for pair in query.split('&') {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            let slot = if name == params.expires {
                &mut t.expires
            } else if name == params.kid {
                &mut t.kid
            } else if name == params.sig {
                &mut t.sig
            } else if name == params.acl {
                &mut t.acl
            } else if name == params.ip {
                &mut t.ip
            } else {
                continue;
            };
            t.repeated |= slot.replace(value).is_some();
        }
        t
    }
}

fn percent_decoded(raw: &str) -> String {
    // A query value: `+` stays `+` (form encoding would make it a space).
    form_urlencoded::parse(format!("v={}", raw.replace('+', "%2B")).as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default()
}

impl SignedUrlPolicy {
    /// The policy of a route's `[edge.routes.signed]`. A key whose secret cannot be read
    /// (config validation checked it, but a file may vanish) is left out with an error log:
    /// its links fail as `unknown-key`.
    pub fn from_config(c: &SignedUrlConfig) -> Self {
        let keys = c
            .keys
            .iter()
            .filter_map(|k| match k.secret_bytes() {
                Ok(secret) => Some(VerifyKey {
                    kid: k.kid.clone(),
                    key: hmac::Key::new(hmac::HMAC_SHA256, &secret),
                }),
                Err(e) => {
                    tracing::error!(kid = %k.kid, "signing key left out: {e}");
                    None
                }
            })
            .collect();
        let used = c.single_use.then(|| {
            moka::sync::Cache::builder()
                .max_capacity(SINGLE_USE_CAPACITY)
                .expire_after(UntilTokenEnds)
                .build()
        });
        Self {
            params: TokenParams::from_config(c),
            keys,
            bind_ip: c.bind_ip,
            clock_skew: c.clock_skew.get().as_secs(),
            used,
        }
    }

    /// The parameter names of this route's tokens.
    pub fn params(&self) -> &TokenParams {
        &self.params
    }

    /// The key id a query names, if it is one of this route's keys (unverified: for keying
    /// a rate limit before the signature is checked).
    pub fn known_kid<'q>(&self, query: Option<&'q str>) -> Option<&'q str> {
        let kid = RawToken::parse(query?, &self.params).kid?;
        self.keys.iter().any(|k| k.kid == kid).then_some(kid)
    }

    /// Checks the token of a request for `path` (as sent) with `query`, from `client`, at
    /// `now` (Unix seconds).
    pub fn verify(
        &self,
        path: &str,
        query: Option<&str>,
        client: Option<IpAddr>,
        now: u64,
    ) -> Result<Verified, Reason> {
        let token = RawToken::parse(query.unwrap_or(""), &self.params);
        let (Some(expires), Some(kid), Some(sig)) = (token.expires, token.kid, token.sig) else {
            return Err(Reason::Missing);
        };
        if self.bind_ip && token.ip.is_none() {
            return Err(Reason::Missing);
        }
        if token.repeated {
            return Err(Reason::BadSignature);
        }
        if expires.is_empty() || expires.len() > 19 || !expires.bytes().all(|b| b.is_ascii_digit())
        {
            return Err(Reason::BadSignature);
        }
        let expires_at: u64 = expires.parse().map_err(|_| Reason::BadSignature)?;
        if expires_at.saturating_add(self.clock_skew) < now {
            return Err(Reason::Expired);
        }
        let key = self
            .keys
            .iter()
            .find(|k| k.kid == kid)
            .ok_or(Reason::UnknownKey)?;
        let mut sig_bytes = [0u8; SIG_LEN];
        let sig = sig.trim_end_matches("%3D").trim_end_matches('=');
        match URL_SAFE_NO_PAD.decode_slice(sig, &mut sig_bytes) {
            Ok(SIG_LEN) => {}
            _ => return Err(Reason::BadSignature),
        }
        let acl = token.acl.map(percent_decoded);
        let ip = token.ip.map(percent_decoded);
        let scope = match &acl {
            Some(a) => Scope::Acl(a),
            None => Scope::Path(path),
        };
        let canonical = canonical_string(scope, expires_at, kid, ip.as_deref());
        hmac::verify(&key.key, canonical.as_bytes(), &sig_bytes)
            .map_err(|_| Reason::BadSignature)?;
        if let Some(ip) = &ip {
            let bound: Option<IpAddr> = ip.parse().ok();
            let client = client.map(|c| c.to_canonical());
            if bound.map(|b| b.to_canonical()) != client || client.is_none() {
                return Err(Reason::IpMismatch);
            }
        }
        if let Some(acl) = &acl {
            // Matched on the normalised path, so that `/private/../secret` is not "under"
            // `/private/`.
            if !route::normalised_path(path).starts_with(acl.as_str()) {
                return Err(Reason::BadSignature);
            }
        }
        if let Some(used) = &self.used {
            let ends = expires_at.saturating_add(self.clock_skew);
            if !used.entry(sig_bytes).or_insert(ends).is_fresh() {
                return Err(Reason::Reused);
            }
        }
        Ok(Verified {
            kid: key.kid.clone(),
        })
    }

    /// `path?query` without this route's token parameters (`None` if it has none), so that
    /// every signed link to one object shares a cache entry and the origin never sees tokens.
    pub fn strip_token(&self, path: &str, query: Option<&str>) -> Option<String> {
        let query = query?;
        let mut kept = String::with_capacity(query.len());
        let mut stripped = false;
        for pair in query.split('&') {
            let name = pair.split('=').next().unwrap_or("");
            if self.params.is_token_param(name) {
                stripped = true;
                continue;
            }
            if !kept.is_empty() {
                kept.push('&');
            }
            kept.push_str(pair);
        }
        if !stripped {
            return None;
        }
        let mut out = String::with_capacity(path.len() + 1 + kept.len());
        out.push_str(path);
        if !kept.is_empty() {
            out.push('?');
            out.push_str(&kept);
        }
        Some(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cdn_config::{Secret, SigningKeyConfig};

    const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";
    const NOW: u64 = 1_700_000_000;

    fn key(kid: &str, secret: &[u8]) -> SigningKeyConfig {
        SigningKeyConfig {
            kid: kid.into(),
            secret: Some(Secret(String::from_utf8(secret.to_vec()).unwrap())),
            secret_file: None,
            secret_env: None,
        }
    }

    fn policy(edit: impl FnOnce(&mut SignedUrlConfig)) -> SignedUrlPolicy {
        let mut c = SignedUrlConfig::with_keys(vec![key("k1", SECRET)]);
        edit(&mut c);
        SignedUrlPolicy::from_config(&c)
    }

    fn signed(url: &str, expires: u64, ip: Option<IpAddr>, acl: Option<&str>) -> String {
        sign(&SignRequest {
            url,
            kid: "k1",
            secret: SECRET,
            expires,
            ip,
            acl,
            params: &TokenParams::default(),
        })
        .unwrap()
    }

    fn check(p: &SignedUrlPolicy, url: &str, client: &str) -> Result<Verified, Reason> {
        let (path, query) = match url.split_once('?') {
            Some((p, q)) => (p, Some(q)),
            None => (url, None),
        };
        p.verify(path, query, client.parse().ok(), NOW)
    }

    #[test]
    fn the_canonical_string_is_the_documented_one() {
        assert_eq!(
            canonical_string(Scope::Path("/private/a.mp4"), 1_700_000_000, "k1", None),
            "path=/private/a.mp4\nexpires=1700000000\nkid=k1\nip="
        );
        assert_eq!(
            canonical_string(Scope::Acl("/private/"), 0, "k2", Some("203.0.113.7")),
            "acl=/private/\nexpires=0\nkid=k2\nip=203.0.113.7"
        );
        // A known vector, so that signers in other languages can check themselves:
        // printf 'path=/private/a.mp4\nexpires=1700000000\nkid=k1\nip=' |
        //   openssl dgst -sha256 -hmac 0123456789abcdef0123456789abcdef -binary | basenc --base64url | tr -d =
        let url = signed("/private/a.mp4", NOW, None, None);
        assert_eq!(
            url,
            "/private/a.mp4?expires=1700000000&kid=k1&sig=MrJ3CxjoqVXpQWgJViFccwD_SZz2fjbvLSPliZX8nNc"
        );
    }

    #[test]
    fn a_signed_url_verifies_until_it_expires() {
        let p = policy(|_| {});
        let url = signed("http://h/private/a?x=1", NOW + 60, None, None);
        let url = url.strip_prefix("http://h").unwrap();
        assert_eq!(check(&p, url, "10.0.0.1").unwrap().kid, "k1");
        let old = signed("/private/a", NOW - 31, None, None);
        assert_eq!(check(&p, &old, "10.0.0.1"), Err(Reason::Expired));
        let skewed = signed("/private/a", NOW - 29, None, None);
        assert!(check(&p, &skewed, "10.0.0.1").is_ok(), "within clock_skew");
    }

    #[test]
    fn tampering_is_refused_with_the_right_reason() {
        let p = policy(|_| {});
        let url = signed("/private/a", NOW + 60, None, None);
        assert_eq!(
            check(&p, &url.replace("/a?", "/b?"), "1.2.3.4"),
            Err(Reason::BadSignature)
        );
        assert_eq!(
            check(
                &p,
                &url.replace("expires=1700000060", "expires=1700000061"),
                "1.2.3.4"
            ),
            Err(Reason::BadSignature)
        );
        assert_eq!(
            check(&p, &url.replace("kid=k1", "kid=k9"), "1.2.3.4"),
            Err(Reason::UnknownKey)
        );
        assert_eq!(
            check(&p, &format!("{url}&sig=AAAA"), "1.2.3.4"),
            Err(Reason::BadSignature)
        );
        assert_eq!(check(&p, "/private/a", "1.2.3.4"), Err(Reason::Missing));
        assert_eq!(
            check(&p, "/private/a?expires=x&kid=k1&sig=y", "1.2.3.4"),
            Err(Reason::BadSignature)
        );
        // A token for one path does not pass as a token for a prefix.
        assert_eq!(
            check(
                &p,
                &format!("{url}&acl=/private/a").replace("/a?", "/abc?"),
                "1.2.3.4"
            ),
            Err(Reason::BadSignature)
        );
    }

    #[test]
    fn ip_bound_and_prefix_tokens() {
        let p = policy(|c| c.bind_ip = true);
        let ip: IpAddr = "203.0.113.7".parse().unwrap();
        let url = signed("/v/a", NOW + 60, Some(ip), None);
        assert!(check(&p, &url, "203.0.113.7").is_ok());
        assert!(check(&p, &url, "::ffff:203.0.113.7").is_ok());
        assert_eq!(check(&p, &url, "203.0.113.8"), Err(Reason::IpMismatch));
        let unbound = signed("/v/a", NOW + 60, None, None);
        assert_eq!(check(&p, &unbound, "203.0.113.7"), Err(Reason::Missing));

        let p = policy(|_| {});
        let dir = signed("/v/dir/a.ts", NOW + 60, None, Some("/v/dir/"));
        assert!(dir.contains("acl=%2Fv%2Fdir%2F"), "{dir}");
        for path in ["/v/dir/a.ts", "/v/dir/b/c.ts", "/v/dir/%62.ts"] {
            let url = dir.replacen("/v/dir/a.ts", path, 1);
            assert!(check(&p, &url, "1.2.3.4").is_ok(), "{path}");
        }
        for path in ["/v/other.ts", "/v/dir/../secret", "/v/dir/%2e%2e/secret"] {
            let url = dir.replacen("/v/dir/a.ts", path, 1);
            assert_eq!(
                check(&p, &url, "1.2.3.4"),
                Err(Reason::BadSignature),
                "{path}"
            );
        }
    }

    #[test]
    fn rotation_accepts_every_listed_key() {
        let c = SignedUrlConfig::with_keys(vec![
            key("old", b"old-secret-old-secret"),
            key("new", b"new-secret-new-secret"),
        ]);
        let p = SignedUrlPolicy::from_config(&c);
        for (kid, secret) in [
            ("old", &b"old-secret-old-secret"[..]),
            ("new", b"new-secret-new-secret"),
        ] {
            let url = sign(&SignRequest {
                url: "/r/a",
                kid,
                secret,
                expires: NOW + 5,
                ip: None,
                acl: None,
                params: &TokenParams::default(),
            })
            .unwrap();
            assert_eq!(check(&p, &url, "1.2.3.4").unwrap().kid, kid);
            // The other key's secret under this kid fails.
            let forged = url.replace(
                &format!("kid={kid}"),
                &format!("kid={}", if kid == "old" { "new" } else { "old" }),
            );
            assert_eq!(check(&p, &forged, "1.2.3.4"), Err(Reason::BadSignature));
        }
    }

    #[test]
    fn single_use_tokens_work_once() {
        let p = policy(|c| c.single_use = true);
        let url = signed("/once", NOW + 60, None, None);
        assert!(check(&p, &url, "1.2.3.4").is_ok());
        assert_eq!(check(&p, &url, "1.2.3.4"), Err(Reason::Reused));
        let other = signed("/once", NOW + 61, None, None);
        assert!(check(&p, &other, "1.2.3.4").is_ok());
    }

    #[test]
    fn custom_param_names_and_stripping() {
        let p = policy(|c| {
            c.expires_param = "e".into();
            c.kid_param = "k".into();
            c.sig_param = "s".into();
        });
        let url = sign(&SignRequest {
            url: "/a?keep=1",
            kid: "k1",
            secret: SECRET,
            expires: NOW,
            ip: None,
            acl: None,
            params: p.params(),
        })
        .unwrap();
        assert!(url.starts_with("/a?keep=1&e=1700000000&k=k1&s="), "{url}");
        assert!(check(&p, &url, "1.2.3.4").is_ok());
        let (path, query) = url.split_once('?').unwrap();
        assert_eq!(p.strip_token(path, Some(query)).unwrap(), "/a?keep=1");
        assert_eq!(p.strip_token("/a", Some("e=1&k=2&s=3")).unwrap(), "/a");
        assert_eq!(p.strip_token("/a", Some("x=1")), None);
        assert_eq!(p.known_kid(Some(query)), Some("k1"));
        assert_eq!(p.known_kid(Some("k=zz")), None);
    }

    #[test]
    fn bad_urls_are_not_signed() {
        let params = TokenParams::default();
        for (url, acl) in [
            ("ftp://h/a", None),
            ("h/a", None),
            ("/a?sig=1", None),
            ("/a", Some("/b/")),
            ("/a", Some("a")),
        ] {
            let r = sign(&SignRequest {
                url,
                kid: "k1",
                secret: SECRET,
                expires: NOW,
                ip: None,
                acl,
                params: &params,
            });
            assert!(r.is_err(), "{url} {acl:?}");
        }
        let r = sign(&SignRequest {
            url: "https://h:8443",
            kid: "k1",
            secret: SECRET,
            expires: NOW,
            ip: None,
            acl: None,
            params: &params,
        });
        assert!(r.unwrap().starts_with("https://h:8443/?expires="));
    }

    #[test]
    fn debug_shows_no_secret() {
        let p = policy(|_| {});
        let text = format!("{p:?}");
        assert!(
            text.contains("k1") && !text.contains("0123456789abcdef"),
            "{text}"
        );
    }
}
