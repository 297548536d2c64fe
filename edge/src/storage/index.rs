//! The purge index: which stored keys hold each URL (every `Vary` variant of it) and each cache
//! tag, so that `POST /purge` removes exactly the entries asked for without walking the cache.
//!
//! moka keys entries by a 128-bit hash and cannot be searched by URL or tag: an exact purge can
//! hash the URL, but its variants live under other hashes, and a prefix or a tag names no hash
//! at all. moka's `invalidate_entries_if` would scan every entry in the background and cannot
//! say how many it removed, so the edge keeps its own index instead:
//!
//! - URLs in a [`BTreeMap`] (normalised URL → its variants' keys): a prefix is a range of it, so
//!   a prefix purge costs O(log n + matches), never O(cache);
//! - tags in a hash map (tag → keys), filled from the response headers named by
//!   `edge.cache.tag_headers`;
//! - per key, its URL and tags, to unlink it when moka evicts, expires or replaces it (moka's
//!   eviction listener calls [`PurgeIndex::removed`]).
//!
//! The index sits behind one mutex that only writes take: storing a response, an eviction, a
//! purge. Hits never touch it. A purge takes it for at most [`PURGE_BATCH`] keys at a time and
//! removes the entries from moka with the lock released, so a purge of a whole site never
//! holds up the misses being stored meanwhile.
//!
//! Memory is bounded by the cache itself: the index holds one record per stored entry (moka's
//! listener unlinks each one that goes), at most [`MAX_TAGS_PER_ENTRY`] tags of at most
//! [`MAX_TAG_LEN`] bytes each, and each URL and tag string once (shared, not copied, between
//! the maps). Tags come from response headers, which are charged to the entry's weight.
//!
//! An entry is told apart from a newer one under the same key by the address of its
//! `Arc<StoredObject>`: the listener holds that `Arc` while it runs, so the address cannot
//! have been reused by the newer entry.

use super::CacheStorage;
use http::{HeaderMap, HeaderName};
use pingora_cache::key::HashBinary;
use serde::Serialize;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::ops::Bound;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::SystemTime;

/// Most tags kept per stored response; further ones are ignored.
pub(crate) const MAX_TAGS_PER_ENTRY: usize = 64;
/// Longest tag kept, in bytes; longer ones are ignored.
pub(crate) const MAX_TAG_LEN: usize = 256;
/// Most keys a purge takes out of the index per hold of its lock.
pub(crate) const PURGE_BATCH: usize = 1024;

/// The tags of one response, in the order they came.
pub(crate) type Tags = Box<[Box<str>]>;

/// The tags a response carries in the headers `names`: each value split on spaces and commas.
pub(crate) fn tags_of(headers: &HeaderMap, names: &[HeaderName]) -> Tags {
    let mut tags: Vec<Box<str>> = Vec::new();
    let values = names.iter().flat_map(|n| headers.get_all(n));
    for value in values {
        // A value that is not text names no tag we could be asked for.
        let Ok(text) = value.to_str() else { continue };
        for tag in text.split([' ', ',', '\t']).filter(|t| !t.is_empty()) {
            if tags.len() >= MAX_TAGS_PER_ENTRY {
                return tags.into();
            }
            if tag.len() <= MAX_TAG_LEN && !tags.iter().any(|t| &**t == tag) {
                tags.push(tag.into());
            }
        }
    }
    tags.into()
}

/// What a purge asks for: one normalised URL (with every variant), every URL under a
/// normalised prefix, or every response with a tag.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PurgeSelector<'a> {
    /// The entries of exactly this normalised URL (`host/path?query`).
    Url(&'a str),
    /// The entries of every normalised URL starting with this.
    Prefix(&'a str),
    /// The entries whose response carried this tag.
    Tag(&'a str),
}

/// How much a purge removed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct PurgeCount {
    /// Stored entries removed (each `Vary` variant counts once).
    pub purged: u64,
    /// Origin fetches in progress whose response will now not be stored.
    pub in_flight: u64,
}

impl std::ops::AddAssign for PurgeCount {
    fn add_assign(&mut self, other: Self) {
        self.purged += other.purged;
        self.in_flight += other.in_flight;
    }
}

/// What the index knows of one stored entry.
struct Indexed {
    url: Arc<str>,
    tags: Box<[Arc<str>]>,
    /// Address of the stored `Arc<StoredObject>`, telling this entry from a newer one.
    object: usize,
}

/// An origin fetch being written into the cache.
struct FillRecord {
    key: HashBinary,
    url: Box<str>,
    tags: Tags,
}

impl FillRecord {
    fn matches(&self, selector: PurgeSelector<'_>) -> bool {
        match selector {
            PurgeSelector::Url(url) => &*self.url == url,
            PurgeSelector::Prefix(prefix) => self.url.starts_with(prefix),
            PurgeSelector::Tag(tag) => self.tags.iter().any(|t| &**t == tag),
        }
    }
}

#[derive(Default)]
struct Maps {
    urls: BTreeMap<Arc<str>, Vec<HashBinary>>,
    tags: HashMap<Arc<str>, HashSet<HashBinary>>,
    entries: HashMap<HashBinary, Indexed>,
    fills: HashMap<u64, FillRecord>,
}

impl Maps {
    fn link(&mut self, key: HashBinary, url: &str, tags: &[&str], object: usize) {
        let url = match self.urls.get_key_value(url) {
            Some((shared, _)) => shared.clone(),
            None => Arc::from(url),
        };
        self.urls.entry(url.clone()).or_default().push(key);
        let tags = tags
            .iter()
            .map(|&tag| {
                let shared = match self.tags.get_key_value(tag) {
                    Some((shared, _)) => shared.clone(),
                    None => Arc::from(tag),
                };
                self.tags.entry(shared.clone()).or_default().insert(key);
                shared
            })
            .collect();
        self.entries.insert(key, Indexed { url, tags, object });
    }

    fn unlink(&mut self, key: &HashBinary) -> Option<Indexed> {
        let entry = self.entries.remove(key)?;
        if let Some(keys) = self.urls.get_mut(&*entry.url) {
            keys.retain(|k| k != key);
            if keys.is_empty() {
                self.urls.remove(&*entry.url);
            }
        }
        for tag in entry.tags.iter() {
            if let Some(keys) = self.tags.get_mut(&**tag) {
                keys.remove(key);
                if keys.is_empty() {
                    self.tags.remove(&**tag);
                }
            }
        }
        Some(entry)
    }

    /// Unlinks up to [`PURGE_BATCH`] entries matching `selector` and returns their keys; an
    /// empty batch means none is left.
    fn take_batch(&mut self, selector: PurgeSelector<'_>) -> Vec<HashBinary> {
        let keys: Vec<HashBinary> = match selector {
            PurgeSelector::Url(url) => self.urls.get(url).cloned().unwrap_or_default(),
            // Taken entries leave the map, so each batch starts from the prefix again.
            PurgeSelector::Prefix(prefix) => self
                .urls
                .range::<str, _>((Bound::Included(prefix), Bound::Unbounded))
                .take_while(|(url, _)| url.starts_with(prefix))
                .flat_map(|(_, keys)| keys.iter().copied())
                .take(PURGE_BATCH)
                .collect(),
            PurgeSelector::Tag(tag) => self
                .tags
                .get(tag)
                .map(|keys| keys.iter().take(PURGE_BATCH).copied().collect())
                .unwrap_or_default(),
        };
        for key in &keys {
            self.unlink(key);
        }
        keys
    }
}

/// The URL and tag index of one cache (see the module doc).
#[derive(Default)]
pub(crate) struct PurgeIndex {
    maps: Mutex<Maps>,
}

impl PurgeIndex {
    fn maps(&self) -> MutexGuard<'_, Maps> {
        self.maps.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Records that `object` is about to be stored under `key`, before moka has it (so that
    /// moka refusing it at once still unlinks it). `url` and `tags` unset: those of the entry
    /// it replaces (a refreshed or expired entry); with no URL at all it is not indexed.
    pub(crate) fn stored(
        &self,
        key: HashBinary,
        url: Option<&str>,
        tags: Option<&[Box<str>]>,
        object: usize,
    ) {
        let mut maps = self.maps();
        let previous = maps.unlink(&key);
        let url: Arc<str> = match (url, &previous) {
            (Some(url), _) => Arc::from(url),
            (None, Some(previous)) => previous.url.clone(),
            (None, None) => return,
        };
        let tags: Vec<&str> = match (tags, &previous) {
            (Some(tags), _) => tags.iter().map(|t| &**t).collect(),
            (None, Some(previous)) => previous.tags.iter().map(|t| &**t).collect(),
            (None, None) => Vec::new(),
        };
        maps.link(key, &url, &tags, object);
    }

    /// Unlinks `key` if its indexed entry is `object` (moka's eviction listener: evicted,
    /// expired, replaced or removed). A newer entry under the same key stays.
    pub(crate) fn removed(&self, key: &HashBinary, object: usize) {
        let mut maps = self.maps();
        if maps.entries.get(key).is_some_and(|e| e.object == object) {
            maps.unlink(key);
        }
    }

    /// Records an origin fetch of `url` being written under `key`, until the returned guard
    /// drops (the fetch stored or abandoned).
    pub(crate) fn fill_started(
        self: &Arc<Self>,
        id: u64,
        key: HashBinary,
        url: &str,
        tags: &[Box<str>],
    ) -> FillGuard {
        self.maps().fills.insert(
            id,
            FillRecord {
                key,
                url: url.into(),
                tags: tags.into(),
            },
        );
        FillGuard {
            index: self.clone(),
            id,
        }
    }

    /// The keys of the stored variants of `url`.
    fn keys_of(&self, url: &str) -> Vec<HashBinary> {
        self.maps().urls.get(url).cloned().unwrap_or_default()
    }

    /// Entries indexed, URLs and tags: for tests and statistics.
    fn sizes(&self) -> (usize, usize, usize) {
        let maps = self.maps();
        (maps.entries.len(), maps.urls.len(), maps.tags.len())
    }
}

/// Keeps an origin fetch in the index while it is being written.
pub(crate) struct FillGuard {
    index: Arc<PurgeIndex>,
    id: u64,
}

impl Drop for FillGuard {
    fn drop(&mut self) {
        self.index.maps().fills.remove(&self.id);
    }
}

/// What the purge index holds, for `/cache/stats`-style reports and tests.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct PurgeIndexSize {
    /// Stored entries indexed.
    pub entries: usize,
    /// Distinct normalised URLs.
    pub urls: usize,
    /// Distinct tags.
    pub tags: usize,
}

impl CacheStorage {
    /// Tags stored responses with the values of these response headers (`edge.cache.
    /// tag_headers`), replacing the default `Surrogate-Key` and `Cache-Tag`. Names that are
    /// not valid header names are skipped (config validation rejects them first).
    pub fn with_tag_headers(mut self, names: &[String]) -> Self {
        self.tag_headers = names
            .iter()
            .filter_map(|n| HeaderName::from_bytes(n.as_bytes()).ok())
            .collect();
        self
    }

    /// Removes every stored entry `selector` matches, and keeps fetches of it in progress from
    /// being stored. `Url` and `Prefix` take normalised URLs (`cache_key::normalised_url`).
    pub fn purge_matching(&self, selector: PurgeSelector<'_>) -> PurgeCount {
        let mut count = PurgeCount::default();
        // Fetches in progress are few (one per miss being written): one look at all of them.
        let fills: Vec<HashBinary> = self
            .index
            .maps()
            .fills
            .values()
            .filter(|f| f.matches(selector))
            .map(|f| f.key)
            .collect();
        for key in &fills {
            count.in_flight += self.fills.discard_all(key) as u64;
        }
        loop {
            let keys = self.index.maps().take_batch(selector);
            if keys.is_empty() {
                break;
            }
            // With the index lock released: moka's listener takes it for each removal.
            for key in &keys {
                self.fills.discard_all(key);
                if self.objects.remove(key).is_some() {
                    count.purged += 1;
                }
            }
            if matches!(selector, PurgeSelector::Url(_)) {
                break;
            }
        }
        count
    }

    /// Whether some stored variant of the normalised `url` is fresh now.
    pub fn has_fresh(&self, url: &str) -> bool {
        let now = SystemTime::now();
        self.index
            .keys_of(url)
            .iter()
            .filter_map(|k| self.objects.get(k))
            .any(|object| object.meta.is_fresh(now))
    }

    /// How many entries, URLs and tags the purge index holds.
    pub fn purge_index_size(&self) -> PurgeIndexSize {
        self.objects.run_pending_tasks();
        let (entries, urls, tags) = self.index.sizes();
        PurgeIndexSize {
            entries,
            urls,
            tags,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(n: u8) -> HashBinary {
        [n; 16]
    }

    fn tags(list: &[&str]) -> Tags {
        list.iter().map(|t| Box::<str>::from(*t)).collect()
    }

    #[test]
    fn tags_split_on_spaces_and_commas_and_are_bounded() {
        let mut headers = HeaderMap::new();
        headers.insert("surrogate-key", "a b,c  a".parse().unwrap());
        headers.append("cache-tag", "d, e".parse().unwrap());
        headers.insert("other", "x".parse().unwrap());
        let names = [
            HeaderName::from_static("surrogate-key"),
            HeaderName::from_static("cache-tag"),
        ];
        assert_eq!(tags_of(&headers, &names), tags(&["a", "b", "c", "d", "e"]));

        let many: Vec<String> = (0..200).map(|i| format!("t{i}")).collect();
        let long = "x".repeat(MAX_TAG_LEN + 1);
        headers.insert(
            "surrogate-key",
            format!("{long} {}", many.join(" ")).parse().unwrap(),
        );
        let got = tags_of(&headers, &names);
        assert_eq!(got.len(), MAX_TAGS_PER_ENTRY);
        assert!(got.iter().all(|t| t.len() <= MAX_TAG_LEN));
    }

    #[test]
    fn entries_are_found_by_url_prefix_and_tag_and_taken_once() {
        let index = PurgeIndex::default();
        index.stored(key(1), Some("h/a"), Some(&tags(&["t1", "t2"])), 1);
        index.stored(key(2), Some("h/a"), Some(&tags(&["t1"])), 2); // a variant of h/a
        index.stored(key(3), Some("h/ab"), Some(&tags(&[])), 3);
        index.stored(key(4), Some("h/b"), Some(&tags(&["t2"])), 4);
        index.stored(key(5), Some("h2/a"), Some(&tags(&["t1"])), 5);
        let mut maps = index.maps();
        let mut by_url = maps.take_batch(PurgeSelector::Url("h/a"));
        by_url.sort();
        assert_eq!(by_url, vec![key(1), key(2)]);
        assert!(maps.take_batch(PurgeSelector::Url("h/a")).is_empty());
        // `h/a` is gone from the tag `t1` too.
        assert_eq!(maps.take_batch(PurgeSelector::Tag("t1")), vec![key(5)]);
        assert_eq!(maps.take_batch(PurgeSelector::Prefix("h/")).len(), 2);
        assert!(maps.take_batch(PurgeSelector::Prefix("h/")).is_empty());
        assert!(maps.take_batch(PurgeSelector::Tag("t2")).is_empty());
        assert!(maps.entries.is_empty() && maps.urls.is_empty() && maps.tags.is_empty());
    }

    #[test]
    fn a_prefix_stays_inside_its_range() {
        let index = PurgeIndex::default();
        for (i, url) in ["a/x", "a/y/1", "a/y/2", "a/z", "b/y"].iter().enumerate() {
            index.stored(key(i as u8), Some(url), None, i);
        }
        let mut maps = index.maps();
        let mut got = maps.take_batch(PurgeSelector::Prefix("a/y/"));
        got.sort();
        assert_eq!(got, vec![key(1), key(2)]);
        assert_eq!(maps.entries.len(), 3);
    }

    #[test]
    fn large_purges_come_in_batches() {
        let index = PurgeIndex::default();
        let n = PURGE_BATCH + 10;
        for i in 0..n {
            let mut k = [0u8; 16];
            k[..8].copy_from_slice(&(i as u64).to_le_bytes());
            index.stored(k, Some(&format!("h/{i}")), Some(&tags(&["all"])), i);
        }
        let mut maps = index.maps();
        assert_eq!(
            maps.take_batch(PurgeSelector::Tag("all")).len(),
            PURGE_BATCH
        );
        assert_eq!(maps.take_batch(PurgeSelector::Tag("all")).len(), 10);
        assert!(maps.take_batch(PurgeSelector::Tag("all")).is_empty());
        assert!(maps.urls.is_empty());
    }

    #[test]
    fn eviction_unlinks_only_the_entry_it_names() {
        let index = PurgeIndex::default();
        index.stored(key(1), Some("h/a"), Some(&tags(&["t"])), 10);
        // Replaced by a newer entry: the old one's eviction leaves the new one indexed.
        index.stored(key(1), Some("h/a"), Some(&tags(&["u"])), 11);
        index.removed(&key(1), 10);
        assert_eq!(index.sizes(), (1, 1, 1));
        assert_eq!(index.keys_of("h/a"), vec![key(1)]);
        // The old tag went with the old entry.
        assert!(index.maps().take_batch(PurgeSelector::Tag("t")).is_empty());
        index.removed(&key(1), 11);
        assert_eq!(index.sizes(), (0, 0, 0));
    }

    #[test]
    fn a_refreshed_entry_keeps_its_url_and_tags() {
        let index = PurgeIndex::default();
        index.stored(key(1), Some("h/a"), Some(&tags(&["t"])), 10);
        index.stored(key(1), None, None, 11);
        assert_eq!(
            index.maps().take_batch(PurgeSelector::Tag("t")),
            vec![key(1)]
        );
        // Nothing known about a key and no URL given: not indexed.
        index.stored(key(2), None, None, 12);
        assert_eq!(index.sizes(), (0, 0, 0));
    }

    #[test]
    fn fills_are_recorded_until_their_guard_drops() {
        let index = Arc::new(PurgeIndex::default());
        let guard = index.fill_started(7, key(1), "h/a", &tags(&["t"]));
        {
            let maps = index.maps();
            let fill = maps.fills.get(&7).unwrap();
            assert!(fill.matches(PurgeSelector::Url("h/a")));
            assert!(fill.matches(PurgeSelector::Prefix("h/")));
            assert!(fill.matches(PurgeSelector::Tag("t")));
            assert!(!fill.matches(PurgeSelector::Tag("u")));
            assert!(!fill.matches(PurgeSelector::Url("h/ab")));
        }
        drop(guard);
        assert!(index.maps().fills.is_empty());
    }

    /// The index and moka together, through the storage's own write path.
    mod with_storage {
        use super::super::super::CacheStorage;
        use super::super::{PurgeCount, PurgeSelector};
        use bytes::Bytes;
        use cdn_config::Eviction;
        use pingora_cache::trace::Span;
        use pingora_cache::{CacheKey, CacheMeta, Storage};
        use pingora_http::ResponseHeader;
        use std::time::{Duration, SystemTime};

        fn leak(storage: CacheStorage) -> &'static CacheStorage {
            Box::leak(Box::new(storage))
        }

        fn meta(tags: &str) -> CacheMeta {
            let now = SystemTime::now();
            let mut header = ResponseHeader::build(200, None).unwrap();
            if !tags.is_empty() {
                header.insert_header("surrogate-key", tags).unwrap();
            }
            CacheMeta::new(now + Duration::from_secs(60), now, 0, 0, header)
        }

        fn key(url: &str, variant: Option<u8>) -> CacheKey {
            let mut key = CacheKey::new(url, "");
            if let Some(v) = variant {
                key.set_variance_key([v; 16]);
            }
            key
        }

        async fn store(s: &'static CacheStorage, key: &CacheKey, tags: &str, body: usize) {
            let trace = Span::inactive().handle();
            let mut miss = s.get_miss_handler(key, &meta(tags), &trace).await.unwrap();
            miss.write_body(Bytes::from(vec![b'x'; body]), true)
                .await
                .unwrap();
            miss.finish().await.unwrap();
        }

        #[tokio::test]
        async fn purges_remove_every_variant_and_count_what_went() {
            let s = leak(CacheStorage::new(16 << 20, 1 << 20, Eviction::Lru));
            store(s, &key("h/a", None), "red", 10).await;
            store(s, &key("h/a", Some(1)), "red", 10).await;
            store(s, &key("h/a/b", None), "blue", 10).await;
            store(s, &key("h/c", None), "red blue", 10).await;
            store(s, &key("g/a", None), "", 10).await;
            assert!(s.has_fresh("h/a"));
            assert_eq!(s.purge_index_size().entries, 5);

            let url = s.purge_matching(PurgeSelector::Url("h/a"));
            assert_eq!(
                url,
                PurgeCount {
                    purged: 2,
                    in_flight: 0
                }
            );
            assert!(!s.has_fresh("h/a"));
            assert!(!s.contains(&key("h/a", Some(1))));
            assert!(s.contains(&key("h/a/b", None)));
            assert_eq!(s.purge_matching(PurgeSelector::Url("h/a")).purged, 0);

            assert_eq!(s.purge_matching(PurgeSelector::Tag("blue")).purged, 2);
            assert_eq!(s.purge_matching(PurgeSelector::Prefix("h/")).purged, 0);
            assert_eq!(s.purge_matching(PurgeSelector::Prefix("g/")).purged, 1);
            assert_eq!(s.stats().entries, 0);
            assert_eq!(s.purge_index_size(), Default::default());
        }

        #[tokio::test]
        async fn evicted_entries_leave_the_index() {
            // Room for about 16 entries of 64 KiB.
            let s = leak(CacheStorage::new(1 << 20, 1 << 20, Eviction::Lru));
            for i in 0..100 {
                store(s, &key(&format!("h/{i}"), None), "all", 64 << 10).await;
            }
            let stats = s.stats();
            let index = s.purge_index_size();
            assert!(stats.evictions > 0);
            assert_eq!(index.entries as u64, stats.entries);
            assert_eq!(index.urls as u64, stats.entries);
            assert_eq!(
                s.purge_matching(PurgeSelector::Tag("all")).purged,
                stats.entries
            );
        }

        #[tokio::test]
        async fn a_purged_fetch_in_progress_is_not_stored() {
            let s = leak(CacheStorage::new(16 << 20, 1 << 20, Eviction::Lru));
            let trace = Span::inactive().handle();
            let k = key("h/slow", None);
            let mut miss = s.get_miss_handler(&k, &meta("t"), &trace).await.unwrap();
            miss.write_body(Bytes::from_static(b"old"), false)
                .await
                .unwrap();
            let count = s.purge_matching(PurgeSelector::Tag("t"));
            assert_eq!(
                count,
                PurgeCount {
                    purged: 0,
                    in_flight: 1
                }
            );
            miss.finish().await.unwrap();
            assert!(!s.contains(&k));
            assert_eq!(s.purge_index_size(), Default::default());
        }

        #[tokio::test]
        async fn tag_headers_come_from_config() {
            let s = leak(
                CacheStorage::new(16 << 20, 1 << 20, Eviction::Lru)
                    .with_tag_headers(&["X-Tags".to_string()]),
            );
            let trace = Span::inactive().handle();
            let now = SystemTime::now();
            let mut header = ResponseHeader::build(200, None).unwrap();
            header.insert_header("x-tags", "p q").unwrap();
            header.insert_header("surrogate-key", "r").unwrap();
            let m = CacheMeta::new(now + Duration::from_secs(60), now, 0, 0, header);
            let mut miss = s
                .get_miss_handler(&key("h/t", None), &m, &trace)
                .await
                .unwrap();
            miss.write_body(Bytes::from_static(b"x"), true)
                .await
                .unwrap();
            miss.finish().await.unwrap();
            assert_eq!(s.purge_matching(PurgeSelector::Tag("r")).purged, 0);
            assert_eq!(s.purge_matching(PurgeSelector::Tag("q")).purged, 1);
        }
    }
}
