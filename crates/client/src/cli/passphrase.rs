//! Where `rdv` takes the keystore's passphrase from (`client-api.md` §9): `--passphrase-file
//! PATH` (its first line), else `RDV_PASSPHRASE`, else a prompt on the terminal without echo —
//! asked twice when a keystore is created. With none of them the command is refused with
//! `passphrase_required` before anything is opened or changed.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use crate::keystore::{Keystore, Passphrase};
use crate::{Client, ClientError};

/// The environment variable `rdv` reads the passphrase from.
pub const PASSPHRASE_ENV: &str = "RDV_PASSPHRASE";
/// Largest passphrase file read.
const MAX_FILE: u64 = 64 * 1024;

/// How this run of `rdv` gets the passphrase of the keystore in `home`; asked only when a
/// command needs the keystore.
/// The passphrase is asked once per run (the directory's checks before and after a command
/// open the keystore too) and kept for the run.
#[derive(Debug)]
pub(super) struct Unlock {
    home: PathBuf,
    file: Option<PathBuf>,
    known: std::cell::RefCell<Option<Passphrase>>,
}

impl Unlock {
    pub(super) fn new(home: &Path, file: Option<PathBuf>) -> Unlock {
        Unlock {
            home: home.to_owned(),
            file,
            known: std::cell::RefCell::new(None),
        }
    }

    /// The keystore directory.
    pub(super) fn dir(&self) -> &Path {
        &self.home
    }

    /// Opens the account in `home`: refused before a passphrase is asked for when there is no
    /// account (or an unencrypted one).
    pub(super) fn open(&self) -> Result<Client, ClientError> {
        Keystore::check_existing(&self.home)?;
        let known = self.known.borrow().clone();
        let passphrase = match known {
            Some(p) => p,
            None => self.get(false)?,
        };
        let client = Client::open(&self.home, &passphrase)?;
        *self.known.borrow_mut() = Some(passphrase);
        Ok(client)
    }

    /// `rdv passphrase change`: opens the keystore with the current passphrase, takes the new one
    /// from `new_file` or the terminal (twice), and writes the new header.
    pub(super) fn change(&self, new_file: Option<&Path>) -> Result<(), ClientError> {
        Keystore::check_existing(&self.home)?;
        let keystore = Keystore::open(&self.home, &self.get(false)?)?;
        let new = match new_file {
            Some(path) => self.read_file(path)?,
            None => self.prompt(true)?,
        };
        keystore.change_passphrase(&new)
    }

    /// The passphrase for a new keystore in `home` (refused first if `home` holds an account;
    /// asked twice on a terminal). [`Keystore::create`] refuses an empty one.
    pub(super) fn new_passphrase(&self) -> Result<Passphrase, ClientError> {
        Keystore::check_new(&self.home)?;
        self.get(true)
    }

    fn get(&self, twice: bool) -> Result<Passphrase, ClientError> {
        if let Some(path) = &self.file {
            return self.read_file(path);
        }
        if let Some(value) = std::env::var_os(PASSPHRASE_ENV) {
            let value = Zeroizing::new(value.into_string().map_err(|_| {
                ClientError::InvalidInput(format!("{PASSPHRASE_ENV} is not UTF-8"))
            })?);
            return Ok(Passphrase::new(value.as_str()));
        }
        self.prompt(twice)
    }

    /// The first line of `path`, its line ending stripped.
    fn read_file(&self, path: &Path) -> Result<Passphrase, ClientError> {
        use std::io::Read;
        let required = |why: String| ClientError::PassphraseRequired {
            home: self.home.clone(),
            why,
        };
        let file = std::fs::File::open(path)
            .map_err(|e| required(format!("cannot read {}: {e}", path.display())))?;
        let mut bytes = Zeroizing::new(Vec::new());
        file.take(MAX_FILE)
            .read_to_end(&mut bytes)
            .map_err(|e| required(format!("cannot read {}: {e}", path.display())))?;
        let text = std::str::from_utf8(&bytes)
            .map_err(|_| ClientError::InvalidInput(format!("{} is not UTF-8", path.display())))?;
        let line = text.split('\n').next().unwrap_or_default();
        Ok(Passphrase::new(line.strip_suffix('\r').unwrap_or(line)))
    }

    /// Asks on the terminal without echo (twice for a new keystore); refused without one.
    fn prompt(&self, twice: bool) -> Result<Passphrase, ClientError> {
        if !std::io::stdin().is_terminal() {
            return Err(ClientError::PassphraseRequired {
                home: self.home.clone(),
                why: "no terminal to ask on".into(),
            });
        }
        let ask = |prompt: &str| {
            rpassword::prompt_password(prompt)
                .map(Zeroizing::new)
                .map_err(|e| ClientError::PassphraseRequired {
                    home: self.home.clone(),
                    why: format!("cannot ask on the terminal: {e}"),
                })
        };
        let home = self.home.display();
        if !twice {
            return Ok(Passphrase::new(
                ask(&format!("Passphrase of {home}: "))?.as_str(),
            ));
        }
        let first = ask(&format!("New passphrase for {home}: "))?;
        let second = ask("The same again: ")?;
        if !bool::from(first.as_bytes().ct_eq(second.as_bytes())) {
            return Err(ClientError::InvalidInput(
                "the two passphrases differ: nothing was created or changed".into(),
            ));
        }
        Ok(Passphrase::new(first.as_str()))
    }
}
