//! The common shape of command line, read without the full parser.
//!
//! Functions that shell out on every invocation run lines such as
//! `convert '/tmp/in/photo (3).jpg' -resize 256x256 "/tmp/out/x.png" 2>/dev/null`:
//! simple commands of plain and quoted words, joined by `;`, `&&`, `||`,
//! `|` or `&`, with file redirections. [`read`] reads exactly that subset
//! and builds the same [`ShellLine`] the parser's walk builds (a property
//! test holds the two to each other); anything else (substitutions,
//! expansions, compound commands, comments, here-documents, array
//! assignments, nested shells and wrappers, newlines, unbalanced quotes) returns `None`
//! and goes to `brush-parser`. Reading a line this way costs a small
//! fraction of a full parse.

use super::{Command, INTERPRETERS, SHELLS, ShellLine, WRAPPERS, network_looking, redirect_key};
use super::{Walker, structure};

/// Words that begin a compound command, a declaration or a timed pipeline
/// when they come first: the parser treats them specially.
const RESERVED: [&str; 28] = [
    "if", "then", "else", "elif", "fi", "do", "done", "case", "esac", "while", "until", "for",
    "in", "function", "select", "time", "coproc", "{", "}", "!", "[[", "]]", "export", "local",
    "declare", "readonly", "typeset", "alias",
];

/// A word's bytes that need no quoting and mean nothing to the shell.
fn plain(b: u8) -> bool {
    b.is_ascii_alphanumeric()
        || matches!(
            b,
            b'_' | b'-'
                | b'.'
                | b'/'
                | b':'
                | b','
                | b'+'
                | b'@'
                | b'%'
                | b'^'
                | b'='
                | b'*'
                | b'?'
                | b'['
                | b']'
        )
        || b >= 0x80
}

struct Lexer<'a> {
    s: &'a [u8],
    src: &'a str,
    at: usize,
}

enum Tok {
    /// A word with its quotes removed; whether the parser takes it for an
    /// assignment.
    Word(String, bool),
    /// `[n]>`, `[n]>>`, `[n]<`, `&>`, `&>>`: the operator as the walk names it.
    Redirect(&'static str),
    /// `[n]>&m`: between the command's own streams.
    DupFd,
    Op(&'static str),
    End,
}

impl Lexer<'_> {
    fn blanks(&mut self) {
        while self.at < self.s.len() && matches!(self.s[self.at], b' ' | b'\t') {
            self.at += 1;
        }
    }

    fn peek(&self, k: usize) -> Option<u8> {
        self.s.get(self.at + k).copied()
    }

    /// The next token, `None` when the line leaves the subset.
    fn next(&mut self) -> Option<Tok> {
        self.blanks();
        let Some(b) = self.peek(0) else {
            return Some(Tok::End);
        };
        match b {
            b';' => {
                if self.peek(1) == Some(b';') {
                    return None;
                }
                self.at += 1;
                Some(Tok::Op(";"))
            }
            b'&' => match self.peek(1) {
                Some(b'&') => {
                    self.at += 2;
                    Some(Tok::Op("&&"))
                }
                Some(b'>') => {
                    if self.peek(2) == Some(b'>') {
                        self.at += 3;
                        Some(Tok::Redirect("&>>"))
                    } else {
                        self.at += 2;
                        Some(Tok::Redirect("&>"))
                    }
                }
                _ => {
                    self.at += 1;
                    Some(Tok::Op("&"))
                }
            },
            b'|' => match self.peek(1) {
                Some(b'|') => {
                    self.at += 2;
                    Some(Tok::Op("||"))
                }
                Some(b'&') => None,
                _ => {
                    self.at += 1;
                    Some(Tok::Op("|"))
                }
            },
            b'<' | b'>' => self.redirect(),
            _ => self.word(),
        }
    }

    /// A redirection operator at `self.at` (after any fd digits).
    fn redirect(&mut self) -> Option<Tok> {
        match (self.peek(0)?, self.peek(1)) {
            (b'>', Some(b'>')) => {
                self.at += 2;
                Some(Tok::Redirect(">>"))
            }
            (b'>', Some(b'&')) => {
                self.at += 2;
                let start = self.at;
                while self.peek(0).is_some_and(|b| b.is_ascii_digit()) {
                    self.at += 1;
                }
                // `>&-` (close) and `>& file` are left to the parser.
                let ends = self
                    .peek(0)
                    .is_none_or(|b| matches!(b, b' ' | b'\t' | b';' | b'|'));
                (self.at > start && ends).then_some(Tok::DupFd)
            }
            (b'>', Some(b'|' | b'(')) | (b'<', Some(b'<' | b'&' | b'>' | b'(')) => None,
            (b'>', _) => {
                self.at += 1;
                Some(Tok::Redirect(">"))
            }
            (b'<', _) => {
                self.at += 1;
                Some(Tok::Redirect("<"))
            }
            _ => None,
        }
    }

    /// A word with its quotes removed; `None` for anything the subset does
    /// not hold (expansions, substitutions, comments, brackets, tildes,
    /// newlines). An all-digit word right before `<` or `>` is that
    /// redirection's descriptor.
    fn word(&mut self) -> Option<Tok> {
        let start = self.at;
        let mut out = String::new();
        let mut quoted = false;
        while let Some(b) = self.peek(0) {
            match b {
                b' ' | b'\t' | b';' | b'&' | b'|' => break,
                b'<' | b'>' => {
                    if !quoted
                        && self.at > start
                        && self.s[start..self.at].iter().all(u8::is_ascii_digit)
                    {
                        return self.redirect();
                    }
                    break;
                }
                b'\'' => {
                    quoted = true;
                    let end = self.s[self.at + 1..].iter().position(|&c| c == b'\'')?;
                    out.push_str(self.src.get(self.at + 1..self.at + 1 + end)?);
                    self.at += end + 2;
                }
                b'"' => {
                    quoted = true;
                    self.at += 1;
                    let mut run = self.at;
                    loop {
                        match self.peek(0)? {
                            b'"' => break,
                            b'$' | b'`' | b'\n' | b'\r' => return None,
                            b'\\' => match self.peek(1)? {
                                c @ (b'"' | b'\\' | b'$' | b'`') => {
                                    out.push_str(self.src.get(run..self.at)?);
                                    out.push(c as char);
                                    self.at += 2;
                                    run = self.at;
                                }
                                _ => return None,
                            },
                            _ => self.at += 1,
                        }
                    }
                    out.push_str(self.src.get(run..self.at)?);
                    self.at += 1;
                }
                b'\\' => {
                    // An escaped character outside quotes: itself.
                    let c = self.peek(1)?;
                    if !(c.is_ascii_graphic() || c == b' ') {
                        return None;
                    }
                    out.push(c as char);
                    self.at += 2;
                }
                b if plain(b) => {
                    let run = self.at;
                    while self.peek(0).is_some_and(plain) {
                        self.at += 1;
                    }
                    out.push_str(self.src.get(run..self.at)?);
                }
                // `$`, backticks, `~`, `#`, brackets and braces, `!`,
                // control characters: the parser's.
                _ => return None,
            }
        }
        // `NAME=value` and `NAME+=value` are assignments to the parser
        // wherever they stand (`NAME[i]=` forms are the parser's).
        let raw = &self.s[start..self.at];
        let mut assignment = false;
        if raw
            .first()
            .is_some_and(|b| b.is_ascii_alphabetic() || *b == b'_')
        {
            let name_end = raw
                .iter()
                .position(|b| !(b.is_ascii_alphanumeric() || *b == b'_'))
                .unwrap_or(raw.len());
            match raw.get(name_end) {
                Some(b'=') => assignment = true,
                Some(b'+') if raw.get(name_end + 1) == Some(&b'=') => assignment = true,
                Some(b'[') => return None,
                _ => {}
            }
        }
        Some(Tok::Word(out, assignment))
    }
}

/// One simple command being read.
#[derive(Default)]
struct Simple {
    words: Vec<String>,
    redirects: Vec<String>,
    /// It has assignments.
    assigns: bool,
}

/// Reads `script` when it is in the subset, as the parser's walk would.
pub(super) fn read(script: &str) -> Option<ShellLine> {
    let mut lx = Lexer {
        s: script.as_bytes(),
        src: script,
        at: 0,
    };
    let mut w = Walker::default();
    // The line's shape is written as it is read: commands joined by their
    // operators, list items by ` ; ` or ` & `.
    let mut shape = String::with_capacity(script.len());
    // A command is in the item being read; the command being read follows
    // a `|`; the item before this one (not yet separated) ran in the
    // background.
    let mut item_open = false;
    let mut piped = false;
    let mut pending: Option<bool> = None;
    let mut items = 0usize;
    let mut cmd = Simple::default();
    loop {
        let op = match lx.next()? {
            Tok::Word(_, true) => {
                // Before the command or among its arguments, the walk notes
                // the assignment and keeps its value out of the words.
                w.line.structure.insert(structure::ASSIGNMENT);
                cmd.assigns = true;
                continue;
            }
            Tok::Word(word, false) => {
                if cmd.words.is_empty() && RESERVED.contains(&word.as_str()) {
                    return None;
                }
                cmd.words.push(word);
                continue;
            }
            Tok::Redirect(op) => {
                if cmd.words.is_empty() {
                    return None;
                }
                let Tok::Word(target, _) = lx.next()? else {
                    return None;
                };
                let key = redirect_key(op, &target);
                if op != "&>" && op != "&>>" && network_looking(&target) {
                    w.line.network_args.push(target);
                }
                w.line.redirects.insert(key.clone());
                cmd.redirects.push(key);
                continue;
            }
            Tok::DupFd => {
                if cmd.words.is_empty() {
                    return None;
                }
                cmd.redirects.push(">&fd".to_string());
                continue;
            }
            Tok::Op(op) => Some(op),
            Tok::End => None,
        };
        if op.is_none() && cmd.words.is_empty() && !cmd.assigns && !item_open {
            // `a;` or `a &` at the end (an empty line is the parser's).
            if items == 0 {
                return None;
            }
            break;
        }
        // A command ends here (`;;`, `a && && b`, `| b` and the like have
        // none, and are the parser's).
        if !item_open {
            // A list item starts: the separator after the one before.
            match pending.take() {
                Some(true) => shape.push(' '),
                Some(false) => {
                    w.line.structure.insert(structure::SEQUENCE);
                    shape.push_str(" ; ");
                }
                None => {}
            }
            item_open = true;
        }
        let before = w.line.commands.len();
        finish(&mut w, std::mem::take(&mut cmd), &mut shape)?;
        if piped {
            w.line.structure.insert(structure::PIPE);
            if w.line.commands[before..]
                .first()
                .is_some_and(|c| INTERPRETERS.contains(&c.name.as_str()))
            {
                w.line.structure.insert(structure::PIPE_TO_SHELL);
            }
        }
        piped = op == Some("|");
        match op {
            Some("|") => shape.push_str(" | "),
            Some("&&") => {
                w.line.structure.insert(structure::AND);
                shape.push_str(" && ");
            }
            Some("||") => {
                w.line.structure.insert(structure::OR);
                shape.push_str(" || ");
            }
            _ => {
                // A list item ends here.
                items += 1;
                item_open = false;
                let background = op == Some("&");
                if background {
                    w.line.structure.insert(structure::BACKGROUND);
                    shape.push_str(" &");
                }
                pending = Some(background);
                if op.is_none() {
                    break;
                }
            }
        }
    }
    w.line.shape = shape;
    Some(w.line)
}

/// Records one simple command as the walk's `run` does; appends its shape
/// to `shape`.
fn finish(w: &mut Walker, cmd: Simple, shape: &mut String) -> Option<()> {
    let Simple {
        words, redirects, ..
    } = cmd;
    let (name, own) = w.name_and_shape(&words)?;
    // Nested shells, `eval` and wrappers run more commands: the walk's.
    if SHELLS.contains(&name.as_str()) || name == "eval" || WRAPPERS.contains(&name.as_str()) {
        return None;
    }
    w.line.commands.push(Command { name, words });
    shape.push_str(&own);
    for r in &redirects {
        shape.push(' ');
        shape.push_str(r);
    }
    Some(())
}
