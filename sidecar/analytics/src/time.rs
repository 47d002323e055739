//! Times as reports take them: `30d`, `12h`, `2026-11-01`, `2026-11-01T12:00`
//! (UTC), or `now`; and dates for display. Pure: the caller passes `now`.

const DAY_MS: i64 = 86_400_000;
const HOUR_MS: i64 = 3_600_000;

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// (year, month, day) of days since 1970-01-01: the inverse of [`days_from_civil`].
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// `2026-11-01T13:00` (UTC, to the minute), as [`parse`] reads it back.
pub fn format(ms: i64) -> String {
    let (y, m, d) = civil_from_days(ms.div_euclid(DAY_MS));
    let secs = ms.rem_euclid(DAY_MS) / 1000;
    format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}", secs / 3600, secs / 60 % 60)
}

/// A report's period label for the period that `t_ms` (an hour's or a day's
/// start) is in, as the SQLite store's `strftime` writes it: `2026-11-01T13:00Z`,
/// `2026-11-01`, the week's Monday, `2026-11`; `None` for `total`.
pub fn period(g: crate::query::Granularity, t_ms: i64) -> Option<String> {
    use crate::query::Granularity;
    let day = t_ms.div_euclid(DAY_MS);
    let date = |day: i64| {
        let (y, m, d) = civil_from_days(day);
        format!("{y:04}-{m:02}-{d:02}")
    };
    Some(match g {
        Granularity::Hour => format!("{}T{:02}:00Z", date(day), t_ms.rem_euclid(DAY_MS) / 3_600_000),
        Granularity::Day => date(day),
        // 1970-01-01 was a Thursday: Monday is 0 at (days + 3) % 7.
        Granularity::Week => date(day - (day + 3).rem_euclid(7)),
        Granularity::Month => {
            let (y, m, _) = civil_from_days(day);
            format!("{y:04}-{m:02}")
        }
        Granularity::Total => return None,
    })
}

/// Times are within this many milliseconds of the epoch (the year 10000).
const LIMIT_MS: i64 = 253_402_300_800_000;

/// Milliseconds since the epoch for `s`; years 0 to 9999. A span counts
/// back from `now_ms` to the start of the hour it reaches into, so that a
/// range from it covers at least the span: the store counts by hour, and a
/// range covers the hours that begin in it (at 03:02, `1h` is 02:00; not
/// 02:02, which would leave out 02:02 to 03:00).
pub fn parse(s: &str, now_ms: i64) -> Result<i64, String> {
    let bad = || format!("{s:?}: expected `now`, `30d`, `12h`, `90m`, a date (2026-11-01) or a UTC time (2026-11-01T12:00)");
    if s == "now" {
        return Ok(now_ms);
    }
    // A span's arithmetic is checked: the dashboard takes these from anyone.
    let back = |n: &str, unit: i64| {
        let t = n.parse::<i64>().ok()?.checked_mul(unit).and_then(|span| now_ms.checked_sub(span))?;
        (-LIMIT_MS..LIMIT_MS).contains(&t).then_some(t - t.rem_euclid(HOUR_MS))
    };
    for (suffix, unit) in [('d', DAY_MS), ('h', HOUR_MS), ('m', 60_000)] {
        if let Some(n) = s.strip_suffix(suffix).filter(|n| n.parse::<i64>().is_ok()) {
            return back(n, unit).ok_or_else(|| format!("{s:?}: further from now than the year 10000"));
        }
    }
    let (date, time) = s.split_once('T').unwrap_or((s, ""));
    let d: Vec<i64> = date.split('-').map(|p| p.parse::<i64>()).collect::<Result<_, _>>().map_err(|_| bad())?;
    let [y, m, d] = d[..] else { return Err(bad()) };
    if !(0..=9999).contains(&y) || !(1..=12).contains(&m) || !(1..=31).contains(&d) {
        return Err(bad());
    }
    let t: Vec<i64> = if time.is_empty() {
        Vec::new()
    } else {
        time.trim_end_matches('Z').split(':').map(|p| p.parse::<i64>()).collect::<Result<_, _>>().map_err(|_| bad())?
    };
    let (h, mi, sec) = (t.first().copied().unwrap_or(0), t.get(1).copied().unwrap_or(0), t.get(2).copied().unwrap_or(0));
    if t.len() > 3 || !(0..24).contains(&h) || !(0..60).contains(&mi) || !(0..60).contains(&sec) {
        return Err(bad());
    }
    Ok(days_from_civil(y, m, d) * DAY_MS + ((h * 60 + mi) * 60 + sec) * 1000)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spans_and_years_beyond_any_calendar_are_refused_not_overflowed() {
        // Found by tests/fuzz (report_filter): the multiplication overflowed.
        let now = 1_795_347_790_000;
        for s in ["44444444444733h", "-9223372036854775808d", "9223372036854775807m", "3000000d", "10000-01-01", "-1-01-01"] {
            assert!(parse(s, now).is_err(), "{s}");
        }
        assert_eq!(parse("-5h", now), Ok(now + 5 * HOUR_MS - now % HOUR_MS));
        assert_eq!(parse("9999-12-31", now), Ok(LIMIT_MS - DAY_MS));
    }

    #[test]
    fn dates_times_and_relative_spans() {
        let now = 1_795_347_790_000;
        assert_eq!(parse("1970-01-01", now), Ok(0));
        assert_eq!(parse("2026-11-01", now), Ok(1_793_491_200_000));
        assert_eq!(parse("2026-11-01T12:30", now), Ok(1_793_491_200_000 + 45_000_000));
        assert_eq!(parse("2024-02-29T00:00:01Z", now), Ok(1_709_164_801_000));
        // Spans reach back to the start of an hour: now is 2026-11-22T11:43:10.
        assert_eq!(format(now), "2026-11-22T11:43");
        assert_eq!(parse("30d", now), parse("2026-10-23T11:00", now));
        assert_eq!(parse("12h", now), parse("2026-11-21T23:00", now));
        assert_eq!(parse("1h", now), parse("2026-11-22T10:00", now));
        assert_eq!(parse("90m", now), parse("2026-11-22T10:00", now));
        assert_eq!(parse("0h", now), parse("2026-11-22T11:00", now));
        assert_eq!(parse("now", now), Ok(now));
        for ms in [0, 1_709_164_800_000, 1_793_491_200_000 + 45_000_000, -86_400_000] {
            assert_eq!(parse(&format(ms), now), Ok(ms), "{}", format(ms));
        }
        assert_eq!(format(1_709_164_801_000), "2024-02-29T00:00");
        use crate::query::Granularity as G;
        // 2024-02-29 13:05 was a Thursday.
        let t = 1_709_164_800_000 + 13 * 3_600_000 + 300_000;
        let p = |g| period(g, t).unwrap_or_default();
        assert_eq!([p(G::Hour), p(G::Day), p(G::Week), p(G::Month)], ["2024-02-29T13:00Z", "2024-02-29", "2024-02-26", "2024-02"]);
        assert_eq!(period(G::Total, t), None);
        for bad in ["yesterday", "2026-13-01", "2026-11", "2026-11-01T25:00", "-5x"] {
            assert!(parse(bad, now).is_err(), "{bad}");
        }
    }
}
