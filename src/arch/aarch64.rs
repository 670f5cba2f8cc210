//! aarch64 AAPCS64: the frame saved by asm/switch_aarch64_aapcs_elf.S.

use core::mem::{offset_of, size_of};

/// One suspended context's saved state, at its saved stack pointer.
#[repr(C)]
pub(super) struct SwitchFrame {
    /// x19..=x28.
    x19_x28: [usize; 10],
    /// Frame pointer.
    x29: usize,
    /// Link register: where the context resumes.
    x30: usize,
    /// d8..=d15 (low 64 bits of v8-v15), as bit patterns.
    d8_d15: [u64; 8],
    fpcr: u64,
    _pad: u64,
}

// The table at the top of the assembly file, checked.
const _: () = {
    assert!(offset_of!(SwitchFrame, x19_x28) == 0);
    assert!(offset_of!(SwitchFrame, x29) == 80);
    assert!(offset_of!(SwitchFrame, x30) == 88);
    assert!(offset_of!(SwitchFrame, d8_d15) == 96);
    assert!(offset_of!(SwitchFrame, fpcr) == 160);
    // FRAME_SIZE: a multiple of 16, so sp stays aligned.
    assert!(size_of::<SwitchFrame>() == 176);
};

/// What the trampoline finds in callee-saved registers on first entry.
pub(super) struct Start {
    pub entry: usize,
    pub arg: usize,
    pub link: usize,
    pub live: usize,
}

/// The frame of a context that has never run: the first swap into it loads
/// these registers and returns to the trampoline.
pub(super) fn initial(start: Start, fpcr: u64, resume_at: usize) -> SwitchFrame {
    let mut x = [0usize; 10];
    x[0] = start.entry; // x19
    x[1] = start.arg; // x20
    x[2] = start.link; // x21
    x[3] = start.live; // x22
    SwitchFrame {
        x19_x28: x,
        x29: 0,
        x30: resume_at,
        d8_d15: [0; 8],
        fpcr,
        _pad: 0,
    }
}
