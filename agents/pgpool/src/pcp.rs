//! pgpool-II's PCP protocol, spoken natively: the monitor asks pgpool about
//! its backends without forking a `pcp_*` program, and every read and write
//! ends before the action's deadline.
//!
//! The wire format, as pgpool-II 4.3 speaks it (and as checked against
//! 4.3.5 on Debian 12): every packet is one tag byte, a 4-byte big-endian
//! length that counts itself but not the tag, and a body of NUL-terminated
//! strings. The client asks for a salt (`M`, answered by `m` and 4 bytes),
//! authenticates (`R` user, md5 answer; `r` "AuthenticationOK"), then sends
//! requests. Errors come as `E` packets of PostgreSQL-style fields
//! (`S`everity, `M`essage, `D`etail...), and a FATAL one also closes the
//! connection; `N` notices may arrive before an answer.
//!
//! Attach and promote are requests that pgpool queues for its main process:
//! the answer comes before pgpool has acted, so a caller that needs the
//! effect polls [`PcpConnection::node_info`].

use md5::{Digest, Md5};
use ocf::{Deadline, OcfError, Status};
use std::fmt;
use std::io::{self, Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpStream};
use std::os::fd::{AsRawFd, FromRawFd, IntoRawFd};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// pgpool refuses bigger requests; its answers about a few backends are a
/// few hundred bytes. Anything larger is a peer that is not pgpool.
const MAX_PACKET: usize = 64 * 1024;

/// pgpool reports a backend's load-balance weight scaled to `RAND_MAX`.
const RAND_MAX: f64 = 2_147_483_647.0;

/// Where pgpool listens for PCP.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    /// `<socket_dir>/.s.PGSQL.<port>` (`pcp_socket_dir`, `pcp_port`).
    Unix { socket_dir: PathBuf, port: u16 },
    /// An IP address and `pcp_port`. No host names: a DNS lookup could hang
    /// past any deadline, so the agent takes the address itself.
    Tcp(SocketAddr),
}

impl Endpoint {
    pub fn unix(socket_dir: impl Into<PathBuf>, port: u16) -> Endpoint {
        Endpoint::Unix {
            socket_dir: socket_dir.into(),
            port,
        }
    }

    /// `host` as pcp_* programs take it: an absolute path is a socket
    /// directory, otherwise an IP address (or `localhost`, 127.0.0.1).
    pub fn parse(host: &str, port: u16) -> Result<Endpoint, PcpError> {
        if host.starts_with('/') {
            return Ok(Endpoint::unix(host, port));
        }
        let ip = if host == "localhost" {
            IpAddr::V4(Ipv4Addr::LOCALHOST)
        } else {
            host.parse::<IpAddr>().map_err(|_| {
                PcpError::new(
                    PcpErrorKind::Config,
                    format!(
                        "PCP host {host:?} is neither a socket directory nor an IP address \
                         (names are not resolved: a lookup could outlast the timeout)"
                    ),
                )
            })?
        };
        Ok(Endpoint::Tcp(SocketAddr::new(ip, port)))
    }

    /// The socket file, for a unix endpoint.
    pub fn socket_path(&self) -> Option<PathBuf> {
        match self {
            Endpoint::Unix { socket_dir, port } => {
                Some(socket_dir.join(format!(".s.PGSQL.{port}")))
            }
            Endpoint::Tcp(_) => None,
        }
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Endpoint::Unix { .. } => {
                write!(f, "{}", self.socket_path().unwrap_or_default().display())
            }
            Endpoint::Tcp(addr) => write!(f, "{addr}"),
        }
    }
}

/// What went wrong, in the terms a caller decides on: a monitor reports a
/// pgpool that is absent (`Unreachable`) differently from one that hangs
/// (`Timeout`) or refuses the agent's password (`Auth`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PcpErrorKind {
    /// No socket file, or nobody listening on it (connection refused).
    Unreachable,
    /// pgpool did not answer before the deadline.
    Timeout,
    /// pgpool refused the user and password.
    Auth,
    /// pgpool answered the request with an error.
    Server,
    /// The peer closed the connection or sent something that is not PCP.
    Protocol,
    /// The caller's own parameters cannot work (a host name, a bad port).
    Config,
    /// Any other local failure (socket creation, permissions).
    Io,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PcpError {
    pub kind: PcpErrorKind,
    pub reason: String,
}

impl PcpError {
    pub fn new(kind: PcpErrorKind, reason: impl Into<String>) -> PcpError {
        PcpError {
            kind,
            reason: reason.into(),
        }
    }
}

impl fmt::Display for PcpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.reason)
    }
}

impl std::error::Error for PcpError {}

/// A refused password is a configuration error (the password file or
/// pcp.conf is wrong, and a retry will not fix it); everything else is a
/// generic failure, the agent decides on the kind before it gets here.
impl From<PcpError> for OcfError {
    fn from(e: PcpError) -> OcfError {
        let status = match e.kind {
            PcpErrorKind::Auth | PcpErrorKind::Config => Status::ErrConfigured,
            _ => Status::ErrGeneric,
        };
        OcfError::new(status, e.reason)
    }
}

pub type PcpResult<T> = std::result::Result<T, PcpError>;

/// pgpool's own view of a backend (`status`, `role`) beside what it last
/// saw of the server itself (`pg_status`, `pg_role`).
#[derive(Debug, Clone, PartialEq)]
pub struct NodeInfo {
    pub node_id: u32,
    pub hostname: String,
    pub port: u16,
    pub status: BackendStatus,
    /// Detached by a failed health check while the watchdog has no
    /// consensus; always false without the watchdog.
    pub quarantine: bool,
    pub pg_status: LiveStatus,
    /// The load-balance weight as a fraction of all weights (0..1), as
    /// `pcp_node_info` prints it.
    pub weight: f64,
    pub role: PoolRole,
    pub pg_role: LiveRole,
    /// Replication delay in bytes, or in milliseconds when
    /// `delay_by_time` (pgpool-II 4.4 and later with
    /// `delay_threshold_by_time`; 4.3 does not send the flag).
    pub replication_delay: u64,
    pub delay_by_time: bool,
    /// `pg_stat_replication.state` seen by pgpool's streaming check
    /// ("streaming"), empty for the primary or when unknown.
    pub replication_state: String,
    pub replication_sync_state: String,
    /// When pgpool last changed `status`, in seconds since the epoch.
    pub status_changed: u64,
}

#[cfg(test)]
impl NodeInfo {
    /// A node as the decisions' tests need it: its status and role in
    /// pgpool, and what pgpool's checks saw (`pg_status` up when
    /// `reached`, `pg_role`).
    pub fn sample(
        id: u32,
        status: BackendStatus,
        role: PoolRole,
        reached: bool,
        pg_role: LiveRole,
    ) -> NodeInfo {
        NodeInfo {
            node_id: id,
            hostname: format!("/run/node{id}"),
            port: 5432,
            status,
            quarantine: false,
            pg_status: if reached {
                LiveStatus::Up
            } else {
                LiveStatus::Down
            },
            weight: 0.5,
            role,
            pg_role,
            replication_delay: 0,
            delay_by_time: false,
            replication_state: String::new(),
            replication_sync_state: String::new(),
            status_changed: 0,
        }
    }
}

/// `BACKEND_STATUS` in pgpool: whether pgpool sends clients to the backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackendStatus {
    /// Not configured.
    Unused,
    /// Attached, no client connection made yet ("waiting").
    Waiting,
    Up,
    /// Detached: pgpool sends nothing there until attached again.
    Down,
}

impl BackendStatus {
    fn from_code(code: &str) -> Option<BackendStatus> {
        Some(match code {
            "0" => BackendStatus::Unused,
            "1" => BackendStatus::Waiting,
            "2" => BackendStatus::Up,
            "3" => BackendStatus::Down,
            _ => return None,
        })
    }

    /// Attached: "waiting" is as attached as "up", it only means that no
    /// client has used the backend since it was attached.
    pub fn is_attached(self) -> bool {
        matches!(self, BackendStatus::Waiting | BackendStatus::Up)
    }

    /// The word `pcp_node_info` and `SHOW pool_nodes` use.
    pub fn name(self) -> &'static str {
        match self {
            BackendStatus::Unused => "unused",
            BackendStatus::Waiting => "waiting",
            BackendStatus::Up => "up",
            BackendStatus::Down => "down",
        }
    }
}

/// The role pgpool gives a backend: in streaming-replication mode the
/// node it calls primary and the others, standbys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PoolRole {
    Main,
    Replica,
    Primary,
    Standby,
}

impl PoolRole {
    fn from_code(code: &str) -> Option<PoolRole> {
        Some(match code {
            "0" => PoolRole::Main,
            "1" => PoolRole::Replica,
            "2" => PoolRole::Primary,
            "3" => PoolRole::Standby,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            PoolRole::Main => "main",
            PoolRole::Replica => "replica",
            PoolRole::Primary => "primary",
            PoolRole::Standby => "standby",
        }
    }
}

/// What pgpool's health and streaming checks last saw of the server
/// (`pg_status`): "up", "down", or "unknown" before any check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LiveStatus {
    Up,
    Down,
    Unknown,
    Other(String),
}

impl LiveStatus {
    fn parse(word: &str) -> LiveStatus {
        match word {
            "up" => LiveStatus::Up,
            "down" => LiveStatus::Down,
            "unknown" => LiveStatus::Unknown,
            other => LiveStatus::Other(other.to_string()),
        }
    }
}

/// What the server itself says it is (`pg_role`, from
/// `pg_is_in_recovery()` by pgpool's checks).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LiveRole {
    Primary,
    Standby,
    Unknown,
    Other(String),
}

impl LiveRole {
    fn parse(word: &str) -> LiveRole {
        match word {
            "primary" => LiveRole::Primary,
            "standby" => LiveRole::Standby,
            "unknown" => LiveRole::Unknown,
            other => LiveRole::Other(other.to_string()),
        }
    }
}

/// One PCP session, authenticated.
pub struct PcpConnection {
    stream: Stream,
    endpoint: Endpoint,
}

impl PcpConnection {
    /// Connects and authenticates as `user` with `password` (pcp.conf holds
    /// its md5). Fails with `Unreachable` when nothing listens, `Timeout`
    /// when pgpool does not answer before `deadline`, `Auth` when it
    /// refuses the password.
    pub fn connect(
        endpoint: &Endpoint,
        user: &str,
        password: &str,
        deadline: &Deadline,
    ) -> PcpResult<PcpConnection> {
        let stream = Stream::connect(endpoint, deadline)?;
        let mut conn = PcpConnection {
            stream,
            endpoint: endpoint.clone(),
        };
        conn.authenticate(user, password, deadline)?;
        Ok(conn)
    }

    fn authenticate(&mut self, user: &str, password: &str, deadline: &Deadline) -> PcpResult<()> {
        if user.as_bytes().contains(&0) || password.as_bytes().contains(&0) {
            return Err(PcpError::new(
                PcpErrorKind::Config,
                "the PCP user or password holds a NUL byte",
            ));
        }
        self.send(b'M', b"", deadline, "the md5 salt")?;
        let salt = self.expect(b'm', deadline, "the md5 salt")?;
        let salt: [u8; 4] = salt
            .get(..4)
            .and_then(|s| s.try_into().ok())
            .ok_or_else(|| self.protocol(format!("a salt of {} bytes instead of 4", salt.len())))?;
        let mut body = Vec::with_capacity(user.len() + 34);
        body.extend_from_slice(user.as_bytes());
        body.push(0);
        body.extend_from_slice(md5_answer(user, password, &salt).as_bytes());
        body.push(0);
        self.send(b'R', &body, deadline, "authentication")?;
        let answer = self
            .expect(b'r', deadline, "authentication")
            .map_err(|e| match e.kind {
                // pgpool answers a wrong password with a FATAL error.
                PcpErrorKind::Server | PcpErrorKind::Protocol => PcpError::new(
                    PcpErrorKind::Auth,
                    format!(
                        "pgpool refused PCP user {user:?} at {}: {}",
                        self.endpoint, e
                    ),
                ),
                _ => e,
            })?;
        if first_string(&answer) != "AuthenticationOK" {
            return Err(PcpError::new(
                PcpErrorKind::Auth,
                format!(
                    "pgpool refused PCP user {user:?} at {}: {}",
                    self.endpoint,
                    printable(first_string(&answer))
                ),
            ));
        }
        Ok(())
    }

    /// How many backends pgpool is configured with.
    pub fn node_count(&mut self, deadline: &Deadline) -> PcpResult<u32> {
        self.send(b'L', b"", deadline, "the node count")?;
        let body = self.expect(b'l', deadline, "the node count")?;
        let fields = fields(&body);
        command_complete(&fields, "node count").map_err(|m| self.protocol(m))?;
        fields
            .get(1)
            .and_then(|n| n.parse().ok())
            .ok_or_else(|| self.protocol("a node count that is not a number".to_string()))
    }

    /// pgpool's view of backend `node`.
    pub fn node_info(&mut self, node: u32, deadline: &Deadline) -> PcpResult<NodeInfo> {
        let mut nodes = self.node_info_request(Some(node), deadline)?;
        match nodes.pop() {
            Some(n) if nodes.is_empty() => Ok(n),
            _ => Err(self.protocol(format!("{} node infos for one node", nodes.len() + 1))),
        }
    }

    /// pgpool's view of every backend, in one round trip. Each costs
    /// pgpool a connection to that backend (it asks the server for
    /// pg_status and pg_role), so a hung backend delays the whole answer.
    pub fn all_node_info(&mut self, deadline: &Deadline) -> PcpResult<Vec<NodeInfo>> {
        self.node_info_request(None, deadline)
    }

    /// pgpool answers a node-info request (a node id, -1 for all) with
    /// "ArraySize" and a count, one "NodeInfo" packet per node, then
    /// "CommandComplete".
    fn node_info_request(
        &mut self,
        node: Option<u32>,
        deadline: &Deadline,
    ) -> PcpResult<Vec<NodeInfo>> {
        let what = "node info";
        let id = node.map_or_else(|| "-1".to_string(), |n| n.to_string());
        self.send(b'I', &cstring(&id), deadline, what)?;
        let mut nodes: Vec<NodeInfo> = Vec::new();
        let mut expected = None;
        loop {
            let body = self.expect(b'i', deadline, what)?;
            let fields = fields(&body);
            match fields.first().copied() {
                Some("ArraySize") => {
                    let n: usize = fields
                        .get(1)
                        .and_then(|n| n.parse().ok())
                        .ok_or_else(|| self.protocol("an ArraySize without a size".into()))?;
                    expected = Some(n);
                }
                Some("NodeInfo") => {
                    // The packet does not name the node: they come in
                    // backend order, or the one node asked for.
                    let id = node.unwrap_or(nodes.len() as u32);
                    let info = parse_node_info(id, &fields[1..]).map_err(|m| self.protocol(m))?;
                    nodes.push(info);
                }
                Some("CommandComplete") => {
                    if let Some(n) = expected.filter(|n| *n != nodes.len()) {
                        return Err(self.protocol(format!(
                            "{} node infos where pgpool announced {n}",
                            nodes.len()
                        )));
                    }
                    return Ok(nodes);
                }
                other => {
                    return Err(self.protocol(format!(
                        "an unexpected node info packet {:?}",
                        other.map(printable)
                    )))
                }
            }
        }
    }

    /// Asks pgpool to attach backend `node` (`pcp_attach_node`). pgpool
    /// queues the request and answers before acting: poll `node_info`.
    pub fn attach_node(&mut self, node: u32, deadline: &Deadline) -> PcpResult<()> {
        self.simple_request(b'C', &cstring(&node.to_string()), b'c', deadline, "attach")
    }

    /// Asks pgpool to detach backend `node` at once (`pcp_detach_node`
    /// without `-g`): its clients are disconnected from that backend.
    pub fn detach_node(&mut self, node: u32, deadline: &Deadline) -> PcpResult<()> {
        self.simple_request(b'D', &cstring(&node.to_string()), b'd', deadline, "detach")
    }

    /// Tells pgpool that backend `node` is now the primary
    /// (`pcp_promote_node` without `-s`): pgpool changes its view only, it
    /// does not promote the server (no switchover, no failover command).
    /// In pgpool-II 4.3 this marks every other backend down and restarts
    /// pgpool's children, which drops client sessions; live standbys must
    /// be attached again afterwards. pgpool refuses (and closes the
    /// connection) when `node` already is its primary.
    pub fn promote_node(&mut self, node: u32, deadline: &Deadline) -> PcpResult<()> {
        // The node id is followed by a space, then its NUL, then the option:
        // 'n' changes pgpool's view only, 's' would switch over.
        let mut body = format!("{node} ").into_bytes();
        body.push(0);
        body.push(b'n');
        self.simple_request(b'J', &body, b'd', deadline, "promote")
    }

    /// Says goodbye, so that pgpool's PCP worker exits at once rather than
    /// on its own timeout.
    pub fn close(mut self, deadline: &Deadline) -> PcpResult<()> {
        self.send(b'X', b"", deadline, "closing")
    }

    fn simple_request(
        &mut self,
        tag: u8,
        body: &[u8],
        answer: u8,
        deadline: &Deadline,
        what: &str,
    ) -> PcpResult<()> {
        self.send(tag, body, deadline, what)?;
        let body = self.expect(answer, deadline, what)?;
        command_complete(&fields(&body), what).map_err(|m| self.protocol(m))
    }

    fn send(&mut self, tag: u8, body: &[u8], deadline: &Deadline, what: &str) -> PcpResult<()> {
        let packet = frame(tag, body);
        self.stream
            .write_all_before(&packet, deadline)
            .map_err(|e| self.io_error(e, what, deadline))
    }

    /// The next packet's body, which must carry `tag`; notices are skipped
    /// and an error packet becomes a `Server` error with pgpool's words.
    fn expect(&mut self, tag: u8, deadline: &Deadline, what: &str) -> PcpResult<Vec<u8>> {
        loop {
            let (got, body) = self.receive(deadline, what)?;
            match got {
                t if t == tag => return Ok(body),
                b'N' => continue,
                b'E' => {
                    return Err(PcpError::new(
                        PcpErrorKind::Server,
                        format!("pgpool at {}: {}", self.endpoint, error_text(&body)),
                    ))
                }
                other => {
                    return Err(self.protocol(format!(
                        "packet {:?} while waiting for {what}",
                        other as char
                    )))
                }
            }
        }
    }

    fn receive(&mut self, deadline: &Deadline, what: &str) -> PcpResult<(u8, Vec<u8>)> {
        let mut head = [0u8; 5];
        self.stream
            .read_exact_before(&mut head, deadline)
            .map_err(|e| self.io_error(e, what, deadline))?;
        let len = u32::from_be_bytes([head[1], head[2], head[3], head[4]]) as usize;
        if !(4..=MAX_PACKET).contains(&len) {
            return Err(self.protocol(format!("a packet length of {len}")));
        }
        let mut body = vec![0u8; len - 4];
        self.stream
            .read_exact_before(&mut body, deadline)
            .map_err(|e| self.io_error(e, what, deadline))?;
        Ok((head[0], body))
    }

    fn protocol(&self, what: String) -> PcpError {
        PcpError::new(
            PcpErrorKind::Protocol,
            format!("pgpool at {} sent {what}", self.endpoint),
        )
    }

    fn io_error(&self, e: io::Error, what: &str, deadline: &Deadline) -> PcpError {
        io_error(&self.endpoint, e, what, deadline)
    }
}

fn io_error(endpoint: &Endpoint, e: io::Error, what: &str, deadline: &Deadline) -> PcpError {
    match e.kind() {
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => {
            PcpError::new(
                PcpErrorKind::Timeout,
                format!(
                "pgpool at {endpoint} did not answer before the deadline (waiting for {what}{})",
                if deadline.is_expired() { "" } else { ", socket timeout" }
            ),
            )
        }
        io::ErrorKind::UnexpectedEof
        | io::ErrorKind::ConnectionReset
        | io::ErrorKind::BrokenPipe => PcpError::new(
            PcpErrorKind::Protocol,
            format!("pgpool at {endpoint} closed the connection (during {what})"),
        ),
        _ => PcpError::new(PcpErrorKind::Io, format!("PCP at {endpoint} ({what}): {e}")),
    }
}

/// The md5 answer pcp.conf's hash is checked against:
/// md5hex(md5hex(md5hex(password) + user) + salt). pcp.conf stores
/// md5hex(password), so pgpool can compute the same from its side.
pub fn md5_answer(user: &str, password: &str, salt: &[u8; 4]) -> String {
    let stored = md5_hex(password.as_bytes());
    let salted_user = md5_hex(&[stored.as_bytes(), user.as_bytes()].concat());
    md5_hex(&[salted_user.as_bytes(), salt.as_slice()].concat())
}

/// The hex md5 of `data`, the form pcp.conf holds passwords in
/// (what `pg_md5` prints).
pub fn md5_hex(data: &[u8]) -> String {
    Md5::digest(data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn frame(tag: u8, body: &[u8]) -> Vec<u8> {
    let mut packet = Vec::with_capacity(body.len() + 5);
    packet.push(tag);
    packet.extend_from_slice(&((body.len() + 4) as u32).to_be_bytes());
    packet.extend_from_slice(body);
    packet
}

fn cstring(s: &str) -> Vec<u8> {
    let mut v = s.as_bytes().to_vec();
    v.push(0);
    v
}

/// The NUL-terminated strings of a packet body (a trailing empty piece
/// after the last NUL is not a field).
fn fields(body: &[u8]) -> Vec<&str> {
    let body = body.strip_suffix(&[0]).unwrap_or(body);
    body.split(|b| *b == 0)
        .map(|f| std::str::from_utf8(f).unwrap_or("\u{fffd}"))
        .collect()
}

fn first_string(body: &[u8]) -> &str {
    fields(body).first().copied().unwrap_or("")
}

fn command_complete(fields: &[&str], what: &str) -> Result<(), String> {
    match fields.first() {
        Some(&"CommandComplete") => Ok(()),
        other => Err(format!(
            "{:?} instead of CommandComplete for {what}",
            other.map(|s| printable(s))
        )),
    }
}

/// A NodeInfo packet's fields after the "NodeInfo" code. pgpool-II 4.3
/// sends 12: hostname, port, status, quarantine, pg_status, weight (scaled
/// to RAND_MAX), role, pg_role, replication delay, replication state, sync
/// state, last status change (epoch seconds). Later versions insert a
/// delay-by-time flag before the delay (13 fields); both are read.
pub fn parse_node_info(node_id: u32, f: &[&str]) -> Result<NodeInfo, String> {
    let (delay_by_time, rest) = match f.len() {
        12 => (false, &f[8..]),
        13 => (f[8] == "1", &f[9..]),
        n => return Err(format!("a NodeInfo of {n} fields (pgpool-II 4.3 sends 12)")),
    };
    let bad = |name: &str, v: &str| format!("a NodeInfo {name} of {:?}", printable(v));
    Ok(NodeInfo {
        node_id,
        hostname: f[0].to_string(),
        port: f[1].parse().map_err(|_| bad("port", f[1]))?,
        status: BackendStatus::from_code(f[2]).ok_or_else(|| bad("status", f[2]))?,
        quarantine: f[3] == "1",
        pg_status: LiveStatus::parse(f[4]),
        weight: f[5]
            .parse::<f64>()
            .map(|w| w / RAND_MAX)
            .map_err(|_| bad("weight", f[5]))?,
        role: PoolRole::from_code(f[6]).ok_or_else(|| bad("role", f[6]))?,
        pg_role: LiveRole::parse(f[7]),
        delay_by_time,
        replication_delay: rest[0].parse().map_err(|_| bad("delay", rest[0]))?,
        replication_state: rest[1].to_string(),
        replication_sync_state: rest[2].to_string(),
        status_changed: rest[3]
            .parse()
            .map_err(|_| bad("status change time", rest[3]))?,
    })
}

/// "MESSAGE: DETAIL" from an error packet's fields (a type byte, then a
/// NUL-terminated string, up to a lone NUL).
pub fn error_text(body: &[u8]) -> String {
    let (mut message, mut detail, mut severity) = ("", "", "");
    let mut rest = body;
    while let Some((&kind, tail)) = rest.split_first() {
        if kind == 0 {
            break;
        }
        let end = tail.iter().position(|b| *b == 0).unwrap_or(tail.len());
        let value = std::str::from_utf8(&tail[..end]).unwrap_or("");
        match kind {
            b'M' => message = value,
            b'D' => detail = value,
            b'S' => severity = value,
            _ => {}
        }
        rest = tail.get(end + 1..).unwrap_or(&[]);
    }
    let mut text = if message.is_empty() {
        "an error without a message".to_string()
    } else {
        printable(message)
    };
    if !detail.is_empty() {
        text = format!("{text}: {}", printable(detail));
    }
    if severity == "FATAL" {
        text.push_str(" (FATAL)");
    }
    text
}

/// A peer's words fit for one log line: control characters shown escaped
/// and the length bounded.
fn printable(s: &str) -> String {
    let mut out: String = s.chars().take(200).flat_map(char::escape_default).collect();
    if s.chars().count() > 200 {
        out.push('…');
    }
    out
}

/// A unix or TCP stream whose every read and write ends by a deadline.
enum Stream {
    Unix(UnixStream),
    Tcp(TcpStream),
}

impl Stream {
    fn connect(endpoint: &Endpoint, deadline: &Deadline) -> PcpResult<Stream> {
        let budget = |what: &str| {
            PcpError::new(
                PcpErrorKind::Timeout,
                format!("no time left to connect to pgpool at {endpoint} ({what})"),
            )
        };
        match endpoint {
            Endpoint::Unix { .. } => {
                let path = endpoint.socket_path().unwrap_or_default();
                connect_unix(&path, deadline)
                    .map(Stream::Unix)
                    .map_err(|e| match e.kind() {
                        io::ErrorKind::NotFound => PcpError::new(
                            PcpErrorKind::Unreachable,
                            format!("pgpool's PCP socket {} does not exist", path.display()),
                        ),
                        io::ErrorKind::ConnectionRefused => PcpError::new(
                            PcpErrorKind::Unreachable,
                            format!("nothing listens on pgpool's PCP socket {}", path.display()),
                        ),
                        _ if deadline.is_expired() => budget("the listen queue is full"),
                        _ => io_error(endpoint, e, "the connection", deadline),
                    })
            }
            Endpoint::Tcp(addr) => {
                let left = deadline.remaining();
                if left.is_zero() {
                    return Err(budget("before connecting"));
                }
                TcpStream::connect_timeout(addr, left)
                    .map(|s| {
                        let _ = s.set_nodelay(true);
                        Stream::Tcp(s)
                    })
                    .map_err(|e| match e.kind() {
                        io::ErrorKind::ConnectionRefused => PcpError::new(
                            PcpErrorKind::Unreachable,
                            format!("nothing listens for PCP at {addr}"),
                        ),
                        _ => io_error(endpoint, e, "the connection", deadline),
                    })
            }
        }
    }

    fn set_timeouts(&self, left: Duration) -> io::Result<()> {
        match self {
            Stream::Unix(s) => {
                s.set_read_timeout(Some(left))?;
                s.set_write_timeout(Some(left))
            }
            Stream::Tcp(s) => {
                s.set_read_timeout(Some(left))?;
                s.set_write_timeout(Some(left))
            }
        }
    }

    /// The socket timeout is set from what is left before each system
    /// call, so that a peer trickling bytes cannot stretch the total.
    fn budget(&self, deadline: &Deadline) -> io::Result<()> {
        let left = deadline.remaining();
        if left.is_zero() {
            return Err(io::Error::new(io::ErrorKind::TimedOut, "deadline passed"));
        }
        self.set_timeouts(left)
    }

    fn read_exact_before(&mut self, mut buf: &mut [u8], deadline: &Deadline) -> io::Result<()> {
        while !buf.is_empty() {
            self.budget(deadline)?;
            let n = match self {
                Stream::Unix(s) => s.read(buf),
                Stream::Tcp(s) => s.read(buf),
            };
            match n {
                Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
                Ok(n) => buf = &mut buf[n..],
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    fn write_all_before(&mut self, mut buf: &[u8], deadline: &Deadline) -> io::Result<()> {
        while !buf.is_empty() {
            self.budget(deadline)?;
            let n = match self {
                Stream::Unix(s) => s.write(buf),
                Stream::Tcp(s) => s.write(buf),
            };
            match n {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => buf = &buf[n..],
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}

/// A unix-socket connect that cannot block: a blocking connect waits
/// without limit while the listener's queue is full (a frozen pgpool), so
/// the socket is non-blocking, and a full queue (EAGAIN) is retried until
/// the deadline. The socket is made blocking again for the timed reads.
fn connect_unix(path: &Path, deadline: &Deadline) -> io::Result<UnixStream> {
    use nix::sys::socket::{connect, socket, AddressFamily, SockFlag, SockType, UnixAddr};
    let addr = UnixAddr::new(path).map_err(io::Error::from)?;
    let fd = socket(
        AddressFamily::Unix,
        SockType::Stream,
        SockFlag::SOCK_NONBLOCK | SockFlag::SOCK_CLOEXEC,
        None,
    )
    .map_err(io::Error::from)?;
    let started = Instant::now();
    loop {
        match connect(fd.as_raw_fd(), &addr) {
            Ok(()) => break,
            Err(nix::errno::Errno::EINTR) => continue,
            Err(nix::errno::Errno::EAGAIN) if !deadline.is_expired() => {
                std::thread::sleep(Duration::from_millis(10).min(deadline.remaining()));
            }
            Err(nix::errno::Errno::EAGAIN) => {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!(
                        "listen queue full for {:.1}s",
                        started.elapsed().as_secs_f64()
                    ),
                ))
            }
            Err(e) => return Err(e.into()),
        }
    }
    // SAFETY: `fd` is an open socket that we own; ownership moves to the
    // UnixStream.
    let stream = unsafe { UnixStream::from_raw_fd(fd.into_raw_fd()) };
    stream.set_nonblocking(false)?;
    Ok(stream)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn md5_answer_matches_what_pcp_node_info_sent() {
        // Captured from pcp_node_info of pgpool-II 4.3.5: user pcpadmin,
        // password "secret", salt 67 c8 77 66.
        assert_eq!(
            md5_answer("pcpadmin", "secret", &[0x67, 0xc8, 0x77, 0x66]),
            "a4a9a84bb7491802ac2bcdb4afd78b6b"
        );
        assert_eq!(md5_hex(b"secret"), "5ebe2294ecd0e0f08eab7690d2a6ee69");
    }

    #[test]
    fn frames_count_the_length_but_not_the_tag() {
        assert_eq!(frame(b'M', b""), b"M\0\0\0\x04");
        assert_eq!(frame(b'I', b"0\0"), b"I\0\0\0\x060\0");
    }

    #[test]
    fn node_info_of_4_3_is_parsed() {
        // The bytes pgpool-II 4.3.5 sent for a primary.
        let body = b"NodeInfo\0/tmp/p/run\x005432\x002\x000\0up\x001073741823.500000\x002\0primary\x000\0\0\x001796160111\0";
        let f = fields(body);
        assert_eq!(f[0], "NodeInfo");
        let n = parse_node_info(0, &f[1..]).unwrap();
        assert_eq!(n.hostname, "/tmp/p/run");
        assert_eq!(n.port, 5432);
        assert_eq!(n.status, BackendStatus::Up);
        assert!(!n.quarantine);
        assert_eq!(n.pg_status, LiveStatus::Up);
        assert!((n.weight - 0.5).abs() < 1e-6, "{}", n.weight);
        assert_eq!(n.role, PoolRole::Primary);
        assert_eq!(n.pg_role, LiveRole::Primary);
        assert_eq!(n.replication_delay, 0);
        assert_eq!(n.replication_state, "");
        assert_eq!(n.status_changed, 1796160111);
    }

    #[test]
    fn a_standby_marked_down_but_streaming() {
        let f = [
            "/tmp/s/run",
            "5432",
            "3",
            "0",
            "up",
            "1073741823.5",
            "3",
            "standby",
            "120",
            "streaming",
            "async",
            "1796160111",
        ];
        let n = parse_node_info(1, &f).unwrap();
        assert_eq!(n.status, BackendStatus::Down);
        assert!(!n.status.is_attached());
        assert_eq!(n.role, PoolRole::Standby);
        assert_eq!(n.replication_delay, 120);
        assert_eq!(n.replication_state, "streaming");
    }

    #[test]
    fn short_or_garbled_node_info_is_refused() {
        assert!(parse_node_info(0, &["h", "5432", "2"])
            .unwrap_err()
            .contains("3 fields"));
        let mut f = vec![
            "h", "port?", "2", "0", "up", "1", "2", "primary", "0", "0", "", "", "0",
        ];
        assert!(parse_node_info(0, &f).unwrap_err().contains("port"));
        f[1] = "5432";
        f[2] = "9";
        assert!(parse_node_info(0, &f).unwrap_err().contains("status"));
    }

    #[test]
    fn the_later_layout_with_a_delay_by_time_flag_is_read_too() {
        let f = [
            "h",
            "5432",
            "2",
            "0",
            "up",
            "1",
            "3",
            "standby",
            "1",
            "250",
            "streaming",
            "sync",
            "7",
        ];
        let n = parse_node_info(1, &f).unwrap();
        assert!(n.delay_by_time);
        assert_eq!(n.replication_delay, 250);
        assert_eq!(n.replication_sync_state, "sync");
        assert_eq!(n.status_changed, 7);
    }

    #[test]
    fn waiting_counts_as_attached() {
        assert!(BackendStatus::Waiting.is_attached());
        assert!(BackendStatus::Up.is_attached());
        assert!(!BackendStatus::Down.is_attached());
        assert!(!BackendStatus::Unused.is_attached());
    }

    #[test]
    fn error_packets_read_as_message_and_detail() {
        // What pgpool-II 4.3.5 sent for a wrong password.
        let body = b"SFATAL\0CXX000\0Mauthentication failed for user \"pcpadmin\"\0Dusername and/or password does not match\0Fpcp_worker.c\0L517\0\0";
        assert_eq!(
            error_text(body),
            "authentication failed for user \\\"pcpadmin\\\": username and/or password does not match (FATAL)"
        );
        assert_eq!(error_text(b"\0"), "an error without a message");
        assert_eq!(error_text(b"Mno detail"), "no detail");
    }

    #[test]
    fn endpoints_are_socket_directories_or_addresses() {
        assert_eq!(
            Endpoint::parse("/run/pgpool", 9898)
                .unwrap()
                .socket_path()
                .unwrap(),
            Path::new("/run/pgpool/.s.PGSQL.9898")
        );
        assert_eq!(
            Endpoint::parse("localhost", 9898).unwrap(),
            Endpoint::Tcp("127.0.0.1:9898".parse().unwrap())
        );
        assert_eq!(
            Endpoint::parse("::1", 9898).unwrap(),
            Endpoint::Tcp("[::1]:9898".parse().unwrap())
        );
        let e = Endpoint::parse("db.example", 9898).unwrap_err();
        assert_eq!(e.kind, PcpErrorKind::Config);
    }

    #[test]
    fn a_missing_socket_is_unreachable_not_a_timeout() {
        let dir = tempfile::tempdir().unwrap();
        let d = Deadline::after(Duration::from_secs(2));
        let e = PcpConnection::connect(&Endpoint::unix(dir.path(), 9898), "u", "p", &d)
            .err()
            .unwrap();
        assert_eq!(e.kind, PcpErrorKind::Unreachable, "{e}");
        assert!(e.reason.contains("does not exist"), "{e}");
    }

    #[test]
    fn a_socket_nobody_listens_on_is_unreachable() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(".s.PGSQL.9898");
        drop(std::os::unix::net::UnixListener::bind(&path).unwrap());
        let d = Deadline::after(Duration::from_secs(2));
        let e = PcpConnection::connect(&Endpoint::unix(dir.path(), 9898), "u", "p", &d)
            .err()
            .unwrap();
        assert_eq!(e.kind, PcpErrorKind::Unreachable, "{e}");
        assert!(e.reason.contains("nothing listens"), "{e}");
    }

    #[test]
    fn a_listener_that_never_answers_times_out_inside_the_deadline() {
        let dir = tempfile::tempdir().unwrap();
        let _listener =
            std::os::unix::net::UnixListener::bind(dir.path().join(".s.PGSQL.9898")).unwrap();
        let started = Instant::now();
        let d = Deadline::after(Duration::from_millis(300));
        let e = PcpConnection::connect(&Endpoint::unix(dir.path(), 9898), "u", "p", &d)
            .err()
            .unwrap();
        assert_eq!(e.kind, PcpErrorKind::Timeout, "{e}");
        assert!(e.reason.contains("md5 salt"), "{e}");
        assert!(started.elapsed() < Duration::from_millis(400));
    }

    #[test]
    fn refused_passwords_are_configuration_errors_for_pacemaker() {
        let e: OcfError = PcpError::new(PcpErrorKind::Auth, "no").into();
        assert_eq!(e.status(), Status::ErrConfigured);
        let e: OcfError = PcpError::new(PcpErrorKind::Timeout, "slow").into();
        assert_eq!(e.status(), Status::ErrGeneric);
    }
}
