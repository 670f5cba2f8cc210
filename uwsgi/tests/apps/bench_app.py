"""Minimal generator app for the backend comparison: GET /?n=N suspends N times."""
import uwsgi


def application(environ, start_response):
    qs = environ.get('QUERY_STRING', '')
    n = int(qs[2:]) if qs.startswith('n=') else 0
    start_response('200 OK', [('Content-Type', 'text/plain')])
    yield b''
    for _ in range(n):
        uwsgi.suspend()
    yield b'ok'
