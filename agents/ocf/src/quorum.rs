//! Whether this node's partition has quorum, asked of corosync itself
//! through its quorum API: no fork, one IPC round trip (a connect, one
//! request, a close), cheap enough for every monitor of a primary.
//!
//! The library is loaded at run time (`dlopen("libquorum.so.5")`) rather
//! than linked: the agents build without corosync's headers or development
//! package, and a node without the library still runs them. Whoever asks
//! gets [`Quorum::Unknown`] with the reason when the library or corosync is
//! not there, and decides what to fall back to (`crm_mon`, see
//! [`crate::crm_mon`]).
//!
//! The C API (corosync's `include/corosync/quorum.h`, stable since
//! corosync 2 under soname 5):
//!
//! ```c
//! typedef uint64_t quorum_handle_t;
//! typedef struct { quorum_notification_fn_t quorum_notify_fn; } quorum_callbacks_t;
//! cs_error_t quorum_initialize(quorum_handle_t *handle, quorum_callbacks_t *callbacks,
//!                              uint32_t *quorum_type);
//! cs_error_t quorum_getquorate(quorum_handle_t handle, int *quorate);
//! cs_error_t quorum_finalize(quorum_handle_t handle);
//! ```
//!
//! `cs_error_t` is an enum (an `int`) whose success value `CS_OK` is 1.

use crate::Deadline;
use std::ffi::{c_char, c_int, c_void, CStr};
use std::sync::mpsc;
use std::time::Duration;

/// The soname of corosync's quorum library (corosync 2 and 3).
pub const LIBRARY: &str = "libquorum.so.5";

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Quorum {
    Quorate,
    NotQuorate,
    /// The question could not be answered, and why.
    Unknown(String),
}

impl Quorum {
    /// Asks corosync, inside `deadline`. The IPC calls block for as long as
    /// corosync takes to answer (a frozen corosync: for ever), so they run
    /// in a thread of their own that is left behind when the deadline
    /// comes first; the agent's process ends soon after anyway.
    pub fn ask(deadline: &Deadline) -> Quorum {
        let (tx, rx) = mpsc::channel();
        let spawned = std::thread::Builder::new()
            .name("quorum".into())
            .spawn(move || {
                let _ = tx.send(ask_corosync());
            });
        if let Err(e) = spawned {
            return Quorum::Unknown(format!("no thread to ask corosync: {e}"));
        }
        let wait = deadline.remaining().max(Duration::from_millis(1));
        match rx.recv_timeout(wait) {
            Ok(answer) => answer,
            Err(_) => Quorum::Unknown(format!(
                "corosync did not answer the quorum question within {:.1}s",
                wait.as_secs_f64()
            )),
        }
    }
}

/// How the answer was had.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// corosync's quorum API: no fork.
    Corosync,
    /// `crm_mon` (one fork), because the API could not answer, and why.
    CrmMon(String),
}

/// Asks corosync; when that cannot answer (no library, corosync not
/// reachable from here), asks `crm_mon` instead: the quorum Pacemaker
/// itself acts on, at the cost of a fork. Each gets half of what is left.
pub fn ask_or_crm_mon(deadline: &Deadline) -> (Quorum, Source) {
    let first = Deadline::after(deadline.remaining().mul_f64(0.5));
    let why = match Quorum::ask(&first) {
        Quorum::Unknown(why) => why,
        known => return (known, Source::Corosync),
    };
    let answer = match crate::crm_mon::ClusterView::query(deadline) {
        Ok(view) if view.quorate => Quorum::Quorate,
        Ok(_) => Quorum::NotQuorate,
        Err(e) => Quorum::Unknown(format!("{why}; {}", e.reason())),
    };
    (answer, Source::CrmMon(why))
}

/// `cs_error_t`'s success.
const CS_OK: c_int = 1;

/// What a `cs_error_t` means, for the log (corotypes.h).
pub fn cs_error(code: c_int) -> String {
    let name = match code {
        1 => "CS_OK",
        2 => "CS_ERR_LIBRARY (corosync not running?)",
        6 => "CS_ERR_TRY_AGAIN",
        9 => "CS_ERR_BAD_HANDLE",
        11 => "CS_ERR_ACCESS",
        12 => "CS_ERR_NOT_EXIST",
        20 => "CS_ERR_SECURITY",
        _ => "",
    };
    if name.is_empty() {
        format!("cs_error_t {code}")
    } else {
        format!("{name} ({code})")
    }
}

/// What `quorum_getquorate` returned, as an answer.
pub fn answer(initialized: c_int, got: Option<(c_int, c_int)>) -> Quorum {
    if initialized != CS_OK {
        return Quorum::Unknown(format!("quorum_initialize: {}", cs_error(initialized)));
    }
    match got {
        Some((CS_OK, 0)) => Quorum::NotQuorate,
        Some((CS_OK, _)) => Quorum::Quorate,
        Some((code, _)) => Quorum::Unknown(format!("quorum_getquorate: {}", cs_error(code))),
        None => Quorum::Unknown("quorum_getquorate was not called".to_string()),
    }
}

type Handle = u64;
/// `quorum_callbacks_t`: one nullable function pointer.
#[repr(C)]
struct Callbacks {
    notify: Option<unsafe extern "C" fn(Handle, u32, u64, u32, *mut u32)>,
}
type Initialize = unsafe extern "C" fn(*mut Handle, *mut Callbacks, *mut u32) -> c_int;
type GetQuorate = unsafe extern "C" fn(Handle, *mut c_int) -> c_int;
type Finalize = unsafe extern "C" fn(Handle) -> c_int;

/// The library, open for as long as this value lives.
struct Library(*mut c_void);

impl Drop for Library {
    fn drop(&mut self) {
        // SAFETY: a handle dlopen returned, closed once.
        unsafe { libc::dlclose(self.0) };
    }
}

fn dlerror() -> String {
    // SAFETY: dlerror returns NULL or a NUL-terminated string owned by libc,
    // copied before any other dl* call.
    unsafe {
        let e = libc::dlerror();
        if e.is_null() {
            "unknown error".to_string()
        } else {
            CStr::from_ptr(e).to_string_lossy().into_owned()
        }
    }
}

impl Library {
    fn open(name: &CStr) -> Result<Library, String> {
        // SAFETY: a NUL-terminated name; RTLD_LOCAL keeps its symbols out
        // of the global namespace.
        let handle = unsafe { libc::dlopen(name.as_ptr(), libc::RTLD_NOW | libc::RTLD_LOCAL) };
        if handle.is_null() {
            return Err(dlerror());
        }
        Ok(Library(handle))
    }

    /// The address of `symbol`, or why not.
    fn symbol(&self, symbol: &CStr) -> Result<*mut c_void, String> {
        // SAFETY: a live handle and a NUL-terminated name.
        let address = unsafe { libc::dlsym(self.0, symbol.as_ptr() as *const c_char) };
        if address.is_null() {
            Err(format!("{}: {}", symbol.to_string_lossy(), dlerror()))
        } else {
            Ok(address)
        }
    }
}

fn ask_corosync() -> Quorum {
    let lib = match Library::open(c"libquorum.so.5") {
        Ok(lib) => lib,
        Err(e) => return Quorum::Unknown(format!("{LIBRARY} not loaded: {e}")),
    };
    let symbols = (|| {
        Ok::<_, String>((
            lib.symbol(c"quorum_initialize")?,
            lib.symbol(c"quorum_getquorate")?,
            lib.symbol(c"quorum_finalize")?,
        ))
    })();
    let (initialize, getquorate, finalize) = match symbols {
        Ok(s) => s,
        Err(e) => return Quorum::Unknown(format!("{LIBRARY}: {e}")),
    };
    // SAFETY: the symbols have the C signatures quoted in the module's
    // documentation; function pointers and data pointers have one size on
    // the platforms dlsym serves.
    let (initialize, getquorate, finalize) = unsafe {
        (
            std::mem::transmute::<*mut c_void, Initialize>(initialize),
            std::mem::transmute::<*mut c_void, GetQuorate>(getquorate),
            std::mem::transmute::<*mut c_void, Finalize>(finalize),
        )
    };
    let mut handle: Handle = 0;
    let mut callbacks = Callbacks { notify: None };
    let mut quorum_type: u32 = 0;
    // SAFETY: valid pointers to locals that outlive the calls; no callback
    // is registered, and no dispatch is ever run.
    let initialized = unsafe { initialize(&mut handle, &mut callbacks, &mut quorum_type) };
    if initialized != CS_OK {
        return answer(initialized, None);
    }
    let mut quorate: c_int = 0;
    // SAFETY: a handle quorum_initialize gave, finalized once below.
    let got = unsafe { getquorate(handle, &mut quorate) };
    unsafe { finalize(handle) };
    answer(initialized, Some((got, quorate)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_answer_is_known_only_from_two_successful_calls() {
        assert_eq!(answer(CS_OK, Some((CS_OK, 1))), Quorum::Quorate);
        assert_eq!(answer(CS_OK, Some((CS_OK, 0))), Quorum::NotQuorate);
        let Quorum::Unknown(why) = answer(2, None) else {
            panic!("a failed initialize is an answer")
        };
        assert!(why.contains("quorum_initialize") && why.contains("CS_ERR_LIBRARY"));
        // A failed getquorate says nothing of quorum, whatever it left in
        // its output.
        let Quorum::Unknown(why) = answer(CS_OK, Some((6, 1))) else {
            panic!("a failed getquorate is an answer")
        };
        assert!(why.contains("CS_ERR_TRY_AGAIN"), "{why}");
        assert_eq!(cs_error(42), "cs_error_t 42");
    }

    /// This host runs no corosync (the lab's nodes do): the library loads,
    /// if installed, and the answer is Unknown with the reason, quickly,
    /// never a guess.
    #[test]
    fn without_corosync_the_answer_is_unknown_with_the_reason() {
        let started = std::time::Instant::now();
        match Quorum::ask(&Deadline::after(Duration::from_secs(5))) {
            Quorum::Unknown(why) => {
                eprintln!("{why}");
                assert!(why.contains("quorum") || why.contains(LIBRARY), "{why}")
            }
            other => {
                // A host that does run corosync answers, which is as good.
                eprintln!("corosync answered: {other:?}")
            }
        }
        assert!(started.elapsed() < Duration::from_secs(5));
    }
}
