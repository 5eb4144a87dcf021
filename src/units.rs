//! Human-friendly quantities on the command line, shared by the server and the load
//! generator: durations like `10s`, `500ms`, `2m`; sizes like `20`, `1KiB`, `16MiB`; rates
//! like `20k`.
//!
//! ```
//! use std::time::Duration;
//! use wsloop::units::{parse_duration, parse_size};
//! assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
//! assert_eq!(parse_size("16KiB"), Ok(16 << 10));
//! ```

use std::time::Duration;

/// Parses a duration: a number (fractions allowed) followed by `ns`, `us`, `ms`, `s`, `m` or
/// `h`. A bare number is seconds, as in `--duration 10`.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let (number, unit) = split_number(text)?;
    let seconds_per_unit = match unit {
        "ns" => 1e-9,
        "us" | "µs" => 1e-6,
        "ms" => 1e-3,
        "" | "s" => 1.0,
        "m" | "min" => 60.0,
        "h" => 3600.0,
        _ => {
            return Err(format!(
                "unknown duration unit {unit:?} in {text:?} (use ms, s, m or h)"
            ))
        }
    };
    Duration::try_from_secs_f64(number * seconds_per_unit)
        .map_err(|_| format!("duration {text:?} is out of range"))
}

/// Parses a byte count: a number followed by nothing (bytes), `B`, a binary prefix (`KiB`,
/// `MiB`, `GiB`) or a decimal one (`kB`/`KB`, `MB`, `GB`). `k`, `K` and `M` alone are taken as
/// binary, as most tools do for buffer sizes.
pub fn parse_size(text: &str) -> Result<usize, String> {
    let (number, unit) = split_number(text)?;
    let multiplier: f64 = match unit {
        "" | "B" => 1.0,
        "k" | "K" | "KiB" | "kiB" => 1024.0,
        "M" | "MiB" => 1024.0 * 1024.0,
        "G" | "GiB" => 1024.0 * 1024.0 * 1024.0,
        "kB" | "KB" => 1e3,
        "MB" => 1e6,
        "GB" => 1e9,
        _ => {
            return Err(format!(
                "unknown size unit {unit:?} in {text:?} (use B, KiB or MiB)"
            ))
        }
    };
    let bytes = number * multiplier;
    if bytes.fract() != 0.0 || bytes > usize::MAX as f64 {
        return Err(format!("size {text:?} is not a whole number of bytes"));
    }
    Ok(bytes as usize)
}

/// Parses a rate in events per second: `5000`, `5k`, `1.5M` (decimal prefixes: rates are
/// counts, not buffer sizes), optionally followed by `/s`.
pub fn parse_rate(text: &str) -> Result<f64, String> {
    let (number, unit) = split_number(text.trim_end_matches("/s"))?;
    let multiplier = match unit {
        "" => 1.0,
        "k" | "K" => 1e3,
        "M" => 1e6,
        _ => {
            return Err(format!(
                "unknown rate unit {unit:?} in {text:?} (use k or M)"
            ))
        }
    };
    let rate = number * multiplier;
    if rate <= 0.0 || !rate.is_finite() {
        return Err(format!("rate {text:?} must be above zero"));
    }
    Ok(rate)
}

fn split_number(text: &str) -> Result<(f64, &str), String> {
    let text = text.trim();
    let end = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(end);
    let number: f64 = number
        .parse()
        .map_err(|_| format!("{text:?} does not start with a number"))?;
    Ok((number, unit.trim()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("7"), Ok(Duration::from_secs(7)));
        assert_eq!(parse_duration("250us"), Ok(Duration::from_micros(250)));
        assert!(parse_duration("10 parsecs").is_err());
        assert!(parse_duration("s").is_err());
        assert!(parse_duration("").is_err());
        assert!(parse_duration("99999999999999999999h").is_err());
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("20"), Ok(20));
        assert_eq!(parse_size("1KiB"), Ok(1024));
        assert_eq!(parse_size("16KiB"), Ok(16384));
        assert_eq!(parse_size("1MiB"), Ok(1 << 20));
        assert_eq!(parse_size("3 KiB"), Ok(3072));
        assert_eq!(parse_size("1.5KiB"), Ok(1536));
        assert_eq!(parse_size("2kB"), Ok(2000));
        assert!(parse_size("1.5").is_err());
        assert!(parse_size("-1").is_err());
        assert!(parse_size("3 furlongs").is_err());
    }

    #[test]
    fn rates() {
        assert_eq!(parse_rate("5000"), Ok(5000.0));
        assert_eq!(parse_rate("20k/s"), Ok(20000.0));
        assert!(parse_rate("0").is_err());
    }
}
