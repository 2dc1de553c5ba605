//! Time budgets: every wait loop of an agent ends before Pacemaker kills it.

use crate::{OcfError, Result};
use std::time::{Duration, Instant};

/// The moment an action must have given its answer by.
#[derive(Debug, Clone, Copy)]
pub struct Deadline {
    end: Instant,
}

impl Deadline {
    /// A deadline a little short of `timeout`, so that the agent, not
    /// Pacemaker's SIGKILL, reports the failure and the reason: 10 % of the
    /// timeout is kept back, at least 200 ms and at most 3 s.
    pub fn for_timeout(timeout: Duration) -> Deadline {
        let margin = (timeout / 10).clamp(Duration::from_millis(200), Duration::from_secs(3));
        Deadline::after(timeout.saturating_sub(margin))
    }

    pub fn after(budget: Duration) -> Deadline {
        Deadline {
            end: Instant::now() + budget,
        }
    }

    pub fn remaining(&self) -> Duration {
        self.end.saturating_duration_since(Instant::now())
    }

    pub fn is_expired(&self) -> bool {
        self.remaining().is_zero()
    }

    /// A deadline that uses `fraction` of the time left, for a step that
    /// must leave room for the steps after it (fast shutdown before immediate).
    pub fn share(&self, fraction: f64) -> Deadline {
        Deadline::after(self.remaining().mul_f64(fraction.clamp(0.0, 1.0)))
    }

    /// Calls `probe` every `every` until it returns `Some`, an error, or the
    /// deadline passes; `what` names the awaited condition in the error.
    pub fn wait_for<T>(
        &self,
        what: &str,
        every: Duration,
        mut probe: impl FnMut() -> Result<Option<T>>,
    ) -> Result<T> {
        let started = Instant::now();
        loop {
            if let Some(v) = probe()? {
                return Ok(v);
            }
            let left = self.remaining();
            if left.is_zero() {
                return Err(OcfError::generic(format!(
                    "gave up waiting for {what} after {:.1}s, before the action timeout",
                    started.elapsed().as_secs_f64()
                )));
            }
            std::thread::sleep(every.min(left));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_a_margin_before_the_timeout() {
        let d = Deadline::for_timeout(Duration::from_secs(20));
        let r = d.remaining();
        assert!(
            r <= Duration::from_secs(18) && r > Duration::from_millis(17_900),
            "{r:?}"
        );
        let tiny = Deadline::for_timeout(Duration::from_millis(100));
        assert!(tiny.is_expired());
    }

    #[test]
    fn wait_for_returns_the_value_once_the_probe_finds_it() {
        let d = Deadline::after(Duration::from_secs(5));
        let mut calls = 0;
        let v = d
            .wait_for("three calls", Duration::from_millis(1), || {
                calls += 1;
                Ok((calls == 3).then_some(calls))
            })
            .unwrap();
        assert_eq!(v, 3);
    }

    #[test]
    fn wait_for_fails_with_a_reason_when_time_runs_out() {
        let d = Deadline::after(Duration::from_millis(30));
        let e = d
            .wait_for("never", Duration::from_millis(5), || Ok(None::<()>))
            .unwrap_err();
        assert_eq!(e.status(), crate::Status::ErrGeneric);
        assert!(
            e.reason().starts_with("gave up waiting for never after"),
            "{}",
            e.reason()
        );
    }

    #[test]
    fn wait_for_passes_probe_errors_through() {
        let d = Deadline::after(Duration::from_secs(5));
        let e = d
            .wait_for("x", Duration::from_millis(1), || {
                Err::<Option<()>, _>(OcfError::perm("no"))
            })
            .unwrap_err();
        assert_eq!(e.status(), crate::Status::ErrPerm);
    }

    #[test]
    fn share_takes_a_fraction_of_what_is_left() {
        let d = Deadline::after(Duration::from_secs(10));
        let half = d.share(0.5).remaining();
        assert!(
            half <= Duration::from_secs(5) && half > Duration::from_millis(4_900),
            "{half:?}"
        );
    }
}
