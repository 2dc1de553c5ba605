//! What pgpool-II 4.3.5 does that the agent's design rests on, pinned
//! down (docs/pgpool-facts.md, "What the agent's design rests on"). pgpool
//! is started by the fixture here, not by the agent.

mod common;

use ocf::Deadline;
use std::process::Stdio;
use std::time::{Duration, Instant};
use tusk_pgpool::pcp::{BackendStatus, Endpoint, PcpConnection, PcpErrorKind, PoolRole};
use tusk_testkit::pgpool::{pg_ctl_stop, PCP_PASSWORD, PCP_USER};
use tusk_testkit::{wait_until, Guard};

fn budget() -> Deadline {
    Deadline::after(Duration::from_secs(5))
}

fn connect(s: &common::Setup, deadline: &Deadline) -> Result<PcpConnection, String> {
    PcpConnection::connect(
        &Endpoint::unix(&s.pool.socket_dir, s.pool.pcp_port),
        PCP_USER,
        PCP_PASSWORD,
        deadline,
    )
    .map_err(|e| e.reason)
}

/// Once a shutdown has begun, pgpool ignores every other shutdown signal:
/// a smart shutdown waiting for a client locks the fast one out. So the
/// agent's stop begins with the fast shutdown.
#[test]
fn a_smart_shutdown_locks_the_fast_one_out() {
    let mut s = common::setup("pgpool-fact-smart", &[]);
    s.pool.start();
    let _client = Guard(
        s.pool
            .psql_command("SELECT pg_sleep(600)")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    assert!(wait_until(Duration::from_secs(10), || s
        .pool
        .processes()
        .iter()
        .any(|p| p.cmdline.ends_with("SELECT"))));
    let main = s.pool.running_pid().unwrap();
    let signal = |sig| nix::sys::signal::kill(nix::unistd::Pid::from_raw(main), sig).unwrap();
    signal(nix::sys::signal::Signal::SIGTERM);
    std::thread::sleep(Duration::from_secs(1));
    signal(nix::sys::signal::Signal::SIGINT);
    signal(nix::sys::signal::Signal::SIGQUIT);
    let gone = wait_until(Duration::from_secs(5), || s.pool.running_pid().is_none());
    assert!(!gone, "pgpool honoured the fast shutdown after a smart one");
    assert!(
        wait_until(Duration::from_secs(5), || s
            .pool
            .log()
            .contains("but exit handler is already in progress")),
        "{}",
        s.pool.log()
    );
}

/// At every failover pgpool restarts its PCP process, which first waits
/// for every PCP session to end and accepts nothing meanwhile: a session
/// held open keeps PCP silent. The agent closes each session at once.
#[test]
fn a_pcp_session_held_open_across_a_failover_silences_pcp() {
    let mut s = common::setup("pgpool-fact-session", &[]);
    s.pool.start();
    let mut held = connect(&s, &budget()).unwrap();
    held.detach_node(1, &budget()).unwrap();
    // The detach is a failover: the PCP process is asked to restart.
    assert!(wait_until(Duration::from_secs(10), || s
        .pool
        .log()
        .contains("restart request received in pcp child process")));
    let silent = connect(&s, &Deadline::after(Duration::from_secs(2)))
        .and_then(|mut c| c.node_count(&budget()).map_err(|e| e.reason));
    assert!(silent.is_err(), "PCP answered while a session was held");
    held.close(&budget()).unwrap();
    let started = Instant::now();
    assert!(wait_until(Duration::from_secs(10), || connect(
        &s,
        &budget()
    )
    .and_then(|mut c| c.node_count(&budget()).map_err(|e| e.reason))
    .is_ok()));
    eprintln!(
        "PCP answered {:.2}s after the session closed",
        started.elapsed().as_secs_f64()
    );
}

/// A promote request for a detached backend is acknowledged, logged as
/// invalid and ignored; attaching the live primary instead makes pgpool
/// search for its primary and find it.
#[test]
fn a_detached_primary_is_attached_not_promoted() {
    let mut s = common::setup(
        "pgpool-fact-promote-detached",
        &[("search_primary_node_timeout", "3")],
    );
    // A status file from an older run marks the primary down: pgpool
    // searches for a primary for search_primary_node_timeout before it
    // answers anything.
    std::fs::write(&s.pool.status_file, "down\nup\n").unwrap();
    let took = s.pool.start();
    eprintln!(
        "start with the primary marked down: {:.2}s",
        took.as_secs_f64()
    );
    assert!(took >= Duration::from_secs(3), "{took:?}");
    let node0 = |s: &common::Setup| s.nodes().swap_remove(0);
    assert_eq!(node0(&s).status, BackendStatus::Down);
    let mut c = connect(&s, &budget()).unwrap();
    c.promote_node(0, &budget()).unwrap();
    c.close(&budget()).unwrap();
    assert!(wait_until(Duration::from_secs(5), || s
        .pool
        .log()
        .contains(
            "invalid promote backend request, node id : 0 status: [3] not valid"
        )));
    assert_eq!(
        node0(&s).status,
        BackendStatus::Down,
        "the promote was ignored"
    );
    let mut c = connect(&s, &budget()).unwrap();
    c.attach_node(0, &budget()).unwrap();
    c.close(&budget()).unwrap();
    let info = s.wait_node(0, "pgpool's primary", |n| {
        n.status.is_attached() && n.role == PoolRole::Primary
    });
    eprintln!("attached: {info:?}");
}

/// What a client sees of pgpool while no backend is attached, and that
/// PCP answers meanwhile (the monitor's liveness check).
#[test]
fn pcp_answers_while_pgpool_refuses_clients() {
    let mut s = common::setup("pgpool-fact-refuses", &[]);
    s.pool.start();
    pg_ctl_stop(&s.standby);
    s.wait_node(1, "detached", |n| n.status == BackendStatus::Down);
    pg_ctl_stop(&s.primary);
    s.wait_node(0, "detached", |n| n.status == BackendStatus::Down);
    let refused = s.pool.try_psql("SELECT 1").unwrap_err();
    assert!(refused.contains("not accepting"), "{refused}");
    let started = Instant::now();
    let count = connect(&s, &budget())
        .and_then(|mut c| c.node_count(&budget()).map_err(|e| e.reason))
        .unwrap();
    assert_eq!(count, 2);
    assert!(started.elapsed() < Duration::from_millis(500));
    let e = connect(&s, &budget())
        .unwrap()
        .promote_node(5, &budget())
        .unwrap_err();
    assert!(
        matches!(e.kind, PcpErrorKind::Server | PcpErrorKind::Protocol),
        "{e}"
    );
}

/// A client session through pgpool, over TCP (127.0.0.1) or its unix
/// socket, which has asked one read (answered by its load-balance node) and
/// then sits idle; with whether that node is the standby.
fn idle_session(s: &common::Setup, tcp: bool) -> (postgres::Client, bool) {
    let mut pg = postgres::Config::new();
    if tcp {
        pg.host("127.0.0.1");
    } else {
        pg.host_path(&s.pool.socket_dir);
    }
    let mut client = pg
        .port(s.pool.port)
        .user(tusk_testkit::pgpool::DB_USER)
        .password(tusk_testkit::pgpool::DB_PASSWORD)
        .dbname("postgres")
        .connect_timeout(Duration::from_secs(10))
        .connect(postgres::NoTls)
        .unwrap_or_else(|e| panic!("a session through pgpool (tcp: {tcp}): {e}"));
    let rows = client
        .simple_query("SELECT current_setting('data_directory')")
        .unwrap();
    let on_standby = rows.iter().any(|m| match m {
        postgres::SimpleQueryMessage::Row(r) => {
            r.get(0) == Some(s.standby.pgdata.to_str().unwrap())
        }
        _ => false,
    });
    (client, on_standby)
}

/// Whether the session still takes a write (the primary's); what the
/// client was told when not.
fn writes(client: &mut postgres::Client) -> Result<(), String> {
    client
        .simple_query("INSERT INTO attach_probe VALUES (1)")
        .map(drop)
        .map_err(|e| match e.as_db_error() {
            Some(db) => format!("{}: {}", db.severity(), db.message()),
            None => e.to_string(),
        })
}

/// A free TCP port on 127.0.0.1 (asked of the kernel, then released).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// One session's fate across a standby's detach and attach.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Fate {
    tcp: bool,
    /// Its load-balance node (where its reads go) was the standby.
    on_standby: bool,
    /// It wrote while the standby was detached (`None`: it stayed idle).
    wrote_while_detached: Option<bool>,
    /// It wrote at the end: after the attach, or (`attach` off) with the
    /// standby still detached though streaming again.
    wrote_at_end: bool,
}

/// Idle sessions through pgpool across a standby's detach and attach, in
/// five rounds: sessions are opened over TCP and over the unix socket
/// (with the standby attached when `restart`, as clients that were there
/// before it went down; else after a PCP detach); the standby goes
/// (stopped, so that pgpool's health check detaches it, then started again
/// and streaming; or detached over PCP); half the sessions write while it
/// is detached; it is attached over PCP (`attach`; else only after the
/// next step); every session writes.
fn sessions_across_attaches(restart: bool, weights: [&str; 2], attach: bool) -> Vec<Fate> {
    const ROUNDS: usize = 8;
    const EACH: usize = 4;
    let mut s = common::setup(
        &format!(
            "pgpool-fact-attach-{restart}-{}-{attach}",
            weights.join("-")
        ),
        &[
            ("backend_weight0", weights[0]),
            ("backend_weight1", weights[1]),
            ("num_init_children", "24"),
        ],
    );
    s.pool.listen_on_tcp(free_port());
    s.pool.start();
    s.primary.psql("CREATE TABLE attach_probe (v int)");
    let request = |attach: bool| {
        let mut c = connect(&s, &budget()).unwrap();
        if attach {
            c.attach_node(1, &budget()).unwrap();
        } else {
            c.detach_node(1, &budget()).unwrap();
        }
        c.close(&budget()).unwrap();
    };
    let mut fates = Vec::new();
    for _ in 0..ROUNDS {
        if !restart {
            request(false);
            s.wait_node(1, "detached", |n| n.status == BackendStatus::Down);
            // pgpool restarts idle children after a failover: wait until a
            // new session works.
            assert!(wait_until(Duration::from_secs(10), || s
                .pool
                .try_psql("SELECT 1")
                .is_ok()));
        }
        let mut sessions: Vec<(postgres::Client, Fate)> = [true, false]
            .into_iter()
            .flat_map(|tcp| (0..EACH).map(move |i| (tcp, i)))
            .map(|(tcp, i)| {
                let (client, on_standby) = idle_session(&s, tcp);
                let fate = Fate {
                    tcp,
                    on_standby,
                    wrote_while_detached: (i % 2 == 0).then_some(false),
                    wrote_at_end: false,
                };
                (client, fate)
            })
            .collect();
        if restart {
            s.stop_backend(&s.standby, 1);
            tusk_testkit::pgpool::pg_ctl_start(&s.standby);
            assert!(wait_until(Duration::from_secs(30), || s
                .primary
                .replication_state("node2")
                .as_deref()
                == Some("streaming")));
        }
        std::thread::sleep(Duration::from_secs(1));
        let mut said = std::collections::BTreeSet::new();
        for (client, fate) in &mut sessions {
            if fate.wrote_while_detached.is_some() {
                let wrote = writes(client);
                fate.wrote_while_detached = Some(wrote.is_ok());
                said.extend(wrote.err());
            }
        }
        let attached = |s: &common::Setup| {
            request(true);
            s.wait_node(1, "attached", |n| n.status.is_attached());
        };
        if attach {
            attached(&s);
        }
        std::thread::sleep(Duration::from_secs(2));
        for (client, fate) in &mut sessions {
            let wrote = writes(client);
            fate.wrote_at_end = wrote.is_ok();
            said.extend(wrote.err());
            fates.push(*fate);
        }
        if !attach {
            attached(&s);
        }
        for line in said {
            eprintln!("a client was told: {line}");
        }
    }
    fates
}

/// Counts of each kind of fate, for the figures.
fn tally(what: &str, fates: &[Fate]) -> std::collections::BTreeMap<Fate, usize> {
    let mut counts = std::collections::BTreeMap::new();
    for f in fates {
        *counts.entry(*f).or_insert(0) += 1;
    }
    eprintln!("{what}:");
    for (f, n) in &counts {
        eprintln!("  {n:2} x {f:?}");
    }
    counts
}

/// The attach itself closes no session whose connections pgpool's child
/// still holds whole (a PCP detach, the server kept running; or a standby
/// outside load balancing). After a standby's restart, the sessions whose
/// load-balance node was the standby fail at their next statement, attached
/// or not, and a session that made a statement since the stop and went on
/// is not closed by the attach. Idle sessions balanced to the primary are
/// closed now and then, with the attach and without: the figures are
/// printed, and in docs/pgpool-facts.md.
#[test]
fn what_an_attach_does_to_idle_client_sessions() {
    let all_wrote = |fates: &[Fate]| fates.iter().all(|f| f.wrote_at_end);
    let detached = sessions_across_attaches(false, ["1", "1"], true);
    tally("PCP detach, weights 1/1, attached", &detached);
    assert!(all_wrote(&detached), "an attach closed a session");
    let primary_only = sessions_across_attaches(true, ["1", "0"], true);
    tally(
        "standby restarted, standby weight 0, attached",
        &primary_only,
    );
    assert!(
        all_wrote(&primary_only),
        "a session closed without load balancing"
    );

    let idle_on_primary = |f: &&Fate| !f.on_standby && f.wrote_while_detached.is_none();
    for attach in [false, true] {
        let fates = sessions_across_attaches(true, ["3", "1"], attach);
        tally(
            &format!("standby restarted, weights 3/1, attached: {attach}"),
            &fates,
        );
        assert!(
            fates
                .iter()
                .filter(|f| f.on_standby)
                .all(|f| !f.wrote_at_end),
            "a session balanced to the stopped standby went on"
        );
        assert!(
            fates
                .iter()
                .filter(|f| f.wrote_while_detached == Some(true))
                .all(|f| f.wrote_at_end),
            "a session that wrote after the stop was closed later"
        );
        let idle: Vec<&Fate> = fates.iter().filter(idle_on_primary).collect();
        let closed = idle.iter().filter(|f| !f.wrote_at_end).count();
        let tcp = idle.iter().filter(|f| f.tcp).count();
        let tcp_closed = idle.iter().filter(|f| f.tcp && !f.wrote_at_end).count();
        eprintln!(
            "attached: {attach}: {closed} of {} idle sessions balanced to the primary closed \
             ({tcp_closed} of {tcp} over TCP)",
            idle.len()
        );
    }
}
