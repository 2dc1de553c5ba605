//! Queries and their failures against real servers and real sockets: what
//! each kind of failure looks like when it happens, and that every call
//! ends by its deadline.

use nix::unistd::{chown, Gid, Uid};
use ocf::Deadline;
use pgclient::{query, query_each, value, ErrorKind};
use std::os::unix::net::UnixListener;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};
use tusk_testkit::{postgres_user, Instance, BINDIR};

/// A PostgreSQL 15 server on its own unix socket, killed when dropped.
fn server() -> Instance {
    // The agent binary is not used here: these tests start the server
    // with pg_ctl.
    let pg = Instance::new("/bin/false");
    let account = postgres_user();
    for dir in [&pg.socketdir, &pg.logfile.parent().unwrap().to_path_buf()] {
        std::fs::create_dir_all(dir).unwrap();
        chown(dir.as_path(), Some(account.uid), Some(account.gid)).unwrap();
    }
    let out = Command::new("runuser")
        .args(["-u", "postgres", "--"])
        .arg(Path::new(BINDIR).join("pg_ctl"))
        .arg("-D")
        .arg(&pg.pgdata)
        .arg("-l")
        .arg(&pg.logfile)
        .arg("-o")
        .arg(format!("-k {}", pg.socketdir.display()))
        .args(["-w", "-t", "60", "start"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "pg_ctl start: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    pg
}

fn config(socketdir: &Path, dbname: &str) -> pgclient::Config {
    let mut pg = pgclient::Config::new();
    pg.host_path(socketdir)
        .port(5432)
        .user("postgres")
        .dbname(dbname);
    pg
}

fn as_postgres() -> Option<(Uid, Gid)> {
    let account = postgres_user();
    Some((account.uid, account.gid))
}

fn seconds(s: f64) -> Deadline {
    Deadline::after(Duration::from_secs_f64(s))
}

/// `sql` to the server on `socketdir`, as the postgres role.
fn ask(
    socketdir: &Path,
    dbname: &str,
    as_user: Option<(Uid, Gid)>,
    within: f64,
    sql: &str,
) -> pgclient::Result<Vec<pgclient::Rows>> {
    query(config(socketdir, dbname), as_user, &seconds(within), sql)
}

#[test]
fn a_socket_directory_without_a_server_is_unreachable() {
    let dir = tempfile::tempdir().unwrap();
    let e = ask(dir.path(), "postgres", None, 5.0, "SELECT 1").unwrap_err();
    assert_eq!(e.kind(), &ErrorKind::Unreachable, "{e}");
    assert!(e.reason().starts_with("cannot connect: "), "{e}");

    // A socket file left by a server that is gone: connection refused.
    drop(UnixListener::bind(dir.path().join(".s.PGSQL.5432")).unwrap());
    let e = ask(dir.path(), "postgres", None, 5.0, "SELECT 1").unwrap_err();
    assert_eq!(e.kind(), &ErrorKind::Unreachable, "{e}");
    assert!(e.reason().contains("Connection refused"), "{e}");
}

#[test]
fn a_server_that_accepts_and_never_answers_times_out_at_the_deadline() {
    let dir = tempfile::tempdir().unwrap();
    // The kernel completes the connection into the backlog; nobody ever
    // reads the startup packet: a hung postmaster.
    let _hung = UnixListener::bind(dir.path().join(".s.PGSQL.5432")).unwrap();
    let started = Instant::now();
    let e = ask(dir.path(), "postgres", None, 0.5, "SELECT 1").unwrap_err();
    let took = started.elapsed();
    assert_eq!(e.kind(), &ErrorKind::Timeout { connected: false }, "{e}");
    assert_eq!(e.reason(), "no answer within 0.5s");
    assert!(took < Duration::from_millis(900), "took {took:?}");
}

#[test]
fn a_server_answers_as_its_os_user_and_says_what_it_refused() {
    let pg = server();
    let results = ask(
        &pg.socketdir,
        "postgres",
        as_postgres(),
        20.0,
        "SELECT current_user, NULL::text, current_setting('application_name'); \
         SELECT 1 WHERE false",
    )
    .unwrap();
    assert_eq!(value(&results, 0, 0, 0), Some("postgres"));
    assert_eq!(results[0][0][1], None);
    assert_eq!(value(&results, 0, 0, 2), Some("tusk"));
    assert_eq!(results.len(), 2);
    assert!(results[1].is_empty());
    assert!(
        Uid::effective().is_root(),
        "the identity was not given back"
    );
    assert!(Gid::effective() == Gid::from_raw(0));

    // One implicit transaction each: ALTER SYSTEM would refuse to share one.
    let results = query_each(
        config(&pg.socketdir, "postgres"),
        as_postgres(),
        &seconds(20.0),
        &[
            "ALTER SYSTEM SET work_mem = '5MB'",
            "SELECT pg_reload_conf()",
        ],
    )
    .unwrap();
    assert_eq!(value(&results, 1, 0, 0), Some("t"));

    let e = ask(&pg.socketdir, "nope", as_postgres(), 20.0, "SELECT 1").unwrap_err();
    assert_eq!(e.sqlstate(), Some("3D000"), "{e}");
    assert_eq!(
        e.reason(),
        "cannot connect: FATAL: database \"nope\" does not exist"
    );

    // Peer authentication: root is not postgres.
    let e = ask(&pg.socketdir, "postgres", None, 20.0, "SELECT 1").unwrap_err();
    assert_eq!(e.sqlstate(), Some("28000"), "{e}");
    assert!(
        matches!(e.kind(), ErrorKind::Server { message, .. }
        if message == "Peer authentication failed for user \"postgres\""),
        "{e:?}"
    );

    let e = ask(&pg.socketdir, "postgres", as_postgres(), 20.0, "SELECT 1/0").unwrap_err();
    assert_eq!(e.sqlstate(), Some("22012"), "{e}");
    assert_eq!(e.reason(), "query failed: ERROR: division by zero");
    let ocf: ocf::OcfError = e.context("dividing").into();
    assert_eq!(ocf.status(), ocf::Status::ErrGeneric);
    assert_eq!(
        ocf.reason(),
        "dividing: query failed: ERROR: division by zero"
    );
}

#[test]
fn a_statement_that_outlasts_the_deadline_is_abandoned_after_the_session_started() {
    let pg = server();
    let started = Instant::now();
    // The statement lifts its own statement_timeout: only the deadline
    // ends the wait.
    let e = ask(
        &pg.socketdir,
        "postgres",
        as_postgres(),
        1.0,
        "SET statement_timeout = 0; SELECT pg_sleep(30)",
    )
    .unwrap_err();
    let took = started.elapsed();
    assert_eq!(e.kind(), &ErrorKind::Timeout { connected: true }, "{e}");
    assert!(took < Duration::from_millis(1400), "took {took:?}");
    assert!(Uid::effective().is_root());

    // Without the override, the server's statement_timeout (the time left)
    // or the deadline ends it, whichever comes first.
    let started = Instant::now();
    let e = ask(
        &pg.socketdir,
        "postgres",
        as_postgres(),
        1.0,
        "SELECT pg_sleep(30)",
    )
    .unwrap_err();
    assert!(
        e.sqlstate() == Some("57014") || e.kind() == &ErrorKind::Timeout { connected: true },
        "{e:?}"
    );
    assert!(started.elapsed() < Duration::from_millis(1400));
}
