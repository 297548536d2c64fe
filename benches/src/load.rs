//! The load model shared by the HTTP and DNS load generators: who decides when a request is
//! sent, and when the run stops.
//!
//! Every request takes a ticket from one [`Schedule`]. In a closed loop a ticket is only a
//! sequence number: each connection sends its next request as soon as the previous answer is
//! in. In an open loop ticket `i` also carries its intended send time `start + i / rate`; a
//! connection that is late sends at once, and latency is measured from the intended time, not
//! from when the request really left (wrk2's coordinated-omission correction). Without that, a
//! server that stalls for a second would be charged one slow request instead of every request
//! that should have been sent during the stall.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// How requests are paced.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Pace {
    /// Each connection sends its next request when the previous one is answered.
    Closed,
    /// Requests are due at a fixed total rate, whatever the server does.
    Open {
        /// Requests per second, over all connections.
        rate: f64,
    },
}

impl Pace {
    /// `closed` or `open`: the load model as reports name it.
    pub fn model(self) -> &'static str {
        match self {
            Pace::Closed => "closed",
            Pace::Open { .. } => "open",
        }
    }

    /// The fixed rate of an open loop, `None` for a closed one.
    pub fn rate(self) -> Option<f64> {
        match self {
            Pace::Open { rate } => Some(rate),
            Pace::Closed => None,
        }
    }
}

/// When a run ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stop {
    /// After exactly this many requests.
    Count(u64),
    /// When this much time has passed (requests in flight then are still awaited).
    Duration(Duration),
}

impl fmt::Display for Pace {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Closed => f.write_str("closed loop"),
            Self::Open { rate } => write!(f, "open loop at {rate} req/s"),
        }
    }
}

impl fmt::Display for Stop {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Count(n) => write!(f, "{n} requests"),
            Self::Duration(d) => write!(f, "{:.1} s", d.as_secs_f64()),
        }
    }
}

/// One request to send.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ticket {
    /// Its number in the run, from 0.
    pub seq: u64,
    /// When it should be sent (open loop only).
    pub intended: Option<Instant>,
}

/// Hands out tickets to every connection of a run.
#[derive(Debug)]
pub struct Schedule {
    pace: Pace,
    stop: Stop,
    start: Instant,
    deadline: Option<Instant>,
    next: AtomicU64,
}

impl Schedule {
    /// A schedule starting now.
    pub fn new(pace: Pace, stop: Stop) -> Self {
        let start = Instant::now();
        let deadline = match stop {
            Stop::Duration(d) => Some(start + d),
            Stop::Count(_) => None,
        };
        Self {
            pace,
            stop,
            start,
            deadline,
            next: AtomicU64::new(0),
        }
    }

    /// When the run started.
    pub fn start(&self) -> Instant {
        self.start
    }

    /// The pace of the run.
    pub fn pace(&self) -> Pace {
        self.pace
    }

    /// The next request, or `None` when the run is over for this connection.
    pub fn next_ticket(&self) -> Option<Ticket> {
        let seq = self.next.fetch_add(1, Ordering::Relaxed);
        if let Stop::Count(n) = self.stop {
            if seq >= n {
                return None;
            }
        }
        let intended = match self.pace {
            Pace::Closed => None,
            Pace::Open { rate } => Some(self.start + Duration::from_secs_f64(seq as f64 / rate)),
        };
        if let Some(deadline) = self.deadline {
            if intended.unwrap_or_else(Instant::now) >= deadline {
                return None;
            }
        }
        Some(Ticket { seq, intended })
    }

    /// How far the run is, from 0 to 1, for the progress bar.
    pub fn progress(&self, done: u64) -> f64 {
        match self.stop {
            Stop::Count(n) => done as f64 / n.max(1) as f64,
            Stop::Duration(d) => (self.start.elapsed().as_secs_f64() / d.as_secs_f64()).min(1.0),
        }
    }
}

/// How early an open-loop request may leave: tokio's timer fires on millisecond ticks, so
/// sleeping until the exact due time would send up to a millisecond late and charge that lag to
/// the server.
const TIMER_SLACK: Duration = Duration::from_millis(1);

/// Waits until a ticket is due (at once in a closed loop) and returns the time latency is
/// measured from: the intended time for a late request (the coordinated-omission correction),
/// the real send time for one that left up to [`TIMER_SLACK`] early.
pub async fn wait_until_due(ticket: &Ticket) -> Instant {
    match ticket.intended {
        Some(at) => {
            let wake = at.checked_sub(TIMER_SLACK).unwrap_or(at);
            if wake > Instant::now() {
                tokio::time::sleep_until(wake.into()).await;
            }
            at.min(Instant::now())
        }
        None => Instant::now(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn count_mode_hands_out_exactly_n_tickets() {
        let s = Schedule::new(Pace::Closed, Stop::Count(3));
        let seqs: Vec<u64> = std::iter::from_fn(|| s.next_ticket().map(|t| t.seq)).collect();
        assert_eq!(seqs, [0, 1, 2]);
        assert!(s.next_ticket().is_none());
    }

    #[test]
    fn open_loop_tickets_are_due_at_the_rate() {
        let s = Schedule::new(
            Pace::Open { rate: 100.0 },
            Stop::Duration(Duration::from_secs(1)),
        );
        let tickets: Vec<Ticket> = std::iter::from_fn(|| s.next_ticket()).collect();
        assert_eq!(tickets.len(), 100);
        let gap = tickets[10].intended.unwrap() - tickets[9].intended.unwrap();
        assert!(gap.as_micros().abs_diff(10_000) <= 1, "{gap:?}");
    }
}
