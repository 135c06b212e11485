//! `fnwatch`: watch what serverless functions do.
//!
//! The binary is a thin layer of subcommands (`src/cli/<name>.rs`) over the
//! library crates: `fnwatch-ingest` (decoders, lake writer), `fnwatch-analytics`
//! (SQL) and `fnwatch-models` (behaviour baselines).

mod cli;
mod config;
mod sim;

use std::process::ExitCode;

use clap::Parser;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let args = cli::Cli::parse();
    cli::init_logging(&args.global, args.command.is_service());
    match cli::run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("fnwatch: {}", error_chain(&e));
            ExitCode::from(2)
        }
    }
}

/// The error and its causes on one line, without causes that repeat what an
/// outer message already says.
fn error_chain(e: &anyhow::Error) -> String {
    let mut msg = e.to_string();
    for cause in e.chain().skip(1) {
        let c = cause.to_string();
        if !msg.contains(&c) {
            msg.push_str(": ");
            msg.push_str(&c);
        }
    }
    msg
}
