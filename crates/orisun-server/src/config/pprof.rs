//! Owns the profiler flags: whether the CPU profile endpoint is served (`ORISUN_PPROF_ENABLED`)
//! and on which port (`ORISUN_PPROF_PORT`; the address is `ORISUN_HOST`).

use clap::builder::BoolishValueParser;
use clap::{ArgAction, Args};
use std::net::{IpAddr, SocketAddr};

/// The profiling section of the configuration.
#[derive(Debug, Clone, Args)]
pub struct PprofSection {
    /// Serve the CPU profiler (`/debug/pprof/profile`, ADMIN only) on ORISUN_PPROF_PORT.
    #[arg(long, env = "ORISUN_PPROF_ENABLED", value_name = "ORISUN_PPROF_ENABLED", default_value_t = false, action = ArgAction::Set, value_parser = BoolishValueParser::new(), help_heading = "Observability")]
    pub pprof_enabled: bool,

    /// Port of the profiler's HTTP endpoint.
    #[arg(
        long,
        env = "ORISUN_PPROF_PORT",
        value_name = "ORISUN_PPROF_PORT",
        default_value_t = 6060,
        help_heading = "Observability"
    )]
    pub pprof_port: u16,
}

impl PprofSection {
    /// Returns the profiler's listen address on `host` (`ORISUN_HOST`).
    pub fn addr(&self, host: IpAddr) -> SocketAddr {
        SocketAddr::new(host, self.pprof_port)
    }
}
