//! Who may fetch from a route: client CIDR allow and deny lists, the sites whose pages may
//! link to it (`Referer`), and who the client is when the edge sits behind trusted proxies.

use cdn_config::Cidr;
use std::net::IpAddr;

/// A route's client CIDR lists. Deny wins over allow; an empty allow list lets everyone in.
#[derive(Clone, Debug, Default)]
pub struct AccessList {
    allow: Vec<Cidr>,
    deny: Vec<Cidr>,
}

impl AccessList {
    /// The lists of a route.
    pub fn new(allow: &[Cidr], deny: &[Cidr]) -> Self {
        Self {
            allow: allow.to_vec(),
            deny: deny.to_vec(),
        }
    }

    /// Whether the lists check anything at all.
    pub fn is_empty(&self) -> bool {
        self.allow.is_empty() && self.deny.is_empty()
    }

    /// Whether `client` may use the route. A client of unknown address (a Unix socket) passes
    /// only when no list names anyone.
    pub fn permits(&self, client: Option<IpAddr>) -> bool {
        let Some(ip) = client else {
            return self.is_empty();
        };
        if self.deny.iter().any(|c| c.contains(ip)) {
            return false;
        }
        self.allow.is_empty() || self.allow.iter().any(|c| c.contains(ip))
    }
}

/// The sites whose pages may link to a route (classic hotlink protection).
#[derive(Clone, Debug)]
pub struct RefererList {
    /// Lower-case host names, exact.
    hosts: Vec<String>,
    /// Lower-case `.example.com` suffixes, from `*.example.com`.
    suffixes: Vec<String>,
    allow_missing: bool,
}

impl RefererList {
    /// The list of a route; `None` when it checks nothing.
    pub fn new(referers: &[String], allow_missing: bool) -> Option<Self> {
        if referers.is_empty() {
            return None;
        }
        let mut list = Self {
            hosts: Vec::new(),
            suffixes: Vec::new(),
            allow_missing,
        };
        for r in referers {
            let r = r.to_ascii_lowercase();
            match r.strip_prefix('*') {
                Some(suffix) => list.suffixes.push(suffix.to_string()),
                None => list.hosts.push(r),
            }
        }
        Some(list)
    }

    /// Whether a request with this `Referer` header value (if any) may pass.
    pub fn permits(&self, referer: Option<&[u8]>) -> bool {
        let Some(referer) = referer.filter(|r| !r.is_empty()) else {
            return self.allow_missing;
        };
        let Some(host) = referer_host(referer) else {
            return false;
        };
        let host = host.to_ascii_lowercase();
        self.hosts.contains(&host) || self.suffixes.iter().any(|s| host.ends_with(s))
    }
}

/// The host of a `Referer` URL (`https://www.example.com:8443/page` → `www.example.com`).
fn referer_host(referer: &[u8]) -> Option<&str> {
    let s = std::str::from_utf8(referer).ok()?;
    let rest = s.split_once("://")?.1;
    let authority = rest.split(['/', '?', '#']).next()?;
    let authority = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let host = if authority.starts_with('[') {
        authority.split_once(']').map(|(h, _)| &h[1..])?
    } else {
        authority.split(':').next()?
    };
    (!host.is_empty()).then_some(host)
}

/// The client's address: the socket peer, unless the peer is a trusted proxy, in which case
/// the rightmost `X-Forwarded-For` address that is not a trusted proxy (addresses further left
/// were written by the client itself and prove nothing).
pub fn client_ip<'a>(
    peer: Option<IpAddr>,
    forwarded_for: impl DoubleEndedIterator<Item = &'a [u8]>,
    trusted: &[Cidr],
) -> Option<IpAddr> {
    let peer = peer.map(|p| p.to_canonical())?;
    if trusted.is_empty() || !trusted.iter().any(|c| c.contains(peer)) {
        return Some(peer);
    }
    let mut client = peer;
    // Several X-Forwarded-For headers form one list, in order.
    for header in forwarded_for.rev() {
        let Ok(text) = std::str::from_utf8(header) else {
            return Some(client);
        };
        for hop in text.rsplit(',') {
            let Ok(ip) = hop.trim().parse::<IpAddr>() else {
                return Some(client);
            };
            client = ip.to_canonical();
            if !trusted.iter().any(|c| c.contains(client)) {
                return Some(client);
            }
        }
    }
    Some(client)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cidrs(list: &[&str]) -> Vec<Cidr> {
        list.iter().map(|c| c.parse().unwrap()).collect()
    }

    fn ip(s: &str) -> Option<IpAddr> {
        Some(s.parse().unwrap())
    }

    #[test]
    fn deny_wins_and_empty_allow_lets_everyone_in() {
        let list = AccessList::new(
            &cidrs(&["10.0.0.0/8", "2001:db8::/32"]),
            &cidrs(&["10.66.0.0/16"]),
        );
        assert!(list.permits(ip("10.1.2.3")));
        assert!(list.permits(ip("::ffff:10.1.2.3")));
        assert!(list.permits(ip("2001:db8::1")));
        assert!(!list.permits(ip("10.66.1.1")));
        assert!(!list.permits(ip("192.0.2.1")));
        assert!(!list.permits(None));
        let deny_only = AccessList::new(&[], &cidrs(&["192.0.2.0/24"]));
        assert!(deny_only.permits(ip("198.51.100.1")));
        assert!(!deny_only.permits(ip("192.0.2.9")));
        assert!(AccessList::default().permits(None));
    }

    #[test]
    fn referers_match_hosts_and_subdomains() {
        let list =
            RefererList::new(&["example.com".into(), "*.example.org".into()], false).unwrap();
        assert!(list.permits(Some(b"https://example.com/page")));
        assert!(list.permits(Some(b"https://EXAMPLE.com:8443/page?x")));
        assert!(list.permits(Some(b"https://www.example.org/")));
        assert!(!list.permits(Some(b"https://example.org/")));
        assert!(!list.permits(Some(b"https://evil-example.com/")));
        assert!(!list.permits(Some(b"https://example.com.evil.net/")));
        assert!(!list.permits(Some(b"https://user@evil.net/example.com")));
        assert!(!list.permits(Some(b"not a url")));
        assert!(!list.permits(None));
        let lenient = RefererList::new(&["example.com".into()], true).unwrap();
        assert!(lenient.permits(None));
        assert!(RefererList::new(&[], true).is_none());
    }

    #[test]
    fn forwarded_for_counts_only_behind_trusted_proxies() {
        let trusted = cidrs(&["127.0.0.1", "10.0.0.0/8"]);
        let xff: Vec<&[u8]> = vec![b"203.0.113.9, 198.51.100.7", b"10.0.0.2"];
        // No trusted proxies: the peer, whatever the header says.
        assert_eq!(
            client_ip(ip("127.0.0.1"), xff.iter().copied(), &[]),
            ip("127.0.0.1")
        );
        // An untrusted peer: itself.
        assert_eq!(
            client_ip(ip("192.0.2.1"), xff.iter().copied(), &trusted),
            ip("192.0.2.1")
        );
        // A trusted peer: the rightmost untrusted hop (203.0.113.9 was written by the client).
        assert_eq!(
            client_ip(ip("127.0.0.1"), xff.iter().copied(), &trusted),
            ip("198.51.100.7")
        );
        // Garbage stops the walk at the last address known good.
        let bad: Vec<&[u8]> = vec![b"junk, 10.0.0.3"];
        assert_eq!(
            client_ip(ip("127.0.0.1"), bad.iter().copied(), &trusted),
            ip("10.0.0.3")
        );
        assert_eq!(
            client_ip(ip("127.0.0.1"), std::iter::empty(), &trusted),
            ip("127.0.0.1")
        );
    }
}
