//! The fake's own tests: GoTrue's behaviour over real HTTP.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use super::http::*;
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

mod links;
