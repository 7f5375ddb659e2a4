//! Rendering diagnostics: `human` (rustc-like, through miette), `concise`, `json`, `github`,
//! `sarif`. Pure functions from diagnostics and sources to text.

use std::fmt::Write as _;

use miette::{
    GraphicalReportHandler, GraphicalTheme, LabeledSpan, MietteError, MietteSpanContents,
    SourceCode, SourceSpan, SpanContents,
};
use serde_json::json;

use crate::diag::{Code, Diagnostic, Severity, Summary};
use crate::source::{SourceFile, SourceMap};

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Human,
    Concise,
    Json,
    Github,
    Sarif,
}

/// Options of the `human` format.
#[derive(Clone, Copy, Debug)]
pub struct HumanOptions {
    pub color: bool,
    pub width: usize,
}

impl Default for HumanOptions {
    fn default() -> Self {
        HumanOptions {
            color: false,
            width: 100,
        }
    }
}

/// Position of a diagnostic: (file, line, column, end line, end column), 1-based.
pub fn position(sources: &SourceMap, d: &Diagnostic) -> (String, usize, usize, usize, usize) {
    match &d.primary {
        Some(l) => {
            let file = sources.path(l.loc.file).to_string();
            let (line, col) = sources.line_col(l.loc);
            let end = sources
                .get(l.loc.file)
                .map_or((line, col), |f| f.line_col(l.loc.span.end));
            (file, line, col, end.0, end.1)
        }
        None => (".".to_string(), 1, 1, 1, 1),
    }
}

/// A file as miette reads it, except that the position in the report's header
/// (`[file:line:col]`) is the one [`position`] gives the machine formats: miette counts columns
/// in bytes, and meshc, like the editors and CI annotations that read its output, in characters.
#[derive(Debug)]
struct FileSource {
    file: SourceFile,
}

impl SourceCode for FileSource {
    fn read_span<'a>(
        &'a self,
        span: &SourceSpan,
        context_lines_before: usize,
        context_lines_after: usize,
    ) -> Result<Box<dyn SpanContents<'a> + 'a>, MietteError> {
        let inner =
            self.file
                .text
                .as_str()
                .read_span(span, context_lines_before, context_lines_after)?;
        let (mut line, mut column) = (inner.line(), inner.column());
        if context_lines_before == 0 {
            // Without context lines the contents start at the span: this is the header's
            // position (context reads start at a line start, column 0).
            let (l, c) = self.file.line_col(span.offset());
            line = l.saturating_sub(1);
            column = c.saturating_sub(1);
        }
        Ok(Box::new(
            MietteSpanContents::new_named(
                self.file.path.clone(),
                inner.data(),
                *inner.span(),
                line,
                column,
                inner.line_count(),
            )
            .with_language("yaml"),
        ))
    }
}

#[derive(Debug)]
struct Rendered {
    code: String,
    severity: miette::Severity,
    message: String,
    help: Option<String>,
    source: Option<FileSource>,
    labels: Vec<LabeledSpan>,
    related: Vec<Rendered>,
}

impl std::fmt::Display for Rendered {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Rendered {}

impl miette::Diagnostic for Rendered {
    fn code<'a>(&'a self) -> Option<Box<dyn std::fmt::Display + 'a>> {
        if self.code.is_empty() {
            None
        } else {
            Some(Box::new(&self.code))
        }
    }
    fn severity(&self) -> Option<miette::Severity> {
        Some(self.severity)
    }
    fn help<'a>(&'a self) -> Option<Box<dyn std::fmt::Display + 'a>> {
        self.help
            .as_ref()
            .map(|h| Box::new(h) as Box<dyn std::fmt::Display>)
    }
    fn source_code(&self) -> Option<&dyn miette::SourceCode> {
        self.source.as_ref().map(|s| s as &dyn miette::SourceCode)
    }
    fn labels(&self) -> Option<Box<dyn Iterator<Item = LabeledSpan> + '_>> {
        if self.labels.is_empty() {
            None
        } else {
            Some(Box::new(self.labels.iter().cloned()))
        }
    }
    fn related<'a>(&'a self) -> Option<Box<dyn Iterator<Item = &'a dyn miette::Diagnostic> + 'a>> {
        if self.related.is_empty() {
            None
        } else {
            Some(Box::new(
                self.related.iter().map(|r| r as &dyn miette::Diagnostic),
            ))
        }
    }
}

fn miette_severity(s: Severity) -> miette::Severity {
    match s {
        Severity::Error => miette::Severity::Error,
        Severity::Warning => miette::Severity::Warning,
        Severity::Note => miette::Severity::Advice,
    }
}

fn to_rendered(sources: &SourceMap, d: &Diagnostic) -> Rendered {
    let mut r = Rendered {
        code: d.code.as_str().to_string(),
        severity: miette_severity(d.severity),
        message: d.message.clone(),
        help: d.help.clone(),
        source: None,
        labels: Vec::new(),
        related: Vec::new(),
    };
    let Some(primary) = &d.primary else { return r };
    let file = sources.get(primary.loc.file);
    let text = file.map(|f| f.text.clone()).unwrap_or_default();
    let path = file.map(|f| f.path.clone()).unwrap_or_default();
    let span = |s: crate::source::Span| {
        SourceSpan::new(
            s.start.min(text.len()).into(),
            s.len().min(text.len().saturating_sub(s.start)),
        )
    };
    if text.is_empty() {
        // Nothing to show (unreadable or binary file): name the file in the message.
        r.message = format!("{}\n  --> {path}", d.message);
        return r;
    }
    r.labels.push(LabeledSpan::new_primary_with_span(
        Some(primary.message.clone()),
        span(primary.loc.span),
    ));
    for s in &d.secondary {
        if s.loc.file == primary.loc.file {
            r.labels.push(LabeledSpan::new_with_span(
                Some(s.message.clone()),
                span(s.loc.span),
            ));
        } else {
            let other = Diagnostic {
                code: d.code,
                severity: Severity::Note,
                message: s.message.clone(),
                primary: Some(s.clone()),
                secondary: Vec::new(),
                help: None,
            };
            let mut rel = to_rendered(sources, &other);
            rel.code = String::new();
            r.related.push(rel);
        }
    }
    r.source = Some(FileSource {
        file: SourceFile::new(path, text),
    });
    r
}

/// rustc-like output for one diagnostic.
pub fn human_one(sources: &SourceMap, d: &Diagnostic, opts: HumanOptions) -> String {
    let theme = if opts.color {
        GraphicalTheme::unicode()
    } else {
        GraphicalTheme::unicode_nocolor()
    };
    let handler = GraphicalReportHandler::new_themed(theme)
        .with_width(opts.width)
        .with_links(false);
    let mut out = String::new();
    let r = to_rendered(sources, d);
    if handler.render_report(&mut out, &r).is_err() {
        let (file, line, col, _, _) = position(sources, d);
        out = format!(
            "{}[{}]: {}\n  --> {file}:{line}:{col}\n",
            d.severity.as_str(),
            d.code.as_str(),
            d.message
        );
    }
    out
}

fn summary_line(s: Summary) -> String {
    let plural = |n: usize, w: &str| {
        if n == 1 {
            format!("{n} {w}")
        } else {
            format!("{n} {w}s")
        }
    };
    format!(
        "{}, {}, {}",
        plural(s.errors, "error"),
        plural(s.warnings, "warning"),
        plural(s.notes, "note")
    )
}

pub fn human(sources: &SourceMap, diags: &[Diagnostic], opts: HumanOptions) -> String {
    let mut out = String::new();
    for d in diags {
        out.push_str(&human_one(sources, d, opts));
        out.push('\n');
    }
    let s = Summary::of(diags);
    let _ = writeln!(out, "{}", summary_line(s));
    out
}

/// `file:line:col: severity[CODE] message`, one line each, like ruff's concise output.
pub fn concise(sources: &SourceMap, diags: &[Diagnostic]) -> String {
    let mut out = String::new();
    for d in diags {
        let (file, line, col, _, _) = position(sources, d);
        let _ = writeln!(
            out,
            "{file}:{line}:{col}: {}[{}] {}",
            d.severity.as_str(),
            d.code.as_str(),
            d.message
        );
    }
    let _ = writeln!(out, "{}", summary_line(Summary::of(diags)));
    out
}

pub fn json_value(sources: &SourceMap, diags: &[Diagnostic]) -> serde_json::Value {
    let list: Vec<serde_json::Value> = diags
        .iter()
        .map(|d| {
            let (file, line, col, end_line, end_col) = position(sources, d);
            json!({
                "code": d.code.as_str(),
                "severity": d.severity.as_str(),
                "message": d.message,
                "file": file,
                "line": line,
                "column": col,
                "end_line": end_line,
                "end_column": end_col,
                "help": d.help,
            })
        })
        .collect();
    let s = Summary::of(diags);
    json!({"version": 1, "diagnostics": list, "summary": s})
}

pub fn json(sources: &SourceMap, diags: &[Diagnostic]) -> String {
    let mut s = serde_json::to_string_pretty(&json_value(sources, diags)).unwrap_or_default();
    s.push('\n');
    s
}

fn gh_escape_data(s: &str) -> String {
    s.replace('%', "%25")
        .replace('\r', "%0D")
        .replace('\n', "%0A")
}

fn gh_escape_prop(s: &str) -> String {
    gh_escape_data(s).replace(':', "%3A").replace(',', "%2C")
}

/// GitHub Actions workflow commands.
pub fn github(sources: &SourceMap, diags: &[Diagnostic]) -> String {
    let mut out = String::new();
    for d in diags {
        let (file, line, col, end_line, end_col) = position(sources, d);
        let level = match d.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
            Severity::Note => "notice",
        };
        let mut msg = d.message.clone();
        if let Some(h) = &d.help {
            msg.push_str("\nhelp: ");
            msg.push_str(h);
        }
        let _ = writeln!(
            out,
            "::{level} file={},line={line},col={col},endLine={end_line},endColumn={end_col},title={}::{}",
            gh_escape_prop(&file),
            gh_escape_prop(d.code.as_str()),
            gh_escape_data(&msg)
        );
    }
    out
}

/// SARIF 2.1.0, one rule per diagnostic code.
pub fn sarif(sources: &SourceMap, diags: &[Diagnostic]) -> String {
    let rules: Vec<serde_json::Value> = Code::ALL
        .iter()
        .map(|c| {
            json!({
                "id": c.as_str(),
                "name": c.slug(),
                "shortDescription": {"text": c.summary()},
                "helpUri": format!("https://github.com/meshc/meshc/blob/main/docs/diagnostics.md#{}", c.as_str().to_ascii_lowercase()),
                "defaultConfiguration": {"level": sarif_level(c.severity())},
            })
        })
        .collect();
    let results: Vec<serde_json::Value> = diags
        .iter()
        .map(|d| {
            let (file, line, col, end_line, end_col) = position(sources, d);
            let rule_index = Code::ALL.iter().position(|c| *c == d.code).unwrap_or(0);
            let mut text = d.message.clone();
            if let Some(h) = &d.help {
                text.push_str("\nhelp: ");
                text.push_str(h);
            }
            json!({
                "ruleId": d.code.as_str(),
                "ruleIndex": rule_index,
                "level": sarif_level(d.severity),
                "message": {"text": text},
                "locations": [{
                    "physicalLocation": {
                        "artifactLocation": {"uri": file},
                        "region": {"startLine": line, "startColumn": col, "endLine": end_line, "endColumn": end_col}
                    }
                }],
            })
        })
        .collect();
    let doc = json!({
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [{
            "tool": {"driver": {
                "name": "meshc",
                "version": env!("CARGO_PKG_VERSION"),
                "informationUri": "https://github.com/meshc/meshc",
                "rules": rules,
            }},
            "results": results,
        }],
    });
    let mut s = serde_json::to_string_pretty(&doc).unwrap_or_default();
    s.push('\n');
    s
}

fn sarif_level(s: Severity) -> &'static str {
    match s {
        Severity::Error => "error",
        Severity::Warning => "warning",
        Severity::Note => "note",
    }
}

pub fn render(
    format: Format,
    sources: &SourceMap,
    diags: &[Diagnostic],
    human_opts: HumanOptions,
) -> String {
    match format {
        Format::Human => human(sources, diags, human_opts),
        Format::Concise => concise(sources, diags),
        Format::Json => json(sources, diags),
        Format::Github => github(sources, diags),
        Format::Sarif => sarif(sources, diags),
    }
}
