/*
 * CPython on uGreen.
 *
 * All green threads of a worker run on one OS thread and one PyThreadState. Two
 * things break Python there unless the switch code takes care of them:
 *
 * 1. The GIL. uWSGI enables threads, so a core that suspends from Python code
 *    holds the GIL; the next core to enter Python would block on it forever. A
 *    core therefore releases the GIL before it switches to main (when it holds it)
 *    and takes it back when it is resumed.
 *
 * 2. Thread-state fields that CPython treats as a strict stack but that green
 *    threads would interleave:
 *      - the frame data stack (datastack_chunk/top/limit, Python >= 3.11): frames
 *        of a suspended core would be overwritten by the next core's frames;
 *      - the exception-info chain (exc_info): generators link their exception
 *        state into it and unlink it on exit, out of order across cores;
 *      - the contextvars context (context, and context_ver to invalidate the
 *        lookup caches): decimal.localcontext() and ContextVar values would leak
 *        between concurrent requests.
 *    Each core gets its own copy of these fields, fresh for every request (the
 *    core's green thread is re-made per request, so nothing survives from the
 *    previous one): an empty data stack (the core's root chunk is kept and reused),
 *    an empty exception chain and an empty contextvars context. The frame
 *    pointer (cframe/current_frame) and the recursion counters are kept per
 *    core the same way, which is exactly what the python plugin's own
 *    suspend/resume hooks save and restore: for Python requests the switch
 *    code skips those hooks (each costs a PyGILState_Ensure/Release pair).
 *
 * The Python symbols are weak references: the same plugin works in a uWSGI built
 * without the python plugin, where they resolve to NULL and every hook is a no-op.
 * The compiled-for and the running CPython must have the same major.minor version.
 *
 * Limitation: the state is kept for the worker's main-interpreter thread state;
 * apps running in sub-interpreters (several apps without --single-interpreter)
 * are refused with a clear message.
 */

#ifdef UGREEN_WITH_PYTHON

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#if PY_VERSION_HEX < 0x030B0000
#error "ugreen plugin: CPython < 3.11 is not handled (its frame and exception state differ); build the plugin without Python support (UGREEN_PYTHON=0)"
#elif PY_VERSION_HEX >= 0x030E0000
#error "ugreen plugin: CPython >= 3.14 is not handled yet: check the thread-state fields kept per core (ugreen_python.c) against this version's cpython/pystate.h"
#endif
#ifdef Py_GIL_DISABLED
#error "ugreen plugin: free-threaded CPython builds are not handled"
#endif

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ugreen_python.h"

void uwsgi_log(const char *, ...);

/* weak: resolved only when the process runs CPython */
#pragma weak Py_IsInitialized
#pragma weak Py_GetVersion
#pragma weak PyEval_SaveThread
#pragma weak PyEval_RestoreThread
#pragma weak PyGILState_GetThisThreadState
#pragma weak PyThread_get_thread_ident
#pragma weak PyObject_GetArenaAllocator
#pragma weak _Py_Dealloc
#if PY_VERSION_HEX >= 0x030D0000
#pragma weak PyThreadState_GetUnchecked
#define ug_current_tstate() PyThreadState_GetUnchecked()
#else
#pragma weak _PyThreadState_UncheckedGet
#define ug_current_tstate() _PyThreadState_UncheckedGet()
#endif

/* where the current Python frame and the recursion budget live per version */
#if PY_VERSION_HEX >= 0x030D0000
#define UG_FRAME_T struct _PyInterpreterFrame *
#define UG_FRAME_FIELD current_frame
#define UG_RECURSION_FIELD py_recursion_remaining
#define UG_C_RECURSION c_recursion_remaining
#elif PY_VERSION_HEX >= 0x030C0000
#define UG_FRAME_T _PyCFrame *
#define UG_FRAME_FIELD cframe
#define UG_RECURSION_FIELD py_recursion_remaining
#define UG_C_RECURSION c_recursion_remaining
#else
#define UG_FRAME_T _PyCFrame *
#define UG_FRAME_FIELD cframe
#define UG_RECURSION_FIELD recursion_remaining
#endif

/* the thread-state fields that belong to a green thread */
struct ug_pyfields {
	_PyStackChunk *chunk;
	PyObject **top;
	PyObject **limit;
	_PyErr_StackItem *exc_info;
	PyObject *context;
	/* the frame pointer and recursion budget, which the python plugin's own
	   suspend/resume hooks would otherwise save and restore */
	UG_FRAME_T frame;
	int recursion;
#ifdef UG_C_RECURSION
	int c_recursion;
#endif
};

struct ug_pycore {
	PyThreadState *ts;        /* the thread state the fields below belong to */
	int active;               /* a request with per-core state runs on this core */
	int held;                 /* the core held the GIL when it switched to main */
	struct ug_pyfields core;  /* the core's fields while it is switched out */
	struct ug_pyfields main;  /* main's fields while the core runs */
	_PyErr_StackItem exc_bottom; /* bottom of the core's exception chain */
	_PyStackChunk *root;      /* the core's root data-stack chunk, kept between requests */
};

static struct {
	int on;
	int main_took;            /* main took the GIL for a switch and must release it */
	PyThreadState *main_ts;   /* the worker's main-interpreter thread state */
	int ncores;
	struct ug_pycore *cores;
	PyObjectArenaAllocator arena;
} ugpy;

static inline void fields_save(PyThreadState *ts, struct ug_pyfields *f) {
	f->chunk = ts->datastack_chunk;
	f->top = ts->datastack_top;
	f->limit = ts->datastack_limit;
	f->exc_info = ts->exc_info;
	f->context = ts->context;
	f->frame = ts->UG_FRAME_FIELD;
	f->recursion = ts->UG_RECURSION_FIELD;
#ifdef UG_C_RECURSION
	f->c_recursion = ts->UG_C_RECURSION;
#endif
}

static inline void fields_load(PyThreadState *ts, const struct ug_pyfields *f) {
	ts->datastack_chunk = f->chunk;
	ts->datastack_top = f->top;
	ts->datastack_limit = f->limit;
	ts->exc_info = f->exc_info;
	ts->context = f->context;
	ts->UG_FRAME_FIELD = f->frame;
	ts->UG_RECURSION_FIELD = f->recursion;
#ifdef UG_C_RECURSION
	ts->UG_C_RECURSION = f->c_recursion;
#endif
	/* contextvars cache their lookups per (context, version) */
	ts->context_ver++;
}

/* The thread state this OS thread runs with the GIL held, or NULL. */
static inline PyThreadState *ug_held_tstate(void) {
	PyThreadState *cur = ug_current_tstate();
	if (cur && cur->thread_id == PyThread_get_thread_ident())
		return cur;
	return NULL;
}

static void ug_py_fatal_subinterpreter(int core) {
	uwsgi_log("[ugreen] core %d: the Python app runs in a sub-interpreter; uGreen keeps per-core Python state for the main interpreter only: run a single app or add --single-interpreter\n", core);
	exit(1);
}

/* Takes the GIL for c->ts unless this thread holds it already; returns 1 when it took it. */
static inline int ug_gil_take(struct ug_pycore *c, int core) {
	PyThreadState *held = ug_held_tstate();
	if (held) {
		if (held != c->ts)
			ug_py_fatal_subinterpreter(core);
		return 0;
	}
	PyEval_RestoreThread(c->ts);
	return 1;
}

void ugreen_py_setup(int ncores) {
	if (!Py_IsInitialized || !Py_IsInitialized())
		return;

	int major = 0, minor = 0;
	const char *v = Py_GetVersion();
	if (sscanf(v, "%d.%d", &major, &minor) != 2 || major != PY_MAJOR_VERSION || minor != PY_MINOR_VERSION) {
		uwsgi_log("[ugreen] this plugin was compiled for CPython %d.%d but the process runs CPython %s: rebuild the plugin against the running Python\n",
			PY_MAJOR_VERSION, PY_MINOR_VERSION, v);
		exit(1);
	}
	ugpy.main_ts = PyGILState_GetThisThreadState();
	if (!ugpy.main_ts) {
		uwsgi_log("[ugreen] CPython is initialized but this thread has no Python thread state\n");
		exit(1);
	}

	ugpy.ncores = ncores;
	ugpy.cores = calloc((size_t) ncores, sizeof(struct ug_pycore));
	if (!ugpy.cores) {
		uwsgi_log("[ugreen] out of memory\n");
		exit(1);
	}
	PyObject_GetArenaAllocator(&ugpy.arena);
	ugpy.on = 1;
}

/* The core's Python state while a request with per-core state runs on it;
   NULL otherwise (Python off, or no such request). */
static inline struct ug_pycore *ug_active(int core) {
	if (!ugpy.on)
		return NULL;
	struct ug_pycore *c = &ugpy.cores[core];
	return c->active ? c : NULL;
}

int ugreen_py_owns_frames(void) {
	return ugpy.on;
}

void ugreen_py_main_take(void) {
	if (!ugpy.on)
		return;
	PyThreadState *held = ug_held_tstate();
	if (held) {
		/* main never runs Python code itself: keep what it holds */
		ugpy.main_took = 0;
		return;
	}
	PyEval_RestoreThread(ugpy.main_ts);
	ugpy.main_took = 1;
}

void ugreen_py_main_release(void) {
	if (!ugpy.on || !ugpy.main_took)
		return;
	ugpy.main_took = 0;
	PyEval_SaveThread();
}

void ugreen_py_request_begin(int core) {
	if (!ugpy.on)
		return;
	struct ug_pycore *c = &ugpy.cores[core];
	c->ts = ugpy.main_ts;
	int took = ug_gil_take(c, core);
	PyThreadState *ts = c->ts;

	fields_save(ts, &c->main);

	struct ug_pyfields fresh;
	if (c->root) {
		/* an empty data stack on the root chunk: CPython never pops data[0] of a root chunk */
		fresh.chunk = c->root;
		fresh.top = &c->root->data[1];
		fresh.limit = (PyObject **) ((char *) c->root + c->root->size);
	}
	else {
		/* CPython allocates the core's root chunk at the first frame push */
		fresh.chunk = NULL;
		fresh.top = NULL;
		fresh.limit = NULL;
	}
	c->exc_bottom.exc_value = NULL;
	c->exc_bottom.previous_item = NULL;
	fresh.exc_info = &c->exc_bottom;
	/* an empty contextvars context, created by CPython at first use (as for a new
	   thread or greenlet): nothing set by another request or by the worker leaks in */
	fresh.context = NULL;
	/* the request starts from main's (outermost) frame and recursion budget */
	fresh.frame = ts->UG_FRAME_FIELD;
	fresh.recursion = ts->UG_RECURSION_FIELD;
#ifdef UG_C_RECURSION
	fresh.c_recursion = ts->UG_C_RECURSION;
#endif
	fields_load(ts, &fresh);
	c->active = 1;

	/* the request handler takes the GIL itself */
	(void) took;
	ugpy.main_took = 0;
	PyEval_SaveThread();
}

void ugreen_py_request_end(int core) {
	struct ug_pycore *c = ug_active(core);
	if (!c)
		return;
	ug_gil_take(c, core);
	PyThreadState *ts = c->ts;

	/* chunks above the root (left only if frames were still live): free them the
	   way CPython does; keep the root for the next request */
	_PyStackChunk *chunk = ts->datastack_chunk;
	while (chunk && chunk->previous) {
		_PyStackChunk *prev = chunk->previous;
		if (ugpy.arena.free)
			ugpy.arena.free(ugpy.arena.ctx, chunk, chunk->size);
		chunk = prev;
	}
	c->root = chunk;

	PyObject *exc = c->exc_bottom.exc_value;
	c->exc_bottom.exc_value = NULL;
	PyObject *ctx = ts->context;

	fields_load(ts, &c->main);
	c->active = 0;

	/* released with main's state installed: finalizers may run Python code */
	Py_XDECREF(exc);
	Py_XDECREF(ctx);
	/* the GIL stays held: main releases it after the python plugin's resume hook */
	ugpy.main_took = 1;
}

void ugreen_py_core_hold(int core) {
	struct ug_pycore *c = ug_active(core);
	if (!c)
		return;
	c->held = !ug_gil_take(c, core);
}

void ugreen_py_leave(int core) {
	struct ug_pycore *c = ug_active(core);
	if (!c)
		return;
	PyThreadState *ts = c->ts;
	fields_save(ts, &c->core);
	fields_load(ts, &c->main);
	/* the GIL stays held: main releases it after the python plugin's resume hook */
	ugpy.main_took = 1;
}

void ugreen_py_enter(int core) {
	struct ug_pycore *c = ug_active(core);
	if (!c)
		return;
	PyThreadState *ts = c->ts;
	if (!ug_held_tstate())
		PyEval_RestoreThread(ts);
	ugpy.main_took = 0;
	fields_save(ts, &c->main);
	fields_load(ts, &c->core);
}

void ugreen_py_core_release(int core) {
	struct ug_pycore *c = ug_active(core);
	if (!c)
		return;
	if (!c->held)
		PyEval_SaveThread();
}

void ugreen_py_core_idle_release(int core) {
	if (!ugpy.on)
		return;
	struct ug_pycore *c = &ugpy.cores[core];
	if (c->active || !c->root)
		return;
	/* the chunk holds no live frame between requests */
	if (ugpy.arena.free)
		ugpy.arena.free(ugpy.arena.ctx, c->root, c->root->size);
	c->root = NULL;
}

#else /* !UGREEN_WITH_PYTHON */

#include <dlfcn.h>
#include <stdlib.h>

#include "ugreen_python.h"

void uwsgi_log(const char *, ...);

void ugreen_py_setup(int ncores) {
	(void) ncores;
	int (*initialized)(void) = (int (*)(void)) dlsym(RTLD_DEFAULT, "Py_IsInitialized");
	if (initialized && initialized()) {
		uwsgi_log("[ugreen] this plugin was built without Python support but the process runs CPython: Python green threads would deadlock on the GIL; rebuild the plugin with the Python headers available\n");
		exit(1);
	}
}

int ugreen_py_owns_frames(void) { return 0; }
void ugreen_py_main_take(void) {}
void ugreen_py_main_release(void) {}
void ugreen_py_request_begin(int core) { (void) core; }
void ugreen_py_request_end(int core) { (void) core; }
void ugreen_py_core_hold(int core) { (void) core; }
void ugreen_py_leave(int core) { (void) core; }
void ugreen_py_enter(int core) { (void) core; }
void ugreen_py_core_release(int core) { (void) core; }
void ugreen_py_core_idle_release(int core) { (void) core; }

#endif
