//! askama filters that put values into nginx config. Grammar checks in
//! `config::grammar` already reject anything dangerous; these filters refuse
//! it again so that a gap there fails the render rather than reaching nginx.

use std::fmt::Display;

/// Characters that end, extend or interpolate an nginx token.
fn unsafe_char(c: char) -> bool {
    c.is_whitespace() || c.is_control() || "\"'`;{}$#\\".contains(c)
}

fn refuse(what: &str, value: &str) -> askama::Error {
    askama::Error::custom(format!("refusing to render {what} {value:?} into nginx config"))
}

/// A config value as one quoted nginx token.
pub fn q<T: Display>(value: T, _: &dyn askama::Values) -> askama::Result<String> {
    let v = value.to_string();
    if v.chars().any(unsafe_char) {
        return Err(refuse("value", &v));
    }
    Ok(format!("\"{v}\""))
}

/// A config value as a literal inside a quoted regular expression.
pub fn re<T: Display>(value: T, _: &dyn askama::Values) -> askama::Result<String> {
    let v = value.to_string();
    if v.chars().any(unsafe_char) {
        return Err(refuse("value", &v));
    }
    Ok(regex::escape(&v))
}

/// A user-agent pattern (a regular expression written by the operator) inside a quoted regex.
pub fn ua<T: Display>(value: T, _: &dyn askama::Values) -> askama::Result<String> {
    let v = value.to_string();
    if v.chars().any(|c| c != ' ' && unsafe_char(c)) || v.contains('"') {
        return Err(refuse("user-agent pattern", &v));
    }
    Ok(v)
}

/// A config value inside an already quoted string.
pub fn bare<T: Display>(value: T, _: &dyn askama::Values) -> askama::Result<String> {
    let v = value.to_string();
    if v.chars().any(unsafe_char) {
        return Err(refuse("value", &v));
    }
    Ok(v)
}

/// A regular expression the renderer built from escaped literals (`$` is an anchor here).
pub fn rx<T: Display>(value: T, _: &dyn askama::Values) -> askama::Result<String> {
    let v = value.to_string();
    if v.chars().any(|c| c != '$' && c != '\\' && unsafe_char(c)) {
        return Err(refuse("regular expression", &v));
    }
    Ok(v)
}

/// An upstream URL template: safe literals plus the renderer's own `${pg_f_NAME}` variables.
pub fn tmpl<T: Display>(value: T, _: &dyn askama::Values) -> askama::Result<String> {
    static VAR: std::sync::LazyLock<regex::Regex> = std::sync::LazyLock::new(|| regex::Regex::new(r"\$\{pg_f_[a-z_][a-z0-9_]*\}").unwrap());
    let v = value.to_string();
    if VAR.replace_all(&v, "").chars().any(unsafe_char) {
        return Err(refuse("URL template", &v));
    }
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostile_values_are_refused() {
        let v = askama::NO_VALUES;
        for bad in ["a;b", "a b", "a\"b", "a$b", "a{b", "a}b", "a\nb", "a#b", "a\\b", "a'b"] {
            assert!(q(bad, v).is_err(), "{bad}");
            assert!(re(bad, v).is_err(), "{bad}");
        }
        assert_eq!(q("ghcr.io/acme", v).unwrap(), "\"ghcr.io/acme\"");
        assert_eq!(re("get.acme.dev/a", v).unwrap(), r"get\.acme\.dev/a");
        assert_eq!(ua("^docker/|^podman", v).unwrap(), "^docker/|^podman");
        assert!(ua("a\"b", v).is_err());
    }
}
