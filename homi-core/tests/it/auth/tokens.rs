//! Lockout, forged and expired tokens, deleting a user, the signing secret,
//! revocations and races between refreshes.

use super::*;

async fn repeated_failures_lock_the_email(backend: Backend) {
    let Some(e) = env_with(backend, |c| {
        c.auth.max_failed_signins = 3;
        c.auth.signin_lockout = Duration::from_secs(120);
    })
    .await
    else {
        return;
    };
    e.sign_up("target@homi.test").await;
    for email in ["target@homi.test", "ghost@homi.test"] {
        for i in 0..2 {
            let err = e.auth.sign_in(email, "wrong guess").await.unwrap_err();
            assert_eq!(err.kind(), ErrorKind::Unauthorized, "{email} #{i}: {err}");
            assert_eq!(err.to_string(), "unauthorized: invalid email or password");
        }
        // The third failure locks, for known and unknown emails alike.
        let err = e.auth.sign_in(email, "wrong guess").await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::RateLimited, "{email}: {err}");
        let wait = err.retry_after().unwrap();
        assert!(
            wait > Duration::from_secs(100) && wait <= Duration::from_secs(120),
            "{wait:?}"
        );
    }
    // While locked, even the right password is refused.
    let err = e
        .auth
        .sign_in("target@homi.test", PASSWORD)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::RateLimited);
    // Other accounts are not affected.
    e.sign_up("bystander@homi.test").await;
    e.auth
        .sign_in("bystander@homi.test", PASSWORD)
        .await
        .unwrap();
}

async fn failures_count_per_account_and_network(backend: Backend) {
    let Some(e) = env_with(backend, |c| c.auth.max_failed_signins = 2).await else {
        return;
    };
    e.sign_up("target@homi.test").await;
    let from = |ip: &str| e.auth.for_client(ip.parse().unwrap());
    // Two addresses of one IPv6 /64 are one network: its second failure locks it.
    let err = from("2001:db8:0:1::1")
        .sign_in("target@homi.test", "guess 1")
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unauthorized, "{err}");
    let err = from("2001:db8:0:1::2")
        .sign_in("target@homi.test", "guess 2")
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::RateLimited, "{err}");
    for net in ["192.0.2.1", "192.0.2.2", "192.0.2.3"] {
        for guess in ["guess 1", "guess 2"] {
            assert!(from(net).sign_in("target@homi.test", guess).await.is_err());
        }
    }
    // The account is locked as a whole now (4 networks × 2), but its owner
    // on a network that has not failed signs in; the failing ones cannot,
    // even with the right password.
    from("198.51.100.1")
        .sign_in("target@homi.test", PASSWORD)
        .await
        .unwrap();
    let err = from("192.0.2.1")
        .sign_in("target@homi.test", PASSWORD)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::RateLimited, "{err}");
    // A password reset proves the owner: every counter of the account goes.
    e.auth
        .request_password_reset("target@homi.test")
        .await
        .unwrap();
    let token = token_in(
        &e.smtp.wait_for(1, Duration::from_secs(10)).await.unwrap()[0],
        "Reset token: ",
    );
    e.auth
        .confirm_password_reset(&token, "the owner's new password")
        .await
        .unwrap();
    from("192.0.2.1")
        .sign_in("target@homi.test", "the owner's new password")
        .await
        .unwrap();
}

async fn expired_sessions_and_tokens_are_pruned(backend: Backend) {
    let Some(e) = env(backend).await else { return };
    let s = e.sign_up("prune@homi.test").await;
    e.auth
        .request_password_reset("prune@homi.test")
        .await
        .unwrap();
    e.smtp.wait_for(1, Duration::from_secs(10)).await.unwrap();
    let stores = homi_core::open::open_stores(&e.config).await.unwrap();
    let count = |table: &'static str| {
        let url = e.url.clone();
        async move { common::count_rows(&url, table).await }
    };
    assert_eq!(count("homi_auth_sessions").await, 1);
    assert!(count("homi_auth_refresh_tokens").await >= 1);
    assert_eq!(count("homi_auth_one_time_tokens").await, 1);
    // Nothing has expired yet: nothing goes.
    e.auth.prune_expired().await.unwrap();
    assert_eq!(count("homi_auth_sessions").await, 1);
    e.auth.refresh(&s.refresh_token).await.unwrap();
    // A month on, the session, its refresh tokens and the reset link have.
    let later = chrono::Utc::now() + chrono::Duration::days(31);
    let pruned = stores
        .auth
        .prune_expired(later, Duration::from_secs(3600))
        .await
        .unwrap();
    assert!(pruned >= 2, "{pruned}");
    for table in [
        "homi_auth_sessions",
        "homi_auth_refresh_tokens",
        "homi_auth_one_time_tokens",
    ] {
        assert_eq!(count(table).await, 0, "{table}");
    }
    // The account itself stays.
    e.auth.sign_in("prune@homi.test", PASSWORD).await.unwrap();
}

async fn forged_and_expired_tokens_are_refused(backend: Backend) {
    let Some(e) = env(backend).await else { return };
    let s = e.sign_up("victim@homi.test").await;
    let real = payload(&s.access_token);
    let (sub, sid) = (real["sub"].clone(), real["sid"].clone());
    let t = now();
    let claims = |over: serde_json::Value| {
        with_claims(
            json!({"sub": sub, "sid": sid, "iat": t, "nbf": t, "exp": t + 600,
                   "aud": "authenticated", "iss": "homi"}),
            over,
        )
    };
    // The control: a token made like Homi makes them is accepted.
    e.auth
        .verify_access_token(&forge(claims(json!({})), SECRET.as_bytes()))
        .await
        .unwrap();

    use base64::Engine as _;
    let b64 = |v: serde_json::Value| {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
    };
    let unsigned = format!(
        "{}.{}.",
        b64(json!({"alg": "none", "typ": "JWT"})),
        b64(claims(json!({})))
    );
    assert_refused(&e.auth, &unsigned, "alg: none").await;
    let unsigned_upper = format!(
        "{}.{}.",
        b64(json!({"alg": "None", "typ": "JWT"})),
        b64(claims(json!({})))
    );
    assert_refused(&e.auth, &unsigned_upper, "alg: None").await;

    assert_refused(
        &e.auth,
        &forge(claims(json!({})), b"another-key-another-key-another-key!!"),
        "signed with another key",
    )
    .await;

    // RS256 with an RSA key the attacker made.
    let rsa = jsonwebtoken::encode(
        &Header::new(Algorithm::RS256),
        &claims(json!({})),
        &EncodingKey::from_rsa_pem(TEST_RSA_KEY.as_bytes()).unwrap(),
    )
    .unwrap();
    assert_refused(&e.auth, &rsa, "RS256 token (algorithm confusion)").await;
    // HS256 with the RSA public key as the HMAC secret (the classic confusion attack).
    assert_refused(
        &e.auth,
        &forge(claims(json!({})), TEST_RSA_PUBLIC_KEY.as_bytes()),
        "HS256 signed with a public key",
    )
    .await;

    for (over, what) in [
        (json!({"exp": t - 60}), "expired"),
        (json!({"nbf": t + 600}), "not yet valid (nbf)"),
        (json!({"iat": t + 600}), "issued in the future"),
        (json!({"aud": "someone-else"}), "wrong aud"),
        (json!({"iss": "evil"}), "wrong iss"),
        (json!({"exp": null}), "no exp"),
        (json!({"aud": null}), "no aud"),
        (
            json!({"sid": uuid::Uuid::new_v4().to_string()}),
            "unknown session",
        ),
        (
            json!({"sub": uuid::Uuid::new_v4().to_string()}),
            "session of another user",
        ),
        (json!({"sub": "not-a-uuid"}), "malformed sub"),
    ] {
        assert_refused(&e.auth, &forge(claims(over), SECRET.as_bytes()), what).await;
    }

    // Tampered payload: another subject, the original signature.
    let other = e.sign_up("attacker@homi.test").await;
    let mut parts: Vec<String> = s.access_token.split('.').map(str::to_owned).collect();
    let mut tampered = payload(&s.access_token);
    tampered["sub"] = payload(&other.access_token)["sub"].clone();
    parts[1] = b64(tampered);
    assert_refused(&e.auth, &parts.join("."), "tampered payload").await;
    for junk in ["", "Bearer", "a.b", "a.b.c", "....", "\u{0}"] {
        assert_refused(&e.auth, junk, "garbage").await;
    }
    // And the genuine token still works after all that.
    e.auth.verify_access_token(&s.access_token).await.unwrap();
}

async fn deleting_a_user_leaves_nothing(backend: Backend) {
    let Some(e) = env(backend).await else { return };
    let fake = FakeProvider::start().await.unwrap();
    let config = e
        .config
        .clone()
        .with_openai_base_url(fake.base_url())
        .with_openai_api_key("sk-test")
        .with_embedding_model("text-embedding-3-small", Some(64));
    let memory = Memory::open(&config).await.unwrap();

    let s = e.sign_up("leaving@homi.test").await;
    let stays = e.sign_up("staying@homi.test").await;
    let gone = s.user.id.to_string();
    let kept = stays.user.id.to_string();
    let leaving = Scope::user(&gone);
    for text in ["Leaver likes quinces", "Leaver lives in Zurich"] {
        memory
            .add(text, &leaving, AddOptions::default().infer(false))
            .await
            .unwrap();
    }
    let first = memory.get_all(&leaving, Default::default()).await.unwrap();
    memory
        .update(
            &first[0].id.to_string(),
            &leaving,
            "Leaver loves quinces",
            None,
        )
        .await
        .unwrap();
    memory
        .add(
            "Stayer keeps bees",
            &Scope::user(&kept),
            AddOptions::default().infer(false),
        )
        .await
        .unwrap();
    // A conversation of the user's.
    let chat = homi_core::chat::Chat::new(
        memory.clone(),
        Some(std::sync::Arc::new(
            homi_core::provider::openai::OpenAiChatModel::new(&config.provider).unwrap(),
        )),
        Default::default(),
        Default::default(),
    )
    .unwrap();
    chat.turn(&gone, "Leaver chatted about tulips", None)
        .await
        .unwrap();
    // An extraction still queued for the user (their message in its payload).
    homi_core::jobs::JobQueue::for_memory(&memory, Default::default())
        .unwrap()
        .enqueue_extraction(
            &leaving,
            vec![homi_core::provider::ChatMessage::user(
                "Leaver queued a secret",
            )],
        )
        .await
        .unwrap();
    e.auth.sign_in("leaving@homi.test", PASSWORD).await.unwrap();
    e.auth
        .request_password_reset("leaving@homi.test")
        .await
        .unwrap();
    e.smtp.wait_for(1, Duration::from_secs(10)).await.unwrap();
    let _ = e.auth.sign_in("leaving@homi.test", "wrong guess").await;

    assert!(e.auth.delete_user(s.user.id).await.unwrap());
    assert_refused(&e.auth, &s.access_token, "token of a deleted user").await;
    assert!(e.auth.refresh(&s.refresh_token).await.is_err());
    assert!(e.auth.sign_in("leaving@homi.test", PASSWORD).await.is_err());
    for needle in [
        gone.as_str(),
        "leaving@homi.test",
        "Leaver likes quinces",
        "Leaver loves quinces",
        "Leaver lives in Zurich",
        "Leaver queued a secret",
        "Leaver chatted about tulips",
    ] {
        assert!(!e.holds(needle).await, "'{needle}' survived the deletion");
    }
    // The other user keeps everything.
    assert!(e.holds("Stayer keeps bees").await);
    e.auth
        .verify_access_token(&stays.access_token)
        .await
        .unwrap();
    assert_eq!(
        memory
            .get_all(&Scope::user(&kept), Default::default())
            .await
            .unwrap()
            .len(),
        1
    );
    assert!(
        !e.auth.delete_user(s.user.id).await.unwrap(),
        "nothing left to delete"
    );
}

async fn generated_secret_survives_a_restart(backend: Backend) {
    let Some(e) = env_with(backend, |c| c.auth.jwt_secret = None).await else {
        return;
    };
    let s = e.sign_up("restart@homi.test").await;
    let reopened = Auth::open(&e.config).await.unwrap();
    reopened.verify_access_token(&s.access_token).await.unwrap();
    // And the generated secret is not the tests' known one.
    let forged = forge(payload(&s.access_token), SECRET.as_bytes());
    assert_refused(&reopened, &forged, "forged with a guessed secret").await;
}

async fn revocations_by_another_client_are_seen_at_once(backend: Backend) {
    let Some(e) = env(backend).await else { return };
    // A second client on the same database, as the CLI or a second server
    // process would be: its own connections, nothing shared in memory.
    let other = Auth::open(&e.config).await.unwrap();
    let a = e.sign_up("twice@homi.test").await;
    let b = e.auth.sign_in("twice@homi.test", PASSWORD).await.unwrap();
    // Warm both paths, then revoke through the other client.
    let pa = e.auth.verify_access_token(&a.access_token).await.unwrap();
    e.auth.verify_access_token(&b.access_token).await.unwrap();
    other.verify_access_token(&a.access_token).await.unwrap();
    other.sign_out(&pa).await.unwrap();
    assert_refused(&e.auth, &a.access_token, "signed out by another client").await;
    e.auth.verify_access_token(&b.access_token).await.unwrap();
    assert!(other.delete_user(a.user.id).await.unwrap());
    assert_refused(&e.auth, &b.access_token, "user deleted by another client").await;
}

async fn concurrent_refreshes_without_grace_revoke_the_session(backend: Backend) {
    let Some(e) = env(backend).await else { return };
    let s = e.sign_up("race@homi.test").await;
    let (a, b) = tokio::join!(
        e.auth.refresh(&s.refresh_token),
        e.auth.refresh(&s.refresh_token)
    );
    let winners: Vec<_> = [a, b].into_iter().filter_map(Result::ok).collect();
    assert_eq!(
        winners.len(),
        1,
        "exactly one refresh of one token succeeds"
    );
    // The second presentation was a reuse: the whole session is gone.
    assert_refused(
        &e.auth,
        &winners[0].access_token,
        "token of a reused session",
    )
    .await;
    assert!(e.auth.refresh(&winners[0].refresh_token).await.is_err());
}

async fn parallel_guesses_cannot_outrun_the_lock(backend: Backend) {
    let Some(e) = env_with(backend, |c| c.auth.max_failed_signins = 3).await else {
        return;
    };
    e.sign_up("burst@homi.test").await;
    let guesses = (0..12).map(|i| {
        let auth = e.auth.clone();
        tokio::spawn(async move {
            auth.sign_in("burst@homi.test", &format!("guess number {i}"))
                .await
        })
    });
    let mut checked = 0;
    for g in guesses {
        match g.await.unwrap() {
            Ok(_) => panic!("a wrong password signed in"),
            Err(err) if err.kind() == ErrorKind::Unauthorized => checked += 1,
            Err(err) => assert_eq!(err.kind(), ErrorKind::RateLimited, "{err}"),
        }
    }
    assert!(
        checked <= 3,
        "{checked} passwords were checked, at most 3 may be"
    );
}

async fn changing_the_email_voids_pending_reset_tokens(backend: Backend) {
    let Some(e) = env(backend).await else { return };
    let s = e.sign_up("old@homi.test").await;
    e.auth
        .request_password_reset("old@homi.test")
        .await
        .unwrap();
    let token = token_in(
        &e.smtp.wait_for(1, Duration::from_secs(10)).await.unwrap()[0],
        "Reset token: ",
    );
    let p = e.auth.verify_access_token(&s.access_token).await.unwrap();
    e.auth
        .update_user(
            &p,
            UserUpdate::default()
                .email("new@homi.test")
                .current_password(PASSWORD),
        )
        .await
        .unwrap();
    let mails = e.smtp.wait_for(3, Duration::from_secs(10)).await.unwrap();
    let link = mails.iter().find(|m| m.to == ["new@homi.test"]).unwrap();
    e.auth
        .confirm_email(&token_in(link, "Confirmation token: "))
        .await
        .unwrap();
    let err = e
        .auth
        .confirm_password_reset(&token, "taken over password")
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");
    e.auth.sign_in("new@homi.test", PASSWORD).await.unwrap();
}

conformance!(
    repeated_failures_lock_the_email,
    expired_sessions_and_tokens_are_pruned,
    failures_count_per_account_and_network,
    forged_and_expired_tokens_are_refused,
    deleting_a_user_leaves_nothing,
    generated_secret_survives_a_restart,
    revocations_by_another_client_are_seen_at_once,
    concurrent_refreshes_without_grace_revoke_the_session,
    parallel_guesses_cannot_outrun_the_lock,
    changing_the_email_voids_pending_reset_tokens,
);
