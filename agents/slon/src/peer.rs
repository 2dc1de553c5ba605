//! Which process is at the other end of a PostgreSQL backend's connection.
//!
//! pg_stat_activity says where a backend's client connects from (a unix
//! socket, or an address and port) but not which process it is. On this
//! host the kernel knows: a unix socket's peer comes from the sock_diag
//! netlink interface, a TCP connection's socket from /proc/net/tcp{,6}; the
//! process holding that socket is found through /proc/PID/fd. All of it is
//! read, nothing is signalled, and nothing forks.

use ocf::process::{self, ProcInfo};
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::Path;

/// Where a backend's client connects from, as pg_stat_activity says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Client {
    /// `client_port` -1: a unix socket, so a process on the server's host.
    UnixSocket,
    Tcp {
        addr: IpAddr,
        port: u16,
    },
    /// `client_port` NULL: pg_stat_activity hides it from the agent's role
    /// (no pg_read_all_stats), or the backend has no client.
    Hidden,
}

/// The other end of a backend's connection, as this host sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Peer {
    /// The process on this host that holds the client's end.
    Local(ProcInfo),
    /// The client is on this host, but no process here holds its end: it
    /// exited meanwhile, or it lives in another PID namespace.
    LocalUnseen,
    /// A client on another host: its process cannot be checked from here.
    Remote { addr: IpAddr, port: u16 },
    /// pg_stat_activity hides the client.
    Hidden,
    /// /proc or the kernel's socket table could not be read; the reason.
    Unreadable(String),
}

/// Finds the process at the other end of `backend_pid`'s connection.
/// `server_port` is the port the server listens on, which a TCP client's
/// socket is connected to. The server runs on this host (the agent reaches
/// it over its unix socket), so its backends are visible in /proc here.
pub fn find(backend_pid: i32, client: &Client, server_port: u16) -> Peer {
    let found = match client_end(backend_pid, client, server_port) {
        Ok(ClientEnd::Hidden) => return Peer::Hidden,
        Ok(ClientEnd::Remote { addr, port }) => return Peer::Remote { addr, port },
        Ok(ClientEnd::Sockets(inodes)) => first_holder(&inodes, backend_pid),
        Err(e) => Err(e),
    };
    match found {
        Ok(Some(p)) => Peer::Local(p),
        Ok(None) => Peer::LocalUnseen,
        Err(e) => Peer::Unreadable(format!(
            "cannot find the client of backend {backend_pid}: {e}"
        )),
    }
}

/// Whether the process `candidate` holds the client's end of
/// `backend_pid`'s connection: [`find`] for a client the caller expects,
/// which reads the candidate's descriptors instead of every process's.
pub fn is_client(
    backend_pid: i32,
    client: &Client,
    server_port: u16,
    candidate: i32,
) -> io::Result<bool> {
    match client_end(backend_pid, client, server_port)? {
        ClientEnd::Sockets(inodes) => {
            let held = socket_inodes(candidate)?;
            Ok(inodes.iter().any(|i| held.contains(i)))
        }
        ClientEnd::Hidden | ClientEnd::Remote { .. } => Ok(false),
    }
}

/// The client's end of a backend's connection, as this host knows it.
enum ClientEnd {
    Hidden,
    Remote {
        addr: IpAddr,
        port: u16,
    },
    /// The socket inodes (on this host) that may be the client's end; none
    /// when the client is gone.
    Sockets(Vec<u64>),
}

fn client_end(backend_pid: i32, client: &Client, server_port: u16) -> io::Result<ClientEnd> {
    Ok(match client {
        Client::Hidden => ClientEnd::Hidden,
        Client::UnixSocket => ClientEnd::Sockets(unix_peers(backend_pid, server_port)?),
        Client::Tcp { addr, port } => match tcp_socket(*addr, *port, server_port)? {
            Some(inode) => ClientEnd::Sockets(vec![inode]),
            None if addr.is_loopback() => ClientEnd::Sockets(Vec::new()),
            // No socket of this host has that address and port: the client
            // is elsewhere.
            None => ClientEnd::Remote {
                addr: *addr,
                port: *port,
            },
        },
    })
}

/// The peers of the backend's client connections over the unix socket.
fn unix_peers(backend_pid: i32, server_port: u16) -> io::Result<Vec<u64>> {
    // The client's connection is the backend's stream socket accepted on
    // the server's `.s.PGSQL.PORT` (an accepted socket carries its
    // listener's name). A backend may hold other connected sockets, such as
    // a datagram socket to syslog's /dev/log, whose peer is no client.
    let listener = format!("/.s.PGSQL.{server_port}");
    let mut peers = Vec::new();
    for inode in socket_inodes(backend_pid)? {
        let Some(socket) = sock_diag::unix_socket(inode)? else {
            continue;
        };
        let accepted_here = socket.stream && socket.name.ends_with(listener.as_bytes());
        peers.extend(socket.peer.filter(|_| accepted_here));
    }
    Ok(peers)
}

/// The first live process, other than `except`, holding one of `inodes`.
fn first_holder(inodes: &[u64], except: i32) -> io::Result<Option<ProcInfo>> {
    for inode in inodes {
        if let Some(p) = socket_holder(*inode, except)? {
            return Ok(Some(p));
        }
    }
    Ok(None)
}

/// The inodes of the sockets `pid` holds open.
fn socket_inodes(pid: i32) -> io::Result<Vec<u64>> {
    let dir = match std::fs::read_dir(format!("/proc/{pid}/fd")) {
        Ok(d) => d,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    Ok(dir
        .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
        .filter_map(|target| socket_inode(&target))
        .collect())
}

/// `socket:[12345]`, the link /proc/PID/fd/N has for a socket.
fn socket_inode(link: &Path) -> Option<u64> {
    link.to_str()?
        .strip_prefix("socket:[")?
        .strip_suffix(']')?
        .parse()
        .ok()
}

/// The live process, other than `except`, that holds the socket `inode`.
/// A process that forked after connecting shares the socket with its
/// child; the first live one found is given.
fn socket_holder(inode: u64, except: i32) -> io::Result<Option<ProcInfo>> {
    for pid in process::all_pids()? {
        if pid == except || !socket_inodes(pid).unwrap_or_default().contains(&inode) {
            continue;
        }
        match ProcInfo::read(pid)? {
            Some(p) if !p.has_exited() => return Ok(Some(p)),
            _ => {}
        }
    }
    Ok(None)
}

/// The inode of the established TCP socket of this host whose local end is
/// `addr`:`port` and whose remote port is the server's.
fn tcp_socket(addr: IpAddr, port: u16, server_port: u16) -> io::Result<Option<u64>> {
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let text = match std::fs::read_to_string(table) {
            Ok(t) => t,
            // No IPv6 in this kernel.
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        let found = text.lines().skip(1).filter_map(TcpEntry::parse).find(|e| {
            e.established
                && same_address(e.local.0, addr)
                && e.local.1 == port
                && e.remote.1 == server_port
        });
        if let Some(e) = found {
            return Ok(Some(e.inode));
        }
    }
    Ok(None)
}

/// An IPv4 client seen through an IPv6 socket is `::ffff:a.b.c.d`.
fn same_address(a: IpAddr, b: IpAddr) -> bool {
    let canonical = |ip: IpAddr| match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
        v4 => v4,
    };
    canonical(a) == canonical(b)
}

/// One line of /proc/net/tcp or /proc/net/tcp6.
#[derive(Debug, Clone, PartialEq, Eq)]
struct TcpEntry {
    local: (IpAddr, u16),
    remote: (IpAddr, u16),
    established: bool,
    inode: u64,
}

impl TcpEntry {
    /// `sl local_address rem_address st ... uid timeout inode`; addresses
    /// are the kernel's words printed in hex in host byte order.
    fn parse(line: &str) -> Option<TcpEntry> {
        let f: Vec<&str> = line.split_whitespace().collect();
        Some(TcpEntry {
            local: endpoint(f.get(1)?)?,
            remote: endpoint(f.get(2)?)?,
            established: *f.get(3)? == "01",
            inode: f.get(9)?.parse().ok()?,
        })
    }
}

fn endpoint(s: &str) -> Option<(IpAddr, u16)> {
    let (addr, port) = s.split_once(':')?;
    let port = u16::from_str_radix(port, 16).ok()?;
    let word = |i: usize| -> Option<[u8; 4]> {
        let hex = addr.get(i * 8..i * 8 + 8)?;
        Some(u32::from_str_radix(hex, 16).ok()?.to_ne_bytes())
    };
    let ip = match addr.len() {
        8 => IpAddr::V4(Ipv4Addr::from(word(0)?)),
        32 => {
            let mut bytes = [0u8; 16];
            for i in 0..4 {
                bytes[i * 4..i * 4 + 4].copy_from_slice(&word(i)?);
            }
            IpAddr::V6(Ipv6Addr::from(bytes))
        }
        _ => return None,
    };
    Some((ip, port))
}

/// The kernel's sock_diag netlink interface, asked about one unix socket.
mod sock_diag {
    use nix::libc;
    use std::io;

    // From linux/netlink.h, linux/sock_diag.h and linux/unix_diag.h.
    const NETLINK_SOCK_DIAG: libc::c_int = 4;
    const SOCK_DIAG_BY_FAMILY: u16 = 20;
    const NLM_F_REQUEST: u16 = 1;
    const NLMSG_ERROR: u16 = 2;
    const NLMSG_DONE: u16 = 3;
    const UDIAG_SHOW_NAME: u32 = 0x1;
    const UDIAG_SHOW_PEER: u32 = 0x4;
    const UNIX_DIAG_NAME: u16 = 0;
    const UNIX_DIAG_PEER: u16 = 2;
    /// A cookie of all ones skips the kernel's check that the inode still
    /// names the socket it named when the cookie was handed out.
    const NO_COOKIE: u32 = !0;
    const HEADER: usize = 16;

    /// What the kernel says about one unix socket.
    #[derive(Debug, Default, PartialEq, Eq)]
    pub struct UnixSocket {
        /// SOCK_STREAM (a PostgreSQL connection) rather than a datagram or
        /// seqpacket socket.
        pub stream: bool,
        /// The path it is bound to, or for an accepted socket its
        /// listener's; empty when unbound.
        pub name: Vec<u8>,
        /// The inode of the socket connected to it.
        pub peer: Option<u64>,
    }

    /// The unix socket `inode`, or `None` when it no longer exists.
    pub fn unix_socket(inode: u64) -> io::Result<Option<UnixSocket>> {
        let Ok(inode) = u32::try_from(inode) else {
            return Ok(None); // sock_diag knows 32-bit inodes only
        };
        let fd = Fd::netlink()?;
        fd.send(&request(inode))?;
        let mut buf = vec![0u8; 8192];
        let len = fd.recv(&mut buf)?;
        parse_reply(&buf[..len])
    }

    /// nlmsghdr + unix_diag_req, for one socket (no NLM_F_DUMP).
    fn request(inode: u32) -> Vec<u8> {
        let mut m = Vec::with_capacity(HEADER + 24);
        m.extend_from_slice(&((HEADER + 24) as u32).to_ne_bytes());
        m.extend_from_slice(&SOCK_DIAG_BY_FAMILY.to_ne_bytes());
        m.extend_from_slice(&NLM_F_REQUEST.to_ne_bytes());
        m.extend_from_slice(&1u32.to_ne_bytes()); // sequence
        m.extend_from_slice(&0u32.to_ne_bytes()); // port id: the kernel
        m.push(libc::AF_UNIX as u8); // sdiag_family
        m.push(0); // sdiag_protocol
        m.extend_from_slice(&0u16.to_ne_bytes());
        m.extend_from_slice(&(!0u32).to_ne_bytes()); // every state
        m.extend_from_slice(&inode.to_ne_bytes());
        m.extend_from_slice(&(UDIAG_SHOW_NAME | UDIAG_SHOW_PEER).to_ne_bytes());
        m.extend_from_slice(&NO_COOKIE.to_ne_bytes());
        m.extend_from_slice(&NO_COOKIE.to_ne_bytes());
        m
    }

    /// The socket's type and its UNIX_DIAG_NAME and UNIX_DIAG_PEER
    /// attributes; an ENOENT error means the socket is gone.
    pub(super) fn parse_reply(msg: &[u8]) -> io::Result<Option<UnixSocket>> {
        let u16_at = |o: usize| msg.get(o..o + 2).map(|b| u16::from_ne_bytes([b[0], b[1]]));
        let u32_at = |o: usize| {
            msg.get(o..o + 4)
                .map(|b| u32::from_ne_bytes([b[0], b[1], b[2], b[3]]))
        };
        let short = || io::Error::new(io::ErrorKind::InvalidData, "short sock_diag reply");
        let len = u32_at(0).ok_or_else(short)? as usize;
        let kind = u16_at(4).ok_or_else(short)?;
        let msg = msg.get(..len).ok_or_else(short)?;
        match kind {
            NLMSG_ERROR => {
                let errno = -(u32_at(HEADER).ok_or_else(short)? as i32);
                if errno == libc::ENOENT {
                    return Ok(None);
                }
                return Err(io::Error::from_raw_os_error(errno));
            }
            NLMSG_DONE => return Ok(None),
            SOCK_DIAG_BY_FAMILY => {}
            other => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("unexpected sock_diag message type {other}"),
                ))
            }
        }
        // unix_diag_msg: family, type, state, pad, inode, cookie (16
        // bytes); the attributes follow, each 4-byte aligned.
        let mut socket = UnixSocket {
            stream: *msg.get(HEADER + 1).ok_or_else(short)? == libc::SOCK_STREAM as u8,
            ..UnixSocket::default()
        };
        let mut at = HEADER + 16;
        while at + 4 <= msg.len() {
            let attr_len = u16_at(at).ok_or_else(short)? as usize;
            let attr_type = u16_at(at + 2).ok_or_else(short)?;
            if attr_len < 4 {
                break;
            }
            let data = msg.get(at + 4..at + attr_len).ok_or_else(short)?;
            match attr_type {
                // A path name comes with its terminating NUL.
                UNIX_DIAG_NAME => socket.name = data.strip_suffix(&[0]).unwrap_or(data).to_vec(),
                UNIX_DIAG_PEER => {
                    let peer = u32_at(at + 4).ok_or_else(short)?;
                    socket.peer = (peer != 0).then_some(u64::from(peer));
                }
                _ => {}
            }
            at += (attr_len + 3) & !3;
        }
        Ok(Some(socket))
    }

    struct Fd(libc::c_int);

    impl Fd {
        fn netlink() -> io::Result<Fd> {
            // SAFETY: socket(2) takes no pointers.
            let fd = unsafe {
                libc::socket(
                    libc::AF_NETLINK,
                    libc::SOCK_DGRAM | libc::SOCK_CLOEXEC,
                    NETLINK_SOCK_DIAG,
                )
            };
            if fd < 0 {
                return Err(io::Error::last_os_error());
            }
            let fd = Fd(fd);
            // A kernel that never answers must not hang the agent.
            let timeout = libc::timeval {
                tv_sec: 2,
                tv_usec: 0,
            };
            // SAFETY: the option value is a timeval of the given size.
            let rc = unsafe {
                libc::setsockopt(
                    fd.0,
                    libc::SOL_SOCKET,
                    libc::SO_RCVTIMEO,
                    &timeout as *const libc::timeval as *const libc::c_void,
                    std::mem::size_of::<libc::timeval>() as libc::socklen_t,
                )
            };
            if rc < 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(fd)
        }

        fn send(&self, msg: &[u8]) -> io::Result<()> {
            // SAFETY: an all-zero sockaddr_nl addresses the kernel.
            let mut kernel: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
            kernel.nl_family = libc::AF_NETLINK as libc::sa_family_t;
            // SAFETY: msg and kernel outlive the call; the lengths are theirs.
            let rc = unsafe {
                libc::sendto(
                    self.0,
                    msg.as_ptr() as *const libc::c_void,
                    msg.len(),
                    0,
                    &kernel as *const libc::sockaddr_nl as *const libc::sockaddr,
                    std::mem::size_of::<libc::sockaddr_nl>() as libc::socklen_t,
                )
            };
            if rc < 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        }

        fn recv(&self, buf: &mut [u8]) -> io::Result<usize> {
            // SAFETY: buf is writable for its whole length.
            let rc =
                unsafe { libc::recv(self.0, buf.as_mut_ptr() as *mut libc::c_void, buf.len(), 0) };
            if rc < 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(rc as usize)
        }
    }

    impl Drop for Fd {
        fn drop(&mut self) {
            // SAFETY: the descriptor is ours and closed once.
            unsafe { libc::close(self.0) };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_net_tcp_lines_are_read_in_host_byte_order() {
        // 127.0.0.1:45678 -> 127.0.0.1:5432, established, inode 98765
        // (the kernel prints each 32-bit word as a host-order number).
        let a = u32::from_ne_bytes([127, 0, 0, 1]);
        let line = format!(
            "   3: {a:08X}:B26E {a:08X}:1538 01 00000000:00000000 00:00000000 00000000   105        0 98765 1 0000000000000000 20 4 30 10 -1"
        );
        let e = TcpEntry::parse(&line).unwrap();
        assert_eq!(e.local, (IpAddr::V4(Ipv4Addr::LOCALHOST), 45678));
        assert_eq!(e.remote, (IpAddr::V4(Ipv4Addr::LOCALHOST), 5432));
        assert!(e.established);
        assert_eq!(e.inode, 98765);
    }

    #[test]
    fn proc_net_tcp6_addresses_are_four_words() {
        let ip: Ipv6Addr = "fd00::1:2".parse().unwrap();
        let hex: String = ip
            .octets()
            .chunks(4)
            .map(|w| format!("{:08X}", u32::from_ne_bytes([w[0], w[1], w[2], w[3]])))
            .collect();
        let line = format!(
            "   0: {hex}:1538 {hex}:C350 0A 00000000:00000000 00:00000000 00000000   105        0 4242 1"
        );
        let e = TcpEntry::parse(&line).unwrap();
        assert_eq!(e.local, (IpAddr::V6(ip), 5432));
        assert_eq!(e.remote.1, 50000);
        assert!(!e.established, "0A is LISTEN");
        assert!(TcpEntry::parse("  sl  local_address rem_address   st").is_none());
    }

    #[test]
    fn an_ipv4_client_matches_its_ipv6_mapped_form() {
        let v4: IpAddr = "10.1.2.3".parse().unwrap();
        let mapped: IpAddr = "::ffff:10.1.2.3".parse().unwrap();
        assert!(same_address(v4, mapped));
        assert!(!same_address(v4, "10.1.2.4".parse().unwrap()));
    }

    #[test]
    fn socket_links_name_their_inode() {
        assert_eq!(socket_inode(Path::new("socket:[4026]")), Some(4026));
        assert_eq!(socket_inode(Path::new("pipe:[4026]")), None);
        assert_eq!(socket_inode(Path::new("/dev/null")), None);
    }

    fn reply(kind: u16, body: &[u8]) -> Vec<u8> {
        let mut m = Vec::new();
        m.extend_from_slice(&((16 + body.len()) as u32).to_ne_bytes());
        m.extend_from_slice(&kind.to_ne_bytes());
        m.extend_from_slice(&[0; 10]);
        m.extend_from_slice(body);
        m
    }

    #[test]
    fn the_name_and_peer_attributes_are_read() {
        let mut body = vec![1, 1, 1, 0]; // AF_UNIX, SOCK_STREAM, established
        body.extend_from_slice(&77u32.to_ne_bytes()); // the socket's inode
        body.extend_from_slice(&[0; 8]); // cookie
                                         // UNIX_DIAG_NAME (0) "/x" with its NUL, padded; UNIX_DIAG_PEER (2).
        body.extend_from_slice(&7u16.to_ne_bytes());
        body.extend_from_slice(&0u16.to_ne_bytes());
        body.extend_from_slice(b"/x\0\0");
        body.extend_from_slice(&8u16.to_ne_bytes());
        body.extend_from_slice(&2u16.to_ne_bytes());
        body.extend_from_slice(&4711u32.to_ne_bytes());
        let s = sock_diag::parse_reply(&reply(20, &body)).unwrap().unwrap();
        assert!(s.stream);
        assert_eq!(s.name, b"/x");
        assert_eq!(s.peer, Some(4711));
    }

    #[test]
    fn a_socket_without_peer_or_gone_has_no_peer() {
        let mut body = vec![1, 2, 7, 0]; // a datagram socket, unconnected
        body.extend_from_slice(&77u32.to_ne_bytes());
        body.extend_from_slice(&[0; 8]);
        let s = sock_diag::parse_reply(&reply(20, &body)).unwrap().unwrap();
        assert_eq!(s, sock_diag::UnixSocket::default());
        let enoent = (-nix::libc::ENOENT).to_ne_bytes();
        assert_eq!(sock_diag::parse_reply(&reply(2, &enoent)).unwrap(), None);
        let eperm = (-nix::libc::EPERM).to_ne_bytes();
        assert!(sock_diag::parse_reply(&reply(2, &eperm)).is_err());
        assert!(sock_diag::parse_reply(&[1, 2]).is_err());
    }
}
