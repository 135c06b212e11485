"""Handlers run by tests/e2e/sensor.rs in a real Python runtime (awslambdaric)
under the Lambda stand-in (infra/local/lambda/standin.py), with the
fnwatch-sensor extension and its Python hook loaded."""

import json
import os
import subprocess
import sys
import time
import urllib.request


def _burn(ms):
    end = time.process_time() + ms / 1000.0
    x = 0
    while time.process_time() < end:
        x += 1
    return x


def benign(event, context):
    """An HTTP call to a local server, a file in /tmp, some CPU; says how much
    CPU it used, as the process sees it."""
    c0 = time.process_time()
    if event.get("url"):
        with urllib.request.urlopen(event["url"], timeout=5) as r:
            r.read()
    with open(event["tmp"], "w") as f:
        json.dump(event, f)
    with open(event["tmp"]) as f:
        f.read()
    _burn(event.get("burn_ms", 0))
    return {"cpu_ms": (time.process_time() - c0) * 1000.0, "request_id": context.aws_request_id}


def thumbnail(event, context):
    """A command-injection bug: the file name goes into a shell command."""
    out = subprocess.run(
        "echo making a thumbnail of " + event["file"] + " > /dev/null",
        shell=True,
        capture_output=True,
        timeout=20,
    )
    return {"rc": out.returncode}


def sleeper(event, context):
    """Sleeps (past its timeout when asked)."""
    time.sleep(event.get("sleep_s", 0.01))
    return {"slept": event.get("sleep_s", 0.01)}


def garbage(event, context):
    """Starts a process that writes garbage to the sensor's socket (when the
    event asks; else it only sleeps)."""
    if not event.get("garbage"):
        return sleeper(event, context)
    code = r"""
import json, os, socket
p = os.environ["FNWATCH_SENSOR_SOCKET"]
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
sent = 0
def send(b):
    # Counts the lines the extension will read: one per datagram over its
    # size limit, else one per non-blank line.
    global sent
    try:
        s.sendto(b, p)
    except OSError:
        return
    if len(b) > 65536:
        sent += 1
    else:
        sent += sum(1 for l in b.split(b"\n") if l.strip(b" \t\n\x0c\r"))
for i in range(200):
    send(os.urandom(64 + i))
send(b"{" * 5000)
send(b"[1,2,3]")
send(b"\xff\xfe\xfd")
send(json.dumps({"type": "gpu_usage", "x": 1}).encode())
send(json.dumps({"type": "dns", "query": 12}).encode())
send(json.dumps({"type": "network", "remote_ip": "1.2.3.4", "remote_port": 99999}).encode())
send(b"x" * 100000)
print(sent)
"""
    out = subprocess.run([sys.executable, "-S", "-c", code], capture_output=True, text=True, timeout=20)
    return {"sent": int(out.stdout.strip() or 0)}


def spawner(event, context):
    """Starts a Python child (which the hook follows): it looks a name up,
    writes a file, burns CPU and, when asked, tells the sensor's socket it
    is the runtime. Says how much CPU the handler and its child used."""
    import resource

    c0 = time.process_time()
    k0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    if event.get("child"):
        code = r"""
import json, os, socket, sys, time
socket.getaddrinfo("localhost", 80, socket.AF_INET, socket.SOCK_STREAM)
with open(sys.argv[1], "w") as f:
    f.write("from the child")
end = time.process_time() + float(sys.argv[2]) / 1000.0
while time.process_time() < end:
    pass
if sys.argv[3] == "1":
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    s.sendto(json.dumps({"type": "hello", "pid": os.getpid(), "runtime": "python"}).encode(),
             os.environ["FNWATCH_SENSOR_SOCKET"])
"""
        subprocess.run(
            [sys.executable, "-c", code, event["tmp"], str(event.get("child_burn_ms", 0)),
             "1" if event.get("forge") else "0"],
            check=True,
            timeout=20,
        )
    _burn(event.get("burn_ms", 0))
    k1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    child = (k1.ru_utime + k1.ru_stime - k0.ru_utime - k0.ru_stime) * 1000.0
    return {
        "cpu_ms": (time.process_time() - c0) * 1000.0 + child,
        "request_id": context.aws_request_id,
    }


def late(event, context):
    """Answers at once, leaving a thread and a child process (which the hook
    follows) that open a file each after `late_ms`, when the invocation is
    over (when the event asks; else it only sleeps)."""
    if not event.get("late"):
        return sleeper(event, context)
    import threading

    delay = event["late_ms"] / 1000.0
    base = event["tmp"] + "-" + context.aws_request_id

    def later():
        time.sleep(delay)
        with open(base + "-thread", "w") as f:
            f.write("late")

    threading.Thread(target=later, daemon=True).start()
    code = "import sys, time; time.sleep(float(sys.argv[2])); open(sys.argv[1], 'w').write('late')"
    subprocess.Popen([sys.executable, "-c", code, base + "-child", str(delay)])
    return {"request_id": context.aws_request_id}


def crash(event, context):
    """The runtime process dies in the middle of the handler (when the event
    asks; else it writes its file and sleeps)."""
    with open(event["tmp"], "w") as f:
        f.write("before the crash")
    if event.get("crash"):
        os._exit(3)
    return sleeper(event, context)


def busy(event, context):
    """The benchmark's handler: 5 lookups, 2 connections, 1 process, 10 file
    opens, each kind timed on its own (the hook's in-process cost)."""
    import socket

    ns = time.perf_counter_ns
    t0 = ns()
    for _ in range(5):
        socket.getaddrinfo("localhost", event["port"], socket.AF_INET, socket.SOCK_STREAM)
    t1 = ns()
    for _ in range(2):
        s = socket.create_connection(("127.0.0.1", event["port"]), timeout=2)
        s.close()
    t2 = ns()
    subprocess.run(["true"])
    t3 = ns()
    for i in range(10):
        with open("%s-%d" % (event["tmp"], i), "w") as f:
            f.write("x")
    t4 = ns()
    # The handler's own time, as the runtime sees it (the benchmark's
    # measure of what the hook adds, without the stand-in's HTTP).
    return {
        "ms": (t4 - t0) / 1e6,
        "ns": {"dns": t1 - t0, "connect": t2 - t1, "process": t3 - t2, "file": t4 - t3},
    }


def flood(event, context):
    """The benchmark's flood: `n` DNS events through the hook, as fast as it sends."""
    import fnwatch_hook

    t0 = time.perf_counter()
    for i in range(event["n"]):
        fnwatch_hook._event("dns", query="q%d.flood.example" % i, qtype="A", rcode="NOERROR")
    return {"sent": event["n"], "seconds": time.perf_counter() - t0}
