//! The Auth client: Homi's built-in accounts, step by step.
//!
//! ```text
//! HOMI_EXAMPLE_PASSWORD='a long passphrase' cargo run -p homi-examples --bin auth -- \
//!     --email ada@example.com --name "Ada Lovelace"
//! ```
//!
//! Signs up (or, when the email is taken, goes on as a returning user), signs
//! in, verifies the access token as a server does for each request, reads and
//! updates the profile, trades the refresh token for a new pair, signs out
//! (the access token stops working at once), and finally creates an API key
//! for a backend that has users of its own. Accounts live in the database of
//! `DATABASE_URL`; no model provider is needed.

use std::process::ExitCode;

use homi_core::auth::{Auth, KeyScope, NewApiKey, SignUp, UserUpdate};
use homi_core::{Config, ErrorKind};

/// A failure of the example: an error of Homi's, or a check of its own.
type Failure = Box<dyn std::error::Error>;

const HELP: &str = "usage: auth [--email ADDRESS] [--password PASSWORD] [--name NAME]

The email and password may also come from HOMI_EXAMPLE_EMAIL and
HOMI_EXAMPLE_PASSWORD (better for a password than the command line).
Defaults: ada@example.com and a demo password.

Configuration comes from the environment or a .env file:
  DATABASE_URL              sqlite://path (default sqlite://homi.db) or postgres://…
  HOMI_JWT_SECRET           signs access tokens (default: generated, kept in the store)
  HOMI_PASSWORD_MIN_LENGTH  shortest password accepted (default 8)";

struct Args {
    email: String,
    password: String,
    name: String,
}

fn parse_args() -> Result<Args, String> {
    let env = |name: &str, default: &str| std::env::var(name).unwrap_or_else(|_| default.into());
    let mut args = Args {
        email: env("HOMI_EXAMPLE_EMAIL", "ada@example.com"),
        password: env("HOMI_EXAMPLE_PASSWORD", "correct horse battery staple"),
        name: "Ada Lovelace".to_owned(),
    };
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        match a.as_str() {
            "--email" => args.email = it.next().ok_or("--email needs a value")?,
            "--password" => args.password = it.next().ok_or("--password needs a value")?,
            "--name" => args.name = it.next().ok_or("--name needs a value")?,
            "-h" | "--help" => return Err(String::new()),
            other => return Err(format!("unknown argument '{other}'")),
        }
    }
    Ok(args)
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            if !e.is_empty() {
                eprintln!("error: {e}");
            }
            eprintln!("{HELP}");
            return ExitCode::from(2);
        }
    };
    let config = match Config::from_env() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    match run(&config, args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // Errors say what went wrong without giving anything away: a
            // wrong password is "invalid email or password", whichever part
            // was wrong.
            eprintln!("error: {e}");
            ExitCode::from(1)
        }
    }
}

async fn run(config: &Config, args: Args) -> Result<(), Failure> {
    // Built-in accounts unless SUPABASE_URL and SUPABASE_KEY are set; the
    // calls below are the same for both.
    let auth = Auth::open(config).await?;
    println!("auth backend: {:?}", auth.backend());

    // 1. Sign up. The password is checked (length) and hashed with argon2id;
    //    the new user is signed in at once unless email confirmation is on.
    let sign_up = SignUp::new(&args.email, &args.password).with_full_name(&args.name);
    match auth.sign_up(sign_up).await {
        Ok(signed_up) => {
            println!(
                "signed up: {} ({})",
                signed_up.user.email, signed_up.user.id
            );
            if signed_up.session.is_none() {
                println!("a confirmation link was emailed; sign in once it is followed");
                return Ok(());
            }
        }
        Err(e) if e.kind() == ErrorKind::Conflict => {
            println!("{} already has an account: signing in", args.email);
        }
        Err(e) => return Err(e.into()),
    }

    // 2. Sign in: an auth session with a short-lived access token (a JWT)
    //    and a refresh token.
    let session = auth.sign_in(&args.email, &args.password).await?;
    println!("signed in: access token expires in {}s", session.expires_in);

    // 3. What a server does with each request's `Authorization: Bearer …`:
    //    the user id comes from the verified token, never from the request.
    let principal = auth.verify_access_token(&session.access_token).await?;
    println!(
        "access token verified: user {} (auth session {})",
        principal.user_id, principal.session_id
    );

    // 4. The profile, read and changed.
    let user = auth.get_user(&principal).await?;
    println!(
        "profile: {} \"{}\"",
        user.email,
        user.full_name.unwrap_or_default()
    );
    let user = auth
        .update_user(
            &principal,
            UserUpdate::default().full_name(format!("{} (updated)", args.name)),
        )
        .await?;
    println!(
        "profile updated: \"{}\"",
        user.full_name.unwrap_or_default()
    );

    // 5. Refresh: the refresh token buys a new pair and is spent. (Presenting
    //    a spent one again is taken as theft and ends the whole auth session.)
    let session = auth.refresh(&session.refresh_token).await?;
    let refreshed = auth.verify_access_token(&session.access_token).await?;
    if refreshed.session_id != principal.session_id {
        return Err("the refreshed token belongs to another auth session".into());
    }
    println!("refreshed: new access token verified for the same auth session");
    let principal = refreshed;

    // 6. Sign out: the auth session is revoked, so its access token stops
    //    working at once, well before it expires, and so does its refresh token.
    auth.sign_out(&principal).await?;
    println!("signed out");
    match auth.verify_access_token(&session.access_token).await {
        Err(e) => println!("after sign-out the access token is refused: {e}"),
        Ok(_) => return Err("the access token still works after sign-out".into()),
    }
    if auth.refresh(&session.refresh_token).await.is_ok() {
        return Err("the refresh token still works after sign-out".into());
    }
    println!("after sign-out the refresh token is refused too");

    // 7. An API key for a backend with users of its own (the mem0 server's
    //    model): it calls Homi with `X-API-Key` and names the user per request.
    //    The secret is shown once; the store keeps only its digest.
    let created = auth
        .create_api_key(NewApiKey::new(
            "support-bot",
            "acme",
            vec![KeyScope::Read, KeyScope::Write],
        ))
        .await?;
    println!(
        "API key '{}' created: {}… (scopes: read, write)",
        created.key.name, created.key.prefix
    );
    let caller = auth.verify_api_key(created.secret()).await?;
    // The key's users live in its namespace, apart from signed-up accounts.
    println!(
        "API key verified: may write: {}, may manage keys: {}, user 'customer-42' is stored as '{}'",
        caller.allows(KeyScope::Write),
        caller.allows(KeyScope::Admin),
        caller.user_id("customer-42")?
    );
    // Revoked, it stops working at once.
    auth.revoke_api_key(created.key.id).await?;
    if auth.verify_api_key(created.secret()).await.is_ok() {
        return Err("the API key still works after revocation".into());
    }
    println!("API key revoked: refused from now on");
    Ok(())
}
