//! The backends as they say they are, asked by the agent itself, not
//! through pgpool: whether each is a primary, on which timeline, and which
//! standbys stream from it. One connection and one round trip per backend,
//! made only when pgpool's view needs settling (see
//! [`crate::reconcile::needs_live_view`]) and at start.

use crate::reconcile::{Live, LiveView};
use crate::settings::BackendConf;
use crate::slony;
use nix::unistd::{Gid, Uid};
use ocf::Deadline;
use pgclient::slony::ClusterName;
use pgclient::{ErrorKind, Passfile};

/// On a primary, the timeline it writes on (from the name of the WAL file
/// it writes: right after a promotion, when pg_control_checkpoint() still
/// shows the old one) and who streams from it. On a standby the CASE keeps
/// pg_current_wal_lsn(), which recovery refuses, from being called.
const QUESTION: &str = "SELECT pg_is_in_recovery(), \
     CASE WHEN pg_is_in_recovery() THEN NULL \
     ELSE ('x' || substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8))::bit(32)::bigint END; \
     SELECT application_name FROM pg_stat_replication WHERE state = 'streaming'";

/// How the agent connects to the backends.
pub struct Asker {
    pub dbuser: String,
    pub dbname: String,
    pub passwords: Option<Passfile>,
    /// Over a unix socket, peer authentication checks the effective uid:
    /// pgpool's own account, whose connections the backends already accept.
    pub as_user: Option<(Uid, Gid)>,
}

impl Asker {
    /// Asks every backend, each with its share of `deadline`: a backend
    /// that hangs costs its share only.
    pub fn observe(&self, backends: &[BackendConf], deadline: &Deadline) -> LiveView {
        let mut view = LiveView::default();
        let n = backends.len();
        for (i, b) in backends.iter().enumerate() {
            let share = deadline.share(1.0 / (n - i) as f64);
            view.backends.insert(b.id, self.ask(b, &share));
            view.application_names
                .insert(b.id, b.application_name.clone());
        }
        view
    }

    /// The connection to backend `b`, as dbuser to dbname, with its
    /// password when db_passfile has one.
    fn config(&self, b: &BackendConf) -> pgclient::Config {
        let mut pg = pgclient::Config::new();
        if b.hostname.starts_with('/') {
            pg.host_path(&b.hostname);
        } else {
            pg.host(&b.hostname);
        }
        pg.port(b.port).user(&self.dbuser).dbname(&self.dbname);
        if let Some(p) = self
            .passwords
            .as_ref()
            .and_then(|f| f.password(&b.hostname, b.port, &self.dbname, &self.dbuser))
        {
            pg.password(p);
        }
        pg
    }

    fn ask(&self, b: &BackendConf, deadline: &Deadline) -> Live {
        let results = match pgclient::query(self.config(b), self.as_user, deadline, QUESTION) {
            Ok(r) => r,
            Err(e) => {
                let why = e.reason().to_string();
                return match e.kind() {
                    // Nothing there: the only answers that mean absence.
                    ErrorKind::Unreachable | ErrorKind::Timeout { .. } => Live::Absent(why),
                    _ => Live::Unknown(why),
                };
            }
        };
        match pgclient::value(&results, 0, 0, 0) {
            Some("t") => Live::Standby,
            Some("f") => {
                let timeline = pgclient::value(&results, 0, 0, 1).and_then(|t| t.parse().ok());
                match timeline {
                    Some(timeline) => Live::Primary {
                        timeline,
                        streaming: results
                            .get(1)
                            .into_iter()
                            .flatten()
                            .filter_map(|row| row.first().cloned().flatten())
                            .collect(),
                    },
                    None => Live::Unknown("a primary without a timeline".into()),
                }
            }
            _ => Live::Unknown("pg_is_in_recovery() gave no answer".into()),
        }
    }
}

impl Asker {
    /// In pgpool's slony mode: asks every backend what it is in `cluster`
    /// ([`slony::question`]), each with its share of `deadline`.
    pub fn observe_slony(
        &self,
        backends: &[BackendConf],
        cluster: &ClusterName,
        deadline: &Deadline,
    ) -> slony::View {
        let question = slony::question(cluster);
        let n = backends.len();
        let mut view = slony::View::new();
        for (i, b) in backends.iter().enumerate() {
            let share = deadline.share(1.0 / (n - i) as f64);
            let live = match pgclient::query(self.config(b), self.as_user, &share, &question) {
                Ok(results) => match slony::member(&results) {
                    Ok(m) => slony::Live::Member(m),
                    Err(why) => slony::Live::Unknown(why),
                },
                Err(e) => match e.kind() {
                    ErrorKind::Unreachable | ErrorKind::Timeout { .. } => {
                        slony::Live::Absent(e.reason().to_string())
                    }
                    _ if e
                        .sqlstate()
                        .is_some_and(|s| slony::NOT_A_MEMBER.contains(&s)) =>
                    {
                        slony::Live::NotMember
                    }
                    _ => slony::Live::Unknown(e.reason().to_string()),
                },
            };
            view.insert(b.id, live);
        }
        view
    }
}
