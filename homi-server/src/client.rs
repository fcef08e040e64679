//! Who the client is: the connection's peer, or, when that peer is one of
//! the reverse proxies named by `HOMI_TRUSTED_PROXIES`, the address that
//! proxy forwarded. Rate limits, sign-in failures and Supabase's per-IP
//! limits all count this address (grouped by [`client_network`]).
//!
//! The forwarded chain is read right to left: each trusted proxy appends the
//! address it received from, so the first address from the right that is
//! not a trusted proxy is the client. Entries further left were written by
//! the client itself and are never believed.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::HeaderMap;
use axum::middleware::Next;
use axum::response::Response;
use homi_core::auth::client_network;
use ipnet::IpNet;

/// The client's address, set on each request by [`identify`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientAddr(pub IpAddr);

/// Whether `ip` is one of the trusted proxies: its own address, not its
/// network (a proxy named as one IPv6 address trusts only that address, not
/// its /64). An IPv4 peer seen as `::ffff:a.b.c.d` counts as `a.b.c.d`.
fn trusted(ip: IpAddr, proxies: &[IpNet]) -> bool {
    let ip = ip.to_canonical();
    proxies.iter().any(|p| p.contains(&ip))
}

/// One address of a forwarded chain: `192.0.2.7`, `192.0.2.7:4711`,
/// `2001:db8::1`, `[2001:db8::1]:4711`, quoted or not; `None` for `unknown`,
/// an obfuscated name (`_hidden`) or anything else.
fn hop(entry: &str) -> Option<IpAddr> {
    let entry = entry.trim().trim_matches('"');
    if let Ok(ip) = entry.parse::<IpAddr>() {
        return Some(ip);
    }
    if let Ok(addr) = entry.parse::<SocketAddr>() {
        return Some(addr.ip());
    }
    entry
        .strip_prefix('[')
        .and_then(|e| e.strip_suffix(']'))
        .and_then(|e| e.parse().ok())
}

/// The forwarded chain, left (the first hop) to right (the nearest proxy's
/// peer): `X-Forwarded-For` when the request has one, otherwise the `for=`
/// of each `Forwarded` element (RFC 7239). Several header lines are one list.
fn chain(headers: &HeaderMap) -> Vec<Option<IpAddr>> {
    let lines = |name: &str| -> Vec<String> {
        headers
            .get_all(name)
            .iter()
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
            .collect()
    };
    let xff = lines("x-forwarded-for");
    if !xff.is_empty() {
        return xff.iter().flat_map(|l| l.split(',')).map(hop).collect();
    }
    lines("forwarded")
        .iter()
        .flat_map(|l| l.split(','))
        .filter_map(|element| {
            element.split(';').find_map(|pair| {
                let (key, value) = pair.split_once('=')?;
                key.trim().eq_ignore_ascii_case("for").then(|| hop(value))
            })
        })
        .collect()
}

/// The client of a request that came from `peer`.
pub fn client_address(peer: IpAddr, headers: &HeaderMap, proxies: &[IpNet]) -> IpAddr {
    if !trusted(peer, proxies) {
        return peer;
    }
    let mut client = peer;
    for entry in chain(headers).into_iter().rev() {
        match entry {
            // A hop that is no address ends what can be known: the last
            // trusted proxy is the client as far as Homi can tell.
            None => return client,
            Some(ip) => {
                client = ip;
                if !trusted(ip, proxies) {
                    return ip;
                }
            }
        }
    }
    client
}

/// Middleware: sets [`ClientAddr`] on a request served with its peer's
/// address (`ConnectInfo<SocketAddr>`).
pub async fn identify(
    State(proxies): State<Arc<[IpNet]>>,
    mut req: Request,
    next: Next,
) -> Response {
    if let Some(ConnectInfo(peer)) = req.extensions().get::<ConnectInfo<SocketAddr>>().copied() {
        let client = client_address(peer.ip(), req.headers(), &proxies);
        req.extensions_mut().insert(ClientAddr(client));
    }
    next.run(req).await
}

/// The rate limiter's key: the client's network.
#[derive(Debug, Clone, Copy)]
pub struct ClientNetworkKey;

impl tower_governor::key_extractor::KeyExtractor for ClientNetworkKey {
    type Key = IpNet;

    fn extract<T>(
        &self,
        req: &axum::http::Request<T>,
    ) -> Result<Self::Key, tower_governor::GovernorError> {
        req.extensions()
            .get::<ClientAddr>()
            .map(|c| client_network(c.0))
            .ok_or(tower_governor::GovernorError::UnableToExtractKey)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                axum::http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        h
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn forwarded_addresses_count_only_from_trusted_proxies() {
        let proxies: Vec<IpNet> = vec!["10.0.0.0/8".parse().unwrap(), "fd00::/8".parse().unwrap()];
        let spoofed = headers(&[("x-forwarded-for", "203.0.113.9")]);
        // Not from a proxy: the header is the client's own claim.
        assert_eq!(
            client_address(ip("198.51.100.4"), &spoofed, &proxies),
            ip("198.51.100.4")
        );
        // No proxies trusted (the default): the same.
        assert_eq!(
            client_address(ip("10.0.0.2"), &spoofed, &[]),
            ip("10.0.0.2")
        );
        // From a proxy: right to left, past the trusted hops.
        let chain = headers(&[("x-forwarded-for", "1.2.3.4, 203.0.113.9, 10.1.1.1")]);
        assert_eq!(
            client_address(ip("10.0.0.2"), &chain, &proxies),
            ip("203.0.113.9")
        );
        // Two header lines are one list; ports and brackets are dropped.
        let lines = headers(&[
            ("x-forwarded-for", "1.2.3.4"),
            ("x-forwarded-for", "[2001:db8::7]:4711"),
        ]);
        assert_eq!(
            client_address(ip("fd00::1"), &lines, &proxies),
            ip("2001:db8::7")
        );
        // Every hop trusted: the leftmost.
        let inside = headers(&[("x-forwarded-for", "10.9.9.9, 10.1.1.1")]);
        assert_eq!(
            client_address(ip("10.0.0.2"), &inside, &proxies),
            ip("10.9.9.9")
        );
        // A hop that is no address stops the walk at the last trusted one.
        let hidden = headers(&[("x-forwarded-for", "203.0.113.9, unknown, 10.1.1.1")]);
        assert_eq!(
            client_address(ip("10.0.0.2"), &hidden, &proxies),
            ip("10.1.1.1")
        );
        // A proxy that sent no header: the proxy.
        assert_eq!(
            client_address(ip("10.0.0.2"), &HeaderMap::new(), &proxies),
            ip("10.0.0.2")
        );
    }

    #[test]
    fn a_proxy_is_trusted_by_its_own_address_not_its_network() {
        // One IPv6 proxy, and a range narrower than a /64.
        let proxies: Vec<IpNet> = vec![
            "2001:db8::10/128".parse().unwrap(),
            "2001:db8:1::/124".parse().unwrap(),
            "127.0.0.1/32".parse().unwrap(),
        ];
        let forwarded = headers(&[("x-forwarded-for", "203.0.113.9")]);
        for proxy in ["2001:db8::10", "2001:db8:1::f", "::ffff:127.0.0.1"] {
            assert_eq!(
                client_address(ip(proxy), &forwarded, &proxies),
                ip("203.0.113.9"),
                "{proxy} is a trusted proxy"
            );
        }
        // Neighbours in the same /64 are clients, and their header is theirs.
        for neighbour in ["2001:db8::11", "2001:db8:1::10"] {
            assert_eq!(
                client_address(ip(neighbour), &forwarded, &proxies),
                ip(neighbour),
                "{neighbour} is not a proxy"
            );
        }
    }

    #[test]
    fn the_forwarded_header_is_read_when_there_is_no_x_forwarded_for() {
        let proxies: Vec<IpNet> = vec!["10.0.0.0/8".parse().unwrap()];
        let h = headers(&[(
            "forwarded",
            "for=192.0.2.60;proto=http, For=\"[2001:db8:cafe::17]:4711\";by=10.0.0.1",
        )]);
        assert_eq!(
            client_address(ip("10.0.0.2"), &h, &proxies),
            ip("2001:db8:cafe::17")
        );
        let obfuscated = headers(&[("forwarded", "for=_hidden")]);
        assert_eq!(
            client_address(ip("10.0.0.2"), &obfuscated, &proxies),
            ip("10.0.0.2")
        );
    }
}
