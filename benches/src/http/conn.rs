//! A lean HTTP/1.1 keep-alive client connection, written here rather than taken from hyper
//! because a load generator must spend less CPU per request than the server it measures (it
//! shares the machine's cores with it, as wrk does): requests are pre-formatted bytes, the
//! response head is parsed in place with httparse, only the headers the bench reads are looked
//! at, and bodies are counted and dropped without being copied out of one reused buffer.

use std::io;
use std::net::SocketAddr;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Read buffer size, and the largest response head accepted.
const BUFFER: usize = 64 * 1024;
/// Most headers parsed in a response head.
const MAX_HEADERS: usize = 64;

/// What the cache in front said about a response.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CacheVerdict {
    /// Served from the cache (fresh, or stale without asking the origin).
    Hit,
    /// The cache went to the origin (miss, expired, revalidated, bypass).
    Miss,
    /// No `Cache-Status`, `X-Cache` or `X-Cache-Status` header.
    Unknown,
}

/// A complete response.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Answer {
    /// The status code.
    pub status: u16,
    /// Body bytes received (after de-chunking).
    pub body_bytes: u64,
    /// What the cache said.
    pub cache: CacheVerdict,
    /// Whether the connection can carry another request.
    pub reusable: bool,
}

/// Why an exchange got no complete response.
#[derive(Debug)]
pub enum ExchangeError {
    /// A read or write failed, or the server closed the connection early.
    Io(io::Error),
    /// The response was not valid HTTP/1.1.
    Protocol(String),
}

impl From<io::Error> for ExchangeError {
    fn from(e: io::Error) -> Self {
        Self::Io(e)
    }
}

/// How the body of a response ends.
enum Framing {
    Empty,
    Length(u64),
    Chunked,
    UntilClose,
}

/// One keep-alive connection to a server.
pub struct Connection {
    stream: TcpStream,
    buf: Box<[u8]>,
    /// Unconsumed bytes are `buf[start..end]`.
    start: usize,
    end: usize,
}

impl Connection {
    /// Connects to `addr`.
    pub async fn open(addr: SocketAddr) -> io::Result<Self> {
        let stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        Ok(Self {
            stream,
            buf: vec![0; BUFFER].into_boxed_slice(),
            start: 0,
            end: 0,
        })
    }

    /// Sends one request (complete bytes) and reads its whole response.
    pub async fn exchange(&mut self, request: &[u8]) -> Result<Answer, ExchangeError> {
        self.stream.write_all(request).await?;
        loop {
            let (status, framing, cache, reusable) = self.read_head().await?;
            // 1xx interim responses (100 Continue, 103 Early Hints) precede the real one.
            if (100..200).contains(&status) && status != 101 {
                continue;
            }
            let body_bytes = match framing {
                Framing::Empty => 0,
                Framing::Length(n) => {
                    self.skip(n).await?;
                    n
                }
                Framing::Chunked => self.skip_chunked().await?,
                Framing::UntilClose => self.skip_to_close().await?,
            };
            let reusable = reusable && !matches!(framing, Framing::UntilClose);
            return Ok(Answer {
                status,
                body_bytes,
                cache,
                reusable,
            });
        }
    }

    /// Reads more bytes after `end`, compacting the buffer first when it is full.
    async fn fill(&mut self) -> Result<(), ExchangeError> {
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        } else if self.end == self.buf.len() {
            if self.start == 0 {
                return Err(ExchangeError::Protocol(format!(
                    "response head or chunk line longer than {BUFFER} bytes"
                )));
            }
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        let n = self.stream.read(&mut self.buf[self.end..]).await?;
        if n == 0 {
            return Err(ExchangeError::Io(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "server closed the connection before the response ended",
            )));
        }
        self.end += n;
        Ok(())
    }

    async fn read_head(&mut self) -> Result<(u16, Framing, CacheVerdict, bool), ExchangeError> {
        loop {
            if self.start < self.end {
                let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
                let mut response = httparse::Response::new(&mut headers);
                match response.parse(&self.buf[self.start..self.end]) {
                    Ok(httparse::Status::Complete(len)) => {
                        let head = summarize(&response)?;
                        self.start += len;
                        return Ok(head);
                    }
                    Ok(httparse::Status::Partial) => {}
                    Err(e) => return Err(ExchangeError::Protocol(format!("bad response: {e}"))),
                }
            }
            self.fill().await?;
        }
    }

    /// Consumes `n` body bytes.
    async fn skip(&mut self, mut n: u64) -> Result<(), ExchangeError> {
        loop {
            let buffered = (self.end - self.start) as u64;
            let take = buffered.min(n);
            self.start += take as usize;
            n -= take;
            if n == 0 {
                return Ok(());
            }
            self.fill().await?;
        }
    }

    /// Consumes everything until the server closes; returns the byte count.
    async fn skip_to_close(&mut self) -> Result<u64, ExchangeError> {
        let mut total = (self.end - self.start) as u64;
        self.start = 0;
        self.end = 0;
        loop {
            let n = self.stream.read(&mut self.buf).await?;
            if n == 0 {
                return Ok(total);
            }
            total += n as u64;
        }
    }

    /// Consumes one CRLF-terminated line and returns it (without the CRLF).
    async fn line(&mut self) -> Result<Vec<u8>, ExchangeError> {
        loop {
            let window = &self.buf[self.start..self.end];
            if let Some(i) = window.windows(2).position(|w| w == b"\r\n") {
                let line = window[..i].to_vec();
                self.start += i + 2;
                return Ok(line);
            }
            self.fill().await?;
        }
    }

    /// Consumes a chunked body and its trailers; returns the body's length.
    async fn skip_chunked(&mut self) -> Result<u64, ExchangeError> {
        let mut total = 0u64;
        loop {
            let line = self.line().await?;
            let size = chunk_size(&line)?;
            if size == 0 {
                // Trailer fields, up to an empty line.
                while !self.line().await?.is_empty() {}
                return Ok(total);
            }
            self.skip(size).await?;
            total += size;
            if !self.line().await?.is_empty() {
                return Err(ExchangeError::Protocol("chunk not followed by CRLF".into()));
            }
        }
    }
}

fn chunk_size(line: &[u8]) -> Result<u64, ExchangeError> {
    let hex = line.split(|&b| b == b';').next().unwrap_or_default();
    let hex = std::str::from_utf8(hex).unwrap_or("").trim();
    u64::from_str_radix(hex, 16)
        .map_err(|_| ExchangeError::Protocol(format!("bad chunk size line {line:?}")))
}

/// The status, framing, cache verdict and keep-alive of a parsed head.
fn summarize(
    response: &httparse::Response<'_, '_>,
) -> Result<(u16, Framing, CacheVerdict, bool), ExchangeError> {
    let status = response
        .code
        .ok_or_else(|| ExchangeError::Protocol("response without status".into()))?;
    let mut length = None;
    let mut chunked = false;
    let mut close = response.version == Some(0);
    let mut cache = CacheVerdict::Unknown;
    for h in response.headers.iter() {
        let name = h.name;
        if name.eq_ignore_ascii_case("content-length") {
            let text = std::str::from_utf8(h.value).unwrap_or("").trim();
            length =
                Some(text.parse::<u64>().map_err(|_| {
                    ExchangeError::Protocol(format!("bad Content-Length {text:?}"))
                })?);
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            chunked = contains_token(h.value, "chunked");
        } else if name.eq_ignore_ascii_case("connection") {
            if contains_token(h.value, "close") {
                close = true;
            } else if contains_token(h.value, "keep-alive") {
                close = false;
            }
        } else if name.eq_ignore_ascii_case("cache-status") {
            cache = cache_status_verdict(h.value);
        } else if (name.eq_ignore_ascii_case("x-cache")
            || name.eq_ignore_ascii_case("x-cache-status"))
            && cache == CacheVerdict::Unknown
        {
            cache = x_cache_verdict(h.value);
        }
    }
    let framing = if status == 204 || status == 304 || (100..200).contains(&status) {
        Framing::Empty
    } else if chunked {
        Framing::Chunked
    } else if let Some(n) = length {
        Framing::Length(n)
    } else {
        Framing::UntilClose
    };
    Ok((status, framing, cache, !close))
}

fn contains_token(value: &[u8], token: &str) -> bool {
    value
        .split(|&b| b == b',')
        .any(|t| std::str::from_utf8(t).is_ok_and(|t| t.trim().eq_ignore_ascii_case(token)))
}

/// RFC 9211: caches append themselves, so the last list member is the cache nearest the
/// client, the one whose hit or miss this client saw. `hit` means served from it; any `fwd`
/// means it went forward (to the origin or a parent).
pub fn cache_status_verdict(value: &[u8]) -> CacheVerdict {
    let text = String::from_utf8_lossy(value);
    let Some(last) = text.rsplit(',').next() else {
        return CacheVerdict::Unknown;
    };
    let mut params = last.split(';').skip(1).map(str::trim);
    if params.clone().any(|p| p.eq_ignore_ascii_case("hit")) {
        CacheVerdict::Hit
    } else if params.any(|p| p.to_ascii_lowercase().starts_with("fwd")) {
        CacheVerdict::Miss
    } else {
        CacheVerdict::Unknown
    }
}

/// `X-Cache` (Varnish setups, Squid, Fastly, CloudFront: `HIT`, `TCP_MISS`, `Hit from
/// cloudfront`, `MISS, HIT`) and nginx's `$upstream_cache_status` (`HIT`, `STALE`, `UPDATING`
/// served from cache; `MISS`, `EXPIRED`, `REVALIDATED`, `BYPASS` went to the origin). In a
/// list, the last member is the cache nearest the client.
pub fn x_cache_verdict(value: &[u8]) -> CacheVerdict {
    let text = String::from_utf8_lossy(value).to_ascii_uppercase();
    let last = text.rsplit(',').next().unwrap_or("").trim();
    if last.contains("HIT") || last == "STALE" || last == "UPDATING" {
        CacheVerdict::Hit
    } else if ["MISS", "EXPIRED", "REVALIDATED", "BYPASS", "PASS"]
        .iter()
        .any(|m| last.contains(m))
    {
        CacheVerdict::Miss
    } else {
        CacheVerdict::Unknown
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::net::TcpListener;

    #[test]
    fn cache_status_reads_the_nearest_cache() {
        assert_eq!(
            cache_status_verdict(b"cdn-edge; hit; ttl=57"),
            CacheVerdict::Hit
        );
        assert_eq!(
            cache_status_verdict(b"cdn-edge; fwd=miss; stored"),
            CacheVerdict::Miss
        );
        assert_eq!(
            cache_status_verdict(b"origin-cache; hit, cdn-edge; fwd=miss"),
            CacheVerdict::Miss
        );
        assert_eq!(
            cache_status_verdict(b"a; fwd=miss, b; hit"),
            CacheVerdict::Hit
        );
        assert_eq!(cache_status_verdict(b"cdn-edge"), CacheVerdict::Unknown);
        assert_eq!(x_cache_verdict(b"HIT"), CacheVerdict::Hit);
        assert_eq!(x_cache_verdict(b"Hit from cloudfront"), CacheVerdict::Hit);
        assert_eq!(x_cache_verdict(b"MISS, HIT"), CacheVerdict::Hit);
        assert_eq!(x_cache_verdict(b"EXPIRED"), CacheVerdict::Miss);
        assert_eq!(x_cache_verdict(b"TCP_MISS"), CacheVerdict::Miss);
        assert_eq!(x_cache_verdict(b"STALE"), CacheVerdict::Hit);
        assert_eq!(x_cache_verdict(b"-"), CacheVerdict::Unknown);
    }

    /// Serves each canned response in turn on one connection, after reading a request head.
    async fn serve(responses: Vec<&'static [u8]>) -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            let mut buf = vec![0u8; 4096];
            for r in responses {
                let mut got = Vec::new();
                while !got.windows(4).any(|w| w == b"\r\n\r\n") {
                    let n = s.read(&mut buf).await.unwrap();
                    if n == 0 {
                        return;
                    }
                    got.extend_from_slice(&buf[..n]);
                }
                // Dribble the response to exercise partial reads.
                for piece in r.chunks(7) {
                    s.write_all(piece).await.unwrap();
                    s.flush().await.unwrap();
                    tokio::task::yield_now().await;
                }
            }
        });
        addr
    }

    #[tokio::test]
    async fn reads_length_chunked_and_close_delimited_bodies() {
        let addr = serve(vec![
            b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 5\r\nCache-Status: e; hit\r\n\r\nhello",
            b"HTTP/1.1 404 Not Found\r\nTransfer-Encoding: chunked\r\nX-Cache: MISS\r\n\r\n3;x=y\r\nabc\r\n10\r\n0123456789abcdef\r\n0\r\nT: v\r\n\r\n",
            b"HTTP/1.1 304 Not Modified\r\nContent-Length: 99\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nuntil close",
        ])
        .await;
        let mut c = Connection::open(addr).await.unwrap();
        let req = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n";
        let a = c.exchange(req).await.unwrap();
        assert_eq!(
            (a.status, a.body_bytes, a.cache, a.reusable),
            (200, 5, CacheVerdict::Hit, true)
        );
        let a = c.exchange(req).await.unwrap();
        assert_eq!(
            (a.status, a.body_bytes, a.cache),
            (404, 19, CacheVerdict::Miss)
        );
        let a = c.exchange(req).await.unwrap();
        assert_eq!((a.status, a.body_bytes), (304, 0));
        let a = c.exchange(req).await.unwrap();
        assert_eq!((a.status, a.body_bytes, a.reusable), (200, 11, false));
    }

    #[tokio::test]
    async fn early_close_and_garbage_are_errors() {
        let addr = serve(vec![b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort"]).await;
        let mut c = Connection::open(addr).await.unwrap();
        assert!(matches!(
            c.exchange(b"GET / HTTP/1.1\r\n\r\n").await,
            Err(ExchangeError::Io(_))
        ));
        let addr = serve(vec![b"NOT HTTP AT ALL\r\n\r\n"]).await;
        let mut c = Connection::open(addr).await.unwrap();
        assert!(matches!(
            c.exchange(b"GET / HTTP/1.1\r\n\r\n").await,
            Err(ExchangeError::Protocol(_))
        ));
    }
}
