//! The Chat client: memory-augmented turns, streamed, in one conversation.
//!
//! ```text
//! OPENAI_API_KEY=sk-… cargo run -p homi-examples --bin chat -- --user alice \
//!     "I live in Lisbon" "Where should I go for a walk?"
//! printf 'I have a beagle named Rex\nWhat is my dog called?\n' | cargo run -p homi-examples --bin chat
//! ```
//!
//! Each message is one turn: Homi searches the user's memories, streams the
//! reply (the memories it used first, then the text as it arrives), stores the
//! turn in the conversation and queues the extraction of new memories as a
//! durable job. A background worker runs those jobs, so the *next* turn knows
//! what this one taught it. At the end the user's conversations are listed.

use std::collections::HashSet;
use std::io::{IsTerminal, Write};
use std::process::ExitCode;
use std::time::Duration;

use futures::StreamExt;
use homi_core::chat::{Chat, ChatEvent};
use homi_core::{Config, Error, ListOptions, Scope};
use tokio::io::AsyncBufReadExt;

const HELP: &str = "usage: chat [--user ID] [--session ID] [MESSAGE...]

Every MESSAGE is one turn of the same conversation; without any, the lines of
standard input are. --session continues an earlier conversation.

Configuration comes from the environment or a .env file:
  OPENAI_API_KEY        use OpenAI
  OPENAI_BASE_URL       or any OpenAI-compatible server (Ollama, vLLM, llama.cpp)
  MODEL_CHOICE          chat model (default gpt-4o-mini)
  DATABASE_URL          sqlite://path (default sqlite://homi.db) or postgres://…";

/// How long to wait for the extraction of a turn before moving on.
const EXTRACTION_WAIT: Duration = Duration::from_secs(30);

struct Args {
    user: String,
    session: Option<String>,
    messages: Vec<String>,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        user: "alice".to_owned(),
        session: None,
        messages: Vec::new(),
    };
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        match a.as_str() {
            "--user" => args.user = it.next().ok_or("--user needs a value")?,
            "--session" => args.session = Some(it.next().ok_or("--session needs a value")?),
            "-h" | "--help" => return Err(String::new()),
            other if other.starts_with("--") => return Err(format!("unknown option '{other}'")),
            message => args.messages.push(message.to_owned()),
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
    // A present but invalid variable is an error that names it.
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
            // Every failure is an `Error` with a sentence for people: a
            // message that is too long names the field, a missing provider
            // says what to set.
            eprintln!("error: {e}");
            ExitCode::from(1)
        }
    }
}

async fn run(config: &Config, args: Args) -> homi_core::Result<()> {
    // One call opens the store (conversations, memories and the job queue
    // live in the same database) and the chat model.
    let chat = Chat::open(config).await?;

    // The reply never waits for memory extraction: each turn queues a job in
    // the store. A worker runs those jobs in the background until `stop`
    // fires (`homi serve` and `homi chat` run the same worker).
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let worker = chat
        .queue()
        .clone()
        .spawn_worker(chat.memory().clone(), async {
            let _ = stopped.await;
        });

    let result = converse(&chat, args).await;

    let _ = stop.send(());
    let _ = worker.await;
    result
}

async fn converse(chat: &Chat, args: Args) -> homi_core::Result<()> {
    let user = args.user;
    let scope = Scope::user(user.clone());
    // What is remembered already, so that only new memories are shown below.
    let mut known: HashSet<_> = chat
        .memory()
        .get_all(&scope, ListOptions::default())
        .await?
        .into_iter()
        .map(|m| m.id)
        .collect();
    println!("{user}: {} memories so far", known.len());

    // Messages from the arguments, or else one per line of standard input.
    let mut given = args.messages.into_iter();
    let mut stdin =
        (given.len() == 0).then(|| tokio::io::BufReader::new(tokio::io::stdin()).lines());
    if stdin.is_some() && std::io::stdin().is_terminal() {
        println!("Type a message per line; end with Ctrl-D.");
    }
    let mut session = args.session;
    let mut out = std::io::stdout();
    loop {
        let message = match &mut stdin {
            None => given.next(),
            Some(lines) => lines
                .next_line()
                .await
                .map_err(|e| Error::invalid("stdin", e.to_string()))?,
        };
        let Some(message) = message else { break };
        if message.trim().is_empty() {
            continue;
        }
        println!("You: {}", message.trim());

        // One streamed turn. `None` as the session starts a new conversation;
        // its id arrives with the first event and is passed back afterwards.
        let mut events = chat.stream(&user, &message, session.as_deref()).await?;
        while let Some(event) = events.next().await {
            match event? {
                // First: the conversation and the memories the reply is given.
                ChatEvent::Memories {
                    session_id,
                    memories,
                } => {
                    if session.as_deref() != Some(session_id.as_str()) {
                        println!("  (conversation {session_id})");
                    }
                    session = Some(session_id);
                    if memories.is_empty() {
                        println!("  memories used: none");
                    } else {
                        println!("  memories used: {}", memories.join("; "));
                    }
                    print!("AI: ");
                }
                // Then the reply, piece by piece, as the model writes it.
                ChatEvent::Delta { content } => print!("{content}"),
                // Last: the turn, stored (and its extraction queued).
                ChatEvent::Done(turn) => println!(
                    "\n  ({} + {} tokens, {})",
                    turn.usage.prompt_tokens, turn.usage.completion_tokens, turn.model
                ),
            }
            let _ = out.flush();
        }

        // A chatbot would answer the next message at once. The example waits
        // for the worker instead, to show what the turn taught Homi: the next
        // turn finds it among its memories.
        let left = chat.queue().wait_until_idle(EXTRACTION_WAIT).await?;
        if left.queued + left.running > 0 {
            println!(
                "  (extraction is not done yet: it stays queued and runs with the next worker)"
            );
        }
        for m in chat
            .memory()
            .get_all(&scope, ListOptions::default())
            .await?
        {
            if known.insert(m.id) {
                println!("  learned: {}", m.memory);
            }
        }
    }

    // Conversations are kept per user, most recent first.
    println!("conversations of {user}:");
    for c in chat.conversations(&user, 10, 0).await? {
        println!(
            "  {}  {}  \"{}\"",
            c.id,
            c.updated_at.format("%Y-%m-%d %H:%M"),
            c.title.unwrap_or_default()
        );
    }
    Ok(())
}
