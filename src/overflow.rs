//! Stack-overflow diagnostics: an opt-in SIGSEGV/SIGBUS handler that names
//! the green thread whose stack overflowed.
//!
//! Every [`Stack`] is recorded in a lock-free registry while
//! it is mapped (src/registry.rs). Once [`install`] has run, a fault inside
//! the guard page of a recorded stack, or with the stack pointer in it,
//! prints one line:
//!
//! ```text
//! ugreen: stack overflow in green thread "core 17" (stack of 64 pages = 256 KiB, fault at 0x7f..); give it a larger stack
//! ```
//!
//! and then every signal (an overflow or not) gets the effect it would have
//! had without ugreen, as the kernel would give it:
//!
//! * a previous handler runs with the mask the kernel would set (the
//!   interrupted mask, plus its `sa_mask`, plus the signal unless
//!   `SA_NODEFER`), with one or three arguments (`SA_SIGINFO`), and
//!   `SA_RESETHAND` restores the default action before it runs;
//! * the default action (`SIG_DFL`): restored, and then a fault re-executes
//!   its instruction, while a signal that no fault raised (`raise`, `kill`,
//!   `sigqueue`: `si_code <= 0`) is sent again to the thread; either way the
//!   process dies by it;
//! * `SIG_IGN`: a sent signal is ignored; a fault cannot be, so it gets the
//!   default action (as the kernel does).
//!
//! The handler runs on an alternate signal stack, which [`install`] sets up
//! for the calling thread (and fork children inherit); other threads that run
//! green threads call [`prepare_thread`].

use crate::diag::{fmt_usize, write_stderr, SignalText};
use crate::registry;
use crate::stack::{page_size, Stack, StackMeta, LABEL_MAX};
use core::cell::{RefCell, UnsafeCell};
use core::mem::MaybeUninit;
use core::ptr;
use core::sync::atomic::{AtomicUsize, Ordering};
use std::io;
use std::sync::Mutex;

/// The actions [`install`] replaced, for SIGSEGV and SIGBUS.
struct Previous([UnsafeCell<MaybeUninit<libc::sigaction>>; 2]);

// SAFETY: written only by the one `install` call that moves `STATE` from
// NOT_INSTALLED to INSTALLING, before it installs the handler (which is the
// only reader); never written again once the handler may run.
unsafe impl Sync for Previous {}

static PREVIOUS: Previous = Previous([
    UnsafeCell::new(MaybeUninit::uninit()),
    UnsafeCell::new(MaybeUninit::uninit()),
]);

const NOT_INSTALLED: usize = 0;
const INSTALLING: usize = 1;
const INSTALLED: usize = 2;
static STATE: AtomicUsize = AtomicUsize::new(NOT_INSTALLED);

const SIGNALS: [libc::c_int; 2] = [libc::SIGSEGV, libc::SIGBUS];

fn previous_slot(sig: libc::c_int) -> *mut MaybeUninit<libc::sigaction> {
    PREVIOUS.0[usize::from(sig == libc::SIGBUS)].get()
}

const ADVICE_MAX: usize = 192;
/// The advice; empty for the default.
static ADVICE: SignalText<ADVICE_MAX> = SignalText::new();
/// Serializes writers of `ADVICE`.
static ADVICE_WRITER: Mutex<()> = Mutex::new(());
const DEFAULT_ADVICE: &[u8] = b"give it a larger stack";

/// Replaces the advice at the end of the overflow line (default: "give it a
/// larger stack"), e.g. with the option that sets the stack size. Truncated
/// to 192 bytes. Callable from any thread; an overflow reported while it
/// runs may print the default advice.
pub fn set_advice(advice: &str) {
    let _writer = ADVICE_WRITER.lock().unwrap_or_else(|e| e.into_inner());
    ADVICE.set(advice);
}

/// Size of the alternate signal stack [`prepare_thread`] maps.
const ALT_STACK_SIZE: usize = 64 * 1024;

/// An alternate signal stack mapped by [`prepare_thread`]: disabled and
/// unmapped when its thread exits.
struct AltStack(Option<Stack>);

impl Drop for AltStack {
    fn drop(&mut self) {
        let Some(stack) = self.0.take() else { return };
        let mut current: libc::stack_t = unsafe_zeroed();
        // SAFETY: querying only; `current` is a valid out-parameter.
        let queried = unsafe { libc::sigaltstack(ptr::null(), &mut current) } == 0;
        let ours = queried && current.ss_sp == stack.bottom().cast();
        if !queried || (ours && current.ss_flags & libc::SS_ONSTACK != 0) {
            // Unknown, or a handler runs on it right now: keep it mapped.
            core::mem::forget(stack);
            return;
        }
        if ours && current.ss_flags & libc::SS_DISABLE == 0 {
            let off = libc::stack_t {
                ss_sp: ptr::null_mut(),
                ss_flags: libc::SS_DISABLE,
                ss_size: 0,
            };
            // SAFETY: disables the alternate stack of this thread, which no
            // handler is running on (checked above).
            if unsafe { libc::sigaltstack(&off, ptr::null_mut()) } != 0 {
                core::mem::forget(stack);
                return;
            }
        }
        drop(stack);
    }
}

thread_local! {
    static ALT_STACK: RefCell<AltStack> = const { RefCell::new(AltStack(None)) };
}

/// Gives the calling thread an alternate signal stack of 64 KiB if it has
/// none, so the handler can run when the thread's current stack is
/// exhausted. An alternate stack the thread already has is kept. The one
/// mapped here is unmapped when the thread exits.
pub fn prepare_thread() -> io::Result<()> {
    let mut current: libc::stack_t = unsafe_zeroed();
    // SAFETY: querying only; `current` is a valid out-parameter.
    if unsafe { libc::sigaltstack(ptr::null(), &mut current) } != 0 {
        return Err(io::Error::last_os_error());
    }
    if current.ss_flags & libc::SS_DISABLE == 0 {
        return Ok(());
    }
    let alt = Stack::with_bytes(ALT_STACK_SIZE)
        .map_err(|e| io::Error::new(io::ErrorKind::OutOfMemory, e))?;
    let new = libc::stack_t {
        ss_sp: alt.bottom().cast(),
        ss_flags: 0,
        ss_size: alt.size(),
    };
    // SAFETY: `new` describes memory that stays mapped until the thread
    // exits (AltStack's Drop disables it before unmapping) or for the life
    // of the process (leaked below when the thread has no destructors left).
    if unsafe { libc::sigaltstack(&new, ptr::null_mut()) } != 0 {
        return Err(io::Error::last_os_error());
    }
    let mut alt = Some(alt);
    // Kept in a thread-local whose destructor unmaps it at thread exit;
    // when thread-locals are already being destroyed, kept mapped for good.
    let _ = ALT_STACK.try_with(|slot| slot.borrow_mut().0 = alt.take());
    if let Some(alt) = alt {
        core::mem::forget(alt);
    }
    Ok(())
}

fn unsafe_zeroed<T>() -> T {
    // SAFETY: only used for plain C structs, for which all-zero is valid.
    unsafe { core::mem::zeroed() }
}

/// Installs the handler for SIGSEGV and SIGBUS, remembering the actions it
/// replaces, and gives the calling thread an alternate signal stack. A
/// second call does nothing.
pub fn install() -> io::Result<()> {
    prepare_thread()?;
    if STATE
        .compare_exchange(
            NOT_INSTALLED,
            INSTALLING,
            Ordering::AcqRel,
            Ordering::Acquire,
        )
        .is_err()
    {
        return Ok(());
    }
    let mut action: libc::sigaction = unsafe_zeroed();
    action.sa_sigaction = handler as *const () as usize;
    action.sa_flags = libc::SA_SIGINFO | libc::SA_ONSTACK;
    // SAFETY: `sa_mask` is a valid sigset_t to initialise. This call owns
    // PREVIOUS (it moved STATE to INSTALLING): each slot is written by the
    // sigaction call that installs the handler, before the handler can run.
    unsafe {
        libc::sigemptyset(&mut action.sa_mask);
        for (i, &sig) in SIGNALS.iter().enumerate() {
            if libc::sigaction(sig, &action, (*previous_slot(sig)).as_mut_ptr()) != 0 {
                let err = io::Error::last_os_error();
                // Put back what was replaced, so that nothing reads PREVIOUS
                // while a later install writes it.
                for &done in &SIGNALS[..i] {
                    libc::sigaction(done, (*previous_slot(done)).as_ptr(), ptr::null_mut());
                }
                STATE.store(NOT_INSTALLED, Ordering::Release);
                return Err(err);
            }
        }
    }
    STATE.store(INSTALLED, Ordering::Release);
    Ok(())
}

#[cfg(target_arch = "x86_64")]
fn interrupted_sp(uc: *const libc::ucontext_t) -> usize {
    // SAFETY: the kernel passes a valid ucontext to an SA_SIGINFO handler.
    unsafe { (*uc).uc_mcontext.gregs[libc::REG_RSP as usize] as usize }
}

#[cfg(target_arch = "aarch64")]
fn interrupted_sp(uc: *const libc::ucontext_t) -> usize {
    // SAFETY: the kernel passes a valid ucontext to an SA_SIGINFO handler.
    unsafe { (*uc).uc_mcontext.sp as usize }
}

#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
fn interrupted_sp(_uc: *const libc::ucontext_t) -> usize {
    0
}

/// Whether the signal was sent (`kill`, `raise`, `sigqueue`, `tgkill`)
/// rather than raised by a faulting instruction.
fn was_sent(info: *const libc::siginfo_t) -> bool {
    // SAFETY: the kernel passes a valid siginfo to an SA_SIGINFO handler.
    unsafe { (*info).si_code <= 0 }
}

extern "C" fn handler(sig: libc::c_int, info: *mut libc::siginfo_t, uc: *mut libc::c_void) {
    if !was_sent(info) {
        // SAFETY: the kernel passes a valid siginfo for SIGSEGV/SIGBUS.
        let addr = unsafe { (*info).si_addr() } as usize;
        let sp = interrupted_sp(uc.cast());
        if let Some(hit) = registry::find_guard_hit(addr, sp, page_size()) {
            report(&hit, addr);
        }
    }
    chain(sig, info, uc);
}

fn report(hit: &registry::Record, addr: usize) {
    let mut pages_buf = [0u8; 20];
    let mut kib_buf = [0u8; 20];
    let pages = fmt_usize(hit.pages, &mut pages_buf);
    let kib = fmt_usize(hit.pages * page_size() / 1024, &mut kib_buf);
    let mut hex = [0u8; 18];
    hex[0] = b'0';
    hex[1] = b'x';
    for i in 0..16 {
        let nibble = (addr >> ((15 - i) * 4)) & 0xf;
        hex[2 + i] = b"0123456789abcdef"[nibble];
    }
    let mut label_buf = [0u8; LABEL_MAX];
    // SAFETY: stack.rs records its StackMeta as the owner, and it stays
    // valid while recorded; the faulting stack is still mapped (a thread
    // cannot overflow a stack that was unmapped).
    let label = unsafe { (*hit.owner.cast::<StackMeta>()).label.copy(&mut label_buf) };
    let mut advice_buf = [0u8; ADVICE_MAX];
    let advice = ADVICE.copy(&mut advice_buf);
    let advice: &[u8] = if advice.is_empty() {
        DEFAULT_ADVICE
    } else {
        advice
    };
    write_stderr(&[
        b"ugreen: stack overflow in green thread \"",
        if label.is_empty() {
            b"(unnamed)"
        } else {
            label
        },
        b"\" (stack of ",
        pages,
        b" pages = ",
        kib,
        b" KiB, fault at ",
        &hex,
        b"); ",
        advice,
        b"\n",
    ]);
}

/// Restores the default action of `sig` (which also removes this handler).
fn reset_default(sig: libc::c_int) {
    let mut dfl: libc::sigaction = unsafe_zeroed();
    dfl.sa_sigaction = libc::SIG_DFL;
    // SAFETY: plain sigaction call with a valid action.
    unsafe { libc::sigaction(sig, &dfl, ptr::null_mut()) };
}

/// Gives the signal the effect the action installed before ours would have
/// given it, as the kernel would (see the module documentation).
fn chain(sig: libc::c_int, info: *mut libc::siginfo_t, uc: *mut libc::c_void) {
    // SAFETY: written by install() before the handler was installed.
    let prev: libc::sigaction = unsafe { (*previous_slot(sig)).assume_init_read() };
    let target = prev.sa_sigaction;
    let sent = was_sent(info);
    if target == libc::SIG_IGN && sent {
        return;
    }
    if target == libc::SIG_DFL || target == libc::SIG_IGN {
        // The default action (a fault cannot be ignored). A fault kills when
        // its instruction re-executes on return; a sent signal is sent again,
        // to this thread: it is blocked until this handler returns, and then
        // delivered with the default action.
        reset_default(sig);
        if sent {
            // SAFETY: raise has no preconditions and is async-signal-safe.
            unsafe { libc::raise(sig) };
        }
        return;
    }
    if prev.sa_flags & libc::SA_RESETHAND != 0 {
        reset_default(sig);
    }
    // The mask the kernel would have set for the previous handler: the
    // interrupted code's mask, its sa_mask, and the signal unless
    // SA_NODEFER.
    // SAFETY: the kernel passes a valid ucontext; the sigset calls get valid
    // sets; the previous handler is called the way the kernel would have
    // (three arguments with SA_SIGINFO, one without).
    unsafe {
        let uc = uc.cast::<libc::ucontext_t>();
        let mut mask: libc::sigset_t = (*uc).uc_sigmask;
        for other in 1..libc::SIGRTMAX() {
            if libc::sigismember(&prev.sa_mask, other) == 1 {
                libc::sigaddset(&mut mask, other);
            }
        }
        if prev.sa_flags & libc::SA_NODEFER == 0 {
            libc::sigaddset(&mut mask, sig);
        } else {
            libc::sigdelset(&mut mask, sig);
        }
        let mut old: libc::sigset_t = unsafe_zeroed();
        libc::pthread_sigmask(libc::SIG_SETMASK, &mask, &mut old);
        if prev.sa_flags & libc::SA_SIGINFO != 0 {
            let f: extern "C" fn(libc::c_int, *mut libc::siginfo_t, *mut libc::c_void) =
                core::mem::transmute(target);
            f(sig, info, uc.cast());
        } else {
            let f: extern "C" fn(libc::c_int) = core::mem::transmute(target);
            f(sig);
        }
        libc::pthread_sigmask(libc::SIG_SETMASK, &old, ptr::null_mut());
    }
}
