//! A fake Supabase Auth (GoTrue) server, in memory, over real HTTP.
//!
//! [`FakeSupabase`] serves the GoTrue REST API under `/auth/v1` on
//! `127.0.0.1`, with GoTrue's status codes, bodies and error JSON
//! (`{"code", "error_code", "msg"}`), so the code under test goes through its
//! real HTTP client with `SUPABASE_URL` set to [`FakeSupabase::url`]:
//!
//! - `GET /auth/v1/health`, `GET /auth/v1/.well-known/jwks.json`
//! - `POST /auth/v1/signup`, `POST /auth/v1/token?grant_type=password|refresh_token`
//! - `POST /auth/v1/logout?scope=global|local|others`
//! - `GET /auth/v1/user`, `PUT /auth/v1/user`
//! - `POST /auth/v1/recover`, `POST /auth/v1/resend` with `{"type", "email"}`
//! - `POST /auth/v1/verify` with `{"type", "token_hash"}` (email links)
//! - `DELETE /auth/v1/admin/users/{id}` (service-role bearer)
//!
//! Like the Supabase API gateway, every request must carry an `apikey` header
//! (or `?apikey=` parameter) equal to [`FakeSupabase::anon_key`] or
//! [`FakeSupabase::service_role_key`]. Access tokens are signed HS256 with the
//! project's JWT secret ([`SupabaseSigning::Hs256`], legacy projects), ES256
//! with a P-256 key served in the JWKS ([`SupabaseSigning::Es256`], projects on
//! asymmetric signing keys) or RS256 with a 2048-bit RSA key served in the JWKS
//! ([`SupabaseSigning::Rs256`], projects on asymmetric RSA keys). Refresh tokens rotate on use, and presenting a used
//! one revokes its session (GoTrue's reuse detection, without its grace
//! interval).
//!
//! Email links work as on Supabase with `{{ .TokenHash }}` templates: a sign-up
//! without autoconfirm and a `/recover` that matches a user create a one-time
//! token hash (56 hex characters, valid one hour), which `POST /auth/v1/verify`
//! exchanges for a session; `POST /auth/v1/resend` replaces an unconfirmed
//! user's confirmation hash with a fresh one. No mail is sent; tests read the hashes with
//! [`FakeSupabase::confirmation_token_hash`] and
//! [`FakeSupabase::last_recovery_token_hash`].

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use base64::Engine as _;
use chrono::{DateTime, SecondsFormat, Utc};
use jsonwebtoken::errors::ErrorKind as JwtErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value, json};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use uuid::Uuid;

/// The GoTrue version the health route reports.
const GOTRUE_VERSION: &str = "v2.170.0";

/// Shortest password GoTrue accepts by default.
const MIN_PASSWORD_LENGTH: usize = 6;

/// The project reference written into the API keys.
const PROJECT_REF: &str = "homitestkitfakeref00";

/// Lifetime of email-link token hashes (Supabase's default "Email OTP
/// Expiration").
const ONE_TIME_TOKEN_TTL: Duration = Duration::from_secs(3600);

/// The RS256 signing key of [`SupabaseSigning::Rs256`], PKCS#8 PEM.
///
/// A TEST-ONLY key, public in this source and so protecting nothing: made once
/// with `openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048` and
/// shipped fixed, because generating a 2048-bit RSA key at run time is slow in
/// debug builds. Never use it outside tests.
const RS256_TEST_PRIVATE_KEY_PEM: &str = "-----BEGIN PRIVATE KEY-----
MIIEvgIBADANBgkqhkiG9w0BAQEFAASCBKgwggSkAgEAAoIBAQCTnlzenoRYzVzF
mSda5skiVK+bzDRuoQiko+AbJNQUwLeug2MiaFCQ58Jj/jLY4TmVdTK0K8jFdy/i
I5K6comI7zNwAUXCdHyvUQkZjhqK2eb3GuMlTl/D1LhsYOYD2XIOkQMXVpwmyU37
xpaSscOBW3MeyhUOV53DR+Z8gGLWlSirJIeQoototToNqgmsCLSt7OvXVvNsRkHQ
wBfQw78Zt2SnfMfK244DtchNq6db5b+WFg+TkBo0kfgSC84mf7gzBHFqLxu+RNM0
zPcVCpAAeGZRslJzFY+e67eXDYVovtnVUGS3V4lLHXjc7n8qFu0GI1x6dTJCbqJs
1/g1r78hAgMBAAECggEALcsaPztIji3C4k+VDFd8vMgto/SwrUMKZdyqeHEv03JH
aP08Qx++In2q6Y8hYfNYhDtTq93LTiqfsZTcfzdp4A9oUw4qAF1XkqFeY82YAUwA
oNZ38YpDHgJ+5awXnskVX1xv640EKuoW5YyhCEfaAOaIK1yANK9Mcxh6cVP4lV0+
m7Jn9j6pIrFHivExvx44wAhF/D6pWjHJJvzqZDTOzhva+suYuJbLpyP0PMSjuFVq
rFRpfQy1Jh4mO2Xn/OCDvHmWhgUlu3sJiNNzRJ/O4tmDXkxqRd9QSwBT2za7C0jJ
YqH5dBiVIJ53Cx01FmFDJBMvo47s6hLs0/WIMNgeEwKBgQDF1nyzCwshMmmZjPph
TeBgyw3lEBr3vs+OBkNwMJbTXLszmHkDsKDdhIBG1+zDPOU+j/eukeBEmKHO06ez
hydEr+oBfLsxltvU6tPOk5Jn0nmu8RjDmQHxejNBMqSq/tphPhO+GNDY0SEqacZo
C71DVcCgs+Q8r5Blf1AwSlWaGwKBgQC/BFDZd/PvfjvvOX0MY0UvCGN2NdCPa55p
sLxQk4MEmIEawafBtSj2mNA2KFAu35S/olU7S1Wi0Ma/iLG3OX1Mz50t2zyGo25L
WNAjjMUHzcmmtt0OXDz66RI09TJYhx7VHGRVTLwgbCO8af/GVYE2u67McB815KrQ
V8hjX9rfcwKBgQCJwmAUwHTgid0UiiFzDipW3C3xujQ9HUYjzGK7RWpRBXppZBuo
IR7zASfdrM915/pthQxgJ731ph7OCX32Of9zCde1b2heEIFFEruoVgQVfW80DThE
Q1AiGQiFtsEJPOtN2U8gCOGsiHtCsGLy4nHI6HZ4sKsWQt4Wfv+UkL5ozwKBgEt+
uy2YOTMYozuDbybsPTW/jP/1eP6WPD/teCAojQnN9IjMrS7kGNKNxw0AleBQwYuT
7zfGKIx3E3Yz4nlWIW2wSKENGzjjcv4YlfrW8jCJZv+bGndIgVlxsJ55onJWxRrZ
Y9ZKw7fUxbL7+fk7ZhxpxUZLsiosvE4nw61y/yB9AoGBAIFMX2rxvo9BfhG5Ja+u
xi2KqchfgoxJyPjh0v7imEb5GwTc5xdwQaUj8EiQ9w1NDr4AFQeulgjZ7PL3LZds
mcG/3kUyXkjOCSQhvqvwKnvw0Kc+t9b4OTmvCgiSyytsUchPixOPcJiV56DwFjz0
woStW16ZQ5YIgOnW0ZzMqGXA
-----END PRIVATE KEY-----
";

/// The public half of [`RS256_TEST_PRIVATE_KEY_PEM`], SPKI PEM (`openssl pkey
/// -pubout`).
const RS256_TEST_PUBLIC_KEY_PEM: &str = "-----BEGIN PUBLIC KEY-----
MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEAk55c3p6EWM1cxZknWubJ
IlSvm8w0bqEIpKPgGyTUFMC3roNjImhQkOfCY/4y2OE5lXUytCvIxXcv4iOSunKJ
iO8zcAFFwnR8r1EJGY4aitnm9xrjJU5fw9S4bGDmA9lyDpEDF1acJslN+8aWkrHD
gVtzHsoVDledw0fmfIBi1pUoqySHkKKLaLU6DaoJrAi0rezr11bzbEZB0MAX0MO/
Gbdkp3zHytuOA7XITaunW+W/lhYPk5AaNJH4EgvOJn+4MwRxai8bvkTTNMz3FQqQ
AHhmUbJScxWPnuu3lw2FaL7Z1VBkt1eJSx143O5/KhbtBiNcenUyQm6ibNf4Na+/
IQIDAQAB
-----END PUBLIC KEY-----
";

/// The JWK `n` of [`RS256_TEST_PRIVATE_KEY_PEM`]: its 256-byte modulus,
/// big-endian, base64url without padding (from `openssl rsa -modulus`).
const RS256_TEST_MODULUS: &str = "k55c3p6EWM1cxZknWubJIlSvm8w0bqEIpKPgGyTUFMC3roNjImhQkOfCY_4y2OE5lXUytCvIxXcv4iOSunKJiO8zcAFFwnR8r1EJGY4aitnm9xrjJU5fw9S4bGDmA9lyDpEDF1acJslN-8aWkrHDgVtzHsoVDledw0fmfIBi1pUoqySHkKKLaLU6DaoJrAi0rezr11bzbEZB0MAX0MO_Gbdkp3zHytuOA7XITaunW-W_lhYPk5AaNJH4EgvOJn-4MwRxai8bvkTTNMz3FQqQAHhmUbJScxWPnuu3lw2FaL7Z1VBkt1eJSx143O5_KhbtBiNcenUyQm6ibNf4Na-_IQ";

/// The JWK `e` of [`RS256_TEST_PRIVATE_KEY_PEM`]: 65537, base64url.
const RS256_TEST_EXPONENT: &str = "AQAB";

/// How the fake project signs access tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SupabaseSigning {
    /// HS256 with the project's JWT secret (a legacy project); the JWKS is empty.
    Hs256,
    /// ES256 with a P-256 key made for this instance, served in the JWKS with a
    /// `kid` (a project on asymmetric signing keys). Tokens signed HS256 with the
    /// JWT secret, like the API keys, are still accepted.
    Es256,
    /// RS256 with a 2048-bit RSA key, served in the JWKS as `{"kty": "RSA",
    /// "n", "e", "alg": "RS256", "use": "sig", "kid"}` (a project on asymmetric
    /// RSA keys); the `kid` is new for each instance. The key itself is one
    /// fixed test-only key shipped with this module, the same for every
    /// instance. Tokens signed HS256 with the JWT secret, like the API keys,
    /// are still accepted.
    Rs256,
}

/// Start options.
#[derive(Debug, Clone)]
pub struct FakeSupabaseOptions {
    /// How access tokens are signed.
    pub signing: SupabaseSigning,
    /// Whether sign-ups are confirmed at once (Supabase's "Confirm email"
    /// switched off). Default `true`.
    pub autoconfirm: bool,
    /// Lifetime of access tokens (`expires_in`). Default one hour.
    pub access_token_ttl: Duration,
}

impl Default for FakeSupabaseOptions {
    fn default() -> Self {
        Self {
            signing: SupabaseSigning::Hs256,
            autoconfirm: true,
            access_token_ttl: Duration::from_secs(3600),
        }
    }
}

struct EcKey {
    encoding: EncodingKey,
    decoding: DecodingKey,
    kid: String,
    /// Base64url coordinates of the public point.
    x: String,
    y: String,
    public_pem: String,
}

/// The RS256 key of [`SupabaseSigning::Rs256`]: the fixed test key, with a
/// `kid` made for the instance.
struct RsaKey {
    encoding: EncodingKey,
    decoding: DecodingKey,
    kid: String,
}

impl RsaKey {
    fn load() -> std::io::Result<Self> {
        Ok(Self {
            encoding: EncodingKey::from_rsa_pem(RS256_TEST_PRIVATE_KEY_PEM.as_bytes())
                .map_err(std::io::Error::other)?,
            decoding: DecodingKey::from_rsa_components(RS256_TEST_MODULUS, RS256_TEST_EXPONENT)
                .map_err(std::io::Error::other)?,
            kid: Uuid::new_v4().to_string(),
        })
    }
}

struct Keys {
    jwt_secret: String,
    hs_encoding: EncodingKey,
    hs_decoding: DecodingKey,
    ec: Option<EcKey>,
    rsa: Option<RsaKey>,
    anon_key: String,
    service_role_key: String,
    secret_key: String,
}

impl Keys {
    /// The asymmetric key with this `kid`, and its algorithm.
    fn by_kid(&self, kid: &str) -> Option<(&DecodingKey, Algorithm)> {
        if let Some(ec) = self.ec.as_ref().filter(|k| k.kid == kid) {
            return Some((&ec.decoding, Algorithm::ES256));
        }
        self.rsa
            .as_ref()
            .filter(|k| k.kid == kid)
            .map(|k| (&k.decoding, Algorithm::RS256))
    }
}

struct User {
    id: Uuid,
    identity_id: Uuid,
    email: String,
    password: String,
    new_email: Option<String>,
    email_confirmed_at: Option<DateTime<Utc>>,
    confirmation_sent_at: Option<DateTime<Utc>>,
    email_change_sent_at: Option<DateTime<Utc>>,
    recovery_sent_at: Option<DateTime<Utc>>,
    last_sign_in_at: Option<DateTime<Utc>>,
    user_metadata: Map<String, Value>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

struct Session {
    user_id: Uuid,
    /// When the user signed in (the `amr` timestamp).
    signed_in_at: i64,
    /// How the user signed in (the `amr` method): `password` or `otp`.
    method: &'static str,
}

/// What a one-time token hash proves, as GoTrue's `one_time_tokens.token_type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum OneTimeTokenKind {
    /// `confirmation_token`: the sign-up confirmation link.
    Confirmation,
    /// `recovery_token`: the password-recovery link.
    Recovery,
}

/// An email-link token hash, keyed by the hash in [`Db::one_time_tokens`].
struct OneTimeToken {
    user_id: Uuid,
    kind: OneTimeTokenKind,
    created_at: DateTime<Utc>,
    used: bool,
}

impl OneTimeToken {
    fn expired(&self, now: DateTime<Utc>) -> bool {
        now.signed_duration_since(self.created_at)
            .to_std()
            .is_ok_and(|age| age >= ONE_TIME_TOKEN_TTL)
    }
}

struct RefreshToken {
    session_id: Uuid,
    used: bool,
}

struct Fault {
    status: u16,
    remaining: u32,
}

#[derive(Default)]
struct Db {
    users: HashMap<Uuid, User>,
    sessions: HashMap<Uuid, Session>,
    refresh_tokens: HashMap<String, RefreshToken>,
    one_time_tokens: HashMap<String, OneTimeToken>,
    autoconfirm: bool,
    last_recovery_email: Option<String>,
    last_recovery_token_hash: Option<String>,
    requests: Vec<(String, String)>,
    forwarded_for: Vec<(String, Option<String>)>,
    sb_forwarded_for: Vec<(String, Option<String>)>,
    faults: Vec<Fault>,
}

impl Db {
    fn user_by_email(&self, email: &str) -> Option<&User> {
        self.users.values().find(|u| u.email == email)
    }

    fn revoke_session(&mut self, session_id: Uuid) {
        self.sessions.remove(&session_id);
        self.refresh_tokens
            .retain(|_, t| t.session_id != session_id);
    }

    /// Revokes the user's sessions, except `keep`.
    fn revoke_user_sessions(&mut self, user_id: Uuid, keep: Option<Uuid>) {
        let doomed: Vec<Uuid> = self
            .sessions
            .iter()
            .filter(|(id, s)| s.user_id == user_id && Some(**id) != keep)
            .map(|(id, _)| *id)
            .collect();
        for id in doomed {
            self.revoke_session(id);
        }
    }

    /// Creates a token hash of this kind for the user; it replaces the user's
    /// older ones of the same kind.
    fn issue_one_time_token(
        &mut self,
        user_id: Uuid,
        kind: OneTimeTokenKind,
        now: DateTime<Utc>,
    ) -> String {
        self.one_time_tokens
            .retain(|_, t| t.user_id != user_id || t.kind != kind);
        let hash = token_hash_string();
        self.one_time_tokens.insert(
            hash.clone(),
            OneTimeToken {
                user_id,
                kind,
                created_at: now,
                used: false,
            },
        );
        hash
    }

    /// Marks the user's confirmation token hashes used: the email is proved.
    fn consume_confirmation_tokens(&mut self, user_id: Uuid) {
        for token in self.one_time_tokens.values_mut() {
            if token.user_id == user_id && token.kind == OneTimeTokenKind::Confirmation {
                token.used = true;
            }
        }
    }
}

struct Shared {
    keys: Keys,
    signing: SupabaseSigning,
    issuer: String,
    access_token_ttl: Duration,
    db: Mutex<Db>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Db> {
        // A poisoned lock only means a handler panicked mid-update; the maps
        // are still usable.
        self.db.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Signs claims with the current signing key.
    fn sign(&self, claims: &Value) -> Result<String, jsonwebtoken::errors::Error> {
        match (&self.signing, &self.keys.ec, &self.keys.rsa) {
            (SupabaseSigning::Es256, Some(ec), _) => {
                let mut header = Header::new(Algorithm::ES256);
                header.kid = Some(ec.kid.clone());
                jsonwebtoken::encode(&header, claims, &ec.encoding)
            }
            (SupabaseSigning::Rs256, _, Some(rsa)) => {
                let mut header = Header::new(Algorithm::RS256);
                header.kid = Some(rsa.kid.clone());
                jsonwebtoken::encode(&header, claims, &rsa.encoding)
            }
            _ => jsonwebtoken::encode(
                &Header::new(Algorithm::HS256),
                claims,
                &self.keys.hs_encoding,
            ),
        }
    }

    /// Verifies a JWT like GoTrue: a `kid` selects an asymmetric key, no `kid`
    /// with HS256 means the JWT secret. The error is golang-jwt's wording.
    fn verify(&self, token: &str) -> Result<Map<String, Value>, String> {
        let header =
            jsonwebtoken::decode_header(token).map_err(|e| format!("token is malformed: {e}"))?;
        let (key, alg) = match &header.kid {
            Some(kid) => match self.keys.by_kid(kid) {
                Some(found) => found,
                None => {
                    return Err(format!(
                        "token is unverifiable: error while executing keyfunc: invalid kid: {kid}"
                    ));
                }
            },
            None if header.alg == Algorithm::HS256 => (&self.keys.hs_decoding, Algorithm::HS256),
            None => {
                return Err(
                    "token is unverifiable: error while executing keyfunc: missing kid".to_owned(),
                );
            }
        };
        if header.alg != alg {
            return Err(format!(
                "token signature is invalid: signing method {:?} is invalid",
                header.alg
            ));
        }
        let mut validation = Validation::new(alg);
        validation.leeway = 0;
        validation.validate_aud = false;
        validation.required_spec_claims = HashSet::new();
        jsonwebtoken::decode::<Map<String, Value>>(token, key, &validation)
            .map(|data| data.claims)
            .map_err(|e| match e.kind() {
                JwtErrorKind::ExpiredSignature => {
                    "token has invalid claims: token is expired".to_owned()
                }
                JwtErrorKind::ImmatureSignature => {
                    "token has invalid claims: token is not valid yet".to_owned()
                }
                JwtErrorKind::InvalidSignature => {
                    "token signature is invalid: signature is invalid".to_owned()
                }
                _ => format!("token is malformed: {e}"),
            })
    }

    fn take_fault(&self) -> Option<u16> {
        let mut db = self.lock();
        let fault = db.faults.first_mut()?;
        fault.remaining = fault.remaining.saturating_sub(1);
        let status = fault.status;
        if fault.remaining == 0 {
            db.faults.remove(0);
        }
        Some(status)
    }
}

/// A running fake Supabase Auth server. Dropping it stops the server.
pub struct FakeSupabase {
    addr: SocketAddr,
    shared: Arc<Shared>,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for FakeSupabase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FakeSupabase")
            .field("addr", &self.addr)
            .field("signing", &self.shared.signing)
            .finish()
    }
}

fn random_bytes<const N: usize>() -> std::io::Result<[u8; N]> {
    let mut bytes = [0u8; N];
    getrandom::fill(&mut bytes).map_err(|e| std::io::Error::other(e.to_string()))?;
    Ok(bytes)
}

fn b64url(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// An opaque email-link token hash: 56 lowercase hex characters, the shape of
/// GoTrue's SHA-224 hex digests.
fn token_hash_string() -> String {
    use std::fmt::Write as _;

    match random_bytes::<28>() {
        Ok(bytes) => bytes.iter().fold(String::with_capacity(56), |mut out, b| {
            let _ = write!(out, "{b:02x}");
            out
        }),
        // The OS generator does not fail in practice; v4 UUIDs are random too.
        Err(_) => format!("{}{}", Uuid::new_v4().simple(), Uuid::new_v4().simple())
            .chars()
            .take(56)
            .collect(),
    }
}

/// An opaque refresh token (22 URL-safe characters).
fn refresh_token_string() -> String {
    match random_bytes::<16>() {
        Ok(bytes) => b64url(&bytes),
        // The OS generator does not fail in practice; a v4 UUID is random too.
        Err(_) => Uuid::new_v4().simple().to_string(),
    }
}

fn generate_ec_key() -> std::io::Result<EcKey> {
    use p256::elliptic_curve::sec1::ToEncodedPoint as _;
    use p256::pkcs8::{EncodePrivateKey as _, EncodePublicKey as _, LineEnding};

    let secret = loop {
        // Out-of-range scalars (about 2^-32 of draws) are drawn again.
        if let Ok(key) = p256::SecretKey::from_slice(&random_bytes::<32>()?) {
            break key;
        }
    };
    let der = secret.to_pkcs8_der().map_err(std::io::Error::other)?;
    let public = secret.public_key();
    let point = public.to_encoded_point(false);
    let (Some(x), Some(y)) = (point.x(), point.y()) else {
        return Err(std::io::Error::other(
            "P-256 public key without coordinates",
        ));
    };
    let (x, y) = (b64url(x), b64url(y));
    let public_pem = public
        .to_public_key_pem(LineEnding::LF)
        .map_err(std::io::Error::other)?;
    let decoding = DecodingKey::from_ec_components(&x, &y).map_err(std::io::Error::other)?;
    Ok(EcKey {
        encoding: EncodingKey::from_ec_der(der.as_bytes()),
        decoding,
        kid: Uuid::new_v4().to_string(),
        x,
        y,
        public_pem,
    })
}

/// An API key like a real project's: HS256 with the JWT secret, ten years.
fn api_key(secret: &EncodingKey, role: &str) -> std::io::Result<String> {
    let iat = Utc::now().timestamp();
    let claims = json!({
        "iss": "supabase",
        "ref": PROJECT_REF,
        "role": role,
        "iat": iat,
        "exp": iat + 10 * 365 * 86_400,
    });
    jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, secret)
        .map_err(std::io::Error::other)
}

impl FakeSupabase {
    /// Starts on a free port of 127.0.0.1 with the default options (HS256,
    /// autoconfirm on, one-hour access tokens).
    pub async fn start() -> std::io::Result<Self> {
        Self::start_with(FakeSupabaseOptions::default()).await
    }

    /// Starts on a free port of 127.0.0.1 with options.
    pub async fn start_with(options: FakeSupabaseOptions) -> std::io::Result<Self> {
        let listener = TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0))).await?;
        let addr = listener.local_addr()?;
        let jwt_secret = b64url(&random_bytes::<30>()?);
        let hs_encoding = EncodingKey::from_secret(jwt_secret.as_bytes());
        let keys = Keys {
            anon_key: api_key(&hs_encoding, "anon")?,
            service_role_key: api_key(&hs_encoding, "service_role")?,
            secret_key: format!("sb_secret_{}", b64url(&random_bytes::<24>()?)),
            hs_decoding: DecodingKey::from_secret(jwt_secret.as_bytes()),
            hs_encoding,
            jwt_secret,
            ec: match options.signing {
                SupabaseSigning::Es256 => Some(generate_ec_key()?),
                SupabaseSigning::Hs256 | SupabaseSigning::Rs256 => None,
            },
            rsa: match options.signing {
                SupabaseSigning::Rs256 => Some(RsaKey::load()?),
                SupabaseSigning::Hs256 | SupabaseSigning::Es256 => None,
            },
        };
        let shared = Arc::new(Shared {
            keys,
            signing: options.signing,
            issuer: format!("http://{addr}/auth/v1"),
            access_token_ttl: options.access_token_ttl,
            db: Mutex::new(Db {
                autoconfirm: options.autoconfirm,
                ..Db::default()
            }),
        });
        let app = router(shared.clone());
        let (tx, rx) = oneshot::channel::<()>();
        let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
            // Small JSON exchanges over keep-alive stall on Nagle + delayed ACK.
            let _ = tcp.set_nodelay(true);
        });
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    let _ = rx.await;
                })
                .await;
        });
        Ok(Self {
            addr,
            shared,
            shutdown: Some(tx),
            task: Some(task),
        })
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The project URL to use as `SUPABASE_URL`: `http://127.0.0.1:PORT`, no
    /// trailing slash (the routes live under `/auth/v1`).
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The project's anon API key: a JWT with role `anon`, signed HS256 with
    /// the JWT secret, as on real projects.
    pub fn anon_key(&self) -> String {
        self.shared.keys.anon_key.clone()
    }

    /// The project's service-role API key: a JWT with role `service_role`,
    /// signed HS256 with the JWT secret.
    pub fn service_role_key(&self) -> String {
        self.shared.keys.service_role_key.clone()
    }

    /// The project's secret API key (`sb_secret_…`, the newer kind of key
    /// that hosted Supabase needs to honour `Sb-Forwarded-For`). The gateway
    /// accepts it like the others.
    pub fn secret_key(&self) -> String {
        self.shared.keys.secret_key.clone()
    }

    /// The project's JWT secret (40 random URL-safe characters, new for each
    /// instance).
    pub fn jwt_secret(&self) -> String {
        self.shared.keys.jwt_secret.clone()
    }

    /// Signs arbitrary claims with the project's current signing key: HS256
    /// with the JWT secret, ES256 with the P-256 key or RS256 with the RSA key
    /// (header `kid` set for both).
    /// Tests use it to forge expired or wrong-audience tokens. Empty if
    /// signing fails, which it does not with the keys this server makes.
    pub fn sign(&self, claims: &Value) -> String {
        self.shared.sign(claims).unwrap_or_default()
    }

    /// The ES256 public key as an SPKI PEM (`-----BEGIN PUBLIC KEY-----`), or
    /// `None` unless [`SupabaseSigning::Es256`].
    pub fn es256_public_pem(&self) -> Option<String> {
        self.shared.keys.ec.as_ref().map(|k| k.public_pem.clone())
    }

    /// The `kid` of the ES256 key in the JWKS, or `None` unless
    /// [`SupabaseSigning::Es256`].
    pub fn es256_kid(&self) -> Option<String> {
        self.shared.keys.ec.as_ref().map(|k| k.kid.clone())
    }

    /// The RS256 public key as an SPKI PEM (`-----BEGIN PUBLIC KEY-----`), or
    /// `None` unless [`SupabaseSigning::Rs256`]. It is the same fixed test key
    /// for every instance.
    pub fn rs256_public_pem(&self) -> Option<String> {
        self.shared
            .keys
            .rsa
            .as_ref()
            .map(|_| RS256_TEST_PUBLIC_KEY_PEM.to_owned())
    }

    /// The `kid` of the RS256 key in the JWKS (new for each instance), or
    /// `None` unless [`SupabaseSigning::Rs256`].
    pub fn rs256_kid(&self) -> Option<String> {
        self.shared.keys.rsa.as_ref().map(|k| k.kid.clone())
    }

    /// Marks the user with this email confirmed, as clicking the link in the
    /// confirmation mail does (and applies a pending email change to it); the
    /// user's confirmation token hash is then used up. `false` if no user has
    /// this email.
    pub fn confirm_email(&self, email: &str) -> bool {
        let email = normalize_email(email);
        let now = Utc::now();
        let mut db = self.shared.lock();
        if let Some(user) = db.users.values_mut().find(|u| u.email == email) {
            if user.email_confirmed_at.is_none() {
                user.email_confirmed_at = Some(now);
            }
            user.updated_at = now;
            let user_id = user.id;
            db.consume_confirmation_tokens(user_id);
            return true;
        }
        if let Some(user) = db
            .users
            .values_mut()
            .find(|u| u.new_email.as_deref() == Some(email.as_str()))
        {
            user.email = email;
            user.new_email = None;
            user.email_change_sent_at = None;
            user.updated_at = now;
            return true;
        }
        false
    }

    /// Switches autoconfirm (Supabase's "Confirm email" off) on or off.
    pub fn set_autoconfirm(&self, on: bool) {
        self.shared.lock().autoconfirm = on;
    }

    /// The email of the last `POST /auth/v1/recover` that matched a user.
    pub fn last_recovery_email(&self) -> Option<String> {
        self.shared.lock().last_recovery_email.clone()
    }

    /// The recovery token hash made by the last `POST /auth/v1/recover` that
    /// matched a user: what `{{ .TokenHash }}` puts in the recovery email, to
    /// send to `POST /auth/v1/verify` with `"type": "recovery"`. It stays
    /// readable after it is used or its user is deleted; `/verify` then
    /// refuses it.
    pub fn last_recovery_token_hash(&self) -> Option<String> {
        self.shared.lock().last_recovery_token_hash.clone()
    }

    /// The current confirmation token hash of the user with this email
    /// (compared case-insensitively): what `{{ .TokenHash }}` puts in the
    /// confirmation email of a sign-up without autoconfirm (or of a later
    /// `POST /auth/v1/resend`, which replaces it), to send to `POST
    /// /auth/v1/verify` with `"type": "email"` or `"signup"`. `None` if there
    /// is no such user or it has no unused one (confirmed, or autoconfirmed).
    /// An expired hash is still returned; `/verify` refuses it.
    pub fn confirmation_token_hash(&self, email: &str) -> Option<String> {
        let email = normalize_email(email);
        let db = self.shared.lock();
        let user_id = db.user_by_email(&email)?.id;
        db.one_time_tokens
            .iter()
            .find(|(_, t)| {
                t.user_id == user_id && t.kind == OneTimeTokenKind::Confirmation && !t.used
            })
            .map(|(hash, _)| hash.clone())
    }

    /// Every request received so far, oldest first, as `(method, path with
    /// query)`, e.g. `("POST", "/auth/v1/token?grant_type=password")`. Faulted and
    /// refused requests are included.
    pub fn requests(&self) -> Vec<(String, String)> {
        self.shared.lock().requests.clone()
    }

    /// The `X-Forwarded-For` of every request so far, oldest first, with its
    /// path and query: GoTrue counts its per-IP rate limits by it.
    pub fn forwarded_for(&self) -> Vec<(String, Option<String>)> {
        self.shared.lock().forwarded_for.clone()
    }

    /// The `Sb-Forwarded-For` of every request so far, like
    /// [`forwarded_for`](Self::forwarded_for): hosted Supabase counts its
    /// per-IP limits by it when the request carries a secret key.
    pub fn sb_forwarded_for(&self) -> Vec<(String, Option<String>)> {
        self.shared.lock().sb_forwarded_for.clone()
    }

    /// Answers the next `times` requests (any route) with `status` and GoTrue
    /// error JSON: 429 is `over_request_rate_limit` with `Retry-After: 1`, 500
    /// and anything else `unexpected_failure`.
    pub fn push_fault(&self, status: u16, times: u32) {
        if times > 0 {
            self.shared.lock().faults.push(Fault {
                status,
                remaining: times,
            });
        }
    }

    /// Stops the server and waits for it to finish.
    pub async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for FakeSupabase {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

mod http;
mod routes;
#[cfg(test)]
mod tests;

use http::normalize_email;
use routes::router;
