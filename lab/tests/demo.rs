//! The README's demo: `tusk-lab demo` brings up three nodes with the
//! postgresql agent started on each and prints crm_mon -1. Needs the
//! tusk-agents package installed, as ./run-tests system does.

mod common;

use std::process::Command;

#[test]
fn the_demo_starts_the_postgresql_agent_on_every_node() {
    common::require_root();
    let _turn = tusk_lab::wait_turn().unwrap();
    let dir = common::test_dir("demo");
    tusk_lab::down(&dir).unwrap();
    let _down = tusk_lab::DownOnDrop::new(&dir);
    let out = Command::new(common::EXE)
        .arg("--dir")
        .arg(&dir)
        .arg("demo")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("Online: [ node1 node2 node3 ]"), "{stdout}");
    assert!(
        stdout.contains("Started: [ node1 node2 node3 ]"),
        "{stdout}"
    );
    assert!(
        stdout.contains("ocf:tusk:postgresql") || stdout.contains("pg-clone [pg]"),
        "{stdout}"
    );
}
