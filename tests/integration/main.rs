//! Integration tests: the built `rbplan` binary against local HTTP servers on 127.0.0.1.
//! One test binary (faster to build), one module per area.

mod common;
mod model;
mod parallel;
mod server;

mod action;
mod adopt;
mod architecture;
mod ask;
mod batch;
mod batchapi;
mod check;
mod concerns;
mod config;
mod context;
mod deadline;
mod faults;
mod grounding;
mod grounding_example;
mod limited;
mod live;
mod living;
mod quality;
mod ratelimits;
mod regen;
mod repair;
mod revise;
mod runbook;
mod smollm2;
mod smollm2_parallel;
mod verdicts;
