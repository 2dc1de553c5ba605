//! The postgresql agent against a real PostgreSQL 15 server: the OCF
//! lifecycle and the pid-file failures (DESIGN.md failure 1).

use ocf::Status;
use tusk_testkit::{wait_until, Guard};

const AGENT: &str = env!("CARGO_BIN_EXE_postgresql");

fn instance() -> tusk_testkit::Instance {
    tusk_testkit::Instance::new(AGENT)
}

fn agent() -> tusk_testkit::Agent {
    tusk_testkit::Agent::new(AGENT)
}
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use std::process::Command;
use std::time::Duration;

#[test]
fn start_monitor_stop_and_their_repeats() {
    let pg = instance();
    pg.agent().run("monitor").expect(Status::NotRunning);
    pg.agent().run("start").expect(Status::Success);
    assert_eq!(pg.psql("SELECT pg_is_in_recovery()"), "f");
    pg.agent().run("monitor").expect(Status::Success);
    let pid = pg.postmaster_pid().unwrap();
    pg.agent().run("start").expect(Status::Success);
    assert_eq!(
        pg.postmaster_pid(),
        Some(pid),
        "a second start must not restart the server"
    );
    pg.agent().run("stop").expect(Status::Success);
    assert!(
        pg.processes().is_empty(),
        "processes left: {:?}",
        pg.processes()
    );
    pg.agent().run("monitor").expect(Status::NotRunning);
    pg.agent().run("stop").expect(Status::Success);
}

#[test]
fn the_socket_and_log_directories_are_created_for_the_server_user() {
    use std::os::unix::fs::MetadataExt;
    let pg = instance();
    assert!(!pg.socketdir.exists());
    pg.agent().run("start").expect(Status::Success);
    let owner = std::fs::metadata(&pg.socketdir).unwrap().uid();
    assert_eq!(owner, tusk_testkit::postgres_user().uid.as_raw());
    assert!(pg.logfile.exists());
}

#[test]
fn a_pid_file_naming_a_dead_pid_is_moved_aside_and_the_server_starts() {
    let pg = instance();
    let mut gone = Command::new("true").spawn().unwrap();
    let dead = gone.id();
    gone.wait().unwrap();
    pg.write_pid_file(&format!(
        "{dead}\n{}\n1700000000\n5432\n",
        pg.pgdata.display()
    ));
    pg.agent().run("monitor").expect(Status::NotRunning);
    pg.agent().run("start").expect(Status::Success);
    pg.agent().run("monitor").expect(Status::Success);
    assert!(pg.pgdata.join("postmaster.pid.tusk-stale").exists());
}

#[test]
fn a_pid_reused_by_an_unrelated_process_is_neither_running_nor_blocking_nor_killed() {
    let pg = instance();
    let mut sleeper = Guard(Command::new("sleep").arg("120").spawn().unwrap());
    let forged = sleeper.0.id();
    pg.write_pid_file(&format!(
        "{forged}\n{}\n1700000000\n5432\n",
        pg.pgdata.display()
    ));

    let probe = pg.agent().run("monitor").expect(Status::NotRunning);
    assert!(probe.reason().is_empty(), "{}", probe.stderr);
    // pg_ctl stop would signal the PID in the file; ours must not.
    pg.agent().run("stop").expect(Status::Success);
    assert!(sleeper.is_alive(), "stop killed an unrelated process");

    pg.agent().run("start").expect(Status::Success);
    pg.agent().run("monitor").expect(Status::Success);
    assert_ne!(pg.postmaster_pid(), Some(forged as i32));
    pg.agent().run("stop").expect(Status::Success);
    assert!(sleeper.is_alive(), "stop killed an unrelated process");
}

#[test]
fn the_postmaster_of_another_instance_is_not_ours() {
    let a = instance();
    let b = instance();
    b.agent().run("start").expect(Status::Success);
    let b_pid = b.postmaster_pid().unwrap();
    a.write_pid_file(&format!(
        "{b_pid}\n{}\n1700000000\n5432\n",
        a.pgdata.display()
    ));

    a.agent().run("monitor").expect(Status::NotRunning);
    a.agent().run("stop").expect(Status::Success);
    b.agent().run("monitor").expect(Status::Success);
    a.agent().run("start").expect(Status::Success);
    a.agent().run("stop").expect(Status::Success);
    b.agent().run("monitor").expect(Status::Success);
    assert_eq!(b.postmaster_pid(), Some(b_pid));
}

#[test]
fn a_garbage_pid_file_does_not_block_start() {
    let pg = instance();
    pg.write_pid_file("hello\n");
    pg.agent().run("monitor").expect(Status::NotRunning);
    pg.agent().run("start").expect(Status::Success);
}

#[test]
fn backends_orphaned_by_a_killed_postmaster_are_a_failure_until_stop_kills_them() {
    let pg = instance();
    pg.agent().run("start").expect(Status::Success);
    // A busy loop never checks for postmaster death, so this backend
    // outlives a SIGKILLed postmaster, as long-running queries do in the field.
    let _client = Guard(
        pg.psql_command("DO $$BEGIN LOOP END LOOP; END$$")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    assert!(wait_until(Duration::from_secs(10), || {
        pg.psql("SELECT count(*) FROM pg_stat_activity WHERE query LIKE 'DO%' AND state = 'active'")
            == "1"
    }));
    let postmaster = pg.postmaster_pid().unwrap();
    kill(Pid::from_raw(postmaster), Signal::SIGKILL).unwrap();
    assert!(wait_until(Duration::from_secs(5), || !pg
        .processes()
        .contains(&postmaster)));
    assert!(
        !pg.processes().is_empty(),
        "the busy backend should outlive its postmaster"
    );

    let m = pg.agent().run("monitor").expect(Status::ErrGeneric);
    assert!(
        m.reason().contains("without a postmaster"),
        "{}",
        m.reason()
    );
    let s = pg.agent().run("start").expect(Status::ErrGeneric);
    assert!(
        s.reason().contains("stop the resource first"),
        "{}",
        s.reason()
    );
    pg.agent().run("stop").expect(Status::Success);
    assert!(pg.processes().is_empty(), "left: {:?}", pg.processes());
    pg.agent().run("start").expect(Status::Success);
    pg.agent().run("monitor").expect(Status::Success);
}

#[test]
fn a_failed_start_reports_the_servers_own_reason() {
    let pg = instance();
    let out = pg
        .agent()
        .param("start_opts", "-c shared_buffers=banana")
        .run("start")
        .expect(Status::ErrGeneric);
    assert!(out.reason().contains("shared_buffers"), "{}", out.reason());
    assert!(pg.processes().is_empty());
}

#[test]
fn a_hung_postmaster_fails_the_monitor_in_time_and_stop_still_succeeds() {
    let pg = instance();
    pg.agent().run("start").expect(Status::Success);
    let postmaster = Pid::from_raw(pg.postmaster_pid().unwrap());
    kill(postmaster, Signal::SIGSTOP).unwrap();

    let m = pg
        .agent()
        .timeout_ms(3000)
        .run("monitor")
        .expect(Status::ErrGeneric);
    assert!(m.took < Duration::from_secs(3), "monitor took {:?}", m.took);
    assert!(m.reason().contains("runs, but"), "{}", m.reason());

    // Fast and immediate shutdown cannot act on a stopped process; SIGKILL can.
    let s = pg
        .agent()
        .timeout_ms(8000)
        .run("stop")
        .expect(Status::Success);
    assert!(s.took < Duration::from_secs(8), "stop took {:?}", s.took);
    assert!(pg.processes().is_empty(), "left: {:?}", pg.processes());
    pg.agent().run("start").expect(Status::Success);
}

#[test]
fn a_postmaster_that_refuses_connections_fails_the_monitor_with_the_servers_reason() {
    let pg = instance();
    pg.agent().run("start").expect(Status::Success);
    pg.psql("CREATE DATABASE monitored");
    pg.psql("ALTER DATABASE monitored WITH ALLOW_CONNECTIONS false");
    let m = pg
        .agent()
        .param("pgdb", "monitored")
        .run("monitor")
        .expect(Status::ErrGeneric);
    assert!(
        m.reason()
            .contains("is not currently accepting connections"),
        "{}",
        m.reason()
    );
    pg.agent().run("monitor").expect(Status::Success);
}

#[test]
fn stop_succeeds_even_when_another_parameter_became_invalid() {
    // A failed stop gets the node fenced; stop needs pgdata alone.
    let pg = instance();
    pg.agent().run("start").expect(Status::Success);
    pg.agent()
        .param("pgport", "not-a-port")
        .run("monitor")
        .expect(Status::ErrConfigured);
    let s = pg
        .agent()
        .param("pgport", "not-a-port")
        .run("stop")
        .expect(Status::Success);
    assert!(s.stderr.contains("stopping what runs in"), "{}", s.stderr);
    assert!(pg.processes().is_empty(), "left: {:?}", pg.processes());
    agent()
        .param("pgport", "1")
        .run("stop")
        .expect(Status::ErrConfigured);
}

#[test]
fn a_config_file_outside_pgdata_is_used() {
    let pg = instance();
    let etc = pg.root().join("etc with 'quote");
    std::fs::create_dir(&etc).unwrap();
    let conf = etc.join("postgresql.conf");
    std::fs::rename(pg.pgdata.join("postgresql.conf"), &conf).unwrap();
    tusk_testkit::append(
        &conf,
        &format!(
            "data_directory = '{}'\napplication_name = 'from-etc'\n",
            pg.pgdata.display()
        ),
    );
    pg.agent()
        .param("config", &conf)
        .run("start")
        .expect(Status::Success);
    assert_eq!(pg.psql("SHOW config_file"), conf.display().to_string());
}

#[test]
fn validate_all_maps_each_problem_to_its_ocf_code() {
    use std::os::unix::fs::PermissionsExt;
    let pg = instance();
    pg.agent().run("validate-all").expect(Status::Success);
    pg.agent()
        .param("bindir", "/nonexistent/bin")
        .run("validate-all")
        .expect(Status::ErrInstalled);
    pg.agent()
        .param("pguser", "tusk-no-such-user")
        .run("validate-all")
        .expect(Status::ErrInstalled);
    let wrong_owner = pg
        .agent()
        .param("pguser", "nobody")
        .run("validate-all")
        .expect(Status::ErrPerm);
    assert!(
        wrong_owner.reason().contains("not by pguser nobody"),
        "{}",
        wrong_owner.reason()
    );
    pg.agent()
        .param("pgport", "abc")
        .run("validate-all")
        .expect(Status::ErrConfigured);
    pg.agent()
        .param("pgport", "99999")
        .run("validate-all")
        .expect(Status::ErrConfigured);
    pg.agent()
        .param("pgdata", "/nonexistent/data")
        .run("validate-all")
        .expect(Status::ErrInstalled);
    pg.agent()
        .param("config", "/nonexistent/postgresql.conf")
        .run("validate-all")
        .expect(Status::ErrInstalled);
    agent().run("validate-all").expect(Status::ErrConfigured);

    let mode =
        |m: u32| std::fs::set_permissions(&pg.pgdata, std::fs::Permissions::from_mode(m)).unwrap();
    mode(0o755);
    pg.agent().run("validate-all").expect(Status::ErrPerm);
    pg.agent().run("start").expect(Status::ErrPerm);
    mode(0o000);
    pg.agent().run("validate-all").expect(Status::ErrPerm);
    mode(0o750);
    pg.agent().run("validate-all").expect(Status::Success);

    let version = pg.pgdata.join("PG_VERSION");
    std::fs::write(&version, "14\n").unwrap();
    let other = pg
        .agent()
        .param("bindir", tusk_testkit::BINDIR)
        .run("validate-all")
        .expect(Status::ErrConfigured);
    assert!(
        other.reason().contains("PostgreSQL 14"),
        "{}",
        other.reason()
    );
    std::fs::remove_file(&version).unwrap();
    let not_data = pg.agent().run("validate-all").expect(Status::ErrConfigured);
    assert!(
        not_data
            .reason()
            .contains("not a PostgreSQL data directory"),
        "{}",
        not_data.reason()
    );
}

#[test]
fn a_value_that_is_not_utf8_is_refused_not_replaced_by_the_default() {
    use std::os::unix::ffi::OsStrExt;
    let pg = instance();
    // 5433 with a stray byte: counted as unset, it would become 5432.
    let out = pg
        .agent()
        .param("pgport", std::ffi::OsStr::from_bytes(b"5433\xff"))
        .run("validate-all")
        .expect(Status::ErrConfigured);
    assert!(
        out.reason().contains("pgport") && out.reason().contains("UTF-8"),
        "{}",
        out.reason()
    );
}

#[test]
fn an_exit_reason_is_one_line_whatever_the_operator_typed() {
    let pg = instance();
    let out = pg
        .agent()
        .param("pguser", "first\nsecond")
        .run("validate-all")
        .expect(Status::ErrInstalled);
    assert!(
        out.reason().contains("second"),
        "the exit reason was cut at the newline: {:?}",
        out.stderr
    );
}

#[test]
fn start_opts_reach_the_server_as_words_and_never_a_shell() {
    let pg = instance();
    let witness = pg.root().join("shell-ran");
    let out = pg
        .agent()
        .param(
            "start_opts",
            format!(
                "-c work_mem=5MB -c cluster_name=$(touch {})",
                witness.display()
            ),
        )
        .run("start")
        .expect(Status::ErrConfigured);
    assert!(out.reason().contains("start_opts"), "{}", out.reason());
    assert!(!witness.exists(), "the option reached a shell");
    pg.agent()
        .param(
            "start_opts",
            "-c work_mem=5MB -c cluster_name='tusk test; x'",
        )
        .run("start")
        .expect(Status::Success);
    assert_eq!(pg.psql("SHOW work_mem"), "5MB");
    assert_eq!(
        pg.psql("SELECT current_setting('application_name', true) IS NOT NULL"),
        "t"
    );
    pg.agent().run("stop").expect(Status::Success);
}
