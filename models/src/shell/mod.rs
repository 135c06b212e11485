//! Shell command lines: what a function's `sh -c STRING` really runs.
//!
//! Functions that shell out (ImageMagick, ffmpeg, git) start `/bin/sh -c
//! "<command line>"` on every invocation, and a command injection hides
//! *inside* that string: an in-function sensor sees the shell, not the
//! shell's own children. [`script_of`] finds the command line of a shell
//! process (`sh|bash|dash|zsh|ash|ksh -c STRING`, from `args` or from a
//! `cmdline` string); [`parse`] reads it with `brush-parser` (a maintained
//! POSIX/bash parser) into the commands it runs with their arguments
//! (quotes removed), its structure (lists `;` `&&` `||`, pipelines, command
//! and process substitution, redirections, background jobs, here-documents,
//! subshells, compound commands) and the files it redirects to.
//! [`ShellProfile`] is what training learns of a function's command lines;
//! [`judge`] compares one line with it.
//!
//! A string that does not parse is reported as such ([`Parsed::Unparsed`]),
//! with the parser's reason: a broken quote is what a clumsy injection
//! leaves behind. The parser runs behind `catch_unwind` and with limits on
//! length and nesting, so a hostile string cannot stop a run.

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet};

use brush_parser::ast;
use brush_parser::word::{WordPiece, WordPieceWithSource};
use serde::{Deserialize, Serialize};

use crate::names;

mod fast;

/// Longest command line parsed, in bytes; a longer one is a finding itself.
pub const MAX_SCRIPT_BYTES: usize = 16 * 1024;
/// Deepest nesting of brackets and substitutions parsed.
pub const MAX_NESTING: usize = 64;
/// Command substitutions (and `sh -c`, `eval`) followed this deep.
const MAX_DEPTH: usize = 6;
/// Distinct line shapes kept per function (the rest are counted, not kept).
pub const MAX_SHAPES: usize = 2_000;

/// Shells whose `-c` string is a command line.
const SHELLS: [&str; 8] = ["sh", "bash", "dash", "zsh", "ash", "ksh", "mksh", "busybox"];

/// Programs that read a script from their standard input: a pipe into one
/// runs whatever came down the pipe.
const INTERPRETERS: [&str; 14] = [
    "sh", "bash", "dash", "zsh", "ash", "ksh", "mksh", "busybox", "python", "python3", "perl",
    "ruby", "php", "node",
];

/// Commands that command injections run and image, video or document
/// pipelines do not: downloaders and network tools, shells and
/// interpreters, reconnaissance, encoders, persistence. New to a function's
/// command lines, they are `high`; any other new command is `medium`.
const ATTACK_COMMANDS: [&str; 72] = [
    "curl", "wget", "nc", "ncat", "netcat", "socat", "telnet", "ssh", "scp", "sftp", "ftp", "tftp",
    "rsync", "ping", "nslookup", "dig", "host", "getent", "sh", "bash", "dash", "zsh", "ash",
    "ksh", "mksh", "busybox", "python", "python2", "python3", "perl", "ruby", "php", "node", "lua",
    "eval", "exec", "source", ".", "id", "whoami", "uname", "hostname", "cat", "env", "printenv",
    "ps", "ls", "find", "ifconfig", "ip", "netstat", "ss", "base64", "base32", "xxd", "od",
    "openssl", "gpg", "chmod", "chown", "crontab", "nohup", "mkfifo", "mknod", "dd", "rm", "sleep",
    "kill", "pkill", "awk", "xmrig", "$",
];

/// Commands that run the rest of their arguments as another command.
const WRAPPERS: [&str; 9] = [
    "nohup", "exec", "command", "builtin", "nice", "env", "timeout", "stdbuf", "time",
];

/// A structure element of a command line, as learnt and reported.
pub mod structure {
    pub const SEQUENCE: &str = "`;` (a second command after the first)";
    pub const AND: &str = "`&&`";
    pub const OR: &str = "`||`";
    pub const PIPE: &str = "a pipe `|`";
    pub const PIPE_TO_SHELL: &str = "a pipe into a shell or interpreter";
    pub const COMMAND_SUBSTITUTION: &str = "command substitution `$(...)`";
    pub const BACKTICKS: &str = "backtick substitution";
    pub const PROCESS_SUBSTITUTION: &str = "process substitution `<(...)`";
    pub const BACKGROUND: &str = "a background job `&`";
    pub const HERE_DOCUMENT: &str = "a here-document `<<`";
    pub const HERE_STRING: &str = "a here-string `<<<`";
    pub const SUBSHELL: &str = "a subshell `( )`";
    pub const GROUP: &str = "a command group `{ }`";
    pub const COMPOUND: &str = "a compound command (if, for, while, case)";
    pub const FUNCTION: &str = "a function definition";
    pub const ASSIGNMENT: &str = "a variable assignment";
    pub const NESTED_SHELL: &str = "a nested shell command line (`sh -c`, `eval`)";
    pub const DYNAMIC_COMMAND: &str = "a command name made by an expansion";
}

/// One command a command line runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Command {
    /// The program's base name (`curl` for `/usr/bin/curl`), `$` when the
    /// name is an expansion.
    pub name: String,
    /// Its words with quotes removed, the name first; an expansion is kept
    /// as written (`$(id)`, `$HOME`).
    pub words: Vec<String>,
}

/// A command line read by the parser.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ShellLine {
    /// Every command it runs, in substitutions and nested shells too, in order.
    pub commands: Vec<Command>,
    /// Its structure elements ([`structure`]).
    pub structure: BTreeSet<&'static str>,
    /// Redirections: `op target`, targets reduced like file paths
    /// ([`redirect_key`]).
    pub redirects: BTreeSet<String>,
    /// Arguments that look like network peers (URLs, IP addresses, `host:port`).
    pub network_args: Vec<String>,
    /// The line's shape: commands with their argument shapes
    /// ([`names::args_shape`]) joined by their operators.
    pub shape: String,
}

/// What [`parse`] made of a string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Parsed {
    Line(ShellLine),
    /// Not shell syntax (or over the limits): why.
    Unparsed(String),
}

/// Whether an executable is a shell that takes a command line with `-c`.
pub fn is_shell(exe: &str) -> bool {
    let base = exe.rsplit('/').next().unwrap_or(exe);
    SHELLS.contains(&base)
}

/// The command line a shell process runs: the string after `-c` (or an
/// option group holding `c`, such as `-ec`) in `args`, or in `cmdline` when
/// the sensor sent only that. `None` for anything but a shell given `-c`.
pub fn script_of<'a>(
    exe: &str,
    args: &[&'a str],
    cmdline: Option<&'a str>,
) -> Option<Cow<'a, str>> {
    if !is_shell(exe) && !args.first().is_some_and(|a| is_shell(a)) {
        return None;
    }
    if !args.is_empty() {
        // argv[0], then `busybox sh`'s applet name, then options.
        let mut rest = args.iter().skip(1).peekable();
        if exe.ends_with("busybox") || args[0].ends_with("busybox") {
            if rest.peek().is_some_and(|a| is_shell(a)) {
                rest.next();
            } else {
                return None;
            }
        }
        let mut takes_c = false;
        for a in rest {
            if takes_c && !a.starts_with('-') && !a.starts_with('+') {
                return Some(Cow::Borrowed(*a));
            }
            if *a == "--" {
                if takes_c {
                    continue;
                }
                return None;
            }
            if is_c_option(a) {
                takes_c = true;
            } else if !a.starts_with('-') && !a.starts_with('+') {
                // A script file or a lone argument: not a command line.
                return None;
            }
        }
        return None;
    }
    let line = cmdline?;
    // `cmdline` is argv joined by spaces (sometimes quoted): the command
    // line is everything after the `-c` option group.
    let mut at = 0usize;
    let mut first = true;
    let mut applet = exe.ends_with("busybox");
    for tok in line.split(' ') {
        let start = at;
        at += tok.len() + 1;
        if tok.is_empty() {
            continue;
        }
        if first {
            first = false;
            applet |= tok.ends_with("busybox");
            continue;
        }
        if applet {
            applet = false;
            if is_shell(tok) {
                continue;
            }
            return None;
        }
        if is_c_option(tok) {
            let rest = line.get(start + tok.len()..).unwrap_or("").trim_start();
            if rest.is_empty() {
                return None;
            }
            return Some(unquote_whole(rest));
        }
        if !tok.starts_with('-') && !tok.starts_with('+') {
            return None;
        }
    }
    None
}

fn is_c_option(a: &str) -> bool {
    a.len() >= 2
        && a.starts_with('-')
        && !a.starts_with("--")
        && a[1..].bytes().all(|b| b.is_ascii_alphabetic())
        && a[1..].contains('c')
}

/// `'...'` or `"..."` around the whole string (one quoted argv element
/// written back by the sensor): its content; anything else as it is.
fn unquote_whole(s: &str) -> Cow<'_, str> {
    let b = s.as_bytes();
    if b.len() >= 2 && b[0] == b'\'' && b[b.len() - 1] == b'\'' {
        let inner = &s[1..s.len() - 1];
        if !inner.contains('\'') {
            return Cow::Borrowed(inner);
        }
    }
    if b.len() >= 2 && b[0] == b'"' && b[b.len() - 1] == b'"' {
        let inner = &s[1..s.len() - 1];
        let mut out = String::with_capacity(inner.len());
        let mut chars = inner.chars();
        while let Some(c) = chars.next() {
            match c {
                '\\' => match chars.next() {
                    Some(n @ ('"' | '\\' | '$' | '`')) => out.push(n),
                    Some(n) => {
                        out.push('\\');
                        out.push(n);
                    }
                    // A final lone backslash would escape the closing quote.
                    None => return Cow::Borrowed(s),
                },
                // An unescaped quote inside: not one quoted word.
                '"' => return Cow::Borrowed(s),
                c => out.push(c),
            }
        }
        return Cow::Owned(out);
    }
    Cow::Borrowed(s)
}

/// Parses a command line. Never panics: a parser failure on a hostile
/// string is reported as [`Parsed::Unparsed`] (and logged with the string).
pub fn parse(script: &str) -> Parsed {
    if script.len() > MAX_SCRIPT_BYTES {
        return Parsed::Unparsed(format!(
            "{} bytes long, over the {MAX_SCRIPT_BYTES} parsed",
            script.len()
        ));
    }
    if nesting(script) > MAX_NESTING {
        return Parsed::Unparsed(format!(
            "brackets or substitutions nested over {MAX_NESTING} deep"
        ));
    }
    match std::panic::catch_unwind(|| parse_unguarded(script)) {
        Ok(p) => p,
        Err(panic) => {
            let why = panic_text(&*panic);
            let excerpt: String = script.chars().take(300).collect();
            tracing::warn!(
                command_line = %excerpt.escape_debug(),
                panic = %why,
                "the shell parser failed on a command line; it is reported as unparseable"
            );
            Parsed::Unparsed(format!("the shell parser failed on it ({why})"))
        }
    }
}

/// Command lines of one batch's shell processes, parsed ahead of the
/// per-row pass: each distinct line once, on every core when there are many
/// (parsing is the costly part of judging a function that shells out on
/// every invocation, and it needs nothing but the line).
#[derive(Default)]
pub struct BatchLines {
    /// Rows and their parsed lines, in row order.
    parsed: std::collections::VecDeque<(usize, Parsed)>,
}

/// Lines at which parsing is spread over threads.
const PARALLEL_FROM: usize = 64;

impl BatchLines {
    /// Parses the command line of every shell process in `rows`.
    pub fn parse(rows: &crate::rows::Rows<'_>) -> BatchLines {
        use rayon::prelude::*;
        // Distinct lines (borrowed from the batch unless unquoted), and the
        // rows that run each.
        let mut unique: Vec<Cow<'_, str>> = Vec::new();
        let mut index: std::collections::HashMap<Cow<'_, str>, usize, foldhash::fast::RandomState> =
            Default::default();
        let mut at: Vec<(usize, usize)> = Vec::new();
        for i in 0..rows.len {
            if rows.kind.get(i) != Some("process") {
                continue;
            }
            let Some(exe) = rows.exe.get(i) else { continue };
            let Some(script) = script_of(exe, &rows.args.get(i), rows.cmdline.get(i)) else {
                continue;
            };
            let next = unique.len();
            let u = *index.entry(script).or_insert_with_key(|k| {
                unique.push(k.clone());
                next
            });
            at.push((i, u));
        }
        drop(index);
        let mut lines: Vec<Option<Parsed>> = if unique.len() >= PARALLEL_FROM {
            unique.par_iter().map(|s| Some(parse(s))).collect()
        } else {
            unique.iter().map(|s| Some(parse(s))).collect()
        };
        let mut uses = vec![0usize; unique.len()];
        for &(_, u) in &at {
            uses[u] += 1;
        }
        let mut parsed = std::collections::VecDeque::with_capacity(at.len());
        for (i, u) in at {
            uses[u] -= 1;
            let p = if uses[u] == 0 {
                lines[u].take()
            } else {
                lines[u].clone()
            };
            if let Some(p) = p {
                parsed.push_back((i, p));
            }
        }
        BatchLines { parsed }
    }

    /// Row `i`'s parsed line, when [`BatchLines::parse`] parsed it. Rows
    /// are asked for in order (rows before `i` not asked for are passed).
    pub fn take(&mut self, i: usize) -> Option<Parsed> {
        while self.parsed.front().is_some_and(|(r, _)| *r < i) {
            self.parsed.pop_front();
        }
        match self.parsed.front() {
            Some((r, _)) if *r == i => self.parsed.pop_front().map(|(_, p)| p),
            _ => None,
        }
    }
}

/// A batch whose command lines are being parsed on the thread pool while
/// the batch before it goes through the row pass (which then rarely waits
/// for the parser).
pub struct PendingLines {
    batch: arrow::array::RecordBatch,
    lines: std::sync::mpsc::Receiver<BatchLines>,
}

impl PendingLines {
    /// Starts parsing the command lines of `batch`.
    pub fn spawn(batch: &arrow::array::RecordBatch) -> PendingLines {
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        let b = batch.clone();
        rayon::spawn(move || {
            // `parse` already turns a parser panic into `Unparsed`; should
            // anything else fail here, the row pass parses the lines itself.
            let lines = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                crate::rows::Rows::new(&b)
                    .map(|rows| BatchLines::parse(&rows))
                    .unwrap_or_default()
            }))
            .unwrap_or_default();
            let _ = tx.send(lines);
        });
        PendingLines {
            batch: batch.clone(),
            lines: rx,
        }
    }

    /// The batch and its parsed lines, once they are parsed.
    pub fn wait(self) -> (arrow::array::RecordBatch, BatchLines) {
        let lines = self.lines.recv().unwrap_or_default();
        (self.batch, lines)
    }
}

/// A panic payload's message.
pub fn panic_text(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "panic".to_string())
}

/// Deepest running nesting of `(`, `{` and backticks (a cheap upper bound,
/// quotes not considered): the parser recurses that deep.
fn nesting(s: &str) -> usize {
    let (mut depth, mut max, mut tick) = (0usize, 0usize, false);
    for b in s.bytes() {
        match b {
            b'(' | b'{' => {
                depth += 1;
                max = max.max(depth + usize::from(tick));
            }
            b')' | b'}' => depth = depth.saturating_sub(1),
            b'`' => tick = !tick,
            _ => {}
        }
    }
    max
}

fn options() -> brush_parser::ParserOptions {
    brush_parser::ParserOptions::default()
}

fn parse_unguarded(script: &str) -> Parsed {
    match fast::read(script) {
        Some(line) => Parsed::Line(line),
        None => walk(script),
    }
}

/// The parser's reading of a line, and its walk.
fn walk(script: &str) -> Parsed {
    let mut w = Walker::default();
    match w.program(script, 0) {
        Ok(shape) => {
            w.line.shape = shape;
            Parsed::Line(w.line)
        }
        Err(why) => Parsed::Unparsed(why),
    }
}

#[derive(Default)]
struct Walker {
    line: ShellLine,
}

impl Walker {
    /// Parses and walks one program (the line, or a substitution's body).
    fn program(&mut self, script: &str, depth: usize) -> Result<String, String> {
        if depth > MAX_DEPTH {
            return Err(format!("substitutions nested over {MAX_DEPTH} deep"));
        }
        let mut parser = brush_parser::Parser::new(
            std::io::Cursor::new(script.as_bytes()),
            &options(),
            &brush_parser::SourceInfo::default(),
        );
        let program = parser.parse_program().map_err(|e| e.to_string())?;
        let mut parts = Vec::new();
        for list in &program.complete_commands {
            parts.push(self.list(list, depth)?);
        }
        if program.complete_commands.len() > 1 {
            self.line.structure.insert(structure::SEQUENCE);
        }
        Ok(parts.join(" ; "))
    }

    fn list(&mut self, list: &ast::CompoundList, depth: usize) -> Result<String, String> {
        let mut out = String::new();
        let n = list.0.len();
        for (i, item) in list.0.iter().enumerate() {
            let ast::CompoundListItem(and_or, sep) = item;
            out.push_str(&self.and_or(and_or, depth)?);
            let last = i + 1 == n;
            match sep {
                ast::SeparatorOperator::Async => {
                    self.line.structure.insert(structure::BACKGROUND);
                    out.push_str(" &");
                    if !last {
                        out.push(' ');
                    }
                }
                ast::SeparatorOperator::Sequence if !last => {
                    self.line.structure.insert(structure::SEQUENCE);
                    out.push_str(" ; ");
                }
                ast::SeparatorOperator::Sequence => {}
            }
        }
        Ok(out)
    }

    fn and_or(&mut self, l: &ast::AndOrList, depth: usize) -> Result<String, String> {
        let mut out = self.pipeline(&l.first, depth)?;
        for next in &l.additional {
            let (op, p) = match next {
                ast::AndOr::And(p) => {
                    self.line.structure.insert(structure::AND);
                    (" && ", p)
                }
                ast::AndOr::Or(p) => {
                    self.line.structure.insert(structure::OR);
                    (" || ", p)
                }
            };
            out.push_str(op);
            out.push_str(&self.pipeline(p, depth)?);
        }
        Ok(out)
    }

    fn pipeline(&mut self, p: &ast::Pipeline, depth: usize) -> Result<String, String> {
        let mut parts = Vec::with_capacity(p.seq.len());
        for (i, c) in p.seq.iter().enumerate() {
            let before = self.line.commands.len();
            parts.push(self.command(c, depth)?);
            if i > 0 {
                self.line.structure.insert(structure::PIPE);
                if self.line.commands[before..]
                    .first()
                    .is_some_and(|c| INTERPRETERS.contains(&c.name.as_str()))
                {
                    self.line.structure.insert(structure::PIPE_TO_SHELL);
                }
            }
        }
        let mut out = parts.join(" | ");
        if p.bang {
            out.insert_str(0, "! ");
        }
        Ok(out)
    }

    fn command(&mut self, c: &ast::Command, depth: usize) -> Result<String, String> {
        match c {
            ast::Command::Simple(s) => self.simple(s, depth),
            ast::Command::Compound(cc, redirects) => {
                let mut out = self.compound(cc, depth)?;
                if let Some(r) = redirects {
                    for io in &r.0 {
                        out.push(' ');
                        out.push_str(&self.redirect(io, depth)?);
                    }
                }
                Ok(out)
            }
            ast::Command::ExtendedTest(_) => Ok("[[ ]]".to_string()),
            ast::Command::Function(f) => {
                self.line.structure.insert(structure::FUNCTION);
                let body = self.compound(&f.body.0, depth)?;
                Ok(format!("fn() {body}"))
            }
        }
    }

    fn compound(&mut self, c: &ast::CompoundCommand, depth: usize) -> Result<String, String> {
        use ast::CompoundCommand as C;
        Ok(match c {
            C::BraceGroup(g) => {
                self.line.structure.insert(structure::GROUP);
                format!("{{ {} }}", self.list(&g.list, depth)?)
            }
            C::Subshell(s) => {
                self.line.structure.insert(structure::SUBSHELL);
                format!("( {} )", self.list(&s.list, depth)?)
            }
            C::ForClause(f) => {
                self.line.structure.insert(structure::COMPOUND);
                if let Some(values) = &f.values {
                    for v in values {
                        self.word(&v.value, depth)?;
                    }
                }
                format!("for {{ {} }}", self.list(&f.body.list, depth)?)
            }
            C::ArithmeticForClause(f) => {
                self.line.structure.insert(structure::COMPOUND);
                format!("for(( {{ {} }}", self.list(&f.body.list, depth)?)
            }
            C::CaseClause(cc) => {
                self.line.structure.insert(structure::COMPOUND);
                self.word(&cc.value.value, depth)?;
                let mut arms = Vec::new();
                for item in &cc.cases {
                    if let Some(cmd) = &item.cmd {
                        arms.push(self.list(cmd, depth)?);
                    }
                }
                format!("case {{ {} }}", arms.join(" ;; "))
            }
            C::IfClause(i) => {
                self.line.structure.insert(structure::COMPOUND);
                let mut out = format!(
                    "if {{ {} }} then {{ {} }}",
                    self.list(&i.condition, depth)?,
                    self.list(&i.then, depth)?
                );
                if let Some(elses) = &i.elses {
                    for e in elses {
                        if let Some(c) = &e.condition {
                            out.push_str(&format!(" elif {{ {} }}", self.list(c, depth)?));
                        }
                        out.push_str(&format!(" else {{ {} }}", self.list(&e.body, depth)?));
                    }
                }
                out
            }
            C::WhileClause(w) | C::UntilClause(w) => {
                self.line.structure.insert(structure::COMPOUND);
                format!(
                    "while {{ {} }} do {{ {} }}",
                    self.list(&w.0, depth)?,
                    self.list(&w.1.list, depth)?
                )
            }
            C::Arithmetic(_) => "(( ))".to_string(),
        })
    }

    fn simple(&mut self, s: &ast::SimpleCommand, depth: usize) -> Result<String, String> {
        let mut words: Vec<String> = Vec::new();
        let mut redirects: Vec<String> = Vec::new();
        let mut before: Vec<String> = Vec::new();
        for item in s.prefix.iter().flat_map(|p| p.0.iter()) {
            self.item(item, depth, &mut before, &mut redirects)?;
        }
        if let Some(w) = &s.word_or_name {
            words.push(self.word(&w.value, depth)?);
        }
        for item in s.suffix.iter().flat_map(|p| p.0.iter()) {
            self.item(item, depth, &mut words, &mut redirects)?;
        }
        let mut out = if words.is_empty() {
            // Assignments or redirections only.
            "=".to_string()
        } else {
            self.run(words, depth)?
        };
        for r in &redirects {
            out.push(' ');
            out.push_str(r);
        }
        Ok(out)
    }

    /// A command's name (`$` when an expansion makes it) and its shape
    /// (the name and its arguments' shapes); notes its network-looking
    /// arguments. `None` for no words.
    fn name_and_shape(&mut self, words: &[String]) -> Option<(String, String)> {
        let first = words.first()?;
        let dynamic = first.starts_with('$') || first.starts_with('`');
        let name = if dynamic {
            self.line.structure.insert(structure::DYNAMIC_COMMAND);
            "$".to_string()
        } else {
            first.rsplit('/').next().unwrap_or(first).to_string()
        };
        for w in words.iter().skip(1) {
            if network_looking(w) {
                self.line.network_args.push(w.clone());
            }
        }
        let mut shape = String::with_capacity(name.len() + 8 * words.len());
        shape.push_str(&name);
        shape.push(' ');
        names::push_args_shape(&mut shape, words.iter().map(String::as_str));
        shape.truncate(shape.trim_end().len());
        Some((name, shape))
    }

    /// Records a command (and what it wraps or evaluates); returns its shape.
    fn run(&mut self, words: Vec<String>, depth: usize) -> Result<String, String> {
        let Some((name, shape)) = self.name_and_shape(&words) else {
            return Ok(String::new());
        };
        let first = &words[0];
        let refs: Vec<&str> = words.iter().map(String::as_str).collect();
        let nested: Option<String> = if SHELLS.contains(&name.as_str()) {
            script_of(first, &refs, None).map(Cow::into_owned)
        } else if name == "eval" {
            Some(words[1..].join(" "))
        } else {
            None
        };
        let wrapped: Option<Vec<String>> = if WRAPPERS.contains(&name.as_str()) {
            let mut rest = words.iter().skip(1).peekable();
            // Options, `VAR=value` (env) and a duration (timeout).
            while let Some(w) = rest.peek() {
                let skip = w.starts_with('-')
                    || (name == "env" && w.contains('='))
                    || (name == "timeout" && w.bytes().next().is_some_and(|b| b.is_ascii_digit()));
                if !skip {
                    break;
                }
                rest.next();
            }
            let rest: Vec<String> = rest.cloned().collect();
            (!rest.is_empty()).then_some(rest)
        } else {
            None
        };
        self.line.commands.push(Command { name, words });
        if let Some(script) = nested {
            self.line.structure.insert(structure::NESTED_SHELL);
            self.program(&script, depth + 1)?;
        }
        if let Some(w) = wrapped {
            self.run(w, depth)?;
        }
        Ok(shape)
    }

    fn item(
        &mut self,
        item: &ast::CommandPrefixOrSuffixItem,
        depth: usize,
        words: &mut Vec<String>,
        redirects: &mut Vec<String>,
    ) -> Result<(), String> {
        use ast::CommandPrefixOrSuffixItem as I;
        match item {
            I::IoRedirect(io) => redirects.push(self.redirect(io, depth)?),
            I::Word(w) => words.push(self.word(&w.value, depth)?),
            I::AssignmentWord(_, w) => {
                self.line.structure.insert(structure::ASSIGNMENT);
                // The value may hold a substitution.
                if let Some((_, value)) = w.value.split_once('=') {
                    self.word(value, depth)?;
                }
            }
            I::ProcessSubstitution(_, sub) => {
                self.line.structure.insert(structure::PROCESS_SUBSTITUTION);
                let inner = self.list(&sub.list, depth + 1)?;
                words.push(format!("<({inner})"));
            }
        }
        Ok(())
    }

    fn redirect(&mut self, io: &ast::IoRedirect, depth: usize) -> Result<String, String> {
        use ast::IoFileRedirectKind as K;
        use ast::IoFileRedirectTarget as T;
        Ok(match io {
            ast::IoRedirect::File(_, kind, target) => {
                let op = match kind {
                    K::Read => "<",
                    K::Write => ">",
                    K::Append => ">>",
                    K::ReadAndWrite => "<>",
                    K::Clobber => ">|",
                    K::DuplicateInput => "<&",
                    K::DuplicateOutput => ">&",
                };
                match target {
                    T::Filename(w) => {
                        let t = self.word(&w.value, depth)?;
                        let key = redirect_key(op, &t);
                        if network_looking(&t) {
                            self.line.network_args.push(t.clone());
                        }
                        self.line.redirects.insert(key.clone());
                        key
                    }
                    // `2>&1`, `>&2`: between the command's own streams.
                    T::Fd(_) | T::Duplicate(_) => format!("{op}fd"),
                    T::ProcessSubstitution(_, sub) => {
                        self.line.structure.insert(structure::PROCESS_SUBSTITUTION);
                        format!("{op}({})", self.list(&sub.list, depth + 1)?)
                    }
                }
            }
            ast::IoRedirect::HereDocument(_, doc) => {
                self.line.structure.insert(structure::HERE_DOCUMENT);
                if doc.requires_expansion {
                    self.word(&doc.doc.value, depth)?;
                }
                "<<".to_string()
            }
            ast::IoRedirect::HereString(_, w) => {
                self.line.structure.insert(structure::HERE_STRING);
                self.word(&w.value, depth)?;
                "<<<".to_string()
            }
            ast::IoRedirect::OutputAndError(w, append) => {
                let t = self.word(&w.value, depth)?;
                let key = redirect_key(if *append { "&>>" } else { "&>" }, &t);
                self.line.redirects.insert(key.clone());
                key
            }
        })
    }

    /// A word with quotes removed; substitutions inside it are walked as
    /// programs of their own.
    fn word(&mut self, raw: &str, depth: usize) -> Result<String, String> {
        // Plain words (most of them) need no second parse.
        if !raw
            .bytes()
            .any(|b| matches!(b, b'\'' | b'"' | b'\\' | b'$' | b'`' | b'~'))
        {
            return Ok(raw.to_string());
        }
        let pieces = brush_parser::word::parse(raw, &options()).map_err(|e| e.to_string())?;
        let mut out = String::with_capacity(raw.len());
        for p in &pieces {
            self.piece(p, raw, depth, &mut out)?;
        }
        Ok(out)
    }

    fn piece(
        &mut self,
        p: &WordPieceWithSource,
        raw: &str,
        depth: usize,
        out: &mut String,
    ) -> Result<(), String> {
        // The piece as written (indices are into the whole word).
        let source = raw.get(p.start_index..p.end_index).unwrap_or("$");
        match &p.piece {
            WordPiece::Text(t) | WordPiece::SingleQuotedText(t) | WordPiece::AnsiCQuotedText(t) => {
                out.push_str(t)
            }
            WordPiece::EscapeSequence(e) => out.push_str(e.strip_prefix('\\').unwrap_or(e)),
            WordPiece::DoubleQuotedSequence(inner)
            | WordPiece::GettextDoubleQuotedSequence(inner) => {
                for q in inner {
                    self.piece(q, raw, depth, out)?;
                }
            }
            WordPiece::TildePrefix(_) => out.push('~'),
            WordPiece::ParameterExpansion(_) | WordPiece::ArithmeticExpression(_) => {
                out.push_str(source)
            }
            WordPiece::CommandSubstitution(body) => {
                self.line.structure.insert(structure::COMMAND_SUBSTITUTION);
                self.program(body, depth + 1)?;
                out.push_str(source);
            }
            WordPiece::BackquotedCommandSubstitution(body) => {
                self.line.structure.insert(structure::BACKTICKS);
                self.program(body, depth + 1)?;
                out.push_str(source);
            }
        }
        Ok(())
    }
}

/// `op target` with the target reduced like a file path: `> /tmp` for
/// `> /tmp/out-8f3k2.log`, `> /dev/null`, `> /dev/tcp` for bash's network
/// redirections.
pub fn redirect_key(op: &str, target: &str) -> String {
    if let Some(dev) = target.strip_prefix("/dev/") {
        let first = dev.split('/').next().unwrap_or("");
        return format!("{op} /dev/{first}");
    }
    if target.starts_with('/') {
        return format!("{op} {}", names::dir_of(&names::path_shape(target), 3));
    }
    if target.starts_with('$') || target.starts_with('`') {
        return format!("{op} $");
    }
    format!("{op} .")
}

/// URLs, IP addresses, `ip:port` and `host:port`.
pub fn network_looking(w: &str) -> bool {
    if w.len() < 4 || w.len() > 2048 {
        return false;
    }
    // Without a colon only an IPv4 address or a `/dev/tcp` path can be one
    // (most words: checked first, every word of every line goes through here).
    if !w.as_bytes().contains(&b':') {
        return names::is_ip(w) || w.starts_with("/dev/tcp/") || w.starts_with("/dev/udp/");
    }
    if let Some((scheme, rest)) = w.split_once("://") {
        return !scheme.is_empty()
            && scheme
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'+')
            && !rest.is_empty()
            && scheme != "file";
    }
    if names::is_ip(w) {
        return true;
    }
    if w.starts_with("/dev/tcp/") || w.starts_with("/dev/udp/") {
        return true;
    }
    if let Some((host, port)) = w.rsplit_once(':')
        && !port.is_empty()
        && port.len() <= 5
        && port.bytes().all(|b| b.is_ascii_digit())
        && port.parse::<u32>().is_ok_and(|p| (1..=65_535).contains(&p))
    {
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let host = host.rsplit('@').next().unwrap_or(host);
        if names::is_ip(host) {
            return true;
        }
        return host.contains('.')
            && host.len() >= 4
            && host
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-')
            && host.bytes().any(|b| b.is_ascii_alphabetic())
            && !host.starts_with('.')
            && !host.ends_with('.');
    }
    false
}

/// Whether a command is one injections run ([`ATTACK_COMMANDS`]).
pub fn attack_command(name: &str) -> bool {
    ATTACK_COMMANDS.contains(&name)
}

/// A `sleep` among the commands a line runs.
pub fn runs_sleep(line: &ShellLine) -> bool {
    line.commands.iter().any(|c| c.name == "sleep")
}

/// What a function's command lines normally are.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ShellProfile {
    /// Command lines seen, and how many of them did not parse.
    pub lines: u64,
    #[serde(default)]
    pub unparsed: u64,
    /// Commands run inside them (base names), with counts.
    #[serde(default)]
    pub commands: BTreeMap<String, u64>,
    /// Structure elements ([`structure`]), with counts.
    #[serde(default)]
    pub structure: BTreeMap<String, u64>,
    /// Line shapes (at most [`MAX_SHAPES`]), with counts.
    #[serde(default)]
    pub shapes: BTreeMap<String, u64>,
    /// Redirections (`op target-dir`), with counts.
    #[serde(default)]
    pub redirects: BTreeMap<String, u64>,
    /// Lines with network-looking arguments.
    #[serde(default)]
    pub network_lines: u64,
}

fn bump(m: &mut BTreeMap<String, u64>, k: &str) {
    match m.get_mut(k) {
        Some(n) => *n += 1,
        None => {
            m.insert(k.to_string(), 1);
        }
    }
}

impl ShellProfile {
    /// Folds one command line of training.
    pub fn learn(&mut self, parsed: &Parsed) {
        self.lines += 1;
        let line = match parsed {
            Parsed::Unparsed(_) => {
                self.unparsed += 1;
                return;
            }
            Parsed::Line(l) => l,
        };
        let names: BTreeSet<&str> = line.commands.iter().map(|c| c.name.as_str()).collect();
        for n in names {
            bump(&mut self.commands, n);
        }
        for s in &line.structure {
            bump(&mut self.structure, s);
        }
        for r in &line.redirects {
            bump(&mut self.redirects, r);
        }
        if !line.network_args.is_empty() {
            self.network_lines += 1;
        }
        if self.shapes.len() < MAX_SHAPES || self.shapes.contains_key(&line.shape) {
            bump(&mut self.shapes, &line.shape);
        }
    }
}

/// How bad one difference from the baseline is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Low,
    Medium,
    High,
}

/// One way a command line differs from the function's baseline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub level: Level,
    /// `new_command`, `new_structure`, `network_argument`,
    /// `new_redirect`, `new_shape`, `unparseable`.
    pub rule: &'static str,
    /// The thing itself (a command name, a structure element, an argument).
    pub what: String,
    /// Words for the summary.
    pub why: String,
}

/// Compares a command line with the function's baseline. Empty when the
/// line is like the ones it runs.
pub fn judge(parsed: &Parsed, base: &ShellProfile) -> Vec<Finding> {
    let mut out = Vec::new();
    let line = match parsed {
        Parsed::Unparsed(why) => {
            let level = if base.unparsed > 0 {
                Level::Low
            } else {
                Level::Medium
            };
            out.push(Finding {
                level,
                rule: "unparseable",
                what: why.clone(),
                why: format!(
                    "does not parse as shell syntax ({why}), which {} of its {} command lines did not either",
                    base.unparsed, base.lines
                ),
            });
            return out;
        }
        Parsed::Line(l) => l,
    };
    let mut seen: BTreeSet<&str> = BTreeSet::new();
    for c in &line.commands {
        if base.commands.contains_key(&c.name) || !seen.insert(c.name.as_str()) {
            continue;
        }
        let sensitive = c
            .words
            .iter()
            .skip(1)
            .find_map(|w| names::sensitive_path(w));
        let level = if attack_command(&c.name) || sensitive.is_some() {
            Level::High
        } else {
            Level::Medium
        };
        let mut why = format!("runs `{}`, which its command lines never run", c.name);
        if let Some(s) = sensitive {
            why.push_str(&format!(" (on {s})"));
        }
        out.push(Finding {
            level,
            rule: "new_command",
            what: c.name.clone(),
            why,
        });
    }
    for s in &line.structure {
        if base.structure.contains_key(*s) {
            continue;
        }
        let level = match *s {
            structure::PIPE_TO_SHELL
            | structure::COMMAND_SUBSTITUTION
            | structure::BACKTICKS
            | structure::PROCESS_SUBSTITUTION
            | structure::NESTED_SHELL
            | structure::DYNAMIC_COMMAND => Level::High,
            structure::ASSIGNMENT | structure::COMPOUND | structure::FUNCTION => Level::Low,
            _ => Level::Medium,
        };
        out.push(Finding {
            level,
            rule: "new_structure",
            what: s.to_string(),
            why: format!("has {s}, which its command lines never have"),
        });
    }
    if !line.network_args.is_empty() && base.network_lines == 0 {
        let shown: Vec<&str> = line
            .network_args
            .iter()
            .take(3)
            .map(String::as_str)
            .collect();
        out.push(Finding {
            level: Level::High,
            rule: "network_argument",
            what: shown.join(" "),
            why: format!(
                "passes network-looking arguments ({}), which its command lines never do",
                shown.join(", ")
            ),
        });
    }
    for r in &line.redirects {
        if base.redirects.contains_key(r) {
            continue;
        }
        let target = r.split_once(' ').map_or("", |(_, t)| t);
        let level = if target == "/dev/tcp" || target == "/dev/udp" {
            Level::High
        } else if names::sensitive_path(target).is_some()
            || target.starts_with("/etc")
            || target.starts_with("/var/task")
        {
            Level::Medium
        } else {
            Level::Low
        };
        out.push(Finding {
            level,
            rule: "new_redirect",
            what: r.clone(),
            why: format!("redirects `{r}`, which its command lines never do"),
        });
    }
    // A line with nothing else new but its argument pattern (a redirect,
    // command or structure already explains a new pattern).
    if out.is_empty() && base.shapes.len() < MAX_SHAPES && !base.shapes.contains_key(&line.shape) {
        out.push(Finding {
            level: Level::Low,
            rule: "new_shape",
            what: line.shape.clone(),
            why: format!(
                "has the argument pattern `{}`, new for its command lines",
                line.shape
            ),
        });
    }
    out.sort_by_key(|f| std::cmp::Reverse(f.level));
    out
}

#[cfg(test)]
mod tests;
