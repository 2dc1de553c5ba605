//! `up` brings three nodes online with quorum and fencing in place; a second
//! lab beside it never sees the first; `down` leaves nothing behind.

mod common;

use std::time::Instant;

use common::{host_links, host_mounts_under, processes_of, sh, survivors, up};
use tusk_lab::{process, Lab, LabConfig, FENCE_DEVICE};

#[test]
fn three_nodes_come_up_with_quorum_and_down_leaves_nothing() {
    let links_before = host_links();
    let test = up("up-down", 3);
    let lab = &test.lab;
    let nodes = lab.nodes().unwrap();
    assert_eq!(nodes, ["node1", "node2", "node3"]);

    for node in &nodes {
        let view = lab.view(node).unwrap();
        assert!(
            view.dc().is_some() && view.has_quorum(),
            "{node} sees no quorate DC: {view:?}"
        );
        for other in &nodes {
            assert!(
                view.is_online(other),
                "{node} does not see {other} online: {view:?}"
            );
        }
        // UTS: Pacemaker takes the node's name from its hostname.
        assert_eq!(sh(lab, node, &["hostname"]).trim(), node.as_str());
        let addr = lab.address(node).unwrap().to_string();
        assert!(sh(
            lab,
            node,
            &["ip", "-o", "-4", "addr", "show", "dev", "eth0"]
        )
        .contains(&format!("{addr}/24")));
        // Traffic stays in the lab: the only route is the lab's own /24.
        let routes = sh(lab, node, &["ip", "-4", "route", "show"]);
        assert_eq!(routes.lines().count(), 1, "{node} routes: {routes}");
        assert!(
            routes.starts_with("10.213.77.0/24 dev eth0"),
            "{node} routes: {routes}"
        );
    }

    // Fencing as in production: enabled, with the lab device registered.
    assert!(sh(lab, "node1", &["stonith_admin", "--list-registered"]).contains(FENCE_DEVICE));
    let pcs = sh(lab, "node2", &["pcs", "stonith", "status"]);
    assert!(
        pcs.contains(FENCE_DEVICE) && pcs.contains("Started"),
        "pcs stonith status: {pcs}"
    );
    let enabled = sh(
        lab,
        "node3",
        &[
            "crm_attribute",
            "--type",
            "crm_config",
            "--name",
            "stonith-enabled",
            "--query",
            "--quiet",
        ],
    );
    assert_eq!(enabled.trim(), "true");

    // A client in the switch reaches every node, and nothing else: one
    // route, the lab's /24 on br0 (0x004DD50A is 10.213.77.0, little-endian).
    for node in &nodes {
        let kind = common::probe_from_switch(lab, lab.address(node).unwrap());
        assert_eq!(
            kind,
            std::io::ErrorKind::ConnectionRefused,
            "{node} is not reachable from the switch"
        );
    }
    let routes: Vec<String> = common::switch_routes(lab)
        .lines()
        .skip(1)
        .map(str::to_string)
        .collect();
    assert_eq!(routes.len(), 1, "{routes:?}");
    assert!(
        routes[0].starts_with("br0\t004DD50A\t00000000"),
        "{routes:?}"
    );

    // Nothing of the lab in the host's network namespace.
    assert_eq!(
        host_links(),
        links_before,
        "the host's links changed while the lab is up"
    );

    // A second lab beside the first: same node names, same addresses, its
    // own switch. Neither sees the other.
    let other_dir = common::test_dir("up-down-second");
    tusk_lab::down(&other_dir).unwrap();
    let started = Instant::now();
    let other =
        Lab::up(&LabConfig::new(&other_dir).nodes(1).exe(common::EXE)).expect("a second lab up");
    let _other_down = other.down_on_drop();
    eprintln!(
        "[up-down] FIGURE up of a second, 1-node lab beside the first: {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let other_view = other.view("node1").unwrap();
    assert_eq!(
        other_view.nodes.list.len(),
        1,
        "the second lab sees more than its own node: {other_view:?}"
    );
    assert!(other_view.has_quorum());
    other.down().unwrap();
    let view = lab
        .wait_converged(std::time::Duration::from_secs(10))
        .expect("the first lab is unaffected");
    assert_eq!(view.online_nodes().len(), 3);

    // Remember every namespace and process of the lab, then end it.
    let state = lab.state().unwrap();
    let mut holders: Vec<_> = state
        .nodes
        .iter()
        .filter_map(|n| n.holder.clone())
        .collect();
    holders.extend(state.switch.clone());
    assert_eq!(holders.len(), 4);
    let processes: Vec<_> = holders.iter().flat_map(processes_of).collect();
    // Everything that holds one of the lab's network or mount namespaces,
    // `unshare` included (it is in the host's PID namespace).
    let lab_namespaces: Vec<String> = holders
        .iter()
        .flat_map(|h| [Some(h.netns.clone()), process::namespace(h.init.pid, "mnt")])
        .flatten()
        .collect();
    let mut holding: Vec<_> = process::all_pids()
        .unwrap()
        .into_iter()
        .filter(|pid| {
            ["net", "mnt"].iter().any(|kind| {
                process::namespace(*pid, kind).is_some_and(|ns| lab_namespaces.contains(&ns))
            })
        })
        .filter_map(|pid| process::Recorded::of(pid).ok())
        .collect();
    holding.extend(processes.iter().copied());
    assert!(holding.len() > 4 * 2, "the lab's processes: {holding:?}");
    let daemon = state.fence_daemon.expect("a fence daemon is recorded");
    let dir = lab.dir().to_path_buf();
    let dir_text = dir.to_string_lossy().into_owned();

    let started = Instant::now();
    lab.down().expect("down");
    eprintln!(
        "[up-down] FIGURE down: {:.2} s",
        started.elapsed().as_secs_f64()
    );

    assert_eq!(
        survivors(&holding),
        Vec::<i32>::new(),
        "processes of the lab left running"
    );
    for h in &holders {
        assert!(!h.is_running(), "init {} still running", h.init.pid);
        assert!(
            !h.unshare.is_running(),
            "unshare {} still running",
            h.unshare.pid
        );
    }
    assert!(
        !daemon.is_running(),
        "the fence daemon {} still runs",
        daemon.pid
    );
    let strays: Vec<i32> = process::all_pids()
        .unwrap()
        .into_iter()
        .filter(|pid| process::cmdline(*pid).iter().any(|a| a.contains(&dir_text)))
        .filter(|pid| process::stat(*pid).is_some_and(|s| s.state != 'Z'))
        .collect();
    assert_eq!(
        strays,
        Vec::<i32>::new(),
        "processes still naming {dir_text}"
    );
    assert_eq!(host_mounts_under(&dir), Vec::<String>::new());
    assert_eq!(
        host_links(),
        links_before,
        "a bridge or veth was left in the host"
    );
    assert!(!dir.exists(), "{dir_text} still exists");
    assert!(!other_dir.exists());

    tusk_lab::down(&dir).expect("down is idempotent");
}
