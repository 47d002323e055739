//! What the page's SVG charts are drawn from: linear scales from values to
//! pixels, and the points they give. The templates draw the shapes.

/// A chart of one counter over the periods: this range solid, the range
/// before it dashed.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    pub title: &'static str,
    pub total: u64,
    pub previous_total: u64,
    /// `+12%`, `-3%`, `new` or `` (nothing before, nothing now).
    pub change: String,
    /// SVG polyline points.
    pub line: String,
    pub previous_line: String,
    /// Marks with their hover text (period and value).
    pub dots: Vec<Dot>,
    /// Value gridlines: y position and label.
    pub ticks: Vec<(f64, String)>,
    /// A few period labels along the bottom: x position and text.
    pub labels: Vec<(f64, String)>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Dot {
    pub x: f64,
    pub y: f64,
    pub text: String,
}

pub const WIDTH: f64 = 560.0;
pub const HEIGHT: f64 = 150.0;
const LEFT: f64 = 44.0;
const BOTTOM: f64 = 20.0;
const TOP: f64 = 8.0;

/// `values` and `previous` by period index (the previous range's periods
/// aligned with this one's); `periods` name them.
pub fn series(title: &'static str, periods: &[String], values: &[u64], previous: &[u64], total: u64, previous_total: u64) -> Series {
    let n = periods.len().max(1);
    let max = values.iter().chain(previous).copied().max().unwrap_or(0).max(1);
    let top = nice(max);
    let x = |i: usize| if n == 1 { LEFT + (WIDTH - LEFT) / 2.0 } else { LEFT + (WIDTH - LEFT - 32.0) * i as f64 / (n - 1) as f64 };
    let y = |v: u64| TOP + (HEIGHT - TOP - BOTTOM) * (1.0 - v as f64 / top as f64);
    let points = |vs: &[u64]| vs.iter().enumerate().map(|(i, v)| format!("{:.1},{:.1}", x(i), y(*v))).collect::<Vec<_>>().join(" ");
    let dots = values
        .iter()
        .enumerate()
        .map(|(i, v)| Dot { x: x(i), y: y(*v), text: format!("{}: {} {}", periods.get(i).map(String::as_str).unwrap_or(""), v, title) })
        .collect();
    let ticks = [0, top / 2, top].iter().map(|t| (y(*t), short(*t))).collect();
    let step = n.div_ceil(6).max(1);
    let labels = periods.iter().enumerate().filter(|(i, _)| i % step == 0).map(|(i, p)| (x(i), p.clone())).collect();
    Series {
        title,
        total,
        previous_total,
        change: change(total, previous_total),
        line: points(values),
        previous_line: points(previous),
        dots,
        ticks,
        labels,
    }
}

/// The change against the previous period, as people read it.
pub fn change(now: u64, before: u64) -> String {
    match (now, before) {
        (0, 0) => String::new(),
        (_, 0) => "new".into(),
        _ => {
            let pct = (now as f64 - before as f64) / before as f64 * 100.0;
            format!("{}{:.0}%", if pct >= 0.0 { "+" } else { "" }, pct)
        }
    }
}

/// 1, 2 or 5 times a power of ten, at least `v`: a round top for the axis.
fn nice(v: u64) -> u64 {
    let mut p = 1u64;
    loop {
        for m in [1, 2, 5] {
            if p.saturating_mul(m) >= v {
                return p * m;
            }
        }
        p = p.saturating_mul(10);
    }
}

/// 950, 1.2k, 3.4M.
pub fn short(v: u64) -> String {
    match v {
        0..=999 => v.to_string(),
        1_000..=999_999 => trim(format!("{:.1}", v as f64 / 1e3)) + "k",
        _ => trim(format!("{:.1}", v as f64 / 1e6)) + "M",
    }
}

fn trim(s: String) -> String {
    s.strip_suffix(".0").map(str::to_string).unwrap_or(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scales_and_words() {
        let s = series("pulls", &["a".into(), "b".into(), "c".into()], &[0, 5, 10], &[10, 0, 0], 15, 10);
        assert_eq!(s.line, "44.0,130.0 286.0,69.0 528.0,8.0");
        assert_eq!(s.previous_line, "44.0,8.0 286.0,130.0 528.0,130.0");
        assert_eq!((s.change.as_str(), s.dots[1].text.as_str()), ("+50%", "b: 5 pulls"));
        assert_eq!(s.ticks.iter().map(|t| t.1.as_str()).collect::<Vec<_>>(), ["0", "5", "10"]);
        assert_eq!((nice(7), nice(11), nice(4_300)), (10, 20, 5_000));
        assert_eq!((short(950), short(1_250), short(3_400_000)), ("950".to_string(), "1.2k".to_string(), "3.4M".to_string()));
        assert_eq!((change(0, 0).as_str(), change(3, 0).as_str(), change(5, 10).as_str()), ("", "new", "-50%"));
    }
}
