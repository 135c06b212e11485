//! The fast path of the native decoder: a scanner for the shape nearly every
//! native event has (plain strings, numbers, arrays of strings, known keys),
//! reading straight into the row without serde's per-value dispatch.
//!
//! It gives up (`None`) on anything it does not handle itself: a string with
//! escapes or control characters, a value of the wrong type, an integer that
//! needs care (`-0`, more than 18 digits), a float out of range, deep nesting,
//! a syntax error. The caller then reads the event again with the serde
//! visitor, so both paths accept the same events with the same values and
//! every error message comes from one place.

use std::borrow::Cow;

use std::sync::LazyLock;

use super::{
    ExtraValue, OptEventSample, OptF64, OptI64, OptJsonArray, OptPort, OptStr, OptStrList, Parsed,
    TYPED, Typed, fast_typed_field,
};
use crate::event::EventRow;

/// Nesting the scanner follows inside unknown values before it gives up.
const MAX_DEPTH: u32 = 64;

/// A cursor over one event's JSON text.
pub(super) struct Scan<'a> {
    text: &'a str,
    b: &'a [u8],
    i: usize,
}

/// A JSON number as serde_json reports it to a visitor.
enum Num {
    Int(i64),
    Float(f64),
}

impl<'a> Scan<'a> {
    fn new(text: &'a str) -> Self {
        Scan {
            text,
            b: text.as_bytes(),
            i: 0,
        }
    }

    #[inline]
    fn ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.b.get(self.i) {
            self.i += 1;
        }
    }

    /// The next byte after whitespace.
    #[inline]
    fn peek(&mut self) -> Option<u8> {
        self.ws();
        self.b.get(self.i).copied()
    }

    #[inline]
    fn eat(&mut self, c: u8) -> Option<()> {
        (self.peek()? == c).then(|| self.i += 1)
    }

    /// `null` at the cursor, consumed.
    #[inline]
    fn null(&mut self) -> bool {
        self.ws();
        let hit = self.b[self.i..].starts_with(b"null");
        if hit {
            self.i += 4;
        }
        hit
    }

    /// Whether the string at the cursor is the key spelled `sp` (consumed
    /// if so). A key has no quote, backslash or control character, so its
    /// bytes between two quotes are the whole JSON string.
    #[inline]
    fn is_key(&mut self, sp: Spelling) -> bool {
        self.ws();
        let (n, _, _) = sp;
        let start = self.i + 1;
        let hit = self.b.get(self.i) == Some(&b'"')
            && self.b.get(start + n) == Some(&b'"')
            && self.b.get(start..start + n).is_some_and(|k| spell(k) == sp);
        if hit {
            self.i = start + n + 1;
        }
        hit
    }

    /// A string without escapes or control characters, borrowed.
    #[inline]
    fn str(&mut self) -> Option<&'a str> {
        if self.peek()? != b'"' {
            return None;
        }
        let start = self.i + 1;
        let end = find_special(self.b, start)?;
        if self.b[end] != b'"' {
            return None;
        }
        self.i = end + 1;
        // Both ends sit at an ASCII quote, so they are character boundaries.
        self.text.get(start..end)
    }

    /// A number, checked against the JSON grammar.
    fn num(&mut self) -> Option<Num> {
        self.ws();
        let b = self.b;
        let start = self.i;
        let mut i = start;
        let neg = b.get(i) == Some(&b'-');
        if neg {
            i += 1;
        }
        let digits = i;
        match b.get(i) {
            Some(b'0') => i += 1,
            Some(b'1'..=b'9') => i = digits_end(b, i),
            _ => return None,
        }
        let int_end = i;
        let mut float = false;
        let mut fraction = 0;
        if b.get(i) == Some(&b'.') {
            let d = i + 1;
            i = digits_end(b, d);
            if i == d {
                return None;
            }
            fraction = i - d;
            float = true;
        }
        // Longer mantissas take serde_json's arbitrary-precision path, whose
        // rounding of trailing zeros differs from Rust's: leave them to it.
        if int_end - digits + fraction > 19 {
            return None;
        }
        if let Some(b'e' | b'E') = b.get(i) {
            let mut d = i + 1;
            if let Some(b'+' | b'-') = b.get(d) {
                d += 1;
            }
            i = digits_end(b, d);
            if i == d {
                return None;
            }
            float = true;
        }
        self.i = i;
        if float {
            // serde_json is built with `float_roundtrip`: both round correctly.
            let v: f64 = self.text.get(start..i)?.parse().ok()?;
            return v.is_finite().then_some(Num::Float(v));
        }
        if int_end - digits > 18 {
            return None;
        }
        let v = b[digits..int_end]
            .iter()
            .fold(0i64, |v, &c| v * 10 + i64::from(c - b'0'));
        match (neg, v) {
            // serde_json reads `-0` as the float -0.0.
            (true, 0) => None,
            (true, v) => Some(Num::Int(-v)),
            (false, v) => Some(Num::Int(v)),
        }
    }

    /// Steps over any JSON value and returns its text.
    fn raw(&mut self) -> Option<&'a str> {
        self.ws();
        let start = self.i;
        self.skip(0)?;
        self.text.get(start..self.i)
    }

    fn skip(&mut self, depth: u32) -> Option<()> {
        match self.peek()? {
            b'"' => self.skip_str(),
            b'{' | b'[' if depth >= MAX_DEPTH => None,
            open @ (b'{' | b'[') => {
                let object = open == b'{';
                let close = if object { b'}' } else { b']' };
                self.i += 1;
                if self.peek()? == close {
                    self.i += 1;
                    return Some(());
                }
                loop {
                    if object {
                        self.ws();
                        self.skip_str()?;
                        self.eat(b':')?;
                    }
                    self.skip(depth + 1)?;
                    match self.peek()? {
                        b',' => self.i += 1,
                        c if c == close => {
                            self.i += 1;
                            return Some(());
                        }
                        _ => return None,
                    }
                }
            }
            b'n' => self.literal(b"null"),
            b't' => self.literal(b"true"),
            b'f' => self.literal(b"false"),
            _ => self.num().map(|_| ()),
        }
    }

    fn literal(&mut self, word: &[u8]) -> Option<()> {
        self.b[self.i..]
            .starts_with(word)
            .then(|| self.i += word.len())
    }

    /// Steps over a string at the cursor; simple escapes are fine, `\u` is left
    /// to serde_json (surrogate pairs).
    fn skip_str(&mut self) -> Option<()> {
        if self.b.get(self.i) != Some(&b'"') {
            return None;
        }
        let mut i = self.i + 1;
        loop {
            i = find_special(self.b, i)?;
            match self.b[i] {
                b'"' => {
                    self.i = i + 1;
                    return Some(());
                }
                b'\\' => match self.b.get(i + 1)? {
                    b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => i += 2,
                    _ => return None,
                },
                _ => return None,
            }
        }
    }
}

/// The end of the run of ASCII digits that starts at `i`.
#[inline]
fn digits_end(b: &[u8], mut i: usize) -> usize {
    while let Some(b'0'..=b'9') = b.get(i) {
        i += 1;
    }
    i
}

/// The first `"`, `\\` or control character at or after `i`, eight bytes at a
/// time: a string's end, an escape, or a byte JSON does not allow in strings.
#[inline]
fn find_special(b: &[u8], mut i: usize) -> Option<usize> {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    while let Some(chunk) = b.get(i..i + 8) {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        let w = u64::from_le_bytes(word);
        let quote = w ^ (ONES * u64::from(b'"'));
        let slash = w ^ (ONES * u64::from(b'\\'));
        // A byte is flagged when it is zero (after the xor) or below 0x20; a
        // false flag can only follow a true one, so the lowest flag is right.
        let hits = ((quote.wrapping_sub(ONES) & !quote)
            | (slash.wrapping_sub(ONES) & !slash)
            | (w.wrapping_sub(ONES * 0x20) & !w))
            & HIGH;
        if hits != 0 {
            return Some(i + (hits.trailing_zeros() / 8) as usize);
        }
        i += 8;
    }
    b.get(i..)?
        .iter()
        .position(|&c| c == b'"' || c == b'\\' || c < 0x20)
        .map(|p| i + p)
}

impl<'a> OptStr<'a> {
    #[inline]
    pub(super) fn fast(sc: &mut Scan<'a>) -> Option<Self> {
        if sc.null() {
            return Some(OptStr(None));
        }
        sc.str().map(|s| OptStr(Some(Cow::Borrowed(s))))
    }
}

impl OptF64 {
    pub(super) fn fast(sc: &mut Scan<'_>) -> Option<Self> {
        if sc.null() {
            return Some(OptF64(None));
        }
        Some(OptF64(Some(match sc.num()? {
            Num::Int(v) => v as f64,
            Num::Float(v) => v,
        })))
    }
}

impl OptI64 {
    pub(super) fn fast(sc: &mut Scan<'_>) -> Option<Self> {
        if sc.null() {
            return Some(OptI64(None));
        }
        match sc.num()? {
            Num::Int(v) => Some(OptI64(Some(v))),
            Num::Float(_) => None,
        }
    }
}

impl OptPort {
    pub(super) fn fast(sc: &mut Scan<'_>) -> Option<Self> {
        match OptI64::fast(sc)?.0 {
            None => Some(OptPort(None)),
            Some(p) => i32::try_from(p)
                .ok()
                .filter(|p| (0..=65535).contains(p))
                .map(|p| OptPort(Some(p))),
        }
    }
}

impl<'a> OptStrList<'a> {
    pub(super) fn fast(sc: &mut Scan<'a>) -> Option<Self> {
        if sc.null() {
            return Some(OptStrList(None));
        }
        sc.eat(b'[')?;
        let mut out = Vec::new();
        if sc.peek()? == b']' {
            sc.i += 1;
            return Some(OptStrList(Some(out)));
        }
        loop {
            out.push(Cow::Borrowed(sc.str()?));
            match sc.peek()? {
                b',' => sc.i += 1,
                b']' => {
                    sc.i += 1;
                    return Some(OptStrList(Some(out)));
                }
                _ => return None,
            }
        }
    }
}

impl<'a> OptJsonArray<'a> {
    pub(super) fn fast(sc: &mut Scan<'a>) -> Option<Self> {
        match sc.peek()? {
            b'[' => sc.raw().map(|t| OptJsonArray(Some(Cow::Borrowed(t)))),
            _ => None,
        }
    }
}

impl<'a> OptEventSample<'a> {
    pub(super) fn fast(sc: &mut Scan<'a>) -> Option<Self> {
        match sc.peek()? {
            b'{' => sc.raw().map(|t| OptEventSample(Some(Cow::Borrowed(t)))),
            _ => OptStr::fast(sc).map(|s| OptEventSample(s.0)),
        }
    }
}

/// A known key of a native event.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Key {
    Type,
    Time,
    Function,
    RequestId,
    Account,
    Region,
    Version,
    Typed(Typed),
}

/// Known keys by a hash that has no collisions among them (a seed is searched
/// for once). No key is longer than 16 bytes, so a key's length and its first
/// and last eight bytes (four when shorter) spell it out: a lookup is one hash
/// and an integer comparison, no string comparison.
struct KeyTable {
    seed: u64,
    slots: Vec<Option<(Spelling, Key)>>,
}

/// A key of at most 16 bytes: length, head and tail words.
type Spelling = (usize, u64, u64);

const SLOTS: usize = 256;
const MAX_KEY: usize = 16;

impl KeyTable {
    fn build() -> KeyTable {
        let common = [
            ("type", Key::Type),
            ("time", Key::Time),
            ("function", Key::Function),
            ("request_id", Key::RequestId),
            ("account", Key::Account),
            ("region", Key::Region),
            ("version", Key::Version),
        ];
        let keys: Vec<(Spelling, Key)> = common
            .into_iter()
            .chain(TYPED.iter().map(|&(name, f)| (name, Key::Typed(f))))
            .map(|(name, key)| {
                assert!(
                    name.len() <= MAX_KEY,
                    "key `{name}` is too long for the table"
                );
                (spell(name.as_bytes()), key)
            })
            .collect();
        for seed in 0u64.. {
            let mut slots = vec![None; SLOTS];
            let placed = keys.iter().all(|&(sp, key)| {
                let slot = &mut slots[slot_of(sp, seed)];
                slot.is_none() && slot.replace((sp, key)).is_none()
            });
            if placed {
                return KeyTable { seed, slots };
            }
        }
        unreachable!("some seed separates a few dozen keys")
    }

    #[cfg(test)]
    fn get(&self, key: &str) -> Option<Key> {
        self.find(key).map(|(key, _)| key)
    }

    /// The key and its slot.
    #[inline]
    fn find(&self, key: &str) -> Option<(Key, usize)> {
        let k = key.as_bytes();
        if k.len() > MAX_KEY {
            return None;
        }
        let sp = spell(k);
        let slot = slot_of(sp, self.seed);
        match self.slots[slot] {
            Some((found, key)) if found == sp => Some((key, slot)),
            _ => None,
        }
    }
}

#[inline]
fn spell(k: &[u8]) -> Spelling {
    let n = k.len();
    let (head, tail) = if n >= 8 {
        (load::<8>(k, 0), load::<8>(k, n - 8))
    } else if n >= 4 {
        (load::<4>(k, 0), load::<4>(k, n - 4))
    } else {
        (k.iter().fold(0u64, |h, &c| h << 8 | u64::from(c)), 0)
    };
    (n, head, tail)
}

#[inline]
fn slot_of((n, head, tail): Spelling, seed: u64) -> usize {
    let x = head
        ^ tail.rotate_left(31)
        ^ (n as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15)
        ^ seed.wrapping_mul(0xD6E8_FEB8_6659_FD93);
    (x.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 56) as usize
}

/// `N` (4 or 8) bytes of `k` from `at`, little-endian.
#[inline]
fn load<const N: usize>(k: &[u8], at: usize) -> u64 {
    let mut w = [0u8; 8];
    w[..N].copy_from_slice(&k[at..at + N]);
    u64::from_le_bytes(w)
}

static KEYS: LazyLock<KeyTable> = LazyLock::new(KeyTable::build);

/// Which key came after each key (by slot; [`START`] is the object's start,
/// [`AFTER_UNKNOWN`] an unknown key) in the last events this thread read.
/// Producers write the keys of an event type in one order, so the next key
/// is nearly always the one seen after the same key before: checking for it
/// at the cursor is cheaper than finding the key's end and looking it up.
struct NextKeys([u16; SLOTS + 2]);

const START: usize = SLOTS;
const AFTER_UNKNOWN: usize = SLOTS + 1;
const NO_SLOT: u16 = u16::MAX;

thread_local! {
    static NEXT_KEYS: std::cell::RefCell<NextKeys> =
        const { std::cell::RefCell::new(NextKeys([NO_SLOT; SLOTS + 2])) };
}

#[cfg(test)]
thread_local! {
    /// Keys this thread found where they were predicted.
    static PREDICTED: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// Reads one native event's fields into `row`; `None` when the serde
/// visitor has to read it instead (the row then holds part of the event).
pub(super) fn scan<'a>(text: &'a str, row: &mut EventRow<'a>) -> Option<Parsed<'a>> {
    NEXT_KEYS.with(|next| match next.try_borrow_mut() {
        Ok(mut next) => scan_with(text, row, Some(&mut next)),
        Err(_) => scan_with(text, row, None),
    })
}

fn scan_with<'a>(
    text: &'a str,
    row: &mut EventRow<'a>,
    mut next: Option<&mut NextKeys>,
) -> Option<Parsed<'a>> {
    let keys: &KeyTable = &KEYS;
    let mut sc = Scan::new(text);
    let mut prev = START;
    let mut p = Parsed {
        ty: None,
        time: None,
        function: None,
        extra: Vec::new(),
    };
    sc.eat(b'{')?;
    if sc.peek()? == b'}' {
        sc.i += 1;
    } else {
        loop {
            let predicted = next
                .as_deref()
                .and_then(|n| n.0.get(prev))
                .map(|&slot| usize::from(slot))
                .and_then(|slot| Some((slot, keys.slots.get(slot).copied().flatten()?)));
            let (key, name) = match predicted {
                Some((slot, (sp, key))) if sc.is_key(sp) => {
                    #[cfg(test)]
                    PREDICTED.with(|n| n.set(n.get() + 1));
                    prev = slot;
                    (Some(key), "")
                }
                _ => {
                    let name = sc.str()?;
                    let found = keys.find(name);
                    let slot = found.map_or(AFTER_UNKNOWN, |(_, slot)| slot);
                    if let Some(n) = next.as_deref_mut().and_then(|n| n.0.get_mut(prev)) {
                        *n = found.map_or(NO_SLOT, |(_, slot)| slot as u16);
                    }
                    prev = slot;
                    (found.map(|(key, _)| key), name)
                }
            };
            sc.eat(b':')?;
            match key {
                Some(Key::Type) => p.ty = OptStr::fast(&mut sc)?.0,
                Some(Key::Time) => p.time = OptStr::fast(&mut sc)?.0,
                Some(Key::Function) => p.function = OptStr::fast(&mut sc)?.0,
                Some(Key::RequestId) => row.request_id = OptStr::fast(&mut sc)?.0,
                Some(Key::Account) => row.account = OptStr::fast(&mut sc)?.0,
                Some(Key::Region) => row.region = OptStr::fast(&mut sc)?.0,
                Some(Key::Version) => row.version = OptStr::fast(&mut sc)?.0,
                Some(Key::Typed(field)) => fast_typed_field(row, field, &mut sc)?,
                None => {
                    let raw = sc.raw()?;
                    p.extra.push((Cow::Borrowed(name), ExtraValue::Text(raw)));
                }
            }
            match sc.peek()? {
                b',' => sc.i += 1,
                b'}' => {
                    sc.i += 1;
                    break;
                }
                _ => return None,
            }
        }
    }
    sc.ws();
    (sc.i == sc.b.len()).then_some(p)
}

#[cfg(test)]
mod tests {
    use super::super::{parse_with_serde, validate};
    use super::{KEYS, Key, find_special, scan};
    use crate::event::{EventRow, EventType};

    #[test]
    fn find_special_matches_a_plain_search() {
        let plain = |b: &[u8], from: usize| {
            b[from..]
                .iter()
                .position(|&c| c == b'"' || c == b'\\' || c < 0x20)
                .map(|p| from + p)
        };
        for len in 0..40 {
            for at in 0..len {
                for c in [
                    b'"', b'\\', 0x1f, 0, b' ', b'a', 0x7f, 0x80, 0xff, 0x21, 0x5d,
                ] {
                    for filler in [b'x', 0xc3, 0x80] {
                        let mut v = vec![filler; len];
                        v[at] = c;
                        if at + 3 < len {
                            v[at + 3] = b'"';
                        }
                        for from in 0..=at {
                            assert_eq!(
                                find_special(&v, from),
                                plain(&v, from),
                                "{v:?} from {from}"
                            );
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn key_table_finds_every_key_and_nothing_else() {
        for (name, field) in super::TYPED {
            assert_eq!(KEYS.get(name), Some(Key::Typed(*field)), "{name}");
        }
        assert_eq!(KEYS.get("function"), Some(Key::Function));
        assert_eq!(KEYS.get("request_id"), Some(Key::RequestId));
        for other in [
            "",
            "t",
            "types",
            "functio",
            "function ",
            "memory",
            "bytes",
            "x_duration_ms",
            "max_memory_mb_and_more",
        ] {
            assert_eq!(KEYS.get(other), None, "{other}");
        }
    }

    /// What a path makes of `text`: the row or the error, as Debug text (so
    /// floats compare bit for bit); `None` when the fast path gives up.
    fn outcome(text: &str, fast: bool) -> Option<String> {
        let mut row = EventRow::new(EventType::Log, 0, "");
        let result = if fast {
            let parsed = scan(text, &mut row)?;
            validate(&mut row, parsed)
        } else {
            parse_with_serde(text, &mut row)
        };
        Some(match result {
            Ok(()) => format!("{row:?}"),
            Err(e) => format!("{e:?}"),
        })
    }

    /// Whether the fast path read `text`; panics when it read it differently.
    fn agrees(text: &str) -> bool {
        match outcome(text, true) {
            Some(fast) => {
                let slow = outcome(text, false).expect("serde path always answers");
                assert_eq!(fast, slow, "fast and serde paths differ on {text:?}");
                true
            }
            None => false,
        }
    }

    fn sample_lines() -> Vec<String> {
        use std::io::Read;
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/data/sample.jsonl.gz");
        let mut text = String::new();
        flate2::read::GzDecoder::new(std::fs::File::open(path).expect("sample"))
            .read_to_string(&mut text)
            .expect("gzip");
        let attacks = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/data/attacks.jsonl");
        text.push_str(&std::fs::read_to_string(attacks).expect("attacks"));
        text.lines().map(str::to_string).collect()
    }

    #[test]
    fn fast_path_reads_the_shipped_telemetry_like_serde() {
        let lines = sample_lines();
        let fast = lines.iter().filter(|l| agrees(l)).count();
        // Only lines with escaped strings may need the serde path.
        let escaped = lines.iter().filter(|l| l.contains('\\')).count();
        assert!(
            fast + escaped >= lines.len(),
            "fast path read {fast} of {} lines ({escaped} with escapes)",
            lines.len()
        );
        assert!(fast > lines.len() / 2, "fast path read only {fast} lines");
    }

    #[test]
    fn a_predicted_key_is_checked_to_its_closing_quote() {
        let line = |key: &str| {
            format!(
                r#"{{"type":"dns",{key}:"A","time":"2026-11-20T00:00:01Z","function":"f","request_id":"r","query":"a.b"}}"#
            )
        };
        // The keys' order is learnt (the second line finds all six keys
        // where they were predicted); then keys that begin, end or are
        // spelt like the predicted `qtype` take its place.
        assert!(agrees(&line(r#""qtype""#)));
        let before = super::PREDICTED.with(|n| n.get());
        assert!(agrees(&line(r#""qtype""#)));
        assert_eq!(super::PREDICTED.with(|n| n.get()) - before, 6);
        for odd in [
            r#""qtyp""#,
            r#""qtypes""#,
            r#""qtype ""#,
            r#""Qtype""#,
            r#""qtypf""#,
            r#""rcode""#,
            r#""qtype""#,
            r#""qtype"""#,
            r#" "qtype" "#,
            r#""qtype"#,
        ] {
            agrees(&line(odd));
            assert!(agrees(&line(r#""qtype""#)), "after {odd}");
        }
    }

    #[test]
    fn keys_in_any_order_read_like_serde() {
        // Events whose keys come in a different order from line to line,
        // with unknown and foreign keys among them, read on one thread: the
        // predictions are often wrong and sometimes right.
        let dns = [
            r#""type":"dns""#,
            r#""time":"2026-11-20T00:00:01Z""#,
            r#""function":"f""#,
            r#""request_id":"r""#,
            r#""query":"a.example.com""#,
            r#""qtype":"A""#,
            r#""answers":["1.2.3.4"]"#,
            r#""custom_field_longer_than_sixteen":1"#,
            r#""x":null"#,
            r#""exe":"/bin/sh""#,
        ];
        let mut seed = 0x2545_f491_4f6c_dd1d_u64;
        let mut next = |n: usize| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed % n as u64) as usize
        };
        let before = super::PREDICTED.with(|n| n.get());
        for round in 0..400 {
            let mut keys: Vec<&str> = dns.to_vec();
            // Every third line has the keys in the order listed, the others shuffled.
            if round % 3 != 0 {
                for i in (1..keys.len()).rev() {
                    keys.swap(i, next(i + 1));
                }
            }
            let take = keys.len() - next(3);
            let text = format!("{{{}}}", keys[..take].join(","));
            agrees(&text);
        }
        assert!(super::PREDICTED.with(|n| n.get()) > before);
    }

    #[test]
    fn fast_path_agrees_with_serde_on_odd_input() {
        let base = r#""time":"2026-11-20T00:00:01Z","function":"f","request_id":"r""#;
        let inv =
            |rest: &str| format!(r#"{{"type":"invocation",{base},"status":"success",{rest}}}"#);
        let cases = [
            inv(r#""duration_ms":0.1"#),
            inv(r#""duration_ms":1e-7,"cpu_ms":2.5E+3"#),
            inv(r#""duration_ms":123456789012345678"#),
            inv(r#""duration_ms":1234567890123456789012"#),
            inv(r#""duration_ms":12345678901234567.891"#),
            inv(r#""duration_ms":0.12345678901234567891234"#),
            inv(&format!(
                r#""duration_ms":9007199254740993{}e-753"#,
                "0".repeat(753)
            )),
            inv(r#""duration_ms":-0"#),
            inv(r#""duration_ms":-0.0"#),
            inv(r#""duration_ms":1e400"#),
            inv(r#""duration_ms":01"#),
            inv(r#""duration_ms":1."#),
            inv(r#""duration_ms":.5"#),
            inv(r#""duration_ms":"fast""#),
            inv(r#""duration_ms":null"#),
            inv(r#""duration_ms":5,"billed_ms":5.0"#),
            inv(r#""duration_ms":5,"billed_ms":-7"#),
            inv(r#""duration_ms":5,"billed_ms":99999999999999999999"#),
            inv(r#""duration_ms":5,"event":{"body":"a\"b\\c","n":[1,2.5,{"x":null}],"t":true}"#),
            inv(r#""duration_ms":5,"event":{"body":"\u00e9"}"#),
            inv(r#""duration_ms":5,"event":"plain sample""#),
            inv(r#""duration_ms":5,"event":7"#),
            inv(r#""duration_ms":5,"custom":{"a":[[[]]],"b":false},"more":"x""#),
            inv(r#""duration_ms":5,"query":"moved.example.com","answers":["a","b"]"#),
            inv(r#""duration_ms":5,"duration_ms":6"#),
            inv(r#""duration_ms":5,"status":"crash""#),
            inv(r#""duration_ms":5,"trigger":"caf\u00e9""#),
            inv(r#""duration_ms":5,"trigger":"naïve ✓""#),
            inv(r#""duration_ms":5,"remote_port":70000"#),
            inv(r#""duration_ms":5,"bad\"key":1"#),
            inv(r#""duration_ms":5,"#),
            format!(r#"{{"type":"invocation",{base},"status":"success","duration_ms":5}} x"#),
            format!(
                " \t{{ \"type\" : \"dns\" , {base} , \"query\" : \"a.b\" , \"answers\" : [ \"1.2.3.4\" , \"::1\" ] }}\r\n "
            ),
            format!(r#"{{"type":"network",{base},"remote_ip":"10.0.0.1","remote_port":443}}"#),
            format!(r#"{{"type":"network",{base},"remote_ip":"10.0.0.1","remote_port":-1}}"#),
            format!(r#"{{"type":"network",{base},"remote_ip":"10.0.0.1","remote_port":443.0}}"#),
            format!(r#"{{"type":"process",{base},"exe":"/bin/sh","args":["sh","-c","id"]}}"#),
            format!(r#"{{"type":"process",{base},"exe":"/bin/sh","args":["sh",1]}}"#),
            format!(r#"{{"type":"process",{base},"exe":"/bin/sh","args":[]}}"#),
            format!(r#"{{"type":"process",{base},"exe":"/bin/sh","args":"sh"}}"#),
            format!(r#"{{"type":"dns",{base},"query":"a\tb"}}"#),
            format!("{{\"type\":\"dns\",{base},\"query\":\"a\tb\"}}"),
            format!(r#"{{"type":"dns",{base},"query":"x","account":123}}"#),
            format!(r#"{{"type":"bogus",{base}}}"#),
            format!(r#"{{"type":null,{base}}}"#),
            r#"{"type":"dns"}"#.to_string(),
            "{}".to_string(),
            "{".to_string(),
            "[]".to_string(),
        ];
        for case in &cases {
            agrees(case);
        }
        // And every cut and one-byte change of a few real lines.
        let lines = sample_lines();
        let mut read = 0;
        for line in lines.iter().step_by(97).take(40) {
            for cut in 0..line.len() {
                if line.is_char_boundary(cut) {
                    agrees(&line[..cut]);
                }
            }
            for (at, _) in line.char_indices().step_by(3) {
                for with in ["\"", ",", ":", "{", "}", "[", "]", "0", "-", " ", "\\", "e"] {
                    let mut mangled = line.clone();
                    mangled.replace_range(
                        at..at + line[at..].chars().next().map_or(0, char::len_utf8),
                        with,
                    );
                    read += usize::from(agrees(&mangled));
                }
            }
        }
        assert!(read > 0, "the fast path read none of the changed lines");
    }

    /// A key and value of a native event: known keys of every type with
    /// values of the right or wrong kind, unknown keys, odd spacing.
    fn member() -> impl Strategy<Value = String> {
        let key = prop_oneof![
            Just("type"),
            Just("time"),
            Just("function"),
            Just("request_id"),
            Just("account"),
            Just("region"),
            Just("version"),
            Just("duration_ms"),
            Just("billed_ms"),
            Just("cpu_ms"),
            Just("memory_mb"),
            Just("init_ms"),
            Just("status"),
            Just("trigger"),
            Just("event"),
            Just("event_bytes"),
            Just("query"),
            Just("qtype"),
            Just("answers"),
            Just("exe"),
            Just("args"),
            Just("cmdline"),
            Just("remote_ip"),
            Just("remote_port"),
            Just("bytes_out"),
            Just("path"),
            Just("op"),
            Just("service"),
            Just("action"),
            Just("resource"),
            Just("permissions"),
            Just("layers"),
            Just("source"),
            Just("event_id"),
            Just("a_custom_key_longer_than_sixteen"),
            Just("x"),
        ];
        let number = prop_oneof![
            any::<i64>().prop_map(|n| n.to_string()),
            any::<f64>()
                .prop_filter("finite", |f| f.is_finite())
                .prop_map(|f| format!("{f:e}")),
            (0u32..1000, 0u32..1000).prop_map(|(a, b)| format!("{a}.{b}")),
            Just("-0".to_string()),
            Just("1e400".to_string()),
            Just("01".to_string()),
        ];
        let string = "[ -~éü✓\u{2028}\t\\\\\"/]{0,10}".prop_map(|s| format!("\"{s}\""));
        let escaped = "[ -~é]{0,10}".prop_map(|s| serde_json::to_string(&s).unwrap_or_default());
        let time = prop_oneof![
            Just("\"2026-11-20T00:00:01Z\"".to_string()),
            Just("\"2026-11-20T00:00:01.123456789+02:00\"".to_string()),
            Just("\"2026-02-30T00:00:01Z\"".to_string()),
            Just("\"2026-11-20 00:00:01\"".to_string()),
        ];
        let kind = prop_oneof![
            Just("\"dns\""),
            Just("\"invocation\""),
            Just("\"process\""),
            Just("\"network\""),
            Just("\"file\""),
            Just("\"api_call\""),
            Just("\"function_config\""),
            Just("\"bogus\""),
        ]
        .prop_map(str::to_string);
        let value = prop_oneof![
            number,
            string.clone(),
            escaped.clone(),
            time,
            kind,
            Just("null".to_string()),
            Just("true".to_string()),
            proptest::collection::vec(escaped, 0..3).prop_map(|v| format!("[{}]", v.join(","))),
            string.prop_map(|s| format!("{{\"k\":{s},\"n\":[1,{{}}]}}")),
        ];
        (key, value, 0..4u8).prop_map(|(k, v, sp)| {
            let ws = ["", " ", "\t", " \r\n"][usize::from(sp)];
            format!("{ws}\"{k}\"{ws}:{ws}{v}{ws}")
        })
    }

    /// Lines of generated members, mostly with the required keys first.
    fn line() -> impl Strategy<Value = String> {
        (proptest::collection::vec(member(), 0..14), any::<bool>(), 0..5u8).prop_map(
            |(members, head, kind)| {
                let mut all = Vec::new();
                if head {
                    let t = ["dns", "invocation", "process", "network", "file"][usize::from(kind)];
                    all.push(format!(
                        r#""type":"{t}","time":"2026-11-20T00:00:01Z","function":"f","request_id":"r""#
                    ));
                }
                all.extend(members);
                format!("{{{}}}", all.join(","))
            },
        )
    }

    /// A sample line with a few of its bytes replaced, removed or repeated.
    fn mutated() -> impl Strategy<Value = String> {
        let lines = sample_lines();
        let edit = (
            any::<prop::sample::Index>(),
            0..4u8,
            any::<prop::sample::Index>(),
        );
        (
            any::<prop::sample::Index>(),
            proptest::collection::vec(edit, 1..4),
        )
            .prop_map(move |(which, edits)| {
                let mut b = which.get(&lines).clone().into_bytes();
                const WITH: &[u8] = b"\"\\,:{}[]0-. e\tu";
                for (at, op, with) in edits {
                    if b.is_empty() {
                        break;
                    }
                    let i = at.index(b.len());
                    match op {
                        0 => b[i] = *with.get(WITH),
                        1 => {
                            b.remove(i);
                        }
                        2 => b.insert(i, *with.get(WITH)),
                        _ => b.truncate(i),
                    }
                }
                String::from_utf8_lossy(&b).into_owned()
            })
    }

    fn agree(text: String) -> Result<(), TestCaseError> {
        agrees(&text);
        Ok(())
    }

    use crate::decode::fuzz::{cases, check};
    use proptest::prelude::*;
    use proptest::test_runner::TestCaseError;

    #[test]
    fn generated_lines_read_like_serde() {
        check("native lines", cases(512).min(4_000), line(), agree);
    }

    #[test]
    fn mutated_sample_lines_read_like_serde() {
        check("mutated lines", cases(512).min(4_000), mutated(), agree);
    }

    #[test]
    #[ignore = "long fuzz run: FNWATCH_FUZZ_CASES (default 10M)"]
    fn fuzz_long_native_lines() {
        check("native lines", cases(10_000_000), line(), agree);
    }

    #[test]
    #[ignore = "long fuzz run: FNWATCH_FUZZ_CASES (default 10M)"]
    fn fuzz_long_mutated_lines() {
        check("mutated lines", cases(10_000_000), mutated(), agree);
    }
}
