//! `rbplan batch`: plans for many services. (Being built.)

use crate::cli::BatchArgs;
use crate::commands::Ui;
use crate::error::{Error, Outcome, Result};

pub async fn run(_args: BatchArgs, _ui: Ui) -> Result<Outcome> {
    Err(Error::usage("rbplan batch is not implemented yet"))
}
