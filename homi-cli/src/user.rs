//! `homi user …`: the built-in accounts.

use clap::Subcommand;
use homi_core::auth::Auth;
use homi_core::{Config, Error};
use serde_json::json;

use crate::output::{Out, print_table};

#[derive(Debug, Subcommand)]
pub(crate) enum UserCommand {
    /// Create an account. The password comes from HOMI_NEW_PASSWORD, or is
    /// asked for twice without echo on a terminal, or is the first line of
    /// standard input.
    Create {
        /// Email address.
        email: String,
        /// Display name.
        #[arg(long)]
        name: Option<String>,
    },
    /// List the accounts.
    List {
        /// At most this many.
        #[arg(long, default_value_t = 100)]
        limit: usize,
        /// Skip this many.
        #[arg(long, default_value_t = 0)]
        offset: usize,
    },
    /// Delete an account and everything of the user's (memories, conversations, sessions).
    Delete {
        /// The user's id.
        id: String,
    },
}

pub(crate) async fn run(config: &Config, command: UserCommand, out: Out) -> homi_core::Result<()> {
    let auth = Auth::open(config).await?;
    match command {
        UserCommand::Create { email, name } => {
            let password = match std::env::var("HOMI_NEW_PASSWORD") {
                Ok(p) if !p.is_empty() => p,
                _ => read_password()?,
            };
            let mut request = homi_core::auth::SignUp::new(email, password);
            if let Some(n) = name {
                request = request.with_full_name(n);
            }
            let up = auth.sign_up(request).await?;
            out.show(&json!(up.user), |_| {
                println!("{}  {}", up.user.id, up.user.email);
            });
        }
        UserCommand::List { limit, offset } => {
            let users = auth.list_users(limit, offset).await?;
            out.show(&json!({"users": users}), |_| {
                let rows: Vec<Vec<String>> = users
                    .into_iter()
                    .map(|u| {
                        vec![
                            u.id.to_string(),
                            u.email,
                            u.created_at.format("%Y-%m-%d %H:%M").to_string(),
                            u.full_name.unwrap_or_default(),
                        ]
                    })
                    .collect();
                print_table(&["ID", "EMAIL", "CREATED", "NAME"], &rows);
            });
        }
        UserCommand::Delete { id } => {
            let uuid = uuid::Uuid::parse_str(id.trim())
                .map_err(|_| Error::invalid("id", format!("'{id}' is not a user id")))?;
            if !auth.delete_user(uuid).await? {
                return Err(Error::not_found(format!("user {id}")));
            }
            out.show(&json!({"deleted": 1, "id": id}), |_| {
                println!("deleted user {id} and everything of theirs");
            });
        }
    }
    Ok(())
}

/// The new password: asked for twice, without echo, on a terminal; else the
/// first line of standard input.
fn read_password() -> homi_core::Result<String> {
    use std::io::IsTerminal;
    let failed = |e: std::io::Error| Error::invalid("password", format!("cannot read it: {e}"));
    if std::io::stdin().is_terminal() {
        let first = rpassword::prompt_password("Password: ").map_err(failed)?;
        let again = rpassword::prompt_password("Repeat it: ").map_err(failed)?;
        if first != again {
            return Err(Error::invalid("password", "the two entries differ"));
        }
        return Ok(first);
    }
    let mut line = String::new();
    std::io::stdin().read_line(&mut line).map_err(failed)?;
    Ok(line.trim_end_matches(['\n', '\r']).to_owned())
}
