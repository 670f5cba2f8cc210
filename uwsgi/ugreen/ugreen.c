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
 * and raises an exception in the caller. A stack overflow in a core is reported
 * by libugreen's SIGSEGV handler, which names the core, then chains to uWSGI's
 * own handler.
 *
 * Installed wrong, the plugin says so at start-up instead of failing later (see
 * ug_on_load): loaded as a shared object into another uWSGI
 * version (or build) than the one it was built with, loaded after another plugin
 * named "ugreen" (uWSGI then drops it silently, and --ugreen runs the other one),
 * or enabled while another engine took over uWSGI's switch hooks (ug_init,
 * ug_check_in_use).
 */

#include <uwsgi.h>
#include <ugreen.h>
#include <time.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif
#include <pthread.h>
#include <semaphore.h>
#include <signal.h>

#include "ugreen_python.h"

extern struct uwsgi_server uwsgi;

#define UGREEN_DEFAULT_STACK_BYTES (256 * 1024)

struct ug_core {
	ugreen_context ctx;
	ugreen_stack *stack;
	int id;
	int busy;     /* a request runs (or is suspended) on the core */
	int finished; /* set by the core's body when its request is over */
	int dirty;    /* touched its stack since its memory was last given back */
	unsigned epoch; /* the sweep interval in which it was last released */
};

/* At most one sweep of idle cores' memory per this many seconds. */
#define UG_SWEEP_INTERVAL 1

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
	int busy;             /* cores with a request */
	int idle_dirty;       /* idle cores holding memory from an earlier request */
	int cold;             /* idle cores holding memory, not released in this interval */
	unsigned epoch;       /* the current sweep interval (see ug_request_over) */
	time_t last_sweep;    /* when it began */
	int sweep_off;        /* the system refused: no more sweeps */
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
	core->finished = 1;
}

/*
 * Memory after a burst. A core touches its stack (a few pages for a typical
 * request, up to the whole stack for a deep one) and, under CPython, its
 * data-stack chunk; both stay resident when the request is over, so after a
 * burst that used every core the worker would keep that memory for good.
 * Idle cores give it back ("release": their stack pages, one madvise each,
 * and their Python data-stack chunk), then the C heap's free pages that the
 * requests left are returned too (malloc_trim, glibc). When, at the end of a
 * request:
 *   - more cores are idle holding memory than busy, and UG_SWEEP_INTERVAL
 *     seconds passed since the last such sweep: every idle core is released
 *     and a new interval begins;
 *   - otherwise, cores not yet released in this interval ("cold") are idle
 *     holding memory, and either no core is busy or at least UG_COLD_BATCH of
 *     them outnumber the busy ones: those are released.
 * So a core is released at most twice per interval, and a steady load pays
 * about one madvise and a few page faults per core it keeps using per
 * interval; a burst's cores are released when it ends. Nothing happens on a
 * switch.
 */
#define UG_COLD_BATCH 64

static int ug_release(struct ug_core *core) {
	ugreen_result r = ugreen_stack_release_pages(core->stack, 0);
	if (r != UGREEN_RESULT_OK) {
		/* e.g. pages locked by mlockall: keep them, stop trying */
		uwsgi_log("[ugreen] core %d: unable to give its idle stack pages back (%s); idle cores keep their memory from now on\n",
			core->id, ugreen_result_str(r));
		ug.sweep_off = 1;
		return -1;
	}
	ugreen_py_core_idle_release(core->id);
	core->dirty = 0;
	core->epoch = ug.epoch;
	return 0;
}

/* Releases the idle cores holding memory: all of them, or the cold ones only. */
static void ug_sweep(int cold_only) {
	int i;
	for (i = 0; i < ug.ncores && !ug.sweep_off; i++) {
		struct ug_core *core = &ug.cores[i];
		if (core->busy || !core->dirty || (cold_only && core->epoch == ug.epoch))
			continue;
		if (ug_release(core))
			return;
		ug.idle_dirty--;
	}
	ug.cold = 0;
#ifdef __GLIBC__
	if (!ug.busy || !cold_only)
		malloc_trim(0);
#endif
}

/* In main, after the request on `core` ended. */
static void ug_request_over(struct ug_core *core) {
	core->finished = 0;
	core->busy = 0;
	ug.busy--;
	ug.idle_dirty++;
	if (core->epoch != ug.epoch)
		ug.cold++;
	if (ug.sweep_off || ug.idle_dirty <= ug.busy)
		return;
	struct timespec now;
	clock_gettime(CLOCK_MONOTONIC_COARSE, &now);
	if (now.tv_sec - ug.last_sweep >= UG_SWEEP_INTERVAL) {
		ug.epoch++;
		ug.last_sweep = now.tv_sec;
		ug_sweep(0);
	}
	else if (ug.cold && (!ug.busy || (ug.cold >= UG_COLD_BATCH && ug.cold > ug.busy))) {
		ug_sweep(1);
	}
}

/*
 * Lossless graceful stop of a worker.
 *
 * uWSGI's own SIGHUP handler (gracefully_kill) exits an async worker at once,
 * dropping every request in flight, and goodbye_cruel_world() (--max-requests,
 * --reload-on-rss/as) ends the async loop at its next turn, with the same effect.
 * In each worker the plugin replaces the SIGHUP handler and sets uWSGI's
 * goodbye-cruel-world hook (both from its hijack_worker hook, which uWSGI calls
 * after it installed its own handlers). A graceful stop then:
 *   1. takes the worker's listening sockets out of its event queue: new
 *      connections wait in the listen backlog for the next worker;
 *   2. lets every request of the worker finish (cores in use, including
 *      connections still sending their headers);
 *   3. ends the async loop (main context, right after the last request ended) and
 *      the worker exits; the master starts the next one.
 * An idle worker exits at once, as before. The master still kills a worker that is
 * not done after --worker-reload-mercy seconds (it logs "NO MERCY"); the plugin
 * logs how many requests that cuts. A brutal reload (SIGTERM) is unchanged.
 * A watcher thread (started with the worker, all signals blocked, asleep until a
 * stop begins: the signal handler only posts a semaphore) covers connections that
 * end without running in a core (closed while sending their headers): it wakes
 * the loop with SIGHUP once no core is in use, and logs the mercy expiry.
 */
static struct {
	volatile sig_atomic_t draining;
	volatile sig_atomic_t hup_seen;
	int watcher;              /* the watcher thread runs */
	sem_t wake;               /* posted when a stop begins */
} ugd;

/* cores holding a connection: taken from uWSGI's stack of unused cores */
static inline int ug_busy_cores(void) {
	return uwsgi.async - 1 - uwsgi.async_queue_unused_ptr;
}

/* the worker is done: leave the async loop (main context only) */
static void ug_drained(void) {
	uwsgi_log("[ugreen] worker %d (pid: %d): every request finished, the worker exits\n", uwsgi.mywid, uwsgi.mypid);
	if (uwsgi.workers[uwsgi.mywid].shutdown_sockets)
		uwsgi_shutdown_all_sockets();
	uwsgi.workers[uwsgi.mywid].manage_next_request = 0;
}

static void *ug_drain_watcher(void *arg) {
	(void) arg;
	while (sem_wait(&ugd.wake) != 0)
		;
	int mercy_logged = 0, after_end = 0;
	for (;;) {
		struct timespec ts = {0, 20 * 1000 * 1000};
		nanosleep(&ts, NULL);
		int busy = ug_busy_cores();
		if (!uwsgi.workers[uwsgi.mywid].manage_next_request) {
			/* the loop ends and the worker exits; a few more wake-ups (0.5 s) in
			   case the flag was cleared just before the loop blocked in its wait */
			if (++after_end > 25)
				break;
			pthread_kill(ug.worker_thread, SIGHUP);
			continue;
		}
		if (busy == 0) {
			/* wakes the loop (EINTR); the handler exits the idle worker */
			pthread_kill(ug.worker_thread, SIGHUP);
			continue;
		}
		time_t no_mercy_at = uwsgi.workers[uwsgi.mywid].no_mercy_at;
		if (!mercy_logged && no_mercy_at && uwsgi_now() >= no_mercy_at) {
			uwsgi_log("[ugreen] worker %d (pid: %d): --worker-reload-mercy (%d s) expired with %d request(s) still running: the master kills the worker, they are cut\n",
				uwsgi.mywid, uwsgi.mypid, uwsgi.worker_reload_mercy, busy);
			mercy_logged = 1;
		}
	}
	return NULL;
}

/* May run in a signal handler (on any stack) or in a core. */
static void ug_begin_drain(const char *why) {
	if (ugd.draining)
		return;
	ugd.draining = 1;
	uwsgi.workers[uwsgi.mywid].accepting = 0;
	uwsgi_del_sockets_from_queue(uwsgi.async_queue);
	int busy = ug_busy_cores();
	if (busy > 0) {
		uwsgi_log("[ugreen] worker %d (pid: %d): %s: accepting no new connections, finishing %d running request(s) first (--worker-reload-mercy %d s)\n",
			uwsgi.mywid, uwsgi.mypid, why, busy, uwsgi.worker_reload_mercy);
	}
	if (ugd.watcher)
		sem_post(&ugd.wake);
}

/* SIGHUP in a worker: graceful reload (master SIGHUP, --touch-reload, ...) */
static void ug_sighup(int signum) {
	(void) signum;
	/* the loop is ending already (the worker is on its way out) */
	if (!uwsgi.workers[uwsgi.mywid].manage_next_request)
		return;
	if (ugd.draining) {
		/* a stop in progress (the watcher's wake-up, or a second SIGHUP): once no
		   core is in use, end the loop, which this signal interrupted; the worker
		   then exits through uWSGI's own path. Never exit() here: the handler may
		   have interrupted the worker anywhere (inside malloc, say), and exit()
		   runs uWSGI's and Python's atexit code, which can deadlock there until
		   the master's --worker-reload-mercy kill. */
		if (ug_busy_cores() == 0) {
			if (uwsgi.workers[uwsgi.mywid].shutdown_sockets)
				uwsgi_shutdown_all_sockets();
			uwsgi.workers[uwsgi.mywid].manage_next_request = 0;
		}
		return;
	}
	if (!ugd.hup_seen) {
		ugd.hup_seen = 1;
		uwsgi_log("Gracefully killing worker %d (pid: %d)...\n", uwsgi.mywid, uwsgi.mypid);
	}
	ug_begin_drain("graceful reload");
	if (ug_busy_cores() == 0) {
		/* nothing in flight: what uWSGI does for an idle worker */
		if (uwsgi.workers[uwsgi.mywid].shutdown_sockets)
			uwsgi_shutdown_all_sockets();
		exit(UWSGI_RELOAD_CODE);
	}
}

/* goodbye_cruel_world(): --max-requests, --reload-on-rss/as; runs in a core */
static void ug_gbcw(void) {
	if (ugd.draining)
		return;
	uwsgi_log("...The work of process %d is done. Seeya!\n", getpid());
	ug_begin_drain("recycling");
}

/* In every worker, after uWSGI installed its signal handlers. */
static void ug_hijack_worker(void) {
	if (!ug.enabled)
		return;
	/* the watcher inherits a mask that blocks every signal */
	sigset_t all, old;
	sigfillset(&all);
	pthread_t watcher;
	pthread_attr_t attr;
	if (sem_init(&ugd.wake, 0, 0) == 0 && pthread_attr_init(&attr) == 0) {
		/* a small stack: it only polls and logs (--reload-on-as counts address space) */
		pthread_attr_setstacksize(&attr, 128 * 1024);
		pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
		pthread_sigmask(SIG_BLOCK, &all, &old);
		if (pthread_create(&watcher, &attr, ug_drain_watcher, NULL) == 0)
			ugd.watcher = 1;
		pthread_sigmask(SIG_SETMASK, &old, NULL);
		pthread_attr_destroy(&attr);
	}
	if (!ugd.watcher)
		uwsgi_log("[ugreen] unable to start the drain watcher thread: on a graceful stop, a connection closed while sending its headers may keep the worker until --worker-reload-mercy\n");
	uwsgi_unix_signal(SIGHUP, ug_sighup);
	if (!uwsgi.gbcw_hook)
		uwsgi.gbcw_hook = ug_gbcw;
	else
		uwsgi_log("[ugreen] another plugin handles goodbye_cruel_world(): --max-requests may drop running requests\n");
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
		if (core->dirty) {
			ug.idle_dirty--;
			if (core->epoch != ug.epoch)
				ug.cold--;
		}
		core->dirty = 1;
		core->busy = 1;
		ug.busy++;
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
	if (core->finished)
		ug_request_over(core);

	/* graceful stop: leave the loop as soon as the last request is over */
	if (ugd.draining && ug_busy_cores() == 0 && uwsgi.workers[uwsgi.mywid].manage_next_request)
		ug_drained();
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

/* uWSGI build options that change the layout of its structures */
static const char *const ug_layout_options[] = {
	"UWSGI_SSL", "UWSGI_PCRE", "UWSGI_PCRE2", "UWSGI_ROUTING", "UWSGI_CAP", "UWSGI_ZLIB",
	"UWSGI_YAML", "UWSGI_XML", "UWSGI_UUID", "UWSGI_JSON", "UWSGI_ZEROMQ", NULL
};

static int ug_built_with(const char *option) {
	static const char *const built[] = {
#ifdef UWSGI_SSL
		"UWSGI_SSL",
#endif
#ifdef UWSGI_PCRE
		"UWSGI_PCRE",
#endif
#ifdef UWSGI_PCRE2
		"UWSGI_PCRE2",
#endif
#ifdef UWSGI_ROUTING
		"UWSGI_ROUTING",
#endif
#ifdef UWSGI_CAP
		"UWSGI_CAP",
#endif
#ifdef UWSGI_ZLIB
		"UWSGI_ZLIB",
#endif
#ifdef UWSGI_YAML
		"UWSGI_YAML",
#endif
#ifdef UWSGI_XML
		"UWSGI_XML",
#endif
#ifdef UWSGI_UUID
		"UWSGI_UUID",
#endif
#ifdef UWSGI_JSON
		"UWSGI_JSON",
#endif
#ifdef UWSGI_ZEROMQ
		"UWSGI_ZEROMQ",
#endif
		NULL
	};
	int i;
	for (i = 0; built[i]; i++)
		if (!strcmp(built[i], option))
			return 1;
	return 0;
}

/* whether the -D flags of CFLAGS define OPTION (as a whole word) */
static int ug_cflags_define(const char *cflags, const char *option) {
	size_t n = strlen(option);
	const char *p = cflags;
	while ((p = strstr(p, "-D")) != NULL) {
		p += 2;
		if (!strncmp(p, option, n) && (p[n] == 0 || p[n] == ' ' || p[n] == '='))
			return 1;
	}
	return 0;
}

/* the value of -DUWSGI_VERSION="\"...\"" in CFLAGS, or NULL */
static char *ug_cflags_version(const char *cflags) {
	static const char key[] = "-DUWSGI_VERSION=\"\\\"";
	const char *p = strstr(cflags, key);
	if (!p)
		return NULL;
	p += sizeof(key) - 1;
	const char *end = strstr(p, "\\\"");
	if (!end)
		return NULL;
	return uwsgi_concat2n((char *) p, (int) (end - p), "", 0);
}

#pragma weak uwsgi_get_cflags

/* stops start-up: "[ugreen] PATH: WHY; FIX" */
static void ug_load_error(const char *path, const char *why, const char *fix) {
	uwsgi_log("[ugreen] %s: %s; %s\n", path, why, fix);
	exit(1);
}

/*
 * Runs when the plugin is loaded as a shared object (--plugin PATH), before uWSGI
 * registers it, so it relies on nothing but functions of the running uWSGI: its
 * structures may have another layout than the one this file was compiled with.
 */
__attribute__((constructor)) static void ug_on_load(void) {
	Dl_info self, core, other;
	char why[512];
	if (!dladdr((void *) ug_on_load, &self) || !dladdr((void *) &uwsgi, &core) || self.dli_fbase == core.dli_fbase)
		return; /* embedded in the uwsgi binary: built with it */
	const char *path = self.dli_fname ? self.dli_fname : "ugreen_plugin.so";
	static const char rebuild[] = "rebuild the plugin with the uwsgi binary that loads it: `uwsgi/build-plugin.sh UWSGI` in ugreen's checkout, or `UWSGI --build-plugin <the plugin's source directory>` (see uwsgi/README.md of ugreen)";
#ifdef UWSGI_VERSION
	const char *built = UWSGI_VERSION;
#else
	const char *built = "(unknown)";
#endif

	if (!uwsgi_get_cflags)
		ug_load_error(path, "this uWSGI does not report its version, so the plugin cannot check that it was built for it", rebuild);
	char *cflags = uwsgi_get_cflags();
	char *running = ug_cflags_version(cflags);
	if (!running || strcmp(running, built)) {
		snprintf(why, sizeof(why), "built for uWSGI %s but loaded into uWSGI %s, whose structures differ",
			built, running ? running : "(unknown version)");
		ug_load_error(path, why, rebuild);
	}
	int i;
	for (i = 0; ug_layout_options[i]; i++) {
		const char *opt = ug_layout_options[i];
		if (ug_built_with(opt) != ug_cflags_define(cflags, opt)) {
			snprintf(why, sizeof(why), "built for a uWSGI %s %s %s, this one is built %s it, and its structures differ",
				built, ug_built_with(opt) ? "with" : "without", opt, ug_built_with(opt) ? "without" : "with");
			ug_load_error(path, why, rebuild);
		}
	}
	free(running);
	free(cflags);

	/* uWSGI silently drops a plugin whose name is already registered */
	if (uwsgi_plugin_get("ugreen")) {
		void *sym = dlsym(RTLD_DEFAULT, "ugreen_plugin");
		int found = sym && dladdr(sym, &other);
		if (found && other.dli_fbase == core.dli_fbase) {
			snprintf(why, sizeof(why), "this uwsgi binary (%s) has a ugreen plugin built in (`pip install uwsgi` builds in uWSGI's own), so uWSGI would ignore this plugin and --ugreen would run the built-in one",
				core.dli_fname ? core.dli_fname : "uwsgi");
			ug_load_error(path, why, "use a uwsgi built without it: `uwsgi/pip-install.sh VENV` for a virtualenv, or uwsgi/build.sh (see uwsgi/README.md of ugreen)");
		}
		snprintf(why, sizeof(why), "another plugin named ugreen is already loaded (%s), so uWSGI would ignore this plugin and --ugreen would run the other one",
			found && other.dli_fname ? other.dli_fname : "uWSGI's own ugreen");
		ug_load_error(path, why, "load only this one: remove `ugreen` from --plugin / plugins = (Debian ships uWSGI's own as /usr/lib/uwsgi/plugins/ugreen_plugin.so), or give this plugin's path before it");
	}
}

/* Stops start-up when --ugreen is set but another engine's hook HOOK is installed. */
static void ug_check_engine(void *hook) {
	Dl_info other;
	const char *who = "another plugin";
	if (!hook)
		return;
	if (dladdr(hook, &other) && other.dli_fname)
		who = other.dli_fname;
	uwsgi_log("[ugreen] --ugreen is set but another async engine (from %s) installed its switch hooks, so uGreen would not be the engine in use: enable one engine only (remove --ugreen or the other engine's option)\n", who);
	exit(1);
}

/* After the apps are loaded (other engines install their hooks in init or
   init_apps): in the master, or in each worker with --lazy-apps, right before
   its request loop (hijack_worker only checks, the worker then runs its loop as
   usual). The engine in use must be this one. */
static void ug_check_in_use(void) {
	if (!ug.enabled)
		return;
	if (uwsgi.schedule_to_req != ug_schedule_to_req)
		ug_check_engine((void *) uwsgi.schedule_to_req);
	if (uwsgi.schedule_to_main != ug_schedule_to_main)
		ug_check_engine((void *) uwsgi.schedule_to_main);
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
	/* an engine whose init ran before this one */
	if (uwsgi.schedule_to_req)
		ug_check_engine((void *) uwsgi.schedule_to_req);
	if (ug.stack_pages < 0) {
		uwsgi_log("[ugreen] invalid --ugreen-stacksize %d (pages)\n", ug.stack_pages);
		exit(1);
	}

	size_t pages = ug.stack_pages > 0 ? (size_t) ug.stack_pages : ((size_t) UGREEN_DEFAULT_STACK_BYTES + (size_t) uwsgi.page_size - 1) / (size_t) uwsgi.page_size;

	ug.ncores = uwsgi.async;
	ug.epoch = 1; /* cores start out never released: cold */
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
	ugreen_py_worker_init(ug.ncores, uwsgi.has_threads);
	/* the per-core Python state replaces the python plugin's suspend/resume hooks */
	ug.python_hooks_replaced = ugreen_py_owns_frames() ? uwsgi_plugin_get("python") : NULL;
}

struct uwsgi_plugin ugreen_plugin = {
	.name = "ugreen",
	.init = ug_init,
	.post_fork = ug_post_fork,
	.postinit_apps = ug_check_in_use,
	.hijack_worker = ug_check_in_use,
	.options = ugreen_options,
	.hijack_worker = ug_hijack_worker,
};
