//! Access tokens: HS256 JWTs issued by the built-in backend, and the local
//! verification of Supabase's (HS256 with the project secret, or ES256 / RS256
//! with the project's JWKS). The algorithm is always pinned by the key, never
//! taken from the token.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use jsonwebtoken::errors::ErrorKind as JwtErrorKind;
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, JwkSet, KeyAlgorithm};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::error::{Error, Result};

/// Clock skew tolerated on `exp`, `nbf` and `iat`.
const LEEWAY_SECS: u64 = 5;

/// The claims of a built-in access token.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Claims {
    pub sub: String,
    pub sid: String,
    pub iat: i64,
    pub nbf: i64,
    pub exp: i64,
    pub aud: String,
    pub iss: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
}

/// Why a token was refused, in words a client can act on.
pub(crate) fn refused(e: &jsonwebtoken::errors::Error) -> Error {
    let why = match e.kind() {
        JwtErrorKind::ExpiredSignature => "the access token has expired; refresh it",
        JwtErrorKind::ImmatureSignature => "the access token is not valid yet",
        JwtErrorKind::InvalidAudience => "the access token is for another audience",
        JwtErrorKind::InvalidIssuer => "the access token is from another issuer",
        JwtErrorKind::InvalidSignature => "the access token's signature is invalid",
        JwtErrorKind::InvalidAlgorithm | JwtErrorKind::InvalidAlgorithmName => {
            "the access token is signed with an algorithm that is not accepted"
        }
        JwtErrorKind::MissingRequiredClaim(_) => "the access token lacks a required claim",
        _ => "the access token is malformed",
    };
    Error::Unauthorized(why.to_owned())
}

fn check_iat(iat: i64, now: DateTime<Utc>) -> Result<()> {
    if iat > now.timestamp() + LEEWAY_SECS as i64 {
        return Err(Error::Unauthorized(
            "the access token is not valid yet".to_owned(),
        ));
    }
    Ok(())
}

/// Issues and verifies the built-in backend's HS256 access tokens.
#[derive(Clone)]
pub(crate) struct Signer {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    issuer: String,
    audience: String,
    ttl: Duration,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Signer")
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .field("ttl", &self.ttl)
            .finish_non_exhaustive()
    }
}

impl Signer {
    pub fn new(secret: &[u8], issuer: &str, audience: &str, ttl: Duration) -> Self {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = LEEWAY_SECS;
        validation.validate_nbf = true;
        validation.set_audience(&[audience]);
        validation.set_issuer(&[issuer]);
        validation.set_required_spec_claims(&["exp", "nbf", "iat", "sub", "aud", "iss"]);
        Self {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            validation,
            issuer: issuer.to_owned(),
            audience: audience.to_owned(),
            ttl,
        }
    }

    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// A token for `user` in `session`, and when it expires.
    pub fn issue(
        &self,
        user: Uuid,
        session: Uuid,
        email: &str,
        now: DateTime<Utc>,
    ) -> Result<(String, DateTime<Utc>)> {
        let exp = super::builtin::later(now, self.ttl, "HOMI_ACCESS_TOKEN_TTL_SECS")?;
        let claims = Claims {
            sub: user.to_string(),
            sid: session.to_string(),
            iat: now.timestamp(),
            nbf: now.timestamp(),
            exp: exp.timestamp(),
            aud: self.audience.clone(),
            iss: self.issuer.clone(),
            email: Some(email.to_owned()),
            role: Some("authenticated".to_owned()),
        };
        let token = jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .map_err(|e| Error::storage(format!("cannot sign an access token: {e}")))?;
        Ok((token, exp))
    }

    /// The verified claims of `token` (signature, algorithm, `exp`, `nbf`,
    /// `iat`, `aud`, `iss`, and ids that parse), without the revocation check.
    pub fn verify(&self, token: &str, now: DateTime<Utc>) -> Result<(Uuid, Uuid, DateTime<Utc>)> {
        let data = jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation)
            .map_err(|e| refused(&e))?;
        let c = data.claims;
        check_iat(c.iat, now)?;
        let user = Uuid::parse_str(&c.sub)
            .map_err(|_| Error::Unauthorized("the access token's subject is invalid".into()))?;
        let session = Uuid::parse_str(&c.sid)
            .map_err(|_| Error::Unauthorized("the access token's session is invalid".into()))?;
        let exp = DateTime::from_timestamp(c.exp, 0).unwrap_or(now);
        Ok((user, session, exp))
    }
}

/// The claims Homi reads from a Supabase access token.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct SupabaseClaims {
    pub sub: String,
    pub exp: i64,
    #[serde(default)]
    pub iat: Option<i64>,
    #[serde(default)]
    pub session_id: Option<String>,
    #[serde(default)]
    pub role: Option<String>,
}

/// Verifies Supabase access tokens locally.
pub(crate) struct SupabaseVerifier {
    secret: Option<DecodingKey>,
    jwks_url: String,
    issuer: String,
    http: reqwest::Client,
    api_key: secrecy::SecretString,
    keys: Mutex<JwksCache>,
    /// One fetch at a time; requests that wait for it use its result.
    fetching: tokio::sync::Mutex<()>,
}

struct JwksCache {
    keys: HashMap<String, (Algorithm, DecodingKey)>,
    /// When the keys were last fetched successfully.
    fetched: Option<Instant>,
    /// When a fetch was last attempted (successful or not).
    attempted: Option<Instant>,
}

/// How long fetched JWKS keys are trusted before they are fetched again.
const JWKS_TTL: Duration = Duration::from_secs(600);
/// At most one refetch for an unknown `kid` this often.
const JWKS_MIN_REFETCH: Duration = Duration::from_secs(30);

impl std::fmt::Debug for SupabaseVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SupabaseVerifier")
            .field("hs256_secret", &self.secret.is_some())
            .field("jwks_url", &self.jwks_url)
            .finish_non_exhaustive()
    }
}

impl SupabaseVerifier {
    pub fn new(
        project_url: &str,
        secret: Option<&str>,
        http: reqwest::Client,
        api_key: secrecy::SecretString,
    ) -> Self {
        Self {
            secret: secret.map(|s| DecodingKey::from_secret(s.as_bytes())),
            jwks_url: format!("{project_url}/auth/v1/.well-known/jwks.json"),
            issuer: format!("{project_url}/auth/v1"),
            http,
            api_key,
            keys: Mutex::new(JwksCache {
                keys: HashMap::new(),
                fetched: None,
                attempted: None,
            }),
            fetching: tokio::sync::Mutex::new(()),
        }
    }

    fn validation(&self, alg: Algorithm) -> Validation {
        let mut v = Validation::new(alg);
        v.leeway = LEEWAY_SECS;
        v.validate_nbf = true;
        v.set_audience(&["authenticated"]);
        v.set_issuer(&[self.issuer.as_str()]);
        v.set_required_spec_claims(&["exp", "sub", "aud", "iss"]);
        v
    }

    /// The verified claims of a Supabase access token.
    pub async fn verify(&self, token: &str, now: DateTime<Utc>) -> Result<SupabaseClaims> {
        let header = jsonwebtoken::decode_header(token).map_err(|e| refused(&e))?;
        let (alg, key) = match header.alg {
            Algorithm::HS256 => match &self.secret {
                Some(k) => (Algorithm::HS256, k.clone()),
                None => {
                    return Err(Error::Unauthorized(
                        "the access token is signed with HS256, but SUPABASE_JWT_SECRET is not set; \
                         only the project's JWKS keys are accepted"
                            .into(),
                    ));
                }
            },
            Algorithm::ES256 | Algorithm::RS256 => {
                let kid = header.kid.clone().unwrap_or_default();
                let (alg, key) = self.jwks_key(&kid).await?;
                if alg != header.alg {
                    return Err(Error::Unauthorized(
                        "the access token is signed with an algorithm that is not accepted".into(),
                    ));
                }
                (alg, key)
            }
            _ => {
                return Err(Error::Unauthorized(
                    "the access token is signed with an algorithm that is not accepted".into(),
                ));
            }
        };
        let data = jsonwebtoken::decode::<SupabaseClaims>(token, &key, &self.validation(alg))
            .map_err(|e| refused(&e))?;
        if let Some(iat) = data.claims.iat {
            check_iat(iat, now)?;
        }
        Ok(data.claims)
    }

    async fn jwks_key(&self, kid: &str) -> Result<(Algorithm, DecodingKey)> {
        // Keys fetched recently are used as they are; an unknown `kid` (a
        // rotation) triggers a fetch, at most one per JWKS_MIN_REFETCH.
        let cached = |c: &JwksCache| -> Option<Result<(Algorithm, DecodingKey)>> {
            let fresh = c.fetched.is_some_and(|t| t.elapsed() < JWKS_TTL);
            match c.keys.get(kid) {
                Some(k) if fresh => Some(Ok(k.clone())),
                _ if c.attempted.is_some_and(|t| t.elapsed() < JWKS_MIN_REFETCH) => {
                    Some(c.keys.get(kid).cloned().ok_or_else(unknown_key))
                }
                _ => None,
            }
        };
        if let Some(answer) = cached(&self.lock()) {
            return answer;
        }
        let _one_at_a_time = self.fetching.lock().await;
        if let Some(answer) = cached(&self.lock()) {
            return answer;
        }
        let fetched = self.fetch_jwks().await;
        let mut cache = self.lock();
        cache.attempted = Some(Instant::now());
        match fetched {
            Ok(keys) => {
                cache.keys = keys;
                cache.fetched = cache.attempted;
            }
            // Keep the keys we had: a JWKS outage must not refuse every token.
            Err(e) if cache.keys.contains_key(kid) => {
                tracing::warn!(error = %e, "cannot refresh the Supabase JWKS; using the keys fetched before");
            }
            Err(e) => return Err(e),
        }
        cache.keys.get(kid).cloned().ok_or_else(unknown_key)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, JwksCache> {
        self.keys.lock().unwrap_or_else(|p| p.into_inner())
    }

    async fn fetch_jwks(&self) -> Result<HashMap<String, (Algorithm, DecodingKey)>> {
        use secrecy::ExposeSecret;
        let response = self
            .http
            .get(&self.jwks_url)
            .header("apikey", self.api_key.expose_secret())
            .send()
            .await
            .map_err(|e| Error::unavailable("Supabase Auth's JWKS could not be read", e))?;
        if !response.status().is_success() {
            return Err(Error::unavailable(
                "Supabase Auth's JWKS could not be read",
                format!("HTTP {}", response.status().as_u16()),
            ));
        }
        let body = response
            .text()
            .await
            .map_err(|e| Error::unavailable("Supabase Auth's JWKS could not be read", e))?;
        let set: JwkSet = serde_json::from_str(&body)
            .map_err(|e| Error::unavailable("Supabase Auth's JWKS is not a JWK set", e))?;
        let mut keys = HashMap::new();
        for jwk in &set.keys {
            // The key's algorithm is pinned by the key: its `alg`, or its type
            // when it has none (EC P-256 → ES256, RSA → RS256).
            let alg = match (&jwk.common.key_algorithm, &jwk.algorithm) {
                (Some(KeyAlgorithm::ES256), _) => Algorithm::ES256,
                (Some(KeyAlgorithm::RS256), _) => Algorithm::RS256,
                (Some(_), _) => continue,
                (None, AlgorithmParameters::EllipticCurve(ec))
                    if ec.curve == EllipticCurve::P256 =>
                {
                    Algorithm::ES256
                }
                (None, AlgorithmParameters::RSA(_)) => Algorithm::RS256,
                (None, _) => continue,
            };
            let Some(kid) = jwk.common.key_id.clone() else {
                continue;
            };
            match DecodingKey::from_jwk(jwk) {
                Ok(key) => {
                    keys.insert(kid, (alg, key));
                }
                Err(e) => tracing::warn!(%kid, error = %e, "skipping an unusable JWKS key"),
            }
        }
        Ok(keys)
    }
}

fn unknown_key() -> Error {
    Error::Unauthorized("the access token is signed with a key the project does not publish".into())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";

    #[test]
    fn issued_tokens_verify_and_tampering_is_caught() {
        let s = Signer::new(SECRET, "homi", "authenticated", Duration::from_secs(60));
        let (u, sid, now) = (Uuid::new_v4(), Uuid::new_v4(), Utc::now());
        let (t, _) = s.issue(u, sid, "a@example.com", now).unwrap();
        assert_eq!(s.verify(&t, now).unwrap().0, u);
        let other = Signer::new(
            b"another-secret-another-secret-xx",
            "homi",
            "authenticated",
            Duration::from_secs(60),
        );
        assert_eq!(
            other.verify(&t, now).unwrap_err().kind(),
            crate::ErrorKind::Unauthorized
        );
        let wrong_aud = Signer::new(SECRET, "homi", "other", Duration::from_secs(60));
        assert!(
            wrong_aud
                .verify(&t, now)
                .unwrap_err()
                .to_string()
                .contains("audience")
        );
        let wrong_iss = Signer::new(SECRET, "evil", "authenticated", Duration::from_secs(60));
        assert!(
            wrong_iss
                .verify(&t, now)
                .unwrap_err()
                .to_string()
                .contains("issuer")
        );
    }
}
