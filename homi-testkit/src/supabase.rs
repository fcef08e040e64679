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

fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/auth/v1/health", get(health))
        .route("/auth/v1/.well-known/jwks.json", get(jwks))
        .route("/auth/v1/signup", post(signup))
        .route("/auth/v1/token", post(token))
        .route("/auth/v1/logout", post(logout))
        .route("/auth/v1/user", get(get_user).put(update_user))
        .route("/auth/v1/recover", post(recover))
        .route("/auth/v1/resend", post(resend))
        .route("/auth/v1/verify", post(verify))
        .route("/auth/v1/admin/users/{id}", delete(admin_delete_user))
        .fallback(not_found)
        .layer(middleware::from_fn_with_state(shared.clone(), gate))
        .with_state(shared)
}

// ------------------------------------------------------------------ helpers

/// GoTrue's error JSON.
fn gotrue_error(status: StatusCode, error_code: &str, msg: impl Into<String>) -> Response {
    (
        status,
        Json(json!({"code": status.as_u16(), "error_code": error_code, "msg": msg.into()})),
    )
        .into_response()
}

fn ts(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Micros, true)
}

fn ts_opt(t: Option<DateTime<Utc>>) -> Value {
    t.map(|t| Value::String(ts(t))).unwrap_or(Value::Null)
}

fn normalize_email(email: &str) -> String {
    email.trim().to_lowercase()
}

fn valid_email(email: &str) -> bool {
    if email.len() > 255 || email.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return false;
    }
    let Some((local, domain)) = email.rsplit_once('@') else {
        return false;
    };
    !local.is_empty()
        && !local.contains('@')
        && domain.contains('.')
        && domain.split('.').all(|label| {
            !label.is_empty() && label.chars().all(|c| c.is_alphanumeric() || c == '-')
        })
}

/// Parses a JSON body the way GoTrue reports failures.
/// The error is boxed: a `Response` is large.
fn parse_body<T: DeserializeOwned>(body: &[u8]) -> Result<T, Box<Response>> {
    let err = |detail: String| {
        gotrue_error(
            StatusCode::BAD_REQUEST,
            "bad_json",
            format!("Could not parse request body as JSON: {detail}"),
        )
    };
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(Box::new(err("EOF".to_owned())));
    }
    serde_json::from_slice(body).map_err(|e| Box::new(err(e.to_string())))
}

fn weak_password() -> Response {
    (
        StatusCode::UNPROCESSABLE_ENTITY,
        Json(json!({
            "code": 422,
            "error_code": "weak_password",
            "msg": format!("Password should be at least {MIN_PASSWORD_LENGTH} characters."),
            "weak_password": {"reasons": ["length"]}
        })),
    )
        .into_response()
}

fn invalid_email() -> Response {
    gotrue_error(
        StatusCode::BAD_REQUEST,
        "validation_failed",
        "Unable to validate email address: invalid format",
    )
}

/// Merges `data` into metadata; a `null` value removes the key (GoTrue's rule).
fn merge_metadata(target: &mut Map<String, Value>, data: Map<String, Value>) {
    for (k, v) in data {
        if v.is_null() {
            target.remove(&k);
        } else {
            target.insert(k, v);
        }
    }
}

fn user_json(u: &User) -> Value {
    let identity = json!({
        "identity_id": u.identity_id.to_string(),
        "id": u.id.to_string(),
        "user_id": u.id.to_string(),
        "identity_data": {
            "email": u.email,
            "email_verified": u.email_confirmed_at.is_some(),
            "phone_verified": false,
            "sub": u.id.to_string(),
        },
        "provider": "email",
        "last_sign_in_at": ts_opt(u.last_sign_in_at),
        "created_at": ts(u.created_at),
        "updated_at": ts(u.updated_at),
        "email": u.email,
    });
    let mut v = json!({
        "id": u.id.to_string(),
        "aud": "authenticated",
        "role": "authenticated",
        "email": u.email,
        "email_confirmed_at": ts_opt(u.email_confirmed_at),
        "phone": "",
        "app_metadata": {"provider": "email", "providers": ["email"]},
        "user_metadata": u.user_metadata,
        "identities": [identity],
        "created_at": ts(u.created_at),
        "updated_at": ts(u.updated_at),
        "is_anonymous": false,
    });
    let optional = [
        ("confirmation_sent_at", u.confirmation_sent_at),
        ("confirmed_at", u.email_confirmed_at),
        ("recovery_sent_at", u.recovery_sent_at),
        ("email_change_sent_at", u.email_change_sent_at),
        ("last_sign_in_at", u.last_sign_in_at),
    ];
    if let Some(obj) = v.as_object_mut() {
        for (key, value) in optional {
            if let Some(t) = value {
                obj.insert(key.to_owned(), Value::String(ts(t)));
            }
        }
        if let Some(new_email) = &u.new_email {
            obj.insert("new_email".to_owned(), Value::String(new_email.clone()));
        }
    }
    v
}

/// Starts a session for the user, signed in by `method` (the `amr` method:
/// `password` or `otp`), and returns GoTrue's session body.
fn new_session(s: &Shared, db: &mut Db, user_id: Uuid, method: &'static str) -> Response {
    let now = Utc::now();
    let session_id = Uuid::new_v4();
    db.sessions.insert(
        session_id,
        Session {
            user_id,
            signed_in_at: now.timestamp(),
            method,
        },
    );
    if let Some(user) = db.users.get_mut(&user_id) {
        user.last_sign_in_at = Some(now);
        user.updated_at = now;
    }
    session_body(s, db, session_id)
}

/// Issues a fresh access and refresh token for an existing session.
fn session_body(s: &Shared, db: &mut Db, session_id: Uuid) -> Response {
    let (Some(session), Some(user)) = (
        db.sessions.get(&session_id),
        db.sessions
            .get(&session_id)
            .and_then(|sess| db.users.get(&sess.user_id)),
    ) else {
        return gotrue_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "unexpected_failure",
            "session vanished",
        );
    };
    let iat = Utc::now().timestamp();
    let expires_in = s.access_token_ttl.as_secs();
    let exp = iat + i64::try_from(expires_in).unwrap_or(i64::MAX / 2);
    let user_json = user_json(user);
    let claims = json!({
        "aud": "authenticated",
        "exp": exp,
        "iat": iat,
        "iss": s.issuer,
        "sub": user.id.to_string(),
        "email": user.email,
        "phone": "",
        "app_metadata": {"provider": "email", "providers": ["email"]},
        "user_metadata": user.user_metadata,
        "role": "authenticated",
        "aal": "aal1",
        "amr": [{"method": session.method, "timestamp": session.signed_in_at}],
        "session_id": session_id.to_string(),
        "is_anonymous": false,
    });
    let access_token = match s.sign(&claims) {
        Ok(t) => t,
        Err(e) => {
            return gotrue_error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "unexpected_failure",
                format!("signing failed: {e}"),
            );
        }
    };
    let refresh_token = refresh_token_string();
    db.refresh_tokens.insert(
        refresh_token.clone(),
        RefreshToken {
            session_id,
            used: false,
        },
    );
    Json(json!({
        "access_token": access_token,
        "token_type": "bearer",
        "expires_in": expires_in,
        "expires_at": exp,
        "refresh_token": refresh_token,
        "user": user_json,
    }))
    .into_response()
}

fn bearer(headers: &HeaderMap) -> Option<String> {
    let value = headers.get("authorization")?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty() && !token.contains(' '))
        .then(|| token.to_owned())
}

fn no_authorization() -> Response {
    gotrue_error(
        StatusCode::UNAUTHORIZED,
        "no_authorization",
        "This endpoint requires a Bearer token",
    )
}

fn bad_jwt(detail: &str) -> Response {
    gotrue_error(
        StatusCode::FORBIDDEN,
        "bad_jwt",
        format!("invalid JWT: unable to parse or verify signature, {detail}"),
    )
}

/// A verified bearer token of a signed-in user.
struct Authed {
    claims: Map<String, Value>,
    user_id: Uuid,
    session_id: Option<Uuid>,
}

/// GoTrue's `requireAuthentication` + loading the user and session. The error
/// is boxed: a `Response` is large.
fn authenticate(s: &Shared, db: &Db, headers: &HeaderMap) -> Result<Authed, Box<Response>> {
    let token = bearer(headers).ok_or_else(|| Box::new(no_authorization()))?;
    let claims = s.verify(&token).map_err(|e| Box::new(bad_jwt(&e)))?;
    let sub = claims.get("sub").and_then(Value::as_str).unwrap_or("");
    if sub.is_empty() {
        return Err(Box::new(gotrue_error(
            StatusCode::FORBIDDEN,
            "bad_jwt",
            "invalid claim: missing sub claim",
        )));
    }
    let Ok(user_id) = Uuid::parse_str(sub) else {
        return Err(Box::new(gotrue_error(
            StatusCode::BAD_REQUEST,
            "bad_jwt",
            "invalid claim: sub claim must be a UUID",
        )));
    };
    if !db.users.contains_key(&user_id) {
        return Err(Box::new(gotrue_error(
            StatusCode::FORBIDDEN,
            "user_not_found",
            "User from sub claim in JWT does not exist",
        )));
    }
    let session_claim = claims
        .get("session_id")
        .and_then(Value::as_str)
        .unwrap_or("");
    let mut session_id = None;
    if !session_claim.is_empty() && session_claim != Uuid::nil().to_string() {
        let Ok(id) = Uuid::parse_str(session_claim) else {
            return Err(Box::new(gotrue_error(
                StatusCode::FORBIDDEN,
                "bad_jwt",
                "invalid claim: session_id claim must be a UUID",
            )));
        };
        match db.sessions.get(&id) {
            Some(session) if session.user_id == user_id => session_id = Some(id),
            _ => {
                return Err(Box::new(gotrue_error(
                    StatusCode::FORBIDDEN,
                    "session_not_found",
                    "Session from session_id claim in JWT does not exist",
                )));
            }
        }
    }
    Ok(Authed {
        claims,
        user_id,
        session_id,
    })
}

// ------------------------------------------------------------------ gateway

/// Logs the request, applies a queued fault, then checks the `apikey` like the
/// Supabase API gateway.
async fn gate(State(s): State<Arc<Shared>>, req: Request, next: Next) -> Response {
    let path = req
        .uri()
        .path_and_query()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| req.uri().path().to_owned());
    s.lock().requests.push((req.method().to_string(), path));
    if let Some(status) = s.take_fault() {
        return fault_response(status);
    }
    let from_header = req
        .headers()
        .get("apikey")
        .map(|v| v.to_str().unwrap_or("").to_owned());
    let from_query = || {
        req.uri().query().and_then(|q| {
            q.split('&')
                .find_map(|pair| pair.strip_prefix("apikey=").map(str::to_owned))
        })
    };
    let Some(key) = from_header.or_else(from_query) else {
        return (
            StatusCode::UNAUTHORIZED,
            Json(json!({
                "message": "No API key found in request",
                "hint": "No `apikey` request header or url param was found."
            })),
        )
            .into_response();
    };
    let key = key.trim();
    if key != s.keys.anon_key && key != s.keys.service_role_key {
        return (
            StatusCode::UNAUTHORIZED,
            Json(json!({
                "message": "Invalid API key",
                "hint": "Double check your Supabase `anon` or `service_role` API key."
            })),
        )
            .into_response();
    }
    next.run(req).await
}

fn fault_response(status: u16) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    match status {
        StatusCode::TOO_MANY_REQUESTS => {
            let mut resp = gotrue_error(
                status,
                "over_request_rate_limit",
                "Request rate limit reached",
            );
            resp.headers_mut()
                .insert("retry-after", HeaderValue::from_static("1"));
            resp
        }
        StatusCode::INTERNAL_SERVER_ERROR => gotrue_error(
            status,
            "unexpected_failure",
            "Unexpected failure, please check server logs for more information",
        ),
        _ => gotrue_error(
            status,
            "unexpected_failure",
            status.canonical_reason().unwrap_or("Unexpected failure"),
        ),
    }
}

async fn not_found() -> Response {
    gotrue_error(StatusCode::NOT_FOUND, "not_found", "Not Found")
}

// ------------------------------------------------------------------- routes

async fn health() -> Json<Value> {
    Json(json!({
        "version": GOTRUE_VERSION,
        "name": "GoTrue",
        "description": "GoTrue is a user registration and authentication API"
    }))
}

async fn jwks(State(s): State<Arc<Shared>>) -> Json<Value> {
    let ec = s.keys.ec.iter().map(|k| {
        json!({
            "kty": "EC",
            "crv": "P-256",
            "x": k.x,
            "y": k.y,
            "alg": "ES256",
            "use": "sig",
            "kid": k.kid,
            "key_ops": ["verify"],
        })
    });
    let rsa = s.keys.rsa.iter().map(|k| {
        json!({
            "kty": "RSA",
            "n": RS256_TEST_MODULUS,
            "e": RS256_TEST_EXPONENT,
            "alg": "RS256",
            "use": "sig",
            "kid": k.kid,
            "key_ops": ["verify"],
        })
    });
    let keys: Vec<Value> = ec.chain(rsa).collect();
    Json(json!({ "keys": keys }))
}

#[derive(Deserialize)]
struct SignupBody {
    email: Option<String>,
    password: Option<String>,
    data: Option<Map<String, Value>>,
}

async fn signup(State(s): State<Arc<Shared>>, body: Bytes) -> Response {
    let body: SignupBody = match parse_body(&body) {
        Ok(b) => b,
        Err(resp) => return *resp,
    };
    let password = body.password.unwrap_or_default();
    if password.is_empty() {
        return gotrue_error(
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
            "Signup requires a valid password",
        );
    }
    if password.chars().count() < MIN_PASSWORD_LENGTH {
        return weak_password();
    }
    let email = normalize_email(body.email.as_deref().unwrap_or(""));
    if email.is_empty() {
        return gotrue_error(
            StatusCode::BAD_REQUEST,
            "validation_failed",
            "An email address is required",
        );
    }
    if !valid_email(&email) {
        return invalid_email();
    }
    let data = body.data.unwrap_or_default();
    let now = Utc::now();
    let mut db = s.lock();
    let autoconfirm = db.autoconfirm;
    let existing = db
        .user_by_email(&email)
        .map(|u| (u.id, u.email_confirmed_at.is_some()));
    let user_id = match existing {
        Some((_, true)) if autoconfirm => {
            return gotrue_error(
                StatusCode::UNPROCESSABLE_ENTITY,
                "user_already_exists",
                "User already registered",
            );
        }
        Some((_, true)) => {
            // GoTrue hides that the email is taken: a look-alike user with a
            // fresh id, no identities and no session.
            return Json(json!({
                "id": Uuid::new_v4().to_string(),
                "aud": "authenticated",
                "role": "",
                "email": email,
                "phone": "",
                "confirmation_sent_at": ts(now),
                "app_metadata": {"provider": "email", "providers": ["email"]},
                "user_metadata": data,
                "identities": [],
                "created_at": ts(now),
                "updated_at": ts(now),
                "is_anonymous": false,
            }))
            .into_response();
        }
        Some((id, false)) => {
            // Signing up again before confirming: new password and metadata,
            // the confirmation is sent again.
            if let Some(user) = db.users.get_mut(&id) {
                user.password = password;
                merge_metadata(&mut user.user_metadata, data);
                user.updated_at = now;
            }
            id
        }
        None => {
            let id = Uuid::new_v4();
            let mut user_metadata = Map::new();
            merge_metadata(&mut user_metadata, data);
            db.users.insert(
                id,
                User {
                    id,
                    identity_id: Uuid::new_v4(),
                    email: email.clone(),
                    password,
                    new_email: None,
                    email_confirmed_at: None,
                    confirmation_sent_at: None,
                    email_change_sent_at: None,
                    recovery_sent_at: None,
                    last_sign_in_at: None,
                    user_metadata,
                    created_at: now,
                    updated_at: now,
                },
            );
            id
        }
    };
    if autoconfirm {
        if let Some(user) = db.users.get_mut(&user_id) {
            user.email_confirmed_at = Some(now);
        }
        db.consume_confirmation_tokens(user_id);
        return new_session(&s, &mut db, user_id, "password");
    }
    // The confirmation email's `{{ .TokenHash }}`.
    db.issue_one_time_token(user_id, OneTimeTokenKind::Confirmation, now);
    match db.users.get_mut(&user_id) {
        Some(user) => {
            user.confirmation_sent_at = Some(now);
            Json(user_json(user)).into_response()
        }
        None => gotrue_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "unexpected_failure",
            "user vanished",
        ),
    }
}

#[derive(Deserialize)]
struct PasswordGrant {
    email: Option<String>,
    password: Option<String>,
}

#[derive(Deserialize)]
struct RefreshGrant {
    refresh_token: Option<String>,
}

async fn token(
    State(s): State<Arc<Shared>>,
    Query(query): Query<HashMap<String, String>>,
    body: Bytes,
) -> Response {
    match query.get("grant_type").map(String::as_str) {
        Some("password") => password_grant(&s, &body),
        Some("refresh_token") => refresh_grant(&s, &body),
        _ => gotrue_error(
            StatusCode::BAD_REQUEST,
            "validation_failed",
            "unsupported_grant_type",
        ),
    }
}

fn invalid_credentials() -> Response {
    gotrue_error(
        StatusCode::BAD_REQUEST,
        "invalid_credentials",
        "Invalid login credentials",
    )
}

fn password_grant(s: &Shared, body: &[u8]) -> Response {
    let body: PasswordGrant = match parse_body(body) {
        Ok(b) => b,
        Err(resp) => return *resp,
    };
    let email = normalize_email(body.email.as_deref().unwrap_or(""));
    if email.is_empty() {
        return gotrue_error(
            StatusCode::BAD_REQUEST,
            "validation_failed",
            "missing email or phone",
        );
    }
    let password = body.password.unwrap_or_default();
    let mut db = s.lock();
    let Some(user) = db.user_by_email(&email) else {
        return invalid_credentials();
    };
    if password.is_empty() || user.password != password {
        return invalid_credentials();
    }
    if user.email_confirmed_at.is_none() {
        return gotrue_error(
            StatusCode::BAD_REQUEST,
            "email_not_confirmed",
            "Email not confirmed",
        );
    }
    let user_id = user.id;
    new_session(s, &mut db, user_id, "password")
}

fn refresh_grant(s: &Shared, body: &[u8]) -> Response {
    let body: RefreshGrant = match parse_body(body) {
        Ok(b) => b,
        Err(resp) => return *resp,
    };
    let presented = body.refresh_token.unwrap_or_default();
    if presented.is_empty() {
        return gotrue_error(
            StatusCode::BAD_REQUEST,
            "validation_failed",
            "refresh_token required",
        );
    }
    let mut db = s.lock();
    let Some(entry) = db.refresh_tokens.get_mut(&presented) else {
        return gotrue_error(
            StatusCode::BAD_REQUEST,
            "refresh_token_not_found",
            "Invalid Refresh Token: Refresh Token Not Found",
        );
    };
    let session_id = entry.session_id;
    if entry.used {
        // Reuse of a rotated token: someone else may hold the family. Revoke it.
        db.revoke_session(session_id);
        return gotrue_error(
            StatusCode::BAD_REQUEST,
            "refresh_token_already_used",
            "Invalid Refresh Token: Already Used",
        );
    }
    entry.used = true;
    if !db.sessions.contains_key(&session_id) {
        return gotrue_error(
            StatusCode::BAD_REQUEST,
            "refresh_token_not_found",
            "Invalid Refresh Token: Refresh Token Not Found",
        );
    }
    session_body(s, &mut db, session_id)
}

async fn logout(
    State(s): State<Arc<Shared>>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    let scope = query.get("scope").map(String::as_str).unwrap_or("global");
    if !matches!(scope, "global" | "local" | "others") {
        return gotrue_error(
            StatusCode::BAD_REQUEST,
            "validation_failed",
            format!("Unsupported logout scope {scope:?}"),
        );
    }
    let mut db = s.lock();
    let authed = match authenticate(&s, &db, &headers) {
        Ok(a) => a,
        Err(resp) => return *resp,
    };
    match (scope, authed.session_id) {
        ("local", Some(session_id)) => db.revoke_session(session_id),
        ("others", session_id) => db.revoke_user_sessions(authed.user_id, session_id),
        _ => db.revoke_user_sessions(authed.user_id, None),
    }
    StatusCode::NO_CONTENT.into_response()
}

async fn get_user(State(s): State<Arc<Shared>>, headers: HeaderMap) -> Response {
    let db = s.lock();
    let authed = match authenticate(&s, &db, &headers) {
        Ok(a) => a,
        Err(resp) => return *resp,
    };
    let aud_matches = match authed.claims.get("aud") {
        Some(Value::String(aud)) => aud == "authenticated",
        Some(Value::Array(list)) => list.first().and_then(Value::as_str) == Some("authenticated"),
        _ => false,
    };
    if !aud_matches {
        return gotrue_error(
            StatusCode::FORBIDDEN,
            "unexpected_audience",
            "Token audience doesn't match request audience",
        );
    }
    match db.users.get(&authed.user_id) {
        Some(user) => Json(user_json(user)).into_response(),
        None => gotrue_error(
            StatusCode::FORBIDDEN,
            "user_not_found",
            "User from sub claim in JWT does not exist",
        ),
    }
}

#[derive(Deserialize)]
struct UpdateUserBody {
    email: Option<String>,
    password: Option<String>,
    data: Option<Map<String, Value>>,
}

async fn update_user(State(s): State<Arc<Shared>>, headers: HeaderMap, body: Bytes) -> Response {
    let mut db = s.lock();
    let authed = match authenticate(&s, &db, &headers) {
        Ok(a) => a,
        Err(resp) => return *resp,
    };
    let body: UpdateUserBody = match parse_body(&body) {
        Ok(b) => b,
        Err(resp) => return *resp,
    };
    let new_email = match body.email.as_deref().map(normalize_email) {
        Some(e) if !valid_email(&e) => return invalid_email(),
        other => other,
    };
    if let Some(email) = &new_email
        && db
            .users
            .values()
            .any(|u| u.id != authed.user_id && u.email == *email)
    {
        return gotrue_error(
            StatusCode::UNPROCESSABLE_ENTITY,
            "email_exists",
            "A user with this email address has already been registered",
        );
    }
    let autoconfirm = db.autoconfirm;
    let Some(user) = db.users.get_mut(&authed.user_id) else {
        return gotrue_error(
            StatusCode::FORBIDDEN,
            "user_not_found",
            "User from sub claim in JWT does not exist",
        );
    };
    let mut password_changed = false;
    if let Some(password) = body.password {
        if password.chars().count() < MIN_PASSWORD_LENGTH {
            return weak_password();
        }
        if password == user.password {
            return gotrue_error(
                StatusCode::UNPROCESSABLE_ENTITY,
                "same_password",
                "New password should be different from the old password.",
            );
        }
        user.password = password;
        password_changed = true;
    }
    let now = Utc::now();
    if let Some(data) = body.data {
        merge_metadata(&mut user.user_metadata, data);
    }
    if let Some(email) = new_email
        && email != user.email
    {
        if autoconfirm {
            user.email = email;
            user.new_email = None;
        } else {
            user.new_email = Some(email);
            user.email_change_sent_at = Some(now);
        }
    }
    user.updated_at = now;
    let answer = user_json(user);
    if password_changed {
        // A new password signs out the user's other sessions.
        db.revoke_user_sessions(authed.user_id, authed.session_id);
    }
    Json(answer).into_response()
}

#[derive(Deserialize)]
struct RecoverBody {
    email: Option<String>,
}

async fn recover(State(s): State<Arc<Shared>>, body: Bytes) -> Response {
    let body: RecoverBody = match parse_body(&body) {
        Ok(b) => b,
        Err(resp) => return *resp,
    };
    let email = normalize_email(body.email.as_deref().unwrap_or(""));
    if !valid_email(&email) {
        return invalid_email();
    }
    let mut db = s.lock();
    let now = Utc::now();
    if let Some(user) = db.users.values_mut().find(|u| u.email == email) {
        user.recovery_sent_at = Some(now);
        let user_id = user.id;
        // The recovery email's `{{ .TokenHash }}`.
        let hash = db.issue_one_time_token(user_id, OneTimeTokenKind::Recovery, now);
        db.last_recovery_email = Some(email);
        db.last_recovery_token_hash = Some(hash);
    }
    Json(json!({})).into_response()
}

#[derive(Deserialize)]
struct ResendBody {
    #[serde(rename = "type")]
    kind: Option<String>,
    email: Option<String>,
}

/// `POST /resend`: sends the sign-up confirmation (`"type": "signup"`) or the
/// email-change mail (`"email_change"`) again. For an unconfirmed user a
/// `signup` resend makes a fresh confirmation token hash, replacing the old
/// one; an `email_change` resend only stamps `email_change_sent_at` of a user
/// with a pending change (this fake makes no email-change hashes). An unknown
/// email, a confirmed user or no pending change get the same `200 {}` and
/// nothing happens, so the answer tells nothing about the account. The phone
/// types (`sms`, `phone_change`) are not served.
async fn resend(State(s): State<Arc<Shared>>, body: Bytes) -> Response {
    let body: ResendBody = match parse_body(&body) {
        Ok(b) => b,
        Err(resp) => return *resp,
    };
    let kind = body.kind.unwrap_or_default();
    if !matches!(kind.as_str(), "signup" | "email_change") {
        return gotrue_error(
            StatusCode::BAD_REQUEST,
            "validation_failed",
            "Unsupported verification type",
        );
    }
    let email = normalize_email(body.email.as_deref().unwrap_or(""));
    if email.is_empty() {
        return gotrue_error(
            StatusCode::BAD_REQUEST,
            "validation_failed",
            "Missing email address",
        );
    }
    if !valid_email(&email) {
        return invalid_email();
    }
    let now = Utc::now();
    let mut db = s.lock();
    let Some(user) = db.users.values_mut().find(|u| u.email == email) else {
        return Json(json!({})).into_response();
    };
    if kind == "email_change" {
        if user.new_email.is_some() {
            user.email_change_sent_at = Some(now);
        }
        return Json(json!({})).into_response();
    }
    if user.email_confirmed_at.is_some() {
        return Json(json!({})).into_response();
    }
    user.confirmation_sent_at = Some(now);
    let user_id = user.id;
    // The new confirmation email's `{{ .TokenHash }}`.
    db.issue_one_time_token(user_id, OneTimeTokenKind::Confirmation, now);
    Json(json!({})).into_response()
}

#[derive(Deserialize)]
struct VerifyBody {
    #[serde(rename = "type")]
    kind: Option<String>,
    token_hash: Option<String>,
}

fn link_invalid() -> Response {
    gotrue_error(
        StatusCode::FORBIDDEN,
        "otp_expired",
        "Email link is invalid or has expired",
    )
}

/// `POST /verify` with a token hash from an email link. `recovery` takes
/// recovery hashes, `signup` and `email` confirmation hashes; `invite` and
/// `magiclink` are accepted types, but this fake makes no such hashes. The
/// six-digit `token` + `email` form is not served.
async fn verify(State(s): State<Arc<Shared>>, body: Bytes) -> Response {
    let body: VerifyBody = match parse_body(&body) {
        Ok(b) => b,
        Err(resp) => return *resp,
    };
    let kind = body.kind.unwrap_or_default();
    let missing_type = || {
        gotrue_error(
            StatusCode::BAD_REQUEST,
            "validation_failed",
            "Verify requires a verification type",
        )
    };
    if kind.is_empty() {
        return missing_type();
    }
    let token_hash = body.token_hash.unwrap_or_default();
    if token_hash.is_empty() {
        return gotrue_error(
            StatusCode::BAD_REQUEST,
            "validation_failed",
            "Verify requires either a token or a token hash",
        );
    }
    let wanted = match kind.as_str() {
        "recovery" => Some(OneTimeTokenKind::Recovery),
        "signup" | "email" => Some(OneTimeTokenKind::Confirmation),
        "invite" | "magiclink" => None,
        _ => return missing_type(),
    };
    let now = Utc::now();
    let mut db = s.lock();
    let user_id = match db.one_time_tokens.get(&token_hash) {
        Some(t) if !t.used && Some(t.kind) == wanted && !t.expired(now) => t.user_id,
        _ => return link_invalid(),
    };
    let Some(user) = db.users.get_mut(&user_id) else {
        return link_invalid();
    };
    // Both links prove the address.
    if user.email_confirmed_at.is_none() {
        user.email_confirmed_at = Some(now);
    }
    user.updated_at = now;
    if let Some(token) = db.one_time_tokens.get_mut(&token_hash) {
        token.used = true;
    }
    db.consume_confirmation_tokens(user_id);
    new_session(&s, &mut db, user_id, "otp")
}

async fn admin_delete_user(
    State(s): State<Arc<Shared>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    let Some(token) = bearer(&headers) else {
        return no_authorization();
    };
    let claims = match s.verify(&token) {
        Ok(c) => c,
        Err(e) => return bad_jwt(&e),
    };
    let role = claims.get("role").and_then(Value::as_str).unwrap_or("");
    if !matches!(role, "service_role" | "supabase_admin") {
        return gotrue_error(StatusCode::FORBIDDEN, "not_admin", "User not allowed");
    }
    let Ok(user_id) = Uuid::parse_str(&id) else {
        return gotrue_error(
            StatusCode::NOT_FOUND,
            "validation_failed",
            "user_id must be an UUID",
        );
    };
    let mut db = s.lock();
    if db.users.remove(&user_id).is_none() {
        return gotrue_error(StatusCode::NOT_FOUND, "user_not_found", "User not found");
    }
    db.revoke_user_sessions(user_id, None);
    db.one_time_tokens.retain(|_, t| t.user_id != user_id);
    Json(json!({})).into_response()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    struct Client {
        http: reqwest::Client,
        base: String,
        key: String,
    }

    impl Client {
        fn new(fake: &FakeSupabase) -> Self {
            Self {
                http: reqwest::Client::new(),
                base: format!("{}/auth/v1", fake.url()),
                key: fake.anon_key(),
            }
        }

        async fn call(
            &self,
            method: reqwest::Method,
            path: &str,
            bearer: Option<&str>,
            body: Option<Value>,
        ) -> (u16, Value) {
            let mut req = self
                .http
                .request(method, format!("{}{path}", self.base))
                .header("apikey", &self.key);
            if let Some(t) = bearer {
                req = req.bearer_auth(t);
            }
            if let Some(b) = body {
                req = req.json(&b);
            }
            let resp = req.send().await.unwrap();
            let status = resp.status().as_u16();
            let text = resp.text().await.unwrap();
            let value = if text.is_empty() {
                Value::Null
            } else {
                serde_json::from_str(&text).unwrap()
            };
            (status, value)
        }

        async fn post(&self, path: &str, body: Value) -> (u16, Value) {
            self.call(reqwest::Method::POST, path, None, Some(body))
                .await
        }

        async fn get_user(&self, token: &str) -> (u16, Value) {
            self.call(reqwest::Method::GET, "/user", Some(token), None)
                .await
        }
    }

    fn str_of<'a>(v: &'a Value, key: &str) -> &'a str {
        v[key]
            .as_str()
            .unwrap_or_else(|| panic!("{key} missing in {v}"))
    }

    #[tokio::test]
    async fn session_lifecycle_with_rotation_reuse_detection_and_logout() {
        let fake = FakeSupabase::start().await.unwrap();
        let c = Client::new(&fake);
        let creds = json!({"email": "Ann@Example.com", "password": "correct horse"});

        let (status, signup) = c
            .post(
                "/signup",
                json!({"email": "ann@example.com", "password": "correct horse", "data": {"name": "Ann"}}),
            )
            .await;
        assert_eq!(status, 200, "{signup}");
        assert_eq!(signup["token_type"], "bearer");
        assert_eq!(signup["expires_in"], 3600);
        assert_eq!(signup["user"]["user_metadata"]["name"], "Ann");
        assert!(signup["user"]["email_confirmed_at"].is_string());
        assert!(str_of(&signup, "refresh_token").len() >= 12);

        // The HS256 token verifies with the secret and audience "authenticated".
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_audience(&["authenticated"]);
        validation.set_issuer(&[format!("{}/auth/v1", fake.url())]);
        let data = jsonwebtoken::decode::<Value>(
            str_of(&signup, "access_token"),
            &DecodingKey::from_secret(fake.jwt_secret().as_bytes()),
            &validation,
        )
        .unwrap();
        assert_eq!(data.claims["sub"], signup["user"]["id"]);
        assert_eq!(data.claims["role"], "authenticated");
        assert_eq!(data.claims["email"], "ann@example.com");
        assert!(data.claims["session_id"].is_string());

        let (status, again) = c.post("/signup", creds.clone()).await;
        assert_eq!(
            (status, again["error_code"].as_str()),
            (422, Some("user_already_exists"))
        );
        let (status, weak) = c
            .post(
                "/signup",
                json!({"email": "b@example.com", "password": "12345"}),
            )
            .await;
        assert_eq!(status, 422);
        assert_eq!(weak["weak_password"]["reasons"], json!(["length"]));
        let (status, bad) = c
            .post(
                "/signup",
                json!({"email": "not-an-email", "password": "123456"}),
            )
            .await;
        assert_eq!(
            (status, bad["error_code"].as_str()),
            (400, Some("validation_failed"))
        );

        let (status, wrong) = c
            .post(
                "/token?grant_type=password",
                json!({"email": "ann@example.com", "password": "wrong password"}),
            )
            .await;
        assert_eq!(
            (status, wrong["msg"].as_str()),
            (400, Some("Invalid login credentials"))
        );
        let (status, grant) = c.post("/token?grant_type=magic", json!({})).await;
        assert_eq!(
            (status, grant["msg"].as_str()),
            (400, Some("unsupported_grant_type"))
        );

        // Session A: sign in, rotate, reuse the old refresh token.
        let (status, a) = c.post("/token?grant_type=password", creds.clone()).await;
        assert_eq!(status, 200, "{a}");
        let (status, user) = c.get_user(str_of(&a, "access_token")).await;
        assert_eq!(status, 200, "{user}");
        assert_eq!(user["email"], "ann@example.com");
        assert_eq!(user["identities"][0]["provider"], "email");
        let (status, a2) = c
            .post(
                "/token?grant_type=refresh_token",
                json!({"refresh_token": a["refresh_token"]}),
            )
            .await;
        assert_eq!(status, 200, "{a2}");
        assert_ne!(a2["refresh_token"], a["refresh_token"]);
        assert_eq!(c.get_user(str_of(&a2, "access_token")).await.0, 200);
        let (status, reused) = c
            .post(
                "/token?grant_type=refresh_token",
                json!({"refresh_token": a["refresh_token"]}),
            )
            .await;
        assert_eq!(
            (status, reused["error_code"].as_str()),
            (400, Some("refresh_token_already_used"))
        );
        let (status, revoked) = c.get_user(str_of(&a2, "access_token")).await;
        assert_eq!(
            (status, revoked["error_code"].as_str()),
            (403, Some("session_not_found")),
            "reuse revoked the session"
        );
        let (status, gone) = c
            .post(
                "/token?grant_type=refresh_token",
                json!({"refresh_token": a2["refresh_token"]}),
            )
            .await;
        assert_eq!(
            (status, gone["error_code"].as_str()),
            (400, Some("refresh_token_not_found"))
        );

        // Session B: update the user, log out, then the token is refused.
        let (_, b) = c.post("/token?grant_type=password", creds.clone()).await;
        let b_token = str_of(&b, "access_token").to_owned();
        let (status, updated) = c
            .call(
                reqwest::Method::PUT,
                "/user",
                Some(&b_token),
                Some(json!({"data": {"plan": "pro", "name": null}})),
            )
            .await;
        assert_eq!(status, 200, "{updated}");
        assert_eq!(updated["user_metadata"], json!({"plan": "pro"}));
        let (status, _) = c
            .call(
                reqwest::Method::PUT,
                "/user",
                Some(&b_token),
                Some(json!({"password": "123"})),
            )
            .await;
        assert_eq!(status, 422);
        let (status, body) = c
            .call(
                reqwest::Method::POST,
                "/logout?scope=local",
                Some(&b_token),
                None,
            )
            .await;
        assert_eq!((status, body), (204, Value::Null));
        let (status, after) = c.get_user(&b_token).await;
        assert_eq!(
            (status, after["error_code"].as_str()),
            (403, Some("session_not_found"))
        );
        let (status, _) = c
            .post(
                "/token?grant_type=refresh_token",
                json!({"refresh_token": b["refresh_token"]}),
            )
            .await;
        assert_eq!(status, 400);

        // Bearer errors.
        let (status, none) = c.call(reqwest::Method::GET, "/user", None, None).await;
        assert_eq!(
            (status, none["error_code"].as_str()),
            (401, Some("no_authorization"))
        );
        let (status, junk) = c.get_user("not.a.jwt").await;
        assert_eq!(
            (status, junk["error_code"].as_str()),
            (403, Some("bad_jwt"))
        );
        let now = Utc::now().timestamp();
        let expired = fake.sign(&json!({
            "aud": "authenticated", "sub": signup["user"]["id"], "role": "authenticated",
            "iat": now - 7200, "exp": now - 3600,
        }));
        let (status, exp) = c.get_user(&expired).await;
        assert_eq!((status, exp["error_code"].as_str()), (403, Some("bad_jwt")));
        assert!(str_of(&exp, "msg").contains("expired"), "{exp}");

        // Malformed JSON.
        let resp = reqwest::Client::new()
            .post(format!("{}/signup", c.base))
            .header("apikey", fake.anon_key())
            .header("content-type", "application/json")
            .body("{\"email\": ")
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), 400);
        let v: Value = resp.json().await.unwrap();
        assert_eq!(v["error_code"], "bad_json");
        assert!(str_of(&v, "msg").starts_with("Could not parse request body as JSON: "));

        let log = fake.requests();
        assert_eq!(log[0], ("POST".to_owned(), "/auth/v1/signup".to_owned()));
        assert!(log.contains(&("POST".to_owned(), "/auth/v1/logout?scope=local".to_owned())));
        fake.stop().await;
    }

    #[tokio::test]
    async fn api_key_is_required_and_faults_are_served() {
        let fake = FakeSupabase::start().await.unwrap();
        let http = reqwest::Client::new();
        let health = format!("{}/auth/v1/health", fake.url());

        let resp = http.get(&health).send().await.unwrap();
        assert_eq!(resp.status().as_u16(), 401);
        let v: Value = resp.json().await.unwrap();
        assert_eq!(v["message"], "No API key found in request");
        assert_eq!(
            v["hint"],
            "No `apikey` request header or url param was found."
        );

        let resp = http
            .get(&health)
            .header("apikey", "nope")
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), 401);
        let v: Value = resp.json().await.unwrap();
        assert_eq!(v["message"], "Invalid API key");

        let resp = http
            .get(format!("{health}?apikey={}", fake.service_role_key()))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), 200);
        let v: Value = resp.json().await.unwrap();
        assert_eq!(v["name"], "GoTrue");

        fake.push_fault(429, 2);
        fake.push_fault(500, 1);
        for expected in [429, 429, 500, 200] {
            let resp = http
                .get(&health)
                .header("apikey", fake.anon_key())
                .send()
                .await
                .unwrap();
            assert_eq!(resp.status().as_u16(), expected);
            if expected == 429 {
                assert_eq!(resp.headers()["retry-after"], "1");
                let v: Value = resp.json().await.unwrap();
                assert_eq!(v["error_code"], "over_request_rate_limit");
            } else if expected == 500 {
                let v: Value = resp.json().await.unwrap();
                assert_eq!(v["error_code"], "unexpected_failure");
            }
        }
        let resp = http
            .get(format!("{}/auth/v1/.well-known/jwks.json", fake.url()))
            .header("apikey", fake.anon_key())
            .send()
            .await
            .unwrap();
        let v: Value = resp.json().await.unwrap();
        assert_eq!(v, json!({"keys": []}));
        assert_eq!(fake.requests().len(), 8);
        assert!(fake.jwt_secret().len() >= 32);
        assert!(fake.es256_public_pem().is_none());
        assert!(fake.rs256_public_pem().is_none());
        assert!(fake.rs256_kid().is_none());
    }

    #[tokio::test]
    async fn es256_tokens_verify_with_the_served_jwks_only() {
        let fake = FakeSupabase::start_with(FakeSupabaseOptions {
            signing: SupabaseSigning::Es256,
            access_token_ttl: Duration::from_secs(60),
            ..FakeSupabaseOptions::default()
        })
        .await
        .unwrap();
        let c = Client::new(&fake);
        let (status, session) = c
            .post(
                "/signup",
                json!({"email": "ed@example.com", "password": "secret-ed"}),
            )
            .await;
        assert_eq!(status, 200, "{session}");
        assert_eq!(session["expires_in"], 60);
        let token = str_of(&session, "access_token");

        let (_, jwks) = c
            .call(reqwest::Method::GET, "/.well-known/jwks.json", None, None)
            .await;
        let set: jsonwebtoken::jwk::JwkSet = serde_json::from_value(jwks.clone()).unwrap();
        let header = jsonwebtoken::decode_header(token).unwrap();
        assert_eq!(header.alg, Algorithm::ES256);
        assert_eq!(header.kid, fake.es256_kid());
        let jwk = set.find(header.kid.as_deref().unwrap()).unwrap();
        let key = DecodingKey::from_jwk(jwk).unwrap();
        let mut validation = Validation::new(Algorithm::ES256);
        validation.set_audience(&["authenticated"]);
        let data = jsonwebtoken::decode::<Value>(token, &key, &validation).unwrap();
        assert_eq!(data.claims["email"], "ed@example.com");
        assert_eq!(jwks["keys"][0]["key_ops"], json!(["verify"]));

        assert!(fake.rs256_public_pem().is_none());

        // The same key from the PEM.
        let pem = fake.es256_public_pem().unwrap();
        let from_pem = DecodingKey::from_ec_pem(pem.as_bytes()).unwrap();
        jsonwebtoken::decode::<Value>(token, &from_pem, &validation).unwrap();

        // HS256 signed with the public key bytes (algorithm confusion) is refused.
        let claims = data.claims.clone();
        let mut confused = Header::new(Algorithm::HS256);
        confused.kid = fake.es256_kid();
        for header in [confused, Header::new(Algorithm::HS256)] {
            let forged =
                jsonwebtoken::encode(&header, &claims, &EncodingKey::from_secret(pem.as_bytes()))
                    .unwrap();
            let (status, v) = c.get_user(&forged).await;
            assert_eq!(
                (status, v["error_code"].as_str()),
                (403, Some("bad_jwt")),
                "{v}"
            );
        }

        // Wrong audience, signed with the real key.
        let mut wrong_aud = claims.clone();
        wrong_aud["aud"] = json!("someone-else");
        let (status, v) = c.get_user(&fake.sign(&wrong_aud)).await;
        assert_eq!(
            (status, v["error_code"].as_str()),
            (403, Some("unexpected_audience"))
        );
        assert_eq!(c.get_user(&fake.sign(&claims)).await.0, 200);
    }

    #[tokio::test]
    async fn rs256_tokens_verify_with_the_served_jwks() {
        let fake = FakeSupabase::start_with(FakeSupabaseOptions {
            signing: SupabaseSigning::Rs256,
            ..FakeSupabaseOptions::default()
        })
        .await
        .unwrap();
        assert!(fake.es256_public_pem().is_none());
        assert!(fake.es256_kid().is_none());
        let c = Client::new(&fake);
        let (status, session) = c
            .post(
                "/signup",
                json!({"email": "rae@example.com", "password": "secret-rae"}),
            )
            .await;
        assert_eq!(status, 200, "{session}");
        let token = str_of(&session, "access_token");
        let header = jsonwebtoken::decode_header(token).unwrap();
        assert_eq!(header.alg, Algorithm::RS256);
        assert_eq!(header.kid, fake.rs256_kid());

        // The served JWKS: one RSA key, and it verifies the token.
        let (status, jwks) = c
            .call(reqwest::Method::GET, "/.well-known/jwks.json", None, None)
            .await;
        assert_eq!(status, 200, "{jwks}");
        assert_eq!(jwks["keys"].as_array().map(Vec::len), Some(1));
        let served = &jwks["keys"][0];
        assert_eq!(served["kty"], "RSA");
        assert_eq!(served["alg"], "RS256");
        assert_eq!(served["use"], "sig");
        assert_eq!(served["e"], "AQAB");
        assert_eq!(served["kid"].as_str(), fake.rs256_kid().as_deref());
        let n = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(str_of(served, "n"))
            .unwrap();
        assert_eq!(n.len(), 256, "a 2048-bit modulus");
        let set: jsonwebtoken::jwk::JwkSet = serde_json::from_value(jwks.clone()).unwrap();
        let jwk = set.find(header.kid.as_deref().unwrap()).unwrap();
        let key = DecodingKey::from_jwk(jwk).unwrap();
        let mut validation = Validation::new(Algorithm::RS256);
        validation.set_audience(&["authenticated"]);
        validation.set_issuer(&[format!("{}/auth/v1", fake.url())]);
        let data = jsonwebtoken::decode::<Value>(token, &key, &validation).unwrap();
        assert_eq!(data.claims["email"], "rae@example.com");
        assert_eq!(data.claims["sub"], session["user"]["id"]);

        // The same key from the PEM; the fake accepts its own tokens.
        let pem = fake.rs256_public_pem().unwrap();
        assert!(pem.starts_with("-----BEGIN PUBLIC KEY-----\n"));
        let from_pem = DecodingKey::from_rsa_pem(pem.as_bytes()).unwrap();
        jsonwebtoken::decode::<Value>(token, &from_pem, &validation).unwrap();
        assert_eq!(c.get_user(token).await.0, 200);

        // `sign` signs RS256 with the kid too.
        let claims = data.claims.clone();
        let forged = fake.sign(&claims);
        let forged_header = jsonwebtoken::decode_header(&forged).unwrap();
        assert_eq!(
            (forged_header.alg, forged_header.kid),
            (Algorithm::RS256, fake.rs256_kid())
        );
        jsonwebtoken::decode::<Value>(&forged, &key, &validation).unwrap();
        assert_eq!(c.get_user(&forged).await.0, 200);

        // HS256 with the JWT secret and no kid is still accepted; HS256 under
        // the RSA kid, or signed with the public key (algorithm confusion), is not.
        let legacy = jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &EncodingKey::from_secret(fake.jwt_secret().as_bytes()),
        )
        .unwrap();
        assert_eq!(c.get_user(&legacy).await.0, 200);
        let mut confused = Header::new(Algorithm::HS256);
        confused.kid = fake.rs256_kid();
        for (header, secret) in [
            (confused.clone(), fake.jwt_secret()),
            (confused, pem.clone()),
            (Header::new(Algorithm::HS256), pem.clone()),
        ] {
            let bad = jsonwebtoken::encode(
                &header,
                &claims,
                &EncodingKey::from_secret(secret.as_bytes()),
            )
            .unwrap();
            let (status, v) = c.get_user(&bad).await;
            assert_eq!(
                (status, v["error_code"].as_str()),
                (403, Some("bad_jwt")),
                "{v}"
            );
        }
        fake.stop().await;
    }

    #[tokio::test]
    async fn resend_replaces_the_confirmation_token_hash() {
        let fake = FakeSupabase::start_with(FakeSupabaseOptions {
            autoconfirm: false,
            ..FakeSupabaseOptions::default()
        })
        .await
        .unwrap();
        let c = Client::new(&fake);
        let creds = json!({"email": "gil@example.com", "password": "password-gil"});
        let (status, user) = c.post("/signup", creds.clone()).await;
        assert_eq!(status, 200, "{user}");
        let sent_first = str_of(&user, "confirmation_sent_at").to_owned();
        let old = fake.confirmation_token_hash("gil@example.com").unwrap();

        // The gateway wants an apikey here too.
        let resp = reqwest::Client::new()
            .post(format!("{}/resend", c.base))
            .json(&json!({"type": "signup", "email": "gil@example.com"}))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), 401);
        assert_eq!(
            fake.confirmation_token_hash("gil@example.com"),
            Some(old.clone())
        );

        assert_eq!(
            c.post(
                "/resend",
                json!({"type": "signup", "email": " Gil@Example.com "})
            )
            .await,
            (200, json!({}))
        );
        let new = fake.confirmation_token_hash("gil@example.com").unwrap();
        assert_ne!(old, new);
        assert_eq!(new.len(), 56);
        {
            let db = fake.shared.lock();
            let gil = db.user_by_email("gil@example.com").unwrap();
            assert!(ts_opt(gil.confirmation_sent_at).as_str() >= Some(sent_first.as_str()));
            assert!(gil.email_confirmed_at.is_none());
        }
        assert_eq!(
            c.post("/verify", json!({"type": "signup", "token_hash": old}))
                .await,
            (
                403,
                json!({
                    "code": 403,
                    "error_code": "otp_expired",
                    "msg": "Email link is invalid or has expired"
                })
            )
        );
        let (status, session) = c
            .post("/verify", json!({"type": "email", "token_hash": new}))
            .await;
        assert_eq!(status, 200, "{session}");
        assert!(session["user"]["email_confirmed_at"].is_string());
        assert_eq!(c.post("/token?grant_type=password", creds).await.0, 200);

        // Confirmed or unknown: the same answer, and nothing happens.
        for email in ["gil@example.com", "nobody@example.com"] {
            assert_eq!(
                c.post("/resend", json!({"type": "signup", "email": email}))
                    .await,
                (200, json!({}))
            );
            assert_eq!(fake.confirmation_token_hash(email), None);
        }
        assert_eq!(
            c.post(
                "/resend",
                json!({"type": "email_change", "email": "gil@example.com"})
            )
            .await,
            (200, json!({}))
        );

        // Validation.
        for (body, msg) in [
            (json!({"type": "signup"}), "Missing email address"),
            (
                json!({"type": "signup", "email": "  "}),
                "Missing email address",
            ),
            (json!({"type": "email_change"}), "Missing email address"),
            (
                json!({"type": "sms", "email": "gil@example.com"}),
                "Unsupported verification type",
            ),
            (
                json!({"type": "recovery", "email": "gil@example.com"}),
                "Unsupported verification type",
            ),
            (
                json!({"email": "gil@example.com"}),
                "Unsupported verification type",
            ),
            (
                json!({"type": "signup", "email": "not-an-email"}),
                "Unable to validate email address: invalid format",
            ),
        ] {
            let (status, v) = c.post("/resend", body).await;
            if msg == "Missing email address" {
                assert_eq!(
                    (status, &v),
                    (
                        400,
                        &json!({"code": 400, "error_code": "validation_failed", "msg": msg})
                    )
                );
            }
            assert_eq!(
                (status, v["error_code"].as_str(), v["msg"].as_str()),
                (400, Some("validation_failed"), Some(msg)),
                "{v}"
            );
        }
        fake.stop().await;
    }

    #[tokio::test]
    async fn confirmation_recovery_and_admin_delete() {
        let fake = FakeSupabase::start_with(FakeSupabaseOptions {
            autoconfirm: false,
            ..FakeSupabaseOptions::default()
        })
        .await
        .unwrap();
        let c = Client::new(&fake);
        let creds = json!({"email": "cy@example.com", "password": "password-cy"});
        let (status, user) = c.post("/signup", creds.clone()).await;
        assert_eq!(status, 200, "{user}");
        assert!(user.get("access_token").is_none());
        assert!(user["email_confirmed_at"].is_null());
        assert!(user["confirmation_sent_at"].is_string());
        let user_id = str_of(&user, "id").to_owned();

        let (status, v) = c.post("/token?grant_type=password", creds.clone()).await;
        assert_eq!(
            (status, v["error_code"].as_str()),
            (400, Some("email_not_confirmed"))
        );
        assert!(fake.confirm_email("CY@example.com"));
        assert!(!fake.confirm_email("nobody@example.com"));
        let (status, session) = c.post("/token?grant_type=password", creds.clone()).await;
        assert_eq!(status, 200, "{session}");
        let token = str_of(&session, "access_token").to_owned();

        // A confirmed email signing up again gets a look-alike user, no session.
        let (status, fake_user) = c.post("/signup", creds.clone()).await;
        assert_eq!(status, 200);
        assert_eq!(fake_user["identities"], json!([]));
        assert_ne!(fake_user["id"].as_str(), Some(user_id.as_str()));

        assert_eq!(
            c.post("/recover", json!({"email": "ghost@example.com"}))
                .await,
            (200, json!({}))
        );
        assert_eq!(fake.last_recovery_email(), None);
        assert_eq!(
            c.post("/recover", json!({"email": "Cy@Example.com"})).await,
            (200, json!({}))
        );
        assert_eq!(
            fake.last_recovery_email().as_deref(),
            Some("cy@example.com")
        );

        let path = format!("/admin/users/{user_id}");
        let (status, v) = c
            .call(reqwest::Method::DELETE, &path, Some(&token), None)
            .await;
        assert_eq!((status, v["error_code"].as_str()), (403, Some("not_admin")));
        let service = fake.service_role_key();
        let (status, v) = c
            .call(reqwest::Method::DELETE, &path, Some(&service), None)
            .await;
        assert_eq!((status, v), (200, json!({})));
        let (status, v) = c.get_user(&token).await;
        assert_eq!(
            (status, v["error_code"].as_str()),
            (403, Some("user_not_found"))
        );
        let (status, v) = c
            .call(reqwest::Method::DELETE, &path, Some(&service), None)
            .await;
        assert_eq!(
            (status, v["error_code"].as_str()),
            (404, Some("user_not_found"))
        );
    }

    /// The `amr` method in an HS256 access token of this fake.
    fn amr_method(fake: &FakeSupabase, token: &str) -> String {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_audience(&["authenticated"]);
        let data = jsonwebtoken::decode::<Value>(
            token,
            &DecodingKey::from_secret(fake.jwt_secret().as_bytes()),
            &validation,
        )
        .unwrap();
        str_of(&data.claims["amr"][0], "method").to_owned()
    }

    #[tokio::test]
    async fn email_link_token_hashes_verify_once() {
        let fake = FakeSupabase::start_with(FakeSupabaseOptions {
            autoconfirm: false,
            ..FakeSupabaseOptions::default()
        })
        .await
        .unwrap();
        let c = Client::new(&fake);
        let invalid = json!({
            "code": 403,
            "error_code": "otp_expired",
            "msg": "Email link is invalid or has expired"
        });

        // Request validation, and the gateway's apikey check.
        for (body, msg) in [
            (
                json!({"token_hash": "abc"}),
                "Verify requires a verification type",
            ),
            (
                json!({"type": "", "token_hash": "abc"}),
                "Verify requires a verification type",
            ),
            (
                json!({"type": "recovery"}),
                "Verify requires either a token or a token hash",
            ),
            (
                json!({"type": "sms", "token_hash": "abc"}),
                "Verify requires a verification type",
            ),
        ] {
            let (status, v) = c.post("/verify", body).await;
            assert_eq!(
                (status, v["error_code"].as_str(), v["msg"].as_str()),
                (400, Some("validation_failed"), Some(msg)),
                "{v}"
            );
        }
        for kind in ["recovery", "signup", "email", "invite", "magiclink"] {
            assert_eq!(
                c.post("/verify", json!({"type": kind, "token_hash": "0123abcd"}))
                    .await,
                (403, invalid.clone())
            );
        }
        let resp = reqwest::Client::new()
            .post(format!("{}/verify", c.base))
            .json(&json!({"type": "recovery", "token_hash": "0123abcd"}))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), 401);

        // Sign-up without autoconfirm: the confirmation link.
        let creds = json!({"email": "dee@example.com", "password": "password-dee"});
        let (status, user) = c.post("/signup", creds.clone()).await;
        assert_eq!(status, 200, "{user}");
        let dee_id = str_of(&user, "id").to_owned();
        let confirm = fake.confirmation_token_hash("DEE@Example.com").unwrap();
        assert_eq!(confirm.len(), 56);
        assert!(
            confirm
                .chars()
                .all(|ch| ch.is_ascii_digit() || ('a'..='f').contains(&ch))
        );
        assert_eq!(fake.confirmation_token_hash("nobody@example.com"), None);
        let (status, v) = c.post("/token?grant_type=password", creds.clone()).await;
        assert_eq!(
            (status, v["error_code"].as_str()),
            (400, Some("email_not_confirmed"))
        );
        // A type that does not match the hash is refused and leaves it usable.
        assert_eq!(
            c.post(
                "/verify",
                json!({"type": "recovery", "token_hash": confirm})
            )
            .await,
            (403, invalid.clone())
        );
        let (status, session) = c
            .post("/verify", json!({"type": "email", "token_hash": confirm}))
            .await;
        assert_eq!(status, 200, "{session}");
        assert_eq!(session["token_type"], "bearer");
        assert_eq!(session["expires_in"], 3600);
        assert!(session["expires_at"].is_i64());
        assert!(str_of(&session, "refresh_token").len() >= 12);
        assert_eq!(session["user"]["id"].as_str(), Some(dee_id.as_str()));
        assert!(session["user"]["email_confirmed_at"].is_string());
        assert_eq!(amr_method(&fake, str_of(&session, "access_token")), "otp");
        assert_eq!(fake.confirmation_token_hash("dee@example.com"), None);
        let (status, v) = c.get_user(str_of(&session, "access_token")).await;
        assert_eq!(status, 200, "{v}");
        assert!(v["email_confirmed_at"].is_string());
        let (status, signed_in) = c.post("/token?grant_type=password", creds.clone()).await;
        assert_eq!(status, 200, "{signed_in}");
        assert_eq!(
            amr_method(&fake, str_of(&signed_in, "access_token")),
            "password"
        );
        assert_eq!(
            c.post("/verify", json!({"type": "email", "token_hash": confirm}))
                .await,
            (403, invalid.clone())
        );

        // Signing up again before confirming replaces the hash; "signup" works
        // like "email".
        let eve = json!({"email": "eve@example.com", "password": "password-eve"});
        assert_eq!(c.post("/signup", eve.clone()).await.0, 200);
        let first = fake.confirmation_token_hash("eve@example.com").unwrap();
        assert_eq!(c.post("/signup", eve.clone()).await.0, 200);
        let second = fake.confirmation_token_hash("eve@example.com").unwrap();
        assert_ne!(first, second);
        assert_eq!(
            c.post("/verify", json!({"type": "signup", "token_hash": first}))
                .await,
            (403, invalid.clone())
        );
        let (status, v) = c
            .post("/verify", json!({"type": "signup", "token_hash": second}))
            .await;
        assert_eq!(status, 200, "{v}");
        assert_eq!(c.post("/token?grant_type=password", eve).await.0, 200);

        // Recovery: the last /recover that matched a user, used once.
        assert_eq!(fake.last_recovery_token_hash(), None);
        assert_eq!(
            c.post("/recover", json!({"email": "ghost@example.com"}))
                .await,
            (200, json!({}))
        );
        assert_eq!(fake.last_recovery_token_hash(), None);
        c.post("/recover", json!({"email": "Dee@Example.com"}))
            .await;
        let older = fake.last_recovery_token_hash().unwrap();
        c.post("/recover", json!({"email": "dee@example.com"}))
            .await;
        let recovery = fake.last_recovery_token_hash().unwrap();
        assert_ne!(older, recovery);
        assert_eq!(recovery.len(), 56);
        assert_eq!(
            c.post("/verify", json!({"type": "recovery", "token_hash": older}))
                .await,
            (403, invalid.clone()),
            "a newer recovery hash replaces the older one"
        );
        assert_eq!(
            c.post("/verify", json!({"type": "email", "token_hash": recovery}))
                .await,
            (403, invalid.clone())
        );
        let (status, session) = c
            .post(
                "/verify",
                json!({"type": "recovery", "token_hash": recovery}),
            )
            .await;
        assert_eq!(status, 200, "{session}");
        assert_eq!(amr_method(&fake, str_of(&session, "access_token")), "otp");
        let token = str_of(&session, "access_token").to_owned();
        let (status, v) = c.get_user(&token).await;
        assert_eq!(status, 200, "{v}");
        assert_eq!(v["email"], "dee@example.com");
        // The session is a real one: it changes the password and refreshes.
        let (status, v) = c
            .call(
                reqwest::Method::PUT,
                "/user",
                Some(&token),
                Some(json!({"password": "new-password-dee"})),
            )
            .await;
        assert_eq!(status, 200, "{v}");
        let (status, v) = c
            .post(
                "/token?grant_type=refresh_token",
                json!({"refresh_token": session["refresh_token"]}),
            )
            .await;
        assert_eq!(status, 200, "{v}");
        assert_eq!(
            c.post(
                "/verify",
                json!({"type": "recovery", "token_hash": recovery}),
            )
            .await,
            (403, invalid.clone())
        );

        // A recovery link confirms an unconfirmed address too.
        let (status, fay) = c
            .post(
                "/signup",
                json!({"email": "fay@example.com", "password": "password-fay"}),
            )
            .await;
        assert_eq!(status, 200, "{fay}");
        let fay_id = Uuid::parse_str(str_of(&fay, "id")).unwrap();
        let fay_confirm = fake.confirmation_token_hash("fay@example.com").unwrap();
        c.post("/recover", json!({"email": "fay@example.com"}))
            .await;
        let fay_recovery = fake.last_recovery_token_hash().unwrap();
        let (status, v) = c
            .post(
                "/verify",
                json!({"type": "recovery", "token_hash": fay_recovery}),
            )
            .await;
        assert_eq!(status, 200, "{v}");
        assert!(v["user"]["email_confirmed_at"].is_string());
        assert_eq!(fake.confirmation_token_hash("fay@example.com"), None);
        assert_eq!(
            c.post(
                "/verify",
                json!({"type": "email", "token_hash": fay_confirm}),
            )
            .await,
            (403, invalid.clone())
        );

        // Expired after an hour.
        c.post("/recover", json!({"email": "fay@example.com"}))
            .await;
        let stale = fake.last_recovery_token_hash().unwrap();
        fake.shared
            .lock()
            .one_time_tokens
            .get_mut(&stale)
            .unwrap()
            .created_at -= chrono::TimeDelta::seconds(3600);
        assert_eq!(
            c.post("/verify", json!({"type": "recovery", "token_hash": stale}))
                .await,
            (403, invalid.clone())
        );

        // Deleting the user removes its hashes.
        c.post("/recover", json!({"email": "fay@example.com"}))
            .await;
        let orphan = fake.last_recovery_token_hash().unwrap();
        let service = fake.service_role_key();
        let (status, _) = c
            .call(
                reqwest::Method::DELETE,
                &format!("/admin/users/{fay_id}"),
                Some(&service),
                None,
            )
            .await;
        assert_eq!(status, 200);
        assert!(
            !fake
                .shared
                .lock()
                .one_time_tokens
                .values()
                .any(|t| t.user_id == fay_id)
        );
        assert_eq!(
            c.post("/verify", json!({"type": "recovery", "token_hash": orphan}))
                .await,
            (403, invalid)
        );
        fake.stop().await;
    }
}
