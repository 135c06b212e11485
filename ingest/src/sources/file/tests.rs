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
