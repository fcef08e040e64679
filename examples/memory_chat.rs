//! A chat with long-term memory on the embedded store: the original
//! `memory-agent.py` loop in Rust.
//!
//! ```text
//! OPENAI_API_KEY=sk-… cargo run --release -p homi-examples --bin memory_chat -- --user alice
//! OPENAI_BASE_URL=http://localhost:11434/v1 MODEL_CHOICE=llama3.1 \
//!   HOMI_EMBEDDING_MODEL=nomic-embed-text cargo run --release -p homi-examples --bin memory_chat
//! ```
//!
//! Each turn searches the user's memories, answers with them in the system
//! prompt, then stores what was learned (`add` with `infer=true`). Reads lines
//! from standard input, so it also runs from a pipe. `exit` or end of input stops.

use std::io::{BufRead, IsTerminal, Write};
use std::process::ExitCode;
use std::sync::Arc;

use homi_core::provider::openai::OpenAiChatModel;
use homi_core::provider::{ChatMessage, ChatModel, ChatRequest};
use homi_core::{AddOptions, Config, Event, Memory, Scope, SearchOptions};

const HELP: &str = "usage: memory_chat [--user ID] [--show-memories]

Configuration comes from the environment or a .env file:
  OPENAI_API_KEY        use OpenAI
  OPENAI_BASE_URL       or any OpenAI-compatible server (Ollama, vLLM, llama.cpp)
  MODEL_CHOICE          chat model (default gpt-4o-mini)
  HOMI_EMBEDDING_MODEL  embedding model (default text-embedding-3-small)
  DATABASE_URL          sqlite://path (default sqlite://homi.db)";

struct Args {
    user: String,
    show_memories: bool,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        user: "default_user".to_owned(),
        show_memories: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        match a.as_str() {
            "--user" => args.user = it.next().ok_or("--user needs a value")?,
            "--show-memories" => args.show_memories = true,
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
    if !config.provider.is_configured() {
        eprintln!(
            "Homi needs a model provider. Set OPENAI_API_KEY=sk-... to use OpenAI, or \
             OPENAI_BASE_URL=http://host:port/v1 to use any OpenAI-compatible server \
             (Ollama, vLLM, llama.cpp), in the environment or in a .env file."
        );
        return ExitCode::from(2);
    }
    match run(config, args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(1)
        }
    }
}

async fn run(config: Config, args: Args) -> homi_core::Result<()> {
    let memory = Memory::open(&config).await?;
    let chat: Arc<dyn ChatModel> = Arc::new(OpenAiChatModel::new(&config.provider)?);
    let user = Scope::user(args.user.clone());
    let interactive = std::io::stdin().is_terminal();
    if interactive {
        println!("Chat with Homi as '{}' (type 'exit' to quit)", args.user);
    }
    let stdin = std::io::stdin();
    let mut lines = stdin.lock().lines();
    loop {
        if interactive {
            print!("You: ");
            let _ = std::io::stdout().flush();
        }
        let Some(Ok(line)) = lines.next() else { break };
        let message = line.trim();
        if message.is_empty() {
            continue;
        }
        if message.eq_ignore_ascii_case("exit") || message.eq_ignore_ascii_case("quit") {
            break;
        }
        let found = memory
            .search(message, &user, SearchOptions::default().limit(3))
            .await?;
        let bullets: Vec<String> = found
            .results
            .iter()
            .map(|m| format!("- {}", m.memory))
            .collect();
        let system = format!(
            "You are a helpful AI. Answer the question based on query and memories.\nUser Memories:\n{}",
            bullets.join("\n")
        );
        let reply = chat
            .complete(ChatRequest::new(vec![
                ChatMessage::system(system),
                ChatMessage::user(message),
            ]))
            .await?;
        println!("AI: {}", reply.content);
        let turn = vec![
            ChatMessage::user(message),
            ChatMessage::assistant(reply.content),
        ];
        let added = memory.add(turn, &user, AddOptions::default()).await?;
        if args.show_memories {
            for m in &found.results {
                println!("  (used) {}", m.memory);
            }
            for e in added.results.iter().filter(|e| e.event != Event::None) {
                println!("  ({}) {}", e.event.as_str(), e.memory);
            }
        }
    }
    if interactive {
        println!("Goodbye!");
    }
    Ok(())
}
