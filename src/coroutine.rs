//! The safe API: coroutines on guarded stacks.

use crate::arch;
use crate::context::RawContext;
use crate::stack::Stack;
use core::ffi::c_void;
use core::marker::PhantomData;
use core::mem::{align_of, size_of};
use core::ptr::{self, NonNull};
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

/// Resumer -> coroutine.
enum Command<I> {
    Resume(I),
    /// Unwind the coroutine's stack (sent when a suspended coroutine is dropped).
    Unwind,
}

/// Coroutine -> resumer.
enum Event<Y, R> {
    Yield(Y),
    Return(R),
    Panic(Box<dyn Any + Send>),
    Unwound,
}

/// The payload that unwinds a dropped coroutine's stack.
struct ForcedUnwind;

/// The two contexts of a coroutine. Lives at the top of the coroutine's
/// stack so its address never changes, whatever happens to the
/// `Coroutine` value.
#[repr(C)]
struct Shared {
    /// Saved state of the coroutine while it is suspended.
    inner: RawContext,
    /// Saved state of the resumer while the coroutine runs: the link.
    outer: RawContext,
    /// The closure, written by `with_holder`, read once on first entry.
    closure: *mut u8,
    /// Where the resumer wants the final event: its `Option<Event<Y, R>>`,
    /// set before every switch into the coroutine.
    result: *mut u8,
    /// Set by the coroutine when it has written the final event to `result`
    /// and is about to return to the trampoline, which switches to `outer`
    /// (the link). Until then, the word a switch to the resumer passes
    /// points to an `Option<Y>` on the coroutine's stack.
    finished: bool,
}

enum StackHolder<'s> {
    Owned(Stack),
    Borrowed(&'s mut Stack),
}

impl StackHolder<'_> {
    fn get(&self) -> &Stack {
        match self {
            StackHolder::Owned(s) => s,
            StackHolder::Borrowed(s) => s,
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum State {
    /// Made, never resumed: the closure sits on the stack, unread.
    Fresh,
    Suspended,
    Running,
    Finished,
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
pub struct Coroutine<'s, I, Y, R> {
    stack: Option<StackHolder<'s>>,
    shared: NonNull<Shared>,
    /// The closure while `Fresh`, with the function that drops it.
    closure: *mut u8,
    drop_closure: unsafe fn(*mut u8),
    state: State,
    _types: CoroutineTypes<I, Y, R>,
}

/// Ties a coroutine to its value types and keeps it neither Send nor Sync
/// (its stack may hold references to thread-local data).
type CoroutineTypes<I, Y, R> = PhantomData<(fn(I) -> Y, fn() -> R, *mut ())>;
/// The same for the yielder, which must stay on its coroutine's thread.
type YielderTypes<I, Y> = PhantomData<(fn(Y) -> I, *mut ())>;

/// Handed to the coroutine's closure: suspends the coroutine.
pub struct Yielder<I, Y> {
    shared: *mut Shared,
    _types: YielderTypes<I, Y>,
}

impl<I, Y> Yielder<I, Y> {
    /// Suspends the coroutine: `resume` returns `Yield(value)` to the resumer,
    /// and this call returns the input of the next `resume`.
    pub fn suspend(&self, value: Y) -> I {
        let mut event: Option<Y> = Some(value);
        // SAFETY: `shared` lives at the top of this coroutine's stack; the
        // coroutine is running, so `outer` holds its suspended resumer.
        let cmd = unsafe {
            let shared = self.shared;
            arch::switch(
                ptr::addr_of_mut!((*shared).inner),
                ptr::addr_of_mut!((*shared).outer),
                ptr::addr_of_mut!(event) as usize,
            )
        };
        // SAFETY: the resumer passes a pointer to its `Option<Command<I>>`,
        // valid until it regains control.
        match unsafe { take_command::<I>(cmd) } {
            Command::Resume(input) => input,
            Command::Unwind => panic::resume_unwind(Box::new(ForcedUnwind)),
        }
    }
}

/// # Safety
/// `word` is the address of a live `Option<Command<I>>`.
unsafe fn take_command<I>(word: usize) -> Command<I> {
    // SAFETY: the caller's contract; the sender never passes an empty slot.
    unsafe {
        (*(word as *mut Option<Command<I>>))
            .take()
            .unwrap_unchecked()
    }
}

impl<'s, I, Y, R> Coroutine<'s, I, Y, R> {
    /// A coroutine running `f` on `stack`, which it owns (get it back with
    /// [`Coroutine::into_stack`]). `f` receives the first `resume`'s input.
    ///
    /// Panics if the stack is in use or too small to hold `f`'s captures and
    /// a page to run in.
    pub fn new<F>(stack: Stack, f: F) -> Self
    where
        F: FnOnce(&Yielder<I, Y>, I) -> R + 's,
    {
        Self::with_holder(StackHolder::Owned(stack), f)
    }

    /// A coroutine running `f` on a borrowed `stack`, for reusing one stack
    /// for many successive coroutines.
    pub fn on_stack<F>(stack: &'s mut Stack, f: F) -> Self
    where
        F: FnOnce(&Yielder<I, Y>, I) -> R + 's,
    {
        Self::with_holder(StackHolder::Borrowed(stack), f)
    }

    fn with_holder<F>(holder: StackHolder<'s>, f: F) -> Self
    where
        F: FnOnce(&Yielder<I, Y>, I) -> R + 's,
    {
        let stack = holder.get();
        let top = stack.top() as usize;
        let shared_at = (top - size_of::<Shared>()) & !15;
        let closure_align = align_of::<F>().max(16);
        let closure_at = shared_at
            .checked_sub(size_of::<F>())
            .map(|a| a & !(closure_align - 1));
        let frame_top = closure_at.map(|a| a & !15);
        let room = frame_top.and_then(|t| t.checked_sub(arch::INIT_RESERVE + crate::page_size()));
        match room {
            Some(low) if low >= stack.bottom() as usize => {}
            _ => panic!(
                "ugreen: stack of {} bytes too small for a closure of {} bytes",
                stack.size(),
                size_of::<F>()
            ),
        }
        if stack.claim().is_err() {
            panic!("ugreen: the stack is in use by another context");
        }
        let (closure_at, frame_top) = (closure_at.unwrap(), frame_top.unwrap());
        let shared = shared_at as *mut Shared;
        // SAFETY: `shared_at` and `closure_at` lie inside the usable range of
        // the claimed stack (checked above), aligned for their types, and
        // below them the frame and a page remain; nothing else uses the stack.
        unsafe {
            shared.write(Shared {
                inner: RawContext::new(),
                outer: RawContext::new(),
                closure: closure_at as *mut u8,
                result: ptr::null_mut(),
                finished: false,
            });
            (closure_at as *mut F).write(f);
            arch::init_frame(
                ptr::addr_of_mut!((*shared).inner),
                stack.bottom(),
                frame_top as *mut u8,
                coroutine_main::<F, I, Y, R>,
                shared.cast::<c_void>(),
                ptr::addr_of_mut!((*shared).outer),
                stack.meta().live.as_ptr(),
            );
        }
        Coroutine {
            stack: Some(holder),
            // SAFETY: derived from a non-zero stack address.
            shared: unsafe { NonNull::new_unchecked(shared) },
            closure: closure_at as *mut u8,
            drop_closure: drop_in_place_erased::<F>,
            state: State::Fresh,
            _types: PhantomData,
        }
    }

    /// Runs the coroutine until it suspends or returns.
    ///
    /// Panics if the coroutine has finished (returned or panicked), and
    /// resumes the panic if the coroutine panics.
    pub fn resume(&mut self, input: I) -> CoroutineResult<Y, R> {
        match self.switch_in(Command::Resume(input)) {
            Event::Yield(y) => CoroutineResult::Yield(y),
            Event::Return(r) => CoroutineResult::Return(r),
            Event::Panic(payload) => panic::resume_unwind(payload),
            Event::Unwound => unreachable!("a resumed coroutine never reports a forced unwind"),
        }
    }

    fn switch_in(&mut self, cmd: Command<I>) -> Event<Y, R> {
        match self.state {
            State::Finished => panic!("ugreen: resume of a coroutine that has finished"),
            State::Running => panic!("ugreen: resume of a coroutine that is running"),
            State::Fresh | State::Suspended => {}
        }
        self.state = State::Running;
        let mut slot = Some(cmd);
        let mut result: Option<Event<Y, R>> = None;
        let shared = self.shared.as_ptr();
        // SAFETY: the coroutine is suspended (Fresh or Suspended), its stack
        // is alive (held by self), and `shared` never moves. `result` lives
        // until the switch returns, which is when the coroutine's final
        // event, if any, has been written to it.
        let word = unsafe {
            (*shared).result = ptr::addr_of_mut!(result).cast();
            arch::switch(
                ptr::addr_of_mut!((*shared).outer),
                ptr::addr_of_mut!((*shared).inner),
                ptr::addr_of_mut!(slot) as usize,
            )
        };
        // SAFETY: unless finished, the coroutine passed the address of its
        // live `Option<Y>`, valid until it is resumed.
        let event = unsafe {
            if (*shared).finished {
                result.take().unwrap_unchecked()
            } else {
                Event::Yield((*(word as *mut Option<Y>)).take().unwrap_unchecked())
            }
        };
        self.state = match event {
            Event::Yield(_) => State::Suspended,
            _ => {
                self.release_stack();
                State::Finished
            }
        };
        event
    }

    /// Marks the stack free for the next context once this one finished.
    fn release_stack(&self) {
        if let Some(holder) = &self.stack {
            holder.get().release();
        }
    }

    /// Whether the coroutine has finished (returned, panicked or unwound).
    pub fn is_finished(&self) -> bool {
        self.state == State::Finished
    }

    /// Whether the coroutine has been resumed at least once.
    pub fn is_started(&self) -> bool {
        self.state != State::Fresh
    }

    /// Finishes the coroutine (unwinding it if suspended) and returns its
    /// stack, ready for the next coroutine; `None` for a borrowed stack.
    pub fn into_stack(mut self) -> Option<Stack> {
        self.force_finish();
        match self.stack.take() {
            Some(StackHolder::Owned(s)) => Some(s),
            _ => None,
        }
    }

    fn force_finish(&mut self) {
        match self.state {
            State::Finished | State::Running => {}
            State::Fresh => {
                // SAFETY: a fresh coroutine's closure was written at
                // `closure` and never read.
                unsafe { (self.drop_closure)(self.closure) };
                self.state = State::Finished;
                self.release_stack();
            }
            State::Suspended => match self.switch_in(Command::Unwind) {
                Event::Unwound => {}
                Event::Yield(_) => crate::diag::fatal(&[
                    b"a dropped coroutine suspended again while its stack was being unwound \
                      (a catch_unwind inside it swallowed the unwind)",
                ]),
                // Returned normally (it caught the unwind) or panicked during
                // the unwind: either way it has finished.
                Event::Return(_) | Event::Panic(_) => {}
            },
        }
    }
}

impl<I, Y, R> Drop for Coroutine<'_, I, Y, R> {
    fn drop(&mut self) {
        self.force_finish();
    }
}

unsafe fn drop_in_place_erased<F>(p: *mut u8) {
    // SAFETY: the caller passes the address of a live, never-read F.
    unsafe { ptr::drop_in_place(p.cast::<F>()) }
}

/// The root of every coroutine, called by the trampoline on first entry. It
/// writes the final event into the resumer's `result` slot and returns; the
/// trampoline then switches to the link (`outer`), the resumer, for good. No
/// frame of the coroutine runs after that switch, so nothing on its stack is
/// read once it is finished (which also lets AddressSanitizer release the
/// fiber's fake stack in the trampoline).
unsafe extern "C" fn coroutine_main<F, I, Y, R>(arg: *mut c_void, transfer: usize)
where
    F: FnOnce(&Yielder<I, Y>, I) -> R,
{
    let shared = arg.cast::<Shared>();
    // SAFETY: `arg` is this coroutine's Shared block, whose `closure` holds
    // the F written by `with_holder`, read once here; `transfer` is the
    // resumer's command slot.
    let (f, cmd) = unsafe {
        (
            (*shared).closure.cast::<F>().read(),
            take_command::<I>(transfer),
        )
    };
    let yielder = Yielder::<I, Y> {
        shared,
        _types: PhantomData,
    };
    let outcome = match cmd {
        Command::Resume(input) => panic::catch_unwind(AssertUnwindSafe(|| f(&yielder, input))),
        Command::Unwind => {
            drop(f);
            Err(Box::new(ForcedUnwind) as Box<dyn Any + Send>)
        }
    };
    let event = match outcome {
        Ok(r) => Event::Return(r),
        Err(p) if p.is::<ForcedUnwind>() => Event::Unwound,
        Err(p) => Event::Panic(p),
    };
    // SAFETY: `shared` is this coroutine's block; `result` points to the
    // resumer's `Option<Event<Y, R>>`, which lives until its switch returns.
    unsafe {
        *(*shared).result.cast::<Option<Event<Y, R>>>() = Some(event);
        (*shared).finished = true;
    }
}
