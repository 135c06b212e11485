//! `fnwatch demo`: the embedded sample telemetry into a lake, and a first look at it.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use clap::Args;
use fnwatch_analytics::output::{Format, write_result};
use fnwatch_analytics::session::LakeSession;
use fnwatch_ingest::lake::Lake;
use fnwatch_ingest::sources::file::{FileSourceConfig, IngestProgress, ingest_files};

/// Three days of telemetry from a small fleet, with a few bad records: see tests/data/README.md.
const SAMPLE: &[u8] = include_bytes!("../../tests/data/sample.jsonl.gz");

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Folder to write the sample and the lake into.
    #[arg(long, value_name = "DIR", default_value = "fnwatch-demo")]
    pub dir: PathBuf,
}

const QUERIES: [(&str, &str); 3] = [
    (
        "Invocations, errors and timeouts per function",
        "SELECT function, count(*) AS invocations, \
         sum(CASE WHEN status = 'error' THEN 1 ELSE 0 END) AS errors, \
         sum(CASE WHEN status = 'timeout' THEN 1 ELSE 0 END) AS timeouts, \
         round(avg(duration_ms), 1) AS avg_ms \
         FROM invocations GROUP BY function ORDER BY invocations DESC",
    ),
    (
        "Registrable domains each function resolves",
        "SELECT function, registrable_domain, count(*) AS lookups \
         FROM dns GROUP BY 1, 2 ORDER BY function, lookups DESC LIMIT 15",
    ),
    (
        "Why records were dead-lettered",
        "SELECT position, reason FROM dead_letters ORDER BY line LIMIT 5",
    ),
];

pub async fn run(a: DemoArgs) -> anyhow::Result<()> {
    std::fs::create_dir_all(&a.dir).with_context(|| format!("creating {}", a.dir.display()))?;
    let sample = a.dir.join("sample.jsonl.gz");
    std::fs::write(&sample, SAMPLE).with_context(|| format!("writing {}", sample.display()))?;
    let lake_path = a.dir.join("lake");
    let lake_str = lake_path.display().to_string();
    let mut lake = Lake::open_or_create(&lake_str)
        .await
        .with_context(|| format!("opening lake {lake_str}"))?;
    let report = ingest_files(
        &mut lake,
        &FileSourceConfig::new(vec![sample.clone()]),
        Arc::new(IngestProgress::default()),
    )
    .await
    .context("ingesting the sample")?;
    super::ingest::print_summary(&report, &lake_str);

    let session = LakeSession::open(&lake_str).await?;
    for (title, sql) in QUERIES {
        println!("\n== {title}\n{sql}\n");
        let result = session.query(sql).await?;
        write_result(&result, Format::Table, &mut std::io::stdout())?;
    }
    println!(
        "\nThe lake is in {lake_str}. Try:\n  \
         fnwatch sql --lake {lake_str} \"SELECT exe, cmdline, count(*) FROM processes GROUP BY 1, 2\"\n  \
         fnwatch sql --lake {lake_str} \"SELECT function, remote_host, remote_port, sum(bytes_out) FROM network GROUP BY 1, 2, 3 ORDER BY 4 DESC LIMIT 10\"\n  \
         fnwatch sql --lake {lake_str} --format csv \"SELECT * FROM api_calls WHERE error_code IS NOT NULL\""
    );
    Ok(())
}
