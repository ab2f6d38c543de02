//! `jcadm`: jobcenter's admin tool (see the library for the commands).
//!
//! Exit status: 0 on success, 1 when the command failed or was not confirmed, 2 on a usage
//! error.

use std::process::ExitCode;

use clap::Parser;
use jcadm::Cli;

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let mut out = std::io::stdout().lock();
    match jcadm::run(&cli, &mut out).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("jcadm: {}: {e}", e.code());
            ExitCode::from(1)
        }
    }
}
