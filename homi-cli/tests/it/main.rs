//! The `homi` command's integration tests, in one binary: each module drives
//! the built command (`assert_cmd`) on SQLite and Postgres.

#[macro_use]
#[path = "../../../homi-core/tests/it/common.rs"]
mod common;

mod keys;
mod memory;
mod transfer;
