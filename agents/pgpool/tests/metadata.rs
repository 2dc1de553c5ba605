//! The meta-data Pacemaker, pcs and crmsh read: the checked-in copy is what
//! the binary prints, and it is valid against resource-agents'
//! ra-api-1.dtd (what ocf-tester checks), its RelaxNG schema and pcs's OCF
//! 1.1 schema.

#[test]
fn meta_data_is_the_checked_in_file_and_valid_for_ocf_tester_and_pcs() {
    ocf::testing::check_metadata(
        env!("CARGO_BIN_EXE_pgpool"),
        std::path::Path::new(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../metadata/pgpool.xml"
        )),
    );
}

#[test]
fn the_sizing_advice_and_every_parameter_are_documented() {
    let xml = tusk_testkit::Agent::new(env!("CARGO_BIN_EXE_pgpool"))
        .run("meta-data")
        .stdout;
    for needle in [
        "search_primary_node_timeout",
        "health_check_period",
        "backend_application_nameN",
        "<parameter name=\"reconcile\"",
        "<parameter name=\"pcp_passfile\"",
    ] {
        assert!(xml.contains(needle), "meta-data lacks {needle}");
    }
}
