//! How far this node is behind the origins of the sets it receives, from
//! its own `sl_confirm` and `sl_event`.
//!
//! `sl_status` on a node shows how far the *other* nodes are behind *this*
//! node's events, so on a subscriber it says nothing about its own lag
//! (docs/slony-facts.md). What a subscriber knows itself: the newest event
//! of the origin it has confirmed (its own row in `sl_confirm`), the newest
//! event of the origin that has reached it (`sl_event`), and the origin's
//! timestamp of each. The origin makes a SYNC event at least every
//! `sync_interval_timeout` (10 s by default) even when idle, so the age of
//! the newest confirmed event is the lag in time, up to that interval.

use crate::config::LagLimits;
use pgclient::quote;
use pgclient::slony::ClusterName;

/// One set this node receives, as this node's catalog shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct SetLag {
    pub set: u32,
    pub origin: i32,
    /// The subscription is active (its initial copy is done).
    pub active: bool,
    /// The newest event of the origin this node confirmed.
    pub confirmed: Option<i64>,
    /// The newest event of the origin that reached this node.
    pub received: Option<i64>,
    /// Seconds since the origin made the newest event this node confirmed
    /// (this server's clock against the origin's timestamp).
    pub confirmed_age: Option<f64>,
}

/// The sets this node receives (all of them when `sets` is empty) with
/// their lag, in one statement.
pub fn query(cluster: &ClusterName, sets: &[u32]) -> String {
    let schema = cluster.schema_sql();
    let schema_value =
        quote::literal(&cluster.schema()).expect("a validated cluster name is a valid SQL string");
    let only = if sets.is_empty() {
        String::new()
    } else {
        format!(
            " AND s.set_id IN ({})",
            sets.iter()
                .map(u32::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        )
    };
    format!(
        "SELECT s.set_id, s.set_origin, sub.sub_active, c.seqno, e.seqno, \
                extract(epoch FROM now() - ce.at) \
         FROM {schema}.sl_set s \
         JOIN {schema}.sl_subscribe sub ON sub.sub_set = s.set_id \
              AND sub.sub_receiver = {schema}.getLocalNodeId({schema_value}) \
         LEFT JOIN LATERAL (SELECT max(con_seqno) AS seqno FROM {schema}.sl_confirm \
              WHERE con_origin = s.set_origin AND con_received = sub.sub_receiver) c ON true \
         LEFT JOIN LATERAL (SELECT max(ev_seqno) AS seqno FROM {schema}.sl_event \
              WHERE ev_origin = s.set_origin) e ON true \
         LEFT JOIN LATERAL (SELECT max(ev_timestamp) AS at FROM {schema}.sl_event \
              WHERE ev_origin = s.set_origin AND ev_seqno <= c.seqno) ce ON true \
         WHERE true{only} \
         ORDER BY s.set_id"
    )
}

/// The rows of [`query`].
pub fn from_rows(rows: &[Vec<Option<String>>]) -> Vec<SetLag> {
    rows.iter()
        .filter_map(|r| {
            let text = |i: usize| r.get(i).and_then(|v| v.as_deref());
            Some(SetLag {
                set: text(0)?.parse().ok()?,
                origin: text(1)?.parse().ok()?,
                active: text(2) == Some("t"),
                confirmed: text(3).and_then(|v| v.parse().ok()),
                received: text(4).and_then(|v| v.parse().ok()),
                confirmed_age: text(5).and_then(|v| v.parse().ok()),
            })
        })
        .collect()
}

/// Why this node is further behind than `limits` allow, or `None`. The
/// first set over a limit is named.
pub fn behind(sets: &[SetLag], limits: &LagLimits) -> Option<String> {
    if limits.time.is_none() && limits.events.is_none() {
        return None;
    }
    for s in sets {
        let name = format!("set {} (origin node {})", s.set, s.origin);
        if !s.active {
            return Some(format!("the subscription to {name} is not active yet"));
        }
        let Some(confirmed) = s.confirmed else {
            return Some(format!("this node has confirmed no event of {name}"));
        };
        if let (Some(limit), Some(age)) = (limits.time, s.confirmed_age) {
            if age > limit.as_secs_f64() {
                return Some(format!(
                    "{name}: the newest event of the origin this node confirmed is {age:.0} s \
                     old (lag_time {} s)",
                    limit.as_secs()
                ));
            }
        }
        if let (Some(limit), Some(received)) = (limits.events, s.received) {
            let waiting = received.saturating_sub(confirmed);
            if waiting > 0 && waiting as u64 > limit {
                return Some(format!(
                    "{name}: {waiting} events of the origin wait here unconfirmed (lag_events \
                     {limit})"
                ));
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn set(confirmed: Option<i64>, received: Option<i64>, age: Option<f64>) -> SetLag {
        SetLag {
            set: 1,
            origin: 1,
            active: true,
            confirmed,
            received,
            confirmed_age: age,
        }
    }

    const LIMITS: LagLimits = LagLimits {
        time: Some(Duration::from_secs(120)),
        events: Some(10),
    };

    #[test]
    fn a_subscriber_within_its_limits_is_not_behind() {
        assert_eq!(
            behind(&[set(Some(100), Some(105), Some(8.5))], &LIMITS),
            None
        );
        assert_eq!(behind(&[], &LIMITS), None, "an origin receives no set");
    }

    #[test]
    fn an_old_confirmed_event_is_lag_in_time() {
        let why = behind(&[set(Some(100), Some(100), Some(300.2))], &LIMITS).unwrap();
        assert_eq!(
            why,
            "set 1 (origin node 1): the newest event of the origin this node confirmed is 300 s \
             old (lag_time 120 s)"
        );
    }

    #[test]
    fn events_waiting_unconfirmed_are_lag_in_events() {
        let why = behind(&[set(Some(100), Some(111), Some(1.0))], &LIMITS).unwrap();
        assert!(why.contains("11 events of the origin wait here"), "{why}");
        assert_eq!(
            behind(&[set(Some(100), Some(110), Some(1.0))], &LIMITS),
            None
        );
    }

    #[test]
    fn an_inactive_or_never_confirmed_subscription_is_behind() {
        let mut copying = set(None, None, None);
        copying.active = false;
        assert!(behind(&[copying], &LIMITS)
            .unwrap()
            .contains("not active yet"));
        assert!(behind(&[set(None, Some(3), None)], &LIMITS)
            .unwrap()
            .contains("confirmed no event"));
    }

    #[test]
    fn no_limit_checks_nothing() {
        let none = LagLimits {
            time: None,
            events: None,
        };
        assert_eq!(behind(&[set(None, None, None)], &none), None);
        let time_only = LagLimits {
            time: Some(Duration::from_secs(60)),
            events: None,
        };
        assert_eq!(
            behind(&[set(Some(1), Some(1000), Some(2.0))], &time_only),
            None
        );
    }

    #[test]
    fn rows_are_read_and_the_query_names_the_sets() {
        let row = |v: &[Option<&str>]| v.iter().map(|x| x.map(str::to_string)).collect();
        let rows = vec![row(&[
            Some("2"),
            Some("1"),
            Some("t"),
            Some("5000000042"),
            Some("5000000044"),
            Some("3.512345"),
        ])];
        assert_eq!(
            from_rows(&rows),
            [SetLag {
                set: 2,
                origin: 1,
                active: true,
                confirmed: Some(5_000_000_042),
                received: Some(5_000_000_044),
                confirmed_age: Some(3.512345),
            }]
        );
        let c = ClusterName::parse("Tusk").unwrap();
        assert!(query(&c, &[1, 3]).contains("AND s.set_id IN (1, 3)"));
        assert!(query(&c, &[]).contains("\"_Tusk\".getLocalNodeId(E'_Tusk')"));
    }
}
