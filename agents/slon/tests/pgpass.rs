//! The agent's own connections with password authentication, the password
//! only in the slon user's `~/.pgpass`, as slon (libpq) finds it: the node
//! database through `conninfo`, and the other nodes through
//! `admin_conninfo` for the failed-over check at an origin's start, where
//! a node that refuses the login must not pass for one that is down.
//!
//! The slon user is a throwaway OS account with a temporary home, so that
//! no real home directory is touched.

mod common;

use common::*;
use nix::unistd::{chown, User};
use ocf::Status;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;
use std::time::Duration;
use tusk_testkit::slony::{SlonyCluster, DATABASE};

/// The role the agent and slon log in as, with a SCRAM password.
const ROLE: &str = "tusk_pw";
const PASSWORD: &str = "pw-s3cret";

/// A throwaway OS account whose home is a temporary directory; deleted
/// with its group when dropped.
struct TestUser {
    name: String,
    home: tempfile::TempDir,
}

impl TestUser {
    fn new() -> TestUser {
        let name = format!("tuskpw{}", std::process::id());
        let home = tempfile::Builder::new()
            .prefix("tusk-pgpass-home-")
            .tempdir()
            .unwrap();
        let status = Command::new("useradd")
            .args(["--no-create-home", "--user-group", "--shell"])
            .arg("/usr/sbin/nologin")
            .arg("--home-dir")
            .arg(home.path())
            .arg(&name)
            .status()
            .unwrap();
        assert!(status.success(), "useradd {name}: {status}");
        let user = TestUser { name, home };
        let u = user.account();
        chown(user.home.path(), Some(u.uid), Some(u.gid)).unwrap();
        std::fs::set_permissions(user.home.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
        user
    }

    fn account(&self) -> User {
        User::from_name(&self.name).unwrap().unwrap()
    }

    /// Writes `~/.pgpass` (0600, the user's) with `lines`.
    fn pgpass(&self, lines: &[String]) {
        let path = self.home.path().join(".pgpass");
        std::fs::write(&path, lines.join("\n") + "\n").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        let u = self.account();
        chown(&path, Some(u.uid), Some(u.gid)).unwrap();
    }
}

impl Drop for TestUser {
    fn drop(&mut self) {
        let _ = Command::new("userdel").arg(&self.name).status();
    }
}

/// Node `id`: `ROLE` must log in with its password over the unix socket,
/// and the test user may log in as postgres by peer (slon's paths).
fn require_password(cluster: &SlonyCluster, id: u32, os_user: &str) {
    let node = cluster.node(id);
    let pgdata = &node.instance.pgdata;
    let hba = std::fs::read_to_string(pgdata.join("pg_hba.conf")).unwrap();
    node.instance.write_owned(
        &pgdata.join("pg_hba.conf"),
        &format!("local all {ROLE} scram-sha-256\n{hba}"),
    );
    let ident = std::fs::read_to_string(pgdata.join("pg_ident.conf")).unwrap();
    node.instance.write_owned(
        &pgdata.join("pg_ident.conf"),
        &format!("{ident}tusk {os_user} postgres\n"),
    );
    node.query(&format!(
        "SET password_encryption = 'scram-sha-256'; \
         CREATE ROLE {ROLE} LOGIN SUPERUSER PASSWORD '{PASSWORD}'; \
         SELECT pg_reload_conf()"
    ));
}

/// Node `id`'s database as `ROLE`, no password given.
fn conninfo(cluster: &SlonyCluster, id: u32) -> String {
    let socket = cluster.node(id).instance.socketdir.to_str().unwrap();
    format!("host={socket} port=5432 dbname={DATABASE} user={ROLE} connect_timeout=5")
}

/// The `~/.pgpass` line for node `id`.
fn line(cluster: &SlonyCluster, id: u32) -> String {
    let socket = cluster.node(id).instance.socketdir.to_str().unwrap();
    format!("{socket}:5432:{DATABASE}:{ROLE}:{PASSWORD}")
}

fn slon_agent(cluster: &SlonyCluster, user: &TestUser, node: u32) -> tusk_testkit::Agent {
    let home = user.home.path();
    agent(cluster, node)
        .param("user", &user.name)
        .param("conninfo", conninfo(cluster, node))
        .param("pidfile", home.join("slon.pid"))
        .param("logfile", home.join("slon.log"))
}

fn log_of(home: &Path) -> String {
    std::fs::read_to_string(home.join("slon.log")).unwrap_or_default()
}

#[test]
fn passwords_come_from_the_slon_users_pgpass_and_a_refused_login_is_no_absence() {
    let cluster = SlonyCluster::new(2);
    let _notes = notes_of(&cluster);
    let user = TestUser::new();
    for id in [1, 2] {
        require_password(&cluster, id, &user.name);
    }
    // The server does ask for the password: without one, no login.
    let refused = postgres::Config::new()
        .host_path(&cluster.node(1).instance.socketdir)
        .user(ROLE)
        .dbname(DATABASE)
        .connect_timeout(Duration::from_secs(5))
        .connect(postgres::NoTls);
    assert!(refused.is_err(), "{ROLE} logs in without a password");
    user.pgpass(&[line(&cluster, 1), line(&cluster, 2)]);

    // conninfo: the node's database, for start's lock and node id and the
    // monitor's question.
    let a = || slon_agent(&cluster, &user, 1);
    let out = a().run("start");
    assert_eq!(
        out.code,
        0,
        "{}\nslon log:\n{}",
        out.stderr,
        log_of(user.home.path())
    );
    monitor(a()).expect(Status::Success);
    a().run("stop").expect(Status::Success);
    // A password file others may read is one libpq ignores (slon would not
    // log in): the agent ignores it too, and says why.
    let pgpass = user.home.path().join(".pgpass");
    std::fs::set_permissions(&pgpass, std::fs::Permissions::from_mode(0o640)).unwrap();
    let out = a().run("start").expect(Status::ErrGeneric);
    assert!(
        out.stderr.contains("has group or world access") && out.reason().contains("password"),
        "{}",
        out.stderr
    );
    assert!(!out.stderr.contains(PASSWORD), "{}", out.stderr);
    std::fs::set_permissions(&pgpass, std::fs::Permissions::from_mode(0o600)).unwrap();

    // admin_conninfo: the origin's start asks node 2 whether node 1 was
    // failed over; node 2 answers with the password from ~/.pgpass.
    let admin = format!("1:{}; 2:{}", conninfo(&cluster, 1), conninfo(&cluster, 2));
    let clone = || {
        a().env("OCF_RESKEY_CRM_meta_promoted_max", "1")
            .env("OCF_RESKEY_CRM_meta_notify", "true")
            .env("OCF_RESKEY_CRM_meta_on_node", "node1")
            .param("sets", "1")
            .param("admin_conninfo", &admin)
    };
    let out = clone().run("start");
    assert_eq!(
        out.code,
        0,
        "{}\nslon log:\n{}",
        out.stderr,
        log_of(user.home.path())
    );
    assert!(
        !out.stderr.contains("refuses the agent's login"),
        "{}",
        out.stderr
    );
    clone().run("stop").expect(Status::Success);

    // Node 2's password gone: node 2 runs but refuses the login. It may
    // be the very node that holds a FAILOVER of node 1, so the origin does
    // not start as if it had said nothing.
    user.pgpass(&[line(&cluster, 1)]);
    let out = clone().run("start").expect(Status::ErrGeneric);
    assert!(
        out.reason()
            .contains("cannot tell whether node 1 was failed over")
            && out.reason().contains("node 2"),
        "{}",
        out.reason()
    );
    assert!(
        out.stderr.contains("node 2 refuses the agent's login"),
        "{}",
        out.stderr
    );
    assert!(slons_of_conninfo(&cluster, &conninfo(&cluster, 1)).is_empty());
    // The password back: the start goes through again.
    user.pgpass(&[line(&cluster, 1), line(&cluster, 2)]);
    clone().run("start").expect(Status::Success);
    clone().run("stop").expect(Status::Success);
}

/// slon processes with `conninfo` on their command line.
fn slons_of_conninfo(cluster: &SlonyCluster, conninfo: &str) -> Vec<ocf::process::ProcInfo> {
    cluster
        .slon_processes()
        .into_iter()
        .filter(|p| p.cmdline.iter().any(|a| a.to_string_lossy() == conninfo))
        .collect()
}
