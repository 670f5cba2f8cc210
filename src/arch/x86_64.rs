//! x86_64 System V: the frame saved by asm/switch_x86_64_sysv_elf.S.

use core::mem::{offset_of, size_of};

/// One suspended context's saved state, at its saved stack pointer.
#[repr(C)]
pub(super) struct SwitchFrame {
    /// MXCSR in bits 0-31, x87 control word in bits 32-47, 48-63 unused.
    fp_control: u64,
    r15: usize,
    r14: usize,
    r13: usize,
    r12: usize,
    rbx: usize,
    rbp: usize,
    /// Where the context resumes.
    ret: usize,
}

// The table at the top of the assembly file, checked.
const _: () = {
    assert!(offset_of!(SwitchFrame, fp_control) == 0);
    assert!(offset_of!(SwitchFrame, r15) == 8);
    assert!(offset_of!(SwitchFrame, r14) == 16);
    assert!(offset_of!(SwitchFrame, r13) == 24);
    assert!(offset_of!(SwitchFrame, r12) == 32);
    assert!(offset_of!(SwitchFrame, rbx) == 40);
    assert!(offset_of!(SwitchFrame, rbp) == 48);
    assert!(offset_of!(SwitchFrame, ret) == 56);
    // FRAME_SIZE: popping the frame leaves rsp 16-byte aligned when it
    // started so, as the trampoline's `call` requires.
    assert!(size_of::<SwitchFrame>() == 64);
};

/// What the trampoline finds in callee-saved registers on first entry.
pub(super) struct Start {
    pub entry: usize,
    pub arg: usize,
    pub link: usize,
    pub live: usize,
}

/// The frame of a context that has never run: the first swap into it pops
/// these registers and jumps to the trampoline.
pub(super) fn initial(start: Start, fp_control: u64, resume_at: usize) -> SwitchFrame {
    SwitchFrame {
        fp_control,
        r15: 0,
        r14: start.live,
        r13: start.link,
        r12: start.arg,
        rbx: start.entry,
        rbp: 0,
        ret: resume_at,
    }
}
