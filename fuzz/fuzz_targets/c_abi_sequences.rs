//! Random sequences of C ABI calls, each answer checked against a model:
//! stacks created (with good and bad sizes), labelled, measured and freed;
//! contexts made (on free stacks, on stacks in use, with NULL arguments),
//! swapped into while suspended, run to completion through their link; and
//! every pointer argument NULL now and then.
//!
//! Run: `cargo +nightly fuzz run c_abi_sequences` (from the crate root).
//! Only sequences that respect the documented `# Safety` contracts are
//! generated: swapping into a context that is not suspended aborts the
//! process by design, so the model never does it.
#![no_main]

use core::ffi::{c_char, c_int, c_void};
use core::ptr::{self, addr_of_mut};
use libfuzzer_sys::fuzz_target;
use ugreen::ffi::*;
use ugreen::{RawContext, Stack};

extern "C" {
    /// The C symbol (the assembly routine, or its ASan-annotated wrapper).
    fn ugreen_context_swap(from: *mut RawContext, to: *mut RawContext);
}

const STACKS: usize = 4;
const CONTEXTS: usize = 4;

/// One green context: switches back to main `remaining` times, then returns
/// (and control comes back to main through the link).
struct Green {
    ctx: RawContext,
    main: *mut RawContext,
    remaining: u32,
    /// Times it ran; checked against the model.
    runs: u32,
}

unsafe extern "C" fn green_entry(arg: *mut c_void) {
    let g = arg.cast::<Green>();
    // SAFETY: the harness keeps every Green and main alive and at their
    // addresses while a context runs; main is suspended whenever it runs.
    unsafe {
        (*g).runs += 1;
        while (*g).remaining > 0 {
            (*g).remaining -= 1;
            ugreen_context_swap(addr_of_mut!((*g).ctx), (*g).main);
            (*g).runs += 1;
        }
    }
}

#[derive(Clone, Copy, PartialEq, Debug)]
enum Ctx {
    Idle,
    /// Made on this stack; suspended with this many suspensions left.
    Suspended {
        stack: usize,
        left: u32,
    },
}

struct Harness {
    main: Box<RawContext>,
    greens: Box<[Green; CONTEXTS]>,
    stacks: [*mut Stack; STACKS],
    model: [Ctx; CONTEXTS],
}

impl Harness {
    fn stack_in_use(&self, s: usize) -> bool {
        self.model
            .iter()
            .any(|c| matches!(c, Ctx::Suspended { stack, .. } if *stack == s))
    }

    /// Checks the observable state of everything against the model.
    fn check(&self) {
        for (i, c) in self.model.iter().enumerate() {
            // SAFETY: pointers to live contexts.
            let suspended = unsafe { ugreen_context_is_suspended(&self.greens[i].ctx) };
            assert_eq!(suspended, matches!(c, Ctx::Suspended { .. }), "context {i}");
        }
        for (s, &p) in self.stacks.iter().enumerate() {
            // SAFETY: NULL or a live stack.
            let in_use = unsafe { ugreen_stack_in_use(p) };
            assert_eq!(in_use, !p.is_null() && self.stack_in_use(s), "stack {s}");
        }
    }

    fn resume(&mut self, c: usize) {
        let Ctx::Suspended { stack, left } = self.model[c] else {
            return;
        };
        let runs = self.greens[c].runs;
        // SAFETY: `c` is suspended (checked by the model and by check()),
        // its stack is alive, main is valid.
        unsafe {
            let to = addr_of_mut!(self.greens[c].ctx);
            ugreen_context_swap(&mut *self.main, to);
        }
        assert_eq!(self.greens[c].runs, runs + 1, "context {c} ran once");
        self.model[c] = if left == 0 {
            Ctx::Idle
        } else {
            Ctx::Suspended {
                stack,
                left: left - 1,
            }
        };
    }
}

fn expect(r: ugreen_result, want: ugreen_result, what: &str) {
    assert_eq!(r, want, "{what}");
}

fuzz_target!(|data: &[u8]| {
    use ugreen_result::*;
    let mut h = Harness {
        main: Box::new(RawContext::new()),
        greens: Box::new(core::array::from_fn(|_| Green {
            ctx: RawContext::new(),
            main: ptr::null_mut(),
            remaining: 0,
            runs: 0,
        })),
        stacks: [ptr::null_mut(); STACKS],
        model: [Ctx::Idle; CONTEXTS],
    };
    let main: *mut RawContext = &mut *h.main;
    for g in h.greens.iter_mut() {
        g.main = main;
    }
    let page = ugreen::page_size();

    let mut bytes = data.iter().copied();
    while let Some(op) = bytes.next() {
        let a = bytes.next().unwrap_or(0);
        let b = bytes.next().unwrap_or(0);
        let s = a as usize % STACKS;
        let c = b as usize % CONTEXTS;
        // SAFETY (for every call below): pointers are NULL, live stacks
        // from the harness, or contexts the harness owns; the model keeps
        // each call within its documented contract.
        unsafe {
            match op % 10 {
                0 => {
                    // ugreen_stack_new with a good, zero or oversized size.
                    if !h.stacks[s].is_null() {
                        continue;
                    }
                    let pages = match b % 8 {
                        0 => 0,
                        1 => usize::MAX,
                        2 => usize::MAX / page + 1,
                        3 => (Stack::MAX_BYTES / page) + 1,
                        _ => 1 + (b as usize % 16),
                    };
                    let mut out: *mut Stack = ptr::dangling_mut::<Stack>();
                    let r = ugreen_stack_new(pages, &mut out);
                    if pages == 0 || pages > Stack::MAX_BYTES / page {
                        expect(r, UGREEN_RESULT_INVALID_SIZE, "stack_new bad size");
                        assert_eq!(out, ptr::dangling_mut::<Stack>(), "out written on error");
                    } else {
                        expect(r, UGREEN_RESULT_OK, "stack_new");
                        assert_eq!(ugreen_stack_pages(out), pages);
                        assert_eq!(ugreen_stack_size(out), pages * page);
                        h.stacks[s] = out;
                    }
                }
                1 => {
                    // ugreen_stack_free, only of stacks nothing runs on.
                    if !h.stack_in_use(s) {
                        ugreen_stack_free(h.stacks[s]);
                        h.stacks[s] = ptr::null_mut();
                    }
                }
                2 => {
                    // ugreen_context_make: on a missing, busy or free stack.
                    if h.model[c] != Ctx::Idle {
                        continue;
                    }
                    let stack = h.stacks[s];
                    let left = (b as u32 >> 2) % 5;
                    h.greens[c].remaining = left;
                    h.greens[c].runs = 0;
                    let g = addr_of_mut!(h.greens[c]);
                    let r = ugreen_context_make(
                        addr_of_mut!((*g).ctx),
                        stack,
                        Some(green_entry),
                        g.cast(),
                        main,
                    );
                    if stack.is_null() {
                        expect(r, UGREEN_RESULT_NULL_ARGUMENT, "make on NULL stack");
                    } else if h.stack_in_use(s) {
                        expect(r, UGREEN_RESULT_WRONG_STATE, "make on busy stack");
                    } else {
                        expect(r, UGREEN_RESULT_OK, "make");
                        h.model[c] = Ctx::Suspended { stack: s, left };
                    }
                }
                3..=5 => h.resume(c),
                6 => {
                    // Labels: arbitrary bytes, NUL-terminated, or NULL.
                    let len = b as usize % 100;
                    let mut label: Vec<u8> = bytes.by_ref().take(len).collect();
                    label.retain(|&x| x != 0);
                    label.push(0);
                    let p = if a & 0x80 != 0 {
                        ptr::null()
                    } else {
                        label.as_ptr().cast::<c_char>()
                    };
                    let r = ugreen_stack_set_label(h.stacks[s], p);
                    if h.stacks[s].is_null() || p.is_null() {
                        expect(r, UGREEN_RESULT_NULL_ARGUMENT, "set_label NULL");
                    } else {
                        expect(r, UGREEN_RESULT_OK, "set_label");
                        let stored = (*h.stacks[s]).label();
                        assert!(stored.len() <= 63, "labels keep at most 63 bytes");
                    }
                }
                7 => {
                    // High-water mark: within the stack, whole pages.
                    let mut out = usize::MAX;
                    let r = ugreen_stack_high_water(h.stacks[s], &mut out);
                    if h.stacks[s].is_null() {
                        expect(r, UGREEN_RESULT_NULL_ARGUMENT, "high_water NULL");
                        assert_eq!(out, usize::MAX);
                    } else {
                        expect(r, UGREEN_RESULT_OK, "high_water");
                        assert!(out <= ugreen_stack_size(h.stacks[s]));
                        assert_eq!(out % page, 0);
                    }
                    expect(
                        ugreen_stack_high_water(h.stacks[s], ptr::null_mut()),
                        UGREEN_RESULT_NULL_ARGUMENT,
                        "high_water NULL out",
                    );
                }
                8 => {
                    // NULL everywhere a pointer is taken.
                    expect(
                        ugreen_stack_new(1, ptr::null_mut()),
                        UGREEN_RESULT_NULL_ARGUMENT,
                        "stack_new NULL out",
                    );
                    let g = addr_of_mut!(h.greens[c]);
                    expect(
                        ugreen_context_make(
                            ptr::null_mut(),
                            h.stacks[s],
                            Some(green_entry),
                            g.cast(),
                            main,
                        ),
                        UGREEN_RESULT_NULL_ARGUMENT,
                        "make NULL ctx",
                    );
                    if h.model[c] == Ctx::Idle {
                        expect(
                            ugreen_context_make(
                                addr_of_mut!((*g).ctx),
                                h.stacks[s],
                                None,
                                g.cast(),
                                main,
                            ),
                            UGREEN_RESULT_NULL_ARGUMENT,
                            "make NULL entry",
                        );
                    }
                    assert!(!ugreen_context_is_suspended(ptr::null()));
                    assert!(!ugreen_stack_in_use(ptr::null()));
                    assert_eq!(ugreen_stack_size(ptr::null()), 0);
                    assert_eq!(ugreen_stack_pages(ptr::null()), 0);
                    ugreen_stack_free(ptr::null_mut());
                    expect(
                        ugreen_overflow_set_advice(ptr::null()),
                        UGREEN_RESULT_NULL_ARGUMENT,
                        "set_advice NULL",
                    );
                }
                _ => {
                    // Static strings for any code.
                    let code = i32::from_le_bytes([a, b, op, a ^ b]) as c_int;
                    assert!(!ugreen_result_str(code).is_null());
                    assert!(!ugreen_version().is_null());
                    assert!(!ugreen_backend().is_null());
                }
            }
        }
        h.check();
    }
    // Run every suspended context to its end, then free everything.
    for c in 0..CONTEXTS {
        while h.model[c] != Ctx::Idle {
            h.resume(c);
        }
    }
    h.check();
    for p in h.stacks {
        // SAFETY: nothing runs on any stack any more.
        unsafe { ugreen_stack_free(p) };
    }
});
