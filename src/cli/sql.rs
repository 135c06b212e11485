//! `fnwatch sql`: SQL over the lake.

use std::io::{IsTerminal, Read, Write};
use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::Args;
use fnwatch_analytics::output::{Format, write_result};
use fnwatch_analytics::session::LakeSession;

#[derive(Debug, Args)]
#[command(after_help = "\
Tables: events (all event types, partitioned by date), dead_letters.
Views:  invocations, dns, processes, network, files, api_calls,
        function_configs, logs (defined in queries/views.sql).

Examples:
  fnwatch sql --lake ./lake \"SELECT function, count(*) FROM dns GROUP BY 1 ORDER BY 2 DESC\"
  fnwatch sql --lake ./lake --format csv \"SELECT * FROM processes\" > processes.csv
  fnwatch sql --lake ./lake --file queries/hunts/rare_domains.sql --param since=-7d

Saved queries declare their parameters in their header as
`-- @param NAME = DEFAULT  meaning` and use them as ${NAME}.")]
pub struct SqlArgs {
    /// The lake folder.
    #[arg(long, value_name = "PATH")]
    pub lake: String,
    /// The query (or use --file; read from stdin when neither is given and stdin is not a terminal).
    #[arg(value_name = "QUERY", conflicts_with = "file")]
    pub query: Option<String>,
    /// Run the query in this .sql file.
    #[arg(long, value_name = "FILE")]
    pub file: Option<PathBuf>,
    /// Output format: table, csv, json (one array), jsonl (one object per line), parquet.
    #[arg(long, default_value = "table", value_parser = parse_format)]
    pub format: Format,
    /// Write the result to this file instead of stdout.
    #[arg(long, short, value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// A named parameter of the query, `${NAME}` in its text (repeatable).
    /// Relative times such as -7d or -24h become timestamps.
    #[arg(long = "param", value_name = "NAME=VALUE", value_parser = parse_param)]
    pub params: Vec<(String, String)>,
}

fn parse_param(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.trim().is_empty() => Ok((k.trim().to_string(), v.to_string())),
        _ => Err(format!("`{s}` is not NAME=VALUE")),
    }
}

/// The query without full-line `--` comments and a final `;`.
fn strip_comments_and_semicolon(q: &str) -> String {
    let body: Vec<&str> = q
        .lines()
        .filter(|l| !l.trim_start().starts_with("--"))
        .collect();
    body.join("\n")
        .trim()
        .trim_end_matches(';')
        .trim()
        .to_string()
}

fn parse_format(s: &str) -> Result<Format, String> {
    Format::parse(s)
        .ok_or_else(|| format!("unknown format `{s}` (valid values: {})", Format::NAMES))
}

pub async fn run(a: SqlArgs) -> anyhow::Result<()> {
    let query = match (&a.query, &a.file) {
        (Some(q), _) => q.clone(),
        (None, Some(f)) => std::fs::read_to_string(f)
            .with_context(|| format!("reading query file {}", f.display()))?,
        (None, None) => {
            if std::io::stdin().is_terminal() {
                bail!(
                    "give a query, e.g. fnwatch sql --lake {} \"SELECT count(*) FROM events\", or --file FILE.sql",
                    a.lake
                );
            }
            let mut q = String::new();
            std::io::stdin()
                .read_to_string(&mut q)
                .context("reading the query from stdin")?;
            q
        }
    };
    let now_us = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros() as i64)
        .unwrap_or(0);
    let query = fnwatch_analytics::params::substitute(&query, &a.params, now_us)?;
    let query = strip_comments_and_semicolon(&query);
    if query.is_empty() {
        bail!("the query is empty");
    }
    if a.format == Format::Parquet && a.output.is_none() && std::io::stdout().is_terminal() {
        bail!("--format parquet writes binary data: give --output FILE or redirect stdout");
    }
    let session = LakeSession::open(&a.lake)
        .await
        .with_context(|| format!("opening lake {}", a.lake))?;
    let result = session.query(&query).await?;
    match &a.output {
        Some(path) => {
            let mut f = std::io::BufWriter::new(
                std::fs::File::create(path)
                    .with_context(|| format!("creating {}", path.display()))?,
            );
            write_result(&result, a.format, &mut f)?;
            f.flush()
                .with_context(|| format!("writing {}", path.display()))?;
        }
        None => {
            let mut out = std::io::BufWriter::new(std::io::stdout());
            write_result(&result, a.format, &mut out)?;
        }
    }
    Ok(())
}
