"""fnwatch's in-process hook for Python Lambda functions.

Loaded at interpreter start (by `sitecustomize`, which the layer's wrapper
puts first on PYTHONPATH), it installs a PEP 578 audit hook that reports what
the function does to the fnwatch-sensor extension:

    socket.getaddrinfo              dns      (answers and rcode: the function is wrapped)
    socket.connect                  network  (AF_INET/AF_INET6 only)
    subprocess.Popen, os.system,
    os.exec, os.posix_spawn, os.spawn  process
    open, os.remove, os.chmod       file     (outside the code bundle, the runtime
                                              and the interpreter's own files)

and wraps the runtime's per-invocation entry (awslambdaric's
`handle_event_request`) to send a sample of the triggering event and the
request id. Messages are JSON lines in unix datagrams, sent without blocking
to $FNWATCH_SENSOR_SOCKET; when the socket is missing or full the message is
dropped and counted, and the count is reported with the next message that
gets through. Nothing here ever raises into the function or waits on I/O.
"""

import collections
import json
import os
import socket
import sys
import threading
import time

_SOCKET = os.environ.get("FNWATCH_SENSOR_SOCKET") or "/tmp/fnwatch-sensor.sock"
_SAMPLE = int(os.environ.get("FNWATCH_SENSOR_SAMPLE_BYTES") or 4096)
_MAX_MSG = 60000
# Messages held while the extension's queue is full (then dropped, counted).
_MAX_PENDING = 5000
# Set by the first hooked process (the runtime) and inherited by the
# processes it starts: only the runtime says `hello` (the extension reads the
# runtime's CPU time), like the Node.js hook.
_PID_VAR = "FNWATCH_SENSOR_RUNTIME_PID"

_local = threading.local()
_state = {"rid": None, "dropped": 0, "sock": None, "installed": False, "runtime": False}
# Recently resolved addresses -> the name they came from (bounded).
_names = {}
_pending = collections.deque()


def _skip_roots():
    roots = {
        os.environ.get("LAMBDA_TASK_ROOT") or "/var/task",
        os.environ.get("LAMBDA_RUNTIME_DIR") or "/var/runtime",
        "/opt",
        sys.prefix,
        sys.base_prefix,
        sys.exec_prefix,
        os.path.dirname(os.path.abspath(__file__)),
    }
    out = []
    for r in roots:
        if r:
            r = os.path.realpath(r).rstrip("/")
            if r and r != "/":
                out.append(r + "/")
    return tuple(sorted(set(out)))


_SKIP = _skip_roots()


def _sock():
    s = _state["sock"]
    if s is None:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        s.setblocking(False)
        _state["sock"] = s
    return s


def _flush():
    """Sends what waits, several lines per datagram; False when the socket
    is still full."""
    s = _sock()
    while _pending:
        batch = []
        size = 0
        while _pending and size + len(_pending[0]) + 1 <= _MAX_MSG:
            line = _pending.popleft()
            batch.append(line)
            size += len(line) + 1
        try:
            s.sendto(b"\n".join(batch), _SOCKET)
        except BlockingIOError:
            _pending.extendleft(reversed(batch))
            return False
        except OSError:
            _state["dropped"] += len(batch)
    if _state["dropped"]:
        _report_drops()
    return True


def _send(obj):
    """Sends one message; never blocks, never raises. When the extension's
    queue is full (a burst), messages wait in a bounded list and go out
    together, several to a datagram, with the next message or at the end of
    the invocation; beyond the bound they are dropped and counted."""
    try:
        data = json.dumps(obj, separators=(",", ":"), default=str).encode(
            "utf-8", "replace"
        )
        if len(data) > _MAX_MSG:
            _state["dropped"] += 1
            return
        if _pending:
            _pending.append(data)
            while len(_pending) > _MAX_PENDING:
                _pending.popleft()
                _state["dropped"] += 1
            _flush()
            return
        try:
            _sock().sendto(data, _SOCKET)
        except BlockingIOError:
            _pending.append(data)
            return
        except OSError:
            _state["dropped"] += 1
            return
        if _state["dropped"]:
            _report_drops()
    except Exception:
        _state["dropped"] += 1


def _report_drops():
    d = _state["dropped"]
    try:
        _sock().sendto(json.dumps({"type": "hook_dropped", "dropped": d}).encode(), _SOCKET)
        _state["dropped"] -= d
    except OSError:
        pass


def _event(kind, **fields):
    fields["type"] = kind
    fields["t"] = time.time()
    rid = _state["rid"]
    if rid:
        fields["request_id"] = rid
    _send(fields)


def _ours(path):
    return isinstance(path, str) and path.startswith(_SKIP)


def _abspath(p):
    if isinstance(p, bytes):
        p = os.fsdecode(p)
    if not isinstance(p, str):
        return None
    return os.path.abspath(p)


def _on_open(args):
    path, mode, flags = (list(args) + [None, None, None])[:3]
    if isinstance(path, int):
        return
    path = _abspath(path)
    if not path or _ours(path) or path == _SOCKET:
        return
    if mode is not None:
        m = str(mode)
        if "x" in m:
            op = "create"
        elif "w" in m:
            op = "write" if os.path.exists(path) else "create"
        elif "a" in m or "+" in m:
            op = "write"
        else:
            op = "read"
    else:
        f = flags or 0
        if f & os.O_CREAT and not os.path.exists(path):
            op = "create"
        elif f & (os.O_WRONLY | os.O_RDWR):
            op = "write"
        else:
            op = "read"
    _event("file", path=path, op=op)


def _exe(path):
    if isinstance(path, (bytes, os.PathLike)):
        path = os.fsdecode(path)
    if not isinstance(path, str) or not path:
        return None
    if os.path.isabs(path):
        return path
    import shutil

    return shutil.which(path) or os.path.abspath(path)


def _argv(args):
    if isinstance(args, (str, bytes, os.PathLike)):
        return [os.fsdecode(args) if not isinstance(args, str) else args]
    try:
        return [os.fsdecode(a) if not isinstance(a, str) else a for a in args][:256]
    except Exception:
        return None


def _process(exe, argv):
    if exe is None:
        return
    key = (exe, tuple(argv or ()))
    last = getattr(_local, "last_proc", None)
    now = time.monotonic()
    # Popen may go on to os.posix_spawn: one process, one event.
    if last and last[0] == key and now - last[1] < 1.0:
        return
    _local.last_proc = (key, now)
    fields = {"exe": exe, "parent_exe": sys.executable}
    if argv is not None:
        fields["args"] = [a[:4096] for a in argv]
    _event("process", **fields)


def _on_popen(args):
    executable, argv = args[0], args[1]
    argv_l = _argv(argv)
    if executable is None and argv_l:
        executable = argv_l[0]
    _process(_exe(executable), argv_l)


def _on_system(args):
    _process("/bin/sh", ["sh", "-c", os.fsdecode(args[0]) if args else ""])


def _on_exec(args):
    _process(_exe(args[0]), _argv(args[1]))


def _on_spawn(args):
    # os.spawn: (mode, path, args, env)
    _process(_exe(args[1]), _argv(args[2]))


def _on_connect(args):
    sock, addr = args[0], args[1]
    fam = getattr(sock, "family", None)
    if fam not in (socket.AF_INET, socket.AF_INET6):
        return
    if not isinstance(addr, tuple) or len(addr) < 2:
        return
    ip, port = str(addr[0]), addr[1]
    fields = {
        "direction": "outbound",
        "protocol": "tcp" if sock.type == socket.SOCK_STREAM else "udp",
        "remote_ip": ip,
        "remote_port": int(port),
    }
    host = _names.get(ip)
    if host:
        fields["remote_host"] = host
    _event("network", **fields)


def _is_ip(host):
    try:
        socket.inet_pton(socket.AF_INET6 if ":" in host else socket.AF_INET, host)
        return True
    except Exception:
        return False


def _dns_event(host, family, answers, rcode):
    if isinstance(host, bytes):
        host = host.decode("idna", "replace")
    if not isinstance(host, str) or not host or _is_ip(host):
        return
    qtype = "AAAA" if family == socket.AF_INET6 else "A"
    fields = {"query": host[:1024], "qtype": qtype, "rcode": rcode}
    if answers is not None:
        fields["answers"] = answers[:64]
        if len(_names) > 4096:
            _names.clear()
        for a in answers:
            _names[a] = host
    _event("dns", **fields)


def _on_getaddrinfo(args):
    # Only when the lookup did not come through our wrapper (which reports
    # it with its answers).
    if getattr(_local, "in_gai", False):
        return
    _dns_event(args[0], args[2] if len(args) > 2 else 0, None, None)


_HANDLERS = {
    "open": _on_open,
    "subprocess.Popen": _on_popen,
    "os.system": _on_system,
    "os.exec": _on_exec,
    "os.posix_spawn": _on_exec,
    "os.spawn": _on_spawn,
    "socket.connect": _on_connect,
    "socket.getaddrinfo": _on_getaddrinfo,
    "os.remove": lambda a: _simple_file(a, "delete"),
    "os.chmod": lambda a: _simple_file(a, "chmod"),
}


def _simple_file(args, op):
    path = _abspath(args[0]) if args else None
    if path and not _ours(path):
        _event("file", path=path, op=op)


def _audit(event, args):
    h = _HANDLERS.get(event)
    if h is None or getattr(_local, "busy", False):
        return
    _local.busy = True
    try:
        h(args)
    except Exception:
        pass
    finally:
        _local.busy = False


_real_getaddrinfo = socket.getaddrinfo


def _getaddrinfo(host, port, family=0, type=0, proto=0, flags=0):
    """socket.getaddrinfo, reporting the lookup with its answers."""
    _local.in_gai = True
    try:
        res = _real_getaddrinfo(host, port, family, type, proto, flags)
    except socket.gaierror as e:
        _local.in_gai = False
        if not getattr(_local, "busy", False):
            _local.busy = True
            try:
                rcode = "NXDOMAIN" if e.errno == socket.EAI_NONAME else "SERVFAIL"
                _dns_event(host, family, [], rcode)
            except Exception:
                pass
            finally:
                _local.busy = False
        raise
    finally:
        _local.in_gai = False
    if not getattr(_local, "busy", False):
        _local.busy = True
        try:
            answers = []
            for r in res:
                a = r[4][0] if r[4] else None
                if isinstance(a, str) and a not in answers:
                    answers.append(a)
            _dns_event(host, family, answers, "NOERROR")
        except Exception:
            pass
        finally:
            _local.busy = False
    return res


def _trigger(body):
    try:
        e = json.loads(body)
    except Exception:
        return "other"
    if not isinstance(e, dict):
        return "direct"
    rc = e.get("requestContext")
    if isinstance(rc, dict):
        return "alb" if "elb" in rc else "apigateway"
    recs = e.get("Records")
    if isinstance(recs, list) and recs and isinstance(recs[0], dict):
        src = recs[0].get("eventSource") or recs[0].get("EventSource") or ""
        return {
            "aws:sqs": "sqs",
            "aws:sns": "sns",
            "aws:s3": "s3",
            "aws:dynamodb": "dynamodb",
            "aws:kinesis": "kinesis",
        }.get(src, "other")
    if "detail-type" in e:
        return "schedule" if e.get("detail-type") == "Scheduled Event" else "eventbridge"
    return "direct"


def _on_invoke(invoke_id, event_body):
    _state["rid"] = invoke_id
    try:
        body = event_body if isinstance(event_body, (bytes, bytearray)) else str(event_body).encode()
        _hello()
        _send(
            {
                "type": "invoke",
                "request_id": invoke_id,
                "event": bytes(body[:_SAMPLE]).decode("utf-8", "replace"),
                "event_bytes": len(body),
                "trigger": _trigger(body) if len(body) <= 65536 else "other",
            }
        )
    except Exception:
        pass


def _patch_bootstrap(mod):
    orig = getattr(mod, "handle_event_request", None)
    if orig is None or getattr(orig, "_fnwatch", False):
        return

    def handle_event_request(lambda_runtime_client, request_handler, invoke_id, event_body, *a, **kw):
        _on_invoke(invoke_id, event_body)
        try:
            return orig(lambda_runtime_client, request_handler, invoke_id, event_body, *a, **kw)
        finally:
            # The response is out: send what waited.
            try:
                _flush()
            except Exception:
                pass

    handle_event_request._fnwatch = True
    mod.handle_event_request = handle_event_request


class _BootstrapFinder:
    """Patches awslambdaric.bootstrap once it has been loaded."""

    def find_spec(self, name, path=None, target=None):
        if name != "awslambdaric.bootstrap":
            return None
        for f in sys.meta_path:
            if f is self or not hasattr(f, "find_spec"):
                continue
            spec = f.find_spec(name, path, target)
            if spec is not None:
                break
        else:
            return None
        loader = spec.loader
        real_exec = getattr(loader, "exec_module", None)
        if real_exec is None:
            return spec

        def exec_module(module):
            real_exec(module)
            try:
                _patch_bootstrap(module)
            except Exception:
                pass

        try:
            loader.exec_module = exec_module
        except Exception:
            pass
        return spec


def install():
    if _state["installed"]:
        return
    _state["installed"] = True
    socket.getaddrinfo = _getaddrinfo
    if "awslambdaric.bootstrap" in sys.modules:
        _patch_bootstrap(sys.modules["awslambdaric.bootstrap"])
    else:
        sys.meta_path.insert(0, _BootstrapFinder())
    sys.addaudithook(_audit)
    first = os.environ.get(_PID_VAR)
    if not first or first == str(os.getpid()):
        os.environ[_PID_VAR] = str(os.getpid())
        _state["runtime"] = True
    _hello()


def _hello():
    """Tells the extension the runtime's pid (from the runtime only)."""
    if _state["runtime"]:
        _send({"type": "hello", "pid": os.getpid(), "runtime": "python%d.%d" % sys.version_info[:2]})
