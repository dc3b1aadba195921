//! Registry-wide indexes spread over shards.
//!
//! Two indexes are written on every push whatever the repository: `stored` (a blob or
//! manifest was stored or reused now; orphan cleanup's protection) and `content#<type>#`
//! (every content unit and when it was created). In one partition each, they would take every
//! write of the registry, and one DynamoDB partition serves about 1,000 writes a second. So
//! each is spread over [`SHARDS`] partitions, `<index>/<shard>`, the shard chosen by a hash of
//! the row's sort key: a row's shard never changes, and writes spread evenly. Reads of the
//! whole index (orphan cleanup, content of every repository) query every shard and merge.
//!
//! Rows older versions wrote stay in the index's own partition (`<index>`), which reads merge
//! as one more shard; a unit recorded again moves to its shard (see `record_content`).

/// How many partitions each registry-wide index is spread over.
pub const SHARDS: u32 = 16;

/// FNV-1a: stable across processes and versions, unlike the standard library's hasher.
fn fnv1a(s: &str) -> u32 {
    s.bytes()
        .fold(0x811c_9dc5u32, |h, b| (h ^ u32::from(b)).wrapping_mul(0x0100_0193))
}

/// The partition of `index` that holds the row of `sk`.
pub fn shard(index: &str, sk: &str) -> String {
    format!("{index}/{:x}", fnv1a(sk) % SHARDS)
}

/// Every partition of `index`: the one older versions wrote, then its shards.
pub fn partitions(index: &str) -> Vec<String> {
    std::iter::once(index.to_owned())
        .chain((0..SHARDS).map(|i| format!("{index}/{i:x}")))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_spread_over_every_shard_and_stay_in_theirs() {
        let mut seen = std::collections::BTreeMap::new();
        for i in 0..1600 {
            let sk = format!("b#sha256:{:064x}", i * 7919);
            let pk = shard("stored", &sk);
            assert_eq!(pk, shard("stored", &sk));
            assert!(partitions("stored").contains(&pk));
            *seen.entry(pk).or_insert(0) += 1;
        }
        assert_eq!(seen.len(), SHARDS as usize);
        assert!(seen.values().all(|n| (50..=150).contains(n)), "{seen:?}");
        // the hash is part of the stored layout: it must never change
        assert_eq!(fnv1a("b#x"), 0x695b_47fe);
        assert_eq!(shard("content#b#", "b#x"), "content#b#/e");
    }
}
