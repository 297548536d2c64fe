//! The circuit breaker of one backend: stop sending requests to a backend that keeps failing,
//! give it a cool-down, then let a few probe requests find out whether it has recovered.
//!
//! ```text
//!            failure rate ≥ threshold over the window (≥ min_calls calls),
//!            or consecutive_failures failures in a row
//!   Closed ─────────────────────────────────────────────────────────────▶ Open
//!     ▲                                                                   │ cool_down passed
//!     │ half_open_probes successes                                        ▼ (next admit)
//!     └──────────────────────────────────────────────────────────────── HalfOpen
//!                                  any probe fails ──▶ Open (a new cool-down)
//! ```
//!
//! Written here rather than taken from a crate: recloser 1.4 is lock-free but keeps no
//! consecutive-failure rule and no probe permits, and failsafe 1.3 takes a mutex on every call
//! and closes on one half-open success. The check on the request path
//! ([`Breaker::admit`]) is one atomic load while closed (the common case); recording an outcome
//! takes this backend's own small mutex (never a lock shared between backends), which only the
//! origin-fetch path pays.
//!
//! Time is passed in (`now`), so the state machine is tested against a controlled clock.
//!
//! ```
//! use cdn_balance::{Admission, Breaker, BreakerSettings, BreakerState};
//! use std::sync::Arc;
//! use std::time::{Duration, Instant};
//!
//! let settings = BreakerSettings { consecutive_failures: 3, ..BreakerSettings::default() };
//! let t0 = Instant::now();
//! let breaker = Arc::new(Breaker::new(settings, t0));
//! for _ in 0..3 {
//!     breaker.record(false, false, t0);
//! }
//! assert_eq!(breaker.state(t0), BreakerState::Open);
//! assert!(matches!(breaker.admit(t0), Admission::Reject));
//! // After the cool-down, probes are let through.
//! let later = t0 + settings.cool_down;
//! assert!(matches!(breaker.admit(later), Admission::Probe(_)));
//! ```

use std::sync::atomic::{AtomicU32, AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

/// Most calls a breaker's sliding window holds.
pub const MAX_BREAKER_WINDOW: u32 = 10_000;

/// When a [`Breaker`] opens and how it recovers.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BreakerSettings {
    /// Calls in the sliding window whose failure rate is watched (the last `window` outcomes).
    pub window: u32,
    /// Outcomes the window must hold before the failure rate may open the breaker, so that
    /// two failures out of three calls do not count as a 66% failure rate.
    pub min_calls: u32,
    /// Failure share of the window (0 to 1) at which the breaker opens.
    pub failure_rate: f64,
    /// Failures in a row that open the breaker whatever the rate; `0` turns this rule off.
    pub consecutive_failures: u32,
    /// How long an open breaker rejects everything before admitting probes.
    pub cool_down: Duration,
    /// Probe requests a half-open breaker lets through at once; this many successes close it.
    pub half_open_probes: u32,
}

impl Default for BreakerSettings {
    /// resilience4j's shape at a CDN's scale: a 20-call window, open at 50% once 10 calls
    /// are in, or on 5 failures in a row; 10 s of cool-down; 3 probes.
    fn default() -> Self {
        Self {
            window: 20,
            min_calls: 10,
            failure_rate: 0.5,
            consecutive_failures: 5,
            cool_down: Duration::from_secs(10),
            half_open_probes: 3,
        }
    }
}

/// Where a [`Breaker`] is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BreakerState {
    /// Requests pass; outcomes are watched.
    Closed,
    /// Requests are rejected until the cool-down has passed.
    Open,
    /// A few probe requests pass; their outcomes decide between closed and open.
    HalfOpen,
}

impl BreakerState {
    /// All states, in the order of their numeric codes (0, 1, 2).
    pub const ALL: [BreakerState; 3] = [
        BreakerState::Closed,
        BreakerState::Open,
        BreakerState::HalfOpen,
    ];

    /// `closed`, `open` or `half_open`: the name used in metrics and the admin API.
    pub fn as_str(self) -> &'static str {
        match self {
            BreakerState::Closed => "closed",
            BreakerState::Open => "open",
            BreakerState::HalfOpen => "half_open",
        }
    }

    /// 0 for closed, 1 for open, 2 for half-open: the value of a state gauge.
    pub fn code(self) -> u8 {
        self as u8
    }

    fn from_code(code: u8) -> Self {
        match code {
            1 => BreakerState::Open,
            2 => BreakerState::HalfOpen,
            _ => BreakerState::Closed,
        }
    }
}

/// The answer of [`Breaker::admit`].
#[derive(Debug)]
#[must_use = "a rejected request must go elsewhere; a probe permit must live until its outcome is recorded"]
pub enum Admission {
    /// Closed: the request may go.
    Pass,
    /// Half-open: the request may go as a probe. Keep the permit until its outcome has been
    /// recorded (with `probe = true`); dropping it frees the probe slot.
    Probe(ProbePermit),
    /// Open, or half-open with every probe slot taken: send the request elsewhere.
    Reject,
}

impl Admission {
    /// Whether the request may go to this backend.
    pub fn admitted(&self) -> bool {
        !matches!(self, Admission::Reject)
    }
}

/// One of the probe slots of a half-open breaker, freed on drop.
#[derive(Debug)]
pub struct ProbePermit {
    breaker: Arc<Breaker>,
}

impl Drop for ProbePermit {
    fn drop(&mut self) {
        self.breaker.probes_out.fetch_sub(1, Ordering::AcqRel);
    }
}

/// The outcomes the breaker remembers: a ring of the last `window` calls.
#[derive(Debug)]
struct Window {
    failed: Box<[bool]>,
    next: usize,
    calls: u32,
    failures: u32,
    consecutive: u32,
    probe_successes: u32,
}

impl Window {
    fn new(size: u32) -> Self {
        Self {
            failed: vec![false; size.clamp(1, MAX_BREAKER_WINDOW) as usize].into_boxed_slice(),
            next: 0,
            calls: 0,
            failures: 0,
            consecutive: 0,
            probe_successes: 0,
        }
    }

    fn push(&mut self, failed: bool) {
        let len = self.failed.len();
        if self.calls as usize == len {
            if self.failed[self.next] {
                self.failures -= 1;
            }
        } else {
            self.calls += 1;
        }
        self.failed[self.next] = failed;
        self.next = (self.next + 1) % len;
        if failed {
            self.failures += 1;
            self.consecutive += 1;
        } else {
            self.consecutive = 0;
        }
    }

    fn clear(&mut self) {
        self.next = 0;
        self.calls = 0;
        self.failures = 0;
        self.consecutive = 0;
        self.probe_successes = 0;
    }
}

/// The circuit breaker of one backend. See the [module docs](self).
#[derive(Debug)]
pub struct Breaker {
    settings: BreakerSettings,
    /// The zero of the nanosecond clock in `reopen_at`.
    epoch: Instant,
    state: AtomicU8,
    /// When an open breaker starts admitting probes, in nanoseconds since `epoch`.
    reopen_at: AtomicU64,
    probes_out: AtomicU32,
    /// Times each state was entered, by state code.
    entered: [AtomicU64; 3],
    window: Mutex<Window>,
}

impl Breaker {
    /// A closed breaker. `now` is the zero of its clock: pass an `Instant` from the same clock
    /// to every later call.
    pub fn new(settings: BreakerSettings, now: Instant) -> Self {
        Self {
            settings,
            epoch: now,
            state: AtomicU8::new(BreakerState::Closed.code()),
            reopen_at: AtomicU64::new(0),
            probes_out: AtomicU32::new(0),
            entered: Default::default(),
            window: Mutex::new(Window::new(settings.window)),
        }
    }

    /// The settings it was made with.
    pub fn settings(&self) -> &BreakerSettings {
        &self.settings
    }

    fn nanos(&self, now: Instant) -> u64 {
        u64::try_from(now.saturating_duration_since(self.epoch).as_nanos()).unwrap_or(u64::MAX)
    }

    fn window(&self) -> MutexGuard<'_, Window> {
        // A panic while the window was held leaves counters, not broken invariants: keep going.
        self.window.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn enter(&self, state: BreakerState, window: &mut Window, now: Instant) {
        window.clear();
        if state == BreakerState::Open {
            let until = now + self.settings.cool_down;
            self.reopen_at.store(self.nanos(until), Ordering::Release);
        }
        self.state.store(state.code(), Ordering::Release);
        self.entered[state as usize].fetch_add(1, Ordering::Relaxed);
    }

    /// Whether a request may go to this backend now: the check on the request path.
    ///
    /// Closed: [`Admission::Pass`] (one atomic load). Open: [`Admission::Reject`], until the
    /// cool-down has passed, when the breaker turns half-open. Half-open: a
    /// [`ProbePermit`] while fewer than `half_open_probes` probes are out, else a rejection.
    #[inline]
    pub fn admit(self: &Arc<Self>, now: Instant) -> Admission {
        match BreakerState::from_code(self.state.load(Ordering::Acquire)) {
            BreakerState::Closed => Admission::Pass,
            BreakerState::Open => {
                if self.nanos(now) < self.reopen_at.load(Ordering::Acquire) {
                    return Admission::Reject;
                }
                {
                    let mut window = self.window();
                    if self.state.load(Ordering::Acquire) == BreakerState::Open.code()
                        && self.nanos(now) >= self.reopen_at.load(Ordering::Acquire)
                    {
                        self.enter(BreakerState::HalfOpen, &mut window, now);
                    }
                }
                self.admit_probe()
            }
            BreakerState::HalfOpen => self.admit_probe(),
        }
    }

    fn admit_probe(self: &Arc<Self>) -> Admission {
        if self.state.load(Ordering::Acquire) == BreakerState::Closed.code() {
            return Admission::Pass;
        }
        if self.state.load(Ordering::Acquire) != BreakerState::HalfOpen.code() {
            return Admission::Reject;
        }
        let out = self.probes_out.fetch_add(1, Ordering::AcqRel);
        let permit = ProbePermit {
            breaker: Arc::clone(self),
        };
        if out < self.settings.half_open_probes.max(1) {
            Admission::Probe(permit)
        } else {
            drop(permit);
            Admission::Reject
        }
    }

    /// Whether [`admit`](Self::admit) would let a request through now, without taking a
    /// probe slot or changing state: for "is any backend left?" questions.
    pub fn would_admit(&self, now: Instant) -> bool {
        match self.state(now) {
            BreakerState::Closed => true,
            BreakerState::Open => false,
            BreakerState::HalfOpen => {
                self.probes_out.load(Ordering::Acquire) < self.settings.half_open_probes.max(1)
            }
        }
    }

    /// Records the outcome of a request this breaker admitted (`ok`: the backend answered
    /// and not with a 5xx; `probe`: it was admitted with a [`ProbePermit`]). Returns the new
    /// state when this outcome changed it.
    ///
    /// While half-open only probe outcomes count, so a slow request admitted before the breaker
    /// opened cannot close it; while open, outcomes are ignored.
    pub fn record(&self, ok: bool, probe: bool, now: Instant) -> Option<BreakerState> {
        let s = &self.settings;
        let mut window = self.window();
        match BreakerState::from_code(self.state.load(Ordering::Acquire)) {
            BreakerState::Closed => {
                window.push(!ok);
                let by_streak =
                    s.consecutive_failures > 0 && window.consecutive >= s.consecutive_failures;
                let by_rate = window.calls >= s.min_calls.max(1)
                    && f64::from(window.failures) >= s.failure_rate * f64::from(window.calls);
                if !ok && (by_streak || by_rate) {
                    self.enter(BreakerState::Open, &mut window, now);
                    return Some(BreakerState::Open);
                }
                None
            }
            BreakerState::HalfOpen if probe => {
                if !ok {
                    self.enter(BreakerState::Open, &mut window, now);
                    return Some(BreakerState::Open);
                }
                window.probe_successes += 1;
                if window.probe_successes >= s.half_open_probes.max(1) {
                    self.enter(BreakerState::Closed, &mut window, now);
                    return Some(BreakerState::Closed);
                }
                None
            }
            BreakerState::HalfOpen | BreakerState::Open => None,
        }
    }

    /// The state as a report should show it: an open breaker whose cool-down has passed reads
    /// as half-open (the next request will be a probe).
    pub fn state(&self, now: Instant) -> BreakerState {
        let state = BreakerState::from_code(self.state.load(Ordering::Acquire));
        if state == BreakerState::Open && self.nanos(now) >= self.reopen_at.load(Ordering::Acquire)
        {
            BreakerState::HalfOpen
        } else {
            state
        }
    }

    /// Closes the breaker and forgets its window, whatever its state: for when another source
    /// (an active health check) has seen the backend recover.
    pub fn reset(&self) {
        let mut window = self.window();
        if self.state.load(Ordering::Acquire) != BreakerState::Closed.code() {
            self.enter(BreakerState::Closed, &mut window, self.epoch);
        } else {
            window.clear();
        }
    }

    /// How long an open breaker still rejects everything; `None` unless it is open with some
    /// cool-down left.
    pub fn open_for(&self, now: Instant) -> Option<Duration> {
        if self.state.load(Ordering::Acquire) != BreakerState::Open.code() {
            return None;
        }
        let left = self
            .reopen_at
            .load(Ordering::Acquire)
            .saturating_sub(self.nanos(now));
        (left > 0).then(|| Duration::from_nanos(left))
    }

    /// Failure share of the calls in the window (0 when it is empty).
    pub fn failure_rate(&self) -> f64 {
        let w = self.window();
        if w.calls == 0 {
            0.0
        } else {
            f64::from(w.failures) / f64::from(w.calls)
        }
    }

    /// How many times the breaker has entered `state` since it was made.
    pub fn times_entered(&self, state: BreakerState) -> u64 {
        self.entered[state as usize].load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn breaker(settings: BreakerSettings) -> (Arc<Breaker>, Instant) {
        let t0 = Instant::now();
        (Arc::new(Breaker::new(settings, t0)), t0)
    }

    fn settings() -> BreakerSettings {
        BreakerSettings {
            window: 10,
            min_calls: 4,
            failure_rate: 0.5,
            consecutive_failures: 3,
            cool_down: Duration::from_secs(5),
            half_open_probes: 2,
        }
    }

    #[test]
    fn consecutive_failures_open_it() {
        let (b, t) = breaker(settings());
        assert_eq!(b.record(false, false, t), None);
        assert_eq!(b.record(false, false, t), None);
        assert!(b.admit(t).admitted());
        assert_eq!(b.record(false, false, t), Some(BreakerState::Open));
        assert!(!b.admit(t).admitted());
        assert!(!b.would_admit(t));
        assert_eq!(b.times_entered(BreakerState::Open), 1);
    }

    #[test]
    fn a_success_resets_the_streak() {
        let s = BreakerSettings {
            failure_rate: 1.0,
            ..settings()
        };
        let (b, t) = breaker(s);
        for _ in 0..10 {
            assert_eq!(b.record(false, false, t), None);
            assert_eq!(b.record(false, false, t), None);
            assert_eq!(b.record(true, false, t), None);
        }
        assert_eq!(b.state(t), BreakerState::Closed);
    }

    #[test]
    fn the_failure_rate_opens_it_only_after_min_calls() {
        let s = BreakerSettings {
            consecutive_failures: 0,
            ..settings()
        };
        let (b, t) = breaker(s);
        // fail, ok, fail: 66% but only 3 calls.
        assert_eq!(b.record(false, false, t), None);
        assert_eq!(b.record(true, false, t), None);
        assert_eq!(b.record(false, false, t), None);
        assert!((b.failure_rate() - 2.0 / 3.0).abs() < 1e-9);
        // The fourth call brings 2 of 4 = 50%, but a success never opens.
        assert_eq!(b.record(true, false, t), None);
        assert_eq!(b.record(false, false, t), Some(BreakerState::Open));
    }

    #[test]
    fn the_window_forgets_old_calls() {
        let s = BreakerSettings {
            consecutive_failures: 0,
            window: 4,
            min_calls: 4,
            ..settings()
        };
        let (b, t) = breaker(s);
        b.record(false, false, t);
        for _ in 0..4 {
            b.record(true, false, t);
        }
        // The failure has left the window: one failure in 4 is 25%.
        assert_eq!(b.record(false, false, t), None);
        assert!((b.failure_rate() - 0.25).abs() < 1e-9);
    }

    #[test]
    fn cool_down_then_probes_then_closed() {
        let (b, t) = breaker(settings());
        for _ in 0..3 {
            b.record(false, false, t);
        }
        let almost = t + Duration::from_millis(4999);
        assert!(!b.admit(almost).admitted());
        assert_eq!(b.open_for(almost), Some(Duration::from_millis(1)));
        assert_eq!(b.state(almost), BreakerState::Open);
        let later = t + Duration::from_secs(5);
        assert_eq!(b.state(later), BreakerState::HalfOpen);
        let p1 = b.admit(later);
        let p2 = b.admit(later);
        assert!(matches!(p1, Admission::Probe(_)));
        assert!(matches!(p2, Admission::Probe(_)));
        assert!(!b.admit(later).admitted(), "only two probes at once");
        assert!(!b.would_admit(later));
        // A straggler admitted before the breaker opened does not count.
        assert_eq!(b.record(true, false, later), None);
        assert_eq!(b.record(true, true, later), None);
        drop(p1);
        assert_eq!(b.record(true, true, later), Some(BreakerState::Closed));
        drop(p2);
        assert!(matches!(b.admit(later), Admission::Pass));
        assert_eq!(b.times_entered(BreakerState::HalfOpen), 1);
        assert_eq!(b.times_entered(BreakerState::Closed), 1);
    }

    #[test]
    fn a_failed_probe_reopens_for_a_new_cool_down() {
        let (b, t) = breaker(settings());
        for _ in 0..3 {
            b.record(false, false, t);
        }
        let later = t + Duration::from_secs(6);
        let probe = b.admit(later);
        assert!(matches!(probe, Admission::Probe(_)));
        assert_eq!(b.record(false, true, later), Some(BreakerState::Open));
        drop(probe);
        assert!(!b.admit(later + Duration::from_secs(4)).admitted());
        assert!(b.admit(later + Duration::from_secs(5)).admitted());
    }

    #[test]
    fn reset_closes_it() {
        let (b, t) = breaker(settings());
        for _ in 0..3 {
            b.record(false, false, t);
        }
        b.reset();
        assert_eq!(b.state(t), BreakerState::Closed);
        assert!(matches!(b.admit(t), Admission::Pass));
        assert_eq!(b.failure_rate(), 0.0);
    }

    #[test]
    fn a_dropped_probe_frees_its_slot() {
        let (b, t) = breaker(BreakerSettings {
            half_open_probes: 1,
            ..settings()
        });
        for _ in 0..3 {
            b.record(false, false, t);
        }
        let later = t + Duration::from_secs(5);
        let probe = b.admit(later);
        assert!(probe.admitted());
        assert!(!b.admit(later).admitted());
        drop(probe);
        assert!(b.admit(later).admitted());
    }

    proptest! {
        /// Whatever the outcomes, the breaker is open exactly when the rules say so, and the
        /// window's failure rate matches a recount of the last `window` closed-state outcomes.
        #[test]
        fn closed_state_follows_the_rules(outcomes in proptest::collection::vec(any::<bool>(), 1..200)) {
            let s = BreakerSettings { window: 8, min_calls: 5, failure_rate: 0.6, consecutive_failures: 4, ..settings() };
            let (b, t) = breaker(s);
            let mut seen: Vec<bool> = Vec::new();
            for ok in outcomes {
                let opened = b.record(ok, false, t) == Some(BreakerState::Open);
                seen.push(ok);
                let last: Vec<bool> = seen.iter().rev().take(8).copied().collect();
                let failures = last.iter().filter(|ok| !**ok).count();
                let streak = seen.iter().rev().take_while(|ok| !**ok).count();
                let expect = !ok && (streak >= 4 || (last.len() >= 5 && failures as f64 >= 0.6 * last.len() as f64));
                prop_assert_eq!(opened, expect);
                if opened {
                    prop_assert_eq!(b.state(t), BreakerState::Open);
                    break;
                }
                prop_assert!((b.failure_rate() - failures as f64 / last.len() as f64).abs() < 1e-9);
            }
        }
    }
}
