/*
 * CPython on uGreen.
 *
 * All green threads of a worker run on one OS thread and one PyThreadState. Three
 * things break Python there unless the switch code takes care of them:
 *
 * 1. The GIL. uWSGI enables threads, so a core that suspends from Python code
 *    holds the GIL; the next core to enter Python would block on it forever. A
 *    core therefore holds the GIL across the switch and releases it for the code
 *    between switches (main takes it before switching to a core, and releases it
 *    once a core has switched back). uWSGI before 2.0.27 without --enable-threads
 *    is different: its python plugin never releases or takes the GIL (the
 *    worker's thread holds it all the time), so neither does this code.
 *
 * 2. Thread-state fields that CPython treats as a strict stack but that green
 *    threads would interleave. Each core keeps its own copy, grouped by what they
 *    are (one type each, with one save and one restore, so a new CPython version
 *    changes one type):
 *      - ug_py_frames: the current frame (cframe before 3.13, current_frame) and
 *        the recursion budgets (Python depth; C depth on 3.12 and 3.13; on 3.14+
 *        the JIT's current executor);
 *      - ug_py_datastack: the frame data stack (datastack_chunk/top/limit): frames
 *        of a suspended core would be overwritten by the next core's frames;
 *      - ug_py_exc: the exception-info chain (exc_info): generators link their
 *        exception state into it and unlink it on exit, out of order across cores;
 *      - ug_py_context: the contextvars context (context; context_ver is bumped on
 *        every switch to invalidate the lookup caches): decimal.localcontext()
 *        and ContextVar values would leak between concurrent requests;
 *      - ug_py_trash: the trashcan of deferred deallocations (the nesting
 *        counter before 3.14, and the delete_later chain): a core that suspends
 *        inside a deep deallocation must not hand its half-built chain to another
 *        core.
 *    This state starts fresh for every request (the core's green thread is re-made
 *    per request, so nothing survives from the previous one): an empty data stack
 *    (the core's root chunk is kept and reused), an empty exception chain, an
 *    empty contextvars context and trashcan, main's outermost frame and budget.
 *    The frame pointer and the recursion counters are exactly what the python
 *    plugin's own suspend/resume hooks save and restore: the switch code skips
 *    those hooks (each costs a PyGILState_Ensure/Release pair).
 *
 *    threading.local (ug_py_locals) is per request as well, see below.
 *
 * 3. The C stack (CPython >= 3.14). CPython detects deep recursion by comparing
 *    the stack pointer with the limits of the thread's stack. A core's stack lies
 *    outside those limits, where CPython assumes a foreign stack and checks
 *    nothing: a deep recursion would overflow the core's stack and kill the
 *    worker. While a core runs, the thread state's stack protection is therefore
 *    set to the core's stack (PyUnstable_ThreadState_SetStackProtection), and
 *    reset to the thread's own stack before the core switches back
 *    (PyUnstable_ThreadState_ResetStackProtection): a request that recurses
 *    deeply gets a RecursionError, and the worker lives on.
 *
 * Not kept per core, and why: recursion_headroom (only non-zero while CPython
 * formats a RecursionError, never across a switch); tracing/profiling state
 * (shared by the thread, as the python plugin's hooks do); 3.15's
 * last_profiled_frame (a cache of the remote sampling profiler, which re-walks
 * the stack when it does not match); datastack_cached_chunk (3.14+: a free chunk
 * any core may take).
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

#ifdef Py_GIL_DISABLED
#error "ugreen plugin: free-threaded CPython builds (python3.Xt, --disable-gil) are not handled: all green threads of a worker share one thread state, which needs the GIL; build the plugin against a CPython with the GIL, or without Python support (UGREEN_PYTHON=0)"
#endif
#if PY_VERSION_HEX < 0x030B0000
#error "ugreen plugin: CPython < 3.11 is not handled (its frame and exception state differ); build the plugin without Python support (UGREEN_PYTHON=0)"
#elif PY_VERSION_HEX >= 0x03100000
#error "ugreen plugin: CPython >= 3.16 is not handled yet: check the thread-state fields kept per core (the ug_py_* types of ugreen_python.c) against this version's cpython/pystate.h"
#endif

#define UG_PY312 (PY_VERSION_HEX >= 0x030C0000)
#define UG_PY313 (PY_VERSION_HEX >= 0x030D0000)
#define UG_PY314 (PY_VERSION_HEX >= 0x030E0000)

#include <stdint.h>
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
#pragma weak PyGILState_Ensure
#pragma weak PyGILState_Release
#pragma weak PyErr_SetString
#pragma weak PyErr_Clear
#pragma weak PyExc_RuntimeError
#pragma weak PyThread_get_thread_ident
#pragma weak PyObject_GetArenaAllocator
#pragma weak PyThreadState_New
#pragma weak _Py_Dealloc
#if UG_PY313
#pragma weak PyThreadState_GetUnchecked
#define ug_current_tstate() PyThreadState_GetUnchecked()
#else
#pragma weak _PyThreadState_UncheckedGet
#define ug_current_tstate() _PyThreadState_UncheckedGet()
#endif
#if UG_PY314
#pragma weak PyUnstable_ThreadState_SetStackProtection
#pragma weak PyUnstable_ThreadState_ResetStackProtection
#endif

/* ---- the per-core interpreter state, one type per concern ---------------- */

/* The current frame and the recursion budgets. The Python depth is kept as a
   depth (limit - remaining), as greenlet does, so sys.setrecursionlimit() applies
   to suspended cores too. */
struct ug_py_frames {
#if UG_PY313
	struct _PyInterpreterFrame *frame;
#else
	_PyCFrame *frame;
#endif
	int py_depth;
#if UG_PY314
	PyObject *executor;
#elif UG_PY312
	int c_remaining;
#endif
};

#if UG_PY313
#define UG_FRAME(ts) ((ts)->current_frame)
#else
#define UG_FRAME(ts) ((ts)->cframe)
#endif
#if UG_PY312
#define UG_PY_REMAINING(ts) ((ts)->py_recursion_remaining)
#define UG_PY_LIMIT(ts) ((ts)->py_recursion_limit)
#else
#define UG_PY_REMAINING(ts) ((ts)->recursion_remaining)
#define UG_PY_LIMIT(ts) ((ts)->recursion_limit)
#endif

static inline void ug_py_frames_save(const PyThreadState *ts, struct ug_py_frames *s) {
	s->frame = UG_FRAME(ts);
	s->py_depth = UG_PY_LIMIT(ts) - UG_PY_REMAINING(ts);
#if UG_PY314
	s->executor = ts->current_executor;
#elif UG_PY312
	s->c_remaining = ts->c_recursion_remaining;
#endif
}

static inline void ug_py_frames_restore(PyThreadState *ts, const struct ug_py_frames *s) {
	UG_FRAME(ts) = s->frame;
	UG_PY_REMAINING(ts) = UG_PY_LIMIT(ts) - s->py_depth;
#if UG_PY314
	ts->current_executor = s->executor;
#elif UG_PY312
	ts->c_recursion_remaining = s->c_remaining;
#endif
}

/* The frame data stack. */
struct ug_py_datastack {
	_PyStackChunk *chunk;
	PyObject **top;
	PyObject **limit;
};

static inline void ug_py_datastack_save(const PyThreadState *ts, struct ug_py_datastack *s) {
	s->chunk = ts->datastack_chunk;
	s->top = ts->datastack_top;
	s->limit = ts->datastack_limit;
}

static inline void ug_py_datastack_restore(PyThreadState *ts, const struct ug_py_datastack *s) {
	ts->datastack_chunk = s->chunk;
	ts->datastack_top = s->top;
	ts->datastack_limit = s->limit;
}

/* An empty data stack on the root chunk (CPython never pops data[0] of a root
   chunk), or none yet: CPython then allocates the root chunk at the first push. */
static inline void ug_py_datastack_fresh(struct ug_py_datastack *s, _PyStackChunk *root) {
	s->chunk = root;
	s->top = root ? &root->data[1] : NULL;
	s->limit = root ? (PyObject **) ((char *) root + root->size) : NULL;
}

/* The exception-info chain. */
struct ug_py_exc {
	_PyErr_StackItem *exc_info;
};

static inline void ug_py_exc_save(const PyThreadState *ts, struct ug_py_exc *s) {
	s->exc_info = ts->exc_info;
}

static inline void ug_py_exc_restore(PyThreadState *ts, const struct ug_py_exc *s) {
	ts->exc_info = s->exc_info;
}

/* The contextvars context. NULL: CPython creates an empty one at first use (as
   for a new thread or greenlet). */
struct ug_py_context {
	PyObject *context;
};

static inline void ug_py_context_save(const PyThreadState *ts, struct ug_py_context *s) {
	s->context = ts->context;
}

static inline void ug_py_context_restore(PyThreadState *ts, const struct ug_py_context *s) {
	ts->context = s->context;
	/* contextvars cache their lookups per (context, version) */
	ts->context_ver++;
}

/* The trashcan of deferred deallocations. The chain holds objects whose refcount
   already reached 0 (no reference is owned here). */
struct ug_py_trash {
#if !UG_PY313
	int nesting;
#endif
	PyObject *delete_later;
};

static inline void ug_py_trash_save(const PyThreadState *ts, struct ug_py_trash *s) {
#if UG_PY313
	s->delete_later = ts->delete_later;
#elif UG_PY312
	s->nesting = ts->trash.delete_nesting;
	s->delete_later = ts->trash.delete_later;
#else
	s->nesting = ts->trash_delete_nesting;
	s->delete_later = ts->trash_delete_later;
#endif
}

static inline void ug_py_trash_restore(PyThreadState *ts, const struct ug_py_trash *s) {
#if UG_PY313
	ts->delete_later = s->delete_later;
#elif UG_PY312
	ts->trash.delete_nesting = s->nesting;
	ts->trash.delete_later = s->delete_later;
#else
	ts->trash_delete_nesting = s->nesting;
	ts->trash_delete_later = s->delete_later;
#endif
}

/* Everything above: what a green thread owns of the thread state. */
struct ug_py_state {
	struct ug_py_frames frames;
	struct ug_py_datastack datastack;
	struct ug_py_exc exc;
	struct ug_py_context context;
	struct ug_py_trash trash;
};

static inline void ug_py_state_save(const PyThreadState *ts, struct ug_py_state *s) {
	ug_py_frames_save(ts, &s->frames);
	ug_py_datastack_save(ts, &s->datastack);
	ug_py_exc_save(ts, &s->exc);
	ug_py_context_save(ts, &s->context);
	ug_py_trash_save(ts, &s->trash);
}

static inline void ug_py_state_restore(PyThreadState *ts, const struct ug_py_state *s) {
	ug_py_frames_restore(ts, &s->frames);
	ug_py_datastack_restore(ts, &s->datastack);
	ug_py_exc_restore(ts, &s->exc);
	ug_py_context_restore(ts, &s->context);
	ug_py_trash_restore(ts, &s->trash);
}

/*
 * threading.local. CPython's _thread._local keys a thread's data on fields of
 * the thread state:
 *   3.11, 3.12: tstate->dict holds, under a "_thread._local.<address>" key, one
 *               small object per local whose dict is the thread's data; a dying
 *               local deletes its key from the dict of every thread state of the
 *               interpreter;
 *   3.13+:      tstate->threading_local_key (the key of the thread's data in every
 *               local) and tstate->threading_local_sentinel (its death removes
 *               that data from every local).
 * tstate->dict is also what C code gets from PyThreadState_GetDict(). All are
 * created lazily at first use. They are not copied into a struct like the state
 * above: each core owns a "shadow" thread state (created at its first request,
 * never run) that holds the fields of whichever side is switched out (main's while
 * the core runs, the core's while it is suspended), so every such dict stays
 * reachable from a thread state of the interpreter (on 3.11/3.12 an address reused
 * by a new local must not find a dead local's data in a suspended request's dict).
 * A switch exchanges the fields of the running thread state and the shadow. A
 * request starts with none; its own are released when it ends.
 */
struct ug_py_locals {
	PyThreadState *shadow;
};

static inline void ug_py_locals_init(PyThreadState *ts, struct ug_py_locals *s, int core) {
	if (s->shadow)
		return;
	s->shadow = PyThreadState_New(ts->interp);
	if (!s->shadow) {
		uwsgi_log("[ugreen] core %d: unable to create the thread state that keeps its threading.local data\n", core);
		exit(1);
	}
	/* run by no thread: keep it out of PyThreadState_SetAsyncExc() and of the
	   tables keyed by thread id (sys._current_frames()) */
	s->shadow->thread_id = 0;
	s->shadow->native_thread_id = 0;
}

static inline void ug_py_locals_swap(PyThreadState *ts, const struct ug_py_locals *s) {
	PyThreadState *sh = s->shadow;
	PyObject *t = ts->dict;
	ts->dict = sh->dict;
	sh->dict = t;
#if UG_PY313
	t = ts->threading_local_key;
	ts->threading_local_key = sh->threading_local_key;
	sh->threading_local_key = t;
	t = ts->threading_local_sentinel;
	ts->threading_local_sentinel = sh->threading_local_sentinel;
	sh->threading_local_sentinel = t;
#endif
}

/* Releases what the shadow holds (a finished request's data), in the order of
   PyThreadState_Clear(); finalizers and weakref callbacks may run Python code. */
static inline void ug_py_locals_release(const struct ug_py_locals *s) {
	PyThreadState *sh = s->shadow;
#if UG_PY313
	Py_CLEAR(sh->threading_local_key);
	Py_CLEAR(sh->threading_local_sentinel);
#endif
	Py_CLEAR(sh->dict);
}

/* The C stack CPython checks its depth against (3.14+). It is not saved from the
   thread state: a core's is its own stack, main's is the thread's. It changes
   only where the stack pointer changes: right after a switch to a core, right
   before a switch to main (no Python code may run on a core's stack once main's
   is installed). */
struct ug_py_cstack {
	void *lo;
	size_t size;
};

static inline void ug_py_cstack_enter_core(PyThreadState *ts, const struct ug_py_cstack *s) {
#if UG_PY314
	if (PyUnstable_ThreadState_SetStackProtection(ts, s->lo, s->size) < 0) {
		PyErr_Clear();
		uwsgi_log("[ugreen] CPython refuses a core stack of %lu bytes as too small: raise --ugreen-stacksize\n", (unsigned long) s->size);
		exit(1);
	}
#else
	(void) ts;
	(void) s;
#endif
}

static inline void ug_py_cstack_enter_main(PyThreadState *ts) {
#if UG_PY314
	PyUnstable_ThreadState_ResetStackProtection(ts);
#else
	(void) ts;
#endif
}

/* ---- cores and the GIL ---------------------------------------------------- */

struct ug_pycore {
	PyThreadState *ts;        /* the thread state the state below belongs to */
	int active;               /* a request with per-core state runs on this core */
	int held;                 /* the core held the GIL when it switched to main */
	struct ug_py_state core;  /* the core's state while it is switched out */
	struct ug_py_state main;  /* main's state while the core runs */
	struct ug_py_cstack cstack; /* the core's stack */
	struct ug_py_locals locals; /* the switched-out side's threading.local data */
	_PyErr_StackItem exc_bottom; /* bottom of the core's exception chain */
	_PyStackChunk *root;      /* the core's root data-stack chunk, kept between requests */
};

static struct {
	int on;
	int gil_fixed;            /* the worker's thread holds the GIL all the time */
	int main_took;            /* main took the GIL for a switch and must release it */
	PyThreadState *main_ts;   /* the worker's main-interpreter thread state */
	int ncores;
	struct ug_pycore *cores;
	PyObjectArenaAllocator arena;
} ugpy;

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

void ugreen_py_worker_init(int ncores, int has_threads) {
	if (ugpy.on || !Py_IsInitialized || !Py_IsInitialized())
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
	ugpy.gil_fixed = !has_threads;
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

int ugreen_py_raise_in_caller(const char *message) {
	if (!Py_IsInitialized || !Py_IsInitialized())
		return 0;
	PyGILState_STATE g = PyGILState_Ensure();
	PyErr_SetString(PyExc_RuntimeError, message);
	PyGILState_Release(g);
	return 1;
}

void ugreen_py_request_begin(int core, void *stack_lo, size_t stack_size) {
	if (!ugpy.on)
		return;
	struct ug_pycore *c = &ugpy.cores[core];
	c->ts = ugpy.main_ts;
	ug_gil_take(c, core);
	PyThreadState *ts = c->ts;

	ug_py_state_save(ts, &c->main);

	struct ug_py_state fresh;
	/* the request starts from main's (outermost) frame and recursion budget */
	fresh.frames = c->main.frames;
	ug_py_datastack_fresh(&fresh.datastack, c->root);
	c->exc_bottom.exc_value = NULL;
	c->exc_bottom.previous_item = NULL;
	fresh.exc.exc_info = &c->exc_bottom;
	/* nothing set by another request or by the worker leaks in */
	fresh.context.context = NULL;
	memset(&fresh.trash, 0, sizeof(fresh.trash));
	ug_py_state_restore(ts, &fresh);
	/* no threading.local data (the shadow holds none): main's go to the shadow */
	ug_py_locals_init(ts, &c->locals, core);
	ug_py_locals_swap(ts, &c->locals);

	c->cstack.lo = stack_lo;
	c->cstack.size = stack_size;
	ug_py_cstack_enter_core(ts, &c->cstack);
	c->active = 1;

	/* the request handler takes the GIL itself (unless it is held all the time) */
	ugpy.main_took = 0;
	if (!ugpy.gil_fixed)
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

	ug_py_state_restore(ts, &c->main);
	ug_py_locals_swap(ts, &c->locals);
	c->active = 0;

	/* released with main's state installed (finalizers may run Python code), and
	   still on the core's stack with its stack protection */
	Py_XDECREF(exc);
	Py_XDECREF(ctx);
	ug_py_locals_release(&c->locals);
	ug_py_cstack_enter_main(ts);
	/* the GIL stays held: main releases it after the switch */
	ugpy.main_took = 1;
}

void ugreen_py_before_switch(enum ugreen_py_dir dir, int core) {
	if (!ugpy.on)
		return;
	if (dir == UGREEN_PY_TO_CORE) {
		/* in main: hold the GIL across the switch */
		if (ug_held_tstate()) {
			/* main never runs Python code itself: keep what it holds */
			ugpy.main_took = 0;
			return;
		}
		PyEval_RestoreThread(ugpy.main_ts);
		ugpy.main_took = 1;
		return;
	}
	/* on the core: hold the GIL, swap the core's state for main's */
	struct ug_pycore *c = ug_active(core);
	if (!c)
		return;
	c->held = !ug_gil_take(c, core);
	PyThreadState *ts = c->ts;
	ug_py_state_save(ts, &c->core);
	ug_py_state_restore(ts, &c->main);
	ug_py_locals_swap(ts, &c->locals);
	ug_py_cstack_enter_main(ts);
	/* the GIL stays held: main releases it after the switch */
	ugpy.main_took = 1;
}

void ugreen_py_after_switch(enum ugreen_py_dir dir, int core) {
	if (!ugpy.on)
		return;
	if (dir == UGREEN_PY_TO_MAIN) {
		/* in main: release the GIL held across the switch */
		if (!ugpy.main_took)
			return;
		ugpy.main_took = 0;
		if (!ugpy.gil_fixed)
			PyEval_SaveThread();
		return;
	}
	/* on the core: swap main's state for the core's; give the GIL back unless the
	   core held it when it left */
	struct ug_pycore *c = ug_active(core);
	if (!c)
		return;
	PyThreadState *ts = c->ts;
	if (!ug_held_tstate())
		PyEval_RestoreThread(ts);
	ugpy.main_took = 0;
	ug_py_cstack_enter_core(ts, &c->cstack);
	ug_py_state_save(ts, &c->main);
	ug_py_state_restore(ts, &c->core);
	ug_py_locals_swap(ts, &c->locals);
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

void ugreen_py_worker_init(int ncores, int has_threads) {
	(void) ncores;
	(void) has_threads;
	int (*initialized)(void) = (int (*)(void)) dlsym(RTLD_DEFAULT, "Py_IsInitialized");
	if (initialized && initialized()) {
		uwsgi_log("[ugreen] this plugin was built without Python support but the process runs CPython: Python green threads would deadlock on the GIL; rebuild the plugin with the Python headers available\n");
		exit(1);
	}
}

int ugreen_py_owns_frames(void) { return 0; }
int ugreen_py_raise_in_caller(const char *message) { (void) message; return 0; }
void ugreen_py_before_switch(enum ugreen_py_dir dir, int core) { (void) dir; (void) core; }
void ugreen_py_after_switch(enum ugreen_py_dir dir, int core) { (void) dir; (void) core; }
void ugreen_py_request_begin(int core, void *stack_lo, size_t stack_size) { (void) core; (void) stack_lo; (void) stack_size; }
void ugreen_py_request_end(int core) { (void) core; }
void ugreen_py_core_idle_release(int core) { (void) core; }

#endif
