"""Long-polling chat on bottle, served by uGreen green threads.

POST /say (form field msg) appends a message; GET /poll?since=K answers, as soon as
there are more than K messages (or after 20 s), {"next": N, "messages": [...]}.
A poll waits by calling uwsgi.suspend() from its response generator.

bottle keeps its global request/response in threading.local() storage, which the
ugreen plugin gives every request its own copy of: stock bottle works as it is.
With CHAT_LOCALS=contextvars in the environment they are moved to contextvars
instead (also per request under the plugin).
"""
import contextvars
import json
import os
import time

import bottle
import uwsgi


def _context_property(name):
    var = contextvars.ContextVar('bottle.' + name)

    def fget(_):
        try:
            return var.get()
        except LookupError:
            raise RuntimeError('Request context not initialized.')

    def fset(_, value):
        var.set(value)

    def fdel(_):
        var.set(None)

    return property(fget, fset, fdel, 'per-request (contextvars) property')


if os.environ.get('CHAT_LOCALS') == 'contextvars':
    bottle.LocalRequest.environ = _context_property('request.environ')
    for _name in ('_status_line', '_status_code', '_cookies', '_headers', 'body'):
        setattr(bottle.LocalResponse, _name, _context_property('response.' + _name))

app = application = bottle.Bottle()
MESSAGES = []


@app.post('/say')
def say():
    msg = bottle.request.forms.get('msg')
    if not msg:
        bottle.abort(400, 'msg missing')
    MESSAGES.append(msg)
    return {'id': len(MESSAGES)}


@app.get('/poll')
def poll():
    since = int(bottle.request.query.get('since', '0'))
    bottle.response.content_type = 'application/json'

    def wait():
        # bottle consumes the first item of an iterable itself: hand it a blank
        # (valid leading JSON whitespace) so that waiting happens while uWSGI
        # iterates the response
        yield ' '
        deadline = time.monotonic() + 20
        while len(MESSAGES) <= since and time.monotonic() < deadline:
            uwsgi.suspend()
        yield json.dumps({'next': len(MESSAGES), 'messages': MESSAGES[since:]})

    return wait()
