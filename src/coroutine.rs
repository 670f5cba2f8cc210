//! The safe API: coroutines on guarded stacks.
//!
//! A coroutine switches with the inline switch of `arch` (`co_resume` /
//! `co_suspend`): one word goes each way.
//!
//! * resumer -> coroutine: the address of the input `I` (moved out by the
//!   coroutine), or 0 to unwind the coroutine (it is being dropped);
//! * coroutine -> resumer: the address of the yielded `Y` (moved out by the
//!   resumer), or 0 once the coroutine has finished; its [`Outcome`] then
//!   sits in the slot at the top of its stack that held the closure.
//!
//! A value of a zero-sized type travels as its (dangling, aligned) address:
//! nothing is read, and no stack slot is needed for it.
//!
//! The top of a coroutine's stack, from the top down: the slot (the closure,
//! later the [`Outcome`]), the link (which is the [`Yielder`]), the first
//! frame, and at least [`RUN_MIN`] bytes to run in. The slot and the link
//! are at fixed offsets from each other, so the link alone locates both.

use crate::arch;
use crate::error::Error;
use crate::stack::Stack;
use core::cell::UnsafeCell;
use core::ffi::c_void;
use core::marker::PhantomData;
use core::mem::{align_of, size_of, ManuallyDrop};
use core::ptr::{self, NonNull};
use core::sync::atomic::{AtomicUsize, Ordering};
use std::any::Any;
use std::panic::{self, AssertUnwindSafe};

/// What [`Coroutine::resume`] returns.
#[derive(Debug, PartialEq, Eq)]
pub enum CoroutineResult<Y, R> {
    /// The coroutine called [`Yielder::suspend`] with this value.
    Yield(Y),
    /// The coroutine returned this value; it is finished.
    Return(R),
}

/// How a coroutine ended: written by the coroutine into the slot that held
/// its closure, read by the resumer once the switch back passes 0.
enum Outcome<R> {
    Return(R),
    Panic(Box<dyn Any + Send>),
    /// A forced unwind (see [`ForcedUnwind`]) reached the root.
    Unwound,
}

/// The payload that unwinds a dropped coroutine's stack.
struct ForcedUnwind;

/// The size of the link rounded up to 16 bytes: the slot starts this far
/// above it.
const LINK_SIZE: usize = (size_of::<arch::CoContext>() + 15) & !15;

/// The least space a coroutine's stack keeps for it to run in, below its
/// slot, link and first frame.
pub(crate) const RUN_MIN: usize = 4096;

/// The address passed for a value: its own, or for a zero-sized type any
/// aligned non-zero one (nothing is read).
#[inline(always)]
fn word_of<T>(value: &ManuallyDrop<T>) -> usize {
    if size_of::<T>() == 0 {
        align_of::<T>()
    } else {
        ptr::addr_of!(**value) as usize
    }
}

/// A coroutine: a closure running on its own [`Stack`], resumed with an `I`,
/// suspending with a `Y` and finishing with an `R`.
///
/// ```
/// use ugreen::{Coroutine, CoroutineResult, Stack};
/// let mut co = Coroutine::new(Stack::new(16).unwrap(), |y, first: u32| {
///     let second = y.suspend(first * 10);
///     first + second
/// });
/// assert_eq!(co.resume(1), CoroutineResult::Yield(10));
/// assert_eq!(co.resume(2), CoroutineResult::Return(3));
/// ```
///
/// A panic inside the coroutine finishes it and continues in the caller of
/// `resume`. Dropping a coroutine that is suspended unwinds its stack first,
/// running the destructors of everything live on it.
///
/// The switch keeps the callee-saved registers of the ABI but not the FP
/// control state (MXCSR and the x87 control word; FPCR): a coroutine shares
/// it with its resumer, as Rust code, which cannot change it soundly,
/// expects. The raw API ([`RawContext`](crate::RawContext)) keeps it per
/// context.
pub struct Coroutine<'s, I, Y, R> {
    /// The coroutine's saved stack pointer while it is suspended (fresh or
    /// not); 0 once it has finished, and while it runs.
    sp: usize,
    /// The link, near the top of the coroutine's stack, so its address
    /// never changes whatever happens to the `Coroutine` value; it is also
    /// the coroutine's [`Yielder`], and the slot lies [`LINK_SIZE`] above it.
    link: NonNull<Yielder<I, Y>>,
    /// The stack's in-use flag, cleared when the coroutine finishes.
    live: NonNull<AtomicUsize>,
    /// Drops the closure in the slot of a coroutine that never ran.
    drop_closure: unsafe fn(*mut u8),
    /// The stack, when owned (dropped by `Drop`); a borrowed one is held by
    /// `_borrow`.
    owned: ManuallyDrop<Option<Stack>>,
    _borrow: PhantomData<&'s mut Stack>,
    _types: CoroutineTypes<I, Y, R>,
}

/// Ties a coroutine to its value types and keeps it neither Send nor Sync
/// (its stack may hold references to thread-local data).
type CoroutineTypes<I, Y, R> = PhantomData<(fn(I) -> Y, fn() -> R, *mut ())>;
/// The same for the yielder, which must stay on its coroutine's thread.
type YielderTypes<I, Y> = PhantomData<(fn(Y) -> I, *mut ())>;

/// Handed to the coroutine's closure: suspends the coroutine.
///
/// A `Yielder` captured by reference in a coroutine nested inside its own
/// coroutine may be used there: `suspend` then suspends the whole nest (the
/// enclosing coroutine with the nested one running inside it), and dropping
/// the enclosing coroutine while so suspended unwinds both stacks.
///
/// The yielder is the coroutine's link: the place, near the top of the
/// coroutine's stack, where a resume saves the resumer's state. The closure
/// gets a reference to it; it cannot be moved or made elsewhere.
#[repr(C)]
pub struct Yielder<I, Y> {
    link: UnsafeCell<arch::CoContext>,
    _types: YielderTypes<I, Y>,
}

impl<I, Y> Yielder<I, Y> {
    /// Suspends the coroutine: `resume` returns `Yield(value)` to the resumer,
    /// and this call returns the input of the next `resume`.
    #[inline]
    pub fn suspend(&self, value: Y) -> I {
        let value = ManuallyDrop::new(value);
        // SAFETY: the link is this coroutine's; the coroutine is running, so
        // the link holds its suspended resumer, which moves `value` out
        // before it can be resumed again.
        let word = unsafe { arch::co_suspend(self.link.get(), word_of(&value)) };
        if word == 0 {
            forced_unwind();
        }
        // SAFETY: the resumer passes the address of its input, which it
        // does not use again (see `Coroutine::resume`).
        unsafe { ptr::read(word as *const I) }
    }
}

#[cold]
#[inline(never)]
fn resume_misuse() -> ! {
    panic!("ugreen: resume of a coroutine that has finished (or is running)")
}

#[cold]
fn forced_unwind() -> ! {
    panic::resume_unwind(Box::new(ForcedUnwind))
}

impl<'s, I, Y, R> Coroutine<'s, I, Y, R> {
    /// A coroutine running `f` on `stack`, which it owns (get it back with
    /// [`Coroutine::into_stack`]). `f` receives the first `resume`'s input.
    ///
    /// # Panics
    /// If the stack is in use by another context, or too small to hold
    /// `f`'s captures and 4 KiB to run in ([`Coroutine::try_new`] returns
    /// these as errors instead).
    #[inline]
    pub fn new<F>(stack: Stack, f: F) -> Self
    where
        F: FnOnce(&Yielder<I, Y>, I) -> R + 's,
    {
        match Self::make::<F, true>(&stack, f) {
            Ok(co) => co.with_owned(stack),
            Err(e) => e.panic(),
        }
    }

    /// A coroutine running `f` on a borrowed `stack`, for reusing one stack
    /// for many successive coroutines.
    ///
    /// # Panics
    /// As [`Coroutine::new`] ([`Coroutine::try_on_stack`] returns errors
    /// instead).
    #[inline]
    pub fn on_stack<F>(stack: &'s mut Stack, f: F) -> Self
    where
        F: FnOnce(&Yielder<I, Y>, I) -> R + 's,
    {
        match Self::make::<F, true>(stack, f) {
            Ok(co) => co,
            Err(e) => e.panic(),
        }
    }

    /// [`Coroutine::new`] without panics: fails with
    /// [`Error::WrongState`] if the stack is in use by another context, and
    /// [`Error::InvalidSize`] if it is too small to hold `f`'s captures and
    /// 4 KiB to run in. The stack is dropped on failure.
    pub fn try_new<F>(stack: Stack, f: F) -> Result<Self, Error>
    where
        F: FnOnce(&Yielder<I, Y>, I) -> R + 's,
    {
        match Self::make::<F, false>(&stack, f) {
            Ok(co) => Ok(co.with_owned(stack)),
            Err(e) => Err(e.error),
        }
    }

    /// [`Coroutine::on_stack`] without panics: the errors of
    /// [`Coroutine::try_new`].
    pub fn try_on_stack<F>(stack: &'s mut Stack, f: F) -> Result<Self, Error>
    where
        F: FnOnce(&Yielder<I, Y>, I) -> R + 's,
    {
        Self::make::<F, false>(stack, f).map_err(|e| e.error)
    }

    /// Hands `stack`, which the coroutine runs on, to the coroutine.
    #[inline]
    fn with_owned(mut self, stack: Stack) -> Self {
        self.owned = ManuallyDrop::new(Some(stack));
        self
    }

    /// Makes the coroutine on `stack`, which the caller keeps alive as long
    /// as the coroutine (by lending it for `'s` or handing it over). With
    /// `PANIC`, panics instead of returning an error (which keeps the
    /// `Result` out of the infallible constructors).
    #[inline]
    fn make<F, const PANIC: bool>(stack: &Stack, f: F) -> Result<Self, MakeError>
    where
        F: FnOnce(&Yielder<I, Y>, I) -> R + 's,
    {
        // The offsets below the page-aligned top, for any alignment up to
        // 4 KiB (every page size is at least 4 KiB), folded at compile time.
        let slot_size = size_of::<F>().max(size_of::<Outcome<R>>());
        let slot_align = align_of::<F>().max(align_of::<Outcome<R>>()).max(16);
        let link_off = slot_size
            .checked_add(slot_align - 1)
            .map(|o| o & !(slot_align - 1))
            .filter(|_| slot_align <= 4096)
            .and_then(|o| o.checked_add(LINK_SIZE));
        let need = link_off.and_then(|o| o.checked_add(arch::CO_RESERVE + RUN_MIN));
        let (link_off, need) = match (link_off, need) {
            (Some(l), Some(n)) => (l, n),
            _ => (usize::MAX, usize::MAX),
        };
        let (bottom, top) = match stack.begin(need) {
            Ok(range) => range,
            Err(error) => {
                let e = MakeError::new(error, stack, size_of::<F>());
                if PANIC {
                    e.panic()
                }
                return Err(e);
            }
        };
        let link = (top - link_off) as *mut Yielder<I, Y>;
        // SAFETY: the slot and the link lie inside the usable range of the
        // stack, now claimed for this coroutine; `begin` checked that they,
        // the first frame and RUN_MIN bytes fit. The slot is aligned for F
        // (a multiple of its alignment below the page-aligned top), the link
        // is 16-aligned, as `co_init` needs.
        let sp = unsafe {
            slot_of(link).cast::<F>().write(f);
            arch::co_init(
                UnsafeCell::raw_get(ptr::addr_of!((*link).link)),
                bottom as *mut u8,
                coroutine_main::<F, I, Y, R>,
            )
        };
        Ok(Coroutine {
            sp,
            // SAFETY: derived from a non-zero stack address.
            link: unsafe { NonNull::new_unchecked(link) },
            live: NonNull::from(&stack.meta().live),
            drop_closure: drop_in_place_erased::<F>,
            owned: ManuallyDrop::new(None),
            _borrow: PhantomData,
            _types: PhantomData,
        })
    }

    /// Runs the coroutine until it suspends or returns.
    ///
    /// # Panics
    /// If the coroutine has finished (returned or panicked); and resumes the
    /// panic if the coroutine panics.
    #[inline]
    pub fn resume(&mut self, input: I) -> CoroutineResult<Y, R> {
        let input = ManuallyDrop::new(input);
        // SAFETY: the coroutine moves `input` out before it switches back.
        let (word, link) = unsafe { self.switch_in(word_of(&input)) };
        if word != 0 {
            // SAFETY: the coroutine passed the address of its yielded value,
            // which it does not use again.
            CoroutineResult::Yield(unsafe { ptr::read(word as *const Y) })
        } else {
            match self.finish(link) {
                Outcome::Return(r) => CoroutineResult::Return(r),
                Outcome::Panic(payload) => panic::resume_unwind(payload),
                // A forced unwind that this coroutine caught was not meant
                // for it: code running on its stack suspended an enclosing
                // coroutine through that one's `Yielder`, and the enclosing
                // coroutine is being dropped. Continue unwinding it.
                Outcome::Unwound => forced_unwind(),
            }
        }
    }

    /// Switches into the coroutine with `word` (0: unwind); returns the word
    /// it passes back (0: finished) and the link (the switch hands it back
    /// in a register, so the link needs no register across it: the switch
    /// preserves only two, which the loop around `resume` wants).
    ///
    /// # Safety
    /// `word` is 0 or the address of an `I` that the coroutine may move out.
    #[inline(always)]
    unsafe fn switch_in(&mut self, word: usize) -> (usize, *mut arch::CoContext) {
        let sp = self.sp;
        if sp == 0 {
            resume_misuse();
        }
        // Not resumable while it runs.
        self.sp = 0;
        // SAFETY: `sp` is the saved state of the suspended coroutine, whose
        // stack is alive (held by self); the link never moves; the caller's
        // contract.
        let (word, sp, link) = unsafe { arch::co_resume(self.link_ptr(), sp, word) };
        self.sp = sp;
        (word, link)
    }

    /// Takes the outcome of a coroutine that has just finished, whose link
    /// is `link`, and frees its stack for the next context.
    #[inline]
    fn finish(&mut self, link: *mut arch::CoContext) -> Outcome<R> {
        self.release_stack();
        // SAFETY: the coroutine wrote its outcome into the slot before its
        // final switch; it is read once, here.
        unsafe { ptr::read(slot_of(link.cast::<Yielder<I, Y>>()).cast::<Outcome<R>>()) }
    }

    /// The link, for the switch.
    #[inline(always)]
    fn link_ptr(&self) -> *mut arch::CoContext {
        // SAFETY: the link lives on the stack that self keeps alive.
        unsafe { UnsafeCell::raw_get(ptr::addr_of!((*self.link.as_ptr()).link)) }
    }

    /// Marks the stack free for the next context once this one finished.
    #[inline]
    fn release_stack(&self) {
        // SAFETY: the flag lives in the stack's metadata, which the stack
        // (held by self) keeps alive.
        unsafe { self.live.as_ref() }.store(0, Ordering::Release);
    }

    /// Whether the coroutine has finished (returned, panicked or unwound).
    pub fn is_finished(&self) -> bool {
        self.sp == 0
    }

    /// Whether the coroutine has been resumed at least once.
    pub fn is_started(&self) -> bool {
        // SAFETY: a non-zero `sp` is the suspended coroutine's, whose stack
        // self keeps alive.
        self.sp == 0 || !unsafe { arch::co_is_fresh(self.link_ptr(), self.sp) }
    }

    /// Finishes the coroutine (unwinding it if suspended) and returns its
    /// stack, ready for the next coroutine; `None` for a borrowed stack.
    pub fn into_stack(mut self) -> Option<Stack> {
        self.force_finish();
        self.owned.take()
    }

    #[cold]
    #[inline(never)]
    fn drop_stack(&mut self) {
        // SAFETY: called once, from Drop.
        drop(unsafe { ManuallyDrop::take(&mut self.owned) });
    }

    #[inline(never)]
    fn force_finish(&mut self) {
        if self.sp == 0 {
            return;
        }
        if !self.is_started() {
            // Finished before the closure is dropped: a capture whose
            // destructor panics must not get the closure dropped again by
            // the `Drop` that the unwind runs.
            self.sp = 0;
            self.release_stack();
            // SAFETY: a fresh coroutine's closure was written to the slot and
            // never read; `sp` now says it is gone.
            unsafe { (self.drop_closure)(slot_of(self.link.as_ptr())) };
            return;
        }
        // SAFETY: the coroutine is suspended in `Yielder::suspend`, which
        // takes 0 as the order to unwind.
        let (word, link) = unsafe { self.switch_in(0) };
        if word != 0 {
            crate::diag::fatal(&[
                b"a dropped coroutine suspended again while its stack was being unwound \
                  (a catch_unwind inside it swallowed the unwind)",
            ]);
        }
        // Unwound, or returned normally (it caught the unwind), or panicked
        // during the unwind: either way it has finished.
        drop(self.finish(link));
    }
}

impl<I, Y, R> Drop for Coroutine<'_, I, Y, R> {
    #[inline]
    fn drop(&mut self) {
        if self.sp != 0 {
            self.force_finish();
        }
        if self.owned.is_some() {
            self.drop_stack();
        }
    }
}

/// Why a coroutine could not be made, with what a panic message needs.
struct MakeError {
    error: Error,
    stack_size: usize,
    closure_size: usize,
}

impl MakeError {
    #[cold]
    fn new(error: Error, stack: &Stack, closure_size: usize) -> MakeError {
        MakeError {
            error,
            stack_size: stack.size(),
            closure_size,
        }
    }

    #[cold]
    fn panic(self) -> ! {
        match self.error {
            Error::WrongState => panic!("ugreen: the stack is in use by another context"),
            _ => panic!(
                "ugreen: stack of {} bytes too small for a closure of {} bytes",
                self.stack_size, self.closure_size
            ),
        }
    }
}

unsafe fn drop_in_place_erased<F>(p: *mut u8) {
    // SAFETY: the caller passes the address of a live, never-read F.
    unsafe { ptr::drop_in_place(p.cast::<F>()) }
}

/// The slot of the coroutine whose link is `link`.
#[inline(always)]
fn slot_of<I, Y>(link: *mut Yielder<I, Y>) -> *mut u8 {
    link.cast::<u8>().wrapping_add(LINK_SIZE)
}

/// The root of every coroutine, called by the trampoline on first entry,
/// which is always a resume with an input (a coroutine that never ran is
/// dropped without entering it). It writes the outcome into the slot and
/// returns; the trampoline then returns to the resumer (the link) for good,
/// passing 0. No frame of the coroutine runs after that switch, so nothing
/// on its stack is read once it is finished (which also lets
/// AddressSanitizer release the fiber's fake stack in the trampoline).
unsafe extern "C" fn coroutine_main<F, I, Y, R>(transfer: usize, link: *mut c_void)
where
    F: FnOnce(&Yielder<I, Y>, I) -> R,
{
    arch::co_entered();
    debug_assert_ne!(transfer, 0);
    let link = link.cast::<Yielder<I, Y>>();
    let slot = slot_of(link);
    // SAFETY: the link is this coroutine's, alive until it finishes; the
    // slot holds the F written by `make`, read once here; the resumer
    // passes the address of its input, which it does not use again.
    let (yielder, f, input) = unsafe {
        (
            &*link,
            slot.cast::<F>().read(),
            ptr::read(transfer as *const I),
        )
    };
    let outcome = match panic::catch_unwind(AssertUnwindSafe(|| f(yielder, input))) {
        Ok(r) => Outcome::Return(r),
        Err(p) if p.is::<ForcedUnwind>() => Outcome::Unwound,
        Err(p) => Outcome::Panic(p),
    };
    // SAFETY: the slot is sized and aligned for an Outcome<R> too, and the
    // closure has been moved out of it.
    unsafe { slot.cast::<Outcome<R>>().write(outcome) };
}
