//! Query strings can carry secrets (`?access_token=`, presigned URLs'
//! `X-Amz-Signature=`, `?account=` names a person). Before an event leaves
//! the box, every query value is replaced by `redacted` unless its name is
//! one the registry protocol defines and that never holds a secret.

use std::borrow::Cow;

/// Query parameters kept as they are: pagination, token scopes, blob mounts, referrers filters.
const KEPT: [&str; 8] = ["n", "last", "scope", "service", "digest", "mount", "from", "artifactType"];

pub const REDACTED: &str = "redacted";

/// `uri` with the values of all other query parameters replaced.
pub fn query(uri: &str) -> Cow<'_, str> {
    let Some((path, q)) = uri.split_once('?') else { return Cow::Borrowed(uri) };
    let keep = |pair: &str| pair.split_once('=').is_none_or(|(k, _)| KEPT.contains(&k));
    if q.split('&').all(keep) {
        return Cow::Borrowed(uri);
    }
    let mut out = String::with_capacity(uri.len());
    out.push_str(path);
    out.push('?');
    for (i, pair) in q.split('&').enumerate() {
        if i > 0 {
            out.push('&');
        }
        match pair.split_once('=') {
            Some((k, _)) if !KEPT.contains(&k) => {
                out.push_str(k);
                out.push('=');
                out.push_str(REDACTED);
            }
            _ => out.push_str(pair),
        }
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn protocol_parameters_stay_and_everything_else_is_redacted() {
        for kept in ["/v2/", "/v2/a/tags/list?n=10&last=v1", "/token?scope=repository%3Aa%3Apull&service=reg", "/f/app.tar.gz"] {
            assert!(matches!(query(kept), Cow::Borrowed(_)), "{kept}");
        }
        assert_eq!(
            query("/token?account=alice&scope=repository:a:pull&access_token=s3cret"),
            "/token?account=redacted&scope=repository:a:pull&access_token=redacted"
        );
        assert_eq!(
            query("/f?X-Amz-Signature=abc&X-Amz-Credential=AKIA&flag"),
            "/f?X-Amz-Signature=redacted&X-Amz-Credential=redacted&flag"
        );
        assert_eq!(query("/f?=x&n=1"), "/f?=redacted&n=1");
    }
}
