//! Acting as the server's OS user for a while, so that peer authentication
//! lets the agent in without forking `psql` under `runuser`.

use crate::{Error, ErrorKind, Result};
use nix::unistd::{setegid, seteuid, Gid, Uid};

/// The effective uid and gid of another user until dropped.
///
/// Peer authentication (Debian's default for local connections) asks the
/// kernel for the uid of the process at the other end of the unix socket,
/// as it was when the process connected. The effective uid is enough, and
/// root can switch it back, so the switch lasts one connection.
///
/// glibc applies the switch to every thread of the process: never hold two
/// identities at once from different threads.
#[derive(Debug)]
pub struct Identity {
    restore: Option<(Uid, Gid)>,
}

impl Identity {
    /// Takes on `as_uid` and `as_gid` (group first: only root may change
    /// it). Nothing changes when the effective uid is `as_uid` already.
    pub fn assume((as_uid, as_gid): (Uid, Gid)) -> Result<Identity> {
        let (uid, gid) = (Uid::effective(), Gid::effective());
        if uid == as_uid {
            return Ok(Identity { restore: None });
        }
        let fail = |e| Error::new(ErrorKind::Other, format!("cannot act as uid {as_uid}: {e}"));
        setegid(as_gid).map_err(fail)?;
        if let Err(e) = seteuid(as_uid) {
            let _ = setegid(gid);
            return Err(fail(e));
        }
        Ok(Identity {
            restore: Some((uid, gid)),
        })
    }
}

impl Drop for Identity {
    fn drop(&mut self) {
        if let Some((uid, gid)) = self.restore {
            // Back to root first: only root may set the group back.
            let _ = seteuid(uid);
            let _ = setegid(gid);
        }
    }
}
