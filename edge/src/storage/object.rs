//! A complete stored response: its metadata and its body as the chunks that arrived from the
//! origin, shared (never copied) with every reader.

use bytes::Bytes;
use pingora_cache::key::HashBinary;
use pingora_cache::storage::HandleHit;
use pingora_cache::{CacheKey, CacheMeta, Storage};
use pingora_core::{Error, ErrorType, Result};
use pingora_http::ResponseHeader;
use std::any::Any;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// Bytes charged per entry on top of its body, for the key, the header map and bookkeeping.
const ENTRY_OVERHEAD: u64 = 256;

/// How long a stale entry with a validator (`ETag` or `Last-Modified`) is kept after its stale
/// windows end, so that it can be revalidated with a conditional request (a 304 then refreshes
/// it without sending the body again) instead of being fetched whole. Size-based eviction still
/// removes it first if the room is needed.
const REVALIDATION_RETENTION: Duration = Duration::from_secs(3600);

/// How long a stale entry without a validator is kept after its stale windows end: it can no
/// longer be revalidated, but it still answers clients that accept stale responses
/// (`max-stale`), and it lets a `must-revalidate` entry whose origin is unreachable end in the
/// 504 RFC 9111 section 5.2.2.2 asks for rather than a miss.
const STALE_GRACE: Duration = Duration::from_secs(60);

/// What pingora needs to rebuild a [`CacheMeta`] for each reader.
///
/// `CacheMeta` is not `Clone` and deserialising it on every hit would parse the header each time,
/// so the parts are kept and a fresh `CacheMeta` is assembled per hit (one header-map clone).
#[derive(Clone, Debug)]
pub(crate) struct MetaParts {
    fresh_until: SystemTime,
    /// The time the age is counted from (pingora's `epoch`: admission, last revalidation, or an
    /// override that accounts for the origin's `Age`).
    epoch: SystemTime,
    stale_while_revalidate_sec: u32,
    stale_if_error_sec: u32,
    variance: Option<HashBinary>,
    header: ResponseHeader,
}

impl MetaParts {
    pub(crate) fn from_meta(meta: &CacheMeta) -> Self {
        Self {
            fresh_until: meta.fresh_until(),
            epoch: meta.epoch(),
            stale_while_revalidate_sec: meta.stale_while_revalidate_sec(),
            stale_if_error_sec: meta.stale_if_error_sec(),
            variance: meta.variance(),
            header: meta.response_header_copy(),
        }
    }

    pub(crate) fn to_meta(&self) -> CacheMeta {
        let mut meta = CacheMeta::new(
            self.fresh_until,
            self.epoch,
            self.stale_while_revalidate_sec,
            self.stale_if_error_sec,
            self.header.clone(),
        );
        if let Some(v) = self.variance {
            meta.set_variance(v);
        }
        meta
    }

    pub(crate) fn is_fresh(&self, now: SystemTime) -> bool {
        self.fresh_until >= now
    }

    /// Marks the entry stale (for an expiring purge) while keeping its stale windows.
    pub(crate) fn expire_now(&mut self, now: SystemTime) {
        let past = now.checked_sub(Duration::from_secs(1)).unwrap_or(now);
        self.fresh_until = self.fresh_until.min(past);
    }

    /// When the entry stops being useful: the end of its freshness plus the longest stale
    /// window, plus [`REVALIDATION_RETENTION`] if it can be revalidated, else [`STALE_GRACE`].
    pub(crate) fn useful_until(&self) -> SystemTime {
        let stale = self.stale_while_revalidate_sec.max(self.stale_if_error_sec);
        let mut keep = Duration::from_secs(stale.into());
        let headers = &self.header.headers;
        if headers.contains_key(http::header::ETAG)
            || headers.contains_key(http::header::LAST_MODIFIED)
        {
            keep += REVALIDATION_RETENTION;
        } else {
            keep += STALE_GRACE;
        }
        self.fresh_until
            .checked_add(keep)
            .unwrap_or(self.fresh_until)
    }

    fn header_bytes(&self) -> u64 {
        self.header
            .headers
            .iter()
            .map(|(k, v)| (k.as_str().len() + v.len() + 4) as u64)
            .sum()
    }
}

/// A response in the cache.
pub(crate) struct StoredObject {
    pub(crate) meta: MetaParts,
    chunks: Arc<[Bytes]>,
    /// Offset of the first byte of each chunk, for seeking.
    starts: Arc<[usize]>,
    body_len: usize,
}

impl StoredObject {
    pub(crate) fn new(meta: MetaParts, chunks: Vec<Bytes>) -> Self {
        let chunks = coalesce(chunks);
        let mut starts = Vec::with_capacity(chunks.len());
        let mut at = 0;
        for c in &chunks {
            starts.push(at);
            at += c.len();
        }
        Self {
            meta,
            chunks: chunks.into(),
            starts: starts.into(),
            body_len: at,
        }
    }

    /// The same body under new metadata (after a revalidation or an expiring purge).
    pub(crate) fn with_meta(&self, meta: MetaParts) -> Self {
        Self {
            meta,
            chunks: self.chunks.clone(),
            starts: self.starts.clone(),
            body_len: self.body_len,
        }
    }

    /// Bytes this entry costs the cache: body, headers and a fixed overhead.
    pub(crate) fn charged_bytes(&self) -> u64 {
        self.body_len as u64 + self.meta.header_bytes() + ENTRY_OVERHEAD
    }

    /// The entry's weight for moka, in KiB rounded up (so the sum of weights bounds the bytes).
    pub(crate) fn weight_kib(&self) -> u32 {
        u32::try_from(self.charged_bytes().div_ceil(1024)).unwrap_or(u32::MAX)
    }
}

/// Largest contiguous piece of a stored body.
const SEGMENT: usize = 1 << 20;

/// Joins the origin's chunks (often 4 to 64 KiB) into segments of up to [`SEGMENT`], once, when
/// the object is stored: every hit then hands pingora one buffer per MiB instead of one per
/// origin read, which saves a send and a pass through pingora's body path per chunk.
fn coalesce(chunks: Vec<Bytes>) -> Vec<Bytes> {
    let chunks: Vec<Bytes> = chunks.into_iter().filter(|c| !c.is_empty()).collect();
    if chunks.len() <= 1 {
        return chunks;
    }
    let mut remaining: usize = chunks.iter().map(Bytes::len).sum();
    let mut out = Vec::with_capacity(remaining.div_ceil(SEGMENT));
    let mut segment = bytes::BytesMut::new();
    for chunk in chunks {
        if !segment.is_empty() && segment.len() + chunk.len() > SEGMENT {
            out.push(segment.split().freeze());
        }
        if segment.is_empty() {
            if chunk.len() >= SEGMENT {
                remaining -= chunk.len();
                out.push(chunk);
                continue;
            }
            segment.reserve(remaining.min(SEGMENT));
        }
        remaining -= chunk.len();
        segment.extend_from_slice(&chunk);
    }
    if !segment.is_empty() {
        out.push(segment.freeze());
    }
    out
}

/// Reads a stored body, whole or a byte range of it, without copying it.
pub(crate) struct ObjectHit {
    object: Arc<StoredObject>,
    /// Next byte to send, and one past the last byte to send.
    pos: usize,
    end: usize,
}

impl ObjectHit {
    pub(crate) fn new(object: Arc<StoredObject>) -> Self {
        let end = object.body_len;
        Self {
            object,
            pos: 0,
            end,
        }
    }
}

#[async_trait::async_trait]
impl HandleHit for ObjectHit {
    async fn read_body(&mut self) -> Result<Option<Bytes>> {
        if self.pos >= self.end {
            return Ok(None);
        }
        let starts = &self.object.starts;
        // The chunk holding `pos`: the last one starting at or before it.
        let i = starts.partition_point(|&s| s <= self.pos) - 1;
        let chunk = &self.object.chunks[i];
        let from = self.pos - starts[i];
        let to = chunk.len().min(from + (self.end - self.pos));
        self.pos += to - from;
        Ok(Some(chunk.slice(from..to)))
    }

    async fn finish(
        self: Box<Self>,
        _storage: &'static (dyn Storage + Sync),
        _key: &CacheKey,
        _trace: &pingora_cache::trace::SpanHandle,
    ) -> Result<()> {
        Ok(())
    }

    fn can_seek(&self) -> bool {
        true
    }

    fn seek(&mut self, start: usize, end: Option<usize>) -> Result<()> {
        if start >= self.object.body_len {
            return Error::e_explain(
                ErrorType::InternalError,
                format!(
                    "seek start {start} beyond body of {} bytes",
                    self.object.body_len
                ),
            );
        }
        self.pos = start;
        self.end = end.map_or(self.object.body_len, |e| e.min(self.object.body_len));
        Ok(())
    }

    fn get_eviction_weight(&self) -> usize {
        self.object.charged_bytes() as usize
    }

    fn as_any(&self) -> &(dyn Any + Send + Sync) {
        self
    }

    fn as_any_mut(&mut self) -> &mut (dyn Any + Send + Sync) {
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_are_joined_into_segments_without_losing_bytes() {
        let data: Vec<u8> = (0..3 * SEGMENT + 123).map(|i| (i % 251) as u8).collect();
        for piece in [1000, 16 * 1024, SEGMENT - 1, SEGMENT, 2 * SEGMENT] {
            let chunks: Vec<Bytes> = data.chunks(piece).map(Bytes::copy_from_slice).collect();
            let joined = coalesce(chunks);
            assert!(joined.iter().all(|c| !c.is_empty()));
            assert!(
                joined.len() <= 4 + usize::from(piece > SEGMENT),
                "{piece}: {}",
                joined.len()
            );
            assert_eq!(joined.concat(), data, "piece {piece}");
        }
        assert!(coalesce(vec![Bytes::new(), Bytes::new()]).is_empty());
    }
}
