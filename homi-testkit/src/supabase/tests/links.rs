//! Email links: confirmation and recovery token hashes, resend, verify,
//! and the admin deletion of a user.

use super::*;

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
