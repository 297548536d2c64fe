//! Deterministic response bodies.
//!
//! Bytes for a path come from a SplitMix64 sequence seeded by the FNV-1a hash
//! of the path. SplitMix64 is counter based (word `i` is `mix(seed + (i + 1) *
//! GAMMA)`), so any byte offset can be generated directly: a range can be
//! streamed without producing the bytes before it, and a large body is streamed
//! in [`CHUNK_SIZE`] pieces without ever holding it in memory.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Frame, SizeHint};

/// Size of each data frame of a generated body.
pub(crate) const CHUNK_SIZE: usize = 64 * 1024;

const GAMMA: u64 = 0x9E37_79B9_7F4A_7C15;

/// FNV-1a (64-bit) of `data`: the seed of a path's byte sequence.
pub(crate) fn seed_for(path: &str) -> u64 {
    path.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |hash, byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// SplitMix64 output function.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The `index`-th 8-byte word of the sequence for `seed`.
fn word(seed: u64, index: u64) -> [u8; 8] {
    mix(seed.wrapping_add(index.wrapping_add(1).wrapping_mul(GAMMA))).to_le_bytes()
}

/// Writes the sequence bytes `offset .. offset + out.len()` for `seed` into `out`.
pub(crate) fn fill(seed: u64, offset: u64, out: &mut [u8]) {
    let mut pos = offset;
    let mut written = 0;
    while written < out.len() {
        let bytes = word(seed, pos / 8);
        let within = (pos % 8) as usize;
        let n = (8 - within).min(out.len() - written);
        out[written..written + n].copy_from_slice(&bytes[within..within + n]);
        written += n;
        pos += n as u64;
    }
}

/// All `len` deterministic body bytes for `path`, in memory.
///
/// This is exactly what `GET /bytes/{len}` serves for that path (e.g.
/// `body_bytes("/bytes/10", 10)`), so tests can check bodies. Only meant for
/// small sizes: it allocates `len` bytes.
pub fn body_bytes(path: &str, len: u64) -> Bytes {
    let Ok(size) = usize::try_from(len) else {
        return Bytes::new();
    };
    let mut out = vec![0; size];
    fill(seed_for(path), 0, &mut out);
    Bytes::from(out)
}

/// A streamed slice of a path's deterministic byte sequence.
#[derive(Debug, Clone)]
pub(crate) struct GeneratedBody {
    seed: u64,
    pos: u64,
    end: u64,
}

impl GeneratedBody {
    /// The bytes `start .. end` (end exclusive) of the sequence for `path`.
    pub(crate) fn new(path: &str, start: u64, end: u64) -> Self {
        Self {
            seed: seed_for(path),
            pos: start,
            end: end.max(start),
        }
    }

    /// The next chunk (at most [`CHUNK_SIZE`] bytes), or `None` at the end.
    fn next_chunk(&mut self) -> Option<Bytes> {
        if self.pos >= self.end {
            return None;
        }
        let n = (self.end - self.pos).min(CHUNK_SIZE as u64) as usize;
        let mut buf = vec![0; n];
        fill(self.seed, self.pos, &mut buf);
        self.pos += n as u64;
        Some(Bytes::from(buf))
    }
}

impl http_body::Body for GeneratedBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        Poll::Ready(self.get_mut().next_chunk().map(|b| Ok(Frame::data(b))))
    }

    fn is_end_stream(&self) -> bool {
        self.pos >= self.end
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.end - self.pos)
    }
}

/// A response body reshaped to imitate a misbehaving origin: its length hidden (so it goes out
/// chunked), or cut off after some bytes with an error (so the connection is dropped).
pub(crate) struct ShapedBody {
    inner: axum::body::Body,
    hide_length: bool,
    abort_after: Option<u64>,
    sent: u64,
    /// Started once the cut-off is reached: the error is raised only after it, so the bytes
    /// before the cut are really flushed to the client first.
    abort_timer: Option<Pin<Box<tokio::time::Sleep>>>,
}

/// How long an aborting body waits, after its last bytes, before dropping the connection.
const ABORT_FLUSH: std::time::Duration = std::time::Duration::from_millis(100);

impl ShapedBody {
    pub(crate) fn new(
        inner: axum::body::Body,
        hide_length: bool,
        abort_after: Option<u64>,
    ) -> Self {
        Self {
            inner,
            hide_length,
            abort_after,
            sent: 0,
            abort_timer: None,
        }
    }
}

impl http_body::Body for ShapedBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let this = self.get_mut();
        if let Some(limit) = this.abort_after {
            if this.sent >= limit {
                let timer = this
                    .abort_timer
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep(ABORT_FLUSH)));
                return match timer.as_mut().poll(cx) {
                    Poll::Ready(()) => {
                        Poll::Ready(Some(Err(axum::Error::new("origin-mock: aborted mid-body"))))
                    }
                    Poll::Pending => Poll::Pending,
                };
            }
        }
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => match frame.into_data() {
                Ok(mut data) => {
                    if let Some(limit) = this.abort_after {
                        let room = usize::try_from(limit - this.sent).unwrap_or(usize::MAX);
                        data.truncate(room);
                    }
                    this.sent += data.len() as u64;
                    Poll::Ready(Some(Ok(Frame::data(data))))
                }
                Err(frame) => Poll::Ready(Some(Ok(frame))),
            },
            Poll::Ready(None) if this.abort_after.is_some_and(|l| this.sent < l) => {
                Poll::Ready(None)
            }
            other => other,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.abort_after.is_none() && self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        if self.hide_length {
            SizeHint::default()
        } else {
            self.inner.size_hint()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn collect(mut body: GeneratedBody) -> Vec<u8> {
        let mut out = Vec::new();
        while let Some(chunk) = body.next_chunk() {
            assert!(chunk.len() <= CHUNK_SIZE);
            out.extend_from_slice(&chunk);
        }
        out
    }

    #[test]
    fn same_path_same_bytes() {
        assert_eq!(body_bytes("/bytes/100", 100), body_bytes("/bytes/100", 100));
        assert_eq!(body_bytes("/a", 0).len(), 0);
        assert_eq!(body_bytes("/a", 77).len(), 77);
    }

    #[test]
    fn different_paths_differ() {
        assert_ne!(body_bytes("/bytes/100", 32), body_bytes("/bytes/101", 32));
        assert_ne!(body_bytes("/a", 32), body_bytes("/b", 32));
    }

    #[test]
    fn bytes_are_not_trivial() {
        let b = body_bytes("/bytes/4096", 4096);
        let distinct: std::collections::HashSet<u8> = b.iter().copied().collect();
        assert!(distinct.len() > 200);
    }

    #[test]
    fn streamed_whole_equals_in_memory() {
        let len = (CHUNK_SIZE * 2 + 123) as u64;
        let whole = body_bytes("/bytes/x", len);
        let streamed = collect(GeneratedBody::new("/bytes/x", 0, len));
        assert_eq!(streamed, whole.as_ref());
    }

    #[test]
    fn streamed_slice_equals_slice_of_whole() {
        let len = (CHUNK_SIZE * 3) as u64;
        let whole = body_bytes("/bytes/slice", len);
        for (start, end) in [
            (0, 1),
            (1, 9),
            (7, 8),
            (13, 70_000),
            (65_535, 65_537),
            (100_000, len),
        ] {
            let streamed = collect(GeneratedBody::new("/bytes/slice", start, end));
            assert_eq!(
                streamed,
                &whole[start as usize..end as usize],
                "{start}..{end}"
            );
        }
    }

    #[test]
    fn size_hint_is_exact_and_ends() {
        let mut body = GeneratedBody::new("/p", 10, 20);
        assert_eq!(http_body::Body::size_hint(&body).exact(), Some(10));
        assert!(!http_body::Body::is_end_stream(&body));
        assert!(body.next_chunk().is_some());
        assert!(http_body::Body::is_end_stream(&body));
        assert!(body.next_chunk().is_none());
    }
}
