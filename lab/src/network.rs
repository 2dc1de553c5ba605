//! The lab's network: one switch, one cable per node, no way out.
//!
//! The switch is a network namespace of its own (held like a node) with a
//! bridge `br0` and no uplink. Each node's cable is a veth pair: `eth0` in
//! the node, `sw-NODE` in the switch, enslaved to `br0`. No route leads
//! anywhere but the lab's /24, and no device of the lab exists in the host's
//! network namespace, so two labs (each with its own switch) can use the same
//! names and addresses without ever seeing each other.
//!
//! A partition pulls the cable out at the switch: the port leaves the bridge
//! and goes down, so the node sees no carrier and nothing it sends reaches
//! anyone, including the switch's own address (a port that stayed up outside
//! the bridge would still answer ARP for it).

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result};

use crate::namespace::{self, ip_batch};
use crate::process;
use crate::state::Holder;

/// A private /24 that exists only inside the lab's namespaces.
pub const SUBNET: [u8; 3] = [10, 213, 77];
pub const PREFIX_LEN: u8 = 24;
const BRIDGE: &str = "br0";

/// node1 is .11, node2 .12, ...
pub fn node_address(index: usize) -> Ipv4Addr {
    let host = u8::try_from(10 + index).expect("at most 200 nodes");
    Ipv4Addr::new(SUBNET[0], SUBNET[1], SUBNET[2], host)
}

/// The switch's own address, on the bridge: where a client workload run from
/// the switch's network namespace comes from.
pub fn switch_address() -> Ipv4Addr {
    Ipv4Addr::new(SUBNET[0], SUBNET[1], SUBNET[2], 254)
}

pub fn switch_dir(lab_dir: &Path) -> PathBuf {
    lab_dir.join("switch")
}

pub fn switch_ready_file(lab_dir: &Path) -> PathBuf {
    switch_dir(lab_dir).join("ready")
}

/// The switch-side end of a node's cable. Interface names have at most 15
/// bytes; node names are checked against that at `up`.
pub fn port(node: &str) -> String {
    format!("sw-{node}")
}

/// The bridge with the switch's address, in a fresh switch namespace.
pub fn build_switch(switch: &Holder) -> Result<()> {
    // forward_delay 0: with STP off (the default) a new port forwards at
    // once anyway; this makes it explicit.
    let script = format!(
        "link set lo up\n\
         link add {BRIDGE} type bridge forward_delay 0\n\
         link set {BRIDGE} up\n\
         addr add {}/{PREFIX_LEN} dev {BRIDGE}\n",
        switch_address()
    );
    ip_batch(
        switch,
        &script,
        "building the switch (needs the bridge and veth kernel modules)",
    )
}

/// Connects a freshly started node: the veth pair is created in the switch
/// with its other end moved straight into the node as `eth0`, then the node
/// gets its address. A partitioned node gets its cable, unplugged.
pub fn cable(
    switch: &Holder,
    node_holder: &Holder,
    node: &str,
    addr: Ipv4Addr,
    partitioned: bool,
) -> Result<()> {
    // A crashed node's port normally vanished with its network namespace;
    // removing a leftover here keeps the name free.
    remove_port(switch, node)?;
    // `netns PID` is resolved by the kernel in ip's PID namespace, the
    // host's, where that PID is the node's init (checked just before).
    anyhow::ensure!(node_holder.is_running(), "{node} is not running");
    let mut script = format!(
        "link add {port} type veth peer name eth0 netns {pid}\n",
        port = port(node),
        pid = node_holder.init.pid
    );
    if !partitioned {
        script += &plug_script(node);
    }
    ip_batch(switch, &script, &format!("cabling {node}"))?;
    let node_script =
        format!("link set lo up\naddr add {addr}/{PREFIX_LEN} dev eth0\nlink set eth0 up\n");
    ip_batch(node_holder, &node_script, &format!("addressing {node}"))
}

fn plug_script(node: &str) -> String {
    let port = port(node);
    format!("link set {port} master {BRIDGE}\nlink set {port} up\n")
}

/// Plugs a node's cable back into the bridge.
pub fn plug(switch: &Holder, node: &str) -> Result<()> {
    if port_exists(switch, node)? {
        ip_batch(switch, &plug_script(node), &format!("plugging {node} in"))?;
    }
    Ok(())
}

/// Pulls a node's cable out: port down and out of the bridge.
pub fn unplug(switch: &Holder, node: &str) -> Result<()> {
    if port_exists(switch, node)? {
        let port = port(node);
        ip_batch(
            switch,
            &format!("link set {port} down\nlink set {port} nomaster\n"),
            &format!("unplugging {node}"),
        )?;
    }
    Ok(())
}

/// Removes a node's port if it still exists; the node-side end goes with it.
///
/// The kernel destroys a dead node's network namespace asynchronously, so
/// right after a power-off (a fence reboot powers on within milliseconds)
/// the old port may still be there, or vanish under `ip link del`: the
/// deletion may fail, what counts is that the name is free afterwards.
pub fn remove_port(switch: &Holder, node: &str) -> Result<()> {
    if !port_exists(switch, node)? {
        return Ok(());
    }
    let deleted = ip_batch(
        switch,
        &format!("link del {}\n", port(node)),
        &format!("removing {node}'s port"),
    );
    process::wait_for(
        &format!("{node}'s old switch port to go away"),
        Duration::from_secs(10),
        || Ok(!port_exists(switch, node)?),
    )
    .map_err(|e| match deleted {
        Err(del) => e.context(del),
        Ok(()) => e,
    })
}

fn port_exists(switch: &Holder, node: &str) -> Result<bool> {
    let output = namespace::enter_net(switch, "ip")
        .args(["-o", "link", "show", "dev", &port(node)])
        .output()
        .context("running ip link show")?;
    Ok(output.status.success())
}

/// The switch's network namespace, for a thread that setns(2)s into it to
/// run a client workload. Valid while the switch runs.
pub fn netns_path(switch: &Holder) -> Result<PathBuf> {
    anyhow::ensure!(switch.is_running(), "the lab's switch is not running");
    let path = PathBuf::from(format!("/proc/{}/ns/net", switch.init.pid));
    anyhow::ensure!(
        process::namespace(switch.init.pid, "net").as_deref() == Some(&switch.netns),
        "the switch's network namespace changed"
    );
    Ok(path)
}

/// Moves the calling thread (only it: a network namespace belongs to a
/// thread) into the switch's network namespace, where the nodes are reached
/// as a client on the lab network would reach them.
pub fn join_switch(switch: &Holder) -> Result<()> {
    let path = netns_path(switch)?;
    let netns =
        std::fs::File::open(&path).with_context(|| format!("opening {}", path.display()))?;
    nix::sched::setns(netns, nix::sched::CloneFlags::CLONE_NEWNET)
        .context("setns into the switch's network namespace")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_in_the_lab_subnet() {
        assert_eq!(node_address(1).to_string(), "10.213.77.11");
        assert_eq!(node_address(3).to_string(), "10.213.77.13");
        assert_eq!(switch_address().to_string(), "10.213.77.254");
    }

    #[test]
    fn port_names_fit_an_interface_name() {
        assert!(port("node12").len() <= 15);
    }
}
