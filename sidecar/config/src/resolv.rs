//! The nameservers of a resolv.conf(5), as nginx's `resolver` takes them:
//! the default when routes.yaml names none. Pure: the caller reads the file.

use std::net::IpAddr;

/// `nameserver` lines in order; IPv6 in brackets, link-local ones (with a
/// `%zone`, which nginx cannot use) and anything unparsable skipped.
pub fn nameservers(resolv_conf: &str) -> Vec<String> {
    resolv_conf
        .lines()
        .filter_map(|l| {
            let mut words = l.split_whitespace();
            (words.next() == Some("nameserver")).then(|| words.next()).flatten()
        })
        .filter_map(|a| match a.parse::<IpAddr>().ok()? {
            IpAddr::V4(v4) => Some(v4.to_string()),
            IpAddr::V6(v6) => Some(format!("[{v6}]")),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_nameservers_and_skips_the_rest() {
        let text = "# generated\nsearch example.org\nnameserver 10.0.0.53\nnameserver  2001:db8::53 \nnameserver fe80::1%eth0\noptions edns0\nnameserver\n";
        assert_eq!(nameservers(text), ["10.0.0.53", "[2001:db8::53]"]);
        assert!(nameservers("").is_empty());
    }
}
