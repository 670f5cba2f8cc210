/*
 * ugreen_overflow_thread_init() on many short-lived threads: the alternate
 * signal stack it maps for a thread is unmapped when the thread exits (the
 * process's mapping count stays flat), and a thread that already has an
 * alternate stack keeps it.
 *
 * Prints "threads ok: <n> threads, <m> mappings more".
 */
#ifndef _XOPEN_SOURCE
#define _XOPEN_SOURCE 700 /* sigaltstack */
#endif

#include "test.h"

#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define THREADS 400

/* Lines of /proc/self/maps: one per mapping. */
static long mappings(void) {
    FILE *f = fopen("/proc/self/maps", "r");
    long lines = 0;
    int c;
    CHECK(f != NULL);
    while ((c = fgetc(f)) != EOF) {
        lines += c == '\n';
    }
    fclose(f);
    return lines;
}

static void *init_and_exit(void *arg) {
    stack_t now;
    (void)arg;
    CHECK(ugreen_overflow_thread_init() == UGREEN_RESULT_OK);
    CHECK(sigaltstack(NULL, &now) == 0);
    CHECK(!(now.ss_flags & SS_DISABLE)); /* the thread has one now */
    return NULL;
}

static void *keep_own(void *arg) {
    stack_t own, now;
    (void)arg;
    own.ss_sp = malloc(32 * 1024);
    own.ss_size = 32 * 1024;
    own.ss_flags = 0;
    CHECK(own.ss_sp != NULL);
    CHECK(sigaltstack(&own, NULL) == 0);
    CHECK(ugreen_overflow_thread_init() == UGREEN_RESULT_OK);
    CHECK(sigaltstack(NULL, &now) == 0);
    CHECK(now.ss_sp == own.ss_sp && now.ss_size == own.ss_size);
    now.ss_flags = SS_DISABLE;
    CHECK(sigaltstack(&now, NULL) == 0);
    free(own.ss_sp);
    return NULL;
}

static void run(void *(*body)(void *)) {
    pthread_t t;
    CHECK(pthread_create(&t, NULL, body, NULL) == 0);
    CHECK(pthread_join(t, NULL) == 0);
}

int main(void) {
    long before, after;
    int i;
    /* Warm up: the first threads map glibc's thread-stack cache. */
    for (i = 0; i < 8; i++) {
        run(init_and_exit);
    }
    before = mappings();
    for (i = 0; i < THREADS; i++) {
        run(init_and_exit);
    }
    after = mappings();
    CHECK(after - before < THREADS / 10);
    run(keep_own);
    printf("threads ok: %d threads, %ld mappings more\n", THREADS, after - before);
    return 0;
}
