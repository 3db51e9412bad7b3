//! `marquee dashboard hash-password` and `new-token`: the credentials the
//! `[dashboard]` section takes, made without the secret ever being stored.

use crate::credentials as auth;
use anyhow::Context as _;
use std::io::{BufRead, IsTerminal, Write};
use std::process::ExitCode;

#[derive(Debug, clap::Subcommand)]
pub enum DashboardCommand {
    /// Read a password on stdin and print `password_hash = "..."` for [dashboard].
    HashPassword,
    /// Print a new API token and the `api_token_sha256` entry that accepts it.
    NewToken,
}

pub fn run(command: DashboardCommand) -> anyhow::Result<ExitCode> {
    match command {
        DashboardCommand::HashPassword => {
            let stdin = std::io::stdin();
            if stdin.is_terminal() {
                eprint!("Dashboard password (input is shown): ");
                let _ = std::io::stderr().flush();
            }
            let mut line = String::new();
            stdin
                .lock()
                .read_line(&mut line)
                .context("reading the password from stdin")?;
            let password = line.trim_end_matches(['\n', '\r']);
            if password.chars().count() < 8 {
                anyhow::bail!("the password is shorter than 8 characters; choose a longer one");
            }
            let hash = auth::hash_password(password)?;
            println!("[dashboard]\npassword_hash = \"{hash}\"");
        }
        DashboardCommand::NewToken => {
            let (token, hash) = auth::new_token()?;
            println!("# Give this token to the API client (it is not stored anywhere):");
            println!("# {token}");
            println!("[dashboard]\napi_token_sha256 = [\"{hash}\"]");
        }
    }
    Ok(ExitCode::SUCCESS)
}
