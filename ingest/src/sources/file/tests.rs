//! Tests of the file source against a real lake in a temporary folder.

#[cfg(test)]
mod hashing {
    use super::super::reader::{HASH_BLOCK, hash_file};

    /// The file's hash is blake3 of its bytes, whatever their length against
    /// the block the hasher reads at a time.
    #[test]
    fn file_hash_is_blake3_of_the_bytes() {
        let dir = tempfile::tempdir().expect("temp dir");
        let block = HASH_BLOCK;
        for len in [0, 1, 4095, block - 1, block, block + 1, 2 * block + 12_345] {
            let bytes: Vec<u8> = (0..len).map(|i| (i * 7 + i / 4099) as u8).collect();
            let path = dir.path().join(format!("f{len}"));
            std::fs::write(&path, &bytes).expect("write");
            let got = hash_file(&path).expect("hash");
            assert_eq!(
                got,
                blake3::hash(&bytes).to_hex().to_string(),
                "{len} bytes"
            );
        }
        let missing = dir.path().join("missing");
        let e = hash_file(&missing).expect_err("a missing file is an error");
        assert!(e.to_string().contains("missing"), "{e}");
    }
}

#[cfg(test)]
mod reading {
    use std::io::Write;
    use std::sync::Arc;
    use std::sync::atomic::AtomicU64;

    use super::super::reader::{InputFile, Resume, Work, hash_file, probe_file, read_file};

    /// Everything the reader sends for `input`, resumed after line `skip`.
    fn read_all(
        input: &InputFile,
        skip: u64,
        hash: bool,
        chunk_bytes: usize,
        max_line: usize,
    ) -> Vec<Work> {
        let (tx, rx) = crossbeam_channel::unbounded();
        let (_spare_tx, spare_rx) = crossbeam_channel::unbounded();
        let resume = Resume {
            skip_through: skip,
            suppress_dead_through: skip,
        };
        let mut seq = 0;
        let read = AtomicU64::new(0);
        assert!(read_file(
            0,
            input,
            resume,
            hash,
            chunk_bytes,
            max_line,
            &mut seq,
            &read,
            &tx,
            &spare_rx
        ));
        drop(tx);
        rx.into_iter().collect()
    }

    /// What the reader reports at the end of `path`: hash and probe, if it
    /// took them.
    fn read_identity(path: &std::path::Path) -> Option<(String, String)> {
        let input = InputFile {
            display: Arc::from(path.display().to_string()),
            path: path.to_path_buf(),
            size: std::fs::metadata(path).expect("metadata").len(),
        };
        let works = read_all(&input, 0, true, 4096, 1 << 20);
        let mut end = None;
        for w in works {
            if let Work::FileEnd { identity, .. } = w {
                end = Some(identity.map(|i| (i.hash, i.probe)));
            }
        }
        end.expect("the reader ends every file")
    }

    /// The reader's hash and probe of a new file are the ones `hash_file` and
    /// `probe_file` take, for plain and gzip files of any length against the
    /// probe's 64 KiB ends; a gzip stream cut short leaves them to those.
    #[test]
    fn the_reader_hashes_and_probes_what_it_reads() {
        let dir = tempfile::tempdir().expect("temp dir");
        let line = |i: usize| format!("{{\"type\":\"dns\",\"n\":{i}}}\n");
        let mut paths = Vec::new();
        for lines in [0, 1, 2_000, 4_000, 6_000, 20_000, 100_000] {
            let text: String = (0..lines).map(line).collect();
            let plain = dir.path().join(format!("plain-{lines}.jsonl"));
            std::fs::write(&plain, &text).expect("write");
            paths.push(plain);
        }
        let text: String = (0..20_000).map(line).collect();
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(text.as_bytes()).expect("gzip");
        let gz = gz.finish().expect("gzip");
        let gzip = dir.path().join("z.jsonl.gz");
        std::fs::write(&gzip, &gz).expect("write");
        paths.push(gzip);
        for path in &paths {
            assert_eq!(
                read_identity(path),
                Some((
                    hash_file(path).expect("hash"),
                    probe_file(path).expect("probe")
                )),
                "{} ({} bytes)",
                path.display(),
                std::fs::metadata(path).expect("size").len()
            );
        }
        let cut = dir.path().join("cut.jsonl.gz");
        std::fs::write(&cut, &gz[..gz.len() / 2]).expect("write");
        assert_eq!(read_identity(&cut), None);
    }

    /// The probe changes with the size and with either end of a file, not
    /// with its middle; short files are all ends.
    #[test]
    fn the_probe_covers_size_and_ends() {
        let dir = tempfile::tempdir().expect("temp dir");
        let probe = |name: &str, bytes: &[u8]| {
            let p = dir.path().join(name);
            std::fs::write(&p, bytes).expect("write");
            probe_file(&p).expect("probe")
        };
        let base: Vec<u8> = (0..400_000u32).map(|i| (i % 251) as u8).collect();
        let p0 = probe("base", &base);
        assert_eq!(p0, probe("copy", &base));
        let mut head = base.clone();
        head[10] ^= 1;
        let mut tail = base.clone();
        tail[399_990] ^= 1;
        let mut middle = base.clone();
        middle[200_000] ^= 1;
        assert_ne!(p0, probe("head", &head));
        assert_ne!(p0, probe("tail", &tail));
        assert_ne!(p0, probe("longer", &[&base[..], b"x"].concat()));
        assert_eq!(p0, probe("middle", &middle), "the middle is not probed");
        for len in [0usize, 1, 65_536, 65_537, 131_072, 131_073] {
            let short = &base[..len];
            let mut changed = short.to_vec();
            if let Some(b) = changed.last_mut() {
                *b ^= 1;
                assert_ne!(probe("s1", short), probe("s2", &changed), "{len}");
            }
        }
        assert!(probe_file(&dir.path().join("missing")).is_err());
    }

    /// Every line reaches the decoders once, numbered, in chunks cut at the
    /// first line end past the chunk size; a line over the limit arrives as
    /// an oversized record; lines before a resume point are left out.
    #[test]
    fn the_reader_cuts_lines_into_chunks() {
        use rand::{Rng, SeedableRng};
        let dir = tempfile::tempdir().expect("temp dir");
        let mut rng = rand::rngs::StdRng::seed_from_u64(11);
        let max_line = 1000;
        let mut lines: Vec<Vec<u8>> = Vec::new();
        let mut text = Vec::new();
        while text.len() < 700_000 {
            let len = match rng.random_range(0..100) {
                0 => rng.random_range(1001..3000),
                1 => 0,
                _ => rng.random_range(1..400),
            };
            let line: Vec<u8> = (0..len).map(|i| b'a' + (i % 26) as u8).collect();
            text.extend_from_slice(&line);
            text.push(b'\n');
            lines.push(line);
        }
        // The last line has no line end.
        text.extend_from_slice(b"tail");
        lines.push(b"tail".to_vec());
        let path = dir.path().join("lines.jsonl");
        std::fs::write(&path, &text).expect("write");
        let input = InputFile {
            display: Arc::from("lines.jsonl"),
            path: path.clone(),
            size: text.len() as u64,
        };
        for (chunk_bytes, skip) in [(4096, 0), (1, 0), (65_536, 0), (4096, 777), (300, 1)] {
            let works = read_all(&input, skip, false, chunk_bytes, max_line);
            let mut got: Vec<(u64, Result<Vec<u8>, u64>)> = Vec::new();
            let mut ended = None;
            for (k, w) in works.iter().enumerate() {
                match w {
                    Work::Lines {
                        first_line, data, ..
                    } => {
                        assert!(data.ends_with(b"\n"));
                        let body = &data[..data.len() - 1];
                        let n = body.split(|&b| b == b'\n').count();
                        let last_len = body.rsplit(|&b| b == b'\n').next().map_or(0, |l| l.len());
                        // Cut at the first line end past the size, unless
                        // something else had to go between.
                        let next_is_lines = matches!(works.get(k + 1), Some(Work::Lines { .. }));
                        if next_is_lines {
                            assert!(data.len() >= chunk_bytes, "chunk of {} bytes", data.len());
                            assert!(
                                data.len() - last_len - 1 < chunk_bytes,
                                "chunk went on past its size"
                            );
                        }
                        for (j, l) in body.split(|&b| b == b'\n').enumerate() {
                            got.push((first_line + j as u64, Ok(l.to_vec())));
                        }
                        assert_eq!(n, body.split(|&b| b == b'\n').count());
                    }
                    Work::Oversized { line, size, .. } => got.push((*line, Err(*size))),
                    Work::FileEnd { lines, error, .. } => {
                        assert!(error.is_none(), "{error:?}");
                        ended = Some(*lines);
                    }
                }
            }
            assert_eq!(ended, Some(lines.len() as u64));
            let want: Vec<(u64, Result<Vec<u8>, u64>)> = lines
                .iter()
                .enumerate()
                .map(|(i, l)| (i as u64 + 1, l))
                .filter(|(n, _)| *n > skip)
                .map(|(n, l)| {
                    if l.len() > max_line {
                        (n, Err(l.len() as u64))
                    } else {
                        (n, Ok(l.clone()))
                    }
                })
                .collect();
            assert_eq!(got.len(), want.len(), "chunk {chunk_bytes}, skip {skip}");
            assert!(
                got == want,
                "chunk {chunk_bytes}, skip {skip}: lines differ"
            );
        }
    }
}
