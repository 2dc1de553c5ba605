//! What pgpool-II 4.3.5 does on this machine, pinned down: the facts the
//! pgpool agent is built on (docs/pgpool-facts.md), and the fixture's own
//! clean-up. Run with `--nocapture` to see the figures.

use std::time::{Duration, Instant};
use tusk_testkit::pgpool::{pg_ctl_promote, pg_ctl_stop, primary_and_standby, Pgpool};
use tusk_testkit::{wait_until, Instance};

fn pool_for(primary: &Instance, standby: &Instance) -> Pgpool {
    Pgpool::for_pair(primary, standby)
}

fn listening_sockets(path: &std::path::Path) -> usize {
    std::fs::read_to_string("/proc/net/unix")
        .unwrap()
        .lines()
        .filter(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            // State 01 is LISTEN for a stream socket.
            f.get(7) == Some(&path.to_str().unwrap()) && f.get(5) == Some(&"01")
        })
        .count()
}

fn alive(pid: i32) -> bool {
    std::fs::read_link(format!("/proc/{pid}/exe")).is_ok()
}

#[test]
fn orphans_of_a_killed_main_process_keep_serving_and_the_fixture_removes_them() {
    let (primary, standby) = primary_and_standby("node2");
    let mut pool = pool_for(&primary, &standby);
    let took = pool.start();
    eprintln!("started in {:.3}s", took.as_secs_f64());
    let main = pool.main_pid().unwrap();
    assert_eq!(pool.running_pid(), Some(main));
    assert_eq!(
        std::fs::read(&pool.pid_file).unwrap(),
        format!("{main}\0").into_bytes(),
        "the PID, a NUL, no newline"
    );
    let before = pool.processes();
    for p in &before {
        eprintln!("{:>7} {:>7} {}", p.pid, p.ppid, p.cmdline);
    }
    assert!(before
        .iter()
        .any(|p| p.pid == main && p.cmdline.starts_with("/usr/sbin/pgpool -n -f")));
    assert!(before
        .iter()
        .any(|p| p.cmdline == "pgpool: PCP: wait for connection request"));
    assert!(before
        .iter()
        .any(|p| p.cmdline == "pgpool: wait for connection request"));
    assert!(before.iter().any(|p| p.cmdline == "pgpool: worker process"));
    assert!(before
        .iter()
        .any(|p| p.cmdline == "pgpool: health check process(1)"));

    pool.kill_main();
    let orphans = pool.processes();
    assert!(!orphans.is_empty(), "the children outlive the main process");
    assert!(orphans.iter().all(|p| p.pid != main && p.ppid != main));
    for port in [pool.port, pool.pcp_port] {
        assert!(pool.socket(port).exists());
        assert_eq!(listening_sockets(&pool.socket(port)), 1);
    }
    assert!(pool.pid_file.exists(), "the pid file names a dead PID");
    assert_eq!(pool.pool_nodes().len(), 2, "orphans still answer clients");

    // With unix sockets only, nothing stops a second pgpool: it replaces
    // the socket files and both generations listen, the orphans on
    // sockets that no path reaches any more.
    let took = pool.start();
    eprintln!(
        "second start beside the orphans in {:.3}s",
        took.as_secs_f64()
    );
    for port in [pool.port, pool.pcp_port] {
        assert_eq!(listening_sockets(&pool.socket(port)), 2);
    }
    assert!(orphans.iter().all(|p| alive(p.pid)));
    let (shm, sem) = pool.system_v_ids();
    eprintln!("System V shared memory {shm:?}, semaphores {sem:?}");
    assert!(
        shm.len() >= 2 && sem.len() == 2,
        "one set of each per start"
    );

    let all: Vec<i32> = pool.processes().iter().map(|p| p.pid).collect();
    drop(pool);
    assert!(
        all.iter().all(|pid| !alive(*pid)),
        "the fixture ends every process it started"
    );
    let shm_table = std::fs::read_to_string("/proc/sysvipc/shm").unwrap();
    let sem_table = std::fs::read_to_string("/proc/sysvipc/sem").unwrap();
    let listed = |table: &str, id: i32| {
        table
            .lines()
            .skip(1)
            .any(|l| l.split_whitespace().nth(1) == Some(&id.to_string()))
    };
    assert!(shm.iter().all(|id| !listed(&shm_table, *id)), "{shm_table}");
    assert!(sem.iter().all(|id| !listed(&sem_table, *id)), "{sem_table}");
}

#[test]
fn a_sigkill_of_every_process_leaves_the_socket_files_and_the_pid_file() {
    let (primary, standby) = primary_and_standby("node2");
    let mut pool = pool_for(&primary, &standby);
    pool.start();
    pool.kill_main();
    for p in pool.processes() {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(p.pid),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
    assert!(wait_until(Duration::from_secs(5), || pool
        .processes()
        .is_empty()));
    assert!(pool.socket(pool.port).exists());
    assert!(pool.socket(pool.pcp_port).exists());
    assert!(pool.pid_file.exists());
    assert_eq!(listening_sockets(&pool.socket(pool.port)), 0);
    // A start over the leftovers works: pgpool finds the PID dead and
    // replaces the socket files.
    let took = pool.start();
    eprintln!(
        "start over a dead pgpool's leftovers: {:.3}s",
        took.as_secs_f64()
    );
    let log = pool.log();
    assert!(log.contains("pid file found but it seems bogus"), "{log}");
}

/// While pgpool searches for a new primary (`search_primary_node_timeout`,
/// 300 s by default) new clients wait; once the search is over and both
/// backends are detached, pgpool refuses every client at once.
#[test]
fn all_backends_down() {
    let (primary, standby) = primary_and_standby("node2");
    let mut pool = pool_for(&primary, &standby);
    pool.set("search_primary_node_timeout", "3");
    pool.start();
    pool.psql("SELECT 1");
    // The fifth word of each line is pgpool's status of the node.
    let statuses = |pool: &Pgpool| -> Vec<String> {
        let out = pool.pcp_command("pcp_node_info").output().unwrap();
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| l.split_whitespace().nth(4).map(str::to_string))
            .collect()
    };
    pg_ctl_stop(&standby);
    assert!(wait_until(Duration::from_secs(20), || statuses(&pool)[1] == "down"));
    pg_ctl_stop(&primary);
    let stopped = Instant::now();
    let mut last = String::new();
    let refused = wait_until(Duration::from_secs(30), || {
        let started = Instant::now();
        let mut psql = pool.psql_command("SELECT 1");
        psql.env("PGCONNECT_TIMEOUT", "2");
        let out = psql.output().unwrap();
        let e = String::from_utf8_lossy(&out.stderr).trim().to_string();
        if e != last {
            eprintln!(
                "{:.3}s after the stop ({:.3}s): {e} / {:?}",
                stopped.elapsed().as_secs_f64(),
                started.elapsed().as_secs_f64(),
                statuses(&pool)
            );
            last = e.clone();
        }
        e.contains("all backend nodes are down")
    });
    assert!(refused, "{last}\n{}", pool.log());
    assert_eq!(statuses(&pool), ["down", "down"]);
    let started = Instant::now();
    let e = pool.try_psql("SELECT 1").unwrap_err();
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "refused at once"
    );
    assert!(e.contains("all backend nodes are down"), "{e}");
    assert!(pool.running_pid().is_some(), "pgpool itself keeps running");
    let out = pool.pcp_command("pcp_node_count").output().unwrap();
    assert!(out.status.success(), "PCP still answers");
    for line in pool
        .log()
        .lines()
        .filter(|l| l.contains("find_primary") || l.contains("failover: set new"))
    {
        eprintln!("{line}");
    }
    pool.stop();
}

/// A primary that fails while a standby is up starts pgpool's search for
/// a new primary (`search_primary_node_timeout`, 300 s by default); new
/// clients wait meanwhile. A promotion that lands during the search is
/// found by pgpool itself, with no PCP command.
#[test]
fn a_promotion_during_the_primary_search_is_found_by_pgpool_itself() {
    let (primary, standby) = primary_and_standby("node2");
    let mut pool = pool_for(&primary, &standby);
    pool.start();
    pool.psql("CREATE TABLE t (v int)");
    pg_ctl_stop(&primary);
    let stopped = Instant::now();
    assert!(wait_until(Duration::from_secs(10), || pool.log().contains(
        "find_primary_node_repeatedly: waiting for finding a primary node"
    ) && pool
        .log()
        .contains("starting degeneration")));
    // A client during the search.
    let started = Instant::now();
    let mut psql = pool.psql_command("SELECT 1");
    psql.env("PGCONNECT_TIMEOUT", "3");
    let out = psql.output().unwrap();
    eprintln!(
        "a client during the search: {:.3}s, {}",
        started.elapsed().as_secs_f64(),
        String::from_utf8_lossy(&out.stderr).trim()
    );
    assert!(!out.status.success());
    let pcp = pool.pcp_command("pcp_node_info").output().unwrap();
    eprintln!(
        "PCP during the search ({}): {}",
        out.status,
        String::from_utf8_lossy(&pcp.stdout)
    );

    pg_ctl_promote(&standby);
    let promoted = Instant::now();
    let mut tries = 0;
    assert!(wait_until(Duration::from_secs(30), || {
        tries += 1;
        pool.try_psql("INSERT INTO t VALUES (1)").is_ok()
    }));
    eprintln!(
        "first write through pgpool {:.3}s after the promotion ({:.3}s after the stop, {tries} tries)",
        promoted.elapsed().as_secs_f64(),
        stopped.elapsed().as_secs_f64()
    );
    let nodes = pool.pool_nodes();
    eprintln!("{nodes:?}");
    assert_eq!(
        (nodes[1].role.as_str(), nodes[1].status.as_str()),
        ("primary", "up")
    );
    assert_eq!(nodes[0].status, "down");
    assert!(pool.log().contains("find_primary_node: primary node is 1"));
    pool.stop();
}

/// A psql session through pgpool, kept open across pgpool's events.
struct Session {
    child: std::process::Child,
    stdin: std::process::ChildStdin,
    lines: std::sync::mpsc::Receiver<String>,
}

impl Session {
    fn open(pool: &Pgpool) -> Session {
        use std::io::BufRead;
        let mut psql = std::process::Command::new("psql");
        psql.args([
            "-X",
            "-At",
            "-d",
            "postgres",
            "-U",
            tusk_testkit::pgpool::DB_USER,
            "-h",
        ])
        .arg(&pool.socket_dir)
        .arg("-p")
        .arg(pool.port.to_string())
        .env("PGPASSFILE", &pool.pgpass)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
        let mut child = psql.spawn().unwrap();
        let stdin = child.stdin.take().unwrap();
        let (tx, lines) = std::sync::mpsc::channel();
        for out in [
            Box::new(child.stdout.take().unwrap()) as Box<dyn std::io::Read + Send>,
            Box::new(child.stderr.take().unwrap()),
        ] {
            let tx = tx.clone();
            std::thread::spawn(move || {
                for line in std::io::BufReader::new(out).lines() {
                    let Ok(line) = line else { break };
                    if tx.send(line).is_err() {
                        break;
                    }
                }
            });
        }
        Session {
            child,
            stdin,
            lines,
        }
    }

    /// The backend PID serving this session, or what psql said instead.
    fn backend_pid(&mut self) -> Result<String, String> {
        use std::io::Write;
        while self.lines.try_recv().is_ok() {}
        if writeln!(self.stdin, "SELECT pg_backend_pid();").is_err() {
            return Err("psql has exited".into());
        }
        let _ = self.stdin.flush();
        match self.lines.recv_timeout(Duration::from_secs(10)) {
            Ok(line) if line.chars().all(|c| c.is_ascii_digit()) => Ok(line),
            Ok(line) => Err(line),
            Err(_) => Err("no answer within 10 s".into()),
        }
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Which of pgpool's own events a connected client survives: a standby's
/// detach (health check), an attach, a promote.
#[test]
fn what_a_connected_client_sees_of_detach_attach_and_promote() {
    let (primary, standby) = primary_and_standby("node2");
    let mut pool = pool_for(&primary, &standby);
    pool.set("search_primary_node_timeout", "2");
    // Every session on the primary: none is load-balanced to the standby.
    pool.set("backend_weight1", "0");
    pool.start();
    let pcp = |pool: &Pgpool, program: &str, node: &str| {
        let out = pool
            .pcp_command(program)
            .args(["-n", node])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{program}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let status = |pool: &Pgpool, node: usize| pool.pool_nodes()[node].status.clone();

    let mut s = Session::open(&pool);
    let pid = s.backend_pid().unwrap();
    assert_eq!(s.backend_pid().unwrap(), pid);

    pcp(&pool, "pcp_detach_node", "1");
    assert!(wait_until(Duration::from_secs(10), || status(&pool, 1) == "down"));
    std::thread::sleep(Duration::from_secs(2));
    let after_detach = s.backend_pid();
    eprintln!("after a standby's detach: {after_detach:?}");
    let mut s = Session::open(&pool);
    let pid = s.backend_pid().unwrap();

    pcp(&pool, "pcp_attach_node", "1");
    assert!(wait_until(Duration::from_secs(10), || status(&pool, 1) != "down"));
    std::thread::sleep(Duration::from_secs(2));
    let after_attach = s.backend_pid();
    eprintln!("after an attach: {after_attach:?}");
    let mut s = Session::open(&pool);
    let _ = s.backend_pid().unwrap();

    // pgpool is told that the standby is the primary while the real
    // primary still runs: pgpool changes its view only.
    pg_ctl_promote(&standby);
    pcp(&pool, "pcp_promote_node", "1");
    assert!(wait_until(Duration::from_secs(10), || pool.pool_nodes()[1]
        .role
        == "primary"));
    std::thread::sleep(Duration::from_secs(2));
    let after_promote = s.backend_pid();
    eprintln!("after a promote: {after_promote:?}");
    let nodes = pool.pool_nodes();
    eprintln!("{nodes:?}");
    assert_eq!(nodes[0].status, "down", "promote detaches the other nodes");
    // (With load balancing to the standby, a session whose load-balance
    // node was the standby is dropped by its detach.)
    assert!(
        after_detach.is_ok(),
        "a standby's detach keeps primary sessions"
    );
    assert_eq!(after_attach, Ok(pid), "an attach keeps sessions");
    assert!(after_promote.is_err(), "a promote drops sessions");
    pool.stop();
}

/// pgpool's pid file check is `kill(pid, 0)`: a live process of the same
/// user blocks the start.
#[test]
fn a_pid_file_naming_a_live_process_of_the_postgres_user_blocks_the_start() {
    let (primary, standby) = primary_and_standby("node2");
    let mut pool = pool_for(&primary, &standby);
    let pg = tusk_testkit::postgres_user();
    let mut sleeper = std::process::Command::new("sleep");
    std::os::unix::process::CommandExt::uid(&mut sleeper, pg.uid.as_raw());
    let sleeper = tusk_testkit::Guard(sleeper.arg("60").spawn().unwrap());
    std::fs::write(&pool.pid_file, format!("{}\0", sleeper.0.id())).unwrap();
    let e = pool.try_start_with(&[]).unwrap_err();
    let log = pool.log();
    eprintln!("{e}: {}", log.lines().last().unwrap_or(""));
    assert!(e.contains("exit status: 1"), "{e}");
    assert!(log.contains("is another pgpool"), "{log}");
}

/// pgpool_status remembers a detached backend across a restart, even when
/// the server is healthy again; `-D` discards it.
#[test]
fn pgpool_status_keeps_a_healthy_standby_down_across_a_restart() {
    let (primary, standby) = primary_and_standby("node2");
    let mut pool = pool_for(&primary, &standby);
    pool.start();
    let out = pool
        .pcp_command("pcp_detach_node")
        .args(["-n", "1"])
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(wait_until(Duration::from_secs(10), || pool.pool_nodes()[1]
        .status
        == "down"));
    pool.stop();
    let status = std::fs::read_to_string(&pool.status_file).unwrap();
    eprintln!("pgpool_status: {status:?}");
    assert_eq!(status, "up\ndown\n");
    pool.start();
    std::thread::sleep(Duration::from_secs(3));
    let nodes = pool.pool_nodes();
    assert_eq!(
        (nodes[1].status.as_str(), nodes[1].pg_status.as_str()),
        ("down", "up")
    );
    pool.stop();
    pool.start_with(&["-D"]);
    assert_eq!(pool.pool_nodes()[1].status, "up");
}
