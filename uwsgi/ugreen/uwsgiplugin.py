# uWSGI build description of the ugreen plugin (uGreen on libugreen).
#
# Environment:
#   UGREEN_LIB      path of libugreen.a, with UGREEN_NATIVE_LIBS its native
#                   libraries (both as <repo>/scripts/staticlib prints them; when
#                   UGREEN_LIB is unset the script is run: `cargo build --release`)
#   UGREEN_INCLUDE  directory holding ugreen.h (default: <repo>/include)
#   UGREEN_PYTHON   0 to build without Python support; otherwise the Python
#                   support is compiled when the headers of $PYTHON (or python3)
#                   are found, as uWSGI's python plugin does.
#   UGREEN_EMBED_AS symbol prefix to register under when embedded with a name other
#                   than "ugreen" (see build.sh: uwsgiconfig.py skips an embedded
#                   plugin named "ugreen" where ucontext is unusable).
import os
import subprocess
import sys


def _plugin_dir():
    # uwsgiconfig.py executes this file with a bare dict: find the directory it
    # was read from in the caller's locals ("path"), else fall back to the cwd.
    try:
        frame = sys._getframe(1)
        while frame is not None:
            p = frame.f_locals.get('path')
            if isinstance(p, str) and os.path.isfile(os.path.join(p, 'uwsgiplugin.py')) \
                    and os.path.isfile(os.path.join(p, 'ugreen.c')):
                return os.path.abspath(p)
            frame = frame.f_back
    except Exception:
        pass
    return os.path.abspath('.')


_here = _plugin_dir()
_repo = os.path.abspath(os.path.join(_here, '..', '..'))
_lib = os.environ.get('UGREEN_LIB')
_native_libs = os.environ.get('UGREEN_NATIVE_LIBS')
if not _lib:
    # the release archive and its native libraries, named by cargo
    try:
        _lib, _native_libs = subprocess.check_output(
            [os.path.join(_repo, 'scripts', 'staticlib'), '--release']).decode().splitlines()[:2]
    except Exception as e:
        raise SystemExit("ugreen plugin: scripts/staticlib --release failed (%s); set UGREEN_LIB "
                         "and UGREEN_NATIVE_LIBS" % e)
_inc = os.environ.get('UGREEN_INCLUDE', os.path.join(_repo, 'include'))

if not os.path.isfile(_lib):
    raise SystemExit("ugreen plugin: %s not found (set UGREEN_LIB)" % _lib)
if not _native_libs:
    raise SystemExit("ugreen plugin: UGREEN_NATIVE_LIBS is not set (scripts/staticlib prints "
                     "the archive's native libraries on its second line)")
if not os.path.isfile(os.path.join(_inc, 'ugreen.h')):
    raise SystemExit("ugreen plugin: ugreen.h not found in %s (set UGREEN_INCLUDE)" % _inc)

NAME = 'ugreen'
CFLAGS = ['-I%s' % _inc, '-Wno-error']
# the archive's symbols stay private to the plugin (and to the uwsgi binary)
LDFLAGS = ['-Wl,--exclude-libs,libugreen.a']
# the archive's path goes in LIBS (LDFLAGS precede the objects in the embedded link)
LIBS = [_lib, '-Wl,--exclude-libs,libugreen.a'] + _native_libs.split()
GCC_LIST = ['ugreen', 'ugreen_python']


def _python_include():
    if os.environ.get('UGREEN_PYTHON', '1') == '0':
        return None
    python = os.environ.get('PYTHON', 'python3')
    try:
        out = subprocess.check_output(
            [python, '-c', 'import sysconfig; print(sysconfig.get_path("include"))'],
            stderr=subprocess.DEVNULL).decode().strip()
    except Exception:
        return None
    if out and os.path.isfile(os.path.join(out, 'Python.h')):
        return out
    return None


_pyinc = _python_include()
if _pyinc:
    CFLAGS += ['-DUGREEN_WITH_PYTHON', '-I%s' % _pyinc]

_alias = os.environ.get('UGREEN_EMBED_AS')
if _alias:
    CFLAGS.append('-Dugreen_plugin=%s_plugin' % _alias)
