"""Django on uGreen: one database connection per request, transactions across waits.

A one-file Django project served by Django's own WSGI handler. psycopg2 runs in
green mode: its wait callback registers the connection's socket with
uwsgi.wait_fd_read/wait_fd_write and suspends the green thread, so other requests
run while one waits for PostgreSQL. Django keeps its connections in
asgiref.local.Local(thread_critical=True), a threading.local: each request gets
its own connection, closed by Django when the request finishes.

GET /item/?tag=T, in transaction.atomic(): INSERTs a row (T), waits
pg_sleep(0.05), SELECTs the row back by its id and counts the rows of tag T that
this transaction sees. Answers "T:ID:SEEN_TAG:COUNT:PID" (SEEN_TAG must be T and
COUNT 1). GET /count/ answers the number of committed rows.
DSN parts come from $PG_HOST, $PG_PORT.
"""
import os

import psycopg2
import psycopg2.extensions
import uwsgi

import django
from django.conf import settings
from django.db import connection, transaction
from django.http import HttpResponse
from django.urls import path

settings.configure(
    DEBUG=False,
    ALLOWED_HOSTS=['*'],
    ROOT_URLCONF=__name__,
    INSTALLED_APPS=[],
    MIDDLEWARE=[],
    USE_TZ=True,
    DATABASES={'default': {
        'ENGINE': 'django.db.backends.postgresql',
        'HOST': os.environ['PG_HOST'],
        'PORT': os.environ['PG_PORT'],
        'NAME': 'postgres',
        'USER': 'postgres',
        'CONN_MAX_AGE': 0,
    }},
)
django.setup()

# the table, created with a plain blocking connection before green mode is on
_setup = psycopg2.connect(host=os.environ['PG_HOST'], port=os.environ['PG_PORT'], user='postgres', dbname='postgres')
_setup.autocommit = True
_setup.cursor().execute('CREATE TABLE IF NOT EXISTS ugreen_item (id serial PRIMARY KEY, tag text NOT NULL)')
_setup.close()


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


def item(request):
    tag = request.GET['tag']
    with transaction.atomic():
        with connection.cursor() as cur:
            cur.execute('INSERT INTO ugreen_item (tag) VALUES (%s) RETURNING id', [tag])
            (row_id,) = cur.fetchone()
            cur.execute('SELECT pg_sleep(0.05)')
            cur.execute('SELECT tag FROM ugreen_item WHERE id = %s', [row_id])
            (seen,) = cur.fetchone()
            cur.execute('SELECT count(*) FROM ugreen_item WHERE tag = %s', [tag])
            (count,) = cur.fetchone()
    return HttpResponse('%s:%d:%s:%d:%d' % (tag, row_id, seen, count, os.getpid()), content_type='text/plain')


def count(request):
    with connection.cursor() as cur:
        cur.execute('SELECT count(*) FROM ugreen_item')
        (n,) = cur.fetchone()
    return HttpResponse('%d' % n, content_type='text/plain')


urlpatterns = [path('item/', item), path('count/', count)]

from django.core.wsgi import get_wsgi_application  # noqa: E402

application = get_wsgi_application()
