//! A target URL and the request bytes for each object: `http://host:port/path?query`, where
//! the path and query may hold `{key}` (the object's key) and `{size}` (its size in bytes), e.g.
//! `http://127.0.0.1:8080/bytes/{size}?k={key}` against origin-mock.

use crate::workload::{Pick, SizeModel, TraceItem};
use crate::BenchError;
use std::io::Write;
use std::net::{SocketAddr, ToSocketAddrs};

/// A piece of a URL template.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Piece {
    Text(String),
    Key,
    Size,
}

/// One system under load: its address, its `Host`, and the template of its request paths.
#[derive(Clone, Debug)]
pub struct Target {
    /// The URL as given.
    pub url: String,
    /// Where to connect.
    pub addr: SocketAddr,
    host: String,
    template: Vec<Piece>,
    /// Header lines (`Name: value\r\n`) sent with every request.
    extra_headers: String,
}

impl Target {
    /// Parses `url` and resolves its host. `keyed`: requests name different objects, so a URL
    /// without `{key}` gets `k={key}` appended to its query. `headers`: `Name: value` lines.
    pub fn parse(url: &str, keyed: bool, headers: &[String]) -> Result<Self, BenchError> {
        let rest = match url.strip_prefix("http://") {
            Some(rest) => rest,
            None if url.starts_with("https://") => {
                return Err(BenchError::usage(format!(
                    "{url}: https is not supported; point the bench at a plain-HTTP listener"
                )))
            }
            None => return Err(BenchError::usage(format!("{url}: expected an http:// URL"))),
        };
        let split = rest.find(['/', '?']).unwrap_or(rest.len());
        let (authority, path) = rest.split_at(split);
        if authority.is_empty() || authority.contains('@') {
            return Err(BenchError::usage(format!(
                "{url}: expected http://HOST[:PORT]/PATH"
            )));
        }
        let path = match path {
            "" => "/".to_string(),
            p if p.starts_with('?') => format!("/{p}"),
            p => p.to_string(),
        };
        let with_port = if has_port(authority) {
            authority.to_string()
        } else {
            format!("{authority}:80")
        };
        let addr = with_port
            .to_socket_addrs()
            .map_err(|e| BenchError::usage(format!("{url}: cannot resolve {authority}: {e}")))?
            .next()
            .ok_or_else(|| BenchError::usage(format!("{url}: {authority} has no address")))?;
        let mut template = parse_template(&path);
        if keyed && !template.contains(&Piece::Key) {
            let sep = if path.contains('?') { "&" } else { "?" };
            template.push(Piece::Text(format!("{sep}k=")));
            template.push(Piece::Key);
        }
        let mut extra_headers = String::new();
        for h in headers {
            let Some((name, value)) = h.split_once(':') else {
                return Err(BenchError::usage(format!(
                    "--header {h:?}: expected `Name: value`"
                )));
            };
            let (name, value) = (name.trim(), value.trim());
            if name.is_empty() || name.contains(char::is_whitespace) || value.contains(['\r', '\n'])
            {
                return Err(BenchError::usage(format!("--header {h:?}: bad header")));
            }
            extra_headers.push_str(&format!("{name}: {value}\r\n"));
        }
        Ok(Self {
            url: url.to_string(),
            addr,
            host: authority.to_string(),
            template,
            extra_headers,
        })
    }

    /// Whether the template asks for object sizes.
    pub fn wants_size(&self) -> bool {
        self.template.contains(&Piece::Size)
    }

    /// Writes the whole request for `pick` into `out` (cleared first).
    pub fn write_request(&self, pick: Pick<'_>, sizes: Option<&SizeModel>, out: &mut Vec<u8>) {
        out.clear();
        out.extend_from_slice(b"GET ");
        match pick {
            Pick::One => self.render(out, "1", sizes.map(|s| s.size_of(1))),
            Pick::Key(k) => {
                let mut key = [0u8; 20];
                let len = {
                    let mut cursor = &mut key[..];
                    let _ = write!(cursor, "{k}");
                    20 - cursor.len()
                };
                let key = std::str::from_utf8(&key[..len]).unwrap_or("0");
                self.render(out, key, sizes.map(|s| s.size_of(k)));
            }
            Pick::Entry(entry) => match &entry.item {
                TraceItem::Path(p) => out.extend_from_slice(p.as_bytes()),
                TraceItem::Key(k) => {
                    let size = entry
                        .size
                        .or_else(|| sizes.map(|s| s.size_of(fnv1a(k.as_bytes()))));
                    self.render(out, k, size);
                }
            },
        }
        out.extend_from_slice(b" HTTP/1.1\r\nHost: ");
        out.extend_from_slice(self.host.as_bytes());
        out.extend_from_slice(b"\r\nUser-Agent: cdn-bench\r\n");
        out.extend_from_slice(self.extra_headers.as_bytes());
        out.extend_from_slice(b"\r\n");
    }

    fn render(&self, out: &mut Vec<u8>, key: &str, size: Option<u64>) {
        for piece in &self.template {
            match piece {
                Piece::Text(t) => out.extend_from_slice(t.as_bytes()),
                Piece::Key => out.extend_from_slice(key.as_bytes()),
                Piece::Size => {
                    let _ = write!(out, "{}", size.unwrap_or(0));
                }
            }
        }
    }
}

/// Whether `authority` names a port (`host:port` or `[v6]:port`).
fn has_port(authority: &str) -> bool {
    match authority.rfind(':') {
        Some(i) => !authority[i..].contains(']'),
        None => false,
    }
}

fn parse_template(path: &str) -> Vec<Piece> {
    let mut pieces = Vec::new();
    let mut rest = path;
    while !rest.is_empty() {
        let next = [("{key}", Piece::Key), ("{size}", Piece::Size)]
            .into_iter()
            .filter_map(|(pat, piece)| rest.find(pat).map(|i| (i, pat.len(), piece)))
            .min_by_key(|(i, _, _)| *i);
        match next {
            Some((i, len, piece)) => {
                if i > 0 {
                    pieces.push(Piece::Text(rest[..i].to_string()));
                }
                pieces.push(piece);
                rest = &rest[i + len..];
            }
            None => {
                pieces.push(Piece::Text(rest.to_string()));
                break;
            }
        }
    }
    pieces
}

/// FNV-1a: a stable number for a trace key, so a key without a size column still gets the
/// same size from a [`SizeModel`] every time.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workload::TraceEntry;

    fn request(t: &Target, pick: Pick<'_>, sizes: Option<&SizeModel>) -> String {
        let mut out = Vec::new();
        t.write_request(pick, sizes, &mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn templates_fill_key_and_size() {
        let t = Target::parse("http://127.0.0.1:8080/bytes/{size}?k={key}", true, &[]).unwrap();
        assert!(t.wants_size());
        let r = request(&t, Pick::Key(42), Some(&SizeModel::Fixed(1024)));
        assert_eq!(
            r,
            "GET /bytes/1024?k=42 HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nUser-Agent: cdn-bench\r\n\r\n"
        );
    }

    #[test]
    fn keyed_urls_without_key_get_a_query_parameter() {
        let t = Target::parse("http://127.0.0.1:1/a?x=1", true, &["X-Y: z".into()]).unwrap();
        let r = request(&t, Pick::Key(7), None);
        assert!(r.starts_with("GET /a?x=1&k=7 HTTP/1.1\r\n"), "{r}");
        assert!(r.contains("\r\nX-Y: z\r\n"), "{r}");
        let t = Target::parse("http://127.0.0.1:1", true, &[]).unwrap();
        assert!(request(&t, Pick::Key(7), None).starts_with("GET /?k=7 "));
        let one = Target::parse("http://127.0.0.1:1/x", false, &[]).unwrap();
        assert!(request(&one, Pick::One, None).starts_with("GET /x "));
    }

    #[test]
    fn trace_paths_replace_the_template() {
        let t = Target::parse("http://127.0.0.1:1/bytes/{size}?k={key}", true, &[]).unwrap();
        let path = TraceEntry {
            item: TraceItem::Path("/p?q".into()),
            size: None,
        };
        assert!(request(&t, Pick::Entry(&path), None).starts_with("GET /p?q "));
        let key = TraceEntry {
            item: TraceItem::Key("abc".into()),
            size: Some(5),
        };
        assert!(request(&t, Pick::Entry(&key), None).starts_with("GET /bytes/5?k=abc "));
    }

    #[test]
    fn bad_urls_are_usage_errors() {
        for url in ["https://x/", "ftp://x", "http:///x", "http://u@h/"] {
            let e = Target::parse(url, false, &[]).unwrap_err();
            assert!(e.usage, "{url}");
        }
        assert!(Target::parse("http://127.0.0.1:1/", false, &["nocolon".into()]).is_err());
        assert!(has_port("[::1]:80") && !has_port("[::1]") && has_port("h:1") && !has_port("h"));
    }
}
