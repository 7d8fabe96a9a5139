//! Owns the admin HTTP endpoint's flag: its port (`ORISUN_ADMIN_PORT`; the address is
//! `ORISUN_HOST`, shared with gRPC).

use clap::Args;
use std::net::{IpAddr, SocketAddr};

/// The admin HTTP section of the configuration (`/health`, `/ready`).
#[derive(Debug, Clone, Args)]
pub struct AdminHttpSection {
    /// Admin HTTP port (`/health`, `/ready`).
    #[arg(
        long,
        env = "ORISUN_ADMIN_PORT",
        value_name = "ORISUN_ADMIN_PORT",
        default_value_t = 8991,
        help_heading = "Network"
    )]
    pub admin_port: u16,
}

impl AdminHttpSection {
    /// Returns the admin HTTP listen address on `host` (`ORISUN_HOST`).
    pub fn addr(&self, host: IpAddr) -> SocketAddr {
        SocketAddr::new(host, self.admin_port)
    }
}
