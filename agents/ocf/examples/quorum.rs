//! Asks corosync whether this node's partition has quorum, N times (default
//! 100), and prints the answer and what one question costs: run inside a
//! lab node (`tusk-lab exec node1 .../examples/quorum 1000`).

use ocf::quorum::Quorum;
use ocf::Deadline;
use std::time::{Duration, Instant};

fn main() {
    let n: u32 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(100);
    let started = Instant::now();
    let mut last = None;
    for _ in 0..n {
        last = Some(Quorum::ask(&Deadline::after(Duration::from_secs(5))));
    }
    let each = started.elapsed() / n.max(1);
    println!("{last:?}: {n} questions, {each:?} each");
}
