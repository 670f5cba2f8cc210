"""threading.local per request on uGreen.

GET /?tag=N checks, across uwsgi.suspend() calls interleaved with other requests:
  - a module-level threading.local() (given a value at import) and a subclass with
    __init__ defaults start fresh in every request: no value of the worker's, of a
    concurrent request or of the previous request on the same core;
  - the values the request sets stay its own across its suspends;
  - locals created inside the request (and dropped while other requests hold
    data in theirs) never show data of another local;
  - an object kept only in the request's thread-local data is alive until the
    request ends and is freed once it has ended.
GET /freed answers "freed:K:alive:L": how many such objects were freed, and how
many are still alive. GET /ident answers threading.get_ident().
Answers "ok:N" or "BAD:N:reasons".
"""
import threading
import weakref

import uwsgi

PLAIN = threading.local()
PLAIN.value = 'worker'        # set at import: no request may see it


class WithDefaults(threading.local):
    def __init__(self):
        self.items = []        # run again for every request (as for a new thread)


SUBCLASS = WithDefaults()

FREED = []
ALIVE = weakref.WeakSet()


class Tracked:
    """Kept only in a request's thread-local data."""

    def __init__(self, tag):
        self.tag = tag

    def __del__(self):
        FREED.append(self.tag)


def handle(tag):
    bad = []

    def check(cond, what):
        if not cond:
            bad.append(what)

    k = tag % 13 + 1
    check(not hasattr(PLAIN, 'value'), 'module-level local not fresh: %r' % (getattr(PLAIN, 'value', None),))
    check(SUBCLASS.items == [], 'subclass local not fresh: %r' % (SUBCLASS.items,))
    PLAIN.value = tag
    SUBCLASS.items.append(tag)
    tracked = Tracked(tag)
    PLAIN.tracked = tracked
    ALIVE.add(tracked)
    del tracked
    for i in range(k):
        uwsgi.suspend()
        check(PLAIN.value == tag, 'module-level local changed to %r' % (PLAIN.value,))
        check(SUBCLASS.items == [tag], 'subclass local changed to %r' % (SUBCLASS.items,))
        check(PLAIN.tracked.tag == tag, 'tracked object changed')
        # a short-lived local per step: created, given data, suspended, dropped
        mine = threading.local()
        mine.owner = (tag, i)
        uwsgi.suspend()
        check(mine.owner == (tag, i), 'short-lived local changed to %r' % (mine.owner,))
        del mine
        fresh = threading.local()
        check(not hasattr(fresh, 'owner'), 'a new local shows data of a dead one: %r' % (getattr(fresh, 'owner', None),))
        del fresh
    check(tag not in FREED, 'object freed while its request runs')
    if tag % 3 == 0:
        # leave the data behind: it must be freed when the request ends
        return bad
    del PLAIN.value
    return bad


def application(environ, start_response):
    path = environ.get('PATH_INFO', '/')
    start_response('200 OK', [('Content-Type', 'text/plain')])
    if path == '/freed':
        yield ('freed:%d:alive:%d' % (len(set(FREED)), len(ALIVE))).encode()
        return
    if path == '/ident':
        yield ('%d' % threading.get_ident()).encode()
        return
    qs = dict(p.split('=', 1) for p in environ.get('QUERY_STRING', '').split('&') if '=' in p)
    tag = int(qs.get('tag', '0'))
    yield b''
    bad = handle(tag)
    yield (('BAD:%d:%s' % (tag, '; '.join(bad))) if bad else ('ok:%d' % tag)).encode()

