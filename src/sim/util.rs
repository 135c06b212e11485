//! Small, fast helpers: seeded randomness, RFC 3339 times, hand-written JSON.
//!
//! Everything here is deterministic: the same RNG state gives the same bytes.

use std::io::Write as _;

use rand::Rng as _;
use rand_chacha::ChaCha8Rng;

pub type Rng = ChaCha8Rng;

pub const ALNUM: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
pub const ALNUM_US: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789_";
pub const HEX: &[u8] = b"0123456789abcdef";
pub const DIGITS: &[u8] = b"0123456789";
pub const BASE32: &[u8] = b"abcdefghijklmnopqrstuvwxyz234567";
pub const BASE58: &[u8] = b"123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz";

// ---- randomness -------------------------------------------------------------

/// A uniform number in [0, 1).
#[inline]
pub fn unif(r: &mut Rng) -> f64 {
    r.random::<f64>()
}

#[inline]
pub fn uniform(r: &mut Rng, lo: f64, hi: f64) -> f64 {
    lo + (hi - lo) * unif(r)
}

#[inline]
pub fn chance(r: &mut Rng, p: f64) -> bool {
    unif(r) < p
}

/// A uniform integer in `lo..=hi`.
#[inline]
pub fn int(r: &mut Rng, lo: i64, hi: i64) -> i64 {
    if hi <= lo {
        return lo;
    }
    r.random_range(lo..=hi)
}

/// A uniform index in `0..n` (0 when `n` is 0).
#[inline]
pub fn index(r: &mut Rng, n: usize) -> usize {
    if n <= 1 {
        return 0;
    }
    r.random_range(0..n)
}

/// One element of a non-empty slice.
#[inline]
pub fn pick<'a, T>(r: &mut Rng, xs: &'a [T]) -> &'a T {
    &xs[index(r, xs.len())]
}

/// One element of a slice of `(value, weight)`.
pub fn weighted<'a, T>(r: &mut Rng, xs: &'a [(T, f64)]) -> &'a T {
    let total: f64 = xs.iter().map(|x| x.1).sum();
    let mut u = unif(r) * total;
    for (v, w) in xs {
        if u < *w {
            return v;
        }
        u -= w;
    }
    &xs[xs.len() - 1].0
}

/// A standard normal deviate (Box-Muller).
pub fn gauss(r: &mut Rng) -> f64 {
    let u1 = 1.0 - unif(r);
    let u2 = unif(r);
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

pub fn lognorm(r: &mut Rng, median: f64, sigma: f64) -> f64 {
    median * (gauss(r) * sigma).exp()
}

/// A Poisson-distributed count (normal approximation above 30).
pub fn poisson(r: &mut Rng, lambda: f64) -> u64 {
    if lambda <= 0.0 {
        return 0;
    }
    if lambda > 30.0 {
        let x = lambda + gauss(r) * lambda.sqrt();
        return x.round().max(0.0) as u64;
    }
    let l = (-lambda).exp();
    let mut k = 0u64;
    let mut p = 1.0;
    loop {
        p *= unif(r);
        if p <= l {
            return k;
        }
        k += 1;
    }
}

pub fn token(r: &mut Rng, n: usize, alphabet: &[u8]) -> String {
    let mut s = String::with_capacity(n);
    for _ in 0..n {
        s.push(alphabet[index(r, alphabet.len())] as char);
    }
    s
}

/// A random (version 4) UUID.
pub fn uuid(r: &mut Rng) -> String {
    let mut v: u128 = r.random();
    v = (v & !(0xF << 76)) | (0x4 << 76);
    v = (v & !(0x3 << 62)) | (0x2 << 62);
    let mut s = String::with_capacity(36);
    for i in 0..32 {
        if matches!(i, 8 | 12 | 16 | 20) {
            s.push('-');
        }
        let nib = ((v >> (124 - 4 * i)) & 0xF) as usize;
        s.push(HEX[nib] as char);
    }
    s
}

/// FNV-1a: a stable hash of a string (for address books and code hashes).
pub fn fnv(s: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in s.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// splitmix64: spreads the bits of `x`.
pub fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// Standard base64 (with padding) of `bytes`.
pub fn base64(bytes: &[u8]) -> String {
    const T: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for c in bytes.chunks(3) {
        let b = [c[0], *c.get(1).unwrap_or(&0), *c.get(2).unwrap_or(&0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        out.push(T[(n >> 18) as usize & 63] as char);
        out.push(T[(n >> 12) as usize & 63] as char);
        out.push(if c.len() > 1 {
            T[(n >> 6) as usize & 63] as char
        } else {
            '='
        });
        out.push(if c.len() > 2 {
            T[n as usize & 63] as char
        } else {
            '='
        });
    }
    out
}

/// 32 pseudo-random bytes derived from a string, base64: a stand-in for a
/// code bundle's SHA-256.
pub fn fake_sha256_b64(s: &str) -> String {
    let mut h = fnv(s);
    let mut bytes = [0u8; 32];
    for chunk in bytes.chunks_mut(8) {
        h = mix(h);
        chunk.copy_from_slice(&h.to_le_bytes());
    }
    base64(&bytes)
}

// ---- time -------------------------------------------------------------------

pub const MS_PER_DAY: i64 = 86_400_000;

/// (year, month, day) of a day count since 1970-01-01.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[inline]
fn two(buf: &mut Vec<u8>, v: u32) {
    buf.push(b'0' + (v / 10 % 10) as u8);
    buf.push(b'0' + (v % 10) as u8);
}

/// Appends `2026-11-23T10:00:00.412Z` for epoch milliseconds `ms`.
pub fn iso_into(buf: &mut Vec<u8>, ms: i64) {
    let days = ms.div_euclid(MS_PER_DAY);
    let rem = ms.rem_euclid(MS_PER_DAY);
    let (y, m, d) = civil_from_days(days);
    let y = y.clamp(0, 9999) as u32;
    two(buf, y / 100);
    two(buf, y % 100);
    buf.push(b'-');
    two(buf, m);
    buf.push(b'-');
    two(buf, d);
    buf.push(b'T');
    let secs = (rem / 1000) as u32;
    two(buf, secs / 3600);
    buf.push(b':');
    two(buf, secs / 60 % 60);
    buf.push(b':');
    two(buf, secs % 60);
    buf.push(b'.');
    let milli = (rem % 1000) as u32;
    buf.push(b'0' + (milli / 100) as u8);
    two(buf, milli % 100);
    buf.push(b'Z');
}

pub fn iso(ms: i64) -> String {
    let mut b = Vec::with_capacity(24);
    iso_into(&mut b, ms);
    String::from_utf8(b).unwrap_or_default()
}

/// `YYYY-MM-DD` of epoch milliseconds.
pub fn date(ms: i64) -> String {
    let mut s = iso(ms);
    s.truncate(10);
    s
}

// ---- JSON -------------------------------------------------------------------

/// Appends `s` as a JSON string (quoted, escaped).
pub fn esc(buf: &mut Vec<u8>, s: &str) {
    buf.push(b'"');
    let bytes = s.as_bytes();
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let rep: &[u8] = match b {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0..=0x1f => {
                buf.extend_from_slice(&bytes[start..i]);
                let _ = write!(buf, "\\u{:04x}", b);
                start = i + 1;
                continue;
            }
            _ => continue,
        };
        buf.extend_from_slice(&bytes[start..i]);
        buf.extend_from_slice(rep);
        start = i + 1;
    }
    buf.extend_from_slice(&bytes[start..]);
    buf.push(b'"');
}

/// Appends an integer.
pub fn int_into(buf: &mut Vec<u8>, v: i64) {
    if v < 0 {
        buf.push(b'-');
    }
    let mut n = v.unsigned_abs();
    let mut tmp = [0u8; 20];
    let mut i = tmp.len();
    loop {
        i -= 1;
        tmp[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    buf.extend_from_slice(&tmp[i..]);
}

/// Appends a finite float in its shortest form (`84.2`, `6000`).
pub fn float_into(buf: &mut Vec<u8>, v: f64) {
    if !v.is_finite() {
        buf.extend_from_slice(b"0");
    } else if v.fract() == 0.0 && v.abs() < 1e15 {
        int_into(buf, v as i64);
    } else {
        let _ = write!(buf, "{v}");
    }
}

pub fn round_to(v: f64, decimals: i32) -> f64 {
    let p = 10f64.powi(decimals);
    (v * p).round() / p
}

#[inline]
fn key(buf: &mut Vec<u8>, k: &str) {
    buf.extend_from_slice(b",\"");
    buf.extend_from_slice(k.as_bytes());
    buf.extend_from_slice(b"\":");
}

/// `,"k":"v"`
pub fn kstr(buf: &mut Vec<u8>, k: &str, v: &str) {
    key(buf, k);
    esc(buf, v);
}

/// `,"k":v`
pub fn kint(buf: &mut Vec<u8>, k: &str, v: i64) {
    key(buf, k);
    int_into(buf, v);
}

/// `,"k":v`
pub fn kfloat(buf: &mut Vec<u8>, k: &str, v: f64) {
    key(buf, k);
    float_into(buf, v);
}

/// `,"k":null`
pub fn knull(buf: &mut Vec<u8>, k: &str) {
    key(buf, k);
    buf.extend_from_slice(b"null");
}

/// `,"k":["a","b"]`
pub fn kstrs<S: AsRef<str>>(buf: &mut Vec<u8>, k: &str, vs: &[S]) {
    key(buf, k);
    buf.push(b'[');
    for (i, v) in vs.iter().enumerate() {
        if i > 0 {
            buf.push(b',');
        }
        esc(buf, v.as_ref());
    }
    buf.push(b']');
}

/// `,"k":<raw JSON>`
pub fn kraw(buf: &mut Vec<u8>, k: &str, raw: &[u8]) {
    key(buf, k);
    buf.extend_from_slice(raw);
}

/// An IPv4 address as text.
pub fn ip_string(ip: [u8; 4]) -> String {
    format!("{}.{}.{}.{}", ip[0], ip[1], ip[2], ip[3])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iso_matches_chrono() {
        for ms in [
            0i64,
            1_795_428_000_412,
            1_795_132_799_999,
            951_782_400_000,
            4_102_444_800_000,
        ] {
            let want = chrono::DateTime::from_timestamp_millis(ms)
                .unwrap()
                .format("%Y-%m-%dT%H:%M:%S%.3fZ")
                .to_string();
            assert_eq!(iso(ms), want);
        }
    }

    #[test]
    fn json_escaping_round_trips() {
        let s = "a\"b\\c\n\t\u{1}é{{7*7}}";
        let mut b = Vec::new();
        esc(&mut b, s);
        let back: String = serde_json::from_slice(&b).unwrap();
        assert_eq!(back, s);
        let mut b = Vec::new();
        float_into(&mut b, 84.2);
        float_into(&mut b, 6000.0);
        assert_eq!(b, b"84.26000");
        assert_eq!(base64(b"any carnal pleas"), "YW55IGNhcm5hbCBwbGVhcw==");
    }

    #[test]
    fn uuids_are_v4() {
        let mut r = <Rng as rand::SeedableRng>::seed_from_u64(1);
        let u = uuid(&mut r);
        assert_eq!(u.len(), 36);
        assert_eq!(&u[14..15], "4");
        assert!(matches!(&u[19..20], "8" | "9" | "a" | "b"), "{u}");
    }
}
