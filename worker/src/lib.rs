#![doc = include_str!("../README.md")]

pub mod cli;
pub mod pool;
pub mod telemetry;
