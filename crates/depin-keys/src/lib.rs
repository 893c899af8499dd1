//! The operator key at rest: an ed25519 seed encrypted under a passphrase.
//!
//! Why this key is guarded and device keys are not: the operator key owns the
//! earnings. It signs the certificates that bind devices to their operator and
//! the revocations and rotations that retire device keys; rewards are paid to
//! it. Device keys only sign reports, live unencrypted on the device, and a
//! stolen device can at worst report for itself until its operator revokes it.
//! So the one secret that can move funds is kept off devices and encrypted at
//! rest, here.
//!
//! Format, version 1 ([`KeyFile`], JSON): Argon2id (v1.3) stretches the
//! passphrase with the 16-byte salt into a 32-byte key under the cost
//! parameters stored in the file; XChaCha20-Poly1305 with the 24-byte nonce
//! encrypts the 32-byte ed25519 seed (48 bytes with the tag). The public key is
//! stored in clear so tools can show whose key a file holds without the
//! passphrase, and it is checked against the decrypted seed on [`open`].
//!
//! The crate is pure: salts and nonces are arguments (or come from an RNG the
//! caller passes to [`seal_with_rng`]), and it reads and writes no files; the
//! CLI does that.

use argon2::{Algorithm, Argon2, Params, Version};
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use depin_core::PublicKey;
use ed25519_dalek::SigningKey;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

/// The key file format this build writes and reads.
pub const KEYFILE_VERSION: u32 = 1;

/// Bound into the AEAD tag, so a ciphertext from another format or version
/// cannot be passed off as this one.
const AAD: &[u8] = b"depin-keys v1: ed25519 operator seed";

const SEED_LEN: usize = 32;
const TAG_LEN: usize = 16;

/// Upper bounds on the cost parameters [`open`] accepts. A key file is input:
/// without a cap, an edited file could make `open` allocate terabytes.
pub const MAX_M_COST_KIB: u32 = 1 << 20; // 1 GiB
pub const MAX_T_COST: u32 = 64;
pub const MAX_P_COST: u32 = 16;

/// Argon2id cost parameters, stored in the file so they can be raised later
/// without breaking old files.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KdfParams {
    /// Memory in KiB.
    pub m_cost_kib: u32,
    /// Passes over the memory.
    pub t_cost: u32,
    /// Lanes.
    pub p_cost: u32,
}

impl KdfParams {
    /// 64 MiB, 3 passes, 1 lane: RFC 9106's second recommended setting with
    /// the lanes brought down to what a single-threaded build uses. About a
    /// quarter of a second per attempt on a laptop; the key is opened rarely.
    pub fn default_interactive() -> Self {
        KdfParams {
            m_cost_kib: 64 * 1024,
            t_cost: 3,
            p_cost: 1,
        }
    }

    /// The cheapest parameters Argon2 allows (8 KiB, 1 pass). Offers no
    /// protection against guessing; for tests and the simulator only.
    pub fn insecure_fast_for_tests() -> Self {
        KdfParams {
            m_cost_kib: 8,
            t_cost: 1,
            p_cost: 1,
        }
    }

    fn to_argon2(self) -> Result<Params, KeyError> {
        if self.m_cost_kib > MAX_M_COST_KIB || self.t_cost > MAX_T_COST || self.p_cost > MAX_P_COST
        {
            return Err(KeyError::Corrupt);
        }
        Params::new(self.m_cost_kib, self.t_cost, self.p_cost, Some(32))
            .map_err(|_| KeyError::Corrupt)
    }
}

/// An encrypted operator key, as stored on disk (JSON).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyFile {
    pub version: u32,
    pub public_key: PublicKey,
    pub kdf: KdfParams,
    pub salt_hex: String,
    pub nonce_hex: String,
    pub ciphertext_hex: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// The AEAD tag does not verify: almost always a mistyped passphrase, but a
    /// damaged ciphertext, salt, nonce or cost parameter looks the same.
    #[error("wrong passphrase (or the key file's encrypted part is damaged)")]
    WrongPassphrase,
    /// The file does not parse, a field has the wrong length or encoding, the
    /// cost parameters are out of range, or the decrypted key does not match
    /// the public key in the file.
    #[error("the key file is corrupt; restore it from your backup")]
    Corrupt,
    /// The file was written by another version of depin.
    #[error("the key file format is not supported by this version of depin")]
    UnsupportedVersion,
}

impl KeyFile {
    pub fn to_json_pretty(&self) -> String {
        serde_json::to_string_pretty(self).expect("a KeyFile always serialises")
    }

    /// Parses a key file, reporting a newer format as
    /// [`KeyError::UnsupportedVersion`] rather than as corruption.
    pub fn from_json(text: &str) -> Result<KeyFile, KeyError> {
        #[derive(Deserialize)]
        struct VersionOnly {
            version: u32,
        }
        let probe: VersionOnly = serde_json::from_str(text).map_err(|_| KeyError::Corrupt)?;
        if probe.version != KEYFILE_VERSION {
            return Err(KeyError::UnsupportedVersion);
        }
        serde_json::from_str(text).map_err(|_| KeyError::Corrupt)
    }
}

fn derive_key(passphrase: &str, salt: &[u8], params: Params) -> Zeroizing<[u8; 32]> {
    let mut key = Zeroizing::new([0u8; 32]);
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
        .hash_password_into(passphrase.as_bytes(), salt, key.as_mut())
        .expect("salt length and output length are fixed and valid");
    key
}

/// Encrypts `key` under `passphrase`. `salt` and `nonce` must be fresh random
/// values for every file (see [`seal_with_rng`]).
///
/// # Panics
/// If `params` are outside what Argon2 and [`open`] accept: they come from the
/// presets on [`KdfParams`], so that is a programming error.
pub fn seal(
    key: &SigningKey,
    passphrase: &str,
    params: KdfParams,
    salt: [u8; 16],
    nonce: [u8; 24],
) -> KeyFile {
    let argon = params.to_argon2().expect("KDF parameters out of range");
    let kek = derive_key(passphrase, &salt, argon);
    let seed = Zeroizing::new(key.to_bytes());
    let ciphertext = XChaCha20Poly1305::new(kek.as_ref().into())
        .encrypt(
            XNonce::from_slice(&nonce),
            Payload {
                msg: seed.as_ref(),
                aad: AAD,
            },
        )
        .expect("encrypting 32 bytes cannot fail");
    KeyFile {
        version: KEYFILE_VERSION,
        public_key: PublicKey(key.verifying_key().to_bytes()),
        kdf: params,
        salt_hex: hex::encode(salt),
        nonce_hex: hex::encode(nonce),
        ciphertext_hex: hex::encode(ciphertext),
    }
}

/// [`seal`] with the salt and nonce drawn from `rng`.
pub fn seal_with_rng<R: rand_core::CryptoRngCore + ?Sized>(
    key: &SigningKey,
    passphrase: &str,
    params: KdfParams,
    rng: &mut R,
) -> KeyFile {
    let mut salt = [0u8; 16];
    let mut nonce = [0u8; 24];
    rng.fill_bytes(&mut salt);
    rng.fill_bytes(&mut nonce);
    seal(key, passphrase, params, salt, nonce)
}

fn hex_array<const N: usize>(text: &str) -> Result<[u8; N], KeyError> {
    let mut out = [0u8; N];
    hex::decode_to_slice(text, &mut out).map_err(|_| KeyError::Corrupt)?;
    Ok(out)
}

/// Decrypts the operator key. Everything cheap is checked before the KDF
/// runs, so a malformed file fails fast.
pub fn open(file: &KeyFile, passphrase: &str) -> Result<SigningKey, KeyError> {
    if file.version != KEYFILE_VERSION {
        return Err(KeyError::UnsupportedVersion);
    }
    let salt: [u8; 16] = hex_array(&file.salt_hex)?;
    let nonce: [u8; 24] = hex_array(&file.nonce_hex)?;
    let ciphertext: [u8; SEED_LEN + TAG_LEN] = hex_array(&file.ciphertext_hex)?;
    let argon = file.kdf.to_argon2()?;

    let kek = derive_key(passphrase, &salt, argon);
    let seed = Zeroizing::new(
        XChaCha20Poly1305::new(kek.as_ref().into())
            .decrypt(
                XNonce::from_slice(&nonce),
                Payload {
                    msg: &ciphertext,
                    aad: AAD,
                },
            )
            .map_err(|_| KeyError::WrongPassphrase)?,
    );
    let seed: &[u8; SEED_LEN] = seed.as_slice().try_into().map_err(|_| KeyError::Corrupt)?;
    let key = SigningKey::from_bytes(seed);
    if key.verifying_key().to_bytes() != file.public_key.0 {
        return Err(KeyError::Corrupt);
    }
    Ok(key)
}
