//! Timestamps as ASL uses them: RFC 3339 text in (`Wait.Timestamp`, `Timestamp*` Choice
//! rules), ISO-8601 text out (`$$.Execution.StartTime`, `startDate`), and instants as
//! nanoseconds since the Unix epoch in between. Written here rather than pulled from a date
//! crate: ASL needs exactly one strict format and one output format.
//!
//! And the shard's `Clock`: the one place the runtime reads the time, so tests can run it on
//! virtual time.

use std::fmt;

/// An instant, to the nanosecond.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp {
    pub secs: i64,
    pub nanos: u32,
}

impl Timestamp {
    pub fn from_millis(ms: i64) -> Timestamp {
        Timestamp {
            secs: ms.div_euclid(1000),
            nanos: (ms.rem_euclid(1000) * 1_000_000) as u32,
        }
    }

    pub fn as_millis(self) -> i64 {
        self.secs
            .saturating_mul(1000)
            .saturating_add((self.nanos / 1_000_000) as i64)
    }

    /// The current time.
    pub fn now() -> Timestamp {
        let d = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        Timestamp {
            secs: d.as_secs() as i64,
            nanos: d.subsec_nanos(),
        }
    }

    /// Parses an RFC 3339 date-time (`2016-03-14T01:59:00Z`, `...T01:59:00.123+02:00`), the
    /// form AWS accepts: `T` between date and time, a zone (`Z` or `±hh:mm`) required.
    pub fn parse_rfc3339(s: &str) -> Option<Timestamp> {
        let b = s.as_bytes();
        if b.len() < 20 {
            return None;
        }
        let num = |r: std::ops::Range<usize>| -> Option<i64> {
            let part = b.get(r)?;
            if !part.iter().all(u8::is_ascii_digit) {
                return None;
            }
            std::str::from_utf8(part).ok()?.parse().ok()
        };
        let year = num(0..4)?;
        let month = num(5..7)?;
        let day = num(8..10)?;
        let hour = num(11..13)?;
        let minute = num(14..16)?;
        let second = num(17..19)?;
        if b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't') {
            return None;
        }
        if b[13] != b':' || b[16] != b':' {
            return None;
        }
        if !(1..=12).contains(&month)
            || day < 1
            || day > days_in_month(year, month)
            || hour > 23
            || minute > 59
            || second > 60
        {
            return None;
        }
        let mut i = 19;
        let mut nanos: u32 = 0;
        if b.get(i) == Some(&b'.') {
            i += 1;
            let start = i;
            while i < b.len() && b[i].is_ascii_digit() {
                i += 1;
            }
            let digits = &s[start..i];
            if digits.is_empty() || digits.len() > 9 {
                return None;
            }
            let padded = format!("{digits:0<9}");
            nanos = padded.parse().ok()?;
        }
        let offset_secs = match b.get(i) {
            Some(b'Z' | b'z') if i + 1 == b.len() => 0,
            Some(sign @ (b'+' | b'-')) if i + 6 == b.len() && b[i + 3] == b':' => {
                let oh = num(i + 1..i + 3)?;
                let om = num(i + 4..i + 6)?;
                if oh > 23 || om > 59 {
                    return None;
                }
                let o = oh * 3600 + om * 60;
                if *sign == b'+' { o } else { -o }
            }
            _ => return None,
        };
        let days = days_from_civil(year, month, day);
        let secs = days * 86400 + hour * 3600 + minute * 60 + second.min(59) - offset_secs;
        Some(Timestamp { secs, nanos })
    }

    /// ISO-8601 in UTC with milliseconds (`2024-11-21T10:00:00.123Z`), as AWS prints dates.
    pub fn to_iso8601(self) -> String {
        let days = self.secs.div_euclid(86400);
        let rem = self.secs.rem_euclid(86400);
        let (y, m, d) = civil_from_days(days);
        format!(
            "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z",
            rem / 3600,
            (rem % 3600) / 60,
            rem % 60,
            self.nanos / 1_000_000
        )
    }
}

/// The time as a shard sees it: wall-clock milliseconds since the epoch (for the context
/// object, `$now()`, Wait timestamps), advanced by tokio's monotonic clock from one anchor.
/// So a shard and its timers agree on one timeline, a wall-clock step does not fire or stall
/// every pending Wait at once, and a test that pauses tokio's time (`start_paused`) runs Wait
/// states, Retry backoff and time-outs on virtual time without sleeping.
#[derive(Clone, Copy, Debug)]
pub struct Clock {
    /// The epoch milliseconds at `base`.
    epoch_ms: i64,
    base: tokio::time::Instant,
}

impl Clock {
    /// Anchored to the system's wall clock now.
    pub fn system() -> Clock {
        Clock::starting_at(Timestamp::now().as_millis())
    }

    /// Reads `epoch_ms` now and advances from there (tests pin the start this way).
    pub fn starting_at(epoch_ms: i64) -> Clock {
        Clock {
            epoch_ms,
            base: tokio::time::Instant::now(),
        }
    }

    /// Milliseconds since the epoch.
    pub fn now_ms(&self) -> i64 {
        self.epoch_ms
            .saturating_add(self.base.elapsed().as_millis() as i64)
    }

    /// The tokio instant of an epoch time, for sleeping until it.
    pub fn instant_at(&self, epoch_ms: i64) -> tokio::time::Instant {
        let ms = epoch_ms.saturating_sub(self.epoch_ms).max(0) as u64;
        self.base + std::time::Duration::from_millis(ms)
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_iso8601())
    }
}

fn is_leap(y: i64) -> bool {
    (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
}

fn days_in_month(y: i64, m: i64) -> i64 {
    match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        _ if is_leap(y) => 29,
        _ => 28,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
pub(crate) fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Proleptic Gregorian (year, month 1..=12, day) of a day count since 1970-01-01.
pub(crate) fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn the_clock_follows_tokios_time() {
        let clock = Clock::starting_at(1_000);
        assert_eq!(clock.now_ms(), 1_000);
        tokio::time::sleep_until(clock.instant_at(61_000)).await;
        assert_eq!(clock.now_ms(), 61_000);
        // A time already past is now.
        assert_eq!(clock.instant_at(0), clock.instant_at(1_000));
    }

    #[test]
    fn parses_what_aws_accepts() {
        let t = Timestamp::parse_rfc3339("2016-03-14T01:59:00Z").unwrap();
        assert_eq!(t.secs, 1_457_920_740);
        let n = Timestamp::parse_rfc3339("2016-03-14T01:59:00.123456789Z").unwrap();
        assert_eq!(n.nanos, 123_456_789);
        let o = Timestamp::parse_rfc3339("2016-03-14T03:59:00+02:00").unwrap();
        assert_eq!(o.secs, t.secs);
        assert!(Timestamp::parse_rfc3339("2016-02-29T00:00:00Z").is_some());
    }

    #[test]
    fn rejects_what_aws_rejects() {
        for bad in [
            "2016-13-05T21:29:29Z",
            "05-12-2016T21:29:29Z",
            "2016-12-05T25:29:29Z",
            "2016-12-05 21:29:29Z",
            "2016-12-05T21:29:29",
            "2015-02-29T00:00:00Z",
            "2016-12-05T21:29:29.Z",
            "",
        ] {
            assert!(Timestamp::parse_rfc3339(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn prints_iso8601_with_milliseconds() {
        assert_eq!(
            Timestamp::from_millis(1_732_200_000_123).to_iso8601(),
            "2024-11-21T14:40:00.123Z"
        );
        assert_eq!(
            Timestamp::from_millis(0).to_iso8601(),
            "1970-01-01T00:00:00.000Z"
        );
    }
}
