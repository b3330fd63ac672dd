//! Integration tests: the built `rbplan` binary against local HTTP servers on 127.0.0.1.
//! One test binary (faster to build), one module per area.

mod common;
mod model;
mod parallel;
mod server;

mod action;
mod architecture;
mod ask;
mod batch;
mod batchapi;
mod check;
mod config;
mod context;
mod faults;
mod limited;
mod live;
mod living;
mod ratelimits;
mod regen;
mod revise;
mod smollm2;
mod smollm2_parallel;
mod verdicts;
