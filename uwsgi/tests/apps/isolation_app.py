"""Per-request isolation of contextvars, decimal contexts and exception state.

GET /?tag=N checks, across uwsgi.suspend() calls interleaved with other requests:
  - a fresh request sees no ContextVar value, the default decimal context and no
    exception being handled, even when the previous request on the same core left
    a value set (odd tags leave REQ set and change the decimal precision in place);
  - decimal.localcontext() precision and a ContextVar value stay the request's own;
  - sys.exc_info() inside except blocks (nested too) stays the request's exception,
    and is empty again after them;
  - an exception raised after a suspend is caught by the request's own handler.
Answers "ok:N" or "BAD:N:reasons".
"""
import contextvars
import decimal
import sys

import uwsgi

REQ = contextvars.ContextVar('REQ')


def thrower(tag, k):
    for _ in range(k):
        uwsgi.suspend()
    raise LookupError(tag)


def handle(tag):
    bad = []

    def check(cond, what):
        if not cond:
            bad.append(what)

    k = tag % 17 + 1
    check(REQ.get(None) is None, 'ContextVar leaked into a new request: %r' % (REQ.get(None),))
    check(decimal.getcontext().prec == 28, 'decimal context leaked: prec %d' % decimal.getcontext().prec)
    check(sys.exc_info()[1] is None, 'exception state leaked: %r' % (sys.exc_info()[1],))

    REQ.set(tag)
    prec = 5 + tag % 40
    with decimal.localcontext() as ctx:
        ctx.prec = prec
        for _ in range(k):
            uwsgi.suspend()
            check(decimal.getcontext().prec == prec, 'localcontext prec changed')
            check(REQ.get(None) == tag, 'ContextVar changed to %r' % (REQ.get(None),))
        digits = str(decimal.Decimal(1) / decimal.Decimal(7))[2:]
        check(len(digits) == prec, 'Decimal(1)/7 has %d digits, not %d' % (len(digits), prec))
    check(decimal.getcontext().prec == 28, 'prec not restored after localcontext')

    try:
        raise ValueError(tag)
    except ValueError as outer:
        for _ in range(k):
            uwsgi.suspend()
            check(sys.exc_info()[1] is outer, 'exc_info lost in except')
        try:
            raise KeyError(tag)
        except KeyError as inner:
            uwsgi.suspend()
            check(sys.exc_info()[1] is inner, 'exc_info lost in nested except')
        uwsgi.suspend()
        check(sys.exc_info()[1] is outer, 'exc_info not restored after nested except')
    uwsgi.suspend()
    check(sys.exc_info()[1] is None, 'exc_info leaked after except')

    try:
        thrower(tag, k)
        check(False, 'no exception')
    except LookupError as e:
        check(e.args == (tag,), 'caught another request\'s exception: %r' % (e.args,))
    check(REQ.get(None) == tag, 'ContextVar lost')

    if tag % 2:
        # leave state behind: the next request on this core must not see it
        decimal.getcontext().prec = 3
    else:
        REQ.set(None)
    return bad


def application(environ, start_response):
    qs = dict(p.split('=', 1) for p in environ.get('QUERY_STRING', '').split('&') if '=' in p)
    tag = int(qs.get('tag', '0'))
    start_response('200 OK', [('Content-Type', 'text/plain')])
    yield b''
    bad = handle(tag)
    yield (('BAD:%d:%s' % (tag, '; '.join(bad))) if bad else ('ok:%d' % tag)).encode()
