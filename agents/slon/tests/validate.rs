//! Bad parameters get the OCF code Pacemaker acts on, from validate-all
//! and from start; stop never fails for them. And the meta-data.

use ocf::Status;
use std::os::unix::fs::PermissionsExt;
use tusk_testkit::Agent;

const BIN: &str = env!("CARGO_BIN_EXE_slon");

fn agent() -> Agent {
    Agent::new(BIN)
        .env("OCF_RESOURCE_INSTANCE", "slon-validate")
        .param("cluster_name", "tusk")
        .param("conninfo", "host=/nonexistent/run dbname=app")
        .param("pidfile", "/nonexistent/slon.pid")
}

/// Builds the agent of one case (Agent has no Clone: each action gets its own).
type MakeAgent = Box<dyn Fn() -> Agent>;

#[test]
fn a_good_configuration_validates() {
    agent().run("validate-all").expect(Status::Success);
}

#[test]
fn bad_parameters_get_the_code_pacemaker_acts_on() {
    let dir = tempfile::tempdir().unwrap();
    let secret = dir.path().join("slon.conf");
    std::fs::write(&secret, "log_level=1\n").unwrap();
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o600)).unwrap();
    let secret = secret.to_str().unwrap().to_string();
    let cases: Vec<(MakeAgent, Status, &str)> = vec![
        (
            Box::new(|| agent().param("slon", "/nonexistent/slon")),
            Status::ErrInstalled,
            "/nonexistent/slon is missing or not executable",
        ),
        (
            Box::new(|| agent().param("user", "tusk-no-such-user")),
            Status::ErrInstalled,
            "OS user tusk-no-such-user does not exist",
        ),
        (
            Box::new(|| agent().param("config_file", "/nonexistent/slon.conf")),
            Status::ErrInstalled,
            "does not exist on this node",
        ),
        (
            Box::new(|| agent().param("cluster_name", "set")),
            Status::ErrConfigured,
            "is a slonik keyword",
        ),
        (
            Box::new(|| agent().param("cluster_name", "a;b")),
            Status::ErrConfigured,
            "Slony cluster name",
        ),
        (
            Box::new(|| agent().param("conninfo", "dbname='app")),
            Status::ErrConfigured,
            "conninfo",
        ),
        (
            Box::new(|| agent().param("conninfo", "passfile=/x dbname=app")),
            Status::ErrConfigured,
            "conninfo",
        ),
        (
            Box::new(|| agent().param("sets", "1 x")),
            Status::ErrConfigured,
            "parameter sets",
        ),
        (
            Box::new(|| agent().param("options", "-p /tmp/other.pid")),
            Status::ErrConfigured,
            "pidfile parameter",
        ),
        (
            Box::new(|| agent().param("lag_time", "-1")),
            Status::ErrConfigured,
            "lag_time",
        ),
        (
            Box::new(|| agent().param("admin_conninfo", "1:dbname='x")),
            Status::ErrConfigured,
            "admin_conninfo",
        ),
        (
            Box::new(|| Agent::new(BIN).param("conninfo", "dbname=app")),
            Status::ErrConfigured,
            "cluster_name",
        ),
        (
            Box::new(|| agent().param("user", "root")),
            Status::ErrPerm,
            "is root",
        ),
        (
            Box::new(move || agent().param("config_file", &secret)),
            Status::ErrPerm,
            "is not readable by postgres",
        ),
    ];
    for (make, status, says) in &cases {
        for action in ["validate-all", "start"] {
            let out = make().run(action).expect(*status);
            assert!(out.reason().contains(says), "{action}: {}", out.reason());
        }
        // Nothing of a configuration start refuses can run: stop succeeds.
        make().run("stop").expect(Status::Success);
    }
}

#[test]
fn meta_data_is_the_checked_in_file_and_valid_for_ocf_tester_and_pcs() {
    ocf::testing::check_metadata(
        BIN,
        std::path::Path::new(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../metadata/slon.xml"
        )),
    );
}
