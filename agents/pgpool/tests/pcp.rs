//! The PCP client against a real pgpool-II 4.3 in front of a real
//! PostgreSQL 15 primary (node 0) and streaming standby (node 1).

use ocf::Deadline;
use std::time::{Duration, Instant};
use tusk_pgpool::pcp::{
    BackendStatus, Endpoint, LiveRole, LiveStatus, PcpConnection, PcpErrorKind, PoolRole,
};
use tusk_testkit::pgpool::{
    pg_ctl_promote, pg_ctl_start, pg_ctl_stop, Pgpool, PCP_PASSWORD, PCP_USER,
};
use tusk_testkit::wait_until;

mod common;

use common::Setup as Cluster;

/// The fixture's cluster, pgpool started by the fixture itself.
fn cluster(settings: &[(&str, &str)]) -> Cluster {
    let mut c = common::setup("pgpool-pcp", settings);
    let took = c.pool.start();
    eprintln!("pgpool started in {:.2}s", took.as_secs_f64());
    c
}

fn endpoint(pool: &Pgpool) -> Endpoint {
    Endpoint::unix(&pool.socket_dir, pool.pcp_port)
}

fn connect(pool: &Pgpool) -> PcpConnection {
    common::connect_pcp(pool, &budget())
}

fn budget() -> Deadline {
    Deadline::after(Duration::from_secs(10))
}

/// Polls pgpool's view of `node` over PCP until `pred` holds (20 s).
fn wait_node(
    pool: &Pgpool,
    node: u32,
    what: &str,
    pred: impl Fn(&tusk_pgpool::pcp::NodeInfo) -> bool,
) -> tusk_pgpool::pcp::NodeInfo {
    let mut last = None;
    let ok = wait_until(Duration::from_secs(20), || {
        let mut c = connect(pool);
        let info = c.node_info(node, &budget()).unwrap();
        c.close(&budget()).unwrap();
        let done = pred(&info);
        last = Some(info);
        done
    });
    assert!(ok, "node {node} never {what}: {last:?}\n{}", pool.log());
    last.unwrap()
}

fn pcp_node_info_output(pool: &Pgpool, node: u32) -> Vec<String> {
    let out = pool
        .pcp_command("pcp_node_info")
        .args(["-n", &node.to_string()])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "pcp_node_info: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    // "host port status weight status_name pg_status role pg_role delay
    //  replication_state sync_state date time"
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .map(str::to_string)
        .collect()
}

#[test]
fn node_info_agrees_with_pcp_node_info() {
    let c = cluster(&[]);
    // A client through pgpool turns "waiting" into "up".
    c.pool.psql("SELECT 1");
    let mut pcp = connect(&c.pool);
    assert_eq!(pcp.node_count(&budget()).unwrap(), 2);
    let all = pcp.all_node_info(&budget()).unwrap();
    assert_eq!(all.len(), 2);
    for node in 0..2u32 {
        let info = pcp.node_info(node, &budget()).unwrap();
        assert_eq!(info.node_id, node);
        assert_eq!(all[node as usize], info, "one node or all: same answer");
        let theirs = pcp_node_info_output(&c.pool, node);
        assert_eq!(theirs[0], info.hostname);
        assert_eq!(theirs[1], info.port.to_string());
        let code = match info.status {
            BackendStatus::Unused => "0",
            BackendStatus::Waiting => "1",
            BackendStatus::Up => "2",
            BackendStatus::Down => "3",
        };
        assert_eq!(theirs[2], code);
        assert_eq!(theirs[3], format!("{:.6}", info.weight));
        assert_eq!(theirs[4], info.status.name());
        assert_eq!(theirs[6], info.role.name());
        assert_eq!(
            theirs[7],
            match &info.pg_role {
                LiveRole::Primary => "primary",
                LiveRole::Standby => "standby",
                LiveRole::Unknown => "unknown",
                LiveRole::Other(s) => s,
            }
        );
        assert_eq!(theirs[8], info.replication_delay.to_string());
    }
    let (p, s) = (&all[0], &all[1]);
    assert_eq!(p.hostname, c.primary.socketdir.to_str().unwrap());
    assert_eq!(s.hostname, c.standby.socketdir.to_str().unwrap());
    assert_eq!(
        (p.role, &p.pg_role),
        (PoolRole::Primary, &LiveRole::Primary)
    );
    assert_eq!(
        (s.role, &s.pg_role),
        (PoolRole::Standby, &LiveRole::Standby)
    );
    assert_eq!(p.pg_status, LiveStatus::Up);
    assert!((p.weight - 0.5).abs() < 1e-6);
    assert!(p.status.is_attached() && s.status.is_attached());
    // pgpool's streaming check fills in the standby's state once per
    // sr_check_period.
    let s = wait_node(&c.pool, 1, "streaming", |n| {
        n.replication_state == "streaming"
    });
    assert_eq!(s.replication_sync_state, "async");
    pcp.close(&budget()).unwrap();

    // What a monitor would do each time: connect, one question, goodbye.
    let rounds = 50;
    let (mut connecting, mut asking) = (Duration::ZERO, Duration::ZERO);
    for _ in 0..rounds {
        let started = Instant::now();
        let mut pcp = connect(&c.pool);
        connecting += started.elapsed();
        let started = Instant::now();
        assert_eq!(pcp.all_node_info(&budget()).unwrap().len(), 2);
        asking += started.elapsed();
        pcp.close(&budget()).unwrap();
    }
    let ms = |d: Duration| d.as_secs_f64() * 1000.0 / rounds as f64;
    eprintln!(
        "PCP connect and login {:.2} ms, all node info {:.2} ms",
        ms(connecting),
        ms(asking)
    );
    let mut pcp = connect(&c.pool);
    let started = Instant::now();
    for _ in 0..rounds {
        pcp.node_count(&budget()).unwrap();
    }
    let counting = started.elapsed();
    let started = Instant::now();
    for _ in 0..rounds {
        pcp.node_info(1, &budget()).unwrap();
    }
    eprintln!(
        "node count {:.2} ms, one node's info {:.2} ms",
        ms(counting),
        ms(started.elapsed())
    );
    let started = Instant::now();
    for _ in 0..10 {
        let out = c.pool.pcp_command("pcp_node_info").output().unwrap();
        assert!(out.status.success());
    }
    eprintln!(
        "pcp_node_info (fork and exec): {:.2} ms",
        started.elapsed().as_secs_f64() * 100.0
    );
}

#[test]
fn attach_brings_a_restarted_standby_back_up_without_restarting_pgpool() {
    let c = cluster(&[]);
    let main = c.pool.main_pid();
    pg_ctl_stop(&c.standby);
    wait_node(&c.pool, 1, "detached", |n| n.status == BackendStatus::Down);
    pg_ctl_start(&c.standby);
    let info = wait_node(&c.pool, 1, "seen up again", |n| {
        n.pg_status == LiveStatus::Up && n.replication_state == "streaming"
    });
    // The field report: pgpool sees the standby up and streaming, and
    // keeps it detached.
    assert_eq!(info.status, BackendStatus::Down);
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(c.pool.pool_nodes()[1].status, "down");

    let mut pcp = connect(&c.pool);
    let asked = Instant::now();
    pcp.attach_node(1, &budget()).unwrap();
    pcp.close(&budget()).unwrap();
    wait_node(&c.pool, 1, "attached", |n| n.status.is_attached());
    eprintln!(
        "attached {:.2}s after the request",
        asked.elapsed().as_secs_f64()
    );
    c.pool.psql("SELECT 1");
    let nodes = c.pool.pool_nodes();
    assert_eq!(nodes[1].status, "up", "{nodes:?}");
    assert_eq!(c.pool.main_pid(), main, "pgpool was not restarted");
}

#[test]
fn detach_then_attach_a_standby() {
    let c = cluster(&[]);
    let mut pcp = connect(&c.pool);
    pcp.detach_node(1, &budget()).unwrap();
    pcp.close(&budget()).unwrap();
    let info = wait_node(&c.pool, 1, "detached", |n| n.status == BackendStatus::Down);
    assert_eq!(
        info.pg_status,
        LiveStatus::Up,
        "the server itself still runs"
    );
    let mut pcp = connect(&c.pool);
    pcp.attach_node(1, &budget()).unwrap();
    pcp.close(&budget()).unwrap();
    wait_node(&c.pool, 1, "attached", |n| n.status.is_attached());
}

#[test]
fn promote_makes_pgpool_follow_a_promotion_it_missed() {
    // pgpool gives up its search for a new primary after 2 s, so the
    // promotion below lands after it, as a slow Pacemaker failover would.
    let c = cluster(&[("search_primary_node_timeout", "2")]);
    // The last setting in pgpool.conf wins.
    assert_eq!(c.pool.setting("search_primary_node_timeout"), "2s");
    pg_ctl_stop(&c.primary);
    wait_node(&c.pool, 0, "detached", |n| n.status == BackendStatus::Down);
    // pgpool-II 4.3 logs the end of a fruitless search this way.
    assert!(
        wait_until(Duration::from_secs(10), || c
            .pool
            .log()
            .contains("failover: set new primary node: -1")),
        "pgpool never gave up its primary search:\n{}",
        c.pool.log()
    );
    pg_ctl_promote(&c.standby);
    let info = wait_node(&c.pool, 1, "seen as a live primary", |n| {
        n.pg_role == LiveRole::Primary
    });
    assert_eq!(info.role, PoolRole::Standby, "pgpool missed the promotion");
    let nodes = c.pool.pool_nodes();
    assert_eq!(
        (nodes[1].role.as_str(), nodes[1].pg_role.as_str()),
        ("standby", "primary"),
        "{nodes:?}"
    );

    let mut pcp = connect(&c.pool);
    let asked = Instant::now();
    pcp.promote_node(1, &budget()).unwrap();
    pcp.close(&budget()).unwrap();
    let info = wait_node(&c.pool, 1, "pgpool's primary", |n| {
        n.role == PoolRole::Primary
    });
    eprintln!(
        "pgpool's primary {:.2}s after the request",
        asked.elapsed().as_secs_f64()
    );
    assert!(info.status.is_attached());
    assert!(wait_until(Duration::from_secs(10), || c
        .pool
        .try_psql("CREATE TABLE t (v int)")
        .is_ok()));
    assert_eq!(c.standby.psql("SELECT count(*) FROM t"), "0");
    assert_eq!(c.pool.pool_nodes()[1].role, "primary");

    // pgpool refuses to promote its primary again, and closes the session.
    let mut pcp = connect(&c.pool);
    let e = pcp.promote_node(1, &budget()).unwrap_err();
    assert_eq!(e.kind, PcpErrorKind::Server, "{e}");
    assert!(e.reason.contains("already primary"), "{e}");
}

#[test]
fn a_wrong_password_is_an_authentication_error_that_says_so() {
    let c = cluster(&[]);
    let started = Instant::now();
    let e = PcpConnection::connect(&endpoint(&c.pool), PCP_USER, "wrong", &budget())
        .err()
        .expect("a wrong password is refused");
    assert_eq!(e.kind, PcpErrorKind::Auth, "{e}");
    assert!(e.reason.contains(PCP_USER), "{e}");
    assert!(e.reason.contains("password does not match"), "{e}");
    assert!(started.elapsed() < Duration::from_secs(2));
    let e = PcpConnection::connect(&endpoint(&c.pool), "nobody", PCP_PASSWORD, &budget())
        .err()
        .expect("an unknown user is refused");
    assert_eq!(e.kind, PcpErrorKind::Auth, "{e}");
    // The right password still works.
    connect(&c.pool).close(&budget()).unwrap();
}

#[test]
fn a_frozen_pgpool_is_a_timeout_inside_the_deadline() {
    let c = cluster(&[]);
    c.pool.freeze();
    let started = Instant::now();
    let deadline = Deadline::after(Duration::from_millis(1500));
    let e = PcpConnection::connect(&endpoint(&c.pool), PCP_USER, PCP_PASSWORD, &deadline)
        .err()
        .expect("a frozen pgpool does not answer");
    let took = started.elapsed();
    assert_eq!(e.kind, PcpErrorKind::Timeout, "{e}");
    assert!(
        took >= Duration::from_millis(1400) && took < Duration::from_millis(1700),
        "{took:?}"
    );
    // A connection made before the freeze times out the same way.
    c.pool.thaw();
    let mut pcp = connect(&c.pool);
    c.pool.freeze();
    let started = Instant::now();
    let e = pcp
        .node_info(0, &Deadline::after(Duration::from_millis(800)))
        .unwrap_err();
    assert_eq!(e.kind, PcpErrorKind::Timeout, "{e}");
    assert!(started.elapsed() < Duration::from_millis(1000));
    c.pool.thaw();
    connect(&c.pool).close(&budget()).unwrap();
}

#[test]
fn a_stopped_pgpool_is_unreachable() {
    let mut c = cluster(&[]);
    c.pool.stop();
    assert!(!c.pool.socket(c.pool.pcp_port).exists());
    let e = PcpConnection::connect(&endpoint(&c.pool), PCP_USER, PCP_PASSWORD, &budget())
        .err()
        .unwrap();
    assert_eq!(e.kind, PcpErrorKind::Unreachable, "{e}");
}

/// The password file pcp_* programs read gives the agent the same password.
#[test]
fn the_fixture_pcppass_serves_both_pcp_programs_and_the_client() {
    let c = cluster(&[]);
    let password = tusk_pgpool::pcppass::read_password(
        &c.pool.pcppass,
        c.pool.socket_dir.to_str().unwrap(),
        c.pool.pcp_port,
        PCP_USER,
    )
    .unwrap()
    .expect("a line for the PCP user");
    PcpConnection::connect(&endpoint(&c.pool), PCP_USER, &password, &budget())
        .unwrap()
        .close(&budget())
        .unwrap();
    let out = c.pool.pcp_command("pcp_node_count").output().unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "2");
}

/// pgpool-II 4.3 answers node info by connecting to the backend to read
/// pg_status and pg_role: a frozen backend makes node info slow (the
/// caller's deadline ends it), while node count, answered from shared
/// memory, stays instant.
#[test]
fn a_frozen_backend_slows_node_info_but_not_node_count() {
    use nix::sys::signal::{kill, Signal};
    use nix::unistd::Pid;
    let c = cluster(&[]);
    let standby_processes = c.standby.processes();
    for pid in &standby_processes {
        kill(Pid::from_raw(*pid), Signal::SIGSTOP).unwrap();
    }
    let mut pcp = connect(&c.pool);
    let started = Instant::now();
    assert_eq!(pcp.node_count(&budget()).unwrap(), 2);
    assert!(started.elapsed() < Duration::from_millis(100));
    let started = Instant::now();
    let info = pcp.node_info(0, &budget()).unwrap();
    eprintln!(
        "node 0's info with node 1 frozen: {:.3}s",
        started.elapsed().as_secs_f64()
    );
    assert_eq!(info.pg_role, LiveRole::Primary);
    let started = Instant::now();
    let answer = pcp.node_info(1, &Deadline::after(Duration::from_secs(2)));
    eprintln!(
        "node 1's info, frozen: {:.3}s: {answer:?}",
        started.elapsed().as_secs_f64()
    );
    assert_eq!(answer.unwrap_err().kind, PcpErrorKind::Timeout);
    assert!(started.elapsed() < Duration::from_millis(2200));
    for pid in &standby_processes {
        let _ = kill(Pid::from_raw(*pid), Signal::SIGCONT);
    }
    // pgpool finishes that answer later; a new session is clean.
    let mut pcp = connect(&c.pool);
    let started = Instant::now();
    let info = pcp.node_info(1, &budget()).unwrap();
    eprintln!(
        "node 1's info, thawed: {:.3}s, {:?}/{:?}",
        started.elapsed().as_secs_f64(),
        info.status,
        info.pg_status
    );
}
