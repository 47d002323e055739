//! Shields-style badges: `[pulls | 12.3k/month]`, for a project's README.

/// What a badge counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Metric {
    Pulls,
    Downloads,
    Unique,
}

impl Metric {
    pub fn parse(file: &str) -> Option<Metric> {
        Some(match file {
            "pulls.svg" => Metric::Pulls,
            "downloads.svg" => Metric::Downloads,
            "unique.svg" => Metric::Unique,
            _ => return None,
        })
    }

    pub fn label(self) -> &'static str {
        match self {
            Metric::Pulls => "pulls",
            Metric::Downloads => "downloads",
            Metric::Unique => "unique users",
        }
    }
}

/// Text width in pixels at 11 px Verdana, near enough for a badge.
fn width(text: &str) -> u32 {
    text.chars().map(|c| if c.is_ascii_digit() || c.is_ascii_uppercase() { 7 } else { 6 }).sum::<u32>() + 10
}

/// XML text escaping.
pub fn xml(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;").replace('\'', "&#39;")
}

pub fn svg(label: &str, value: &str) -> String {
    let (lw, vw) = (width(label), width(value));
    let total = lw + vw;
    let (label, value) = (xml(label), xml(value));
    format!(
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="{total}" height="20" role="img" aria-label="{label}: {value}"><title>{label}: {value}</title><linearGradient id="s" x2="0" y2="100%"><stop offset="0" stop-color="#bbb" stop-opacity=".1"/><stop offset="1" stop-opacity=".1"/></linearGradient><clipPath id="r"><rect width="{total}" height="20" rx="3" fill="#fff"/></clipPath><g clip-path="url(#r)"><rect width="{lw}" height="20" fill="#555"/><rect x="{lw}" width="{vw}" height="20" fill="#007ec6"/><rect width="{total}" height="20" fill="url(#s)"/></g><g fill="#fff" text-anchor="middle" font-family="Verdana,Geneva,DejaVu Sans,sans-serif" font-size="11"><text x="{lx}" y="14">{label}</text><text x="{vx}" y="14">{value}</text></g></svg>"##,
        lx = lw / 2,
        vx = lw + vw / 2,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_badge_says_its_number_and_escapes_text() {
        let b = svg("pulls", "12.3k/30d");
        assert!(b.starts_with("<svg") && b.contains(">12.3k/30d</text>") && b.contains("aria-label=\"pulls: 12.3k/30d\""));
        assert!(svg("<x>", "1").contains("&lt;x&gt;") && !svg("<x>", "1").contains("<x>"));
        assert_eq!(Metric::parse("unique.svg"), Some(Metric::Unique));
        assert_eq!(Metric::parse("pulls.png"), None);
    }
}
