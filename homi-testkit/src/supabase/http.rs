//! What the fake's routes share: GoTrue's error bodies, user and session
//! JSON, bearer authentication, and the `apikey` gateway with its faults.

use super::*;

// ------------------------------------------------------------------ helpers

/// GoTrue's error JSON.
pub(super) fn gotrue_error(
    status: StatusCode,
    error_code: &str,
    msg: impl Into<String>,
) -> Response {
    (
        status,
        Json(json!({"code": status.as_u16(), "error_code": error_code, "msg": msg.into()})),
    )
        .into_response()
}

pub(super) fn ts(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Micros, true)
}

pub(super) fn ts_opt(t: Option<DateTime<Utc>>) -> Value {
    t.map(|t| Value::String(ts(t))).unwrap_or(Value::Null)
}

pub(super) fn normalize_email(email: &str) -> String {
    email.trim().to_lowercase()
}

pub(super) fn valid_email(email: &str) -> bool {
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
pub(super) fn parse_body<T: DeserializeOwned>(body: &[u8]) -> Result<T, Box<Response>> {
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

pub(super) fn weak_password() -> Response {
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

pub(super) fn invalid_email() -> Response {
    gotrue_error(
        StatusCode::BAD_REQUEST,
        "validation_failed",
        "Unable to validate email address: invalid format",
    )
}

/// Merges `data` into metadata; a `null` value removes the key (GoTrue's rule).
pub(super) fn merge_metadata(target: &mut Map<String, Value>, data: Map<String, Value>) {
    for (k, v) in data {
        if v.is_null() {
            target.remove(&k);
        } else {
            target.insert(k, v);
        }
    }
}

pub(super) fn user_json(u: &User) -> Value {
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
pub(super) fn new_session(
    s: &Shared,
    db: &mut Db,
    user_id: Uuid,
    method: &'static str,
) -> Response {
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
pub(super) fn session_body(s: &Shared, db: &mut Db, session_id: Uuid) -> Response {
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

pub(super) fn bearer(headers: &HeaderMap) -> Option<String> {
    let value = headers.get("authorization")?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty() && !token.contains(' '))
        .then(|| token.to_owned())
}

pub(super) fn no_authorization() -> Response {
    gotrue_error(
        StatusCode::UNAUTHORIZED,
        "no_authorization",
        "This endpoint requires a Bearer token",
    )
}

pub(super) fn bad_jwt(detail: &str) -> Response {
    gotrue_error(
        StatusCode::FORBIDDEN,
        "bad_jwt",
        format!("invalid JWT: unable to parse or verify signature, {detail}"),
    )
}

/// A verified bearer token of a signed-in user.
pub(super) struct Authed {
    pub(super) claims: Map<String, Value>,
    pub(super) user_id: Uuid,
    pub(super) session_id: Option<Uuid>,
}

/// GoTrue's `requireAuthentication` + loading the user and session. The error
/// is boxed: a `Response` is large.
pub(super) fn authenticate(
    s: &Shared,
    db: &Db,
    headers: &HeaderMap,
) -> Result<Authed, Box<Response>> {
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
pub(super) async fn gate(State(s): State<Arc<Shared>>, req: Request, next: Next) -> Response {
    let path = req
        .uri()
        .path_and_query()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| req.uri().path().to_owned());
    let header = |h: &axum::http::HeaderMap, name: &str| {
        h.get(name).and_then(|v| v.to_str().ok()).map(str::to_owned)
    };
    let forwarded = header(req.headers(), "x-forwarded-for");
    let sb_forwarded = header(req.headers(), "sb-forwarded-for");
    {
        let mut inner = s.lock();
        inner.forwarded_for.push((path.clone(), forwarded));
        inner.sb_forwarded_for.push((path.clone(), sb_forwarded));
        inner.requests.push((req.method().to_string(), path));
    }
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
    if key != s.keys.anon_key && key != s.keys.service_role_key && key != s.keys.secret_key {
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

pub(super) fn fault_response(status: u16) -> Response {
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

pub(super) async fn not_found() -> Response {
    gotrue_error(StatusCode::NOT_FOUND, "not_found", "Not Found")
}
