//! The REST server's settings: where it listens, how long it waits for a
//! client, how many connections it holds, and which proxies it believes.

use std::time::Duration;

use secrecy::SecretString;

use super::{check_http_url, parse_bool, parse_range};
use crate::error::{Error, Result};

/// Server settings (used by `homi-server` and `homi serve`).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ServerConfig {
    /// `API_HOST`.
    pub host: String,
    /// `API_PORT`.
    pub port: u16,
    /// `DEBUG`.
    pub debug: bool,
    /// `HOMI_AUTH_RATE_LIMIT`: requests per minute one client network may
    /// send to the auth routes (sign-up, sign-in, refresh, resets); 0 turns
    /// it off.
    pub auth_rate_limit_per_minute: u32,
    /// `HOMI_CORS_ORIGINS`: origins allowed to call the API from a browser
    /// (comma-separated, or `*`); none by default.
    pub cors_origins: Vec<String>,
    /// `HOMI_REQUEST_TIMEOUT_SECS`: how long a request may take until its
    /// answer starts (a stream, once started, runs to its end).
    pub request_timeout: Duration,
    /// `HOMI_METRICS_TOKEN`: when set, `GET /metrics` answers only a request
    /// with `Authorization: Bearer <token>`; open when unset.
    pub metrics_token: Option<SecretString>,
    /// `HOMI_HEADER_TIMEOUT_SECS`: how long a client may take to send a
    /// request's line and headers, from its first byte (from the connection's
    /// start for its first request).
    pub header_timeout: Duration,
    /// `HOMI_KEEP_ALIVE_SECS`: how long a connection may stay open with no
    /// request on it.
    pub keep_alive_timeout: Duration,
    /// `HOMI_BODY_TIMEOUT_SECS`: how long a client may take to send a
    /// request's body, once its headers are in.
    pub body_timeout: Duration,
    /// `HOMI_MAX_CONNECTIONS`: open connections served at once; beyond it new
    /// connections wait in the listen queue.
    pub max_connections: usize,
    /// `HOMI_TRUSTED_PROXIES`: the networks of the reverse proxies in front of
    /// the server (comma-separated CIDRs or addresses). Only a request from
    /// one of them has its `X-Forwarded-For` / `Forwarded` header read; none
    /// by default, so the client is the connection's peer.
    pub trusted_proxies: Vec<ipnet::IpNet>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            host: "0.0.0.0".to_owned(),
            port: 8000,
            debug: false,
            auth_rate_limit_per_minute: 30,
            cors_origins: Vec::new(),
            metrics_token: None,
            request_timeout: Duration::from_secs(180),
            header_timeout: Duration::from_secs(10),
            keep_alive_timeout: Duration::from_secs(60),
            body_timeout: Duration::from_secs(30),
            max_connections: 1024,
            trusted_proxies: Vec::new(),
        }
    }
}

fn seconds(var: &str, v: &str, max: u64) -> Result<Duration> {
    Ok(Duration::from_secs(parse_range(var, v, 1, max)?))
}

/// `HOMI_TRUSTED_PROXIES`: CIDRs (`10.0.0.0/8`, `fd00::/8`) or single
/// addresses, comma-separated.
fn parse_networks(var: &str, v: &str) -> Result<Vec<ipnet::IpNet>> {
    v.split(',')
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .map(|n| {
            n.parse::<ipnet::IpNet>()
                .or_else(|_| n.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
                .map(|net| net.trunc())
                .map_err(|_| {
                    Error::config(
                        var,
                        format!("'{n}' is not an IP address or a CIDR network (e.g. 10.0.0.0/8)"),
                    )
                })
        })
        .collect()
}

pub(super) fn read_server(
    s: &mut ServerConfig,
    get: &mut impl FnMut(&str) -> Option<String>,
) -> Result<()> {
    if let Some(host) = get("API_HOST") {
        s.host = host.trim().to_owned();
    }
    if let Some(v) = get("API_PORT") {
        s.port = parse_range("API_PORT", &v, 0, 65_535)? as u16;
    }
    if let Some(v) = get("DEBUG") {
        s.debug = parse_bool("DEBUG", &v)?;
    }
    if let Some(v) = get("HOMI_AUTH_RATE_LIMIT") {
        s.auth_rate_limit_per_minute = parse_range("HOMI_AUTH_RATE_LIMIT", &v, 0, 60_000)? as u32;
    }
    if let Some(v) = get("HOMI_REQUEST_TIMEOUT_SECS") {
        s.request_timeout = seconds("HOMI_REQUEST_TIMEOUT_SECS", &v, 86_400)?;
    }
    if let Some(v) = get("HOMI_HEADER_TIMEOUT_SECS") {
        s.header_timeout = seconds("HOMI_HEADER_TIMEOUT_SECS", &v, 3600)?;
    }
    if let Some(v) = get("HOMI_KEEP_ALIVE_SECS") {
        s.keep_alive_timeout = seconds("HOMI_KEEP_ALIVE_SECS", &v, 86_400)?;
    }
    if let Some(v) = get("HOMI_BODY_TIMEOUT_SECS") {
        s.body_timeout = seconds("HOMI_BODY_TIMEOUT_SECS", &v, 3600)?;
    }
    if let Some(v) = get("HOMI_MAX_CONNECTIONS") {
        s.max_connections = parse_range("HOMI_MAX_CONNECTIONS", &v, 1, 1_000_000)? as usize;
    }
    if let Some(v) = get("HOMI_TRUSTED_PROXIES") {
        s.trusted_proxies = parse_networks("HOMI_TRUSTED_PROXIES", &v)?;
    }
    if let Some(v) = get("HOMI_CORS_ORIGINS") {
        let origins: Vec<String> = v
            .split(',')
            .map(|o| o.trim().trim_end_matches('/').to_owned())
            .filter(|o| !o.is_empty())
            .collect();
        for o in &origins {
            if o != "*" {
                check_http_url("HOMI_CORS_ORIGINS", o)?;
            }
        }
        s.cors_origins = origins;
    }
    if let Some(v) = get("HOMI_METRICS_TOKEN") {
        let token = v.trim();
        if !token.is_empty() && token.chars().count() < 16 {
            return Err(Error::config(
                "HOMI_METRICS_TOKEN",
                "is shorter than 16 characters: use a long random value (e.g. `openssl rand -hex 32`)",
            ));
        }
        s.metrics_token = (!token.is_empty()).then(|| SecretString::from(token.to_owned()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn trusted_proxies_are_networks_and_addresses() {
        let nets = parse_networks("V", " 10.1.2.3/8, 192.168.0.7 ,fd00::1/8,").unwrap();
        let shown: Vec<String> = nets.iter().map(ToString::to_string).collect();
        assert_eq!(shown, ["10.0.0.0/8", "192.168.0.7/32", "fd00::/8"]);
        let e = parse_networks("HOMI_TRUSTED_PROXIES", "10.0.0.0/8, proxy.local").unwrap_err();
        let text = e.to_string();
        assert!(
            text.contains("HOMI_TRUSTED_PROXIES") && text.contains("proxy.local"),
            "{text}"
        );
        assert!(parse_networks("V", "10.0.0.0/33").is_err());
    }
}
