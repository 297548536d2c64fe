//! The edge's cache storage: pingora-cache's [`Storage`] on a moka cache bounded in bytes.
//!
//! moka is both the storage and the eviction policy here (LRU, or TinyLFU admission that
//! resists scans), weighing each entry by its bytes; pingora is given no eviction manager.
//! Bodies are kept as the chunks that came from the origin and handed to readers as
//! reference-counted [`Bytes`], so a hit never copies a body. Bodies being fetched live in a
//! [`fill::FillMap`] that readers follow while the origin is still sending (see [`fill`]).
//!
//! ```
//! use cdn_edge::storage::CacheStorage;
//! use cdn_config::Eviction;
//! let storage = CacheStorage::new(64 << 20, 8 << 20, Eviction::Lfu);
//! assert_eq!(storage.stats().entries, 0);
//! ```

mod fill;
mod index;
mod object;

pub use index::{PurgeCount, PurgeIndexSize, PurgeSelector};

use async_trait::async_trait;
use cdn_config::Eviction;
use fill::{Fill, FillMap, FillWriter};
use index::{FillGuard, PurgeIndex, Tags};
use moka::notification::RemovalCause;
use moka::policy::EvictionPolicy;
use moka::sync::Cache;
use object::{MetaParts, ObjectHit, StoredObject};
use pingora_cache::key::{CacheHashKey, HashBinary};
use pingora_cache::storage::{
    HandleMiss, HitHandler, MissFinishType, MissHandler, PurgeOutcome, PurgeTarget, PurgeType,
};
use pingora_cache::trace::SpanHandle;
use pingora_cache::{CacheKey, CacheMeta, Storage};
use pingora_core::{Error, ErrorType, Result};
use serde::Serialize;
use std::any::Any;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

/// Counters kept by the storage, shared with moka's eviction listener.
#[derive(Default)]
struct Counters {
    stored_bytes: AtomicU64,
    evictions: AtomicU64,
    expirations: AtomicU64,
    inserts: AtomicU64,
}

/// A snapshot of the cache's size and churn, for `/cache/stats` and `/metrics`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct StorageStats {
    /// Entries stored.
    pub entries: u64,
    /// Bytes charged for the stored entries (bodies, headers, overhead).
    pub bytes: u64,
    /// The configured bound on `bytes`.
    pub max_bytes: u64,
    /// Entries removed to make room.
    pub evictions: u64,
    /// Entries removed because they were past their freshness and stale windows.
    pub expirations: u64,
    /// Entries written.
    pub inserts: u64,
    /// Origin fetches currently being written into the cache.
    pub fills_in_progress: u64,
}

/// Pingora cache storage on moka, bounded in bytes, with streaming partial writes.
pub struct CacheStorage {
    objects: Cache<HashBinary, Arc<StoredObject>, PrehashedKey>,
    fills: &'static FillMap,
    next_fill: AtomicU64,
    counters: Arc<Counters>,
    max_bytes: u64,
    max_object_size: u64,
    /// Stored keys by URL and by tag, for `POST /purge` (see [`index`]).
    index: Arc<PurgeIndex>,
    /// Response headers whose values tag an entry.
    tag_headers: Vec<http::HeaderName>,
}

/// Keys are already 128-bit blake2 hashes (pingora's `combined_bin`), so moka can use their
/// first eight bytes as the hash instead of running SipHash over them again.
#[derive(Clone, Default)]
struct PrehashedKey;

/// The hasher of [`PrehashedKey`].
#[derive(Default)]
struct PrehashedKeyHasher(u64);

impl std::hash::BuildHasher for PrehashedKey {
    type Hasher = PrehashedKeyHasher;
    fn build_hasher(&self) -> PrehashedKeyHasher {
        PrehashedKeyHasher(0)
    }
}

impl std::hash::Hasher for PrehashedKeyHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        // The array's length prefix arrives through `write_usize`; the key bytes through here.
        let mut word = [0u8; 8];
        let n = bytes.len().min(8);
        word[..n].copy_from_slice(&bytes[..n]);
        self.0 = self.0.rotate_left(5) ^ u64::from_le_bytes(word);
    }

    fn write_usize(&mut self, _len: usize) {}
}

/// moka's per-entry expiry: an entry lives until its freshness and stale windows are over.
struct UsefulLife;

impl moka::Expiry<HashBinary, Arc<StoredObject>> for UsefulLife {
    fn expire_after_create(
        &self,
        _key: &HashBinary,
        value: &Arc<StoredObject>,
        _created_at: Instant,
    ) -> Option<Duration> {
        Some(remaining(value))
    }

    fn expire_after_update(
        &self,
        _key: &HashBinary,
        value: &Arc<StoredObject>,
        _updated_at: Instant,
        _duration_until_expiry: Option<Duration>,
    ) -> Option<Duration> {
        Some(remaining(value))
    }
}

fn remaining(value: &StoredObject) -> Duration {
    value
        .meta
        .useful_until()
        .duration_since(SystemTime::now())
        .unwrap_or(Duration::ZERO)
}

impl CacheStorage {
    /// A storage holding at most `max_bytes`, storing objects up to `max_object_size` bytes,
    /// evicting by `eviction`.
    pub fn new(max_bytes: u64, max_object_size: u64, eviction: Eviction) -> Self {
        let counters = Arc::new(Counters::default());
        let listener_counters = counters.clone();
        let index = Arc::new(PurgeIndex::default());
        let listener_index = index.clone();
        let policy = match eviction {
            Eviction::Lru => EvictionPolicy::lru(),
            Eviction::Lfu => EvictionPolicy::tiny_lfu(),
        };
        let objects = Cache::builder()
            .max_capacity(max_bytes / 1024)
            .weigher(|_k: &HashBinary, v: &Arc<StoredObject>| v.weight_kib())
            .eviction_policy(policy)
            .expire_after(UsefulLife)
            .eviction_listener(move |k, v: Arc<StoredObject>, cause| {
                listener_index.removed(&k, Arc::as_ptr(&v) as usize);
                listener_counters
                    .stored_bytes
                    .fetch_sub(v.charged_bytes(), Ordering::Relaxed);
                match cause {
                    RemovalCause::Size => {
                        listener_counters.evictions.fetch_add(1, Ordering::Relaxed);
                    }
                    RemovalCause::Expired => {
                        listener_counters
                            .expirations
                            .fetch_add(1, Ordering::Relaxed);
                    }
                    RemovalCause::Explicit | RemovalCause::Replaced => {}
                }
            })
            .build_with_hasher(PrehashedKey);
        Self {
            objects,
            fills: Box::leak(Box::new(FillMap::new())),
            next_fill: AtomicU64::new(1),
            counters,
            max_bytes,
            max_object_size,
            index,
            tag_headers: vec![
                http::HeaderName::from_static("surrogate-key"),
                http::HeaderName::from_static("cache-tag"),
            ],
        }
    }

    /// Size and churn of the cache now. Runs moka's pending maintenance first so the figures
    /// are exact rather than lagging by a few operations.
    pub fn stats(&self) -> StorageStats {
        self.objects.run_pending_tasks();
        StorageStats {
            entries: self.objects.entry_count(),
            bytes: self.counters.stored_bytes.load(Ordering::Relaxed),
            max_bytes: self.max_bytes,
            evictions: self.counters.evictions.load(Ordering::Relaxed),
            expirations: self.counters.expirations.load(Ordering::Relaxed),
            inserts: self.counters.inserts.load(Ordering::Relaxed),
            fills_in_progress: self.fills.len() as u64,
        }
    }

    /// Whether a complete entry is stored under `key` (fresh or stale).
    pub fn contains(&self, key: &CacheKey) -> bool {
        self.objects.contains_key(&key.combined_bin())
    }

    /// Stores `object` under `key`, indexed under its normalised `url` and `tags` (unset: those
    /// of the entry it replaces).
    fn insert(
        &self,
        key: HashBinary,
        object: StoredObject,
        url: Option<&str>,
        tags: Option<&[Box<str>]>,
    ) {
        self.counters
            .stored_bytes
            .fetch_add(object.charged_bytes(), Ordering::Relaxed);
        self.counters.inserts.fetch_add(1, Ordering::Relaxed);
        let object = Arc::new(object);
        self.index
            .stored(key, url, tags, Arc::as_ptr(&object) as usize);
        self.objects.insert(key, object);
    }

    fn fill_hit(fill: &Arc<Fill>) -> (CacheMeta, HitHandler) {
        (fill.meta.to_meta(), Box::new(fill.reader()))
    }
}

#[async_trait]
impl Storage for CacheStorage {
    async fn lookup(
        &'static self,
        key: &CacheKey,
        _trace: &SpanHandle,
    ) -> Result<Option<(CacheMeta, HitHandler)>> {
        let k = key.combined_bin();
        let stored = self.objects.get(&k);
        if let Some(object) = &stored {
            if object.meta.is_fresh(SystemTime::now()) {
                let hit: HitHandler = Box::new(ObjectHit::new(object.clone()));
                return Ok(Some((object.meta.to_meta(), hit)));
            }
        }
        // Missing or stale: a fetch in progress is newer than anything stored.
        if let Some(fill) = self.fills.joinable(&k) {
            return Ok(Some(Self::fill_hit(&fill)));
        }
        Ok(stored.map(|object| {
            let hit: HitHandler = Box::new(ObjectHit::new(object.clone()));
            (object.meta.to_meta(), hit)
        }))
    }

    async fn lookup_streaming_write(
        &'static self,
        key: &CacheKey,
        streaming_write_tag: Option<&[u8]>,
        trace: &SpanHandle,
    ) -> Result<Option<(CacheMeta, HitHandler)>> {
        let Some(tag) = streaming_write_tag else {
            return self.lookup(key, trace).await;
        };
        let id = <[u8; 8]>::try_from(tag)
            .map(u64::from_be_bytes)
            .or_else(|_| Error::e_explain(ErrorType::InternalError, "bad streaming write tag"))?;
        match self.fills.by_id(&key.combined_bin(), id) {
            Some(fill) => Ok(Some(Self::fill_hit(&fill))),
            None => Error::e_explain(ErrorType::InternalError, "streaming write not found"),
        }
    }

    async fn get_miss_handler(
        &'static self,
        key: &CacheKey,
        meta: &CacheMeta,
        _trace: &SpanHandle,
    ) -> Result<MissHandler> {
        let k = key.combined_bin();
        let id = self.next_fill.fetch_add(1, Ordering::Relaxed);
        let fill = Fill::new(id, MetaParts::from_meta(meta));
        self.fills.insert(k, fill.clone());
        let url = key.primary_key_str().map(Box::<str>::from);
        let tags = index::tags_of(&meta.response_header().headers, &self.tag_headers);
        let in_index = url
            .as_deref()
            .map(|url| self.index.fill_started(id, k, url, &tags));
        Ok(Box::new(MissWriter {
            writer: FillWriter::new(fill, k, self.max_object_size, self.fills),
            storage: self,
            url,
            tags,
            _in_index: in_index,
        }))
    }

    async fn purge(
        &'static self,
        target: PurgeTarget<'_>,
        _purge_type: PurgeType,
        _trace: &SpanHandle,
    ) -> Result<PurgeOutcome> {
        let k = target.key().combined_bin();
        let fills = self.fills.discard_all(&k);
        let removed = self.objects.remove(&k).is_some();
        Ok(if removed || fills > 0 {
            PurgeOutcome::Purged(None)
        } else {
            PurgeOutcome::NotFound
        })
    }

    async fn expire(
        &'static self,
        target: PurgeTarget<'_>,
        _trace: &SpanHandle,
    ) -> Result<PurgeOutcome> {
        let k = target.key().combined_bin();
        self.fills.discard_all(&k);
        match self.objects.get(&k) {
            Some(object) => {
                let mut meta = object.meta.clone();
                meta.expire_now(SystemTime::now());
                self.insert(k, object.with_meta(meta), None, None);
                Ok(PurgeOutcome::Expired)
            }
            None => Ok(PurgeOutcome::NotFound),
        }
    }

    async fn update_meta(
        &'static self,
        key: &CacheKey,
        meta: &CacheMeta,
        _trace: &SpanHandle,
    ) -> Result<bool> {
        let k = key.combined_bin();
        match self.objects.get(&k) {
            Some(object) => {
                // A 304 may bring new tag headers.
                let tags = index::tags_of(&meta.response_header().headers, &self.tag_headers);
                self.insert(
                    k,
                    object.with_meta(MetaParts::from_meta(meta)),
                    key.primary_key_str(),
                    Some(&tags),
                );
                Ok(true)
            }
            None => Ok(false),
        }
    }

    fn support_streaming_partial_write(&self) -> bool {
        true
    }

    fn as_any(&self) -> &(dyn Any + Send + Sync + 'static) {
        self
    }
}

/// The miss side: writes the origin's body into a fill, and stores it when complete.
struct MissWriter {
    writer: FillWriter,
    storage: &'static CacheStorage,
    /// The normalised URL and the tags the entry is indexed under.
    url: Option<Box<str>>,
    tags: Tags,
    /// Keeps the fetch findable by purges until it is stored or abandoned.
    _in_index: Option<FillGuard>,
}

#[async_trait]
impl HandleMiss for MissWriter {
    async fn write_body(&mut self, data: bytes::Bytes, _eof: bool) -> Result<()> {
        self.writer.write(data);
        Ok(())
    }

    async fn finish(mut self: Box<Self>) -> Result<MissFinishType> {
        let fill = self.writer.fill.clone();
        let mut size = 0;
        if self.writer.storable() {
            let object = StoredObject::new(fill.meta.clone(), fill.take_chunks());
            size = object.charged_bytes() as usize;
            self.storage.insert(
                self.writer.key,
                object,
                self.url.as_deref(),
                Some(&self.tags),
            );
        }
        self.writer.complete();
        Ok(MissFinishType::Created(size))
    }

    fn streaming_write_tag(&self) -> Option<&[u8]> {
        Some(self.writer.fill.tag())
    }
}

#[cfg(test)]
mod tests;
