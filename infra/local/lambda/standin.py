#!/usr/bin/env python3
"""A Lambda service stand-in for testing Lambda extensions locally.

It follows AWS's published APIs (nothing of fnwatch is assumed):

- the Runtime API (2018-06-01): invocation/next with the Lambda-Runtime-*
  headers, invocation/{id}/response and /error, init/error;
- the Extensions API (2020-01-01): register (Lambda-Extension-Name, the
  Lambda-Extension-Identifier answer, accountId when the extension accepts
  the feature), event/next with INVOKE and SHUTDOWN events;
- the Telemetry API (2022-07-01, schema 2022-12-13): subscriptions, and
  batches pushed by HTTP POST to the subscriber, buffered per its
  `buffering` settings, with platform.initStart, initRuntimeDone,
  initReport, start, runtimeDone and report records and `function` lines.

The life of a sandbox is Lambda's: the extensions start first and register,
then the runtime starts (through AWS_LAMBDA_EXEC_WRAPPER when given) and
init ends when the runtime and every extension wait on their `next`. An
invocation is delivered to the runtime and, as INVOKE, to the extensions;
platform.runtimeDone is pushed when the runtime answers (or fails, or the
deadline passes); platform.report once every extension has asked for its
next event again. A timeout or a runtime failure resets the sandbox: the
runtime is killed and the extensions get SHUTDOWN (2 s deadline); the next
invocation starts a new sandbox (a cold start).

Usage: standin.py --plan plan.json --results results.jsonl --extension BIN
           --task-dir DIR --handler mod.fn [--wrapper PATH] [--timeout 3]
           [--memory 128] [--function NAME] [--work DIR]
           [--node-ric .../aws-lambda-ric/bin/index.mjs [--node node]]

The runtime is AWS's Python runtime interface client (`python -m
awslambdaric`), or with --node-ric AWS's Node.js one (`node index.mjs`).

The plan is a JSON list of steps:
    {"invoke": <event>, "label": "..."}                 one invocation
    {"invoke": <event>, "shutdown_after_ms": 200}        the sandbox goes away mid-invocation
    {"sleep_ms": 100}
With --paced, each step waits for a line on stdin and is followed by a
`done` line on stdout (for a driver that interleaves several stand-ins).
Each result is a JSON line: label, request_id, status, response, error_type,
duration_ms, cold, sandbox. Sandbox lines say when each extension registered.
The extensions' stdout goes to WORK/extension-stdout.log, stderr to
WORK/extension-stderr.log; the runtime's output to WORK/runtime.log.
"""

import argparse
import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.parse
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

ACCOUNT = "123456789012"


def now_iso():
    t = time.time()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + ".%03dZ" % int((t % 1) * 1000)


class Telemetry:
    """Buffers records per subscriber and pushes them in order."""

    def __init__(self):
        self.lock = threading.Condition()
        self.subs = []  # dicts: uri, types, max_items, timeout_ms, queue
        self.threads = []

    def subscribe(self, ext_id, body):
        dest = body["destination"]
        if dest.get("protocol") != "HTTP":
            raise ValueError("destination.protocol must be HTTP")
        uri = dest["URI"]
        u = urllib.parse.urlparse(uri)
        if u.scheme != "http" or not u.port:
            raise ValueError("destination.URI must be http://host:port")
        buf = body.get("buffering") or {}
        sub = {
            "id": ext_id,
            "uri": u,
            "types": set(body.get("types") or []),
            "max_items": int(buf.get("maxItems", 10000)),
            "timeout_ms": max(25, int(buf.get("timeoutMs", 1000))),
            "queue": [],
            "cv": threading.Condition(),
            "stop": False,
        }
        with self.lock:
            self.subs.append(sub)
        t = threading.Thread(target=self._pusher, args=(sub,), daemon=True)
        t.start()
        self.threads.append(t)
        self.emit("platform.telemetrySubscription", {"name": ext_id, "state": "Subscribed", "types": sorted(sub["types"])})

    def emit(self, ty, record):
        kind = "function" if ty == "function" else "platform"
        item = {"time": now_iso(), "type": ty, "record": record}
        with self.lock:
            subs = list(self.subs)
        for s in subs:
            if kind in s["types"]:
                with s["cv"]:
                    s["queue"].append(item)
                    s["cv"].notify()

    def _pusher(self, sub):
        while True:
            with sub["cv"]:
                while not sub["queue"] and not sub["stop"]:
                    sub["cv"].wait()
                if sub["stop"] and not sub["queue"]:
                    return
                deadline = time.monotonic() + sub["timeout_ms"] / 1000.0
                while len(sub["queue"]) < sub["max_items"] and not sub["stop"]:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        break
                    sub["cv"].wait(left)
                batch = sub["queue"][: sub["max_items"]]
                del sub["queue"][: len(batch)]
            self._post(sub, batch)

    def _post(self, sub, batch):
        u = sub["uri"]
        body = json.dumps(batch).encode()
        for _ in range(3):
            try:
                c = http.client.HTTPConnection(u.hostname, u.port, timeout=5)
                c.request("POST", u.path or "/", body, {"Content-Type": "application/json"})
                c.getresponse().read()
                c.close()
                return
            except OSError:
                time.sleep(0.05)

    def drain(self, timeout=2.0):
        """Waits until every queued record was pushed."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            with self.lock:
                subs = list(self.subs)
            if all(not s["queue"] for s in subs):
                time.sleep(0.05)  # the last POST
                return
            time.sleep(0.01)

    def stop(self):
        with self.lock:
            subs, self.subs = self.subs, []
        for s in subs:
            with s["cv"]:
                s["stop"] = True
                s["cv"].notify()


class Sandbox:
    def __init__(self, args, number, service):
        self.args = args
        self.n = number
        self.svc = service
        self.cv = threading.Condition()
        self.ext = {}  # id -> {"name", "waiting": bool, "events": [], "registered": t}
        self.runtime_waiting = False
        self.pending = None  # the invocation for the runtime
        self.current = None
        self.result = None
        self.init_error = None
        self.ext_proc = None
        self.rt_proc = None
        self.telemetry = Telemetry()
        self.cold_pending = True
        self.init_ms = None

    # --- processes ---
    def env(self):
        a = self.args
        e = dict(os.environ)
        e.update(
            {
                "AWS_LAMBDA_RUNTIME_API": "127.0.0.1:%d" % self.svc.port,
                "AWS_LAMBDA_FUNCTION_NAME": a.function,
                "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
                "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(a.memory),
                "AWS_REGION": "us-east-1",
                "AWS_DEFAULT_REGION": "us-east-1",
                "AWS_LAMBDA_LOG_GROUP_NAME": "/aws/lambda/" + a.function,
                "AWS_LAMBDA_LOG_STREAM_NAME": "standin/%d" % self.n,
                "LAMBDA_TASK_ROOT": a.task_dir,
                "_HANDLER": a.handler,
                "FNWATCH_SENSOR_SOCKET": os.path.join(a.work, "sensor.sock"),
            }
        )
        return e

    def start(self):
        a = self.args
        env = self.env()
        t0 = time.monotonic()
        if not a.extension:
            # No extension: the baseline of a benchmark.
            self.ext_proc = subprocess.Popen(["sleep", "3600"])
            self.svc.log({"sandbox": self.n, "extension": None})
        else:
            self._start_extension(env, t0)
        self._start_runtime(env)

    def _start_extension(self, env, t0):
        a = self.args
        self.ext_proc = subprocess.Popen(
            [a.extension],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=open(os.path.join(a.work, "extension-stdout.log"), "ab"),
            stderr=open(os.path.join(a.work, "extension-stderr.log"), "ab"),
        )
        with self.cv:
            ok = self.cv.wait_for(lambda: any(x["waiting"] for x in self.ext.values()), 10)
        if not ok:
            raise RuntimeError("the extension did not register and ask for its next event within 10 s (see extension-stderr.log)")
        reg_ms = (min(x["registered"] for x in self.ext.values()) - t0) * 1000
        self.svc.log({"sandbox": self.n, "extension_registered_ms": round(reg_ms, 2)})

    def _start_runtime(self, env):
        a = self.args
        self.telemetry.emit("platform.initStart", {"initializationType": "on-demand", "phase": "init", "runtimeVersion": "nodejs" if a.node_ric else "python", "functionName": a.function, "functionVersion": "$LATEST"})
        rt_env = dict(env)
        if a.node_ric:
            # AWS's Node.js runtime client, run as in its images (from the task dir).
            cmd = [a.node, a.node_ric, a.handler]
        else:
            rt_env["PYTHONPATH"] = a.task_dir + (":" + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
            cmd = [sys.executable, "-m", "awslambdaric", a.handler]
        if a.wrapper:
            rt_env["AWS_LAMBDA_EXEC_WRAPPER"] = a.wrapper
        if a.wrapper:
            cmd = [a.wrapper] + cmd
        t1 = time.monotonic()
        self.rt_proc = subprocess.Popen(
            cmd, env=rt_env, cwd=a.task_dir, stdin=subprocess.DEVNULL,
            stdout=open(os.path.join(a.work, "runtime.log"), "ab"), stderr=subprocess.STDOUT,
        )
        with self.cv:
            poll(self.cv, lambda: self.runtime_waiting or self.init_error or self.rt_proc.poll() is not None, 10)
        self.init_ms = (time.monotonic() - t1) * 1000
        status = "success" if self.runtime_waiting else "error"
        self.telemetry.emit("platform.initRuntimeDone", {"initializationType": "on-demand", "phase": "init", "status": status})
        self.telemetry.emit("platform.initReport", {"initializationType": "on-demand", "phase": "init", "status": status, "metrics": {"durationMs": round(self.init_ms, 3)}})

    def all_ext_waiting(self):
        return all(x["waiting"] for x in self.ext.values())

    def invoke(self, event, label, shutdown_after_ms=None):
        a = self.args
        rid = str(uuid.uuid4())
        deadline_ms = int(time.time() * 1000) + int(a.timeout * 1000)
        body = json.dumps(event).encode()
        with self.cv:
            self.cv.wait_for(lambda: self.all_ext_waiting(), 10)
            self.telemetry.emit("platform.start", {"requestId": rid, "version": "$LATEST", "tracing": {"spanId": uuid.uuid4().hex[:16], "type": "X-Amzn-Trace-Id", "value": "Root=1-00000000-%s;Sampled=0" % uuid.uuid4().hex[:24]}})
            t0 = time.monotonic()
            self.current = rid
            self.result = None
            self.pending = {"rid": rid, "deadline": deadline_ms, "body": body}
            for x in self.ext.values():
                x["events"].append({"eventType": "INVOKE", "deadlineMs": deadline_ms, "requestId": rid, "invokedFunctionArn": "arn:aws:lambda:us-east-1:%s:function:%s" % (ACCOUNT, a.function), "tracing": {"type": "X-Amzn-Trace-Id", "value": "Root=1-00000000-000000000000000000000000;Sampled=0"}})
                x["waiting"] = False
            self.cv.notify_all()
            limit = shutdown_after_ms / 1000.0 if shutdown_after_ms is not None else a.timeout
            poll(self.cv, lambda: self.result is not None or self.rt_proc.poll() is not None, limit)
            duration = (time.monotonic() - t0) * 1000
            res = self.result
        cold = self.cold_pending
        self.cold_pending = False
        if shutdown_after_ms is not None and res is None:
            # The sandbox goes away mid-invocation: no runtimeDone, no report.
            self.svc.log({"label": label, "request_id": rid, "status": "shutdown", "duration_ms": round(duration, 3), "cold": cold, "sandbox": self.n})
            self.shutdown("spindown")
            return False
        if res is None:
            if self.rt_proc.poll() is not None:
                status, err, resp = "failure", "Runtime.ExitError", None
            else:
                status, err, resp = "timeout", "Sandbox.Timedout", None
                duration = max(duration, a.timeout * 1000)
        else:
            status, err, resp = res
        done = {"requestId": rid, "status": status, "metrics": {"durationMs": round(duration, 3), "producedBytes": len(resp or b"")}, "spans": [{"name": "responseLatency", "start": now_iso(), "durationMs": round(duration, 3)}]}
        if err:
            done["errorType"] = err
        self.telemetry.emit("platform.runtimeDone", done)
        self.svc.log({"label": label, "request_id": rid, "status": status, "error_type": err, "response": (json.loads(resp) if resp else None), "duration_ms": round(duration, 3), "cold": cold, "sandbox": self.n})
        reset = status in ("timeout", "failure")
        if reset:
            self._kill_runtime()
        else:
            with self.cv:
                self.cv.wait_for(lambda: self.all_ext_waiting(), max(0.0, deadline_ms / 1000.0 - time.time()) + 2)
        mem = 0
        for p in (self.rt_proc, self.ext_proc):
            mem += vm_hwm_kb(p.pid)
        report = {"requestId": rid, "status": status, "metrics": {"durationMs": round(duration, 3), "billedDurationMs": int(-(-duration // 1)), "memorySizeMB": a.memory, "maxMemoryUsedMB": max(1, mem // 1024)}}
        if cold and self.init_ms is not None:
            report["metrics"]["initDurationMs"] = round(self.init_ms, 3)
        if err:
            report["errorType"] = err
        self.telemetry.emit("platform.report", report)
        self.current = None
        if reset:
            self.shutdown("timeout" if status == "timeout" else "failure")
            return False
        return True

    def _kill_runtime(self):
        if self.rt_proc and self.rt_proc.poll() is None:
            self.rt_proc.kill()
            self.rt_proc.wait()

    def shutdown(self, reason):
        if self.args.extension and self.ext_proc.poll() is None:
            self.svc.log({"sandbox": self.n, "extension_rss_kb": vm_kb(self.ext_proc.pid, "VmRSS:"), "extension_hwm_kb": vm_kb(self.ext_proc.pid, "VmHWM:")})
        self._kill_runtime()
        self.telemetry.drain()
        deadline_ms = int(time.time() * 1000) + 2000
        with self.cv:
            for x in self.ext.values():
                x["events"].append({"eventType": "SHUTDOWN", "shutdownReason": reason, "deadlineMs": deadline_ms})
            self.cv.notify_all()
        try:
            if not self.args.extension:
                self.ext_proc.kill()
            self.ext_proc.wait(timeout=2.5)
        except subprocess.TimeoutExpired:
            self.ext_proc.kill()
            self.ext_proc.wait()
            self.svc.log({"sandbox": self.n, "extension_killed_after_deadline": True})
        self.svc.log({"sandbox": self.n, "extension_exit": self.ext_proc.returncode, "shutdown_reason": reason})
        self.telemetry.stop()


def poll(cv, pred, timeout):
    """cv.wait_for that also notices what no one notifies (a process exit)."""
    end = time.monotonic() + timeout
    while not pred():
        left = end - time.monotonic()
        if left <= 0:
            return False
        cv.wait(min(left, 0.005))
    return True


def vm_kb(pid, field):
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith(field):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def vm_hwm_kb(pid):
    return vm_kb(pid, "VmHWM:")


class Service:
    def __init__(self, args):
        self.args = args
        self.sandbox = None
        self.out = open(args.results, "a")
        self.out_lock = threading.Lock()
        svc = self

        class H(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def setup(self):
                super().setup()
                # Answers go out at once (no Nagle wait behind a delayed ACK).
                self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

            def body(self):
                n = int(self.headers.get("Content-Length") or 0)
                return self.rfile.read(n) if n else b""

            def reply(self, code, obj=None, headers=None):
                data = b"" if obj is None else (obj if isinstance(obj, bytes) else json.dumps(obj).encode())
                self.send_response(code)
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self):
                svc.route(self, "GET")

            def do_POST(self):
                svc.route(self, "POST")

            def do_PUT(self):
                svc.route(self, "PUT")

        class Server(ThreadingHTTPServer):
            def handle_error(self, request, client_address):
                # A runtime killed at a sandbox reset drops its connection
                # (Node's runtime client keeps one open): not an error here.
                if isinstance(sys.exc_info()[1], ConnectionError):
                    return
                super().handle_error(request, client_address)

        self.httpd = Server(("127.0.0.1", 0), H)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def log(self, obj):
        with self.out_lock:
            self.out.write(json.dumps(obj) + "\n")
            self.out.flush()

    def route(self, h, method):
        sb = self.sandbox
        path = h.path
        if sb is None:
            return h.reply(500, {"errorMessage": "no sandbox"})
        if method == "POST" and path == "/2020-01-01/extension/register":
            name = h.headers.get("Lambda-Extension-Name")
            body = json.loads(h.body() or b"{}")
            if not name:
                return h.reply(400, {"errorMessage": "missing Lambda-Extension-Name", "errorType": "Extension.InvalidRequest"})
            if not set(body.get("events") or []) <= {"INVOKE", "SHUTDOWN"}:
                return h.reply(400, {"errorType": "Extension.InvalidEvent"})
            ext_id = str(uuid.uuid4())
            with sb.cv:
                sb.ext[ext_id] = {"name": name, "waiting": False, "events": [], "registered": time.monotonic(), "types": body.get("events")}
            out = {"functionName": self.args.function, "functionVersion": "$LATEST", "handler": self.args.handler}
            if "accountId" in (h.headers.get("Lambda-Extension-Accept-Feature") or ""):
                out["accountId"] = ACCOUNT
            return h.reply(200, out, {"Lambda-Extension-Identifier": ext_id})
        if method == "GET" and path == "/2020-01-01/extension/event/next":
            ext_id = h.headers.get("Lambda-Extension-Identifier")
            with sb.cv:
                x = sb.ext.get(ext_id)
                if x is None:
                    return h.reply(403, {"errorType": "Extension.Unregistered"})
                x["waiting"] = True
                sb.cv.notify_all()
                sb.cv.wait_for(lambda: x["events"])
                ev = x["events"].pop(0)
            return h.reply(200, ev, {"Lambda-Extension-Event-Identifier": str(uuid.uuid4())})
        if method == "PUT" and path == "/2022-07-01/telemetry":
            ext_id = h.headers.get("Lambda-Extension-Identifier")
            if ext_id not in sb.ext:
                return h.reply(403, {"errorType": "Extension.Unregistered"})
            try:
                body = json.loads(h.body())
                if body.get("schemaVersion") not in ("2022-07-01", "2022-12-13"):
                    raise ValueError("unsupported schemaVersion")
                sb.telemetry.subscribe(ext_id, body)
            except (ValueError, KeyError, TypeError) as e:
                return h.reply(400, {"errorType": "ValidationError", "errorMessage": str(e)})
            return h.reply(200, b"OK")
        if method == "GET" and path == "/2018-06-01/runtime/invocation/next":
            with sb.cv:
                sb.runtime_waiting = True
                sb.cv.notify_all()
                sb.cv.wait_for(lambda: sb.pending is not None)
                inv, sb.pending = sb.pending, None
                sb.runtime_waiting = False
            return h.reply(200, inv["body"], {
                "Lambda-Runtime-Aws-Request-Id": inv["rid"],
                "Lambda-Runtime-Deadline-Ms": str(inv["deadline"]),
                "Lambda-Runtime-Invoked-Function-Arn": "arn:aws:lambda:us-east-1:%s:function:%s" % (ACCOUNT, self.args.function),
                "Lambda-Runtime-Trace-Id": "Root=1-00000000-000000000000000000000000;Sampled=0",
            })
        if method == "POST" and path.startswith("/2018-06-01/runtime/invocation/"):
            parts = path.split("/")
            rid, what = parts[4], parts[5]
            body = h.body()
            with sb.cv:
                if rid == sb.current and sb.result is None:
                    if what == "response":
                        sb.result = ("success", None, body)
                    else:
                        sb.result = ("error", h.headers.get("Lambda-Runtime-Function-Error-Type") or "Unhandled", body)
                    sb.cv.notify_all()
            return h.reply(202, {"status": "OK"})
        if method == "POST" and path == "/2018-06-01/runtime/init/error":
            with sb.cv:
                sb.init_error = h.body()
                sb.cv.notify_all()
            return h.reply(202, {"status": "OK"})
        return h.reply(404, {"errorMessage": "unknown path " + path})

    def run(self, plan, paced=False):
        n = 0
        for step in plan:
            if paced:
                # A driver interleaving several stand-ins: one line on stdin
                # per step, one line on stdout when it is done.
                if not sys.stdin.readline():
                    break
            if "sleep_ms" in step:
                time.sleep(step["sleep_ms"] / 1000.0)
                continue
            if self.sandbox is None:
                n += 1
                self.sandbox = Sandbox(self.args, n, self)
                self.sandbox.start()
            alive = self.sandbox.invoke(step["invoke"], step.get("label", ""), step.get("shutdown_after_ms"))
            if not alive:
                self.sandbox = None
            if paced:
                sys.stdout.write("done\n")
                sys.stdout.flush()
        if self.sandbox is not None:
            self.sandbox.shutdown("spindown")
            self.sandbox = None


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--plan", required=True)
    p.add_argument("--results", required=True)
    p.add_argument("--extension", help="the extension binary (none: run without one)")
    p.add_argument("--task-dir", required=True)
    p.add_argument("--handler", required=True)
    p.add_argument("--wrapper")
    p.add_argument("--timeout", type=float, default=3.0)
    p.add_argument("--memory", type=int, default=128)
    p.add_argument("--function", default="standin-fn")
    p.add_argument("--work", required=True)
    p.add_argument("--node-ric", help="run AWS's Node.js runtime client (aws-lambda-ric's bin/index.mjs) instead of Python's")
    p.add_argument("--node", default="node", help="the node binary for --node-ric")
    p.add_argument("--paced", action="store_true", help="run each step of the plan when a line comes on stdin; say `done` on stdout after it")
    a = p.parse_args()
    a.task_dir = os.path.abspath(a.task_dir)
    a.work = os.path.abspath(a.work)
    os.makedirs(a.work, exist_ok=True)
    with open(a.plan) as f:
        plan = json.load(f)
    svc = Service(a)
    try:
        svc.run(plan, a.paced)
    finally:
        sb = svc.sandbox
        if sb is not None:
            for pr in (sb.rt_proc, sb.ext_proc):
                if pr and pr.poll() is None:
                    pr.kill()


if __name__ == "__main__":
    main()
