"""psycopg2 in green mode on uGreen.

The wait callback polls the connection and, instead of blocking, registers its
socket with uwsgi.wait_fd_read/uwsgi.wait_fd_write and suspends the green thread.
GET /?tag=N runs SELECT pg_sleep(0.5), N*2 on a new connection (DSN in $PG_DSN).
"""
import os

import psycopg2
import psycopg2.extensions
import uwsgi


def green_wait(conn):
    while True:
        state = conn.poll()
        if state == psycopg2.extensions.POLL_OK:
            return
        if state == psycopg2.extensions.POLL_READ:
            uwsgi.wait_fd_read(conn.fileno(), 30)
        elif state == psycopg2.extensions.POLL_WRITE:
            uwsgi.wait_fd_write(conn.fileno(), 30)
        else:
            raise psycopg2.OperationalError('unexpected poll() state %r' % state)
        uwsgi.suspend()


psycopg2.extensions.set_wait_callback(green_wait)


def application(environ, start_response):
    qs = dict(p.split('=', 1) for p in environ.get('QUERY_STRING', '').split('&') if '=' in p)
    tag = int(qs.get('tag', '0'))
    start_response('200 OK', [('Content-Type', 'text/plain')])
    yield b''
    conn = psycopg2.connect(os.environ['PG_DSN'])
    try:
        cur = conn.cursor()
        cur.execute('SELECT pg_sleep(0.5), %s::int * 2', (tag,))
        row = cur.fetchone()
    finally:
        conn.close()
    yield ('%d:%d' % (tag, row[1])).encode()
