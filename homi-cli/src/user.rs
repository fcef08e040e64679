//! `homi user …`: the built-in accounts.

use clap::Subcommand;
use homi_core::auth::Auth;
use homi_core::{Config, Error};
use serde_json::json;

use crate::output::{Out, print_table};

#[derive(Debug, Subcommand)]
pub(crate) enum UserCommand {
    /// Create an account (the password comes from HOMI_NEW_PASSWORD or stdin).
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
                _ => {
                    let mut line = String::new();
                    std::io::stdin().read_line(&mut line).map_err(|e| {
                        Error::invalid("password", format!("cannot read stdin: {e}"))
                    })?;
                    line.trim_end_matches(['\n', '\r']).to_owned()
                }
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
            out.show(&json!({"deleted": id}), |_| {
                println!("deleted user {id} and everything of theirs");
            });
        }
    }
    Ok(())
}
