//! Packs tiktoken's o200k_base and cl100k_base ranks, deflated, into OUT_DIR, so the
//! binary carries 1.5 MB of tables instead of 5.3 MB of base64 text (`src/price/bpe.rs`).
//! Format, for each rank from 0: a LEB128 length, then the token's bytes (length 0: no
//! token at that rank). Special tokens are written apart, as Rust source.

use std::fmt::Write as _;
use std::path::Path;

fn main() {
    println!("cargo::rerun-if-changed=build.rs");
    let out = std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR");
    let out = Path::new(&out);
    let mut special = String::new();
    for (name, bpe) in [
        ("o200k_base", tiktoken_rs::o200k_base()),
        ("cl100k_base", tiktoken_rs::cl100k_base()),
    ] {
        let bpe = bpe.expect("tiktoken-rs loads its own ranks");
        let (ranks, specials) = pack(&bpe);
        let packed = miniz_oxide::deflate::compress_to_vec(&ranks, 10);
        std::fs::write(out.join(format!("{name}.ranks")), packed).expect("OUT_DIR is writable");
        let upper = name.to_ascii_uppercase();
        writeln!(
            special,
            "pub(super) const {upper}_SPECIAL: &[(&str, u32)] = &{specials:?};"
        )
        .unwrap();
    }
    std::fs::write(out.join("bpe_special.rs"), special).expect("OUT_DIR is writable");
}

/// The ordinary ranks packed, and the special tokens with their ranks.
fn pack(bpe: &tiktoken_rs::CoreBPE) -> (Vec<u8>, Vec<(String, u32)>) {
    let mut specials: Vec<(String, u32)> = bpe
        .special_tokens()
        .into_iter()
        .map(|s| (s.to_string(), bpe.encode_with_special_tokens(s)[0]))
        .collect();
    specials.sort_by_key(|s| s.1);
    let special_rank = |r: u32| specials.iter().any(|s| s.1 == r);
    let mut ranks = Vec::new();
    let mut pending_gaps = 0usize;
    for r in 0..300_000u32 {
        match bpe.decode_bytes(&[r]) {
            Ok(token) if !special_rank(r) => {
                ranks.resize(ranks.len() + pending_gaps, 0);
                pending_gaps = 0;
                leb128(&mut ranks, token.len());
                ranks.extend_from_slice(&token);
            }
            _ => pending_gaps += 1,
        }
    }
    (ranks, specials)
}

fn leb128(out: &mut Vec<u8>, mut n: usize) {
    while n >= 0x80 {
        out.push((n as u8 & 0x7f) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}
