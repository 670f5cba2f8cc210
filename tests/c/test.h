/*
 * What the test programs of tests/c/ share: CHECK and EXPECT. The programs
 * are tests, so they may include this beside ugreen.h; each is compiled as
 * C11 and as C++17 with warnings as errors.
 */
#ifndef UGREEN_TEST_H
#define UGREEN_TEST_H

#include "ugreen.h"

#include <stdio.h>
#include <stdlib.h>

/* How many CHECKs and EXPECTs have passed so far. */
static inline long *test_checks(void)
{
    static long checks;
    return &checks;
}

/* `cond` holds; otherwise the program says where and exits 1. */
#define CHECK(cond)                                                                \
    do {                                                                           \
        ++*test_checks();                                                          \
        if (!(cond)) {                                                             \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
            exit(1);                                                               \
        }                                                                          \
    } while (0)

/* `call` returns `code`; also prints the code's message on failure. */
#define EXPECT(call, code)                                                         \
    do {                                                                           \
        ugreen_result got_ = (call);                                               \
        ++*test_checks();                                                          \
        if (got_ != (code)) {                                                      \
            fprintf(stderr, "%s:%d: %s returned %d (%s), expected %s\n", __FILE__, \
                    __LINE__, #call, (int)got_, ugreen_result_str((int)got_), #code); \
            exit(1);                                                               \
        }                                                                          \
    } while (0)

#endif /* UGREEN_TEST_H */
