"""Objects reachable only from a suspended request's frames survive garbage collection.

GET /?tag=T&n=N creates, per request, a class, a closure, a code object (compile)
and a cycle, held only by the request's own frame (locals and the evaluation
stack of a pending call), then suspends N times while other requests run
gc.collect() (those with gc=1, halfway through their suspends). After every
suspend it checks that each object is still intact.
Answers "T:ok:PID" or "T:BAD:reasons".
"""
import gc
import os

import uwsgi


def check(tag, n, collect, cls, fn, code, cyc):
    bad = []
    for i in range(n):
        uwsgi.suspend()
        if collect and i == n // 2:
            gc.collect()
        if cls.__name__ != 'C_%s' % tag or cls().v != tag:
            bad.append('class')
        if fn(1) != '%s:1' % tag:
            bad.append('closure')
        if eval(code) != tag:
            bad.append('code')
        if cyc[0] is not cyc or cyc[1] != tag:
            bad.append('cycle')
        if bad:
            break
    return bad


def application(environ, start_response):
    q = dict(p.split('=', 1) for p in environ.get('QUERY_STRING', '').split('&') if '=' in p)
    tag, n, collect = q.get('tag', '-'), int(q.get('n', '0')), q.get('gc') == '1'
    start_response('200 OK', [('Content-Type', 'text/plain')])
    yield b''
    cls = type('C_%s' % tag, (), {'v': tag, '__init__': (lambda self: None)})
    fn = (lambda t: (lambda x: '%s:%s' % (t, x)))(tag)
    code = compile(repr(tag), '<req %s>' % tag, 'eval')
    cyc = [None, tag]
    cyc[0] = cyc
    bad = check(tag, n, collect, cls, fn, code, cyc)
    del cls, fn, code, cyc
    yield ('%s:%s:%d' % (tag, ':'.join(['BAD'] + bad) if bad else 'ok', os.getpid())).encode()
