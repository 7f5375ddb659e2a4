//! A compact, read-only hash table from strings to short lists of `u32`, built once at load.
//!
//! Made for lookups on the request path of tables with up to hundreds of thousands of keys,
//! where the cost is cache and TLB misses, not instructions. Records live *inside* the table:
//! the table is an array of 64-byte, cache-line-aligned lines, and each record (an 8-bit hash
//! tag, the key's length, the payload and the key bytes) is packed into the line its hash
//! picks, or the next line with room. A lookup therefore reads one line, or a short run of
//! adjacent ones, and, above all, which line it reads depends on the key's hash alone: the
//! filter word and the line are read at the same time, never one after the other. (Layouts that
//! place each record exactly through a per-bucket seed, or that keep 128-byte buckets with a
//! second choice, were tried and measured slower at 100,000 keys: reading the seed first puts
//! two misses in a row.) A record too large for a line (a very long key, a long payload) leaves
//! a short reference in the line and lives in an overflow arena. Keys are compared byte for
//! byte, inline, so hash collisions cost time, never correctness; the hash is seeded per table.
//!
//! In front of the lines sits a small filter (a blocked Bloom filter: one 64-bit word per key,
//! three bits set in it, about 12 bits per key), so that a probe for an absent key, which is
//! what most probes of a path's segments are, usually reads one word of a structure a tenth the
//! size of the lines, likely still in cache, instead of a line.

use std::hash::BuildHasher;

/// Why a table could not be built.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct TooLarge;

const LINE: usize = 64;
/// Bytes 0 and 1 of a line: flags and the number of record bytes used.
const LINE_HEADER: usize = 2;
/// Flag: a record whose home is this line (or an earlier line of its run) lives further on.
const OVERFLOW: u8 = 1;
/// `key length` byte of a record kept in the overflow arena.
const INDIRECT: u8 = 0xff;
/// Size of an inline record's header: tag, key length, payload length.
const RECORD_HEADER: usize = 3;
/// Size of an indirect record: tag, [`INDIRECT`], payload length 0, arena offset.
const INDIRECT_SIZE: usize = 7;
/// Record bytes a line holds.
const ROOM: usize = LINE - LINE_HEADER;
/// Lines are filled to at most this fraction of their bytes on average, so that runs stay
/// short (and to a fraction of the records they can hold, see [`StrTable::build`]). A measured
/// trade: runs grow with it, but a smaller table takes fewer cache and TLB misses. On the
/// `lookup` bench's 100,000 routes, 75% (3.7 MB) was faster than 70%, 60% (4.6 MB, the previous
/// value) and 50%, and as fast as 80%, which costs more at 1,000 routes, where every line is in
/// cache and only the runs count.
const FILL_PERCENT: usize = 75;
/// A line holds at most 20 records (of 3 bytes: an empty key and payload); 1/k of a line for
/// any k up to 20 is a whole number of these units.
const SLOT_UNIT: u64 = 232_792_560;

#[derive(Clone, Copy, Debug)]
#[repr(C, align(64))]
struct Line([u8; LINE]);

/// A payload: a list of little-endian `u32`s inside the table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Words<'a>(&'a [u8]);

impl<'a> Words<'a> {
    /// No words.
    pub(crate) const EMPTY: Words<'static> = Words(&[]);

    #[cfg(test)]
    pub(crate) fn len(self) -> usize {
        self.0.len() / 4
    }

    /// The `i`-th word.
    #[inline]
    pub(crate) fn get(self, i: usize) -> Option<u32> {
        let b = self.0.get(4 * i..)?.first_chunk::<4>()?;
        Some(u32::from_le_bytes(*b))
    }

    /// Words `start..end` (clamped to the payload).
    #[inline]
    pub(crate) fn slice(self, start: usize, end: usize) -> Words<'a> {
        let end = (4 * end).min(self.0.len());
        Words(self.0.get((4 * start).min(end)..end).unwrap_or_default())
    }

    #[inline]
    pub(crate) fn first(self) -> Option<u32> {
        self.get(0)
    }

    #[inline]
    pub(crate) fn iter(self) -> impl DoubleEndedIterator<Item = u32> + ExactSizeIterator + 'a {
        self.0
            .chunks_exact(4)
            .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
    }
}

/// Filter bits per key (rounded up to whole words).
const FILTER_BITS_PER_KEY: usize = 12;

#[derive(Debug, Clone)]
pub(crate) struct StrTable {
    hasher: foldhash::fast::RandomState,
    /// Blocked Bloom filter over the keys' hashes; see [`filter_slot`].
    filter: Vec<u64>,
    lines: Vec<Line>,
    /// Records too large for a line: `[key length u32, payload length u32, payload.., key]`.
    arena: Vec<u8>,
    len: usize,
}

impl Default for StrTable {
    fn default() -> Self {
        StrTable {
            hasher: foldhash::fast::RandomState::default(),
            filter: vec![0],
            lines: vec![Line([0; LINE])],
            arena: Vec::new(),
            len: 0,
        }
    }
}

fn inline_size(key: &str, payload: &[u32]) -> Option<usize> {
    let size = RECORD_HEADER + 4 * payload.len() + key.len();
    (key.len() < usize::from(INDIRECT) && payload.len() <= usize::from(u8::MAX) && size <= ROOM)
        .then_some(size)
}

impl StrTable {
    /// Build from distinct keys (a repeated key keeps its first payload).
    pub(crate) fn build<'a, I>(records: I) -> Result<Self, TooLarge>
    where
        I: IntoIterator<Item = (&'a str, Vec<u32>)>,
    {
        let records: Vec<(&str, Vec<u32>)> = records.into_iter().collect();
        // Two limits on how many records a line takes: its bytes, and, as records do not split
        // across lines, how many records of a size fit in one (one of 40 bytes leaves room only
        // for small ones). Each record counts as 1/k of a line where k of its size fit, in units
        // of 1/SLOT_UNIT, divided by a fill that depends on k: runs grow fast when a line takes
        // one record (60%: about 1.7 lines read per lookup), less with three or more (80%: about
        // 1.5); with two, the bytes limit usually binds first (90% is only a floor).
        let (mut bytes, mut slots) = (0u64, 0u64);
        for (k, p) in &records {
            let size = inline_size(k, p).unwrap_or(INDIRECT_SIZE);
            bytes += size as u64;
            let per_line = (ROOM / size.max(1)).clamp(1, 20);
            let fill = match per_line {
                1 => 60,
                2 => 90,
                _ => 80,
            };
            slots += SLOT_UNIT / per_line as u64 * 100 / fill;
        }
        let by_bytes = (bytes * 100).div_ceil((ROOM * FILL_PERCENT) as u64);
        let mut lines = usize::try_from(by_bytes.max(slots.div_ceil(SLOT_UNIT)).max(1))
            .map_err(|_| TooLarge)?;
        let hasher = foldhash::fast::RandomState::default();
        loop {
            if u32::try_from(lines).is_err() {
                return Err(TooLarge);
            }
            if let Some(t) = StrTable::try_build(&records, lines, hasher.clone())? {
                return Ok(t);
            }
            // Records do not split across lines, so a table of large records can run out of
            // room below the fill target. With a line per record every record fits.
            lines = (lines * 2).min(records.len().max(lines + 1));
        }
    }

    /// Build with `lines` lines, or `None` when the records do not fit.
    fn try_build(
        records: &[(&str, Vec<u32>)],
        lines: usize,
        hasher: foldhash::fast::RandomState,
    ) -> Result<Option<Self>, TooLarge> {
        let words = (records.len() * FILTER_BITS_PER_KEY).div_ceil(64).max(1);
        let mut t = StrTable {
            hasher,
            filter: vec![0; words],
            lines: vec![Line([0; LINE]); lines],
            arena: Vec::new(),
            len: 0,
        };
        for (key, payload) in records {
            if t.get(key).is_some() {
                continue;
            }
            let hash = t.hasher.hash_one(key);
            let (word, bits) = filter_slot(hash, t.filter.len());
            if let Some(w) = t.filter.get_mut(word) {
                *w |= bits;
            }
            let mut record = vec![tag(hash)];
            match inline_size(key, payload) {
                Some(_) => {
                    // Both fit in a byte: checked by inline_size.
                    record.push(key.len() as u8);
                    record.push(payload.len() as u8);
                    record.extend(payload.iter().flat_map(|w| w.to_le_bytes()));
                    record.extend_from_slice(key.as_bytes());
                }
                None => {
                    let offset = u32::try_from(t.arena.len()).map_err(|_| TooLarge)?;
                    let key_len = u32::try_from(key.len()).map_err(|_| TooLarge)?;
                    let payload_len = u32::try_from(payload.len()).map_err(|_| TooLarge)?;
                    t.arena.extend(key_len.to_le_bytes());
                    t.arena.extend(payload_len.to_le_bytes());
                    t.arena.extend(payload.iter().flat_map(|w| w.to_le_bytes()));
                    t.arena.extend_from_slice(key.as_bytes());
                    record.extend([INDIRECT, 0]);
                    record.extend(offset.to_le_bytes());
                }
            }
            // Place the record in its home line or the first later line with room, flagging
            // every line it passes over.
            let mut i = t.home(hash);
            let mut placed = false;
            for _ in 0..t.lines.len() {
                let line = &mut t.lines[i].0;
                let used = usize::from(line[1]);
                if LINE_HEADER + used + record.len() <= LINE {
                    line[LINE_HEADER + used..LINE_HEADER + used + record.len()]
                        .copy_from_slice(&record);
                    // At most LINE - LINE_HEADER.
                    line[1] = (used + record.len()) as u8;
                    placed = true;
                    break;
                }
                line[0] |= OVERFLOW;
                i = (i + 1) % t.lines.len();
            }
            if !placed {
                return Ok(None);
            }
            t.len += 1;
        }
        Ok(Some(t))
    }

    /// The line a hash starts its search at.
    #[inline]
    fn home(&self, hash: u64) -> usize {
        // Multiply-shift range reduction of the low 32 bits (the tag uses the top 8).
        (((hash & 0xffff_ffff) * self.lines.len() as u64) >> 32) as usize
    }

    /// The record at `pos` of a line: its size in the line, its key and its payload.
    #[inline]
    fn parse<'a>(
        &'a self,
        line: &'a [u8; LINE],
        pos: usize,
    ) -> Option<(usize, &'a [u8], Words<'a>)> {
        let header = line.get(pos..pos + RECORD_HEADER)?;
        let (key_len, payload_len) = (header[1], usize::from(header[2]));
        if key_len == INDIRECT {
            let at = line.get(pos + RECORD_HEADER..pos + INDIRECT_SIZE)?;
            let offset = u32::from_le_bytes([at[0], at[1], at[2], at[3]]) as usize;
            let word = |o: usize| -> Option<usize> {
                let b = self.arena.get(o..o + 4)?;
                Some(u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize)
            };
            let (key_len, payload_len) = (word(offset)?, word(offset + 4)?);
            let payload_start = offset + 8;
            let key_start = payload_start + 4 * payload_len;
            let payload = self.arena.get(payload_start..key_start)?;
            let key = self.arena.get(key_start..key_start + key_len)?;
            return Some((INDIRECT_SIZE, key, Words(payload)));
        }
        let payload_start = pos + RECORD_HEADER;
        let key_start = payload_start + 4 * payload_len;
        let end = key_start + usize::from(key_len);
        let payload = line.get(payload_start..key_start)?;
        let key = line.get(key_start..end)?;
        Some((end - pos, key, Words(payload)))
    }

    /// The payload of `key`, if present.
    #[inline]
    pub(crate) fn get(&self, key: &str) -> Option<Words<'_>> {
        let hash = self.hasher.hash_one(key);
        let (word, bits) = filter_slot(hash, self.filter.len());
        if self.filter.get(word).is_none_or(|w| w & bits != bits) {
            return None;
        }
        let tag = tag(hash);
        let lines = self.lines.len();
        let mut i = self.home(hash);
        for _ in 0..lines {
            let line = &self.lines.get(i)?.0;
            let end = (LINE_HEADER + usize::from(line[1])).min(LINE);
            let mut pos = LINE_HEADER;
            while pos + RECORD_HEADER <= end {
                let (record_tag, key_len) = (line[pos], line[pos + 1]);
                if key_len == INDIRECT {
                    if record_tag == tag
                        && let Some((_, stored, payload)) = self.parse(line, pos)
                        && same_bytes(stored, key.as_bytes())
                    {
                        return Some(payload);
                    }
                    pos += INDIRECT_SIZE;
                    continue;
                }
                let key_len = usize::from(key_len);
                let payload_start = pos + RECORD_HEADER;
                let key_start = payload_start + 4 * usize::from(line[pos + 2]);
                if record_tag == tag
                    && key_len == key.len()
                    && same_bytes(line.get(key_start..key_start + key_len)?, key.as_bytes())
                {
                    return Some(Words(line.get(payload_start..key_start)?));
                }
                pos = key_start + key_len;
            }
            if line[0] & OVERFLOW == 0 {
                return None;
            }
            i += 1;
            if i == lines {
                i = 0;
            }
        }
        None
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Bytes the table occupies (filter, lines and overflow arena).
    pub(crate) fn size_bytes(&self) -> usize {
        self.filter.len() * 8 + self.lines.len() * LINE + self.arena.len()
    }
}

/// An 8-byte word of `s` at `i` (the caller keeps `i + 8 <= s.len()`).
#[inline]
fn word8(s: &[u8], i: usize) -> u64 {
    s.get(i..)
        .and_then(|t| t.first_chunk::<8>())
        .map_or(0, |c| u64::from_le_bytes(*c))
}

/// A 4-byte word of `s` at `i` (the caller keeps `i + 4 <= s.len()`).
#[inline]
fn word4(s: &[u8], i: usize) -> u32 {
    s.get(i..)
        .and_then(|t| t.first_chunk::<4>())
        .map_or(0, |c| u32::from_le_bytes(*c))
}

/// Byte equality, inlined and word by word (keys are short: a call to `memcmp` costs more than
/// the comparison, and slices of unknown length compare through `memcmp`).
#[inline]
fn same_bytes(a: &[u8], b: &[u8]) -> bool {
    let n = a.len();
    if n != b.len() {
        return false;
    }
    if n >= 8 {
        let mut i = 0;
        while i + 8 < n {
            if word8(a, i) != word8(b, i) {
                return false;
            }
            i += 8;
        }
        // The last 8 bytes, overlapping the previous word when `n` is not a multiple of 8.
        return word8(a, n - 8) == word8(b, n - 8);
    }
    if n >= 4 {
        return word4(a, 0) == word4(b, 0) && word4(a, n - 4) == word4(b, n - 4);
    }
    a.iter().zip(b).all(|(x, y)| x == y)
}

#[inline]
fn tag(hash: u64) -> u8 {
    (hash >> 56) as u8
}

/// The filter word of a hash and the three bits it sets there. The hash's low half picks the
/// home line and its top byte is the tag, so the filter works from a remix of the whole hash.
#[inline]
fn filter_slot(hash: u64, words: usize) -> (usize, u64) {
    let h = (hash ^ (hash >> 29)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    let word = (((h >> 32) * words as u64) >> 32) as usize;
    let bits = (1u64 << (h & 63)) | (1u64 << ((h >> 6) & 63)) | (1u64 << ((h >> 12) & 63));
    (word, bits)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(w: Option<Words<'_>>) -> Option<Vec<u32>> {
        w.map(|w| w.iter().collect())
    }

    #[test]
    fn finds_every_key_and_nothing_else() {
        let keys: Vec<String> = (0..5000).map(|i| format!("/k{i}")).collect();
        let t = StrTable::build(
            keys.iter()
                .enumerate()
                .map(|(i, k)| (k.as_str(), vec![i as u32; i % 4])),
        )
        .expect("builds");
        assert_eq!(t.len(), 5000);
        for (i, k) in keys.iter().enumerate() {
            assert_eq!(words(t.get(k)), Some(vec![i as u32; i % 4]), "{k}");
        }
        for miss in ["", "/k", "/k5000", "/k1 ", "/K1", "/k01", "k1"] {
            assert_eq!(t.get(miss), None, "{miss}");
        }
    }

    #[test]
    fn long_keys_and_payloads_go_to_the_arena() {
        let long = "/x".repeat(200);
        let medium = "/y".repeat(30);
        let many: Vec<u32> = (0..300).collect();
        let t = StrTable::build([
            (long.as_str(), vec![1]),
            (medium.as_str(), vec![2, 3]),
            ("/many", many.clone()),
            ("/short", vec![4]),
        ])
        .expect("builds");
        assert!(!t.arena.is_empty());
        assert_eq!(words(t.get(&long)), Some(vec![1]));
        assert_eq!(words(t.get(&medium)), Some(vec![2, 3]));
        assert_eq!(words(t.get("/many")), Some(many));
        assert_eq!(words(t.get("/short")), Some(vec![4]));
        assert_eq!(t.get(&long[1..]), None);
        assert!(t.size_bytes() >= LINE);
    }

    #[test]
    fn keys_differing_in_length_only() {
        let t = StrTable::build([
            ("", vec![1]),
            ("a", vec![2]),
            ("a\0", vec![3]),
            ("abcd", vec![4]),
            ("abcde", vec![5]),
        ])
        .expect("builds");
        assert_eq!(words(t.get("")), Some(vec![1]));
        assert_eq!(words(t.get("a")), Some(vec![2]));
        assert_eq!(words(t.get("a\0")), Some(vec![3]));
        assert_eq!(t.get("a\0\0"), None);
        assert_eq!(words(t.get("abcd")), Some(vec![4]));
        assert_eq!(words(t.get("abcde")), Some(vec![5]));
        assert_eq!(t.get("abc"), None);
    }

    #[test]
    fn empty_and_repeated() {
        let t = StrTable::build(std::iter::empty::<(&str, Vec<u32>)>()).expect("builds");
        assert_eq!(t.get("x"), None);
        assert_eq!(StrTable::default().get(""), None);
        let t = StrTable::build([("x", vec![1]), ("x", vec![2])]).expect("builds");
        assert_eq!((t.len(), words(t.get("x"))), (1, Some(vec![1])));
    }

    #[test]
    fn the_filter_passes_every_key_and_turns_most_absent_keys_away() {
        let keys: Vec<String> = (0..5000).map(|i| format!("/k{i}")).collect();
        let t = StrTable::build(keys.iter().map(|k| (k.as_str(), vec![1]))).expect("builds");
        let passes = |k: &str| {
            let (w, bits) = filter_slot(t.hasher.hash_one(k), t.filter.len());
            t.filter[w] & bits == bits
        };
        assert!(keys.iter().all(|k| passes(k)));
        let absent = (0..5000).filter(|i| passes(&format!("/absent{i}"))).count();
        // About 12 bits per key and three bits per key: a few percent pass.
        assert!(absent < 400, "{absent} of 5000 absent keys pass the filter");
    }

    #[test]
    fn crowded_lines_overflow_into_the_next() {
        // Records of 59 bytes: one per line, so most keys live away from their home line.
        let keys: Vec<String> = (0..500).map(|i| format!("{i:0>52}")).collect();
        let t = StrTable::build(keys.iter().map(|k| (k.as_str(), vec![7]))).expect("builds");
        assert!(t.lines.iter().any(|l| l.0[0] & OVERFLOW != 0));
        for k in &keys {
            assert_eq!(words(t.get(k)), Some(vec![7]), "{k}");
        }
        assert_eq!(t.get(&format!("{:0>52}", 500)), None);
    }

    #[test]
    fn keys_at_the_inline_limit() {
        // A record of exactly ROOM bytes stays in a line; one byte more goes to the arena.
        let fits = "k".repeat(ROOM - RECORD_HEADER - 4);
        let spills = "k".repeat(ROOM - RECORD_HEADER - 4 + 1);
        assert_eq!(inline_size(&fits, &[1]), Some(ROOM));
        assert_eq!(inline_size(&spills, &[2]), None);
        let t = StrTable::build([(fits.as_str(), vec![1]), (spills.as_str(), vec![2])])
            .expect("builds");
        assert_eq!(words(t.get(&fits)), Some(vec![1]));
        assert_eq!(words(t.get(&spills)), Some(vec![2]));
        // The arena holds exactly the spilled record: two length words, a payload word, the key.
        assert_eq!(t.arena.len(), 8 + 4 + spills.len());
        assert_eq!(t.get(&fits[1..]), None);
        assert_eq!(t.get(&format!("{spills}k")), None);
        // Keys shorter than any word compared, and an empty payload.
        let t = StrTable::build([("", vec![]), ("/", vec![5])]).expect("builds");
        assert_eq!(words(t.get("")), Some(vec![]));
        assert_eq!(words(t.get("/")), Some(vec![5]));
        assert_eq!(t.get("//"), None);
    }

    #[test]
    fn byte_comparison_at_every_length_and_position() {
        for n in 0..40usize {
            let a: Vec<u8> = (0..n as u8).collect();
            assert!(same_bytes(&a, &a.clone()), "{n}");
            for i in 0..n {
                let mut b = a.clone();
                b[i] ^= 0x20;
                assert!(!same_bytes(&a, &b), "length {n}, byte {i}");
            }
            if n > 0 {
                assert!(!same_bytes(&a, &a[..n - 1]), "{n}");
            }
        }
    }

    /// Absent keys that pass the filter read their line(s) and still find nothing, also when
    /// a record there has the same 8-bit tag (a fingerprint false positive).
    #[test]
    fn filter_and_tag_false_positives_find_nothing() {
        let keys: Vec<String> = (0..2000).map(|i| format!("/k{i}")).collect();
        let t = StrTable::build(keys.iter().map(|k| (k.as_str(), vec![1]))).expect("builds");
        let (mut passed, mut same_tag) = (0, 0);
        for i in 0..200_000 {
            let k = format!("/q{i}");
            let h = t.hasher.hash_one(k.as_str());
            let (w, bits) = filter_slot(h, t.filter.len());
            if t.filter[w] & bits != bits {
                continue;
            }
            passed += 1;
            let line = &t.lines[t.home(h)].0;
            if records(line).iter().any(|(tg, _)| *tg == tag(h)) {
                same_tag += 1;
            }
            assert_eq!(t.get(&k), None, "{k}");
        }
        assert!(passed > 100, "only {passed} false positives to check");
        assert!(
            same_tag > 0,
            "no tag collision among {passed} false positives"
        );
    }

    /// The records of a line: (tag, key; empty for an indirect record).
    fn records(line: &[u8; LINE]) -> Vec<(u8, Vec<u8>)> {
        let mut out = Vec::new();
        let end = LINE_HEADER + usize::from(line[1]);
        let mut pos = LINE_HEADER;
        while pos < end {
            let (tag, key_len, payload_len) =
                (line[pos], line[pos + 1], usize::from(line[pos + 2]));
            if key_len == INDIRECT {
                out.push((tag, Vec::new()));
                pos += INDIRECT_SIZE;
            } else {
                let key_start = pos + RECORD_HEADER + 4 * payload_len;
                let key_end = key_start + usize::from(key_len);
                out.push((tag, line[key_start..key_end].to_vec()));
                pos = key_end;
            }
        }
        out
    }

    /// Tables of short, long and mixed keys find every key and keep runs short: the line
    /// count follows both the bytes and the number of records a line can take.
    #[test]
    fn shapes_of_tables() {
        let shapes: [(&str, Vec<String>); 4] = [
            (
                "service paths",
                (0..20_000)
                    .map(|i| format!("/api/v{}/svc{i}/orders", i % 3))
                    .collect(),
            ),
            (
                "short",
                (0..10_001)
                    .map(|i| format!("/api/{}/{}", i / 100, i % 100))
                    .collect(),
            ),
            (
                "one a line",
                (0..10_000)
                    .map(|i| format!("/hipstershop.CurrencyService{i}/Convert"))
                    .collect(),
            ),
            (
                "mixed",
                (0..10_000)
                    .map(|i| match i % 3 {
                        0 => format!("/a/{i}"),
                        1 => format!("/hipstershop.CurrencyService{i}/Convert"),
                        _ => format!("/api/v1/namespaces/{i}/{}", "x".repeat(i % 70)),
                    })
                    .collect(),
            ),
        ];
        for (name, keys) in &shapes {
            let t = StrTable::build(keys.iter().map(|k| (k.as_str(), vec![1]))).expect("builds");
            assert_eq!(t.len(), keys.len(), "{name}");
            // Lines read by a successful lookup: from the home line to the record's line.
            let mut reads = 0;
            for k in keys {
                assert_eq!(words(t.get(k)), Some(vec![1]), "{name}: {k}");
                assert_eq!(t.get(&format!("{k}/x")), None, "{name}: {k}/x");
                let h = t.hasher.hash_one(k.as_str());
                let home = t.home(h);
                let at = (0..t.lines.len())
                    .map(|d| (home + d) % t.lines.len())
                    .position(|i| {
                        records(&t.lines[i].0).iter().any(|(tg, key)| {
                            *tg == tag(h) && (key.is_empty() || key == k.as_bytes())
                        })
                    })
                    .expect("in a line");
                reads += at + 1;
            }
            let mean = reads as f64 / keys.len() as f64;
            assert!(mean < 2.1, "{name}: {mean:.2} lines read per lookup");
        }
    }

    #[test]
    fn words_slices_are_clamped() {
        let bytes: Vec<u8> = [1u32, 2, 3].iter().flat_map(|w| w.to_le_bytes()).collect();
        let w = Words(&bytes);
        assert_eq!(w.len(), 3);
        assert_eq!((w.first(), w.get(2), w.get(3)), (Some(1), Some(3), None));
        assert_eq!(w.slice(1, 3).iter().collect::<Vec<_>>(), vec![2, 3]);
        assert_eq!(w.slice(2, 9).iter().collect::<Vec<_>>(), vec![3]);
        assert_eq!(w.slice(5, 9).len(), 0);
        assert_eq!(Words::EMPTY.first(), None);
    }
}
