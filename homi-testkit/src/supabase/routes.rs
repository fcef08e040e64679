//! The fake's endpoints: GoTrue's routes under `/auth/v1`.

use super::http::*;
use super::*;

pub(super) fn router(shared: Arc<Shared>) -> Router {
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

// ------------------------------------------------------------------- routes

pub(super) async fn health() -> Json<Value> {
    Json(json!({
        "version": GOTRUE_VERSION,
        "name": "GoTrue",
        "description": "GoTrue is a user registration and authentication API"
    }))
}

pub(super) async fn jwks(State(s): State<Arc<Shared>>) -> Json<Value> {
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
pub(super) struct SignupBody {
    email: Option<String>,
    password: Option<String>,
    data: Option<Map<String, Value>>,
}

pub(super) async fn signup(State(s): State<Arc<Shared>>, body: Bytes) -> Response {
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
pub(super) struct PasswordGrant {
    email: Option<String>,
    password: Option<String>,
}

#[derive(Deserialize)]
pub(super) struct RefreshGrant {
    refresh_token: Option<String>,
}

pub(super) async fn token(
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

pub(super) fn invalid_credentials() -> Response {
    gotrue_error(
        StatusCode::BAD_REQUEST,
        "invalid_credentials",
        "Invalid login credentials",
    )
}

pub(super) fn password_grant(s: &Shared, body: &[u8]) -> Response {
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

pub(super) fn refresh_grant(s: &Shared, body: &[u8]) -> Response {
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

pub(super) async fn logout(
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

pub(super) async fn get_user(State(s): State<Arc<Shared>>, headers: HeaderMap) -> Response {
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
pub(super) struct UpdateUserBody {
    email: Option<String>,
    password: Option<String>,
    data: Option<Map<String, Value>>,
}

pub(super) async fn update_user(
    State(s): State<Arc<Shared>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
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
pub(super) struct RecoverBody {
    email: Option<String>,
}

pub(super) async fn recover(State(s): State<Arc<Shared>>, body: Bytes) -> Response {
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
pub(super) struct ResendBody {
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
pub(super) async fn resend(State(s): State<Arc<Shared>>, body: Bytes) -> Response {
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
pub(super) struct VerifyBody {
    #[serde(rename = "type")]
    kind: Option<String>,
    token_hash: Option<String>,
}

pub(super) fn link_invalid() -> Response {
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
pub(super) async fn verify(State(s): State<Arc<Shared>>, body: Bytes) -> Response {
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

pub(super) async fn admin_delete_user(
    State(s): State<Arc<Shared>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    let Some(token) = bearer(&headers) else {
        return no_authorization();
    };
    // A secret key (`sb_secret_…`) has the service role, as the gateway
    // gives it; any other bearer must be a JWT with that role.
    let role = if token == s.keys.secret_key {
        "service_role".to_owned()
    } else {
        match s.verify(&token) {
            Ok(claims) => claims
                .get("role")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_owned(),
            Err(e) => return bad_jwt(&e),
        }
    };
    if !matches!(role.as_str(), "service_role" | "supabase_admin") {
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
