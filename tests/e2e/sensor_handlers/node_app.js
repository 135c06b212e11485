// Handlers run by tests/e2e/sensor.rs in AWS's Node.js runtime client
// (aws-lambda-ric) under the Lambda stand-in (infra/local/lambda/standin.py
// --node-ric), with the fnwatch-sensor extension and its Node.js hook loaded.
'use strict';
const fs = require('fs');
const http = require('http');
const { exec } = require('child_process');

function cpuMs() {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
}

function burn(ms) {
  const end = cpuMs() + ms;
  let x = 0;
  while (cpuMs() < end) x++;
  return x;
}

function get(url) {
  return new Promise((resolve, reject) => {
    http
      .get(url, { timeout: 5000 }, (res) => {
        res.resume();
        res.on('end', resolve);
      })
      .on('error', reject);
  });
}

// An HTTP call to a local server, a file in /tmp, some CPU; says how much CPU
// it used, as the process sees it.
exports.benign = async (event, context) => {
  const c0 = cpuMs();
  if (event.url) await get(event.url);
  fs.writeFileSync(event.tmp, JSON.stringify(event));
  fs.readFileSync(event.tmp);
  burn(event.burn_ms || 0);
  return { cpu_ms: cpuMs() - c0, request_id: context.awsRequestId };
};

// A command-injection bug: the file name goes into a shell command.
exports.thumbnail = (event, context, callback) => {
  exec('echo making a thumbnail of ' + event.file + ' > /dev/null', { timeout: 20000 }, (err) => {
    callback(null, { rc: err ? err.code || 1 : 0 });
  });
};

// The benchmark's handler: 5 lookups, 2 connections, 1 process, 10 file
// opens, each kind timed on its own (the hook's in-process cost).
exports.busy = async (event) => {
  const dns = require('dns').promises;
  const net = require('net');
  const ns = () => process.hrtime.bigint();
  const t0 = ns();
  for (let i = 0; i < 5; i++) await dns.lookup('localhost', { family: 4 });
  const t1 = ns();
  for (let i = 0; i < 2; i++) {
    await new Promise((resolve, reject) => {
      const s = net.connect({ host: '127.0.0.1', port: event.port }, () => {
        s.destroy();
        resolve();
      });
      s.on('error', reject);
    });
  }
  const t2 = ns();
  require('child_process').spawnSync('true');
  const t3 = ns();
  for (let i = 0; i < 10; i++) fs.writeFileSync(event.tmp + '-' + i, 'x');
  const t4 = ns();
  // The handler's own time (the benchmark's measure of what the hook adds).
  return {
    ms: Number(t4 - t0) / 1e6,
    ns: { dns: Number(t1 - t0), connect: Number(t2 - t1), process: Number(t3 - t2), file: Number(t4 - t3) },
  };
};

// The benchmark's flood: `n` DNS events through the hook, as fast as it sends.
exports.flood = async (event) => {
  const hook = global[Symbol.for('fnwatch.hook')];
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < event.n; i++) {
    hook.event('dns', { query: 'q' + i + '.flood.example', qtype: 'A', rcode: 'NOERROR' });
  }
  return { sent: event.n, seconds: Number(process.hrtime.bigint() - t0) / 1e9 };
};

// Starts a process that writes garbage to the sensor's stream socket (when
// the event asks; else it only answers): bad lines, an endless line, more
// connections than the extension serves. Says how many lines it sent.
exports.garbage = async (event) => {
  if (!event.garbage) return { ok: true };
  const code = `
    const net = require('net');
    const path = process.env.FNWATCH_SENSOR_SOCKET + '.stream';
    const lines = ['{"type":', '[1,2,3]', '"just a string"', '{"type":"gpu_usage"}',
      '{"type":"dns","query":12}', '{"type":"network","remote_ip":"1.2.3.4","remote_port":99999}'];
    const held = [];
    const c = net.connect(path, () => {
      let body = '';
      for (let i = 0; i < 50; i++) body += lines[i % lines.length] + '\\n';
      body += Buffer.alloc(200000, 'x').toString() + '\\n';
      c.end(body, () => {
        let open = 0;
        for (let i = 0; i < 70; i++) {
          const h = net.connect(path, () => { if (++open === 70) setTimeout(() => process.exit(0), 300); });
          h.on('error', () => { if (++open === 70) setTimeout(() => process.exit(0), 300); });
          held.push(h);
        }
      });
    });
    c.on('error', (e) => { console.error(e); process.exit(1); });
  `;
  const { execFileSync } = require('child_process');
  // The child is not the runtime: no preload, a plain node.
  execFileSync(process.execPath, ['-e', code], {
    env: { ...process.env, NODE_OPTIONS: '' },
    timeout: 20000,
  });
  return { sent: 50, oversized: 1, connections: 70 };
};

// Answers at once, leaving a timer and a child process (which the hook
// follows) that write a file each after `late_ms`, when the invocation is
// over (when the event asks; else it only sleeps `sleep_s`).
exports.late = async (event, context) => {
  if (!event.late) {
    await new Promise((resolve) => setTimeout(resolve, (event.sleep_s || 0.01) * 1000));
    return { request_id: context.awsRequestId };
  }
  const base = event.tmp + '-' + context.awsRequestId;
  setTimeout(() => fs.writeFileSync(base + '-thread', 'late'), event.late_ms);
  const code =
    'setTimeout(() => require("fs").writeFileSync(' + JSON.stringify(base + '-child') + ', "late"), ' + event.late_ms + ')';
  require('child_process').spawn(process.execPath, ['-e', code], { stdio: 'ignore' });
  return { request_id: context.awsRequestId };
};
