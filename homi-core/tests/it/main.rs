//! homi-core's integration tests, in one binary (one link step instead of one
//! per file): each module is a group of tests, compiled when the features it
//! needs are on. The conformance tests (`homi_testkit::conformance!`) run
//! once per store: SQLite, and Postgres with the `postgres` feature.

#[macro_use]
extern crate homi_testkit;

mod common;

#[cfg(all(
    feature = "auth",
    feature = "chat",
    feature = "sqlite",
    feature = "openai"
))]
mod auth;
#[cfg(all(feature = "auth", feature = "sqlite", feature = "openai"))]
mod auth_supabase;
#[cfg(all(feature = "chat", feature = "sqlite", feature = "openai"))]
mod chat;
#[cfg(all(feature = "sqlite", feature = "postgres", feature = "openai"))]
mod import;
#[cfg(all(feature = "sqlite", feature = "openai"))]
mod jobs;
#[cfg(all(feature = "sqlite", feature = "openai"))]
mod memory;
#[cfg(feature = "postgres")]
mod postgres;
#[cfg(feature = "openai")]
mod provider;
#[cfg(all(feature = "sqlite", feature = "openai"))]
mod transfer;
