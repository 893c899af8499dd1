//! `depin keygen`: a new operator key, sealed under a passphrase with
//! `depin-keys` and written with mode 0600. Also the passphrase plumbing that
//! `depin node init` shares.

use anyhow::{Context as _, bail};
use depin_keys::{KdfParams, KeyFile};
use depin_protocol::SigningKey;
use std::path::{Path, PathBuf};
use zeroize_shim::Secret;

/// Where the passphrase comes from: `--passphrase-file`, else the
/// `DEPIN_PASSPHRASE` environment variable, else a prompt on the terminal.
#[derive(clap::Args, Debug, Clone)]
pub struct PassphraseArgs {
    /// Read the passphrase from the first line of FILE instead of prompting.
    #[arg(long, value_name = "FILE")]
    pub passphrase_file: Option<PathBuf>,
}

/// Create an operator or consumer key, encrypted under a passphrase.
#[derive(clap::Args, Debug)]
pub struct KeygenArgs {
    /// Where to write the encrypted key file (mode 0600).
    #[arg(long, value_name = "FILE")]
    pub out: PathBuf,
    /// Replace an existing file at --out. The old key is lost unless backed up.
    #[arg(long)]
    pub force: bool,
    #[command(flatten)]
    pub passphrase: PassphraseArgs,
    /// Cheapest Argon2 parameters: no protection against guessing. Tests only.
    #[arg(long, hide = true)]
    pub insecure_fast_kdf: bool,
}

pub async fn run(args: KeygenArgs) -> anyhow::Result<()> {
    if args.out.exists() && !args.force {
        bail!(
            "{} already exists; refusing to overwrite a key (pass --force to replace it, after backing it up)",
            args.out.display()
        );
    }
    let passphrase = new_passphrase(&args.passphrase)?;
    let params = if args.insecure_fast_kdf {
        KdfParams::insecure_fast_for_tests()
    } else {
        KdfParams::default_interactive()
    };
    let key = depin_protocol::generate_signing_key(&mut rand::rngs::OsRng);
    // Argon2 with the interactive parameters takes a noticeable moment: keep
    // it off the async workers.
    let file = tokio::task::spawn_blocking(move || {
        depin_keys::seal_with_rng(&key, passphrase.expose(), params, &mut rand::rngs::OsRng)
    })
    .await
    .context("sealing the key")?;
    write_key_file(&args.out, &file, args.force)?;
    println!("{}", file.public_key);
    eprintln!(
        "key written to {} (encrypted; keep a backup and the passphrase); use it as an operator key (depin node init) or a consumer key (depin consumer lock)",
        args.out.display()
    );
    Ok(())
}

fn write_key_file(path: &Path, file: &KeyFile, force: bool) -> anyhow::Result<()> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("cannot create {}", parent.display()))?;
    }
    let text = file.to_json_pretty();
    let written = if force {
        depin_agent::node::write_private_replace(path, text.as_bytes())
    } else {
        depin_agent::node::write_private_new(path, text.as_bytes())
    };
    match written {
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            bail!(
                "{} already exists; refusing to overwrite a key (pass --force)",
                path.display()
            )
        }
        r => r.with_context(|| format!("cannot write {}", path.display())),
    }
}

/// Opens the operator key file at `path` with the passphrase from `args`.
pub async fn open_operator_key(path: &Path, args: &PassphraseArgs) -> anyhow::Result<SigningKey> {
    let text = std::fs::read_to_string(path).with_context(|| {
        format!(
            "cannot read the operator key {} (create one with `depin keygen --out FILE`)",
            path.display()
        )
    })?;
    let file = KeyFile::from_json(&text).with_context(|| format!("{}", path.display()))?;
    let passphrase = existing_passphrase(
        args,
        &format!("passphrase for operator key {}: ", path.display()),
    )?;
    let key = tokio::task::spawn_blocking(move || depin_keys::open(&file, passphrase.expose()))
        .await
        .context("opening the key")?
        .with_context(|| format!("cannot open the operator key {}", path.display()))?;
    Ok(key)
}

/// A passphrase from the file or environment, if one was given that way.
fn given_passphrase(args: &PassphraseArgs) -> anyhow::Result<Option<Secret>> {
    if let Some(path) = &args.passphrase_file {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read the passphrase file {}", path.display()))?;
        let line = text.lines().next().unwrap_or("").to_string();
        return Ok(Some(Secret::new(line)));
    }
    if let Ok(p) = std::env::var("DEPIN_PASSPHRASE") {
        return Ok(Some(Secret::new(p)));
    }
    Ok(None)
}

fn prompt(text: &str) -> anyhow::Result<Secret> {
    rpassword::prompt_password(text).map(Secret::new).map_err(|e| {
        anyhow::anyhow!(
            "cannot ask for a passphrase: no terminal ({e}); pass --passphrase-file FILE or set DEPIN_PASSPHRASE"
        )
    })
}

/// A passphrase for a new key: given, or typed twice.
fn new_passphrase(args: &PassphraseArgs) -> anyhow::Result<Secret> {
    let p = match given_passphrase(args)? {
        Some(p) => p,
        None => {
            let first = prompt("new passphrase for the operator key: ")?;
            let second = prompt("repeat the passphrase: ")?;
            if first.expose() != second.expose() {
                bail!("the passphrases do not match");
            }
            first
        }
    };
    if p.expose().is_empty() {
        bail!("the passphrase is empty; the operator key owns your earnings, protect it");
    }
    Ok(p)
}

fn existing_passphrase(args: &PassphraseArgs, prompt_text: &str) -> anyhow::Result<Secret> {
    match given_passphrase(args)? {
        Some(p) => Ok(p),
        None => prompt(prompt_text),
    }
}

/// A string wiped from memory when dropped (Debug never shows it).
mod zeroize_shim {
    pub struct Secret(String);

    impl Secret {
        pub fn new(s: String) -> Self {
            Secret(s)
        }
        pub fn expose(&self) -> &str {
            &self.0
        }
    }

    impl Drop for Secret {
        fn drop(&mut self) {
            // Overwrite the bytes before the allocation is freed. Safe code:
            // replace each byte through a mutable `String` API.
            let len = self.0.len();
            self.0.clear();
            self.0.extend(std::iter::repeat_n('\0', len));
            self.0.clear();
        }
    }

    impl std::fmt::Debug for Secret {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("Secret(…)")
        }
    }
}
