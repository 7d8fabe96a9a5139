//! `orisun migrations print`: writes the PostgreSQL schema SQL that `orisun serve` with the same
//! configuration would apply (catalog migrations and the tables of every start-up boundary), for
//! teams that apply migrations with their own tools.

use anyhow::Context;
use clap::{Args, Subcommand};
use std::path::PathBuf;

/// `orisun migrations ...`.
#[derive(Debug, Args)]
pub struct MigrationsArgs {
    #[command(subcommand)]
    command: MigrationsCommand,
}

#[derive(Debug, Subcommand)]
enum MigrationsCommand {
    /// Prints the SQL for a new PostgreSQL database: the catalog, the coordination tables
    /// (leases, projection checkpoints), and the tables of the admin boundary and of every
    /// boundary in ORISUN_BOUNDARIES and ORISUN_PG_SCHEMAS, placed as ORISUN_PG_SCHEMAS says.
    Print(Box<PrintArgs>),
}

#[derive(Debug, Args)]
struct PrintArgs {
    /// Write the SQL to this file instead of standard output.
    #[arg(long)]
    output: Option<PathBuf>,

    /// The server configuration whose start-up boundaries the script creates.
    #[command(flatten)]
    config: orisun_server::Config,
}

/// Runs the subcommand.
pub fn run(args: MigrationsArgs) -> anyhow::Result<()> {
    let MigrationsCommand::Print(print) = args.command;
    let config = &print.config;
    let boundaries: Vec<_> = config
        .startup_boundaries()
        .into_iter()
        .map(|b| {
            let schema = config.postgres.schema_of(&b).unwrap_or("public").to_owned();
            (b, schema)
        })
        .collect();
    let script = orisun_postgres::migration_script(&boundaries)?;
    match &print.output {
        Some(path) => std::fs::write(path, script)
            .with_context(|| format!("cannot write {}", path.display()))?,
        None => print!("{script}"),
    }
    Ok(())
}
