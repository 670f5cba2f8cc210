/*
 * Python support of the ugreen plugin: what the switch code calls around every
 * switch. Everything is a no-op when CPython is not running in the process.
 */
#ifndef UGREEN_PLUGIN_PYTHON_H
#define UGREEN_PLUGIN_PYTHON_H

#include <stddef.h>

#define UGREEN_PY_HIDDEN __attribute__((visibility("hidden")))

/* The direction of a switch: main -> a core, or a core -> main. */
enum ugreen_py_dir {
	UGREEN_PY_TO_CORE,
	UGREEN_PY_TO_MAIN,
};

/* Called once per worker (the plugin's post_fork hook), before its first switch:
   detects CPython and checks that it is the version this plugin was compiled for
   (stops the worker otherwise). has_threads is uwsgi.has_threads: when 0 (uWSGI
   < 2.0.27 without --enable-threads) the python plugin never releases the GIL,
   and neither do these hooks. */
UGREEN_PY_HIDDEN void ugreen_py_worker_init(int ncores, int has_threads);

/* Whether the per-core state includes the frame pointer and recursion counters,
   so the python plugin's own suspend/resume hooks (which save and restore exactly
   those) need not run around a switch. */
UGREEN_PY_HIDDEN int ugreen_py_owns_frames(void);

/*
 * Every switch happens with the GIL held by this thread, so that the swap of the
 * per-core interpreter state costs no GIL round trip of its own:
 *   main -> core: ugreen_py_before_switch(TO_CORE) in main (takes the GIL), swap;
 *                 in the core ugreen_py_request_begin() for a new request, else
 *                 ugreen_py_after_switch(TO_CORE) (installs the core's state,
 *                 releases the GIL unless the core held it when it left);
 *   core -> main: ugreen_py_before_switch(TO_MAIN) in the core (takes the GIL,
 *                 installs main's state), swap, or ugreen_py_request_end() and
 *                 return through the context link; in main
 *                 ugreen_py_after_switch(TO_MAIN) (releases the GIL).
 */
UGREEN_PY_HIDDEN void ugreen_py_before_switch(enum ugreen_py_dir dir, int core);
UGREEN_PY_HIDDEN void ugreen_py_after_switch(enum ugreen_py_dir dir, int core);

/* On a core's stack, at the start and at the end of one request. The stack's
   usable range is [stack_lo, stack_lo + stack_size) (CPython >= 3.14 checks the
   C stack depth against it). */
UGREEN_PY_HIDDEN void ugreen_py_request_begin(int core, void *stack_lo, size_t stack_size);
UGREEN_PY_HIDDEN void ugreen_py_request_end(int core);

/* uwsgi.suspend() was called where no core can switch (an app thread, or main):
   raises `message` as a RuntimeError in the calling Python thread; returns 0 when
   no Python exception could be set (no CPython in the process). */
UGREEN_PY_HIDDEN int ugreen_py_raise_in_caller(const char *message);

/* Gives back the Python memory an idle core keeps between requests (its root
   data-stack chunk); CPython allocates a new one at the core's next frame. */
UGREEN_PY_HIDDEN void ugreen_py_core_idle_release(int core);

#endif
