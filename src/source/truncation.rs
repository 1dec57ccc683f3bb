//! Reads of a map that a truncation of its file cannot kill.
//!
//! A load from a page past the new end of a truncated file raises `SIGBUS`, which ends the
//! process unless it is handled. Our own reads of maps — building a batch's views, cutting
//! lines at their newlines, copying lines out — run inside [`guarded`]: while one runs, the
//! thread's `SIGBUS` handler puts a page of zeros where the vanished page was (one
//! `mmap(MAP_FIXED)`, a system call that is safe in a signal handler) and notes the fault;
//! the load then completes, reading zeros, and the guarded call reports that the file
//! changed under it, so the batch is discarded and the caller gets
//! [`FileChanged`](crate::Error::FileChanged) for it. Any other `SIGBUS` — outside a
//! guarded call, or not a fault on a mapped address — goes to the handler that was
//! installed before ours (Python's `faulthandler`, torch's worker handler), or to the
//! default action, exactly as without us.
//!
//! Only our own code runs guarded: a callback into anyone else's from inside a guarded read
//! (the index build's progress and cancel hooks, which can run Python's signal handlers)
//! goes through [`unguarded`].
//!
//! This is what lets batches be built on any thread ahead of the consumer (see
//! [`BatchStream`](crate::BatchStream)): a file truncated at any moment is an error for the
//! batch that was reading it, never the death of the process. Arrays already handed out
//! that point into the vanished pages read zeros from then on, where they would otherwise
//! raise `SIGBUS` in the reader.
//!
//! # Safety argument
//!
//! - The handler touches only thread-local cells (const-initialised, no destructor: plain
//!   thread-local loads and stores) and atomics, and calls `mmap` and `sigaction`, both
//!   system calls. It allocates nothing and takes no lock.
//! - The zero page replaces part of a read-only shared *file* mapping of ours: the only
//!   code reading there while the flag is set is ours, and it treats the bytes as data of
//!   unknown value (every bound is checked against the map's fixed length, see
//!   [`super::map`]); the one promise tied to the bytes, UTF-8, is withdrawn by the error.
//!   The page goes away with the rest of the map when it is unmapped.
//! - The handler is installed again when a stream starts if another library replaced it
//!   since (its own handler then becomes the one we pass foreign faults to).

use std::cell::Cell;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;

thread_local! {
    /// This thread is inside [`guarded`].
    static GUARDED: Cell<bool> = const { Cell::new(false) };
    /// Faults this thread recovered from, ever.
    static FAULTS: Cell<u64> = const { Cell::new(0) };
}

/// The handler before ours: its address (`SIG_DFL` is 0) and whether it takes `siginfo`.
static PREVIOUS_HANDLER: AtomicUsize = AtomicUsize::new(libc::SIG_DFL);
static PREVIOUS_SIGINFO: AtomicUsize = AtomicUsize::new(0);
static INSTALLING: Mutex<()> = Mutex::new(());
/// [`install`] ran once (guarded reads then skip the `sigaction` call that checks).
static INSTALLED: AtomicBool = AtomicBool::new(false);

/// A guarded read found its file truncated under it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Truncated;

/// Runs `read` with this thread's map reads guarded: `Err(Truncated)` if one of them
/// faulted (it read zeros instead, and whatever `read` made of them is dropped).
pub(crate) fn guarded<T>(read: impl FnOnce() -> T) -> Result<T, Truncated> {
    if !INSTALLED.load(Ordering::Relaxed) {
        install();
    }
    let restore = Restore(GUARDED.replace(true));
    let before = FAULTS.get();
    let value = read();
    drop(restore);
    if FAULTS.get() == before {
        Ok(value)
    } else {
        Err(Truncated)
    }
}

/// Runs `call` with this thread's reads unguarded: for callbacks into code that is not
/// ours (a progress bar, Python's signal handlers) made from inside [`guarded`], whose own
/// `SIGBUS` must reach its own handler, not turn into zeros.
pub(crate) fn unguarded<T>(call: impl FnOnce() -> T) -> T {
    let _restore = Restore(GUARDED.replace(false));
    call()
}

/// Puts this thread's guard flag back as it was, on unwind too (a panic must not leave a
/// thread guarded, or unguarded).
struct Restore(bool);

impl Drop for Restore {
    fn drop(&mut self) {
        GUARDED.set(self.0);
    }
}

/// Installs the handler, unless it is the one installed now: once before the first
/// guarded read, and again whenever a stream starts (another library may have replaced it
/// meanwhile: torch's `DataLoader` workers install their own).
pub(crate) fn install() {
    INSTALLED.store(true, Ordering::Relaxed);
    // Computed here, not first in the handler.
    page_size();
    let ours = on_sigbus as extern "C" fn(libc::c_int, *mut libc::siginfo_t, *mut libc::c_void) as usize;
    // SAFETY: a zeroed `sigaction` is a valid value of the C struct (no handler, no flags).
    let mut current: libc::sigaction = unsafe { std::mem::zeroed() };
    // SAFETY: `sigaction` with a null new action only reads the current one into `current`.
    let read = unsafe { libc::sigaction(libc::SIGBUS, std::ptr::null(), &mut current) };
    if read == 0 && current.sa_sigaction == ours {
        return;
    }
    let _installing = INSTALLING.lock().unwrap_or_else(|p| p.into_inner());
    // SAFETY: as above; then a new action whose handler is `on_sigbus`, an `extern "C"`
    // function of the signature `SA_SIGINFO` calls, with an empty mask.
    unsafe {
        if libc::sigaction(libc::SIGBUS, std::ptr::null(), &mut current) != 0 || current.sa_sigaction == ours {
            return;
        }
        PREVIOUS_HANDLER.store(current.sa_sigaction, Ordering::SeqCst);
        PREVIOUS_SIGINFO.store(usize::from(current.sa_flags & libc::SA_SIGINFO != 0), Ordering::SeqCst);
        let mut action: libc::sigaction = std::mem::zeroed();
        action.sa_sigaction = ours;
        action.sa_flags = libc::SA_SIGINFO | libc::SA_ONSTACK;
        libc::sigemptyset(&mut action.sa_mask);
        libc::sigaction(libc::SIGBUS, &action, std::ptr::null_mut());
    }
}

extern "C" fn on_sigbus(signal: libc::c_int, info: *mut libc::siginfo_t, context: *mut libc::c_void) {
    if GUARDED.get() && !info.is_null() {
        // SAFETY: the kernel passes a valid `siginfo_t` to an `SA_SIGINFO` handler; for a
        // fault (`BUS_ADRERR`: a mapped address with no backing page) `si_addr` is the
        // faulting address.
        let (code, addr) = unsafe { ((*info).si_code, (*info).si_addr() as usize) };
        if code == libc::BUS_ADRERR && addr != 0 {
            let page = addr & !(page_size() - 1);
            // SAFETY: replaces one page of a file mapping of ours (only our guarded reads
            // run with the flag set, and they read only our maps) with an anonymous page of
            // zeros: `MAP_FIXED` over an address range we own, see the module's argument.
            let zeros = unsafe {
                libc::mmap(page as *mut libc::c_void, page_size(), libc::PROT_READ, libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_FIXED, -1, 0)
            };
            if zeros != libc::MAP_FAILED {
                FAULTS.set(FAULTS.get() + 1);
                return;
            }
        }
    }
    forward(signal, info, context);
}

/// Hands a `SIGBUS` that is not ours to the handler before ours, or to the default action.
fn forward(signal: libc::c_int, info: *mut libc::siginfo_t, context: *mut libc::c_void) {
    let previous = PREVIOUS_HANDLER.load(Ordering::SeqCst);
    if previous == libc::SIG_DFL || previous == libc::SIG_IGN {
        // Returning re-runs the faulting load, which now meets the default action (a
        // `SIGBUS` cannot be ignored usefully: the load would fault forever).
        // SAFETY: installs the default action; a zeroed `sigaction` is `SIG_DFL`, no flags.
        unsafe {
            let mut action: libc::sigaction = std::mem::zeroed();
            action.sa_sigaction = libc::SIG_DFL;
            libc::sigaction(signal, &action, std::ptr::null_mut());
        }
        return;
    }
    // SAFETY: `previous` was read from `sigaction` as the installed handler, so it is a
    // function of the kind its flags say; it is called as the kernel would call it.
    unsafe {
        if PREVIOUS_SIGINFO.load(Ordering::SeqCst) != 0 {
            let handler: extern "C" fn(libc::c_int, *mut libc::siginfo_t, *mut libc::c_void) = std::mem::transmute(previous);
            handler(signal, info, context);
        } else {
            let handler: extern "C" fn(libc::c_int) = std::mem::transmute(previous);
            handler(signal);
        }
    }
}

pub(super) fn page_size() -> usize {
    // Linux on the architectures we build for maps in pages of at least 4 KiB; a larger
    // base page (64 KiB on some arm64 kernels) is asked for once.
    static PAGE: AtomicUsize = AtomicUsize::new(0);
    match PAGE.load(Ordering::Relaxed) {
        0 => {
            // SAFETY: `sysconf` reads a constant of the system.
            let size = usize::try_from(unsafe { libc::sysconf(libc::_SC_PAGESIZE) }).unwrap_or(4096).max(4096);
            PAGE.store(size, Ordering::Relaxed);
            size
        }
        size => size,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn a_read_past_a_truncated_end_is_an_error_not_a_crash() {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        f.write_all(&vec![b'x'; 64 * 1024]).unwrap();
        f.flush().unwrap();
        let map = crate::source::map::map_file(f.as_file()).unwrap();
        assert_eq!(guarded(|| map[40_000]), Ok(b'x'));
        f.as_file().set_len(4096).unwrap();
        // The first page is still the file's; the tenth is gone: zeros, and an error.
        assert_eq!(guarded(|| map[100]), Ok(b'x'));
        assert_eq!(guarded(|| std::hint::black_box(&map[..]).iter().map(|&b| b as u64).sum::<u64>()), Err(Truncated));
        assert_eq!(guarded(|| map[40_000]), Ok(0), "the vanished page reads zeros from now on");
    }
}
