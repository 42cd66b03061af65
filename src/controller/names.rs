//! Pod names as the API server generates them: a prefix plus five random characters from
//! `names.SimpleNameGenerator`'s alphabet. The "randomness" is a deterministic stream seeded by
//! the Job's UID, which keeps the controller pure and its tests repeatable.
//!
//! Five characters give 27^5 ≈ 14 million names, so a Job of 20,000 pods draws some suffix
//! twice. The API server refuses a pod whose name is taken and the controller tries again
//! with a new one; [`UsedNames`] does the same: a name this Job (or, through the runtime's
//! hook, another Job of the namespace) already uses is never handed out again.

use std::collections::HashSet;
use std::hash::{BuildHasherDefault, Hasher};

/// `MaxGeneratedNameLength` = 63 − 5.
pub const MAX_GENERATED_NAME_LENGTH: usize = 58;
/// `names.SimpleNameGenerator`'s alphabet (no vowels, no look-alikes); Python's generated Job
/// names use it too, through the extension's constants.
pub const GENERATED_NAME_ALPHABET: &str = "bcdfghjklmnpqrstvwxz2456789";
const ALPHABET: &[u8] = GENERATED_NAME_ALPHABET.as_bytes();
pub const SUFFIX_LEN: usize = 5;

/// `podGenerateNameWithIndex`: `<job>-<index>-`, the job name cut so the prefix fits in 58.
pub fn generate_name_with_index(job_name: &str, index: u32) -> String {
    let append = format!("-{index}-");
    let mut prefix = format!("{job_name}{append}");
    if prefix.len() > MAX_GENERATED_NAME_LENGTH {
        let keep = MAX_GENERATED_NAME_LENGTH - append.len();
        prefix = format!("{}{append}", truncate_at_char(job_name, keep));
    }
    prefix
}

/// The default `generateName` of a NonIndexed pod: `<job>-`, cut to 58 characters.
pub fn generate_name(job_name: &str) -> String {
    let prefix = format!("{job_name}-");
    truncate_at_char(&prefix, MAX_GENERATED_NAME_LENGTH).to_string()
}

fn truncate_at_char(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// A splitmix64 stream: cheap, well mixed, and reproducible from its seed.
#[derive(Clone, Debug)]
pub struct SuffixGenerator {
    state: u64,
}

impl SuffixGenerator {
    pub fn new(seed: &str) -> Self {
        // FNV-1a folds the seed string into the initial state.
        let mut state: u64 = 0xcbf2_9ce4_8422_2325;
        for b in seed.bytes() {
            state ^= u64::from(b);
            state = state.wrapping_mul(0x0100_0000_01b3);
        }
        Self { state }
    }

    fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    pub fn suffix(&mut self) -> String {
        let mut bits = self.next_u64();
        let mut out = String::with_capacity(SUFFIX_LEN);
        for _ in 0..SUFFIX_LEN {
            out.push(ALPHABET[(bits % ALPHABET.len() as u64) as usize] as char);
            bits /= ALPHABET.len() as u64;
        }
        out
    }
}

/// Tells whether a name is free and claims it if so. The runtime passes one that consults
/// the names of every Job of the process in the same namespace.
pub type NameClaim = Box<dyn FnMut(&str) -> bool + Send>;

/// The names one Job has handed out, kept as 64-bit hashes: a hash collision of two
/// different names costs a needless retry, never a duplicate.
#[derive(Default)]
pub struct UsedNames {
    hashes: NameHashes,
    claim: Option<NameClaim>,
}

impl UsedNames {
    pub fn set_claim(&mut self, claim: NameClaim) {
        self.claim = Some(claim);
    }

    /// Takes a name handed out before (a restored Job's pods): never given out again.
    pub fn reserve(&mut self, name: &str) {
        self.hashes.insert(name_hash(&[name.as_bytes()]));
        if let Some(claim) = self.claim.as_mut() {
            claim(name);
        }
    }

    /// Draws `prefix` + suffix until a name is free (for this Job, then for the hook), and
    /// takes it.
    pub fn unique(&mut self, prefix: &str, suffixes: &mut SuffixGenerator) -> String {
        // 14 million suffixes per prefix: a free one comes after a few draws at most.
        loop {
            let name = format!("{prefix}{}", suffixes.suffix());
            let hash = name_hash(&[name.as_bytes()]);
            if self.hashes.contains(&hash) {
                continue;
            }
            if self.claim.as_mut().is_none_or(|claim| claim(&name)) {
                self.hashes.insert(hash);
                return name;
            }
        }
    }
}

/// A stable 64-bit hash (FNV-1a) of the concatenation of `parts`. Names are short and
/// created once per pod: a byte-at-a-time hash costs a fraction of SipHash here, and no
/// adversary picks pod names (a collision only costs a retry).
pub fn name_hash(parts: &[&[u8]]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for part in parts {
        for &b in *part {
            hash ^= u64::from(b);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
    }
    hash
}

/// A set of name hashes, used as they are (they are hashes already).
pub type NameHashes = HashSet<u64, BuildHasherDefault<AlreadyHashed>>;

/// The hasher of [`NameHashes`]: the key is the hash.
#[derive(Default)]
pub struct AlreadyHashed(u64);

impl Hasher for AlreadyHashed {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        // Only u64 keys are hashed; fold anything else in so the hasher stays correct.
        self.0 = name_hash(&[&self.0.to_le_bytes(), bytes]);
    }

    fn write_u64(&mut self, value: u64) {
        self.0 = value;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pod_generate_name_with_index_j49_to_j51() {
        // Upstream cases J49-J51 (docs/semantics.md §8.J).
        assert_eq!(generate_name_with_index("indexed-job", 1), "indexed-job-1-"); // J49
        let long = "hhhhhooooo".repeat(7);
        let want = "hhhhhooooohhhhhooooohhhhhooooohhhhhooooohhhhhooooohhhhh-1-";
        assert_eq!(generate_name_with_index(&long, 1), want); // J50
        assert_eq!(want.len(), 58);
        let fifty_seven = "hhhhhooooohhhhhooooohhhhhooooohhhhhooooohhhhhooooohhhhhoo";
        assert_eq!(fifty_seven.len(), 57);
        assert_eq!(generate_name_with_index(fifty_seven, 1), want); // J51
    }

    #[test]
    fn suffixes_use_the_api_server_alphabet_and_are_reproducible() {
        let mut a = SuffixGenerator::new("uid-1");
        let mut b = SuffixGenerator::new("uid-1");
        for _ in 0..100 {
            let s = a.suffix();
            assert_eq!(s.len(), 5);
            assert!(s.bytes().all(|c| ALPHABET.contains(&c)), "{s}");
            assert_eq!(s, b.suffix());
        }
        assert_eq!(generate_name("pi"), "pi-");
    }

    #[test]
    fn a_suffix_drawn_twice_is_not_handed_out_twice() {
        // A stream that repeats itself: every suffix comes twice in a row.
        let mut used = UsedNames::default();
        let mut names = Vec::new();
        for i in 0..50 {
            let mut stream = SuffixGenerator::new(&format!("seed-{}", i / 2));
            names.push(used.unique("job-", &mut stream));
        }
        let distinct: HashSet<&String> = names.iter().collect();
        assert_eq!(distinct.len(), 50);
        // The repeat drew the stream's next suffix instead.
        let mut stream = SuffixGenerator::new("seed-0");
        assert_eq!(names[0], format!("job-{}", stream.suffix()));
        assert_eq!(names[1], format!("job-{}", stream.suffix()));
    }

    #[test]
    fn a_name_the_hook_says_is_taken_is_skipped() {
        let taken: std::sync::Arc<std::sync::Mutex<Vec<String>>> = std::sync::Arc::default();
        let seen = std::sync::Arc::clone(&taken);
        let mut accept = true;
        let mut used = UsedNames::default();
        // Another Job holds every other name, starting with the first.
        used.set_claim(Box::new(move |name| {
            accept = !accept;
            if accept {
                seen.lock().unwrap_or_else(|e| e.into_inner()).push(name.to_string());
            }
            accept
        }));
        let mut stream = SuffixGenerator::new("uid");
        let expected: Vec<String> = (0..6).map(|_| format!("a-{}", stream.suffix())).collect();
        let mut stream = SuffixGenerator::new("uid");
        let got: Vec<String> = (0..3).map(|_| used.unique("a-", &mut stream)).collect();
        assert_eq!(got, vec![expected[1].clone(), expected[3].clone(), expected[5].clone()]);
        assert_eq!(*taken.lock().unwrap_or_else(|e| e.into_inner()), got);
    }
}
