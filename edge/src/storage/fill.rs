//! A body being written from the origin, which readers follow as it arrives.
//!
//! pingora's cache lock lets waiting readers in as soon as the writer has the response header
//! (`support_streaming_partial_write`), so a coalesced reader of a 1 GiB object starts receiving
//! bytes at once instead of after the whole body. A [`Fill`] holds the chunks written so far and
//! a watch channel that wakes readers on each new chunk and tells them how the write ended:
//! a writer that is dropped before `finish` marks the fill failed, and readers get an error
//! rather than a truncated body that looks complete.
//!
//! A fill that grows past the largest storable object switches to pass-through: it will not be
//! stored, new readers no longer join it, and chunks every current reader has consumed are
//! released so memory stays bounded by the slowest reader, not by the object.

use super::object::MetaParts;
use bytes::Bytes;
use pingora_cache::key::HashBinary;
use pingora_cache::storage::HandleHit;
use pingora_cache::{CacheKey, Storage};
use pingora_core::{Error, ErrorType, Result};
use std::any::Any;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock, Weak};
use tokio::sync::watch;

/// How a fill stands, as published to its readers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct FillState {
    /// Chunks available to read.
    pub(crate) chunks: usize,
    pub(crate) end: FillEnd,
}

/// Whether more body is coming.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum FillEnd {
    Writing,
    Complete,
    Failed,
}

/// One in-progress write of one key.
pub(crate) struct Fill {
    pub(crate) id: u64,
    id_bytes: [u8; 8],
    pub(crate) meta: MetaParts,
    chunks: RwLock<Vec<Bytes>>,
    state: watch::Sender<FillState>,
    /// Read positions of the live readers, for releasing consumed chunks in pass-through.
    readers: Mutex<Vec<Weak<AtomicUsize>>>,
    /// Set when the fill must not be stored (purged while in flight, or too large).
    discard: AtomicBool,
}

impl Fill {
    pub(crate) fn new(id: u64, meta: MetaParts) -> Arc<Self> {
        let (state, _) = watch::channel(FillState {
            chunks: 0,
            end: FillEnd::Writing,
        });
        Arc::new(Self {
            id,
            id_bytes: id.to_be_bytes(),
            meta,
            chunks: RwLock::new(Vec::new()),
            state,
            readers: Mutex::new(Vec::new()),
            discard: AtomicBool::new(false),
        })
    }

    /// The streaming-write tag pingora hands back in `lookup_streaming_write`.
    pub(crate) fn tag(&self) -> &[u8] {
        &self.id_bytes
    }

    /// Whether new readers may still join (the fill has all its chunks from the start).
    pub(crate) fn joinable(&self) -> bool {
        !self.discard.load(Ordering::Acquire)
    }

    /// Marks the fill as not to be stored; readers already on it keep reading.
    pub(crate) fn discard(&self) {
        self.discard.store(true, Ordering::Release);
    }

    /// A reader positioned at the first byte.
    pub(crate) fn reader(self: &Arc<Self>) -> FillHit {
        let pos = Arc::new(AtomicUsize::new(0));
        self.readers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(Arc::downgrade(&pos));
        FillHit {
            fill: self.clone(),
            state: self.state.subscribe(),
            pos,
        }
    }

    fn push(&self, chunk: Bytes) -> usize {
        let mut chunks = self.chunks.write().unwrap_or_else(PoisonError::into_inner);
        chunks.push(chunk);
        chunks.len()
    }

    fn publish(&self, chunks: usize, end: FillEnd) {
        self.state.send_replace(FillState { chunks, end });
    }

    /// Releases chunks that every live reader has consumed, from `from` on; returns the new
    /// low-water mark.
    fn release_consumed(&self, from: usize) -> usize {
        let low = {
            let mut readers = self.readers.lock().unwrap_or_else(PoisonError::into_inner);
            readers.retain(|r| r.strong_count() > 0);
            readers
                .iter()
                .filter_map(Weak::upgrade)
                .map(|p| p.load(Ordering::Acquire))
                .min()
        };
        let mut chunks = self.chunks.write().unwrap_or_else(PoisonError::into_inner);
        let low = low.unwrap_or(chunks.len()).min(chunks.len());
        for c in chunks.iter_mut().take(low).skip(from) {
            *c = Bytes::new();
        }
        low.max(from)
    }

    pub(crate) fn take_chunks(&self) -> Vec<Bytes> {
        self.chunks
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

/// The fills in progress, by key. Sharded so that concurrent misses on different keys do not
/// contend; only misses and stale lookups touch it, never a fresh hit.
pub(crate) struct FillMap {
    shards: Box<[Mutex<FillShard>]>,
}

/// The fills of the keys that hash to one shard.
type FillShard = HashMap<HashBinary, Vec<Arc<Fill>>>;

const FILL_SHARDS: usize = 64;

impl FillMap {
    pub(crate) fn new() -> Self {
        Self {
            shards: (0..FILL_SHARDS)
                .map(|_| Mutex::new(HashMap::new()))
                .collect(),
        }
    }

    fn shard(
        &self,
        key: &HashBinary,
    ) -> std::sync::MutexGuard<'_, HashMap<HashBinary, Vec<Arc<Fill>>>> {
        self.shards[key[0] as usize % FILL_SHARDS]
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn insert(&self, key: HashBinary, fill: Arc<Fill>) {
        self.shard(&key).entry(key).or_default().push(fill);
    }

    /// A fill of `key` that a new reader can follow from the start.
    pub(crate) fn joinable(&self, key: &HashBinary) -> Option<Arc<Fill>> {
        self.shard(key)
            .get(key)
            .and_then(|fills| fills.iter().find(|f| f.joinable()).cloned())
    }

    /// The fill with this id, whether or not new readers may join it.
    pub(crate) fn by_id(&self, key: &HashBinary, id: u64) -> Option<Arc<Fill>> {
        self.shard(key)
            .get(key)
            .and_then(|fills| fills.iter().find(|f| f.id == id).cloned())
    }

    pub(crate) fn remove(&self, key: &HashBinary, id: u64) {
        let mut shard = self.shard(key);
        if let Some(fills) = shard.get_mut(key) {
            fills.retain(|f| f.id != id);
            if fills.is_empty() {
                shard.remove(key);
            }
        }
    }

    /// Marks every fill of `key` as not to be stored and forgets them; returns how many.
    pub(crate) fn discard_all(&self, key: &HashBinary) -> usize {
        let fills = self.shard(key).remove(key).unwrap_or_default();
        for f in &fills {
            f.discard();
        }
        fills.len()
    }

    /// Number of fills in progress.
    pub(crate) fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| {
                s.lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .values()
                    .map(Vec::len)
                    .sum::<usize>()
            })
            .sum()
    }
}

/// The writer side of a fill, held by the request that fetches from the origin.
pub(crate) struct FillWriter {
    pub(crate) fill: Arc<Fill>,
    pub(crate) key: HashBinary,
    chunks: usize,
    bytes: u64,
    max_bytes: u64,
    /// In pass-through: chunks below this index have been released.
    released: usize,
    finished: bool,
    fills: &'static FillMap,
}

impl FillWriter {
    pub(crate) fn new(
        fill: Arc<Fill>,
        key: HashBinary,
        max_bytes: u64,
        fills: &'static FillMap,
    ) -> Self {
        Self {
            fill,
            key,
            chunks: 0,
            bytes: 0,
            max_bytes,
            released: 0,
            finished: false,
            fills,
        }
    }

    /// Appends a chunk and wakes the readers.
    pub(crate) fn write(&mut self, data: Bytes) {
        if !data.is_empty() {
            self.bytes += data.len() as u64;
            self.chunks = self.fill.push(data);
        }
        if self.bytes > self.max_bytes && self.fill.joinable() {
            // Too large to store: keep streaming to the readers we have, take no new ones.
            self.fill.discard();
            self.fills.remove(&self.key, self.fill.id);
        }
        if !self.fill.joinable() {
            self.released = self.fill.release_consumed(self.released);
        }
        self.fill.publish(self.chunks, FillEnd::Writing);
    }

    /// Whether the body can be stored once complete.
    pub(crate) fn storable(&self) -> bool {
        self.fill.joinable() && self.bytes <= self.max_bytes
    }

    /// Ends the write successfully: readers see the end of the body.
    pub(crate) fn complete(&mut self) {
        self.finished = true;
        self.fill.publish(self.chunks, FillEnd::Complete);
        self.fills.remove(&self.key, self.fill.id);
    }
}

impl Drop for FillWriter {
    fn drop(&mut self) {
        if !self.finished {
            // The origin fetch died mid-body: readers must not take what they got as complete.
            self.fill.publish(self.chunks, FillEnd::Failed);
            self.fills.remove(&self.key, self.fill.id);
        }
    }
}

/// A reader following a fill.
pub(crate) struct FillHit {
    fill: Arc<Fill>,
    state: watch::Receiver<FillState>,
    pos: Arc<AtomicUsize>,
}

#[async_trait::async_trait]
impl HandleHit for FillHit {
    async fn read_body(&mut self) -> Result<Option<Bytes>> {
        loop {
            let state = *self.state.borrow_and_update();
            let pos = self.pos.load(Ordering::Acquire);
            if pos < state.chunks {
                let chunk = self
                    .fill
                    .chunks
                    .read()
                    .unwrap_or_else(PoisonError::into_inner)[pos]
                    .clone();
                self.pos.store(pos + 1, Ordering::Release);
                if chunk.is_empty() {
                    continue;
                }
                return Ok(Some(chunk));
            }
            match state.end {
                FillEnd::Complete => return Ok(None),
                FillEnd::Failed => {
                    return Error::e_explain(
                        ErrorType::ReadError,
                        "origin fetch failed before the end of the body",
                    )
                }
                FillEnd::Writing => {}
            }
            if self.state.changed().await.is_err() {
                return Error::e_explain(ErrorType::ReadError, "cache fill abandoned");
            }
        }
    }

    async fn finish(
        self: Box<Self>,
        _storage: &'static (dyn Storage + Sync),
        _key: &CacheKey,
        _trace: &pingora_cache::trace::SpanHandle,
    ) -> Result<()> {
        Ok(())
    }

    fn should_count_access(&self) -> bool {
        false
    }

    fn as_any(&self) -> &(dyn Any + Send + Sync) {
        self
    }

    fn as_any_mut(&mut self) -> &mut (dyn Any + Send + Sync) {
        self
    }
}
