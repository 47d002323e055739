//! Whether a DNS server nginx is told to use answers at all: one query for
//! the root's NS records over UDP. A resolver that does not answer makes
//! every proxied request to a host name fail with a 502 after
//! `resolver_timeout`; better said at start than found by users.

use std::net::SocketAddr;
use std::time::Duration;

/// `ADDR`, `ADDR:PORT`, `[V6]` or `[V6]:PORT` as nginx's `resolver` takes it.
pub fn socket_addr(resolver: &str) -> Option<SocketAddr> {
    if let Ok(a) = resolver.parse::<SocketAddr>() {
        return Some(a);
    }
    let ip = resolver.trim_start_matches('[').trim_end_matches(']');
    ip.parse::<std::net::IpAddr>().ok().map(|ip| SocketAddr::new(ip, 53))
}

/// Whether `resolver` answers a DNS query within `timeout`.
pub async fn answers(resolver: &str, timeout: Duration) -> bool {
    let Some(addr) = socket_addr(resolver) else { return false };
    let bind: SocketAddr = if addr.is_ipv4() { "0.0.0.0:0".parse().expect("addr") } else { "[::]:0".parse().expect("addr") };
    let ask = async {
        let sock = tokio::net::UdpSocket::bind(bind).await.ok()?;
        sock.connect(addr).await.ok()?;
        let id = (pullgate_base::clock::now_nanos() as u16).to_be_bytes();
        // Header: id, flags RD, one question; question: root, NS, IN.
        let query = [id[0], id[1], 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 2, 0, 1];
        sock.send(&query).await.ok()?;
        let mut buf = [0u8; 512];
        loop {
            let n = sock.recv(&mut buf).await.ok()?;
            // A response (QR bit) to our id, whatever its rcode: the server is there.
            if n >= 12 && buf[..2] == id && buf[2] & 0x80 != 0 {
                return Some(());
            }
        }
    };
    tokio::time::timeout(timeout, ask).await.ok().flatten().is_some()
}

/// The resolvers of `list` that do not answer, checked together.
pub async fn silent(list: &[String], timeout: Duration) -> Vec<String> {
    let checks = list.iter().map(|r| async move { (!answers(r, timeout).await).then(|| r.clone()) });
    futures::future::join_all(checks).await.into_iter().flatten().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolver_forms() {
        assert_eq!(socket_addr("127.0.0.53"), Some("127.0.0.53:53".parse().unwrap()));
        assert_eq!(socket_addr("[::1]:5353"), Some("[::1]:5353".parse().unwrap()));
        assert_eq!(socket_addr("[2001:db8::1]"), Some("[2001:db8::1]:53".parse().unwrap()));
        assert_eq!(socket_addr("dns.example"), None);
    }

    #[tokio::test]
    async fn a_closed_port_does_not_answer_and_a_server_does() {
        // Nothing listens here: the ICMP port-unreachable ends the wait early.
        assert!(!answers("127.0.0.1:9", Duration::from_millis(300)).await);
        let server = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let addr = server.local_addr().unwrap().to_string();
        tokio::spawn(async move {
            let mut buf = [0u8; 512];
            let (n, from) = server.recv_from(&mut buf).await.unwrap();
            buf[2] |= 0x80;
            server.send_to(&buf[..n], from).await.unwrap();
        });
        assert!(answers(&addr, Duration::from_secs(2)).await);
    }
}
