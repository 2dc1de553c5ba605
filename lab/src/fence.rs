//! Fencing in the lab: the `fence_tusklab` agent Pacemaker runs inside a
//! node, and the daemon on the host that does the powering off and on.
//!
//! Why two parts: a node cannot see another node's processes (each has its
//! own PID namespace), just as a real node cannot pull another's power
//! cable. The agent talks, over a unix socket in the lab's state directory
//! (reachable from the nodes because /tmp is shared with the host, and a
//! path-bound socket ignores network namespaces), to `tusk-lab fence-daemon`
//! on the host: the lab's power switch, on its own management network, so
//! fencing works even while the victim is partitioned.

pub mod agent;
pub mod daemon;
pub mod history;
pub mod protocol;
