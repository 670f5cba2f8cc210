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

/* On a core's stack, at the start and at the end of one request. */
UGREEN_PY_HIDDEN void ugreen_py_request_begin(int core);
UGREEN_PY_HIDDEN void ugreen_py_request_end(int core);

/* On a core's stack, right before it switches to main and right after it is back. */
UGREEN_PY_HIDDEN void ugreen_py_leave(int core);
UGREEN_PY_HIDDEN void ugreen_py_enter(int core);

#endif
