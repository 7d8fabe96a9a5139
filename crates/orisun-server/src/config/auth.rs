//! Owns the authentication flags: the admin boundary, the bootstrap administrator and the token
//! lifetime, and their conversion into [`crate::auth::AuthConfig`].

use super::{parse_duration, ConfigError};
use crate::auth::AuthConfig;
use clap::Args;
use orisun_core::BoundaryName;
use std::time::Duration;

/// The authentication section of the configuration.
#[derive(Debug, Clone, Args)]
pub struct AuthSection {
    /// Boundary holding users, sessions' source of truth and other admin state; always created.
    #[arg(long, env = "ORISUN_ADMIN_BOUNDARY", value_name = "ORISUN_ADMIN_BOUNDARY", default_value = "orisun_admin", value_parser = parse_boundary_name, help_heading = "Boundaries and users")]
    pub admin_boundary: BoundaryName,

    /// Username of the bootstrap administrator, created at start-up if missing.
    #[arg(
        long,
        env = "ORISUN_ADMIN_USERNAME",
        value_name = "ORISUN_ADMIN_USERNAME",
        default_value = "admin",
        help_heading = "Boundaries and users"
    )]
    pub admin_username: String,

    /// Password of the bootstrap administrator (change it: the default is logged as a warning).
    #[arg(
        long,
        env = "ORISUN_ADMIN_PASSWORD",
        value_name = "ORISUN_ADMIN_PASSWORD",
        default_value = "changeit",
        hide_default_value = false,
        hide_env_values = true,
        help_heading = "Boundaries and users"
    )]
    pub admin_password: String,

    /// Lifetime of an `x-auth-token` session token (e.g. 30m, 1h, 24h).
    #[arg(long, env = "ORISUN_AUTH_TOKEN_TTL", value_name = "ORISUN_AUTH_TOKEN_TTL", default_value = "1h", value_parser = parse_duration, help_heading = "Boundaries and users")]
    pub auth_token_ttl: Duration,
}

impl AuthSection {
    /// Checks the rules of this section that clap cannot: a non-empty bootstrap username and
    /// password, a positive token lifetime.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.admin_username.trim().is_empty() {
            return Err(ConfigError::new(
                "ORISUN_ADMIN_USERNAME",
                "must not be empty",
            ));
        }
        if self.admin_password.is_empty() {
            return Err(ConfigError::new(
                "ORISUN_ADMIN_PASSWORD",
                "must not be empty",
            ));
        }
        if self.auth_token_ttl.is_zero() {
            return Err(ConfigError::new(
                "ORISUN_AUTH_TOKEN_TTL",
                "must be positive",
            ));
        }
        Ok(())
    }
}

impl From<&AuthSection> for AuthConfig {
    fn from(section: &AuthSection) -> Self {
        AuthConfig {
            admin_boundary: section.admin_boundary.clone(),
            admin_username: section.admin_username.clone(),
            admin_password: section.admin_password.clone(),
            token_ttl: section.auth_token_ttl,
        }
    }
}

fn parse_boundary_name(text: &str) -> Result<BoundaryName, String> {
    BoundaryName::new(text).map_err(|e| e.reason)
}
