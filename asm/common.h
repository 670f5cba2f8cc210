/*
 * Boilerplate shared by every assembly file of ugreen: symbol declarations,
 * landing pads for indirect branches, and the notes the linker reads.
 *
 *   FUNC_BEGIN(name)  global, default visibility: part of the C ABI.
 *   HIDDEN_BEGIN(name) global but hidden: internal to libugreen.
 *   FUNC_END(name)    records the symbol size.
 */
#ifndef UGREEN_ASM_COMMON_H
#define UGREEN_ASM_COMMON_H

#define FUNC_BEGIN(name)          \
    .text;                        \
    .globl name;                  \
    .type name, %function;        \
    .p2align 4;                   \
name:

#define HIDDEN_BEGIN(name)        \
    .text;                        \
    .globl name;                  \
    .hidden name;                 \
    .type name, %function;        \
    .p2align 4;                   \
name:

#define FUNC_END(name) .size name, . - name

/* ------------------------------------------------------------------ x86_64 */
#if defined(__x86_64__)

/* Indirect-branch tracking: every indirect branch target starts with endbr64. */
# if defined(__CET__) && (__CET__ & 1)
#  define LANDING_PAD endbr64
   /* The switch ends with an indirect jmp to a return site that carries no
      endbr64; notrack exempts exactly that one branch from the check. */
#  define RESUME_JMP(reg) notrack jmp *reg
#  define UGREEN_X86_FEATURE_1 0x1 /* IBT; SHSTK (0x2) is not implemented */
# else
#  define LANDING_PAD
#  define RESUME_JMP(reg) jmp *reg
# endif

/* ----------------------------------------------------------------- aarch64 */
#elif defined(__aarch64__)

# if defined(__ARM_FEATURE_BTI_DEFAULT) && __ARM_FEATURE_BTI_DEFAULT
#  define LANDING_PAD hint 34 /* bti c */
#  define UGREEN_AARCH64_BTI 0x1
# else
#  define LANDING_PAD
#  define UGREEN_AARCH64_BTI 0x0
# endif

# if defined(__ARM_FEATURE_PAC_DEFAULT) && (__ARM_FEATURE_PAC_DEFAULT & 1)
   /* Sign/authenticate the link register with key A and sp as modifier. */
#  define SIGN_LR hint 25 /* paciasp */
#  define AUTH_LR hint 29 /* autiasp */
   /* Tells unwinders that the return address is signed from the next
      instruction on (or no longer is): after SIGN_LR and after AUTH_LR. */
#  define RA_SIGNED_TOGGLE .cfi_negate_ra_state
#  define UGREEN_AARCH64_PAC 0x2
# else
#  define SIGN_LR
#  define AUTH_LR
#  define RA_SIGNED_TOGGLE
#  define UGREEN_AARCH64_PAC 0x0
# endif

#else
# error "ugreen: no assembly for this architecture; build with the ucontext feature"
#endif

/* No executable stack, in every object. */
    .section .note.GNU-stack, "", %progbits

/* GNU property note: claims only the protections the code implements. */
#if defined(__x86_64__) && defined(UGREEN_X86_FEATURE_1)
# define UGREEN_PROPERTY_TYPE 0xc0000002 /* GNU_PROPERTY_X86_FEATURE_1_AND */
# define UGREEN_PROPERTY_BITS UGREEN_X86_FEATURE_1
#elif defined(__aarch64__) && (UGREEN_AARCH64_BTI | UGREEN_AARCH64_PAC)
# define UGREEN_PROPERTY_TYPE 0xc0000000 /* GNU_PROPERTY_AARCH64_FEATURE_1_AND */
# define UGREEN_PROPERTY_BITS (UGREEN_AARCH64_BTI | UGREEN_AARCH64_PAC)
#endif
#ifdef UGREEN_PROPERTY_TYPE
    .section .note.gnu.property, "a"
    .p2align 3
    .long 4                     /* name size */
    .long 16                    /* descriptor size */
    .long 5                     /* NT_GNU_PROPERTY_TYPE_0 */
    .asciz "GNU"
    .long UGREEN_PROPERTY_TYPE
    .long 4                     /* property data size */
    .long UGREEN_PROPERTY_BITS
    .p2align 3
#endif
    .text

#endif /* UGREEN_ASM_COMMON_H */
