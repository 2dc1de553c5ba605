//! System V shared memory a killed pgpool leaves behind.
//!
//! pgpool-II 4.3 allocates one shared memory segment in its main process
//! (134 MB with Debian's query-cache sizes, even with the cache off) and a
//! semaphore set, both with IPC_PRIVATE, and removes them only on a clean
//! shutdown (docs/pgpool-facts.md). After a SIGKILL they stay until
//! reboot. A segment names the process that created it (`cpid`) and how
//! many processes have it attached (`nattch`), so the one of a main
//! process known to be dead, private, owned by pgpool's account and
//! attached by nobody can be removed without doubt. A semaphore set
//! records neither: nothing tells this pgpool's from another one's, so
//! semaphores are left alone (9 semaphores per start, a few hundred bytes).

use std::collections::HashMap;

/// One row of /proc/sysvipc/shm.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Segment {
    pub key: i64,
    pub id: i32,
    pub size: u64,
    pub creator_pid: i32,
    pub attached: u64,
    pub creator_uid: u32,
}

/// The rows of /proc/sysvipc/shm, columns found by their header names.
pub fn parse_segments(table: &str) -> Vec<Segment> {
    let mut lines = table.lines();
    let Some(header) = lines.next() else {
        return Vec::new();
    };
    let column: HashMap<&str, usize> = header
        .split_whitespace()
        .enumerate()
        .map(|(i, name)| (name, i))
        .collect();
    let index = |name: &str| column.get(name).copied();
    let (Some(key), Some(id), Some(size), Some(cpid), Some(nattch), Some(cuid)) = (
        index("key"),
        index("shmid"),
        index("size"),
        index("cpid"),
        index("nattch"),
        index("cuid"),
    ) else {
        return Vec::new();
    };
    lines
        .filter_map(|row| {
            let f: Vec<&str> = row.split_whitespace().collect();
            Some(Segment {
                key: f.get(key)?.parse().ok()?,
                id: f.get(id)?.parse().ok()?,
                size: f.get(size)?.parse().ok()?,
                creator_pid: f.get(cpid)?.parse().ok()?,
                attached: f.get(nattch)?.parse().ok()?,
                creator_uid: f.get(cuid)?.parse().ok()?,
            })
        })
        .collect()
}

/// The segments a dead pgpool main process `pid` of account `uid` left.
pub fn leftovers(segments: &[Segment], pid: i32, uid: u32) -> Vec<Segment> {
    segments
        .iter()
        .filter(|s| s.key == 0 && s.creator_pid == pid && s.creator_uid == uid && s.attached == 0)
        .cloned()
        .collect()
}

/// Removes what the dead main process `pid` of `uid` left; returns what
/// was removed. Nothing while a process `pid` runs: it may be another
/// program that reuses the PID and keeps a segment of its own.
pub fn remove_leftovers(pid: i32, uid: u32) -> Vec<Segment> {
    let running = matches!(ocf::process::Stat::read(pid),
        Ok(Some(s)) if !matches!(s.state, 'Z' | 'X' | 'x'));
    if running {
        return Vec::new();
    }
    let table = std::fs::read_to_string("/proc/sysvipc/shm").unwrap_or_default();
    leftovers(&parse_segments(&table), pid, uid)
        .into_iter()
        .filter(|s| {
            // SAFETY: IPC_RMID takes no buffer.
            unsafe { nix::libc::shmctl(s.id, nix::libc::IPC_RMID, std::ptr::null_mut()) == 0 }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const TABLE: &str = "       key      shmid perms                  size  cpid  lpid nattch   uid   gid  cuid  cgid      atime      dtime      ctime                   rss                  swap\n\
        0          7 600                8759016  4242  4250      0   110   118   110   118 1764000000 1764000100 1764000000 8761344 0\n\
        0          8 600                8759016  4242  4250      3   110   118   110   118 1764000000 1764000100 1764000000 8761344 0\n\
        5432001    9 600                     56  4242  4242      0   110   118   110   118 1764000000 1764000100 1764000000 4096 0\n\
        0         10 600                8759016  4242  4250      0     0     0     0     0 1764000000 1764000100 1764000000 8761344 0\n\
        0         11 600                8759016  5353  5360      0   110   118   110   118 1764000000 1764000100 1764000000 8761344 0\n";

    #[test]
    fn only_a_private_unattached_segment_of_that_pid_and_account_is_a_leftover() {
        let segments = parse_segments(TABLE);
        assert_eq!(segments.len(), 5);
        assert_eq!(segments[0].size, 8_759_016);
        let found = leftovers(&segments, 4242, 110);
        // 8 is attached, 9 has a key (PostgreSQL's), 10 is root's, 11 is
        // another process's.
        assert_eq!(found.iter().map(|s| s.id).collect::<Vec<_>>(), [7]);
    }

    #[test]
    fn an_unreadable_table_has_no_segments() {
        assert!(parse_segments("").is_empty());
        assert!(parse_segments("key shmid\n0 7\n").is_empty());
    }
}
