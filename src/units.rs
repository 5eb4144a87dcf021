//! Human-friendly units on the command line: durations like `10s`, `500ms`, `2m`, and sizes
//! like `20`, `1KiB`, `16MiB`. Shared by the server and the load generator.

use std::time::Duration;

/// Parses a duration: a whole number with `ms`, `s`, `m` or `h` (a bare number is seconds).
///
/// ```
/// use std::time::Duration;
/// use wsloop::units::parse_duration;
/// assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
/// assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
/// assert_eq!(parse_duration("10"), Ok(Duration::from_secs(10)));
/// assert!(parse_duration("ten").is_err());
/// ```
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let (number, unit) = split_number(text)?;
    let millis = match unit {
        "ms" => Some(number),
        "" | "s" => number.checked_mul(1_000),
        "m" | "min" => number.checked_mul(60_000),
        "h" => number.checked_mul(3_600_000),
        _ => {
            return Err(format!(
                "unknown duration unit {unit:?} in {text:?} (use ms, s, m or h)"
            ))
        }
    };
    millis
        .map(Duration::from_millis)
        .ok_or_else(|| format!("duration {text:?} is too long"))
}

/// Parses a byte size: a whole number with an optional `B`, `KiB`/`K`/`KB`, `MiB`/`M`/`MB`
/// or `GiB`/`G`/`GB` (all binary multiples, as memory is counted).
///
/// ```
/// use wsloop::units::parse_size;
/// assert_eq!(parse_size("20"), Ok(20));
/// assert_eq!(parse_size("16KiB"), Ok(16 * 1024));
/// assert_eq!(parse_size("1M"), Ok(1 << 20));
/// ```
pub fn parse_size(text: &str) -> Result<usize, String> {
    let (number, unit) = split_number(text)?;
    let shift = match unit.to_ascii_lowercase().as_str() {
        "" | "b" => 0,
        "k" | "kb" | "kib" => 10,
        "m" | "mb" | "mib" => 20,
        "g" | "gb" | "gib" => 30,
        _ => {
            return Err(format!(
                "unknown size unit {unit:?} in {text:?} (use B, KiB, MiB or GiB)"
            ))
        }
    };
    number
        .checked_mul(1 << shift)
        .and_then(|n| usize::try_from(n).ok())
        .ok_or_else(|| format!("size {text:?} is too large"))
}

fn split_number(text: &str) -> Result<(u64, &str), String> {
    let text = text.trim();
    let digits = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    if digits == 0 {
        return Err(format!("{text:?} does not start with a number"));
    }
    let number = text[..digits]
        .parse()
        .map_err(|_| format!("{text:?}: number too large"))?;
    Ok((number, text[digits..].trim()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_garbage_and_overflow() {
        assert!(parse_duration("").is_err());
        assert!(parse_duration("5 parsecs").is_err());
        assert!(parse_duration("99999999999999999999h").is_err());
        assert!(parse_size("-1").is_err());
        assert!(parse_size("1TiB").is_err());
        assert_eq!(parse_size("3 KiB"), Ok(3072));
    }
}
