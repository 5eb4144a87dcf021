//! Quantities for people in the reports: `16.0 KiB`, `12.3k`, `850us`. Parsing them on the
//! command line is shared with the server, in `wsloop::units`.

pub use wsloop::units::{parse_duration, parse_rate, parse_size};

/// A byte count for people: `16.0 KiB`, `1.2 MiB`.
pub fn format_bytes(bytes: f64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes;
    let mut unit = 0;
    while value.abs() >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{value:.0} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// A count for people: `950`, `12.3k`, `1.25M`.
pub fn format_count(count: f64) -> String {
    if count >= 1e6 {
        format!("{:.2}M", count / 1e6)
    } else if count >= 1e4 {
        format!("{:.1}k", count / 1e3)
    } else {
        format!("{count:.0}")
    }
}

/// Microseconds for people: `850us`, `12.3ms`, `1.50s`.
pub fn format_micros(micros: u64) -> String {
    if micros >= 1_000_000 {
        format!("{:.2}s", micros as f64 / 1e6)
    } else if micros >= 10_000 {
        format!("{:.1}ms", micros as f64 / 1e3)
    } else {
        format!("{micros}us")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formatting() {
        assert_eq!(format_bytes(16384.0), "16.0 KiB");
        assert_eq!(format_bytes(100.0), "100 B");
        assert_eq!(format_count(123456.0), "123.5k");
        assert_eq!(format_micros(850), "850us");
        assert_eq!(format_micros(12_345), "12.3ms");
    }
}
