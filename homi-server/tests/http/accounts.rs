//! Accounts, isolation between users, and provider trouble.

use super::*;

fn token_in(mail: &homi_testkit::smtp::ReceivedMail, label: &str) -> String {
    let body = mail.body_text();
    body.lines()
        .find_map(|l| l.strip_prefix(label))
        .unwrap_or_else(|| panic!("no '{label}' in {body}"))
        .trim()
        .to_owned()
}

/// Every account route after sign-up: email confirmation, refresh (rotation
/// and reuse), profile update, change-password, reset by email, auth health;
/// each with its failure paths, as JSON.
async fn account_routes_work_and_fail_clearly(backend: Backend) {
    let smtp = homi_testkit::smtp::SmtpSink::start().await.unwrap();
    let smtp_url = smtp.url();
    let Some((s, _)) = start_configured(backend, false, |c| {
        c.auth.smtp_url = Some(smtp_url.into());
        c.auth.public_url = "https://app.homi.test".into();
        c.auth.require_email_confirmation = true;
        c.server.auth_rate_limit_per_minute = 0;
    })
    .await
    else {
        return;
    };
    let pw = "correct horse battery";
    let (status, up) = s
        .post(
            "/api/v1/auth/signup",
            None,
            json!({"email": "ada@example.com", "password": pw, "full_name": "Ada"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{up}");
    assert_eq!(up["confirmation_required"], true);
    assert!(up["access_token"].is_null());
    let signin = json!({"email": "ada@example.com", "password": pw});
    let (status, body) = s.post("/api/v1/auth/signin", None, signin.clone()).await;
    assert_error(status, &body, StatusCode::FORBIDDEN, "forbidden");

    // The confirmation link.
    let mail = &smtp.wait_for(1, Duration::from_secs(10)).await.unwrap()[0];
    let token = token_in(mail, "Confirmation token: ");
    let (status, body) = s.get("/api/v1/auth/confirm", None).await;
    assert_error(
        status,
        &body,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_input",
    );
    assert!(body["detail"].as_str().unwrap().contains("token"), "{body}");
    let (status, user) = s
        .get(&format!("/api/v1/auth/confirm?token={token}"), None)
        .await;
    assert_eq!(status, StatusCode::OK, "{user}");
    assert!(user["email_confirmed_at"].is_string(), "{user}");
    let (status, body) = s
        .get(&format!("/api/v1/auth/confirm?token={token}"), None)
        .await;
    assert!(status.is_client_error(), "a used link: {status} {body}");
    assert!(body["error"].is_string(), "{body}");

    // Refresh: a new pair each time; replaying a spent token ends the session.
    let (status, first) = s.post("/api/v1/auth/signin", None, signin.clone()).await;
    assert_eq!(status, StatusCode::OK, "{first}");
    let (status, other) = s.post("/api/v1/auth/signin", None, signin.clone()).await;
    assert_eq!(status, StatusCode::OK, "{other}");
    let other_token = other["access_token"].as_str().unwrap().to_owned();
    let (status, next) = s
        .post(
            "/api/v1/auth/refresh",
            None,
            json!({"refresh_token": first["refresh_token"]}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{next}");
    assert_eq!(next["token_type"], "bearer");
    assert_ne!(next["refresh_token"], first["refresh_token"]);
    let next_token = next["access_token"].as_str().unwrap().to_owned();
    assert_eq!(
        s.get("/api/v1/auth/me", Some(&next_token)).await.0,
        StatusCode::OK
    );
    let (status, body) = s
        .post(
            "/api/v1/auth/refresh",
            None,
            json!({"refresh_token": first["refresh_token"]}),
        )
        .await;
    assert_error(status, &body, StatusCode::UNAUTHORIZED, "unauthorized");
    let (status, body) = s.get("/api/v1/auth/me", Some(&next_token)).await;
    assert_error(status, &body, StatusCode::UNAUTHORIZED, "unauthorized");
    let (status, body) = s.post("/api/v1/auth/refresh", None, json!({})).await;
    assert_error(
        status,
        &body,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_input",
    );
    assert!(body["detail"].as_str().unwrap().contains("refresh_token"));
    let (status, body) = s
        .post(
            "/api/v1/auth/refresh",
            None,
            json!({"refresh_token": "forged"}),
        )
        .await;
    assert_error(status, &body, StatusCode::UNAUTHORIZED, "unauthorized");

    // The profile.
    let (status, me) = s
        .put(
            "/api/v1/auth/me",
            Some(&other_token),
            json!({"full_name": "Ada Lovelace"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{me}");
    assert_eq!(me["full_name"], "Ada Lovelace");
    let (_, me) = s.get("/api/v1/auth/me", Some(&other_token)).await;
    assert_eq!(me["full_name"], "Ada Lovelace");
    for (body, field) in [
        (json!({"full_name": "Ada\0"}), "full_name"),
        (json!({"email": "not an email"}), "email"),
        (json!({"age": 36}), "age"),
    ] {
        let (status, answer) = s.put("/api/v1/auth/me", Some(&other_token), body).await;
        assert_error(
            status,
            &answer,
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_input",
        );
        assert!(
            answer["detail"].as_str().unwrap().contains(field),
            "{answer}"
        );
    }
    let (status, body) = s
        .put("/api/v1/auth/me", None, json!({"full_name": "X"}))
        .await;
    assert_error(status, &body, StatusCode::UNAUTHORIZED, "unauthorized");

    // Change-password: the caller's session stays, the others end.
    let (_, third) = s.post("/api/v1/auth/signin", None, signin.clone()).await;
    let third_token = third["access_token"].as_str().unwrap().to_owned();
    let (status, body) = s
        .post(
            "/api/v1/auth/change-password",
            Some(&other_token),
            json!({"current_password": "wrong password", "new_password": "a new password"}),
        )
        .await;
    assert_error(status, &body, StatusCode::UNAUTHORIZED, "unauthorized");
    let (status, body) = s
        .post(
            "/api/v1/auth/change-password",
            Some(&other_token),
            json!({"current_password": pw, "new_password": "short"}),
        )
        .await;
    assert_error(
        status,
        &body,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_input",
    );
    let (status, body) = s
        .post(
            "/api/v1/auth/change-password",
            Some(&other_token),
            json!({"current_password": pw, "new_password": "a new password"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        s.get("/api/v1/auth/me", Some(&other_token)).await.0,
        StatusCode::OK
    );
    let (status, body) = s.get("/api/v1/auth/me", Some(&third_token)).await;
    assert_error(status, &body, StatusCode::UNAUTHORIZED, "unauthorized");
    let (status, body) = s.post("/api/v1/auth/signin", None, signin.clone()).await;
    assert_error(status, &body, StatusCode::UNAUTHORIZED, "unauthorized");

    // Reset by email: the same answer for any address; one mail, one use.
    smtp.clear();
    let (status, known) = s
        .post(
            "/api/v1/auth/reset-password",
            None,
            json!({"email": "ada@example.com"}),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{known}");
    let (status, unknown) = s
        .post(
            "/api/v1/auth/reset-password",
            None,
            json!({"email": "nobody@example.com"}),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    assert_eq!(known, unknown);
    let mail = &smtp.wait_for(1, Duration::from_secs(10)).await.unwrap()[0];
    assert_eq!(mail.to, vec!["ada@example.com".to_owned()]);
    let reset = token_in(mail, "Reset token: ");
    let confirm = json!({"token": reset, "new_password": "reset password 1"});
    let (status, body) = s
        .post("/api/v1/auth/reset-password/confirm", None, confirm.clone())
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = s
        .post("/api/v1/auth/reset-password/confirm", None, confirm)
        .await;
    assert!(
        status.is_client_error(),
        "a used reset token: {status} {body}"
    );
    assert!(body["error"].is_string(), "{body}");
    let (status, body) = s.get("/api/v1/auth/me", Some(&other_token)).await;
    assert_error(status, &body, StatusCode::UNAUTHORIZED, "unauthorized");
    let (status, signed_in) = s
        .post(
            "/api/v1/auth/signin",
            None,
            json!({"email": "ada@example.com", "password": "reset password 1"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{signed_in}");
    let (status, body) = s
        .post("/api/v1/auth/reset-password", None, json!({"mail": "x"}))
        .await;
    assert_error(
        status,
        &body,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_input",
    );

    let (status, health) = s.get("/api/v1/auth/health", None).await;
    assert_eq!(status, StatusCode::OK, "{health}");
    assert_eq!(health["healthy"], true, "{health}");

    // Query strings and methods the server does not take are JSON errors too.
    let token = signed_in["access_token"].as_str().unwrap().to_owned();
    for path in [
        "/api/v1/memories?limit=many",
        "/api/v1/memories?offset=3",
        "/api/v1/sessions?limit=-1",
    ] {
        let (status, answer) = s.get(path, Some(&token)).await;
        assert_error(
            status,
            &answer,
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_input",
        );
    }
    let (status, answer) = s.delete("/api/v1/auth/signin", None).await;
    assert_error(
        status,
        &answer,
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
    );

    // A stolen access token cannot move the account to another address:
    // a new email needs the current password, and the new address's link.
    smtp.clear();
    let (status, body) = s
        .put(
            "/api/v1/auth/me",
            Some(&token),
            json!({"email": "mallory@example.com"}),
        )
        .await;
    assert_error(
        status,
        &body,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_input",
    );
    assert!(
        body["detail"]
            .as_str()
            .unwrap()
            .contains("current_password")
    );
    let (status, body) = s
        .put(
            "/api/v1/auth/me",
            Some(&token),
            json!({"email": "mallory@example.com", "current_password": "a guess"}),
        )
        .await;
    assert_error(status, &body, StatusCode::UNAUTHORIZED, "unauthorized");
    let (status, me) = s
        .put(
            "/api/v1/auth/me",
            Some(&token),
            json!({"email": "ada@lovelace.test", "current_password": "reset password 1"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{me}");
    assert_eq!(me["email"], "ada@example.com", "{me}");
    assert_eq!(me["new_email"], "ada@lovelace.test", "{me}");
    let mails = smtp.wait_for(2, Duration::from_secs(10)).await.unwrap();
    let link = mails
        .iter()
        .find(|m| m.to == ["ada@lovelace.test"])
        .unwrap();
    let told = mails.iter().find(|m| m.to == ["ada@example.com"]).unwrap();
    assert!(told.body_text().contains("ada@lovelace.test"));
    let (status, user) = s
        .get(
            &format!(
                "/api/v1/auth/confirm?token={}",
                token_in(link, "Confirmation token: ")
            ),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{user}");
    assert_eq!(user["email"], "ada@lovelace.test");
    assert!(user["email_confirmed_at"].is_string(), "{user}");
    assert!(user.get("new_email").is_none(), "{user}");
}

async fn users_never_reach_each_others_data(backend: Backend) {
    let Some((s, _fake)) = start(backend, true).await else {
        return;
    };
    let alice = s.signup("alice@example.com").await;
    let mallory = s.signup("mallory@example.com").await;
    let (_, turn) = s
        .post(
            "/api/v1/chat",
            Some(&alice),
            json!({"message": "My bank PIN is 4321"}),
        )
        .await;
    s.run_jobs().await;
    let (status, found) = s
        .post(
            "/api/v1/memories/search",
            Some(&mallory),
            json!({"query": "bank PIN", "limit": 20}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(found["memories"], json!([]));
    let (status, body) = s
        .post(
            "/api/v1/chat",
            Some(&mallory),
            json!({"message": "what was my PIN?", "session_id": turn["session_id"]}),
        )
        .await;
    assert_error(status, &body, StatusCode::NOT_FOUND, "not_found");
    let (_, summary) = s.get("/api/v1/memories/summary", Some(&mallory)).await;
    assert_eq!(summary["memory_count"], 0);
    let (_, deleted) = s
        .send(
            reqwest::Method::DELETE,
            "/api/v1/memories",
            Some(&mallory),
            None,
        )
        .await;
    assert_eq!(deleted["deleted"], 0);
    let (_, found) = s
        .post(
            "/api/v1/memories/search",
            Some(&alice),
            json!({"query": "bank PIN"}),
        )
        .await;
    assert_eq!(found["memories"], json!(["My bank PIN is 4321"]));
    let memory_id = found["results"][0]["id"].as_str().unwrap().to_owned();
    let session = turn["session_id"].as_str().unwrap().to_owned();

    // The OpenAI-compatible door: none of Alice's memories, not her conversation.
    let completions = |token: &str, session: Option<&str>, stream: bool| {
        let mut r = s
            .http
            .post(format!("{}/v1/chat/completions", s.base))
            .bearer_auth(token)
            .json(&json!({"model": "m", "stream": stream,
                          "messages": [{"role": "user", "content": "What is my bank PIN?"}]}));
        if let Some(id) = session {
            r = r.header("x-homi-session-id", id);
        }
        r.send()
    };
    let resp = completions(&mallory, None, false).await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["homi"]["memories_used"], json!([]), "{body}");
    let resp = completions(&mallory, None, true).await.unwrap();
    let text = resp.text().await.unwrap();
    // Everything in the stream but its random ids and times.
    let said: String = text
        .lines()
        .map(|line| {
            match line
                .strip_prefix("data: ")
                .map(serde_json::from_str::<Value>)
            {
                Some(Ok(Value::Object(mut chunk))) => {
                    chunk.remove("id");
                    chunk.remove("created");
                    Value::Object(chunk).to_string()
                }
                _ => line.to_owned(),
            }
        })
        .collect();
    assert!(text.contains("data: "), "{text}");
    assert!(!said.contains("4321"), "{text}");
    let resp = completions(&mallory, Some(&session), false).await.unwrap();
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
    let resp = completions(&mallory, Some(&session), true).await.unwrap();
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
    // Alice's own completion is given her memory.
    let resp = completions(&alice, None, false).await.unwrap();
    let body: Value = resp.json().await.unwrap();
    assert_eq!(
        body["homi"]["memories_used"],
        json!(["My bank PIN is 4321"])
    );

    // The streamed turn, her conversation, her memory one by one.
    let (status, body) = s
        .post(
            "/api/v1/chat/stream",
            Some(&mallory),
            json!({"message": "what was my PIN?", "session_id": session}),
        )
        .await;
    assert_error(status, &body, StatusCode::NOT_FOUND, "not_found");
    for path in [
        format!("/api/v1/sessions/{session}/messages"),
        format!("/api/v1/memories/{memory_id}"),
        format!("/api/v1/memories/{memory_id}/history"),
    ] {
        let (status, body) = s.get(&path, Some(&mallory)).await;
        assert_error(status, &body, StatusCode::NOT_FOUND, "not_found");
    }
    let (status, body) = s
        .put(
            &format!("/api/v1/memories/{memory_id}"),
            Some(&mallory),
            json!({"memory": "My PIN is 0000"}),
        )
        .await;
    assert_error(status, &body, StatusCode::NOT_FOUND, "not_found");
    for path in [
        format!("/api/v1/sessions/{session}"),
        format!("/api/v1/memories/{memory_id}"),
    ] {
        let (status, body) = s.delete(&path, Some(&mallory)).await;
        assert_error(status, &body, StatusCode::NOT_FOUND, "not_found");
    }
    let (_, sessions) = s.get("/api/v1/sessions", Some(&mallory)).await;
    assert!(
        !sessions.to_string().contains(&session),
        "Mallory's conversations: {sessions}"
    );
    // Mallory has none (a text search of the body would also match her own
    // random user id now and then).
    let (status, listed) = s.get("/api/v1/memories", Some(&mallory)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(listed["results"], json!([]), "{listed}");
    // Everything of Alice's is still there.
    let (status, kept) = s
        .get(&format!("/api/v1/memories/{memory_id}"), Some(&alice))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(kept["memory"], "My bank PIN is 4321");
    let (status, messages) = s
        .get(
            &format!("/api/v1/sessions/{session}/messages"),
            Some(&alice),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(messages.as_array().unwrap().len(), 2, "{messages}");
}

async fn provider_trouble_is_5xx_and_loses_nothing(backend: Backend) {
    let Some((s, fake)) = start(backend, true).await else {
        return;
    };
    let fake = fake.unwrap();
    let token = s.signup("carol@example.com").await;
    fake.push_fault(Target::Chat, Fault::ServerError, 1);
    let (status, body) = s
        .post(
            "/api/v1/chat",
            Some(&token),
            json!({"message": "I adopted a cat named Miso", "session_id": "carol-1"}),
        )
        .await;
    assert_error(
        status,
        &body,
        StatusCode::BAD_GATEWAY,
        "provider_unavailable",
    );
    // What the provider said, and where it is, stay in the server's log.
    let private = |body: &Value| {
        let detail = body["detail"].as_str().unwrap();
        assert!(detail.contains("x-request-id"), "{detail}");
        for leak in [
            fake.base_url(),
            "fake provider".to_owned(),
            "chatcmpl-fake".to_owned(),
        ] {
            assert!(!detail.contains(&leak), "{leak} in {detail}");
        }
    };
    private(&body);
    let user = s
        .state
        .auth
        .verify_access_token(&token)
        .await
        .unwrap()
        .user_id
        .to_string();
    let kept = s.state.chat.messages(&user, "carol-1", 10).await.unwrap();
    assert_eq!(kept.len(), 1, "the message is saved");
    s.run_jobs().await;
    let (_, found) = s
        .post(
            "/api/v1/memories/search",
            Some(&token),
            json!({"query": "cat"}),
        )
        .await;
    assert_eq!(found["memories"], json!(["I adopted a cat named Miso"]));
    fake.push_fault(Target::Chat, Fault::Timeout { delay_ms: 3_000 }, 1);
    let (status, body) = s
        .post(
            "/api/v1/chat",
            Some(&token),
            json!({"message": "Still there?", "session_id": "carol-2"}),
        )
        .await;
    assert_error(
        status,
        &body,
        StatusCode::GATEWAY_TIMEOUT,
        "provider_timeout",
    );
    let kept = s.state.chat.messages(&user, "carol-2", 10).await.unwrap();
    assert_eq!(kept.len(), 1, "the message is saved");
    assert_eq!(kept[0].content, "Still there?");
    // The embeddings fail too: the extraction job waits for the provider.
    fake.push_fault(Target::Embeddings, Fault::ServerError, 1);
    let (status, body) = s
        .post(
            "/api/v1/chat",
            Some(&token),
            json!({"message": "My sister is called Ines", "session_id": "carol-3"}),
        )
        .await;
    assert_error(
        status,
        &body,
        StatusCode::BAD_GATEWAY,
        "provider_unavailable",
    );
    private(&body);
    s.run_jobs().await;
    let (_, found) = s
        .post(
            "/api/v1/memories/search",
            Some(&token),
            json!({"query": "sister"}),
        )
        .await;
    assert!(
        found["memories"]
            .as_array()
            .unwrap()
            .contains(&json!("My sister is called Ines")),
        "{found}"
    );
    // An answer that is not JSON: its text is not sent back.
    fake.push_fault(Target::Chat, Fault::MalformedJson, 1);
    let (status, body) = s
        .post(
            "/api/v1/chat",
            Some(&token),
            json!({"message": "Anything new?", "session_id": "carol-4"}),
        )
        .await;
    assert_error(
        status,
        &body,
        StatusCode::BAD_GATEWAY,
        "provider_invalid_response",
    );
    private(&body);
    assert!(
        !body["detail"].as_str().unwrap().contains("raw answer"),
        "{body}"
    );
}

async fn without_a_provider_auth_works_and_chat_says_what_to_set(backend: Backend) {
    let Some((s, _)) = start(backend, false).await else {
        return;
    };
    let token = s.signup("nokey@example.com").await;
    let (status, body) = s
        .post("/api/v1/chat", Some(&token), json!({"message": "hello"}))
        .await;
    assert_error(
        status,
        &body,
        StatusCode::SERVICE_UNAVAILABLE,
        "provider_not_configured",
    );
    assert!(
        body["detail"].as_str().unwrap().contains("OPENAI_API_KEY"),
        "{body}"
    );
    let (status, ready) = s.get("/api/v1/health", None).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        ready["provider"]
            .as_str()
            .unwrap()
            .starts_with("not configured")
    );
    let (status, _) = s.get("/api/v1/memories/summary", Some(&token)).await;
    assert_eq!(status, StatusCode::OK);
}

conformance!(
    account_routes_work_and_fail_clearly,
    users_never_reach_each_others_data,
    provider_trouble_is_5xx_and_loses_nothing,
    without_a_provider_auth_works_and_chat_says_what_to_set,
);
