//! Shard positions stored in the lake's Delta log, in the same commit as the
//! records they cover.
//!
//! A Delta application transaction (`txn` action) maps an id to a 64-bit
//! version, and a Kinesis sequence number is a decimal of up to 129 digits.
//! So one shard's position is a few transactions written together in one
//! commit (atomically):
//!
//! - `fnwatch-kinesis:STREAM:SHARD` = the number of digits of the sequence
//!   number, or [`SHARD_END`] once the shard is closed and fully committed;
//! - `fnwatch-kinesis:STREAM:SHARD#i` = digits `18*i ..` of the sequence number.

use std::cmp::Ordering;

use crate::error::Result;
use crate::lake::Lake;

/// The version that marks a closed shard read to its end.
pub const SHARD_END: i64 = -1;
const CHUNK: usize = 18;

/// How far a shard has been committed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Checkpoint {
    /// Every record up to and including this sequence number.
    At(String),
    /// The shard is closed and all of it is in the lake.
    End,
}

fn key(stream: &str, shard: &str) -> String {
    format!("fnwatch-kinesis:{stream}:{shard}")
}

/// The transactions that record `cp` for one shard.
pub fn encode(stream: &str, shard: &str, cp: &Checkpoint) -> Vec<(String, i64)> {
    let k = key(stream, shard);
    match cp {
        Checkpoint::End => vec![(k, SHARD_END)],
        Checkpoint::At(seq) => {
            let mut out = vec![(k.clone(), seq.len() as i64)];
            for (i, chunk) in seq.as_bytes().chunks(CHUNK).enumerate() {
                let v = chunk
                    .iter()
                    .fold(0i64, |acc, d| acc * 10 + i64::from(d.wrapping_sub(b'0')));
                out.push((format!("{k}#{i}"), v));
            }
            out
        }
    }
}

/// Reads a shard's checkpoint from one table of the lake.
pub async fn read(
    lake: &Lake,
    table: &str,
    stream: &str,
    shard: &str,
) -> Result<Option<Checkpoint>> {
    let k = key(stream, shard);
    let Some(len) = lake.txn_version(table, &k).await? else {
        return Ok(None);
    };
    if len == SHARD_END {
        return Ok(Some(Checkpoint::End));
    }
    if len <= 0 {
        return Ok(None);
    }
    let len = len as usize;
    let mut seq = String::with_capacity(len);
    let chunks = len.div_ceil(CHUNK);
    for i in 0..chunks {
        let width = if i + 1 == chunks {
            len - CHUNK * i
        } else {
            CHUNK
        };
        let v = lake
            .txn_version(table, &format!("{k}#{i}"))
            .await?
            .ok_or_else(|| {
                crate::error::IngestError::Internal(format!(
                    "checkpoint of {stream}/{shard} in `{table}` is missing part {i}"
                ))
            })?;
        seq.push_str(&format!("{v:0width$}"));
    }
    Ok(Some(Checkpoint::At(seq)))
}

/// Compares two Kinesis sequence numbers (decimal strings without leading zeros).
pub fn seq_cmp(a: &str, b: &str) -> Ordering {
    a.len().cmp(&b.len()).then_with(|| a.cmp(b))
}

/// Whether the record at `seq` is covered by `cp`.
pub fn covers(cp: &Checkpoint, seq: &str) -> bool {
    match cp {
        Checkpoint::End => true,
        Checkpoint::At(c) => seq_cmp(seq, c) != Ordering::Greater,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(txns: &[(String, i64)]) -> Checkpoint {
        let len = txns[0].1;
        if len == SHARD_END {
            return Checkpoint::End;
        }
        let len = len as usize;
        let chunks = len.div_ceil(CHUNK);
        let mut s = String::new();
        for i in 0..chunks {
            let width = if i + 1 == chunks {
                len - CHUNK * i
            } else {
                CHUNK
            };
            s.push_str(&format!("{:0width$}", txns[i + 1].1));
        }
        Checkpoint::At(s)
    }

    #[test]
    fn sequence_numbers_round_trip_through_txn_versions() {
        for seq in [
            "1",
            "49590338271490256608559692538361571095921575989136588898",
            "49590338271490256608559692538361571095921575989136588898000000000000000000001",
            "100000000000000000",
            "1000000000000000000",
            "100000000000000000000000000000000000",
            "123456789012345678900000000000000000001",
        ] {
            let cp = Checkpoint::At(seq.to_string());
            let txns = encode("s", "shardId-000000000001", &cp);
            assert_eq!(txns[0].0, "fnwatch-kinesis:s:shardId-000000000001");
            assert!(txns.iter().all(|(_, v)| *v >= 0));
            assert_eq!(decode(&txns), cp, "{seq}");
        }
        let end = encode("s", "x", &Checkpoint::End);
        assert_eq!(end, vec![("fnwatch-kinesis:s:x".to_string(), SHARD_END)]);
    }

    #[test]
    fn sequence_numbers_compare_as_numbers() {
        assert_eq!(seq_cmp("9", "10"), Ordering::Less);
        assert_eq!(seq_cmp("495903", "495903"), Ordering::Equal);
        assert_eq!(seq_cmp("495904", "495903"), Ordering::Greater);
        assert!(covers(&Checkpoint::At("100".into()), "99"));
        assert!(covers(&Checkpoint::At("100".into()), "100"));
        assert!(!covers(&Checkpoint::At("100".into()), "101"));
        assert!(covers(&Checkpoint::End, "101"));
    }
}
