//! The meta-data Pacemaker, pcs and crmsh read: the checked-in copy is what
//! the binary prints, and it is valid against the schemas that ship with
//! resource-agents (ra-api-1.dtd, as ocf-tester checks it, and the OCF
//! RelaxNG schema) and pcs (its OCF 1.1 schema).

#[test]
fn meta_data_is_the_checked_in_file_and_valid_for_ocf_tester_and_pcs() {
    ocf::testing::check_metadata(
        env!("CARGO_BIN_EXE_postgresql"),
        std::path::Path::new(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../metadata/postgresql.xml"
        )),
    );
}

#[test]
fn enumerated_parameters_list_their_values() {
    let xml = tusk_testkit::Agent::new(env!("CARGO_BIN_EXE_postgresql"))
        .run("meta-data")
        .stdout;
    assert!(xml.contains("Allowed values: off, available, strict."));
    assert!(xml.contains("Allowed values: auto, off."));
}
