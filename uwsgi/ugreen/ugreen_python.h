/*
 * Python support of the ugreen plugin: the hooks the switch code calls around
 * every switch. They do nothing when CPython is not running in the process.
 */
#ifndef UGREEN_PLUGIN_PYTHON_H
#define UGREEN_PLUGIN_PYTHON_H

#define UGREEN_PY_HIDDEN __attribute__((visibility("hidden")))

/* Called once per worker, before its first switch: detects CPython and checks that
   it is the version this plugin was compiled for (stops the worker otherwise). */
UGREEN_PY_HIDDEN void ugreen_py_setup(int ncores);

/* Whether the per-core state below includes the frame pointer and recursion
   counters, so the python plugin's own suspend/resume hooks (which save and
   restore exactly those) need not run around a switch of a Python request. */
UGREEN_PY_HIDDEN int ugreen_py_owns_frames(void);

/*
 * GIL protocol while CPython runs. Every switch happens with the GIL held by this
 * thread, so that the python plugin's suspend/resume hooks and the state swap below
 * cost no GIL round trip of their own:
 *   main -> core: ugreen_py_main_take(), plugin suspend(NULL), swap; in the core,
 *                 ugreen_py_request_begin() (new request: releases the GIL, the
 *                 request handler takes it itself) or ugreen_py_enter(), plugin
 *                 resume(req), ugreen_py_core_release();
 *   core -> main: ugreen_py_core_hold(), plugin suspend(req), ugreen_py_leave(),
 *                 swap (or ugreen_py_request_end() and return through the link);
 *                 in main, plugin resume(NULL), ugreen_py_main_release().
 * A core that did not hold the GIL when it suspended gets it back released.
 */
UGREEN_PY_HIDDEN void ugreen_py_main_take(void);
UGREEN_PY_HIDDEN void ugreen_py_main_release(void);

/* On a core's stack, at the start and at the end of one request. */
UGREEN_PY_HIDDEN void ugreen_py_request_begin(int core);
UGREEN_PY_HIDDEN void ugreen_py_request_end(int core);

/* On a core's stack, before it switches to main ... */
UGREEN_PY_HIDDEN void ugreen_py_core_hold(int core);
UGREEN_PY_HIDDEN void ugreen_py_leave(int core);
/* ... and after it is back. */
UGREEN_PY_HIDDEN void ugreen_py_enter(int core);
UGREEN_PY_HIDDEN void ugreen_py_core_release(int core);

/* Gives back the Python memory an idle core keeps between requests (its root
   data-stack chunk); CPython allocates a new one at the core's next frame. */
UGREEN_PY_HIDDEN void ugreen_py_core_idle_release(int core);

#endif
