//! tiktoken's o200k_base and cl100k_base, built on first use from the deflated ranks that
//! `build.rs` packs, instead of tiktoken-rs's embedded base64 text.

use std::sync::OnceLock;

use tiktoken_rs::CoreBPE;

include!(concat!(env!("OUT_DIR"), "/bpe_special.rs"));

static O200K_RANKS: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/o200k_base.ranks"));
static CL100K_RANKS: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/cl100k_base.ranks"));

/// cl100k_base's split pattern, as tiktoken-rs 0.12's `cl100k_base()` has it.
const CL100K_BASE_PAT_STR: &str = "'(?i:[sdmt]|ll|ve|re)|[^\\r\\n\\p{L}\\p{N}]?+\\p{L}++|\\p{N}{1,3}+| ?[^\\s\\p{L}\\p{N}]++[\\r\\n]*+|\\s++$|\\s*[\\r\\n]|\\s+(?!\\S)|\\s";

pub(super) fn o200k() -> &'static CoreBPE {
    static BPE: OnceLock<CoreBPE> = OnceLock::new();
    BPE.get_or_init(|| load(O200K_RANKS, O200K_BASE_SPECIAL, tiktoken_rs::O200K_BASE_PAT_STR))
}

pub(super) fn cl100k() -> &'static CoreBPE {
    static BPE: OnceLock<CoreBPE> = OnceLock::new();
    BPE.get_or_init(|| load(CL100K_RANKS, CL100K_BASE_SPECIAL, CL100K_BASE_PAT_STR))
}

fn load(packed: &[u8], special: &[(&str, u32)], pattern: &str) -> CoreBPE {
    let ranks = miniz_oxide::inflate::decompress_to_vec(packed).expect("build.rs deflated these ranks");
    let encoder = ranks_of(&ranks);
    let special = special.iter().map(|&(s, r)| (s.to_string(), r)).collect();
    CoreBPE::new(encoder, special, pattern).expect("tiktoken's own pattern compiles")
}

/// Token bytes → rank, from the packed form: per rank a LEB128 length, then the bytes.
fn ranks_of(mut b: &[u8]) -> rustc_hash::FxHashMap<Vec<u8>, u32> {
    let mut map = rustc_hash::FxHashMap::default();
    map.reserve(200_000);
    let mut rank = 0u32;
    while !b.is_empty() {
        let (len, rest) = leb128(b);
        if len > 0 {
            map.insert(rest[..len].to_vec(), rank);
        }
        b = &rest[len..];
        rank += 1;
    }
    map
}

fn leb128(b: &[u8]) -> (usize, &[u8]) {
    let (mut n, mut shift, mut i) = (0usize, 0, 0);
    loop {
        n |= ((b[i] & 0x7f) as usize) << shift;
        i += 1;
        if b[i - 1] < 0x80 {
            return (n, &b[i..]);
        }
        shift += 7;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Text with ASCII, accents, CJK, emoji, digits, code, whitespace runs and special tokens.
    const SAMPLE: &str = "Rollback: `ALTER TABLE orders DROP COLUMN region_id;` — 15 min, p99 < 250ms.\n\n\
        Ünïcödé 数据库迁移 🚀 don't we'll <|endoftext|> x<|endofprompt|>y    \t\n\n  1234567 \r\n";

    #[test]
    fn packed_tables_count_as_tiktoken_rs_does() {
        let text = SAMPLE.repeat(3) + &std::fs::read_to_string("README.md").unwrap();
        for (ours, theirs) in [
            (o200k(), tiktoken_rs::o200k_base().unwrap()),
            (cl100k(), tiktoken_rs::cl100k_base().unwrap()),
        ] {
            assert_eq!(
                ours.encode_with_special_tokens(&text),
                theirs.encode_with_special_tokens(&text)
            );
            assert_eq!(ours.special_tokens(), theirs.special_tokens());
        }
    }

    #[test]
    fn every_rank_decodes_as_in_tiktoken_rs() {
        let theirs = tiktoken_rs::o200k_base().unwrap();
        let ours = o200k();
        for r in (0..200_000).step_by(97) {
            assert_eq!(ours.decode_bytes(&[r]).ok(), theirs.decode_bytes(&[r]).ok(), "rank {r}");
        }
    }
}
