/*
 * uGreen on libugreen: uWSGI green threads switched by ugreen's assembly routines.
 *
 * A drop-in replacement of uWSGI's own "ugreen" plugin: same plugin name, same
 * options (--ugreen, --ugreen-stacksize in pages, 256 KiB stacks by default).
 *
 * Every async core owns one guarded, non-executable ugreen stack, allocated once at
 * start-up and reused by every request the core serves. Switches only ever go
 * main -> core (uwsgi.schedule_to_req) and core -> main (uwsgi.schedule_to_main);
 * when a core's request is over its body returns and control lands back in main
 * through the context link. Unlike swapcontext(), no signal-mask syscall is made on
 * a switch: uWSGI never changes the mask inside a green thread.
 *
 * Python: see ugreen_python.c (GIL held across a switch, per-core interpreter
 * state), set up once per worker by the post_fork hook. uwsgi.suspend() from
 * anywhere but a core's green thread (an app thread, or main) switches nothing
 * and raises an exception in the caller. A stack overflow in a core is reported by libugreen's SIGSEGV handler,
 * which names the core, then chains to uWSGI's own handler.
 */

#include <uwsgi.h>
#include <ugreen.h>
#include <pthread.h>

#include "ugreen_python.h"

extern struct uwsgi_server uwsgi;

#define UGREEN_DEFAULT_STACK_BYTES (256 * 1024)

struct ug_core {
	ugreen_context ctx;
	ugreen_stack *stack;
	int id;
};

static struct {
	int enabled;
	int stack_pages;
	size_t stack_bytes;
	int ncores;
	struct ug_core *cores;
	ugreen_context main_ctx;
	/* the core whose green thread runs, NULL while main runs */
	struct ug_core *running;
	/* the thread that runs the worker's cores */
	pthread_t worker_thread;
	/* the python request plugin, when the per-core Python state replaces its
	   suspend/resume hooks (see ugreen_python.c) */
	struct uwsgi_plugin *python_hooks_replaced;
} ug;

/* The request plugin's suspend/resume hooks to call around a switch, or NULL
   when the per-core Python state already covers what they do. */
static inline struct uwsgi_plugin *ug_hooks(struct uwsgi_plugin *rp) {
	return rp == ug.python_hooks_replaced ? NULL : rp;
}

static struct uwsgi_option ugreen_options[] = {
	{"ugreen", no_argument, 0, "enable ugreen coroutine subsystem", uwsgi_opt_true, &ug.enabled, 0},
	{"ugreen-stacksize", required_argument, 0, "set ugreen stack size in pages", uwsgi_opt_set_int, &ug.stack_pages, 0},
	{0, 0, 0, 0, 0, 0, 0}
};

/* The body of a core's green thread: serves one request, then returns to main
   through the context link. */
static void ug_core_body(void *arg) {
	struct ug_core *core = (struct ug_core *) arg;
	/* the stack's top is page aligned (a guard page lies above it) and this frame
	   sits in its highest page */
	char here;
	uintptr_t top = ((uintptr_t) &here + (uintptr_t) uwsgi.page_size - 1) & ~((uintptr_t) uwsgi.page_size - 1);
	ugreen_py_request_begin(core->id, (void *) (top - ug.stack_bytes), ug.stack_bytes);
	async_schedule_to_req_green();
	ugreen_py_request_end(core->id);
}

static void ug_fatal(const char *what, ugreen_result r) {
	uwsgi_log("[ugreen] %s: %s\n", what, ugreen_result_str(r));
	exit(1);
}

/* main -> core */
static void ug_schedule_to_req(void) {
	struct wsgi_request *wsgi_req = uwsgi.wsgi_req;
	struct ug_core *core = &ug.cores[wsgi_req->async_id];
	struct uwsgi_plugin *rp = ug_hooks(uwsgi.p[wsgi_req->uh->modifier1]);

	/* a new request on this core: prepare its green thread on the core's stack */
	if (!wsgi_req->suspended) {
		ugreen_result r = ugreen_context_make(&core->ctx, core->stack, ug_core_body, core, &ug.main_ctx);
		if (r != UGREEN_RESULT_OK) {
			uwsgi_log("[ugreen] core %d: ", core->id);
			ug_fatal("unable to prepare the green thread", r);
		}
		wsgi_req->suspended = 1;
	}

	if (rp && rp->suspend)
		rp->suspend(NULL);
	ugreen_py_before_switch(UGREEN_PY_TO_CORE, core->id);
	ug.running = core;

	ugreen_context_swap(&ug.main_ctx, &core->ctx);

	ug.running = NULL;
	ugreen_py_after_switch(UGREEN_PY_TO_MAIN, core->id);
	if (rp && rp->resume)
		rp->resume(NULL);
}

/* uwsgi.suspend() where no core can switch */
static void ug_refuse_suspend(void) {
	static const char msg[] = "uwsgi.suspend() called outside a request's uGreen green thread (from an app thread, or outside a request): "
		"nothing was suspended; only the thread that runs the request can suspend it";
	static int logged;
	if (!logged) {
		logged = 1;
		uwsgi_log("[ugreen] %s (logged once per worker; the caller gets an exception)\n", msg);
	}
	ugreen_py_raise_in_caller(msg);
}

/* core -> main */
static void ug_schedule_to_main(struct wsgi_request *wsgi_req) {
	if (!ug.running || !pthread_equal(pthread_self(), ug.worker_thread)) {
		ug_refuse_suspend();
		return;
	}
	struct ug_core *core = ug.running;
	struct uwsgi_plugin *rp = ug_hooks(uwsgi.p[wsgi_req->uh->modifier1]);

	if (rp && rp->suspend)
		rp->suspend(wsgi_req);
	ugreen_py_before_switch(UGREEN_PY_TO_MAIN, core->id);

	ugreen_context_swap(&core->ctx, &ug.main_ctx);

	ugreen_py_after_switch(UGREEN_PY_TO_CORE, core->id);
	if (rp && rp->resume)
		rp->resume(wsgi_req);

	uwsgi.wsgi_req = wsgi_req;
}

static int ug_init(void) {
	int i;
	ugreen_result r;

	if (!ug.enabled)
		return 0;

	if (uwsgi.async < 2) {
		uwsgi_log("[ugreen] --ugreen needs async cores: add --async N with N >= 2 (one green thread per core)\n");
		exit(1);
	}
	if (uwsgi.threads > 1) {
		uwsgi_log("[ugreen] --ugreen cannot be combined with --threads %d: green threads run on the worker's main thread only\n", uwsgi.threads);
		exit(1);
	}
	if (ug.stack_pages < 0) {
		uwsgi_log("[ugreen] invalid --ugreen-stacksize %d (pages)\n", ug.stack_pages);
		exit(1);
	}

	size_t pages = ug.stack_pages > 0 ? (size_t) ug.stack_pages : ((size_t) UGREEN_DEFAULT_STACK_BYTES + (size_t) uwsgi.page_size - 1) / (size_t) uwsgi.page_size;

	ug.ncores = uwsgi.async;
	ug.cores = uwsgi_calloc(sizeof(struct ug_core) * ug.ncores);
	for (i = 0; i < ug.ncores; i++) {
		char label[64];
		struct ug_core *core = &ug.cores[i];
		core->id = i;
		r = ugreen_stack_new(pages, &core->stack);
		if (r != UGREEN_RESULT_OK) {
			uwsgi_log("[ugreen] unable to allocate the stack of core %d (%lu pages of %d bytes, --ugreen-stacksize): %s\n",
				i, (unsigned long) pages, uwsgi.page_size, ugreen_result_str(r));
			exit(1);
		}
		snprintf(label, sizeof(label), "core %d", i);
		r = ugreen_stack_set_label(core->stack, label);
		if (r != UGREEN_RESULT_OK)
			ug_fatal("unable to label a stack", r);
	}
	ug.stack_bytes = ugreen_stack_size(ug.cores[0].stack);

	/* uWSGI installed its SIGSEGV handler in uwsgi_setup(): the overflow handler
	   reports an overflow of a core's stack, then chains to it */
	char advice[160];
	snprintf(advice, sizeof(advice), "raise --ugreen-stacksize (in pages of %d bytes, now %lu) and restart uWSGI",
		uwsgi.page_size, (unsigned long) pages);
	r = ugreen_overflow_set_advice(advice);
	if (r != UGREEN_RESULT_OK)
		ug_fatal("unable to set the stack overflow advice", r);
	r = ugreen_overflow_handler_install();
	if (r != UGREEN_RESULT_OK)
		ug_fatal("unable to install the stack overflow handler", r);

	uwsgi_log("initializing %d uGreen threads with stack size of %lu (%lu KB) [libugreen, %s backend]\n",
		ug.ncores, (unsigned long) ug.stack_bytes, (unsigned long) ug.stack_bytes / 1024, ugreen_backend());

	uwsgi.schedule_to_main = ug_schedule_to_main;
	uwsgi.schedule_to_req = ug_schedule_to_req;
	ug.worker_thread = pthread_self();
	return 0;
}

/* Once per worker, before its first request: the Python setup. */
static void ug_post_fork(void) {
	if (!ug.enabled)
		return;
	ug.worker_thread = pthread_self();
	ugreen_py_worker_init(ug.ncores);
	/* the per-core Python state replaces the python plugin's suspend/resume hooks */
	ug.python_hooks_replaced = ugreen_py_owns_frames() ? uwsgi_plugin_get("python") : NULL;
}

struct uwsgi_plugin ugreen_plugin = {
	.name = "ugreen",
	.init = ug_init,
	.post_fork = ug_post_fork,
	.options = ugreen_options,
};
