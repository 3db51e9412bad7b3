//! `marquee dashboard hash-password` and `new-token`: the credentials the
//! `[dashboard]` section takes, made without the secret ever being stored.

use crate::credentials as auth;
use anyhow::Context as _;
use std::io::{BufRead, IsTerminal};
use std::process::ExitCode;

#[derive(Debug, clap::Subcommand)]
pub enum DashboardCommand {
    /// Read a password (not echoed on a terminal; one line on a pipe) and
    /// print `password_hash = "..."` for [dashboard].
    HashPassword,
    /// Print a new API token and the `api_token_sha256` entry that accepts it.
    NewToken,
}

pub fn run(command: DashboardCommand) -> anyhow::Result<ExitCode> {
    match command {
        DashboardCommand::HashPassword => {
            let password = read_password()?;
            let password = password.as_str();
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

/// The password: asked twice without echo on a terminal, one line from a
/// pipe (`echo ... | marquee dashboard hash-password` in scripts).
fn read_password() -> anyhow::Result<String> {
    if std::io::stdin().is_terminal() {
        let first = rpassword::prompt_password("Dashboard password: ")
            .context("reading the password from the terminal")?;
        let again = rpassword::prompt_password("The same again: ")
            .context("reading the password from the terminal")?;
        if first != again {
            anyhow::bail!("the two passwords differ; run the command again");
        }
        return Ok(first);
    }
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .context("reading the password from stdin")?;
    Ok(line.trim_end_matches(['\n', '\r']).to_owned())
}
