//! The report as Markdown (for tickets, chat and git): the same sections
//! as the HTML page, tables instead of charts.

use std::fmt::Write;

use super::html::fmt_num;
use super::{Report, Section};

/// A table cell: Markdown's punctuation escaped (pipes end cells; `[ ] ( )`
/// and `!` make links and images a domain or function name could use to
/// point readers elsewhere or load a tracking image; `` ` * _ ~ `` format),
/// `<` as an entity (no HTML), line breaks and other separators flattened.
pub fn cell(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '\\' | '|' | '[' | ']' | '(' | ')' | '!' | '`' | '*' | '_' | '~' => {
                out.push('\\');
                out.push(c);
            }
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            c if c.is_control() || crate::sinks::render::is_line_separator(c) => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

fn table(m: &mut String, s: &Section, max: usize) {
    if s.rows.is_empty() {
        m.push_str("_Nothing in this window._\n\n");
        return;
    }
    let _ = writeln!(
        m,
        "| {} |",
        s.columns
            .iter()
            .map(|c| cell(c))
            .collect::<Vec<_>>()
            .join(" | ")
    );
    let _ = writeln!(m, "|{}", "---|".repeat(s.columns.len()));
    for i in 0..s.rows.len().min(max) {
        let cells: Vec<String> = s.columns.iter().map(|c| cell(&s.text(i, c))).collect();
        let _ = writeln!(m, "| {} |", cells.join(" | "));
    }
    if s.rows.len() > max {
        let _ = writeln!(
            m,
            "\n_{} more rows in the JSON report._",
            s.rows.len() - max
        );
    }
    m.push('\n');
}

/// Renders the Markdown text.
pub fn render(r: &Report) -> String {
    let mut m = String::new();
    let _ = writeln!(m, "# {}\n", r.title);
    let _ = writeln!(
        m,
        "{} to {} (UTC); baseline from {}; generated {}.\n",
        r.from, r.to, r.baseline_from, r.generated_at
    );
    m.push_str("## At a glance\n\n");
    if let Some(v) = r.section("volume") {
        let _ = writeln!(
            m,
            "- {} invocations of {} functions, {:.1} billed GB-s\n- {} errors, {} timeouts, {} cold starts",
            fmt_num(v.num(0, "invocations")),
            fmt_num(v.num(0, "functions")),
            v.num(0, "billed_gb_s"),
            fmt_num(v.num(0, "errors")),
            fmt_num(v.num(0, "timeouts")),
            fmt_num(v.num(0, "cold_starts")),
        );
    }
    if let Some(p) = r.section("pipeline_health") {
        let _ = writeln!(
            m,
            "- {} dead-lettered records",
            fmt_num(p.num(0, "dead_letters"))
        );
    }
    m.push('\n');
    let parts: [(&str, &str); 11] = [
        ("alerts_by_kind", "## Alerts by kind and severity"),
        ("alerts_by_function", "## Functions with most alerts"),
        ("top_findings", "## Top findings"),
        ("drift_new_domains", "## Behaviour drift: new domains"),
        ("drift_new_processes", "## Behaviour drift: new processes"),
        ("drift_new_peers", "## Behaviour drift: new network peers"),
        ("timeouts_errors", "## Timeouts and errors"),
        ("least_privilege", "## Least privilege"),
        ("top_domains", "## Most resolved domains"),
        ("invocations_by_hour", "## Invocations per hour"),
        ("pipeline_health", "## Pipeline health"),
    ];
    for (name, title) in parts {
        let _ = writeln!(m, "{title}\n");
        let needs_alerts =
            name.starts_with("alerts") || name == "top_findings" || name == "least_privilege";
        if needs_alerts && !r.has_alerts {
            m.push_str(
                "_The lake holds no alerts: run `fnwatch train` and `fnwatch detect` first._\n\n",
            );
            continue;
        }
        if let Some(s) = r.section(name) {
            table(&mut m, s, 50);
        }
    }
    m
}

#[cfg(test)]
mod tests {
    use super::cell;

    #[test]
    fn cells_cannot_make_links_images_or_new_rows() {
        let hostile =
            "![x](https://evil.example/t.png) [click](javascript:alert(1)) a|b\nc\u{2028}d <b>";
        let c = cell(hostile);
        assert_eq!(
            c,
            "\\!\\[x\\]\\(https://evil.example/t.png\\) \\[click\\]\\(javascript:alert\\(1\\)\\) a\\|b c d &lt;b&gt;"
        );
        // Every `[`, `(` and `!` is escaped: none starts a link or image.
        for (i, ch) in c.char_indices() {
            if matches!(ch, '[' | ']' | '(' | ')' | '!' | '|') {
                assert_eq!(&c[i - 1..i], "\\", "unescaped {ch} at {i} in {c}");
            }
        }
    }
}
