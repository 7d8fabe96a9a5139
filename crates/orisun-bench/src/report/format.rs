//! How figures are written: numbers with thousands separators or a few decimals, bytes as
//! MiB, durations as `10s` or `700ms`, and durations serialized as seconds.

use serde::Serializer;
use std::time::Duration;

pub(super) const MIB: f64 = 1024.0 * 1024.0;

/// Formats a number with thousands separators, rounded to a whole number.
pub fn thousands(value: f64) -> String {
    if !value.is_finite() {
        return "n/a".to_owned();
    }
    let rounded = value.round();
    let digits = format!("{}", rounded.abs() as u64);
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    if rounded < 0.0 {
        out.insert(0, '-');
    }
    out
}

/// Formats a small figure (milliseconds, ratios) with 2 significant decimals when small.
pub fn short(value: f64) -> String {
    if !value.is_finite() {
        "n/a".to_owned()
    } else if value.abs() < 10.0 {
        format!("{value:.2}")
    } else if value.abs() < 100.0 {
        format!("{value:.1}")
    } else {
        thousands(value)
    }
}

/// Formats bytes as MiB.
pub fn mib(bytes: Option<u64>) -> String {
    bytes.map_or_else(
        || "n/a".to_owned(),
        |b| format!("{:.1} MiB", b as f64 / MIB),
    )
}

/// Formats a duration as `10s` or `700ms`.
pub fn fmt_duration(d: Duration) -> String {
    if d.subsec_millis() == 0 {
        format!("{}s", d.as_secs())
    } else {
        format!("{}ms", d.as_millis())
    }
}

/// Serializes a duration as seconds (f64).
pub fn ser_secs<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_secs_f64())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn number_formats() {
        assert_eq!(thousands(0.0), "0");
        assert_eq!(thousands(999.4), "999");
        assert_eq!(thousands(1_234_567.8), "1,234,568");
        assert_eq!(thousands(-1500.0), "-1,500");
        assert_eq!(short(1.234), "1.23");
        assert_eq!(short(12.34), "12.3");
        assert_eq!(short(1234.0), "1,234");
        assert_eq!(mib(Some(3 * 1024 * 1024 / 2)), "1.5 MiB");
        assert_eq!(mib(None), "n/a");
        assert_eq!(fmt_duration(Duration::from_secs(10)), "10s");
        assert_eq!(fmt_duration(Duration::from_millis(700)), "700ms");
    }
}
