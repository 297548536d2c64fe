//! Assembles an edge from its config: the storage, the proxy service on the client listeners,
//! the admin service and, when `[edge.pool.health]` is enabled, the health checker (a
//! background service), and when `[edge.prewarm]` lists URLs, the start-up prewarm (another
//! background service), hosted by one pingora [`Server`] that handles signals (SIGTERM:
//! graceful stop after `shutdown_grace`; SIGINT: immediate stop).

use crate::admin::AdminApi;
use crate::freshness::FreshnessPolicy;
use crate::health::{HealthChecker, HealthStates};
use crate::metrics::EdgeMetrics;
use crate::prewarm::{Prewarmer, StartupPrewarm};
use crate::proxy::{EdgeProxy, FixedHeaders, UncacheablePredictor};
use crate::route::RouteTable;
use crate::storage::CacheStorage;
use crate::upstream::OriginPool;
use cdn_config::EdgeConfig;
use pingora_cache::lock::{CacheKeyLockImpl, CacheLock};
use pingora_core::server::configuration::ServerConf;
use pingora_core::server::Server;
use pingora_core::services::background::background_service;
use pingora_core::services::listening::Service;
use std::sync::Arc;

/// Shard capacity of the uncacheable-key predictor (32 shards).
const PREDICTOR_SHARD_CAPACITY: usize = 4096;

/// A ready-to-run edge.
pub struct Edge {
    server: Server,
    /// The edge's cache, for inspection.
    pub storage: &'static CacheStorage,
}

impl Edge {
    /// Builds the edge described by `config`. Listeners are bound when it runs.
    pub fn new(config: &EdgeConfig) -> Self {
        let threads = if config.threads == 0 {
            std::thread::available_parallelism().map_or(2, |n| n.get())
        } else {
            config.threads
        };
        let grace = config.shutdown_grace.get();
        let conf = ServerConf {
            threads,
            // Measured both ways (benches/README.md): thread-per-core runtimes let one
            // descheduled thread stall all its connections (p99 4 to 62 ms under wrk on two
            // cores); work stealing keeps p99 at about 2.7 ms and serves more requests.
            work_stealing: true,
            grace_period_seconds: Some(grace.as_secs() + u64::from(grace.subsec_nanos() > 0)),
            graceful_shutdown_timeout_seconds: Some(5),
            // pingora's cap on tries per request (its loop counts tries, not retries). Ours is
            // `max_tries` (enforced by the proxy); the one extra lets pingora resend a request
            // whose reused keep-alive connection turned out closed.
            max_retries: config.pool.max_tries as usize + 1,
            // Each edge gets its own paths so that several can run on one machine.
            pid_file: std::env::temp_dir()
                .join(format!("cdn-edge-{}.pid", std::process::id()))
                .display()
                .to_string(),
            upgrade_sock: std::env::temp_dir()
                .join(format!("cdn-edge-{}.sock", std::process::id()))
                .display()
                .to_string(),
            ..ServerConf::default()
        };
        let mut server = Server::new_with_opt_and_conf(None, conf);
        server.bootstrap();

        let cache = &config.cache;
        let storage: &'static CacheStorage = Box::leak(Box::new(
            CacheStorage::new(
                cache.max_size.bytes(),
                cache.max_object_size.bytes(),
                cache.eviction,
            )
            .with_tag_headers(&cache.tag_headers),
        ));
        let lock: &'static CacheKeyLockImpl =
            Box::leak(CacheLock::new_boxed(cache.lock_timeout.get()));
        let predictor: &'static UncacheablePredictor = Box::leak(Box::new(
            UncacheablePredictor::new(PREDICTOR_SHARD_CAPACITY, None),
        ));
        let origins = Arc::new(OriginPool::from_config(&config.pool, &config.origins));
        let origin_names: Vec<String> = origins.origins().iter().map(|o| o.name.clone()).collect();
        let metrics = Arc::new(EdgeMetrics::new(&config.name, &origin_names));
        let health = &config.pool.health;
        let health_states = health
            .enabled
            .then(|| Arc::new(HealthStates::new(origin_names.len())));
        // A client that finds no origin left may be told to come back after the next round
        // of health checks (whole seconds, at least 1).
        let health_retry_after = health.enabled.then(|| {
            let interval = health.interval.get();
            (interval.as_secs() + u64::from(interval.subsec_nanos() > 0)).max(1)
        });

        let proxy = EdgeProxy {
            name: config.name.clone(),
            storage,
            lock,
            predictor,
            lock_timeout: cache.lock_timeout.get(),
            freshness: FreshnessPolicy {
                default_ttl: cache.default_ttl.get(),
                max_object_size: cache.max_object_size.bytes(),
                heuristic: cache.heuristic_freshness,
                heuristic_max_ttl: cache.heuristic_max_ttl.get(),
                stale_if_error: cache.stale_if_error.get(),
                stale_while_revalidate: cache.stale_while_revalidate.get(),
            },
            origins: origins.clone(),
            health_retry_after,
            metrics: metrics.clone(),
            access_log: config.access_log,
            headers: FixedHeaders::new(&config.name),
            routes: RouteTable::new(&config.routes, &config.trusted_proxies),
        };
        let mut proxy_service =
            pingora_proxy::http_proxy_service_with_name(&server.configuration, proxy, "edge proxy");
        for addr in &config.listen {
            proxy_service.add_tcp(&addr.to_string());
        }

        let prewarm = &config.prewarm;
        let prewarmer = Arc::new(Prewarmer::new(
            &config.listen,
            storage,
            prewarm.concurrency,
            prewarm.timeout.get(),
        ));
        let admin = AdminApi {
            name: config.name.clone(),
            metrics: metrics.clone(),
            storage,
            origins: origins.clone(),
            health: health_states.clone(),
            allow: config.admin.allow.clone(),
            max_body: usize::try_from(config.admin.max_body.bytes()).unwrap_or(usize::MAX),
            prewarm: prewarmer.clone(),
        };
        let mut admin_service = Service::new("edge admin".to_string(), admin);
        admin_service.add_tcp(&config.admin.listen.to_string());
        admin_service.threads = Some(1);

        server.add_service(proxy_service);
        server.add_service(admin_service);
        if !prewarm.urls.is_empty() || prewarm.file.is_some() {
            let startup = StartupPrewarm {
                prewarmer,
                urls: prewarm.urls.clone(),
                file: prewarm.file.clone(),
            };
            server.add_service(background_service("startup prewarm", startup));
        }
        if let Some(states) = health_states {
            // One thread of its own: probes never wait behind client traffic.
            let checker = HealthChecker::new(health, origins, states, metrics);
            server.add_service(background_service("origin health checks", checker));
        }
        Self { server, storage }
    }

    /// Runs until SIGTERM or SIGINT, then exits the process.
    pub fn run_forever(self) -> ! {
        self.server.run_forever()
    }
}
