//! `orisun projections status`: prints the replica sets of projection workers kept in a
//! PostgreSQL database (members, which worker holds which partition, each partition's
//! checkpoint and lag, each set's generation), as a table or as JSON.

use anyhow::Context;
use clap::{Args, Subcommand};
use orisun_postgres::{PostgresConfig, PostgresStore};
use orisun_projections::workers::{replica_set_status, replica_sets_status, ReplicaSetStatus};
use orisun_server::config::PostgresSection;
use orisun_store::EventStore;
use std::fmt::Write as _;

/// `orisun projections ...`.
#[derive(Debug, Args)]
pub struct ProjectionsArgs {
    #[command(subcommand)]
    command: ProjectionsCommand,
}

#[derive(Debug, Subcommand)]
enum ProjectionsCommand {
    /// Shows every replica set (or one): its generation, live workers, and for each projection
    /// partition its holder, fencing epoch, checkpoint and lag. Connects with ORISUN_PG_*.
    Status(Box<StatusArgs>),
}

#[derive(Debug, Args)]
struct StatusArgs {
    /// Only this replica set.
    #[arg(long)]
    set: Option<String>,

    /// Print JSON (the `ReplicaSetStatus` list the dashboard reads) instead of a table.
    #[arg(long)]
    json: bool,

    /// The database to read.
    #[command(flatten)]
    postgres: PostgresSection,
}

/// Runs the subcommand.
pub async fn run(args: ProjectionsArgs) -> anyhow::Result<()> {
    let ProjectionsCommand::Status(status) = args.command;
    let config = PostgresConfig::try_from(&status.postgres)?;
    let store = PostgresStore::connect(config)
        .await
        .context("cannot connect to PostgreSQL")?;
    let membership = store.membership();
    let events: &dyn EventStore = &store;
    let sets = match &status.set {
        Some(set) => replica_set_status(&*membership, Some(events), set)
            .await?
            .into_iter()
            .collect(),
        None => replica_sets_status(&*membership, Some(events)).await?,
    };
    if status.json {
        println!("{}", serde_json::to_string_pretty(&sets)?);
    } else {
        print!("{}", table(&sets));
    }
    Ok(())
}

/// Renders sets as text, one block per set.
fn table(sets: &[ReplicaSetStatus]) -> String {
    let mut out = String::new();
    if sets.is_empty() {
        out.push_str("no replica sets\n");
    }
    for set in sets {
        let _ = writeln!(
            out,
            "replica set {}: {} partitions, generation {}, {} live workers",
            set.name,
            set.partitions,
            set.generation,
            set.members.len()
        );
        for m in &set.members {
            let _ = writeln!(
                out,
                "  worker {:<24} partitions {:?} (heartbeat expires in {} ms)",
                m.worker, m.held, m.expires_in_ms
            );
        }
        let _ = writeln!(
            out,
            "  {:<16} {:<24} {:>9} {:<24} {:>6} {:>12} {:>10}",
            "boundary", "projection", "partition", "holder", "epoch", "checkpoint", "lag"
        );
        for c in &set.claims {
            let _ = writeln!(
                out,
                "  {:<16} {:<24} {:>9} {:<24} {:>6} {:>12} {:>10}",
                c.boundary,
                c.projection,
                c.partition,
                c.holder.as_deref().unwrap_or("-"),
                c.epoch,
                c.checkpoint
                    .map_or_else(|| "-".to_owned(), |p| p.prepare.to_string()),
                c.lag.map_or_else(|| "?".to_owned(), |l| l.to_string()),
            );
        }
    }
    out
}
