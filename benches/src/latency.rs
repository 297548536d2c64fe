//! Latency and throughput recording: one HDR histogram for the whole run and a coarse one per
//! second for the timeline (what `--plot` draws), filled by every load task without contention.
//!
//! Each task records into its own histograms and merges them into the shared [`Timeline`] once
//! per second of the run (and at its end), so the hot path takes no lock.

use hdrhistogram::Histogram;
use serde::Serialize;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Largest latency recorded exactly: one hour, in microseconds (longer ones are clamped).
const MAX_MICROS: u64 = 3_600_000_000;

/// A histogram of latencies in microseconds, precise to `sigfig` significant digits.
fn histogram(sigfig: u8) -> Histogram<u64> {
    Histogram::new_with_bounds(1, MAX_MICROS, sigfig).expect("constant histogram bounds are valid")
}

/// What happened in one second of the run.
#[derive(Clone)]
pub struct Second {
    /// Latencies of the answers that completed in this second (2 significant digits).
    pub latency: Histogram<u64>,
    /// Answers completed.
    pub answers: u64,
    /// Failed requests (no answer).
    pub errors: u64,
    /// Body bytes received.
    pub bytes: u64,
}

impl Second {
    fn new() -> Self {
        Self {
            latency: histogram(2),
            answers: 0,
            errors: 0,
            bytes: 0,
        }
    }

    fn add(&mut self, other: &Second) {
        // Both have the same bounds, so adding cannot fail.
        let _ = self.latency.add(&other.latency);
        self.answers += other.answers;
        self.errors += other.errors;
        self.bytes += other.bytes;
    }
}

/// The run's per-second record and its full-precision latency histogram, merged from all tasks.
pub struct Timeline {
    start: Instant,
    inner: Mutex<TimelineInner>,
}

struct TimelineInner {
    seconds: Vec<Second>,
    total: Histogram<u64>,
}

impl Timeline {
    /// An empty timeline whose second 0 starts at `start`.
    pub fn new(start: Instant) -> Self {
        Self {
            start,
            inner: Mutex::new(TimelineInner {
                seconds: Vec::new(),
                total: histogram(3),
            }),
        }
    }

    fn second_of(&self, at: Instant) -> usize {
        at.saturating_duration_since(self.start).as_secs() as usize
    }

    fn merge(&self, second: usize, part: &Second, total: &Histogram<u64>) {
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        while inner.seconds.len() <= second {
            inner.seconds.push(Second::new());
        }
        inner.seconds[second].add(part);
        let _ = inner.total.add(total);
    }

    /// The merged results: the whole run's histogram and the per-second record.
    pub fn finish(self) -> (Histogram<u64>, Vec<Second>) {
        let inner = self.inner.into_inner().unwrap_or_else(|p| p.into_inner());
        (inner.total, inner.seconds)
    }
}

/// One task's recorder: keeps the current second locally and hands it to the [`Timeline`] when
/// the second is over.
pub struct Recorder<'a> {
    timeline: &'a Timeline,
    second: usize,
    current: Second,
    total: Histogram<u64>,
}

impl<'a> Recorder<'a> {
    /// A recorder feeding `timeline`.
    pub fn new(timeline: &'a Timeline) -> Self {
        Self {
            timeline,
            second: 0,
            current: Second::new(),
            total: histogram(3),
        }
    }

    fn roll(&mut self, at: Instant) {
        let second = self.timeline.second_of(at);
        if second != self.second {
            self.flush();
            self.second = second;
        }
    }

    /// An answer that arrived at `done`, `latency` after its (intended) send time.
    pub fn answer(&mut self, done: Instant, latency: Duration, bytes: u64) {
        self.roll(done);
        let micros = (latency.as_micros() as u64).clamp(1, MAX_MICROS);
        self.current.latency.saturating_record(micros);
        self.total.saturating_record(micros);
        self.current.answers += 1;
        self.current.bytes += bytes;
    }

    /// A request that failed at `done` without an answer.
    pub fn error(&mut self, done: Instant) {
        self.roll(done);
        self.current.errors += 1;
    }

    /// Hands what this recorder holds to the timeline.
    pub fn flush(&mut self) {
        if self.current.answers + self.current.errors > 0 {
            self.timeline.merge(self.second, &self.current, &self.total);
            self.current = Second::new();
            self.total.reset();
        }
    }
}

impl Drop for Recorder<'_> {
    fn drop(&mut self) {
        self.flush();
    }
}

/// Latency percentiles in milliseconds, as reports print them.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Percentiles {
    /// Mean.
    pub mean: f64,
    /// Median.
    pub p50: f64,
    /// 90th percentile.
    pub p90: f64,
    /// 99th percentile.
    pub p99: f64,
    /// 99.9th percentile.
    pub p99_9: f64,
    /// Slowest.
    pub max: f64,
}

impl Percentiles {
    /// The percentiles of a microsecond histogram, in milliseconds (zeros when empty).
    pub fn of(h: &Histogram<u64>) -> Self {
        if h.is_empty() {
            return Self::default();
        }
        let ms = |us: u64| us as f64 / 1000.0;
        Self {
            mean: h.mean() / 1000.0,
            p50: ms(h.value_at_quantile(0.50)),
            p90: ms(h.value_at_quantile(0.90)),
            p99: ms(h.value_at_quantile(0.99)),
            p99_9: ms(h.value_at_quantile(0.999)),
            max: ms(h.max()),
        }
    }
}

impl std::fmt::Display for Percentiles {
    /// The summary table's latency line: `p50 …  p90 …  p99 …  p99.9 …  max …  (mean …)`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "p50 {}  p90 {}  p99 {}  p99.9 {}  max {}  (mean {})",
            format_ms(self.p50),
            format_ms(self.p90),
            format_ms(self.p99),
            format_ms(self.p99_9),
            format_ms(self.max),
            format_ms(self.mean)
        )
    }
}

/// One second of a run, as reports and plots show it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SecondReport {
    /// Seconds since the start.
    pub second: usize,
    /// Answers completed in this second.
    pub answers: u64,
    /// Requests that failed in this second.
    pub errors: u64,
    /// Body bytes received in this second.
    pub bytes: u64,
    /// Median latency of this second's answers (ms).
    pub p50_ms: f64,
    /// 99th percentile (ms).
    pub p99_ms: f64,
    /// Slowest (ms).
    pub max_ms: f64,
}

/// The per-second record in report form.
pub fn timeline_report(seconds: &[Second]) -> Vec<SecondReport> {
    seconds
        .iter()
        .enumerate()
        .map(|(second, s)| {
            let p = Percentiles::of(&s.latency);
            SecondReport {
                second,
                answers: s.answers,
                errors: s.errors,
                bytes: s.bytes,
                p50_ms: p.p50,
                p99_ms: p.p99,
                max_ms: p.max,
            }
        })
        .collect()
}

/// Formats milliseconds with a unit that keeps 3 significant figures readable.
pub fn format_ms(ms: f64) -> String {
    if ms >= 1000.0 {
        format!("{:.2} s", ms / 1000.0)
    } else if ms >= 1.0 {
        format!("{ms:.2} ms")
    } else {
        format!("{:.0} µs", ms * 1000.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tasks_merge_into_seconds_and_total() {
        let start = Instant::now();
        let timeline = Timeline::new(start);
        {
            let mut a = Recorder::new(&timeline);
            let mut b = Recorder::new(&timeline);
            a.answer(start, Duration::from_millis(1), 10);
            b.answer(start, Duration::from_millis(3), 10);
            a.answer(
                start + Duration::from_millis(1500),
                Duration::from_millis(2),
                5,
            );
            b.error(start + Duration::from_millis(2500));
        }
        let (total, seconds) = timeline.finish();
        assert_eq!(total.len(), 3);
        assert_eq!(seconds.len(), 3);
        assert_eq!((seconds[0].answers, seconds[0].bytes), (2, 20));
        assert_eq!((seconds[1].answers, seconds[2].errors), (1, 1));
        let p = Percentiles::of(&total);
        assert!((p.max - 3.0).abs() < 0.01, "{p:?}");
        assert_eq!(format_ms(0.25), "250 µs");
        assert_eq!(format_ms(12.345), "12.35 ms");
    }
}
