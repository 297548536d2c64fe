//! The progress bar shown while a load runs: on stderr, only when stderr is a terminal and the
//! output is not `--json`, so scripts and pipes see clean output.

use crate::load::Schedule;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::IsTerminal;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Counters the load tasks bump and the bar reads.
#[derive(Default)]
pub struct Counters {
    /// Answers received.
    pub answers: AtomicU64,
    /// Requests failed.
    pub errors: AtomicU64,
}

/// A bar that redraws itself from [`Counters`] until dropped.
pub struct Progress {
    bar: Option<ProgressBar>,
    ticker: Option<tokio::task::JoinHandle<()>>,
}

impl Progress {
    /// Starts the bar (in the current tokio runtime) when `wanted` and stderr is a terminal.
    pub fn start(wanted: bool, schedule: Arc<Schedule>, counters: Arc<Counters>) -> Self {
        if !wanted || !std::io::stderr().is_terminal() {
            return Self {
                bar: None,
                ticker: None,
            };
        }
        let bar = ProgressBar::with_draw_target(Some(1000), ProgressDrawTarget::stderr());
        let style = ProgressStyle::with_template("{bar:30} {percent:>3}% {elapsed_precise} {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar());
        bar.set_style(style);
        let shown = bar.clone();
        let ticker = tokio::spawn(async move {
            let mut last = (0u64, std::time::Instant::now());
            loop {
                tokio::time::sleep(Duration::from_millis(250)).await;
                let answers = counters.answers.load(Ordering::Relaxed);
                let errors = counters.errors.load(Ordering::Relaxed);
                let now = std::time::Instant::now();
                let rate = (answers - last.0) as f64 / (now - last.1).as_secs_f64().max(1e-3);
                last = (answers, now);
                shown.set_position((schedule.progress(answers + errors) * 1000.0) as u64);
                shown.set_message(format!("{answers} answers, {errors} errors, {rate:.0}/s"));
            }
        });
        Self {
            bar: Some(bar),
            ticker: Some(ticker),
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        if let Some(t) = self.ticker.take() {
            t.abort();
        }
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
    }
}
