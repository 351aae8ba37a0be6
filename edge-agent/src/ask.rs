//! Asking the installer for what `setup`'s flags left out: at a terminal, one question per
//! missing value on stderr, read back from stdin (the token without echo); otherwise a
//! missing value is an error that names its flag. A module of the binary only.

use std::fmt::Display;
use std::io::{BufRead, IsTerminal, Read, Write};
use std::str::FromStr;

/// A value `setup` needs was not given and cannot be asked for (exit status 64).
#[derive(Debug, thiserror::Error)]
#[error("{flag} is missing (stdin is not a terminal, so it cannot be asked for): {hint}")]
pub(crate) struct Missing {
    flag: &'static str,
    hint: &'static str,
}

/// How many answers to a question are refused before giving up.
const ATTEMPTS: usize = 3;
/// The longest answer read.
const MAX_ANSWER: u64 = 1024;

#[derive(Debug)]
pub(crate) struct Asker {
    terminal: bool,
}

impl Asker {
    pub(crate) fn new() -> Asker {
        Asker {
            terminal: std::io::stdin().is_terminal(),
        }
    }

    /// `given`, or the answer to `question` parsed as `T`, asked again after a bad answer.
    pub(crate) fn value<T>(
        &self,
        given: Option<T>,
        flag: &'static str,
        question: &'static str,
    ) -> anyhow::Result<T>
    where
        T: FromStr,
        T::Err: Display,
    {
        if let Some(value) = given {
            return Ok(value);
        }
        self.ask(flag, question, false, |text| {
            text.parse::<T>().map_err(|e| e.to_string())
        })
    }

    /// Like [`Asker::value`], with parsing done by `parse` and echo off when `secret`.
    pub(crate) fn ask<T>(
        &self,
        flag: &'static str,
        question: &'static str,
        secret: bool,
        parse: impl Fn(&str) -> Result<T, String>,
    ) -> anyhow::Result<T> {
        if !self.terminal {
            return Err(Missing {
                flag,
                hint: question,
            }
            .into());
        }
        let mut stderr = std::io::stderr();
        for _ in 0..ATTEMPTS {
            write!(stderr, "{question}: ")?;
            stderr.flush()?;
            let answer = {
                let _echo = secret.then(EchoOff::new);
                let mut line = String::new();
                std::io::stdin()
                    .lock()
                    .take(MAX_ANSWER)
                    .read_line(&mut line)?;
                line
            };
            if secret {
                writeln!(stderr)?;
            }
            match parse(answer.trim()) {
                Ok(value) => return Ok(value),
                Err(reason) => writeln!(stderr, "  not usable: {reason}")?,
            }
        }
        anyhow::bail!("no usable answer for {flag} after {ATTEMPTS} tries")
    }
}

/// Whether `err` is a value that was missing (exit status 64).
pub(crate) fn is_missing(err: &anyhow::Error) -> bool {
    err.downcast_ref::<Missing>().is_some()
}

/// Terminal echo off for as long as it lives (`stty` acts on the terminal that is its stdin,
/// which it inherits).
struct EchoOff;

impl EchoOff {
    fn new() -> EchoOff {
        let _ = std::process::Command::new("stty").arg("-echo").status();
        EchoOff
    }
}

impl Drop for EchoOff {
    fn drop(&mut self) {
        let _ = std::process::Command::new("stty").arg("echo").status();
    }
}
