//! The `homi` command's integration tests, in one binary: each module drives
//! the built command (`assert_cmd`) on SQLite and Postgres (`conformance!`).

#[macro_use]
extern crate homi_testkit;

/// The test databases, shared with homi-core's and the server's tests.
use homi_testkit::db as common;

mod keys;
mod memory;
mod transfer;
