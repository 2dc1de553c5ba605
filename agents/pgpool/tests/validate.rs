//! Bad parameters and pgpool settings that fight Pacemaker get the OCF
//! code Pacemaker acts on: 5 (not installed on this node), 4 (a file the
//! agent may not or must not read), 6 (wrong everywhere), with a reason;
//! and stop still succeeds with a broken configuration.

mod common;

use common::setup;
use ocf::Status;
use std::os::unix::fs::PermissionsExt;

#[test]
fn each_problem_gets_its_code_and_a_reason() {
    let s = setup("pgpool-validate", &[]);
    let dir = s.pool.root().to_path_buf();
    s.agent().run("validate-all").expect(Status::Success);

    let missing = dir.join("missing");
    for (param, code) in [
        ("pgpool", Status::ErrInstalled),
        ("config", Status::ErrInstalled),
        ("pcp_config", Status::ErrInstalled),
        ("hba_config", Status::ErrInstalled),
        ("pcp_passfile", Status::ErrInstalled),
        ("db_passfile", Status::ErrInstalled),
    ] {
        let out = s
            .agent()
            .param(param, &missing)
            .run("validate-all")
            .expect(code);
        assert!(
            out.reason().contains("missing") || out.reason().contains("does not exist"),
            "{param}: {}",
            out.reason()
        );
    }

    // A password file others may read is ignored by pcp_* programs too.
    let open = dir.join("pcppass-open");
    std::fs::copy(&s.pool.pcppass, &open).unwrap();
    std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o644)).unwrap();
    let out = s
        .agent()
        .param("pcp_passfile", &open)
        .run("validate-all")
        .expect(Status::ErrPerm);
    assert!(out.reason().contains("0600"), "{}", out.reason());
    assert!(!out.reason().contains("pcp-secret"), "{}", out.reason());
    // Symbolic links are not followed, for files the service account owns.
    let link = dir.join("pcp.conf-link");
    std::os::unix::fs::symlink(&s.pool.pcp_conf, &link).unwrap();
    let out = s
        .agent()
        .param("pcp_config", &link)
        .run("validate-all")
        .expect(Status::ErrPerm);
    assert!(out.reason().contains("symbolic link"), "{}", out.reason());

    // A password pcp.conf does not hold, a user it does not know.
    let wrong = dir.join("pcppass-wrong");
    std::fs::write(&wrong, "*:*:tusk_pcp:not-the-password\n").unwrap();
    std::fs::set_permissions(&wrong, std::fs::Permissions::from_mode(0o600)).unwrap();
    let out = s
        .agent()
        .param("pcp_passfile", &wrong)
        .run("validate-all")
        .expect(Status::ErrConfigured);
    assert!(out.reason().contains("is not the one"), "{}", out.reason());
    let out = s
        .agent()
        .param("pcp_user", "nobody")
        .run("validate-all")
        .expect(Status::ErrConfigured);
    assert!(out.reason().contains("no line"), "{}", out.reason());

    for (param, value) in [
        ("pcp_port", "98x8"),
        ("pcp_port", "0"),
        ("config", "pgpool.conf"),
        ("reconcile", "maybe"),
    ] {
        s.agent()
            .param(param, value)
            .run("validate-all")
            .expect(Status::ErrConfigured);
    }
    s.agent()
        .param("user", "tusk-no-such-user")
        .run("validate-all")
        .expect(Status::ErrInstalled);
}

#[test]
fn settings_that_make_pgpool_fight_pacemaker_are_refused_and_nothing_starts() {
    for (setting, value) in [
        ("failover_command", "'/etc/pgpool2/failover.sh %d %h'"),
        ("follow_primary_command", "'/etc/pgpool2/follow.sh %d'"),
        ("use_watchdog", "on"),
    ] {
        let s = setup("pgpool-fight", &[(setting, value)]);
        let out = s.agent().run("validate-all").expect(Status::ErrConfigured);
        assert!(out.reason().contains(setting), "{}", out.reason());
        s.agent().run("start").expect(Status::ErrConfigured);
        assert!(s.processes().is_empty(), "pgpool started anyway");
        // stop needs none of it.
        s.agent().run("stop").expect(Status::Success);
    }
    let s = setup("pgpool-failback", &[("auto_failback", "on")]);
    let out = s.agent().run("validate-all").expect(Status::Success);
    assert!(out.stderr.contains("auto_failback"), "{}", out.stderr);
}

#[test]
fn stop_succeeds_whatever_else_is_wrong() {
    let s = setup("pgpool-stop-broken", &[]);
    s.agent().run("start").expect(Status::Success);
    // Parameters stop does not need are broken: it stops anyway.
    s.agent()
        .param("pcp_port", "98x8")
        .param("pcp_passfile", "relative")
        .run("stop")
        .expect(Status::Success);
    s.assert_stopped();
    // pgpool.conf unreadable: the members are found by command line.
    s.agent().run("start").expect(Status::Success);
    let hidden = s.pool.conf.with_extension("hidden");
    std::fs::rename(&s.pool.conf, &hidden).unwrap();
    s.agent().run("monitor").expect(Status::ErrInstalled);
    let stop = s.agent().run("stop").expect(Status::Success);
    assert!(stop.stderr.contains("does not exist"), "{}", stop.stderr);
    s.assert_stopped();
    s.agent().run("monitor").expect(Status::NotRunning);
    std::fs::rename(&hidden, &s.pool.conf).unwrap();
}
