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
  fnwatch sql --lake ./lake --file queries/hunts/rare_domains.sql")]
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
    let query = query.trim().trim_end_matches(';').trim().to_string();
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
