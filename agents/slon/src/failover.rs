//! When a lost origin may be failed over: only once its PostgreSQL is
//! known to be stopped or its node is known to be fenced, never because it
//! merely does not answer. A FAILOVER while the old origin still runs
//! leaves two nodes that each accept writes (a returning old origin keeps
//! doing so: docs/slony-facts.md).

use std::io;
use std::net::{TcpStream, ToSocketAddrs};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::time::Duration;

/// What is known of the old origin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OldOrigin {
    /// Its PostgreSQL answers: a planned move is possible.
    Answers,
    /// Nothing listens where its PostgreSQL would (the kernel refused the
    /// connection, or the unix socket is gone): it is stopped. Says how.
    Stopped(String),
    /// Pacemaker shows its node offline and clean (fenced, or left after
    /// stopping its resources). Says which node.
    Fenced(String),
    /// It does not answer and nothing proves it stopped: maybe a partition.
    Unknown(String),
}

/// Whether a FAILOVER may run, and why (for the log), or why not.
pub fn may_fail_over(old: &OldOrigin) -> Result<String, String> {
    match old {
        OldOrigin::Stopped(how) => Ok(format!("its PostgreSQL is stopped ({how})")),
        OldOrigin::Fenced(node) => Ok(format!("its node {node} is fenced")),
        OldOrigin::Answers => Err("it answers: a planned move is due, not a FAILOVER".into()),
        OldOrigin::Unknown(why) => Err(format!(
            "it does not answer ({why}), but nothing shows it stopped or fenced: a FAILOVER now \
             could leave two origins"
        )),
    }
}

/// What listens at a server's addresses, by a plain connect: a refused
/// connection or a missing socket file means no server there; a connection
/// accepted means one (maybe hung); a timeout or an unreachable network
/// means nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Listening {
    Nothing(String),
    Something,
    Unknown(String),
}

/// Every address of `config`: nothing listens only when none listens.
pub fn listening(config: &pgclient::Config, timeout: Duration) -> Listening {
    let ports = config.get_ports();
    let mut nothing = Vec::new();
    for (i, host) in config.get_hosts().iter().enumerate() {
        let port = ports.get(i).or(ports.first()).copied().unwrap_or(5432);
        let outcome = match host {
            pgclient::Host::Unix(dir) => unix(dir.join(format!(".s.PGSQL.{port}"))),
            pgclient::Host::Tcp(name) => tcp(name, port, timeout),
        };
        match outcome {
            Listening::Nothing(how) => nothing.push(how),
            other => return other,
        }
    }
    if nothing.is_empty() {
        return Listening::Unknown("no address to try".into());
    }
    Listening::Nothing(nothing.join("; "))
}

fn unix(path: PathBuf) -> Listening {
    match UnixStream::connect(&path) {
        Ok(_) => Listening::Something,
        Err(e) => refused(&e, &path.display().to_string()),
    }
}

fn tcp(name: &str, port: u16, timeout: Duration) -> Listening {
    let addrs = match (name, port).to_socket_addrs() {
        Ok(a) => a.collect::<Vec<_>>(),
        Err(e) => return Listening::Unknown(format!("{name}: {e}")),
    };
    let mut refusals = Vec::new();
    for addr in addrs {
        match TcpStream::connect_timeout(&addr, timeout) {
            Ok(_) => return Listening::Something,
            Err(e) => match refused(&e, &addr.to_string()) {
                Listening::Nothing(how) => refusals.push(how),
                other => return other,
            },
        }
    }
    if refusals.is_empty() {
        Listening::Unknown(format!("{name} has no address"))
    } else {
        Listening::Nothing(refusals.join("; "))
    }
}

fn refused(e: &io::Error, at: &str) -> Listening {
    use nix::libc;
    match e.raw_os_error() {
        Some(libc::ECONNREFUSED) => Listening::Nothing(format!("{at}: connection refused")),
        Some(libc::ENOENT) => Listening::Nothing(format!("{at}: no such socket")),
        _ => Listening::Unknown(format!("{at}: {e}")),
    }
}

/// Whether `crm_mon --output-as=xml` shows `node` offline and clean: a lost
/// node is shown unclean until it is fenced. `None` when the node is not in
/// the output.
pub fn offline_and_clean(crm_mon_xml: &str, node: &str) -> Option<bool> {
    let needle = format!("name=\"{}\"", xml_escape(node));
    crm_mon_xml
        .split("<node ")
        .skip(1)
        .map(|rest| &rest[..rest.find('>').unwrap_or(rest.len())])
        .find(|attrs| attrs.split_whitespace().any(|a| a == needle))
        .map(|attrs| attrs.contains("online=\"false\"") && attrs.contains("unclean=\"false\""))
}

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('"', "&quot;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_stopped_or_fenced_origin_may_be_failed_over() {
        assert!(may_fail_over(&OldOrigin::Stopped("refused".into())).is_ok());
        assert!(may_fail_over(&OldOrigin::Fenced("node1".into())).is_ok());
        assert!(may_fail_over(&OldOrigin::Answers).is_err());
        let why = may_fail_over(&OldOrigin::Unknown("timed out".into())).unwrap_err();
        assert!(why.contains("could leave two origins"), "{why}");
    }

    #[test]
    fn a_missing_socket_is_nothing_listening() {
        let dir = std::env::temp_dir().join(format!("tusk-no-server-{}", std::process::id()));
        let mut c = pgclient::Config::new();
        c.host_path(&dir).port(5999);
        assert!(
            matches!(listening(&c, Duration::from_secs(1)), Listening::Nothing(h) if h.contains("no such socket"))
        );
    }

    #[test]
    fn a_socket_that_accepts_is_something_even_if_it_never_answers() {
        let dir = tempfile::tempdir().unwrap();
        let _l = std::os::unix::net::UnixListener::bind(dir.path().join(".s.PGSQL.5999")).unwrap();
        let mut c = pgclient::Config::new();
        c.host_path(dir.path()).port(5999);
        assert_eq!(listening(&c, Duration::from_secs(1)), Listening::Something);
    }

    #[test]
    fn a_refused_tcp_port_on_the_loopback_is_nothing() {
        // A port just released: nothing listens there.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut c = pgclient::Config::new();
        c.host("127.0.0.1").port(port);
        assert!(
            matches!(listening(&c, Duration::from_secs(1)), Listening::Nothing(h) if h.contains("refused"))
        );
    }

    #[test]
    fn crm_mon_shows_a_fenced_node_offline_and_clean() {
        let xml = r#"<nodes>
            <node name="node1" id="1" online="false" standby="false" unclean="false" shutdown="false"/>
            <node name="node2" id="2" online="true" standby="false" unclean="false"/>
            <node name="node3" id="3" online="false" standby="false" unclean="true"/>
          </nodes>"#;
        assert_eq!(offline_and_clean(xml, "node1"), Some(true));
        assert_eq!(offline_and_clean(xml, "node2"), Some(false));
        assert_eq!(offline_and_clean(xml, "node3"), Some(false));
        assert_eq!(offline_and_clean(xml, "node"), None);
    }
}
