//! Transitions in chunks: the transitions of [`CHUNK`] consecutive indices are one value in sled's
//! tree (`c` + chunk number), not one key each.
//!
//! Every key sled changes costs the same bookkeeping whatever its value's size (a leaf copied, an
//! update linked and later consolidated into its page, splits every 16 keys at the growing end of
//! the index and merges at the evicted one); one key per transition plus one removal per eviction
//! made sled most of the learner's work at bulk ingest. Chunked, a round writes each chunk it
//! fills once (and the partly filled last chunk, again each round until it is full), and eviction
//! removes a chunk once all of it is older than the head.
//!
//! A chunk: `count u16 | end offset u32 x count | entries`, little-endian; entry `i` is the
//! transition at index `chunk * CHUNK + i`. Entries below the head of a chunk not yet removed are
//! evicted: readers check the index against the head, not the chunk.

/// Transitions per chunk.
pub const CHUNK: u64 = 64;

/// The chunk holding `index`, and its slot there.
pub fn locate(index: u64) -> (u64, usize) {
    (index / CHUNK, (index % CHUNK) as usize)
}

/// Encodes `entries` (at most [`CHUNK`], each under 4 GiB) as one chunk value.
pub fn encode(entries: &[Vec<u8>]) -> Vec<u8> {
    let body: usize = entries.iter().map(Vec::len).sum();
    let mut out = Vec::with_capacity(2 + 4 * entries.len() + body);
    out.extend((entries.len() as u16).to_le_bytes());
    let mut end = 0u32;
    for e in entries {
        end += e.len() as u32;
        out.extend(end.to_le_bytes());
    }
    for e in entries {
        out.extend(e);
    }
    out
}

/// A chunk's end-offset table and its entries' bytes, or `None` if it is not one (damaged).
fn split(chunk: &[u8]) -> Option<(&[u8], &[u8])> {
    let n = usize::from(u16::from_le_bytes(chunk.get(..2)?.try_into().ok()?));
    let table = chunk.get(2..2 + 4 * n)?;
    Some((table, &chunk[2 + 4 * n..]))
}

/// End offset `i` of a chunk's table.
fn end_at(table: &[u8], i: usize) -> Option<usize> {
    Some(u32::from_le_bytes(table.get(4 * i..4 * i + 4)?.try_into().ok()?) as usize)
}

/// The entries of a chunk value, or `None` if it is not one (damaged).
pub fn entries(chunk: &[u8]) -> Option<Vec<&[u8]>> {
    let (table, body) = split(chunk)?;
    let n = table.len() / 4;
    let mut out = Vec::with_capacity(n);
    let mut start = 0usize;
    for i in 0..n {
        let end = end_at(table, i)?;
        out.push(body.get(start..end)?);
        start = end;
    }
    (start == body.len()).then_some(out)
}

/// Entry `slot` of a chunk value, without decoding the others (the trainer's samples read one
/// each): `None` if the chunk is damaged, `Some(None)` if it holds fewer.
pub fn entry(chunk: &[u8], slot: usize) -> Option<Option<&[u8]>> {
    let (table, body) = split(chunk)?;
    if slot >= table.len() / 4 {
        return Some(None);
    }
    let start = if slot == 0 { 0 } else { end_at(table, slot - 1)? };
    Some(Some(body.get(start..end_at(table, slot)?)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_round_trip_and_damage_is_found() {
        let entries: Vec<Vec<u8>> = (0..5u8).map(|i| vec![i; usize::from(i) * 3]).collect();
        let c = encode(&entries);
        let back = super::entries(&c).unwrap();
        assert_eq!(back, entries.iter().map(Vec::as_slice).collect::<Vec<_>>());
        for (i, e) in entries.iter().enumerate() {
            assert_eq!(entry(&c, i), Some(Some(e.as_slice())));
        }
        assert_eq!(entry(&c, 5), Some(None));
        assert_eq!(super::entries(&c[..c.len() - 1]), None, "cut short");
        assert_eq!(entry(&c[..5], 2), None);
        assert_eq!(locate(CHUNK * 3 + 5), (3, 5));
        assert_eq!(super::entries(&encode(&[])).unwrap().len(), 0);
    }
}
