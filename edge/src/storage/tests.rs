use super::*;
use bytes::Bytes;
use pingora_cache::trace::Span;
use pingora_http::ResponseHeader;

fn leak(storage: CacheStorage) -> &'static CacheStorage {
    Box::leak(Box::new(storage))
}

fn meta(ttl: u64) -> CacheMeta {
    let now = SystemTime::now();
    let mut header = ResponseHeader::build(200, None).unwrap();
    header.insert_header("etag", "\"v1\"").unwrap();
    CacheMeta::new(now + Duration::from_secs(ttl), now, 0, 0, header)
}

fn key(url: &str) -> CacheKey {
    CacheKey::new(url, "")
}

async fn store(storage: &'static CacheStorage, url: &str, body: &[u8]) {
    let trace = Span::inactive().handle();
    let mut miss = storage
        .get_miss_handler(&key(url), &meta(60), &trace)
        .await
        .unwrap();
    for chunk in body.chunks(1000) {
        miss.write_body(Bytes::copy_from_slice(chunk), false)
            .await
            .unwrap();
    }
    miss.finish().await.unwrap();
}

async fn read_all(hit: &mut HitHandler) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    while let Some(b) = hit.read_body().await? {
        out.extend_from_slice(&b);
    }
    Ok(out)
}

async fn lookup(storage: &'static CacheStorage, url: &str) -> Option<(CacheMeta, HitHandler)> {
    storage
        .lookup(&key(url), &Span::inactive().handle())
        .await
        .unwrap()
}

fn body(n: usize, seed: u8) -> Vec<u8> {
    (0..n)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

#[tokio::test]
async fn stored_body_reads_back_whole_and_by_range() {
    let s = leak(CacheStorage::new(16 << 20, 1 << 20, Eviction::Lru));
    let data = body(5000, 7);
    store(s, "/a", &data).await;
    let (m, mut hit) = lookup(s, "/a").await.expect("stored");
    assert!(m.is_fresh(SystemTime::now()));
    assert_eq!(read_all(&mut hit).await.unwrap(), data);

    let (_, mut hit) = lookup(s, "/a").await.unwrap();
    assert!(hit.can_seek());
    hit.seek(999, Some(2001)).unwrap();
    assert_eq!(read_all(&mut hit).await.unwrap(), &data[999..2001]);
    hit.seek(4990, None).unwrap();
    assert_eq!(read_all(&mut hit).await.unwrap(), &data[4990..]);
    assert!(hit.seek(5000, None).is_err());
}

#[tokio::test]
async fn readers_follow_a_fill_as_it_arrives() {
    let s = leak(CacheStorage::new(16 << 20, 1 << 20, Eviction::Lru));
    let trace = Span::inactive().handle();
    let mut miss = s
        .get_miss_handler(&key("/f"), &meta(60), &trace)
        .await
        .unwrap();
    miss.write_body(Bytes::from_static(b"first "), false)
        .await
        .unwrap();

    // A coalesced reader joins while the origin is still sending.
    let (_, mut reader) = lookup(s, "/f").await.expect("fill visible to readers");
    assert_eq!(
        reader.read_body().await.unwrap().unwrap(),
        Bytes::from_static(b"first ")
    );

    // The next read waits for the next chunk rather than ending.
    // A zero timeout polls the read once: it must be pending, not ended.
    let pending = tokio::time::timeout(Duration::ZERO, reader.read_body()).await;
    assert!(
        pending.is_err(),
        "reader must wait for more body, not see an end"
    );

    miss.write_body(Bytes::from_static(b"second"), true)
        .await
        .unwrap();
    miss.finish().await.unwrap();
    assert_eq!(
        reader.read_body().await.unwrap().unwrap(),
        Bytes::from_static(b"second")
    );
    assert!(reader.read_body().await.unwrap().is_none());
    assert!(s.contains(&key("/f")));
}

#[tokio::test]
async fn a_writer_that_dies_mid_body_fails_its_readers() {
    let s = leak(CacheStorage::new(16 << 20, 1 << 20, Eviction::Lru));
    let trace = Span::inactive().handle();
    let mut miss = s
        .get_miss_handler(&key("/d"), &meta(60), &trace)
        .await
        .unwrap();
    miss.write_body(Bytes::from_static(b"partial"), false)
        .await
        .unwrap();
    let (_, mut reader) = lookup(s, "/d").await.unwrap();
    drop(miss);
    assert_eq!(
        reader.read_body().await.unwrap().unwrap(),
        Bytes::from_static(b"partial")
    );
    assert!(
        reader.read_body().await.is_err(),
        "a truncated body must not look complete"
    );
    assert!(lookup(s, "/d").await.is_none(), "nothing is stored");
    assert_eq!(s.stats().fills_in_progress, 0);
}

#[tokio::test]
async fn an_object_over_the_limit_streams_to_its_readers_but_is_not_stored() {
    let s = leak(CacheStorage::new(16 << 20, 4096, Eviction::Lru));
    let trace = Span::inactive().handle();
    let data = body(20_000, 3);
    let mut miss = s
        .get_miss_handler(&key("/big"), &meta(60), &trace)
        .await
        .unwrap();
    let (_, mut reader) = lookup(s, "/big").await.unwrap();
    let read = tokio::spawn(async move { read_all(&mut reader).await.unwrap() });
    for chunk in data.chunks(1000) {
        miss.write_body(Bytes::copy_from_slice(chunk), false)
            .await
            .unwrap();
        tokio::task::yield_now().await;
    }
    assert!(
        lookup(s, "/big").await.is_none(),
        "no new reader joins a pass-through"
    );
    miss.finish().await.unwrap();
    assert_eq!(read.await.unwrap(), data);
    assert!(!s.contains(&key("/big")));
}

#[tokio::test]
async fn the_cache_stays_within_max_size() {
    let max = 2u64 << 20;
    for policy in [Eviction::Lru, Eviction::Lfu] {
        let s = leak(CacheStorage::new(max, 256 << 10, policy));
        let object = body(10_000, 1);
        let mut written = 0u64;
        let mut i = 0;
        while written < 5 * max {
            store(s, &format!("/obj/{i}"), &object).await;
            written += object.len() as u64;
            i += 1;
        }
        let stats = s.stats();
        assert!(
            stats.bytes <= max,
            "{policy:?}: {} bytes stored > {max}",
            stats.bytes
        );
        assert!(
            stats.bytes > max / 2,
            "{policy:?}: the cache should be well used, {stats:?}"
        );
        assert!(stats.evictions > 0, "{policy:?}: {stats:?}");
    }
}

/// A hot set read often, then a long scan of one-off objects: LFU (TinyLFU) keeps the hot set,
/// LRU lets the scan flush it.
#[tokio::test]
async fn lru_and_lfu_keep_different_survivors_after_a_scan() {
    async fn hot_survivors(policy: Eviction) -> usize {
        let s = leak(CacheStorage::new(1 << 20, 64 << 10, policy));
        let object = body(8000, 9); // ~8 KiB: the cache holds about 120
        let hot: Vec<String> = (0..40).map(|i| format!("/hot/{i}")).collect();
        for url in &hot {
            store(s, url, &object).await;
        }
        for _ in 0..20 {
            for url in &hot {
                assert!(lookup(s, url).await.is_some());
            }
        }
        s.stats();
        for i in 0..2000 {
            store(s, &format!("/scan/{i}"), &object).await;
        }
        s.stats();
        let mut survivors = 0;
        for url in &hot {
            if s.contains(&key(url)) {
                survivors += 1;
            }
        }
        survivors
    }
    let lru = hot_survivors(Eviction::Lru).await;
    let lfu = hot_survivors(Eviction::Lfu).await;
    assert_eq!(lru, 0, "LRU: the scan should flush the hot set");
    assert!(
        lfu >= 36,
        "LFU: the hot set should survive the scan, {lfu} of 40 did"
    );
}

#[tokio::test]
async fn stale_entries_are_kept_long_only_if_they_can_be_revalidated() {
    let s = leak(CacheStorage::new(16 << 20, 1 << 20, Eviction::Lru));
    let trace = Span::inactive().handle();
    // Stale for longer than the grace of entries without a validator.
    let past = SystemTime::now() - Duration::from_secs(61);
    for (url, etag) in [("/with-etag", true), ("/without", false)] {
        let mut header = ResponseHeader::build(200, None).unwrap();
        if etag {
            header.insert_header("etag", "\"x\"").unwrap();
        }
        let stale = CacheMeta::new(past, past, 0, 0, header);
        let miss = s.get_miss_handler(&key(url), &stale, &trace).await.unwrap();
        miss.finish().await.unwrap();
    }
    s.stats();
    assert!(
        lookup(s, "/with-etag").await.is_some(),
        "kept for revalidation"
    );
    assert!(lookup(s, "/without").await.is_none(), "useless once stale");
}

#[tokio::test]
async fn purge_removes_and_expire_marks_stale() {
    let s = leak(CacheStorage::new(16 << 20, 1 << 20, Eviction::Lru));
    let trace = Span::inactive().handle();
    store(s, "/p", b"x").await;
    store(s, "/e", b"y").await;
    let k = key("/p").to_compact();
    let out = s
        .purge(PurgeTarget::Active(&k), PurgeType::Invalidation, &trace)
        .await
        .unwrap();
    assert_eq!(out, PurgeOutcome::Purged(None));
    assert!(lookup(s, "/p").await.is_none());
    let k = key("/e").to_compact();
    assert_eq!(
        s.expire(PurgeTarget::Active(&k), &trace).await.unwrap(),
        PurgeOutcome::Expired
    );
    let (m, mut hit) = lookup(s, "/e").await.unwrap();
    assert!(!m.is_fresh(SystemTime::now()));
    assert_eq!(read_all(&mut hit).await.unwrap(), b"y");
}
