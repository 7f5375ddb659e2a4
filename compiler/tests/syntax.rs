//! The fast YAML path (`compiler/src/syntax/fast.rs`) against granit-parser: whenever the fast
//! path accepts a file, granit-parser must accept it too and build the same trees, spans
//! included. Inputs are the repository's own YAML and many generated files, valid ones and
//! mutated ones.

use std::path::Path;

use meshc::source::FileId;
use meshc::syntax::{Limits, parse_documents_fast, parse_documents_granit};

/// Compare the two parsers on one text; returns whether the fast path accepted it.
fn agree(text: &str, limits: Limits) -> bool {
    let Some(fast) = parse_documents_fast(text, limits) else {
        return false;
    };
    match parse_documents_granit(FileId(0), text, limits) {
        // Compared through `Debug`, where NaN equals NaN.
        Ok(full) => assert_eq!(
            format!("{fast:?}"),
            format!("{full:?}"),
            "the fast path and granit-parser disagree on:\n{text}\n--- (end of input)"
        ),
        Err(d) => panic!(
            "the fast path accepted a file granit-parser rejects ({}):\n{text}\n--- (end of input)",
            d.message
        ),
    }
    true
}

fn yaml_files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            yaml_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "yaml" || x == "yml") {
            out.push(p);
        }
    }
}

#[test]
fn the_fast_path_reads_every_example_like_granit() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut files = Vec::new();
    yaml_files(&root.join("examples/meshes"), &mut files);
    assert!(files.len() >= 5, "examples not found");
    for f in &files {
        let text = std::fs::read_to_string(f).expect("readable example");
        // The examples are plain YAML: the fast path must take every one of them, or the
        // benchmarks would measure granit-parser instead.
        assert!(
            agree(&text, Limits::default()),
            "the fast path gave up on {}",
            f.display()
        );
    }
}

#[test]
fn the_fast_path_agrees_with_granit_on_every_fixture() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    yaml_files(&root.join("tests"), &mut files);
    assert!(files.len() >= 50, "fixtures not found");
    let accepted = files
        .iter()
        .filter(|f| {
            let text = std::fs::read_to_string(f).unwrap_or_default();
            agree(&text, Limits::default())
        })
        .count();
    assert!(accepted >= files.len() / 2, "only {accepted} accepted");
}

/// A small deterministic generator (xorshift), so that a failure reproduces exactly.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn chance(&mut self, percent: usize) -> bool {
        self.below(100) < percent
    }
    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len())]
    }
}

const KEYS: &[&str] = &[
    "name",
    "port",
    "a",
    "x-y",
    "\"quoted\"",
    "'single'",
    "'it''s'",
    "8080",
    "true",
    "a:b",
    "-k",
    "k#x",
    "\"a: b\"",
    "null",
    "key with spaces",
    "~",
    "\"\"",
];

/// A key, now and then a merge key: granit-parser merges its value (or refuses one that is not
/// a mapping), so the fast path must give it up; quoted, `<<` is an ordinary key it reads.
fn key(rng: &mut Rng, keys: &[&'static str]) -> &'static str {
    if rng.chance(3) {
        rng.pick(&["<<", "\"<<\"", "'<<'"])
    } else {
        rng.pick(keys)
    }
}

const SCALARS: &[&str] = &[
    "v1",
    "8080",
    "-1",
    "0x1F",
    "0o17",
    "1.5",
    "-.inf",
    ".nan",
    "1e3",
    "true",
    "False",
    "null",
    "~",
    "/api/v1/items",
    "http://x:8080/p?q=1#f",
    "a b  c",
    "a, b",
    "\"a: b\"",
    "\"\"",
    "''",
    "'it''s'",
    "'a # b'",
    "\"x\\ty\"",
    "--flag",
    "a:b",
    "5s",
    "[0-9]+",
];

/// Scalars the fast path leaves to granit-parser (or that are invalid there).
const RARE_SCALARS: &[&str] = &[
    "*alias",
    "&anchor v",
    "!tag v",
    "|",
    ">",
    "?",
    "@x",
    "%x",
    "a ]",
    "é",
    "-",
    "a:",
    "- x",
];

const FLOW_SCALARS: &[&str] = &[
    "a",
    "8080",
    "-1",
    "\"q\"",
    "'s'",
    "'it''s'",
    "a b",
    "true",
    "~",
    "team-001/svc-00002",
    "http://x",
    "a:b",
    "\"a,b\"",
];

fn flow_scalar(rng: &mut Rng) -> String {
    if rng.chance(3) {
        rng.pick(&["- x", "a: b", "", "*a", "a #b"]).to_string()
    } else {
        rng.pick(FLOW_SCALARS).to_string()
    }
}

fn flow(rng: &mut Rng, depth: usize) -> String {
    let n = rng.below(4);
    if depth < 3 && rng.chance(50) {
        let items: Vec<String> = (0..n)
            .map(|_| {
                let k = key(rng, &["a", "name", "\"k\"", "'k'", "8080", "x y"]);
                let v = if depth < 2 && rng.chance(20) {
                    flow(rng, depth + 1)
                } else {
                    flow_scalar(rng)
                };
                format!("{k}: {v}")
            })
            .collect();
        let sep = rng.pick(&[", ", ",", " , "]);
        let pad = rng.pick(&["", " "]);
        format!("{{{pad}{}{pad}}}", items.join(sep))
    } else {
        let items: Vec<String> = (0..n)
            .map(|_| {
                if depth < 2 && rng.chance(20) {
                    flow(rng, depth + 1)
                } else {
                    flow_scalar(rng)
                }
            })
            .collect();
        let sep = rng.pick(&[", ", ",", " ,  "]);
        format!("[{}]", items.join(sep))
    }
}

fn trailer(rng: &mut Rng) -> &'static str {
    match rng.below(10) {
        0 => "   ",
        1 => " # comment",
        2 => "  #c: d",
        _ => "",
    }
}

fn inline_value(rng: &mut Rng) -> String {
    if rng.chance(25) {
        flow(rng, 0)
    } else if rng.chance(3) {
        rng.pick(RARE_SCALARS).to_string()
    } else {
        rng.pick(SCALARS).to_string()
    }
}

fn noise(rng: &mut Rng, indent: usize, out: &mut String) {
    match rng.below(12) {
        0 => out.push('\n'),
        1 => {
            out.push_str(&" ".repeat(rng.below(indent + 3)));
            out.push_str("# a comment: - [x]\n");
        }
        2 => out.push_str("   \n"),
        _ => {}
    }
}

fn block_map(rng: &mut Rng, indent: usize, depth: usize, first_inline: bool, out: &mut String) {
    let n = 1 + rng.below(4);
    for i in 0..n {
        if !(i == 0 && first_inline) {
            noise(rng, indent, out);
            out.push_str(&" ".repeat(indent));
        }
        out.push_str(key(rng, KEYS));
        out.push(':');
        match rng.below(10) {
            0 | 1 if depth < 5 => {
                out.push_str(trailer(rng));
                out.push('\n');
                let deeper = indent + 1 + rng.below(4);
                block_map(rng, deeper, depth + 1, false, out);
            }
            2 if depth < 5 => {
                out.push_str(trailer(rng));
                out.push('\n');
                // A sequence at the key's own indentation, or deeper.
                let at = if rng.chance(50) { indent } else { indent + 2 };
                block_seq(rng, at, depth + 1, false, out);
            }
            3 => {
                // Null.
                out.push_str(trailer(rng));
                out.push('\n');
            }
            _ => {
                out.push_str(rng.pick(&[" ", "  "]));
                out.push_str(&inline_value(rng));
                out.push_str(trailer(rng));
                out.push('\n');
            }
        }
    }
}

fn block_seq(rng: &mut Rng, indent: usize, depth: usize, first_inline: bool, out: &mut String) {
    let n = 1 + rng.below(4);
    for i in 0..n {
        if !(i == 0 && first_inline) {
            noise(rng, indent, out);
            out.push_str(&" ".repeat(indent));
        }
        out.push('-');
        match rng.below(8) {
            0 | 1 if depth < 5 => {
                let gap = 1 + rng.below(3);
                out.push_str(&" ".repeat(gap));
                block_map(rng, indent + 1 + gap, depth + 1, true, out);
            }
            2 if depth < 5 => {
                out.push(' ');
                block_seq(rng, indent + 2, depth + 1, true, out);
            }
            3 if depth < 5 => {
                out.push_str(trailer(rng));
                out.push('\n');
                block_map(rng, indent + 2, depth + 1, false, out);
            }
            4 if rng.chance(20) => {
                // An empty entry.
                out.push_str(trailer(rng));
                out.push('\n');
            }
            _ => {
                out.push(' ');
                out.push_str(&inline_value(rng));
                out.push_str(trailer(rng));
                out.push('\n');
            }
        }
    }
}

fn document(rng: &mut Rng) -> String {
    let mut out = String::new();
    let docs = 1 + rng.below(3);
    for d in 0..docs {
        if d > 0 || rng.chance(50) {
            let marker = if rng.chance(5) {
                rng.pick(&["--- a\n", "...\n", "---\t\n"])
            } else {
                rng.pick(&["---\n", "--- # doc\n", "---   \n"])
            };
            out.push_str(marker);
        }
        noise(rng, 0, &mut out);
        match rng.below(8) {
            0 => {
                let at = rng.below(2);
                block_seq(rng, at, 0, false, &mut out)
            }
            1 => {}
            _ => block_map(rng, 0, 0, false, &mut out),
        }
    }
    if rng.chance(20) {
        out.pop();
    }
    out
}

const MUTATIONS: &[&str] = &[
    " ", "\n", ":", "-", "#", "\"", "'", "[", "]", "{", "}", ",", "?", "&", "*", "!", "|", ">",
    "\t", "x", ".", "%", "\r", "- ", ": ", "---\n", "  ",
];

fn mutate(rng: &mut Rng, text: &str) -> String {
    let mut s = text.as_bytes().to_vec();
    for _ in 0..1 + rng.below(3) {
        if s.is_empty() {
            break;
        }
        let at = rng.below(s.len());
        match rng.below(3) {
            0 => {
                s.remove(at);
            }
            1 => {
                let piece = rng.pick(MUTATIONS).as_bytes();
                s.splice(at..at, piece.iter().copied());
            }
            _ => {
                // Re-indent one line.
                let start = s[..at]
                    .iter()
                    .rposition(|&c| c == b'\n')
                    .map_or(0, |i| i + 1);
                if rng.chance(50) {
                    s.insert(start, b' ');
                } else if s.get(start) == Some(&b' ') {
                    s.remove(start);
                }
            }
        }
    }
    String::from_utf8_lossy(&s).into_owned()
}

#[test]
fn the_fast_path_agrees_with_granit_on_generated_yaml() {
    // `MESHC_SYNTAX_CASES=1000000 MESHC_SYNTAX_SEED=7` runs a longer search.
    let cases = std::env::var("MESHC_SYNTAX_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(6_000);
    let seed = std::env::var("MESHC_SYNTAX_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0x9e37_79b9_7f4a_7c15_u64);
    let mut rng = Rng(seed | 1);
    let (mut valid, mut valid_taken, mut mutated, mut mutated_taken) = (0, 0, 0, 0);
    for _ in 0..cases {
        let text = document(&mut rng);
        valid += 1;
        valid_taken += usize::from(agree(&text, Limits::default()));
        for _ in 0..2 {
            let m = mutate(&mut rng, &text);
            mutated += 1;
            mutated_taken += usize::from(agree(&m, Limits::default()));
        }
    }
    println!(
        "fast path took {valid_taken} of {valid} generated files, {mutated_taken} of {mutated} mutated ones"
    );
    // The generator must exercise the fast path, not only its ways of giving up.
    assert!(
        valid_taken * 4 >= valid,
        "fast path took {valid_taken} of {valid} generated files"
    );
    assert!(
        mutated_taken * 10 >= mutated,
        "fast path took {mutated_taken} of {mutated} mutated files"
    );
}

#[test]
fn the_fast_path_never_takes_a_file_over_a_budget() {
    let mut rng = Rng(0x2545_f491_4f6c_dd1d);
    let tight = Limits {
        max_depth: 3,
        max_aliases: 0,
        max_nodes: 40,
        max_documents: 2,
    };
    let mut taken = 0;
    for _ in 0..3_000 {
        let text = document(&mut rng);
        taken += usize::from(agree(&text, tight));
    }
    assert!(taken > 100, "fast path took only {taken} files");
}
