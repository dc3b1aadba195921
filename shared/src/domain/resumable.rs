//! A SHA-256 that can be saved between requests and resumed in another process.
//!
//! A chunked upload arrives over several requests, which on Lambda may each run in a different
//! process. [`ResumableSha256`] is the hasher's whole state as plain data: the eight words of
//! the compression function's chaining value (advanced with `sha2::compress256`), the number of
//! bytes hashed, and the fewer than 64 bytes not yet compressed. It serializes to a small JSON
//! object (`{"state":[…8 words],"len":n,"block":"<hex>"}`), so an adapter can keep it beside the
//! upload and finish the digest at commit without reading the bytes again.
//!
//! Layering: `domain` imports nothing else of Berth and no I/O crate.

use serde::{Deserialize, Serialize};
use sha2::digest::generic_array::GenericArray;

use super::Digest;

/// SHA-256's block size.
const BLOCK: usize = 64;

/// SHA-256's initial chaining value (FIPS 180-4, 5.3.3).
const H0: [u32; 8] = [
    0x6a09_e667,
    0xbb67_ae85,
    0x3c6e_f372,
    0xa54f_f53a,
    0x510e_527f,
    0x9b05_688c,
    0x1f83_d9ab,
    0x5be0_cd19,
];

/// A SHA-256 in progress whose state is data: update it, save it (serde), load it elsewhere,
/// update it more, and [`finish`](Self::finish) it, with the digest `sha2::Sha256` gives for
/// the same bytes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "Saved", into = "Saved")]
pub struct ResumableSha256 {
    state: [u32; 8],
    /// Bytes hashed so far, the unprocessed ones included.
    len: u64,
    /// The last `len % 64` bytes, not yet compressed.
    block: Vec<u8>,
}

/// The serialized form; loading checks that the block length agrees with the byte count.
#[derive(Serialize, Deserialize)]
struct Saved {
    state: [u32; 8],
    len: u64,
    block: String,
}

impl TryFrom<Saved> for ResumableSha256 {
    type Error = String;
    fn try_from(s: Saved) -> Result<Self, String> {
        let block = hex::decode(&s.block).map_err(|e| format!("block: {e}"))?;
        if block.len() as u64 != s.len % BLOCK as u64 {
            return Err(format!("a block of {} bytes after {} bytes", block.len(), s.len));
        }
        Ok(ResumableSha256 {
            state: s.state,
            len: s.len,
            block,
        })
    }
}

impl From<ResumableSha256> for Saved {
    fn from(h: ResumableSha256) -> Saved {
        Saved {
            state: h.state,
            len: h.len,
            block: hex::encode(h.block),
        }
    }
}

impl Default for ResumableSha256 {
    fn default() -> Self {
        Self::new()
    }
}

/// Compresses whole blocks (`blocks.len()` is a multiple of 64) into `state`.
fn compress(state: &mut [u32; 8], blocks: &[u8]) {
    for b in blocks.chunks_exact(BLOCK) {
        sha2::compress256(state, std::slice::from_ref(GenericArray::from_slice(b)));
    }
}

impl ResumableSha256 {
    pub fn new() -> Self {
        ResumableSha256 {
            state: H0,
            len: 0,
            block: Vec::with_capacity(BLOCK),
        }
    }

    /// The number of bytes hashed.
    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn update(&mut self, mut bytes: &[u8]) {
        self.len += bytes.len() as u64;
        if !self.block.is_empty() {
            let take = (BLOCK - self.block.len()).min(bytes.len());
            self.block.extend_from_slice(&bytes[..take]);
            bytes = &bytes[take..];
            if self.block.len() < BLOCK {
                return;
            }
            compress(&mut self.state, &self.block);
            self.block.clear();
        }
        let whole = bytes.len() - bytes.len() % BLOCK;
        compress(&mut self.state, &bytes[..whole]);
        self.block.extend_from_slice(&bytes[whole..]);
    }

    /// The digest of the bytes so far; the state is left as it was.
    pub fn finish(&self) -> Digest {
        let mut state = self.state;
        // the padding: 0x80, zeros up to 56 mod 64, the length in bits (big-endian)
        let mut tail = self.block.clone();
        tail.push(0x80);
        while tail.len() % BLOCK != BLOCK - 8 {
            tail.push(0);
        }
        tail.extend_from_slice(&(self.len.wrapping_mul(8)).to_be_bytes());
        compress(&mut state, &tail);
        let mut out = [0u8; 32];
        for (o, w) in out.chunks_exact_mut(4).zip(state) {
            o.copy_from_slice(&w.to_be_bytes());
        }
        Digest::from_sha256(out)
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use sha2::Digest as _;

    use super::*;

    fn expected(bytes: &[u8]) -> Digest {
        Digest::parse(&format!("sha256:{}", hex::encode(sha2::Sha256::digest(bytes)))).unwrap()
    }

    /// Hashes `bytes` in the pieces `cuts` makes, saving and loading the state between pieces.
    fn resumed(bytes: &[u8], cuts: &[usize]) -> Digest {
        let mut saved = serde_json::to_string(&ResumableSha256::new()).unwrap();
        let mut from = 0;
        for &to in cuts.iter().chain(std::iter::once(&bytes.len())) {
            let mut h: ResumableSha256 = serde_json::from_str(&saved).unwrap();
            h.update(&bytes[from..to]);
            assert_eq!(h.len(), to as u64);
            saved = serde_json::to_string(&h).unwrap();
            from = to;
        }
        let h: ResumableSha256 = serde_json::from_str(&saved).unwrap();
        h.finish()
    }

    fn bytes(n: usize) -> Vec<u8> {
        (0..n).map(|i| (i * 31 % 256) as u8).collect()
    }

    #[test]
    fn known_digests() {
        assert_eq!(
            ResumableSha256::new().finish().as_str(),
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        let mut h = ResumableSha256::new();
        h.update(b"hello");
        assert_eq!(h.finish(), Digest::sha256_of(b"hello"));
        // finishing leaves the state as it was
        h.update(b" world");
        assert_eq!(h.finish(), Digest::sha256_of(b"hello world"));
    }

    /// Lengths around the block and padding edges, cut at every place, and with empty pieces.
    #[test]
    fn block_edges() {
        for n in [0, 1, 55, 56, 57, 63, 64, 65, 119, 120, 127, 128, 129, 191, 192, 193] {
            let b = bytes(n);
            assert_eq!(resumed(&b, &[]), expected(&b), "{n} bytes");
            for cut in 0..=n {
                assert_eq!(resumed(&b, &[cut]), expected(&b), "{n} bytes cut at {cut}");
                assert_eq!(resumed(&b, &[0, cut, cut, n]), expected(&b), "{n} bytes, empty pieces");
            }
        }
        let b = bytes(1000);
        for piece in [1, 63, 64, 65] {
            let cuts: Vec<usize> = (piece..1000).step_by(piece).collect();
            assert_eq!(resumed(&b, &cuts), expected(&b), "pieces of {piece}");
        }
    }

    #[test]
    fn a_state_that_does_not_add_up_is_refused() {
        let mut h = ResumableSha256::new();
        h.update(b"abc");
        let mut v = serde_json::to_value(&h).unwrap();
        assert_eq!(v["block"], "616263");
        v["len"] = 4.into();
        assert!(serde_json::from_value::<ResumableSha256>(v.clone()).is_err());
        v["len"] = 67.into();
        assert!(serde_json::from_value::<ResumableSha256>(v.clone()).is_ok());
        v["block"] = "zz".into();
        assert!(serde_json::from_value::<ResumableSha256>(v).is_err());
    }

    proptest! {
        #[test]
        fn random_splits_match_sha2(len in 0usize..2000, mut cuts in proptest::collection::vec(0usize..2000, 0..8)) {
            let b = bytes(len);
            for c in cuts.iter_mut() {
                *c %= len + 1;
            }
            cuts.sort_unstable();
            prop_assert_eq!(resumed(&b, &cuts), expected(&b));
        }
    }
}
