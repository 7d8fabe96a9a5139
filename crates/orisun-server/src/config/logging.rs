//! Owns the logging flags: the level or `tracing` filter (`ORISUN_LOGGING_LEVEL`) and the line
//! format (`ORISUN_LOGGING_FORMAT`).

use clap::{Args, ValueEnum};

/// Format of the log lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line, for log collectors.
    Json,
}

/// A validated `ORISUN_LOGGING_LEVEL`, kept as a `tracing` filter directive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogLevel(String);

impl LogLevel {
    /// Returns the filter directive (`info`, `debug`, `info,orisun_server=debug`, ...).
    pub fn directive(&self) -> &str {
        &self.0
    }
}

/// The logging section of the configuration.
#[derive(Debug, Clone, Args)]
pub struct LoggingSection {
    /// Log level (DEBUG, INFO, WARN, ERROR) or a tracing filter such as `info,orisun_server=debug`.
    #[arg(long, env = "ORISUN_LOGGING_LEVEL", value_name = "ORISUN_LOGGING_LEVEL", default_value = "INFO", value_parser = parse_log_level, help_heading = "Delivery and logs")]
    pub logging_level: LogLevel,

    /// Log line format: text or json.
    #[arg(
        long,
        env = "ORISUN_LOGGING_FORMAT",
        value_name = "ORISUN_LOGGING_FORMAT",
        value_enum,
        ignore_case = true,
        default_value = "text",
        help_heading = "Delivery and logs"
    )]
    pub logging_format: LogFormat,
}

fn parse_log_level(text: &str) -> Result<LogLevel, String> {
    let lowered = text.trim().to_ascii_lowercase();
    let directive = match lowered.as_str() {
        "warning" => "warn".to_owned(),
        "fatal" | "panic" | "dpanic" => "error".to_owned(),
        _ => lowered,
    };
    if directive.is_empty() {
        return Err("must not be empty".to_owned());
    }
    // A directive is `level` or `target=level`, comma-separated. (tracing also accepts a bare
    // target, but a lone word that is not a level is far more likely a typo.)
    let is_level = |l: &str| matches!(l, "trace" | "debug" | "info" | "warn" | "error" | "off");
    let is_target = |t: &str| {
        !t.is_empty()
            && t.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
    };
    for part in directive.split(',').map(str::trim) {
        let ok = match part.split_once('=') {
            Some((target, level)) => is_target(target.trim()) && is_level(level.trim()),
            None => is_level(part),
        };
        if !ok {
            return Err(format!(
                "{text:?} is not a level (DEBUG, INFO, WARN, ERROR) or a filter like info,orisun_server=debug"
            ));
        }
    }
    Ok(LogLevel(directive))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels() {
        assert_eq!(
            parse_log_level("WARNING").map(|l| l.0),
            Ok("warn".to_owned())
        );
        assert!(parse_log_level("info,orisun_server=debug").is_ok());
    }
}
