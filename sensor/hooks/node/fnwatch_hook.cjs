'use strict';
/*
 * fnwatch's in-process hook for Node.js Lambda functions.
 *
 * Preloaded with `node --require` (the layer's wrapper puts it in
 * NODE_OPTIONS), it reports what the function does to the fnwatch-sensor
 * extension, as the Python hook does:
 *
 *   dns.lookup, dns.resolve*, dns.promises.*       dns      (with answers and rcode)
 *   net.Socket#connect (net, http, tls, https)     network  (TCP, IPv4/IPv6; not the
 *                                                            `net.client.socket` diagnostics
 *                                                            channel: tls.connect bypasses it)
 *   ChildProcess#spawn (spawn, exec, execFile,
 *     fork), spawnSync, execSync, execFileSync     process
 *   fs open/readFile/writeFile/appendFile (and
 *     their Sync and promises forms), unlink, rm,
 *     chmod                                        file     (outside the code bundle,
 *                                                            the runtime and Node's own files)
 *
 * and, through a `Module._load` hook, it wraps the native Runtime API client of AWS's runtime (`rapid-client.node`, in aws-lambda-ric and the
 * managed nodejs runtimes) so that each invocation's request id and a sample
 * of its raw event are known before the handler runs.
 *
 * Node.js has no unix datagram sockets in core, so messages (JSON lines, the
 * Python hook's format) go to the extension's stream socket,
 * $FNWATCH_SENSOR_SOCKET.stream. Writes never wait: Node queues them in
 * memory while the socket is busy; beyond a bound, or when the socket is
 * missing, a message is dropped and counted, and the count is reported with
 * the next message that gets through. Nothing here ever throws into the
 * function: every hook runs the original call unchanged and reports beside it.
 */

const SOCKET = (process.env.FNWATCH_SENSOR_SOCKET || '/tmp/fnwatch-sensor.sock') + '.stream';
const SAMPLE = parseInt(process.env.FNWATCH_SENSOR_SAMPLE_BYTES || '', 10) || 4096;
const MAX_MSG = 60000;
// Bytes Node may hold for the socket before messages are dropped.
const MAX_QUEUED = 1 << 20;
// The first hooked process of the sandbox is the runtime; node processes it
// starts inherit NODE_OPTIONS and load this hook too, but are not it.
const PID_VAR = 'FNWATCH_SENSOR_RUNTIME_PID';

const st = { rid: null, dropped: 0, sock: null, connecting: false, retryAt: 0, busy: 0 };

let net, fs, path;
try {
  net = require('net');
  fs = require('fs');
  path = require('path');
} catch (e) {
  // Nothing to hook without them.
}

function noop() {}

function onWritten(err) {
  if (err) st.dropped += 1;
}

function sock() {
  if (st.sock) return st.sock;
  const now = Date.now();
  if (now < st.retryAt) return null;
  st.retryAt = now + 1000;
  const s = new net.Socket();
  s.on('error', () => {
    if (st.sock === s) st.sock = null;
  });
  s.on('close', () => {
    if (st.sock === s) st.sock = null;
  });
  st.sock = s;
  st.busy++;
  try {
    s.connect({ path: SOCKET });
  } finally {
    st.busy--;
  }
  // Never what keeps the process alive.
  s.unref();
  return s;
}

function write(s, line) {
  if (s.writableLength > MAX_QUEUED) {
    st.dropped += 1;
    return false;
  }
  s.write(line, onWritten);
  return true;
}

/** Sends one message; never waits, never throws. */
function send(obj) {
  try {
    let data = JSON.stringify(obj);
    if (data.length > MAX_MSG) {
      st.dropped += 1;
      return;
    }
    const s = sock();
    if (!s || s.destroyed) {
      st.dropped += 1;
      return;
    }
    if (write(s, data + '\n') && st.dropped) reportDrops();
  } catch (e) {
    st.dropped += 1;
  }
}

/** Says how many messages were dropped (a few bytes, past the bound). */
function reportDrops() {
  try {
    const s = st.dropped ? sock() : null;
    if (!s || s.destroyed) return;
    const d = st.dropped;
    st.dropped = 0;
    s.write('{"type":"hook_dropped","dropped":' + d + '}\n', (err) => {
      if (err) st.dropped += d;
    });
  } catch (e) {
    // Told next time.
  }
}

function event(type, fields) {
  fields.type = type;
  fields.t = Date.now() / 1000;
  if (st.rid) fields.request_id = st.rid;
  send(fields);
}

function runtimeName() {
  return 'nodejs' + String(process.versions.node || '').split('.')[0];
}

function hello() {
  send({ type: 'hello', pid: process.pid, runtime: runtimeName() });
}

// --- what is not the function's own doing ---------------------------------

function skipRoots() {
  const roots = [
    process.env.LAMBDA_TASK_ROOT || '/var/task',
    process.env.LAMBDA_RUNTIME_DIR || '/var/runtime',
    '/opt',
    __dirname,
    path.join(path.dirname(path.dirname(process.execPath)), 'lib', 'node_modules'),
    path.join(path.dirname(path.dirname(process.execPath)), 'include', 'node'),
  ];
  // The runtime client's own package (the main script's node_modules).
  try {
    const main = fs.realpathSync(process.argv[1] || '');
    const i = main.lastIndexOf('/node_modules/');
    if (i > 0) roots.push(main.slice(0, i + '/node_modules'.length));
  } catch (e) {
    // No main script (node -e): nothing more to skip.
  }
  const out = new Set();
  for (const r of roots) {
    if (!r) continue;
    let p = r;
    try {
      p = fs.realpathSync(r);
    } catch (e) {
      p = path.resolve(r);
    }
    p = p.replace(/\/+$/, '');
    if (p) {
      out.add(p + '/');
      out.add(path.resolve(r).replace(/\/+$/, '') + '/');
    }
  }
  return Array.from(out);
}

let SKIP = [];

function ours(p) {
  if (p === SOCKET || p === SOCKET.slice(0, -'.stream'.length)) return true;
  for (const r of SKIP) if (p.startsWith(r)) return true;
  return false;
}

function pathOf(p) {
  if (typeof p === 'string') return path.resolve(p);
  if (Buffer.isBuffer(p)) return path.resolve(p.toString('utf8'));
  if (p instanceof URL && p.protocol === 'file:') return require('url').fileURLToPath(p);
  return null;
}

function exists(p) {
  try {
    return fs.existsSync(p);
  } catch (e) {
    return false;
  }
}

function opOf(p, flags) {
  if (typeof flags === 'number') {
    const c = fs.constants;
    if (flags & c.O_CREAT && !exists(p)) return 'create';
    if (flags & (c.O_WRONLY | c.O_RDWR)) return 'write';
    return 'read';
  }
  const m = typeof flags === 'string' ? flags : 'r';
  if (m.includes('x')) return 'create';
  if (m.includes('w')) return exists(p) ? 'write' : 'create';
  if (m.includes('a') || m.includes('+')) return exists(p) ? 'write' : 'create';
  return 'read';
}

function fileEvent(target, flags, op) {
  const p = pathOf(target);
  if (!p || ours(p)) return;
  event('file', { path: p.slice(0, 4096), op: op || opOf(p, flags) });
}

// --- wrapping without changing behaviour ------------------------------------

/**
 * Replaces obj[name] with a function that calls `before(args, this)`
 * (guarded: never throws, not for calls made by the hook itself, nor, with
 * `nested`, for hooked calls the original makes) and then the original,
 * unchanged. Keeps the original's
 * name, length and properties (util.promisify's custom symbols among them).
 */
function wrap(obj, name, before, nested) {
  const orig = obj && obj[name];
  if (typeof orig !== 'function' || orig.__fnwatch) return;
  const w = function () {
    if (st.busy === 0) {
      st.busy++;
      try {
        before(arguments, this);
      } catch (e) {
        // Never into the function.
      } finally {
        st.busy--;
      }
    }
    if (!nested) return orig.apply(this, arguments);
    // What this call does through other hooked calls (writeFileSync's
    // openSync) is this call's event, not another.
    st.busy++;
    try {
      return orig.apply(this, arguments);
    } finally {
      st.busy--;
    }
  };
  try {
    for (const k of Reflect.ownKeys(orig)) {
      if (k === 'length' || k === 'name' || k === 'prototype' || k === 'caller' || k === 'arguments') continue;
      const d = Object.getOwnPropertyDescriptor(orig, k);
      if (d) Object.defineProperty(w, k, d);
    }
    Object.defineProperty(w, 'name', { value: orig.name });
    Object.defineProperty(w, 'length', { value: orig.length });
    if (orig.prototype) w.prototype = orig.prototype;
    Object.defineProperty(w, '__fnwatch', { value: true });
    obj[name] = w;
  } catch (e) {
    // Read-only: left alone.
  }
}

/**
 * Like `wrap`, but `report(args, error, results)` is told how the call ended:
 * for callback APIs (the last argument is replaced with one that reports
 * first) and promises.
 */
function wrapResult(obj, name, report) {
  const orig = obj && obj[name];
  if (typeof orig !== 'function' || orig.__fnwatch) return;
  const w = function () {
    const args = Array.prototype.slice.call(arguments);
    if (st.busy !== 0) return orig.apply(this, args);
    const last = args.length - 1;
    if (last >= 0 && typeof args[last] === 'function') {
      const cb = args[last];
      args[last] = function (err) {
        st.busy++;
        try {
          report(args, err, Array.prototype.slice.call(arguments, 1));
        } catch (e) {
          // Never into the function.
        } finally {
          st.busy--;
        }
        return cb.apply(this, arguments);
      };
      return orig.apply(this, args);
    }
    const r = orig.apply(this, args);
    if (r && typeof r.then === 'function') {
      r.then(
        (v) => {
          try {
            report(args, null, [v]);
          } catch (e) {
            // Never into the function.
          }
        },
        (err) => {
          try {
            report(args, err, []);
          } catch (e) {
            // Never into the function.
          }
        }
      );
    }
    return r;
  };
  try {
    for (const k of Reflect.ownKeys(orig)) {
      if (k === 'length' || k === 'name' || k === 'prototype' || k === 'caller' || k === 'arguments') continue;
      const d = Object.getOwnPropertyDescriptor(orig, k);
      if (d) Object.defineProperty(w, k, d);
    }
    Object.defineProperty(w, 'name', { value: orig.name });
    Object.defineProperty(w, 'length', { value: orig.length });
    Object.defineProperty(w, '__fnwatch', { value: true });
    obj[name] = w;
  } catch (e) {
    // Read-only: left alone.
  }
}

// --- dns ------------------------------------------------------------------

// Recently resolved addresses -> the name they came from (bounded).
const names = new Map();

function isIp(h) {
  return net.isIP(h) !== 0;
}

function rcodeOf(err) {
  if (!err) return 'NOERROR';
  if (err.code === 'ENOTFOUND' || err.code === 'ENODATA') return 'NXDOMAIN';
  if (err.code === 'EREFUSED') return 'REFUSED';
  return 'SERVFAIL';
}

function dnsEvent(host, qtype, err, answers) {
  if (typeof host !== 'string' || !host || isIp(host)) return;
  const fields = { query: host.slice(0, 1024), qtype: qtype, rcode: rcodeOf(err) };
  if (answers) {
    fields.answers = answers.slice(0, 64).map((a) => String(a).slice(0, 256));
    if (names.size > 4096) names.clear();
    for (const a of answers) if (typeof a === 'string' && isIp(a)) names.set(a, host);
  }
  event('dns', fields);
}

function lookupQtype(opts) {
  const f = typeof opts === 'number' ? opts : opts && typeof opts === 'object' ? opts.family : 0;
  return f === 6 || f === 'IPv6' ? 'AAAA' : 'A';
}

function lookupAnswers(res) {
  // (address, family) or ([{address, family}]) or {address, family}
  const v = res[0];
  if (typeof v === 'string') return [v];
  if (Array.isArray(v)) return v.map((a) => (a && a.address) || String(a));
  if (v && typeof v === 'object' && v.address) return [v.address];
  return [];
}

function flatAnswers(v) {
  if (!Array.isArray(v)) return v == null ? [] : [typeof v === 'object' ? JSON.stringify(v) : String(v)];
  return v.map((a) => (Array.isArray(a) ? a.join('') : a && typeof a === 'object' ? a.address || a.exchange || a.value || JSON.stringify(a) : String(a)));
}

const RESOLVE = {
  resolve: null,
  resolve4: 'A',
  resolve6: 'AAAA',
  resolveAny: 'ANY',
  resolveCname: 'CNAME',
  resolveMx: 'MX',
  resolveNs: 'NS',
  resolveTxt: 'TXT',
  resolveSrv: 'SRV',
  resolvePtr: 'PTR',
  resolveCaa: 'CAA',
  resolveNaptr: 'NAPTR',
  resolveSoa: 'SOA',
};

function hookDns() {
  const dns = require('dns');
  const lookup = (args, err, res) => {
    dnsEvent(args[0], lookupQtype(args[1]), err, err ? [] : lookupAnswers(res));
  };
  const resolver = (qtype) => (args, err, res) => {
    const q = qtype || (typeof args[1] === 'string' ? args[1].toUpperCase().slice(0, 16) : 'A');
    dnsEvent(args[0], q, err, err ? [] : flatAnswers(res[0]));
  };
  for (const target of [dns, dns.promises]) {
    if (!target) continue;
    wrapResult(target, 'lookup', lookup);
    for (const [name, qtype] of Object.entries(RESOLVE)) wrapResult(target, name, resolver(qtype));
  }
}

// --- network --------------------------------------------------------------

const RUNTIME_API = process.env.AWS_LAMBDA_RUNTIME_API || '';
const seen = new WeakSet();

function onConnected(s) {
  try {
    const ip = s.remoteAddress;
    const port = s.remotePort;
    if (!ip || typeof port !== 'number') return;
    const bare = ip.startsWith('::ffff:') ? ip.slice(7) : ip;
    if (RUNTIME_API && (bare + ':' + port === RUNTIME_API || ip + ':' + port === RUNTIME_API)) return;
    const fields = { direction: 'outbound', protocol: 'tcp', remote_ip: bare, remote_port: port };
    const host = names.get(bare) || names.get(ip);
    if (host) fields.remote_host = host;
    event('network', fields);
  } catch (e) {
    // Never into the function.
  }
}

function hookNet() {
  // Socket#connect is where net.connect, http's agents and tls.connect
  // (which does not go through net.connect, so the `net.client.socket`
  // diagnostics channel misses it) all end up.
  wrap(net.Socket.prototype, 'connect', (args, self) => {
    if (!self || seen.has(self)) return;
    const o = args[0];
    if (o && typeof o === 'object' && !Array.isArray(o) && o.path) return;
    if (typeof o === 'string' && !/^\d+$/.test(o)) return; // a unix path
    seen.add(self);
    self.once('connect', () => onConnected(self));
  });
}

// --- child processes --------------------------------------------------------

function which(file, env) {
  if (typeof file !== 'string' || !file) return null;
  if (file.includes('/')) return path.resolve(file);
  const dirs = String((env && env.PATH) || process.env.PATH || '').split(':');
  for (const d of dirs) {
    if (!d) continue;
    const p = path.join(d, file);
    try {
      fs.accessSync(p, fs.constants.X_OK);
      return p;
    } catch (e) {
      // Not here.
    }
  }
  return path.resolve(file);
}

function processEvent(file, argv, env) {
  const exe = which(file, env);
  if (!exe) return;
  const fields = { exe: exe.slice(0, 4096), parent_exe: process.execPath };
  if (Array.isArray(argv)) fields.args = argv.slice(0, 256).map((a) => String(a).slice(0, 4096));
  event('process', fields);
}

/** What spawnSync, execFileSync and execSync run, as Node decides it. */
function syncCommand(kind, args) {
  let file = args[0];
  let argv = Array.isArray(args[1]) ? args[1] : [];
  let opts = Array.isArray(args[1]) ? args[2] : args[1];
  if (!opts || typeof opts !== 'object') opts = {};
  if (kind === 'exec') {
    const sh = typeof opts.shell === 'string' ? opts.shell : '/bin/sh';
    return [sh, [sh, '-c', String(file)], opts.env];
  }
  if (opts.shell) {
    const sh = typeof opts.shell === 'string' ? opts.shell : '/bin/sh';
    const cmd = [file].concat(argv).join(' ');
    return [sh, [sh, '-c', cmd], opts.env];
  }
  return [file, [opts.argv0 || file].concat(argv), opts.env];
}

function hookChildProcess() {
  const cp = require('child_process');
  // spawn, exec, execFile and fork all start their process here, with the
  // file and argv Node settled on (the shell for exec).
  if (cp.ChildProcess) {
    wrap(cp.ChildProcess.prototype, 'spawn', (args) => {
      const o = args[0];
      if (o && typeof o === 'object') processEvent(o.file, o.args, o.envPairs ? null : o.env);
    });
  }
  wrap(cp, 'spawnSync', (args) => processEvent.apply(null, syncCommand('spawn', args)));
  wrap(cp, 'execFileSync', (args) => processEvent.apply(null, syncCommand('spawn', args)));
  wrap(cp, 'execSync', (args) => processEvent.apply(null, syncCommand('exec', args)));
}

// --- files ----------------------------------------------------------------

function flagOf(o, dflt) {
  if (typeof o === 'string') return o;
  if (o && typeof o === 'object' && o.flag != null) return o.flag;
  return dflt;
}

function hookFs() {
  const fsp = fs.promises;
  const open = (a) => fileEvent(a[0], typeof a[1] === 'function' ? 'r' : a[1] == null ? 'r' : a[1]);
  const read = (a) => typeof a[0] !== 'number' && fileEvent(a[0], flagOf(a[1], 'r'));
  const writeF = (a) => typeof a[0] !== 'number' && fileEvent(a[0], flagOf(a[2], 'w'));
  const append = (a) => typeof a[0] !== 'number' && fileEvent(a[0], flagOf(a[2], 'a'));
  const del = (a) => fileEvent(a[0], null, 'delete');
  const chmod = (a) => fileEvent(a[0], null, 'chmod');
  for (const [t, sync] of [
    [fs, true],
    [fsp, false],
  ]) {
    if (!t) continue;
    wrap(t, 'open', open, true);
    wrap(t, 'readFile', read, true);
    wrap(t, 'writeFile', writeF, true);
    wrap(t, 'appendFile', append, true);
    wrap(t, 'unlink', del, true);
    wrap(t, 'rm', del, true);
    wrap(t, 'chmod', chmod, true);
    if (sync) {
      wrap(t, 'openSync', open, true);
      wrap(t, 'readFileSync', read, true);
      wrap(t, 'writeFileSync', writeF, true);
      wrap(t, 'appendFileSync', append, true);
      wrap(t, 'unlinkSync', del, true);
      wrap(t, 'rmSync', del, true);
      wrap(t, 'chmodSync', chmod, true);
    }
  }
}

// --- the invocation ---------------------------------------------------------

function trigger(body) {
  let e;
  try {
    e = JSON.parse(body);
  } catch (err) {
    return 'other';
  }
  if (!e || typeof e !== 'object' || Array.isArray(e)) return 'direct';
  const rc = e.requestContext;
  if (rc && typeof rc === 'object') return 'elb' in rc ? 'alb' : 'apigateway';
  const recs = e.Records;
  if (Array.isArray(recs) && recs.length && recs[0] && typeof recs[0] === 'object') {
    const src = recs[0].eventSource || recs[0].EventSource || '';
    return (
      { 'aws:sqs': 'sqs', 'aws:sns': 'sns', 'aws:s3': 's3', 'aws:dynamodb': 'dynamodb', 'aws:kinesis': 'kinesis' }[src] ||
      'other'
    );
  }
  if ('detail-type' in e) return e['detail-type'] === 'Scheduled Event' ? 'schedule' : 'eventbridge';
  return 'direct';
}

function onInvoke(inv) {
  try {
    const h = (inv && inv.headers) || {};
    const rid = h['lambda-runtime-aws-request-id'];
    if (typeof rid !== 'string' || !rid) return;
    st.rid = rid;
    const body = typeof (inv && inv.bodyJson) === 'string' ? inv.bodyJson : '';
    const bytes = Buffer.byteLength(body);
    hello();
    send({
      type: 'invoke',
      request_id: rid,
      event: body.length > SAMPLE ? Buffer.from(body).subarray(0, SAMPLE).toString('utf8') : body,
      event_bytes: bytes,
      trigger: bytes <= 65536 ? trigger(body) : 'other',
    });
  } catch (e) {
    // Never into the runtime.
  }
}

/** Wraps `next` of AWS's native Runtime API client. */
function patchRapidClient(mod) {
  if (!mod || typeof mod.next !== 'function' || mod.next.__fnwatch) return;
  const orig = mod.next;
  const next = function () {
    const p = orig.apply(this, arguments);
    try {
      if (p && typeof p.then === 'function') {
        return p.then((inv) => {
          onInvoke(inv);
          return inv;
        });
      }
    } catch (e) {
      // Left as it was.
    }
    return p;
  };
  Object.defineProperty(next, '__fnwatch', { value: true });
  try {
    mod.next = next;
  } catch (e) {
    // Read-only: no samples.
  }
  // The response (or error) goes out: what was dropped during the
  // invocation is reported with it, not only with the next invocation.
  for (const name of ['done', 'error']) {
    const post = mod[name];
    if (typeof post !== 'function') continue;
    try {
      mod[name] = function () {
        reportDrops();
        return post.apply(this, arguments);
      };
    } catch (e) {
      // Read-only: reported with the next message.
    }
  }
}

function hookRuntimeClient() {
  const Module = require('module');
  const load = Module._load;
  if (typeof load !== 'function') return;
  Module._load = function (request) {
    const m = load.apply(this, arguments);
    try {
      if (typeof request === 'string' && request.endsWith('rapid-client.node')) patchRapidClient(m);
    } catch (e) {
      // Never into the runtime.
    }
    return m;
  };
}

function install() {
  const key = Symbol.for('fnwatch.hook');
  if (!net || !fs || !path || global[key]) return;
  // One hook per process, however often it is required; the benchmark's
  // flood handler sends through it.
  Object.defineProperty(global, key, { value: { send: send, event: event, state: st } });
  SKIP = skipRoots();
  for (const h of [hookRuntimeClient, hookDns, hookNet, hookChildProcess, hookFs]) {
    try {
      h();
    } catch (e) {
      try {
        process.stderr.write('fnwatch: part of the Node.js hook did not start: ' + e + '\n');
      } catch (e2) {
        // Nowhere to say it.
      }
    }
  }
  if (!process.env[PID_VAR]) {
    process.env[PID_VAR] = String(process.pid);
    hello();
  }
}

try {
  install();
} catch (e) {
  try {
    process.stderr.write('fnwatch: the Node.js hook did not start: ' + e + '\n');
  } catch (e2) {
    // Nowhere to say it.
  }
}

module.exports = { send: send, state: st };
