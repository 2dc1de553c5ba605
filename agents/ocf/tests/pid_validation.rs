//! PID validation against real processes: the cases DESIGN.md failure 1 is
//! made of. Each test starts the processes it needs and kills them by PID.

use ocf::process::{check_pid, read_pid_file, Expected, PidCheck, PidFile};
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, SystemTime};

/// A child process that is killed and reaped when the test ends, pass or fail.
struct Guard(Child);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn sleeper() -> Guard {
    Guard(
        Command::new("sleep")
            .arg("60")
            .spawn()
            .expect("spawn sleep"),
    )
}

fn sleep_exe() -> PathBuf {
    std::fs::canonicalize(which("sleep")).unwrap()
}

fn which(name: &str) -> PathBuf {
    ["/usr/bin", "/bin"]
        .iter()
        .map(|d| Path::new(d).join(name))
        .find(|p| p.exists())
        .unwrap_or_else(|| panic!("{name} not found"))
}

fn write_pid_file(dir: &Path, content: &str) -> PathBuf {
    let path = dir.join("service.pid");
    std::fs::write(&path, content).unwrap();
    path
}

fn verdict(path: &Path, expected: &Expected<'_>) -> PidCheck {
    match read_pid_file(path).unwrap() {
        PidFile::Pid { pid, written, .. } => check_pid(pid, expected, Some(written)).unwrap(),
        other => panic!("expected a pid, got {other:?}"),
    }
}

#[test]
fn a_dead_pid_is_dead() {
    let mut done = Command::new("true").spawn().unwrap();
    let pid = done.id();
    done.wait().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let file = write_pid_file(dir.path(), &format!("{pid}\n"));
    let exe = sleep_exe();
    let want = Expected {
        exe: Some(&exe),
        ..Default::default()
    };
    assert_eq!(verdict(&file, &want), PidCheck::Dead);
}

#[test]
fn a_pid_reused_by_an_unrelated_live_process_is_foreign() {
    // The forged pid file names a live `sleep`; the service is PostgreSQL.
    let s = sleeper();
    let dir = tempfile::tempdir().unwrap();
    let file = write_pid_file(
        dir.path(),
        &format!("{}\n{}\n", s.0.id(), dir.path().display()),
    );
    let want = Expected {
        exe: Some(Path::new("/usr/lib/postgresql/15/bin/postgres")),
        cwd: Some(dir.path()),
        ..Default::default()
    };
    match verdict(&file, &want) {
        PidCheck::Foreign(reason) => assert!(reason.contains("runs "), "{reason}"),
        other => panic!("a reused PID was believed: {other:?}"),
    }
}

#[test]
fn the_right_executable_started_after_the_file_was_written_is_foreign() {
    // Same binary, but the pid file is an hour older than the process: the
    // PID was recycled by a later instance of the same program.
    let s = sleeper();
    let dir = tempfile::tempdir().unwrap();
    let file = write_pid_file(dir.path(), &format!("{}\n", s.0.id()));
    let hour_ago = SystemTime::now() - Duration::from_secs(3600);
    std::fs::File::options()
        .write(true)
        .open(&file)
        .unwrap()
        .set_modified(hour_ago)
        .unwrap();
    let exe = sleep_exe();
    let want = Expected {
        exe: Some(&exe),
        ..Default::default()
    };
    match verdict(&file, &want) {
        PidCheck::Foreign(reason) => {
            assert!(reason.contains("started after the pid file"), "{reason}")
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn the_real_process_is_ours() {
    let s = sleeper();
    let dir = tempfile::tempdir().unwrap();
    // Written after the process started, as a daemon writes its own pid file.
    std::thread::sleep(Duration::from_millis(20));
    let file = write_pid_file(dir.path(), &format!("{}\n", s.0.id()));
    let exe = sleep_exe();
    let want = Expected {
        exe: Some(&exe),
        arg: Some(std::ffi::OsStr::new("60")),
        uid: Some(nix::unistd::Uid::effective().as_raw()),
        ..Default::default()
    };
    match verdict(&file, &want) {
        PidCheck::Ours(info) => {
            assert_eq!(info.pid as u32, s.0.id());
            assert_eq!(info.gid, nix::unistd::Gid::effective().as_raw());
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn the_tests_own_pid_is_foreign() {
    let dir = tempfile::tempdir().unwrap();
    let file = write_pid_file(dir.path(), &format!("{}\n", std::process::id()));
    let exe = sleep_exe();
    let want = Expected {
        exe: Some(&exe),
        ..Default::default()
    };
    assert!(matches!(verdict(&file, &want), PidCheck::Foreign(_)));
}

#[test]
fn a_zombie_is_not_running() {
    let mut child = Command::new("true").spawn().unwrap();
    let pid = child.id() as i32;
    // Not reaped yet: the kernel keeps it as a zombie, which passes kill -0.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    let mut seen = None;
    while std::time::Instant::now() < deadline {
        seen = Some(check_pid(pid, &Expected::default(), None).unwrap());
        if seen == Some(PidCheck::Zombie) {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None).is_ok());
    child.wait().unwrap();
    assert_eq!(seen, Some(PidCheck::Zombie));
}

#[test]
fn empty_and_garbage_files_hold_no_pid() {
    let dir = tempfile::tempdir().unwrap();
    for content in ["", "\n", "abc\n", "-5\n", "0\n", "12abc\n"] {
        let file = write_pid_file(dir.path(), content);
        assert!(
            matches!(read_pid_file(&file).unwrap(), PidFile::Garbage(_)),
            "{content:?}"
        );
    }
    assert_eq!(
        read_pid_file(&dir.path().join("absent")).unwrap(),
        PidFile::Missing
    );
}

#[test]
fn an_unreadable_pid_file_is_an_error_not_a_guess() {
    let dir = tempfile::tempdir().unwrap();
    // A directory where the file should be cannot be read even by root.
    let path = dir.path().join("service.pid");
    std::fs::create_dir(&path).unwrap();
    assert!(read_pid_file(&path).is_err());
}

#[test]
fn find_processes_sees_every_matching_process() {
    let a = sleeper();
    let b = sleeper();
    let exe = sleep_exe();
    let want = Expected {
        exe: Some(&exe),
        arg: Some(std::ffi::OsStr::new("60")),
        ..Default::default()
    };
    let pids: Vec<u32> = ocf::process::find_processes(&want)
        .unwrap()
        .iter()
        .map(|p| p.pid as u32)
        .collect();
    assert!(
        pids.contains(&a.0.id()) && pids.contains(&b.0.id()),
        "{pids:?}"
    );
    assert!(!pids.contains(&std::process::id()));
}

#[test]
fn commands_run_as_another_user_with_its_ids() {
    assert!(
        nix::unistd::Uid::effective().is_root(),
        "switching users needs root: run ./run-tests"
    );
    let nobody = ocf::OsUser::lookup("nobody").unwrap();
    let mut cmd = nobody.command("/usr/bin/id");
    cmd.args(["-u", "-n"]);
    let out = ocf::command::run(cmd, &ocf::Deadline::after(Duration::from_secs(10))).unwrap();
    assert_eq!(out.stdout.trim(), "nobody");
}
