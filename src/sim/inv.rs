//! One invocation's sensor events, written as JSON lines into a reusable
//! arena and put in time order when the invocation is done.

use super::fleet::{FnSpec, host_ip6, host_ips};
use super::util::{self, Rng, chance, esc, index, int, iso_into, kint, kstr, kstrs, unif};

/// Names that are random by nature (CDN distributions, API Gateway ids, S3
/// buckets): a large set that is stable across days, and a handful that are
/// new each day.
#[derive(Debug, Clone, Default)]
pub struct NamePool {
    pub base: Vec<String>,
    pub fresh: Vec<String>,
}

impl NamePool {
    /// Mostly a well-known name (popular ones more often), sometimes one
    /// first seen today. Returns the name and whether it is new today.
    pub fn pick(&self, r: &mut Rng, p_fresh: f64) -> (&str, bool) {
        if !self.fresh.is_empty() && chance(r, p_fresh) {
            return (&self.fresh[index(r, self.fresh.len())], true);
        }
        if self.base.is_empty() {
            return ("d1x2y3.cloudfront.net", false);
        }
        let u = unif(r);
        let i = ((u * u) * self.base.len() as f64) as usize;
        (&self.base[i.min(self.base.len() - 1)], false)
    }
}

/// What every invocation of a day can see.
#[derive(Debug, Clone)]
pub struct World {
    pub account: String,
    pub fns: Vec<FnSpec>,
    pub cdn: NamePool,
    pub apigw: NamePool,
    pub buckets: NamePool,
}

/// A function's state during a day (it changes at deploys).
#[derive(Debug, Clone)]
pub struct FnState {
    pub version: String,
    pub new_dep: Option<NewDep>,
}

/// A dependency introduced by a deploy.
#[derive(Debug, Clone)]
pub struct NewDep {
    pub host: String,
    /// (service, action, resource) of a newly used API action the role grants.
    pub action: Option<(String, String, String)>,
}

/// The arena: event lines and their (time, start, end) in the buffer.
#[derive(Debug, Default)]
pub struct Scratch {
    pub buf: Vec<u8>,
    pub idx: Vec<(f64, u32, u32)>,
}

impl Scratch {
    pub fn clear(&mut self) {
        self.buf.clear();
        self.idx.clear();
    }

    /// Appends the events in time order to `out`; returns how many.
    pub fn drain_sorted(&mut self, out: &mut Vec<u8>) -> u64 {
        self.idx.sort_by(|a, b| a.0.total_cmp(&b.0));
        for &(_, s, e) in &self.idx {
            out.extend_from_slice(&self.buf[s as usize..e as usize]);
        }
        let n = self.idx.len() as u64;
        self.clear();
        n
    }
}

pub struct Inv<'a> {
    pub r: &'a mut Rng,
    pub f: &'a FnSpec,
    pub w: &'a World,
    pub st: &'a FnState,
    pub s: &'a mut Scratch,
    pub rid: String,
    pub t0: f64,
    /// Events placed with a fraction `at` go to `win.0 + at * win.1 * 0.97`.
    pub win: (f64, f64),
    /// The invocation resolved a name first seen today.
    pub used_new_name: bool,
    /// The invocation used a dependency introduced by today's deploy.
    pub used_new_dep: bool,
}

pub type Ip = [u8; 4];

impl<'a> Inv<'a> {
    pub fn t_at(&mut self, at: Option<f64>) -> f64 {
        let frac = match at {
            Some(a) => a,
            None => unif(self.r),
        };
        self.win.0 + frac * self.win.1 * 0.97
    }

    /// Starts an event line: `{"type":..,"time":..,...,"version":".."`.
    fn head(&mut self, typ: &str, t: f64) -> usize {
        let b = &mut self.s.buf;
        let start = b.len();
        b.extend_from_slice(b"{\"type\":\"");
        b.extend_from_slice(typ.as_bytes());
        b.extend_from_slice(b"\",\"time\":\"");
        iso_into(b, t.floor() as i64);
        b.extend_from_slice(b"\",\"function\":\"");
        b.extend_from_slice(self.f.name.as_bytes());
        b.extend_from_slice(b"\",\"request_id\":\"");
        b.extend_from_slice(self.rid.as_bytes());
        b.extend_from_slice(b"\",\"account\":\"");
        b.extend_from_slice(self.w.account.as_bytes());
        b.extend_from_slice(b"\",\"region\":\"");
        b.extend_from_slice(self.f.region.as_bytes());
        b.extend_from_slice(b"\",\"version\":");
        esc(b, &self.st.version);
        start
    }

    fn done(&mut self, start: usize, t: f64) {
        self.s.buf.extend_from_slice(b"}\n");
        self.s.idx.push((t, start as u32, self.s.buf.len() as u32));
    }

    /// A DNS answer; returns the addresses it gave (none for an error).
    pub fn dns(
        &mut self,
        host: &str,
        at: Option<f64>,
        qtype: &str,
        rcode: &str,
        cname: Option<&str>,
    ) -> Option<[Ip; 2]> {
        let t = self.t_at(at);
        self.dns_at(host, t, qtype, rcode, cname)
    }

    pub fn dns_at(
        &mut self,
        host: &str,
        t: f64,
        qtype: &str,
        rcode: &str,
        cname: Option<&str>,
    ) -> Option<[Ip; 2]> {
        let start = self.head("dns", t);
        let b = &mut self.s.buf;
        kstr(b, "query", host);
        kstr(b, "qtype", qtype);
        kstr(b, "rcode", rcode);
        let mut out = None;
        if rcode != "NOERROR" {
            b.extend_from_slice(b",\"answers\":[]");
        } else if qtype == "AAAA" {
            let mut answers = Vec::with_capacity(2);
            if let Some(c) = cname {
                answers.push(c.to_string());
            }
            answers.push(host_ip6(host));
            kstrs(b, "answers", &answers);
        } else {
            let ips = host_ips(cname.unwrap_or(host));
            let mut answers = Vec::with_capacity(3);
            if let Some(c) = cname {
                answers.push(c.to_string());
            }
            answers.push(util::ip_string(ips[0]));
            answers.push(util::ip_string(ips[1]));
            kstrs(b, "answers", &answers);
            out = Some(ips);
        }
        self.done(start, t);
        out
    }

    /// A DNS event with explicit answers.
    pub fn dns_raw(&mut self, host: &str, t: f64, qtype: &str, rcode: &str, answers: &[String]) {
        let start = self.head("dns", t);
        let b = &mut self.s.buf;
        kstr(b, "query", host);
        kstr(b, "qtype", qtype);
        kstr(b, "rcode", rcode);
        kstrs(b, "answers", answers);
        self.done(start, t);
    }

    /// An outbound TCP connection.
    pub fn connect_at(
        &mut self,
        host: Option<&str>,
        ip: &str,
        port: i64,
        t: f64,
        bytes_out: i64,
        bytes_in: i64,
    ) {
        self.flow_at("tcp", host, ip, port, t, bytes_out, bytes_in);
    }

    /// An outbound flow.
    #[allow(clippy::too_many_arguments)]
    pub fn flow_at(
        &mut self,
        protocol: &str,
        host: Option<&str>,
        ip: &str,
        port: i64,
        t: f64,
        bytes_out: i64,
        bytes_in: i64,
    ) {
        let start = self.head("network", t);
        let b = &mut self.s.buf;
        b.extend_from_slice(b",\"direction\":\"outbound\"");
        kstr(b, "protocol", protocol);
        kstr(b, "remote_ip", ip);
        kint(b, "remote_port", port);
        if let Some(h) = host {
            kstr(b, "remote_host", h);
        }
        kint(b, "bytes_out", bytes_out);
        kint(b, "bytes_in", bytes_in);
        self.done(start, t);
    }

    pub fn connect(
        &mut self,
        host: &str,
        out_b: (i64, i64),
        in_b: (i64, i64),
        port: i64,
        at: Option<f64>,
        ip: Option<Ip>,
    ) {
        let ip = ip.unwrap_or_else(|| host_ips(host)[index(self.r, 2)]);
        let t = self.t_at(at);
        let bo = int(self.r, out_b.0, out_b.1);
        let bi = int(self.r, in_b.0, in_b.1);
        self.connect_at(Some(host), &util::ip_string(ip), port, t, bo, bi);
    }

    /// Maybe resolves `host` (warm sandboxes mostly hit their cache) and maybe connects.
    #[allow(clippy::too_many_arguments)]
    pub fn lookup_and_connect(
        &mut self,
        host: &str,
        p_dns: f64,
        p_conn: f64,
        out_b: (i64, i64),
        in_b: (i64, i64),
        port: i64,
        cname: Option<&str>,
    ) {
        let at = unif(self.r) * 0.6;
        let mut ips = None;
        if chance(self.r, p_dns) {
            ips = self.dns(host, Some(at), "A", "NOERROR", cname);
        }
        if chance(self.r, p_conn) {
            let ip = match ips {
                Some(ips) => ips[index(self.r, 2)],
                None => host_ips(cname.unwrap_or(host))[index(self.r, 2)],
            };
            self.connect(
                host,
                out_b,
                in_b,
                port,
                Some((at + 0.02).min(0.99)),
                Some(ip),
            );
        }
    }

    pub fn api(
        &mut self,
        service: &str,
        action: &str,
        resource: Option<&str>,
        error: Option<&str>,
        at: Option<f64>,
    ) {
        let t = self.t_at(at);
        self.api_at(service, action, resource, error, t);
    }

    pub fn api_at(
        &mut self,
        service: &str,
        action: &str,
        resource: Option<&str>,
        error: Option<&str>,
        t: f64,
    ) {
        let start = self.head("api_call", t);
        let b = &mut self.s.buf;
        kstr(b, "service", service);
        kstr(b, "action", action);
        if let Some(res) = resource {
            kstr(b, "resource", res);
        }
        if let Some(e) = error {
            kstr(b, "error_code", e);
        }
        self.done(start, t);
    }

    pub fn file(&mut self, path: &str, op: &str, at: Option<f64>) {
        let t = self.t_at(at);
        self.file_at(path, op, t);
    }

    pub fn file_at(&mut self, path: &str, op: &str, t: f64) {
        let start = self.head("file", t);
        let b = &mut self.s.buf;
        kstr(b, "path", path);
        kstr(b, "op", op);
        self.done(start, t);
    }

    pub fn proc<S: AsRef<str>>(&mut self, exe: &str, args: &[S], parent: &str, at: Option<f64>) {
        let t = self.t_at(at);
        self.proc_at(exe, args, parent, t);
    }

    pub fn proc_at<S: AsRef<str>>(&mut self, exe: &str, args: &[S], parent: &str, t: f64) {
        let start = self.head("process", t);
        let b = &mut self.s.buf;
        kstr(b, "exe", exe);
        kstrs(b, "args", args);
        kstr(b, "parent_exe", parent);
        self.done(start, t);
    }

    /// A CDN host (sometimes one new today).
    pub fn cdn_host(&mut self, p_fresh: f64) -> String {
        let (h, fresh) = self.w.cdn.pick(self.r, p_fresh);
        self.used_new_name |= fresh;
        h.to_string()
    }

    pub fn apigw_host(&mut self, p_fresh: f64) -> String {
        let (h, fresh) = self.w.apigw.pick(self.r, p_fresh);
        self.used_new_name |= fresh;
        h.to_string()
    }

    pub fn bucket_host(&mut self, p_fresh: f64) -> String {
        let (h, fresh) = self.w.buckets.pick(self.r, p_fresh);
        self.used_new_name |= fresh;
        h.to_string()
    }
}
