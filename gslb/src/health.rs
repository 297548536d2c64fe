//! Active health checks of the edges: `GET health_url` every `interval`, `fall` failures in a
//! row take an edge out, `rise` successes bring it back; the `load` figure of the edge's
//! `/healthz` JSON drives load shedding with a low and a high watermark (NS1's "shed load").
//!
//! One task per edge; the probe itself is a blocking `ureq` call on tokio's blocking pool,
//! bounded by `timeout`. The counters live behind a mutex that only the probes (and the admin
//! API) take; each change publishes a new [`HealthView`] into the [`EdgeChoice`], which the
//! query path reads without a lock.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use cdn_config::GslbHealthConfig;
use serde_json::json;
use tokio::task::JoinHandle;

use crate::answer::Gslb;
use crate::choice::{EdgeStatus, HealthView};
use crate::metrics::GslbMetrics;

/// Largest health body read: a `/healthz` answer is a few hundred bytes.
const MAX_BODY: u64 = 64 * 1024;

/// The probe history of one edge.
#[derive(Clone, Debug, Default)]
struct Tracker {
    status: EdgeStatus,
    good_in_a_row: u32,
    bad_in_a_row: u32,
    probes: u64,
    failures: u64,
    last_error: Option<String>,
}

impl Tracker {
    /// Folds one probe result in. Returns whether the published status changed.
    fn record(&mut self, result: Result<f64, String>, health: &GslbHealthConfig) -> bool {
        let before = self.status;
        self.probes += 1;
        match result {
            Ok(load) => {
                self.good_in_a_row = self.good_in_a_row.saturating_add(1);
                self.bad_in_a_row = 0;
                self.last_error = None;
                self.status.load = load;
                if !self.status.up && self.good_in_a_row >= health.rise {
                    self.status.up = true;
                }
                if load >= health.load_high {
                    self.status.shedding = true;
                } else if load <= health.load_low {
                    self.status.shedding = false;
                }
            }
            Err(why) => {
                self.failures += 1;
                self.bad_in_a_row = self.bad_in_a_row.saturating_add(1);
                self.good_in_a_row = 0;
                self.last_error = Some(why);
                if self.status.up && self.bad_in_a_row >= health.fall {
                    self.status.up = false;
                }
            }
        }
        self.status != before
    }
}

/// The running health checks of one [`Gslb`]. Dropping it stops them (a reload replaces it).
pub struct HealthChecker {
    trackers: Arc<Mutex<Vec<Tracker>>>,
    names: Vec<String>,
    tasks: Vec<JoinHandle<()>>,
}

impl Drop for HealthChecker {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

impl HealthChecker {
    /// Starts probing every edge of `gslb` that has a health URL (when checks are enabled).
    /// Must be called inside a tokio runtime.
    pub fn start(gslb: Arc<Gslb>, metrics: Arc<GslbMetrics>) -> HealthChecker {
        let health = gslb.config().health.clone();
        let view = gslb.choice().health();
        let trackers: Vec<Tracker> = view
            .edges
            .iter()
            .map(|s| Tracker {
                status: *s,
                ..Tracker::default()
            })
            .collect();
        let names: Vec<String> = gslb
            .choice()
            .edges()
            .iter()
            .map(|e| e.name.clone())
            .collect();
        for (name, t) in names.iter().zip(&trackers) {
            metrics.edge(name, t.status.up, t.status.load, t.status.shedding);
        }
        let trackers = Arc::new(Mutex::new(trackers));
        let mut tasks = Vec::new();
        if health.enabled {
            for (index, edge) in gslb.config().edges.iter().enumerate() {
                let Some(url) = edge.health_url.clone() else {
                    continue;
                };
                tasks.push(tokio::spawn(probe_loop(
                    index,
                    url,
                    health.clone(),
                    Arc::clone(&gslb),
                    Arc::clone(&trackers),
                    Arc::clone(&metrics),
                )));
            }
        }
        HealthChecker {
            trackers,
            names,
            tasks,
        }
    }

    /// Every edge's health and probe counters, for the admin API.
    pub fn report(&self) -> serde_json::Value {
        let trackers = self.trackers.lock().unwrap_or_else(|e| e.into_inner());
        self.names
            .iter()
            .zip(trackers.iter())
            .map(|(name, t)| {
                json!({
                    "edge": name,
                    "up": t.status.up,
                    "load": t.status.load,
                    "shedding": t.status.shedding,
                    "probes": t.probes,
                    "failures": t.failures,
                    "last_error": t.last_error,
                })
            })
            .collect()
    }
}

async fn probe_loop(
    index: usize,
    url: String,
    health: GslbHealthConfig,
    gslb: Arc<Gslb>,
    trackers: Arc<Mutex<Vec<Tracker>>>,
    metrics: Arc<GslbMetrics>,
) {
    let timeout = health.timeout.get();
    let agent = ureq::AgentBuilder::new()
        .timeout(timeout)
        .max_idle_connections(0)
        .build();
    let name = gslb
        .choice()
        .edges()
        .get(index)
        .map(|e| e.name.clone())
        .unwrap_or_default();
    let mut ticker = tokio::time::interval(health.interval.get());
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        let (agent_, url_) = (agent.clone(), url.clone());
        let result = match tokio::time::timeout(
            timeout + Duration::from_millis(100),
            tokio::task::spawn_blocking(move || probe(&agent_, &url_)),
        )
        .await
        {
            Ok(Ok(result)) => result,
            Ok(Err(e)) => Err(format!("probe task failed: {e}")),
            Err(_) => Err(format!("no answer within {}ms", timeout.as_millis())),
        };
        let published = {
            let mut all = trackers.lock().unwrap_or_else(|e| e.into_inner());
            let Some(tracker) = all.get_mut(index) else {
                return;
            };
            let was_up = tracker.status.up;
            let changed = tracker.record(result, &health);
            let status = tracker.status;
            if was_up && !status.up {
                tracing::warn!(edge = %name, url = %url, error = ?tracker.last_error, "edge is down: no longer answered");
            } else if !was_up && status.up {
                tracing::info!(edge = %name, "edge is up again");
            }
            metrics.edge(&name, status.up, status.load, status.shedding);
            changed.then(|| HealthView {
                edges: all.iter().map(|t| t.status).collect(),
            })
        };
        if let Some(view) = published {
            gslb.choice().publish(view);
        }
    }
}

/// One probe: the edge's load (0 to 1) if it answered 2xx, else why not. A body without a
/// `load` figure (or not JSON) counts as load 0: health alone still works.
fn probe(agent: &ureq::Agent, url: &str) -> Result<f64, String> {
    let response = agent.get(url).call().map_err(|e| match e {
        ureq::Error::Status(code, _) => format!("status {code}"),
        ureq::Error::Transport(t) => t.to_string(),
    })?;
    let mut body = String::new();
    std::io::Read::read_to_string(
        &mut std::io::Read::take(response.into_reader(), MAX_BODY),
        &mut body,
    )
    .map_err(|e| format!("reading the body: {e}"))?;
    let load = serde_json::from_str::<serde_json::Value>(&body)
        .ok()
        .and_then(|v| v.get("load")?.as_f64())
        .unwrap_or(0.0);
    Ok(if load.is_finite() {
        load.clamp(0.0, 1.0)
    } else {
        0.0
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rise_fall_and_watermarks() {
        let health = GslbHealthConfig {
            rise: 2,
            fall: 3,
            load_low: 0.5,
            load_high: 0.9,
            ..GslbHealthConfig::default()
        };
        let mut t = Tracker::default();
        assert!(t.status.up);
        assert!(!t.record(Err("refused".into()), &health));
        assert!(!t.record(Err("refused".into()), &health));
        assert!(
            t.record(Err("refused".into()), &health),
            "down after fall = 3"
        );
        assert!(!t.status.up);
        t.record(Ok(0.1), &health);
        assert!(!t.status.up, "one good probe is not enough");
        assert!(t.record(Ok(0.1), &health));
        assert!(t.status.up, "up after rise = 2");
        t.record(Ok(0.95), &health);
        assert!(t.status.shedding);
        t.record(Ok(0.7), &health);
        assert!(t.status.shedding, "between the watermarks: still shedding");
        t.record(Ok(0.4), &health);
        assert!(!t.status.shedding);
        assert_eq!(t.probes, 8);
        assert_eq!(t.failures, 3);
    }
}
