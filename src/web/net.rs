//! What the dashboard believes about the network a request came over:
//! which Host names it answers to (against DNS rebinding), which proxies'
//! forwarding headers it trusts, whether the browser used HTTPS.

use axum::http::{header, HeaderMap};
use std::net::IpAddr;

/// From `[http]` and `[dashboard]`.
#[derive(Debug, Clone, Default)]
pub struct NetPolicy {
    /// Lower-case host names besides IP literals and `localhost`.
    allowed_hosts: Vec<String>,
    trusted_proxies: Vec<IpAddr>,
}

impl NetPolicy {
    /// `allowed` hosts (with or without `:port`) and this machine's own
    /// names (`hostname`, `hostname.local`).
    pub fn new(allowed: &[String], trusted_proxies: &[IpAddr], hostname: Option<&str>) -> Self {
        let mut allowed_hosts: Vec<String> = allowed
            .iter()
            .map(|h| strip_port(h).to_ascii_lowercase())
            .collect();
        if let Some(name) = hostname.map(str::trim).filter(|n| !n.is_empty()) {
            let name = name.to_ascii_lowercase();
            allowed_hosts.push(format!("{name}.local"));
            allowed_hosts.push(name);
        }
        Self {
            allowed_hosts,
            trusted_proxies: trusted_proxies.to_vec(),
        }
    }

    /// Whether the `Host` the browser used is one this device answers to:
    /// an IP address (a rebinding attack needs a name), `localhost`, or an
    /// allowed name. A request without `Host` (HTTP/1.0 tools) passes.
    pub fn host_allowed(&self, headers: &HeaderMap) -> bool {
        let Some(host) = headers.get(header::HOST) else {
            return true;
        };
        let Ok(host) = host.to_str() else {
            return false;
        };
        let name = strip_port(host).to_ascii_lowercase();
        let bare = name.trim_start_matches('[').trim_end_matches(']');
        bare.parse::<IpAddr>().is_ok()
            || name == "localhost"
            || name.ends_with(".localhost")
            || self.allowed_hosts.contains(&name)
    }

    /// The client's address: the peer, or, when the peer is a trusted
    /// proxy, the last address in `X-Forwarded-For` that is not one.
    pub fn client_ip(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        if !self.trusted(peer) {
            return peer;
        }
        headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .filter_map(|a| a.trim().parse::<IpAddr>().ok())
            .rev()
            .find(|ip| !self.trusted(*ip))
            .unwrap_or(peer)
    }

    /// Whether the browser reached a trusted proxy over HTTPS (the daemon
    /// itself serves plain HTTP).
    pub fn https(&self, peer: IpAddr, headers: &HeaderMap) -> bool {
        self.trusted(peer)
            && headers
                .get("x-forwarded-proto")
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| v.trim().eq_ignore_ascii_case("https"))
    }

    fn trusted(&self, ip: IpAddr) -> bool {
        self.trusted_proxies.contains(&ip)
    }
}

/// `host:port` → `host`; `[v6]:port` → `[v6]`.
fn strip_port(host: &str) -> &str {
    if host.starts_with('[') {
        return host
            .split_once(']')
            .map_or(host, |(h, _)| &host[..=h.len()]);
    }
    match host.rsplit_once(':') {
        Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) => name,
        _ => host,
    }
}

/// This machine's host name, from the kernel.
pub fn hostname() -> Option<String> {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|s| s.trim().to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn host(h: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(header::HOST, HeaderValue::from_str(h).unwrap());
        headers
    }

    #[test]
    fn hosts_against_dns_rebinding() {
        let net = NetPolicy::new(&["marquee.lan:8080".into()], &[], Some("board7"));
        for ok in [
            "127.0.0.1:8080",
            "192.168.1.50",
            "[::1]:8080",
            "localhost:8080",
            "marquee.lan",
            "MARQUEE.LAN:80",
            "board7",
            "board7.local:8080",
        ] {
            assert!(net.host_allowed(&host(ok)), "{ok}");
        }
        for bad in [
            "attacker.example",
            "attacker.example:8080",
            "127.0.0.1.nip.io",
        ] {
            assert!(!net.host_allowed(&host(bad)), "{bad}");
        }
        assert!(net.host_allowed(&HeaderMap::new()));
    }

    #[test]
    fn forwarded_headers_only_from_trusted_proxies() {
        let proxy: IpAddr = "10.0.0.2".parse().unwrap();
        let net = NetPolicy::new(&[], &[proxy], None);
        let mut headers = HeaderMap::new();
        headers.insert(
            "x-forwarded-for",
            HeaderValue::from_static("6.6.6.6, 192.168.1.9"),
        );
        headers.insert("x-forwarded-proto", HeaderValue::from_static("https"));
        let stranger: IpAddr = "192.168.1.20".parse().unwrap();
        assert_eq!(net.client_ip(stranger, &headers), stranger);
        assert!(!net.https(stranger, &headers));
        assert_eq!(
            net.client_ip(proxy, &headers),
            "192.168.1.9".parse::<IpAddr>().unwrap()
        );
        assert!(net.https(proxy, &headers));
    }
}
