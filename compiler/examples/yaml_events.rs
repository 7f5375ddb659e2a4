//! Print granit-parser's events for a YAML file with their byte spans, and whether the fast
//! path (`compiler/src/syntax/fast.rs`) takes the file and agrees:
//! `cargo run -p meshc --example yaml_events -- FILE`.

use meshc::source::FileId;
use meshc::syntax::{Limits, parse_documents_fast, parse_documents_granit};
use serde_saphyr::granit_parser::{Event, Parser};

fn main() -> std::process::ExitCode {
    let Some(path) = std::env::args().nth(1) else {
        eprintln!("usage: yaml_events FILE");
        return std::process::ExitCode::from(2);
    };
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("cannot read `{path}`: {e}");
            return std::process::ExitCode::from(2);
        }
    };
    for ev in Parser::new_from_str(&text) {
        match ev {
            Ok((event, span)) => {
                let start = span.start.byte_offset().unwrap_or(0).min(text.len());
                let end = span
                    .end
                    .byte_offset()
                    .unwrap_or(start)
                    .clamp(start, text.len());
                let name = match &event {
                    Event::Scalar(v, style, ..) => format!("Scalar({v:?}, {style:?})"),
                    other => format!("{other:?}"),
                };
                println!(
                    "{start:>6}..{end:<6} {:<24} {name}",
                    format!("{:?}", text.get(start..end).unwrap_or(""))
                );
            }
            Err(e) => {
                println!("error: {e}");
                break;
            }
        }
    }
    let limits = Limits::default();
    match parse_documents_fast(&text, limits) {
        None => println!("fast path: gives up (granit-parser reads the file)"),
        Some(fast) => {
            let same = parse_documents_granit(FileId(0), &text, limits)
                .is_ok_and(|full| format!("{full:?}") == format!("{fast:?}"));
            println!("fast path: takes the file; same tree as granit: {same}");
        }
    }
    std::process::ExitCode::SUCCESS
}
