//! This pgpool's PCP port, as the actions use it: one short session per
//! exchange, closed at once.
//!
//! A session left open blocks pgpool: at every failover pgpool restarts its
//! PCP process, which first waits for its workers, that is for every open
//! session to end, and accepts nothing meanwhile (pgpool-II 4.3.5: an
//! attach request's session held open kept PCP silent for minutes, until
//! it was closed). So each request is made in a session of its own, and
//! waiting for its effect uses new sessions.

use crate::pcp::{Endpoint, NodeInfo, PcpConnection, PcpError, PcpErrorKind, PcpResult};
use crate::reconcile::Change;
use ocf::Deadline;
use std::time::Duration;

/// Where and as whom the agent speaks PCP.
pub struct Pcp {
    endpoint: Endpoint,
    user: String,
    password: String,
}

/// What node infos came back, and which did not (with why).
#[derive(Debug, Default)]
pub struct NodeInfos {
    pub nodes: Vec<NodeInfo>,
    pub missing: Vec<(u32, PcpError)>,
}

impl Pcp {
    pub fn new(endpoint: Endpoint, user: &str, password: String) -> Pcp {
        Pcp {
            endpoint,
            user: user.to_string(),
            password,
        }
    }

    pub fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    /// For validate, which compares it with pcp.conf's md5; never logged.
    pub(crate) fn password(&self) -> &str {
        &self.password
    }

    fn connect(&self, deadline: &Deadline) -> PcpResult<PcpConnection> {
        PcpConnection::connect(&self.endpoint, &self.user, &self.password, deadline)
    }

    /// The liveness question: pgpool answers it from shared memory, at once
    /// even while a backend hangs (docs/pgpool-facts.md). Asked again while
    /// the session is refused or closed before an answer: pgpool restarts
    /// its PCP process at every failover, and a session that arrives then
    /// meets that, which is no reason to call pgpool down (seen with the
    /// machine under load: "closed the connection (during the md5 salt)").
    pub fn node_count(&self, deadline: &Deadline) -> PcpResult<u32> {
        loop {
            let answer = self.connect(deadline).and_then(|mut c| {
                let count = c.node_count(deadline)?;
                let _ = c.close(deadline);
                Ok(count)
            });
            match answer {
                Err(e)
                    if matches!(e.kind, PcpErrorKind::Protocol | PcpErrorKind::Unreachable)
                        && deadline.remaining() > Duration::from_millis(500) =>
                {
                    std::thread::sleep(Duration::from_millis(200));
                }
                answer => return answer,
            }
        }
    }

    /// pgpool's view of nodes `0..count`. Each answer costs pgpool a
    /// connection to that backend, so a hung backend delays its own: each
    /// node gets its share of the time left, and after a failure the next
    /// node is asked in a new session (the old one would deliver the late
    /// answer first).
    pub fn node_infos(&self, count: u32, deadline: &Deadline) -> NodeInfos {
        let mut found = NodeInfos::default();
        let mut session: Option<PcpConnection> = None;
        for node in 0..count {
            let share = deadline.share(1.0 / f64::from(count - node));
            let answer = match session.take() {
                Some(c) => Ok(c),
                None => self.connect(&share),
            }
            .and_then(|mut c| c.node_info(node, &share).map(|info| (c, info)));
            match answer {
                Ok((c, info)) => {
                    session = Some(c);
                    found.nodes.push(info);
                }
                Err(e) => found.missing.push((node, e)),
            }
        }
        if let Some(c) = session {
            let _ = c.close(deadline);
        }
        found
    }

    /// pgpool's view of one node, in a session of its own.
    pub fn node_info(&self, node: u32, deadline: &Deadline) -> PcpResult<NodeInfo> {
        let mut c = self.connect(deadline)?;
        let info = c.node_info(node, deadline)?;
        let _ = c.close(deadline);
        Ok(info)
    }

    /// Makes `change` in a session of its own. pgpool answers before it has
    /// acted; see [`Pcp::wait_for`].
    pub fn request(&self, change: Change, deadline: &Deadline) -> PcpResult<()> {
        let mut c = self.connect(deadline)?;
        match change {
            Change::Attach(n) => c.attach_node(n, deadline)?,
            Change::Detach(n) => c.detach_node(n, deadline)?,
            Change::Promote(n) => c.promote_node(n, deadline)?,
        }
        let _ = c.close(deadline);
        Ok(())
    }

    /// Polls node `node` until `done` holds or `deadline` passes; the last
    /// info seen, or why none came.
    pub fn wait_for(
        &self,
        node: u32,
        done: impl Fn(&NodeInfo) -> bool,
        deadline: &Deadline,
    ) -> PcpResult<NodeInfo> {
        let mut last: PcpResult<NodeInfo> = Err(PcpError::new(
            PcpErrorKind::Timeout,
            "no time left to ask pgpool",
        ));
        while !deadline.is_expired() {
            last = self.node_info(node, &deadline.share(0.5));
            if matches!(&last, Ok(info) if done(info)) {
                break;
            }
            std::thread::sleep(Duration::from_millis(100).min(deadline.remaining()));
        }
        last
    }
}
