//! Support of the fault tests (`fault_crash.rs`, `fault_postgres.rs`): a server process that
//! can be SIGKILLed on cue, the saving clients and the judge of what survived, a TCP proxy
//! that can drop every connection, and the knobs that lengthen a run.

pub mod ledger;
pub mod process;
pub mod proxy;
pub mod workload;

/// Kill/restart rounds per backend: `ORISUN_FAULT_ROUNDS`, 20 by default.
pub fn rounds() -> u32 {
    std::env::var("ORISUN_FAULT_ROUNDS")
        .ok()
        .map(|r| r.parse().expect("ORISUN_FAULT_ROUNDS is a number"))
        .unwrap_or(20)
}

/// The seed of a run: `ORISUN_FAULT_SEED` to repeat one, else fresh (and printed).
pub fn seed() -> u64 {
    let seed = std::env::var("ORISUN_FAULT_SEED")
        .ok()
        .map(|s| s.parse().expect("ORISUN_FAULT_SEED is a number"))
        .unwrap_or_else(rand::random);
    eprintln!("ORISUN_FAULT_SEED={seed}");
    seed
}
