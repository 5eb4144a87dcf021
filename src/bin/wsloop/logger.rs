//! The binary's logger: one line per record on stderr, as text or JSON Lines, enough for a
//! server whose output is collected by systemd or a container runtime, without a logging
//! framework.
//!
//! Text: `2026-12-01T16:20:05.123Z INFO message key=value ...`.
//! JSON: `{"ts":"2026-12-01T16:20:05.123Z","level":"INFO","target":"wsloop::access",
//! "msg":"...","key":value,...}`: numbers stay numbers, so a log pipeline can sum them.

use std::fmt::{self, Write};
use std::time::{SystemTime, UNIX_EPOCH};

use log::kv::{Key, Value, VisitSource};

/// How lines are written (`--log-format`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Text,
    Json,
}

pub fn parse_format(text: &str) -> Result<Format, String> {
    match text {
        "text" => Ok(Format::Text),
        "json" => Ok(Format::Json),
        _ => Err(format!("unknown log format {text:?} (use text or json)")),
    }
}

pub struct StderrLogger {
    level: log::LevelFilter,
    format: Format,
}

impl StderrLogger {
    pub fn install(level: log::LevelFilter, format: Format) {
        let logger = Box::leak(Box::new(StderrLogger { level, format }));
        if log::set_logger(logger).is_ok() {
            log::set_max_level(level);
        }
    }
}

impl log::Log for StderrLogger {
    fn enabled(&self, metadata: &log::Metadata<'_>) -> bool {
        metadata.level() <= self.level
    }

    fn log(&self, record: &log::Record<'_>) {
        if self.enabled(record.metadata()) {
            let line = render(self.format, SystemTime::now(), record);
            // One eprintln per line: stderr is locked for it, so loops' lines never interleave.
            eprintln!("{line}");
        }
    }

    fn flush(&self) {}
}

/// The whole line for `record`, without its newline.
fn render(format: Format, at: SystemTime, record: &log::Record<'_>) -> String {
    let mut line = String::with_capacity(128);
    match format {
        Format::Text => {
            let _ = write!(
                line,
                "{} {} {}",
                Timestamp(at),
                record.level(),
                record.args()
            );
            let _ = record.key_values().visit(&mut TextFields(&mut line));
        }
        Format::Json => {
            line.push_str(r#"{"ts":""#);
            let _ = write!(line, "{}", Timestamp(at));
            line.push_str(r#"","level":""#);
            line.push_str(record.level().as_str());
            line.push_str(r#"","target":"#);
            push_json_string(&mut line, record.target());
            line.push_str(r#","msg":"#);
            push_json_string(&mut line, &record.args().to_string());
            let _ = record.key_values().visit(&mut JsonFields(&mut line));
            line.push('}');
        }
    }
    line
}

/// ` key=value` per field; values with spaces, quotes or `=` are quoted.
struct TextFields<'a>(&'a mut String);

impl<'kvs> VisitSource<'kvs> for TextFields<'_> {
    fn visit_pair(&mut self, key: Key<'kvs>, value: Value<'kvs>) -> Result<(), log::kv::Error> {
        let text = value.to_string();
        let _ = write!(self.0, " {key}=");
        if text.is_empty() || text.contains([' ', '"', '=']) {
            let _ = write!(self.0, "{text:?}");
        } else {
            self.0.push_str(&text);
        }
        Ok(())
    }
}

/// `,"key":value` per field: integers, floats and booleans as JSON numbers and booleans,
/// anything else as a string.
struct JsonFields<'a>(&'a mut String);

impl<'kvs> VisitSource<'kvs> for JsonFields<'_> {
    fn visit_pair(&mut self, key: Key<'kvs>, value: Value<'kvs>) -> Result<(), log::kv::Error> {
        self.0.push(',');
        push_json_string(self.0, key.as_str());
        self.0.push(':');
        if let Some(n) = value.to_u64() {
            let _ = write!(self.0, "{n}");
        } else if let Some(n) = value.to_i64() {
            let _ = write!(self.0, "{n}");
        } else if let Some(x) = value.to_f64().filter(|x| x.is_finite()) {
            let _ = write!(self.0, "{x}");
        } else if let Some(b) = value.to_bool() {
            let _ = write!(self.0, "{b}");
        } else {
            push_json_string(self.0, &value.to_string());
        }
        Ok(())
    }
}

/// `text` as a JSON string (RFC 8259 section 7): quotes, backslashes and control
/// characters escaped.
fn push_json_string(out: &mut String, text: &str) {
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if u32::from(c) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// Formats as RFC 3339 in UTC with milliseconds: `2026-12-01T16:20:05.123Z`.
struct Timestamp(SystemTime);

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // A clock before 1970 is printed as the epoch rather than failing the log line.
        let since_epoch = self.0.duration_since(UNIX_EPOCH).unwrap_or_default();
        let secs = since_epoch.as_secs();
        let (year, month, day) = civil_from_days(secs / 86_400);
        let of_day = secs % 86_400;
        write!(
            f,
            "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
            of_day / 3600,
            of_day / 60 % 60,
            of_day % 60,
            since_epoch.subsec_millis()
        )
    }
}

/// The proleptic Gregorian date `days` after 1970-01-01: Howard Hinnant's `civil_from_days`
/// (<https://howardhinnant.github.io/date_algorithms.html>), for non-negative days.
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    // Shift the epoch to 0000-03-01, so that a leap day is the last day of its year.
    let z = days + 719_468;
    let era = z / 146_097;
    let day_of_era = z % 146_097; // [0, 146096]
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365; // [0, 399]
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100); // [0, 365]
    let month_from_march = (5 * day_of_year + 2) / 153; // [0, 11]
    let day = day_of_year - (153 * month_from_march + 2) / 5 + 1; // [1, 31]
    let month = if month_from_march < 10 {
        month_from_march + 3
    } else {
        month_from_march - 9
    };
    let year = year_of_era + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, UNIX_EPOCH};

    use super::*;

    fn at(secs: u64, millis: u64) -> String {
        Timestamp(UNIX_EPOCH + Duration::from_millis(secs * 1000 + millis)).to_string()
    }

    #[test]
    fn timestamps_of_known_instants() {
        assert_eq!(at(0, 0), "1970-01-01T00:00:00.000Z");
        assert_eq!(at(86_399, 999), "1970-01-01T23:59:59.999Z");
        assert_eq!(at(951_696_000, 0), "2000-02-28T00:00:00.000Z");
        assert_eq!(at(951_782_400, 0), "2000-02-29T00:00:00.000Z");
        assert_eq!(at(951_868_800, 0), "2000-03-01T00:00:00.000Z");
        assert_eq!(at(1_798_761_600, 0), "2027-01-01T00:00:00.000Z");
        assert_eq!(at(1_796_142_005, 123), "2026-12-01T16:20:05.123Z");
        assert_eq!(at(4_107_542_400, 0), "2100-03-01T00:00:00.000Z");
        // Before the epoch: printed as the epoch.
        assert_eq!(
            Timestamp(UNIX_EPOCH - Duration::from_secs(1)).to_string(),
            "1970-01-01T00:00:00.000Z"
        );
    }

    #[test]
    fn civil_dates_round_the_year() {
        // 2024 is a leap year, 2100 is not.
        assert_eq!(civil_from_days(19_782), (2024, 2, 29));
        assert_eq!(civil_from_days(19_783), (2024, 3, 1));
        assert_eq!(civil_from_days(47_540), (2100, 2, 28));
        assert_eq!(civil_from_days(47_541), (2100, 3, 1));
    }

    fn line(format: Format, record: &log::Record<'_>) -> String {
        render(
            format,
            UNIX_EPOCH + Duration::from_millis(1_796_142_005_123),
            record,
        )
    }

    #[test]
    fn json_lines_keep_numbers_and_escape_strings() {
        let fields: [(&str, Value<'_>); 4] = [
            ("path", Value::from("/chat/a \"b\"")),
            ("bytes_in", Value::from(42u64)),
            ("duration_ms", Value::from(1.5f64)),
            ("close_code", Value::from(1000u16)),
        ];
        let args = format_args!("line\none");
        let record = log::Record::builder()
            .level(log::Level::Info)
            .target("wsloop::access")
            .args(args)
            .key_values(&fields)
            .build();
        assert_eq!(
            line(Format::Json, &record),
            r#"{"ts":"2026-12-01T16:20:05.123Z","level":"INFO","target":"wsloop::access","msg":"line\none","path":"/chat/a \"b\"","bytes_in":42,"duration_ms":1.5,"close_code":1000}"#
        );
        assert_eq!(
            line(Format::Text, &record),
            r#"2026-12-01T16:20:05.123Z INFO line
one path="/chat/a \"b\"" bytes_in=42 duration_ms=1.5 close_code=1000"#
        );
    }

    #[test]
    fn control_characters_are_escaped() {
        let mut out = String::new();
        push_json_string(&mut out, "a\u{1}b\\");
        assert_eq!(out, r#""a\u0001b\\""#);
    }
}
