#![doc = include_str!("../README.md")]

pub mod cdr;
pub mod config;
pub mod db;
pub mod ingest;
pub mod queue;
pub mod runtime;
pub mod state;
pub mod store;
