//! The meta-data Pacemaker, pcs and crmsh read: the checked-in copy is what
//! the binary prints, and it is valid against the schemas that ship with
//! resource-agents (ra-api-1.dtd, as ocf-tester checks it, and the OCF
//! RelaxNG schema) and pcs (its OCF 1.1 schema).

fn agent() -> tusk_testkit::Agent {
    tusk_testkit::Agent::new(env!("CARGO_BIN_EXE_postgresql"))
}
use ocf::Status;
use std::io::Write;
use std::process::{Command, Stdio};

fn metadata() -> String {
    let out = agent().run("meta-data").expect(Status::Success);
    out.stdout
}

#[test]
fn meta_data_prints_exactly_the_checked_in_file() {
    let file = concat!(env!("CARGO_MANIFEST_DIR"), "/../../metadata/postgresql.xml");
    let checked_in = std::fs::read_to_string(file).unwrap();
    assert!(
        metadata() == checked_in,
        "metadata/postgresql.xml is out of date: run `cargo run -p tusk-docgen -- metadata metadata`"
    );
}

#[test]
fn meta_data_and_usage_need_no_environment() {
    agent().run("meta-data").expect(Status::Success);
    agent()
        .run("no_such_action")
        .expect(Status::ErrUnimplemented);
    agent().run("").expect(Status::ErrUnimplemented);
    let usage = agent().run_without_action();
    assert_eq!(usage.code, 2, "{}", usage.stderr);
}

fn xmllint(args: &[&str], cwd: &str) -> (bool, String) {
    let mut child = Command::new("xmllint")
        .args(args)
        .arg("-")
        .current_dir(cwd)
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .expect("xmllint (install libxml2-utils)");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(metadata().as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn meta_data_is_valid_against_ra_api_1_dtd_as_ocf_tester_checks_it() {
    // ocf-tester pipes meta-data into `xmllint --noout --valid -` from the
    // directory that holds ra-api-1.dtd, which the DOCTYPE names.
    let (ok, err) = xmllint(&["--noout", "--valid"], "/usr/share/resource-agents");
    assert!(ok, "{err}");
}

#[test]
fn meta_data_is_valid_against_the_ocf_relaxng_schemas() {
    for schema in [
        "/usr/share/resource-agents/metadata.rng",
        "/usr/share/pcs/data/ocf-1.1.rng",
    ] {
        let (ok, err) = xmllint(&["--noout", "--relaxng", schema], "/");
        assert!(ok, "{schema}: {err}");
    }
}
