//! The periods a range covers, named as the reports name them
//! (`2026-11-01T13:00Z`, `2026-11-01`, the Monday of a week, `2026-11`),
//! so that a chart has a point for every period, with or without data.

use pullgate_analytics::Granularity;

const HOUR_MS: i64 = 3_600_000;
const DAY_MS: i64 = 86_400_000;

pub fn list(since_ms: i64, until_ms: i64, g: Granularity) -> Vec<String> {
    let ceil = |a: i64, b: i64| a.div_euclid(b) + i64::from(a.rem_euclid(b) != 0);
    let mut out: Vec<String> = Vec::new();
    let mut push = |s: String| {
        if out.last() != Some(&s) {
            out.push(s);
        }
    };
    match g {
        Granularity::Total => {}
        Granularity::Hour => {
            for h in ceil(since_ms, HOUR_MS)..ceil(until_ms, HOUR_MS) {
                push(pullgate_analytics::time::format(h * HOUR_MS)[..13].to_string() + ":00Z");
            }
        }
        _ => {
            let (first, last) = (ceil(since_ms, HOUR_MS) * HOUR_MS / DAY_MS, (ceil(until_ms, HOUR_MS) * HOUR_MS - 1).div_euclid(DAY_MS));
            for d in first..=last {
                let day = match g {
                    Granularity::Week => d - (d + 3).rem_euclid(7),
                    _ => d,
                };
                let date = pullgate_analytics::time::format(day * DAY_MS)[..10].to_string();
                push(if g == Granularity::Month { date[..7].to_string() } else { date });
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn periods_as_reports_name_them() {
        let d = 20_454 * DAY_MS; // 2026-01-01, a Thursday
        assert_eq!(list(d, d + 3 * HOUR_MS, Granularity::Hour), ["2026-01-01T00:00Z", "2026-01-01T01:00Z", "2026-01-01T02:00Z"]);
        assert_eq!(list(d, d + 2 * DAY_MS, Granularity::Day), ["2026-01-01", "2026-01-02"]);
        assert_eq!(list(d, d + 8 * DAY_MS, Granularity::Week), ["2025-12-29", "2026-01-05"]);
        assert_eq!(list(d - DAY_MS, d + 40 * DAY_MS, Granularity::Month), ["2025-12", "2026-01", "2026-02"]);
    }
}
