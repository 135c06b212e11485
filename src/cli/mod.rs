//! Command-line interface: one module per subcommand.

mod alerts;
mod compact;
mod demo;
mod detect;
mod ingest;
mod ingest_kinesis;
mod inventory;
mod report;
mod sensor;
mod server;
mod simulate;
mod sql;
mod train;
mod window;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// fnwatch: watch what serverless functions do.
///
/// Telemetry from functions (invocations, DNS lookups, child processes,
/// connections, file access, cloud API calls, configuration) goes into a
/// Delta Lake "lake"; analysts query it with SQL.
#[derive(Debug, Parser)]
#[command(name = "fnwatch", version, about, long_about = None, propagate_version = true)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Args)]
pub struct GlobalArgs {
    /// More log output (-v: lifecycle, -vv: debug); RUST_LOG overrides.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,
    /// Log line format on stderr.
    #[arg(long, value_enum, default_value_t = LogFormat::Human, global = true)]
    pub log_format: LogFormat,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum LogFormat {
    Human,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Decode telemetry files into the lake (exactly once per file content).
    Ingest(ingest::IngestArgs),
    /// Inventory every Lambda function (configuration, triggers, role policies) into the lake.
    Inventory(inventory::InventoryArgs),
    /// Run SQL over the lake: tables `events`, `dead_letters` and one view per event type.
    Sql(sql::SqlArgs),
    /// Compact the lake's small files into large ones (Delta OPTIMIZE).
    Compact(compact::CompactArgs),
    /// Learn each function's normal behaviour from a window of the lake.
    Train(train::TrainArgs),
    /// Score a window of the lake against the latest model and write alerts.
    Detect(detect::DetectArgs),
    /// Generate realistic telemetry for a fleet, with labelled attack campaigns.
    Simulate(simulate::SimulateArgs),
    /// Everything, embedded: simulate a fleet, ingest, train, detect, show the alerts.
    Demo(demo::DemoArgs),
    /// Deliver stored alerts to SIEMs, chat and files (the outputs of fnwatch.toml).
    Alerts(alerts::AlertsArgs),
    /// Write an anomaly report for a window (HTML with charts, Markdown, JSON), once or on a schedule.
    Report(report::ReportArgs),
    /// Serve the lake over the PostgreSQL wire protocol (psql, JDBC, Grafana), read-only.
    Server(server::ServerArgs),
    /// The in-function sensor: `package` builds its Lambda layer.
    Sensor(sensor::SensorArgs),
}

impl Command {
    /// Services log their lifecycle at `info` by default; one-shot commands
    /// stay quiet unless asked (-v).
    pub fn is_service(&self) -> bool {
        matches!(self, Command::Ingest(a) if a.kinesis.kinesis.is_some())
            || matches!(self, Command::Inventory(a) if a.every.is_some())
    }
}

pub fn init_logging(g: &GlobalArgs, service: bool) {
    use tracing_subscriber::EnvFilter;
    let default = match g.verbose {
        // A service logs its lifecycle; the Delta kernel's probes of tables
        // that do not exist yet are not news.
        0 if service => "info,deltalake=warn,datafusion=warn,buoyant_kernel=off,delta_kernel=off",
        0 => "warn,buoyant_kernel=off,delta_kernel=off",
        1 => "info,deltalake=warn,datafusion=warn,buoyant_kernel=warn,delta_kernel=warn",
        _ => "debug",
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match g.log_format {
        LogFormat::Human => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

pub fn run(cli: Cli) -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        match cli.command {
            Command::Ingest(a) => ingest::run(a).await,
            Command::Inventory(a) => inventory::run(a).await,
            Command::Sql(a) => sql::run(a).await,
            Command::Compact(a) => compact::run(a).await,
            Command::Train(a) => train::run(a).await,
            Command::Detect(a) => detect::run(a).await,
            Command::Simulate(a) => simulate::run(a).await,
            Command::Demo(a) => demo::run(a).await,
            Command::Alerts(a) => alerts::run(a).await,
            Command::Report(a) => report::run(a).await,
            Command::Server(a) => server::run(a).await,
            Command::Sensor(a) => sensor::run(a).await,
        }
    })
}

/// `1234567` -> `1,234,567`.
pub fn thousands(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::with_capacity(s.len() + s.len() / 3);
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Bytes for people: `12.3 MB`.
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "kB", "MB", "GB", "TB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1000.0 && u < UNITS.len() - 1 {
        v /= 1000.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}
