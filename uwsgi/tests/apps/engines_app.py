"""One app for every uWSGI async engine (compare-engines.py).

GET /?n=N switches N times per request: uwsgi.suspend() under uGreen and the
greenlet plugin, gevent.sleep(0) under the gevent plugin (where uwsgi.suspend()
does not switch). Answers "ok:PID".
GET /?hold=K&round=R: the K requests of round R wait for each other (each
switches until all K have started), so K cores are busy at the same time:
every core once when K is the number of cores.
"""
import os

import uwsgi

if 'gevent' in uwsgi.opt:
    import gevent

    def switch():
        gevent.sleep(0)
else:
    switch = uwsgi.suspend

rounds = {}


def application(environ, start_response):
    args = dict(p.split('=', 1) for p in environ.get('QUERY_STRING', '').split('&') if '=' in p)
    start_response('200 OK', [('Content-Type', 'text/plain')])
    yield b''
    if 'hold' in args:
        r = args.get('round', '')
        rounds[r] = rounds.get(r, 0) + 1
        while rounds[r] < int(args['hold']):
            switch()
    for _ in range(int(args.get('n', 0))):
        switch()
    yield ('ok:%d' % os.getpid()).encode()
