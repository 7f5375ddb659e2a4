//! Request path normalization, which both sidecar listeners run on every request.
//!
//! Run: `cargo bench -p mesh-artifact --bench path`.
//!
//! `normal` is the common case (a path already in normal form: one scan, borrowed, no
//! allocation); `dot_segments` and `encoded` are paths that get rewritten.

use divan::black_box;
use mesh_artifact::normalize_path;

fn main() {
    divan::main();
}

const NORMAL: &[&str] = &[
    "/",
    "/health",
    "/api/v1/users/12345/orders",
    "/reviews/0",
    "/static/css/site.min.css",
    "/search/a%20b%C3%A9",
];

#[divan::bench]
fn normal() -> usize {
    NORMAL
        .iter()
        .map(|p| normalize_path(black_box(p)).map_or(0, |n| n.len()))
        .sum()
}

#[divan::bench]
fn dot_segments() -> usize {
    normalize_path(black_box("/api/v1/../v2/./users//12345/orders/")).map_or(0, |n| n.len())
}

#[divan::bench]
fn encoded() -> usize {
    normalize_path(black_box("/%61pi/v1/users/%7euser/a%3fb%20c")).map_or(0, |n| n.len())
}
