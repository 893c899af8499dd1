//! The operator key file: round trips, every error, and that the secret never
//! leaks into the file.

use depin_core::PublicKey;
use depin_keys::*;
use ed25519_dalek::SigningKey;
use proptest::prelude::*;
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;

const SEED: [u8; 32] = [0x5a; 32];
const PASS: &str = "correct horse battery staple";

fn key() -> SigningKey {
    SigningKey::from_bytes(&SEED)
}

fn sealed() -> KeyFile {
    seal(
        &key(),
        PASS,
        KdfParams::insecure_fast_for_tests(),
        [1; 16],
        [2; 24],
    )
}

fn check(file: &KeyFile, passphrase: &str, expect: Result<(), KeyError>) {
    let got = open(file, passphrase).map(|k| assert_eq!(k.to_bytes(), SEED));
    assert_eq!(got, expect, "{}", file.to_json_pretty());
}

/// Flips the first hex digit of a field (keeping it valid hex).
fn flip(hex: &str) -> String {
    let mut chars: Vec<char> = hex.chars().collect();
    chars[0] = if chars[0] == '0' { '1' } else { '0' };
    chars.into_iter().collect()
}

#[test]
fn round_trip_through_json() {
    let file = sealed();
    check(&file, PASS, Ok(()));
    let json = file.to_json_pretty();
    let parsed = KeyFile::from_json(&json).unwrap();
    assert_eq!(parsed, file);
    check(&parsed, PASS, Ok(()));
    assert_eq!(file.public_key, PublicKey(key().verifying_key().to_bytes()));
    assert_eq!(file.ciphertext_hex.len(), 2 * (32 + 16));
}

#[test]
fn seal_with_rng_uses_fresh_salt_and_nonce() {
    let mut rng = ChaCha20Rng::seed_from_u64(7);
    let a = seal_with_rng(&key(), PASS, KdfParams::insecure_fast_for_tests(), &mut rng);
    let b = seal_with_rng(&key(), PASS, KdfParams::insecure_fast_for_tests(), &mut rng);
    assert_ne!(a.salt_hex, b.salt_hex);
    assert_ne!(a.nonce_hex, b.nonce_hex);
    assert_ne!(a.ciphertext_hex, b.ciphertext_hex);
    check(&a, PASS, Ok(()));
    check(&b, PASS, Ok(()));
}

#[test]
fn wrong_passphrase() {
    check(
        &sealed(),
        "Correct horse battery staple",
        Err(KeyError::WrongPassphrase),
    );
    check(&sealed(), "", Err(KeyError::WrongPassphrase));
}

#[test]
fn tampering_is_detected() {
    let wrong = Err(KeyError::WrongPassphrase);
    let corrupt = Err(KeyError::Corrupt);
    let with = |f: &dyn Fn(&mut KeyFile)| {
        let mut file = sealed();
        f(&mut file);
        file
    };
    // Anything that feeds the AEAD fails its tag.
    check(
        &with(&|f| f.ciphertext_hex = flip(&f.ciphertext_hex)),
        PASS,
        wrong,
    );
    check(&with(&|f| f.salt_hex = flip(&f.salt_hex)), PASS, wrong);
    check(&with(&|f| f.nonce_hex = flip(&f.nonce_hex)), PASS, wrong);
    check(&with(&|f| f.kdf.t_cost = 2), PASS, wrong);
    // A swapped public key decrypts but no longer matches.
    check(
        &with(&|f| {
            f.public_key = PublicKey(SigningKey::from_bytes(&[9; 32]).verifying_key().to_bytes())
        }),
        PASS,
        corrupt,
    );
    // Wrong lengths and bad hex.
    check(&with(&|f| f.salt_hex.truncate(30)), PASS, corrupt);
    check(&with(&|f| f.nonce_hex.push_str("00")), PASS, corrupt);
    check(&with(&|f| f.ciphertext_hex.truncate(64)), PASS, corrupt);
    check(
        &with(&|f| f.ciphertext_hex = f.ciphertext_hex.replace(|_: char| true, "z")),
        PASS,
        corrupt,
    );
    // Cost parameters Argon2 refuses, or that would exhaust memory.
    check(&with(&|f| f.kdf.m_cost_kib = 0), PASS, corrupt);
    check(&with(&|f| f.kdf.t_cost = 0), PASS, corrupt);
    check(&with(&|f| f.kdf.m_cost_kib = u32::MAX), PASS, corrupt);
    check(&with(&|f| f.kdf.p_cost = MAX_P_COST + 1), PASS, corrupt);
    check(&with(&|f| f.kdf.t_cost = MAX_T_COST + 1), PASS, corrupt);
    // Another format version.
    check(
        &with(&|f| f.version = 2),
        PASS,
        Err(KeyError::UnsupportedVersion),
    );
}

#[test]
fn json_parse_errors() {
    let json = sealed().to_json_pretty();
    assert_eq!(KeyFile::from_json("not json"), Err(KeyError::Corrupt));
    assert_eq!(KeyFile::from_json("{}"), Err(KeyError::Corrupt));
    assert_eq!(
        KeyFile::from_json(&json.replace("\"version\": 1", "\"version\": 2")),
        Err(KeyError::UnsupportedVersion)
    );
    // A future file whose other fields we cannot read is still a version error.
    assert_eq!(
        KeyFile::from_json(r#"{"version": 3, "whatever": true}"#),
        Err(KeyError::UnsupportedVersion)
    );
    let unknown = json.replacen('{', "{\"extra\": 1,", 1);
    assert_eq!(KeyFile::from_json(&unknown), Err(KeyError::Corrupt));
    let bad_key = json.replace(&sealed().public_key.to_hex(), "abcd");
    assert_eq!(KeyFile::from_json(&bad_key), Err(KeyError::Corrupt));
}

#[test]
fn the_secret_never_appears_in_the_file() {
    let json = sealed().to_json_pretty();
    let lower = json.to_lowercase();
    assert!(!lower.contains(&hex::encode(SEED)));
    assert!(!lower.contains(&hex::encode(key().to_keypair_bytes())));
    assert!(!json.contains(PASS));
    // Nor as a JSON array of byte values.
    let as_array = format!("{:?}", SEED.to_vec()).replace(' ', "");
    assert!(
        !json
            .replace([' ', '\n'], "")
            .contains(&as_array[1..as_array.len() - 1])
    );
    // The Debug form (which ends up in logs) holds only the ciphertext too.
    assert!(
        !format!("{:?}", sealed())
            .to_lowercase()
            .contains(&hex::encode(SEED))
    );
}

#[test]
fn default_params_are_a_real_work_factor() {
    let p = KdfParams::default_interactive();
    assert!(
        p.m_cost_kib >= 19 * 1024 && p.t_cost >= 2,
        "OWASP minimum for Argon2id"
    );
    assert!(p.m_cost_kib <= MAX_M_COST_KIB && p.t_cost <= MAX_T_COST && p.p_cost <= MAX_P_COST);
    // One real round trip with the production parameters.
    let file = seal(&key(), PASS, p, [3; 16], [4; 24]);
    check(&file, PASS, Ok(()));
}

fn garbage_hex() -> impl Strategy<Value = String> {
    prop_oneof![
        ".{0,100}",
        "[0-9a-f]{0,100}",
        Just(hex::encode([7u8; 16])),
        Just(hex::encode([7u8; 24])),
        Just(hex::encode([7u8; 48])),
    ]
}

fn garbage_params() -> impl Strategy<Value = KdfParams> {
    prop_oneof![
        Just(KdfParams::insecure_fast_for_tests()),
        (0u32..64, 0u32..3, 0u32..3).prop_map(|(m, t, p)| KdfParams {
            m_cost_kib: m,
            t_cost: t,
            p_cost: p
        }),
        (any::<u32>(), any::<u32>(), any::<u32>()).prop_map(|(m, t, p)| KdfParams {
            m_cost_kib: m | (1 << 31),
            t_cost: t,
            p_cost: p
        }),
    ]
}

proptest! {
    #[test]
    fn open_never_panics_on_garbage(
        version in prop_oneof![Just(1u32), any::<u32>()],
        key_bytes in any::<[u8; 32]>(),
        kdf in garbage_params(),
        salt_hex in garbage_hex(),
        nonce_hex in garbage_hex(),
        ciphertext_hex in garbage_hex(),
        passphrase in ".{0,20}",
    ) {
        let file = KeyFile { version, public_key: PublicKey(key_bytes), kdf, salt_hex, nonce_hex, ciphertext_hex };
        prop_assert!(open(&file, &passphrase).is_err());
        let _ = KeyFile::from_json(&file.to_json_pretty());
    }

    #[test]
    fn from_json_never_panics(text in ".{0,200}") {
        let _ = KeyFile::from_json(&text);
    }
}
