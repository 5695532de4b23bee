//! Signing keys: generation, PEM load/save (PKCS#8, encrypted PKCS#8, SEC1, SPKI), signing and
//! verification for ECDSA P-256 / P-384 / P-521 and Ed25519.
//!
//! Keys sit behind the [`Signer`] trait so a KMS or PKCS#11 backend can replace PEM files later
//! without touching the DSSE, bundle or manifest code; [`PrivateKey`] is the PEM-file provider.
//!
//! OpenSSF model signing (the `model_signing` tool) accepts only ECDSA keys and signs with the
//! curve's hash (P-256 → SHA-256, P-384 → SHA-384), ASN.1 DER signatures. Ed25519 is a tunegate
//! extension: tunegate signs and verifies it, `model_signing` refuses it.
use crate::error::{Error, Result};
use ecdsa::signature::{Signer as _, Verifier as _};
use pkcs8::der::pem::LineEnding;
use pkcs8::{DecodePrivateKey, EncodePrivateKey};
use rand_core::{OsRng, RngCore};
use sha2::{Digest, Sha256};
use spki::{DecodePublicKey, EncodePublicKey};

/// Environment variable holding the passphrase of an encrypted private key.
pub const PASSPHRASE_ENV: &str = "TUNEGATE_KEY_PASSPHRASE";

/// PBKDF2-SHA256 rounds for encrypted PKCS#8 keys written by tunegate.
const PBKDF2_ROUNDS: u32 = 310_000;

/// The key types tunegate handles.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyAlgorithm {
    /// ECDSA on NIST P-256 with SHA-256 (the default; understood by `model_signing`).
    EcdsaP256,
    /// ECDSA on NIST P-384 with SHA-384 (understood by `model_signing`).
    EcdsaP384,
    /// ECDSA on NIST P-521 with SHA-512 (understood by `model_signing`).
    EcdsaP521,
    /// Ed25519 (tunegate only; `model_signing` accepts only elliptic-curve ECDSA keys).
    Ed25519,
}

impl KeyAlgorithm {
    /// Parses `p256`/`ecdsa-p256`, `p384`/`ecdsa-p384` or `ed25519`.
    pub fn parse(s: &str) -> Option<Self> {
        match s.to_ascii_lowercase().as_str() {
            "p256" | "p-256" | "ecdsa-p256" | "ecdsa" | "prime256v1" | "secp256r1" => {
                Some(KeyAlgorithm::EcdsaP256)
            }
            "p384" | "p-384" | "ecdsa-p384" | "secp384r1" => Some(KeyAlgorithm::EcdsaP384),
            "p521" | "p-521" | "ecdsa-p521" | "secp521r1" => Some(KeyAlgorithm::EcdsaP521),
            "ed25519" => Some(KeyAlgorithm::Ed25519),
            _ => None,
        }
    }

    /// A short name (`ecdsa-p256`, `ecdsa-p384`, `ed25519`).
    pub fn name(self) -> &'static str {
        match self {
            KeyAlgorithm::EcdsaP256 => "ecdsa-p256",
            KeyAlgorithm::EcdsaP384 => "ecdsa-p384",
            KeyAlgorithm::EcdsaP521 => "ecdsa-p521",
            KeyAlgorithm::Ed25519 => "ed25519",
        }
    }

    /// Whether `model_signing` (OpenSSF) can verify signatures made with this key type.
    pub fn oms_compatible(self) -> bool {
        !matches!(self, KeyAlgorithm::Ed25519)
    }
}

/// Something that signs bytes: a PEM key today, a KMS or PKCS#11 key later.
pub trait Signer: Send + Sync {
    /// The public half, written into bundles as a hint and used to check the signature.
    fn public_key(&self) -> PublicKey;
    /// Signs `msg` (the DSSE PAE bytes): ECDSA with the curve's hash, DER encoded; Ed25519 raw.
    fn sign(&self, msg: &[u8]) -> Result<Vec<u8>>;
}

/// A private key loaded from or written to a PEM file.
#[derive(Clone)]
pub enum PrivateKey {
    /// ECDSA P-256.
    P256(p256::ecdsa::SigningKey),
    /// ECDSA P-384.
    P384(p384::ecdsa::SigningKey),
    /// ECDSA P-521.
    P521(p521::SecretKey),
    /// Ed25519.
    Ed25519(ed25519_dalek::SigningKey),
}

impl std::fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PrivateKey({})", self.algorithm().name())
    }
}

impl PrivateKey {
    /// A fresh key from the OS random generator.
    pub fn generate(alg: KeyAlgorithm) -> Self {
        match alg {
            KeyAlgorithm::EcdsaP256 => {
                PrivateKey::P256(p256::ecdsa::SigningKey::random(&mut OsRng))
            }
            KeyAlgorithm::EcdsaP384 => {
                PrivateKey::P384(p384::ecdsa::SigningKey::random(&mut OsRng))
            }
            KeyAlgorithm::EcdsaP521 => PrivateKey::P521(p521::SecretKey::random(&mut OsRng)),
            KeyAlgorithm::Ed25519 => {
                PrivateKey::Ed25519(ed25519_dalek::SigningKey::generate(&mut OsRng))
            }
        }
    }

    /// The key type.
    pub fn algorithm(&self) -> KeyAlgorithm {
        match self {
            PrivateKey::P256(_) => KeyAlgorithm::EcdsaP256,
            PrivateKey::P384(_) => KeyAlgorithm::EcdsaP384,
            PrivateKey::P521(_) => KeyAlgorithm::EcdsaP521,
            PrivateKey::Ed25519(_) => KeyAlgorithm::Ed25519,
        }
    }

    /// Reads a PEM private key: PKCS#8 (`PRIVATE KEY`), encrypted PKCS#8 (`ENCRYPTED PRIVATE
    /// KEY`, needs `passphrase`) or SEC1 (`EC PRIVATE KEY`, as `openssl ecparam -genkey` writes).
    /// Text before the PEM block (certtool's key info) is skipped.
    pub fn from_pem(text: &str, passphrase: Option<&[u8]>) -> Result<Self> {
        let (label, der) = decode_pem(text)?;
        match label.as_str() {
            "PRIVATE KEY" => Self::from_pkcs8_der(&der),
            "ENCRYPTED PRIVATE KEY" => {
                let Some(pw) = passphrase else {
                    return Err(Error::Key(format!(
                        "the private key is encrypted: give its passphrase in {PASSPHRASE_ENV} or with --passphrase-file"
                    )));
                };
                let info = pkcs8::EncryptedPrivateKeyInfo::try_from(der.as_slice())
                    .map_err(|e| Error::Key(format!("bad encrypted PKCS#8: {e}")))?;
                let plain = info
                    .decrypt(pw)
                    .map_err(|_| Error::Key("wrong passphrase (or a damaged key file)".into()))?;
                Self::from_pkcs8_der(plain.as_bytes())
            }
            "EC PRIVATE KEY" => {
                if let Ok(k) = p256::SecretKey::from_sec1_der(&der) {
                    Ok(PrivateKey::P256(k.into()))
                } else if let Ok(k) = p384::SecretKey::from_sec1_der(&der) {
                    Ok(PrivateKey::P384(k.into()))
                } else if let Ok(k) = p521::SecretKey::from_sec1_der(&der) {
                    Ok(PrivateKey::P521(k))
                } else {
                    Err(Error::Key(
                        "SEC1 EC key on an unsupported curve (supported: P-256, P-384, P-521)".into(),
                    ))
                }
            }
            other => Err(Error::Key(format!(
                "PEM block '{other}' is not a private key (expected PRIVATE KEY, ENCRYPTED PRIVATE KEY or EC PRIVATE KEY)"
            ))),
        }
    }

    fn from_pkcs8_der(der: &[u8]) -> Result<Self> {
        if let Ok(k) = p256::SecretKey::from_pkcs8_der(der) {
            return Ok(PrivateKey::P256(k.into()));
        }
        if let Ok(k) = p384::SecretKey::from_pkcs8_der(der) {
            return Ok(PrivateKey::P384(k.into()));
        }
        if let Ok(k) = p521::SecretKey::from_pkcs8_der(der) {
            return Ok(PrivateKey::P521(k));
        }
        if let Ok(k) = ed25519_dalek::SigningKey::from_pkcs8_der(der) {
            return Ok(PrivateKey::Ed25519(k));
        }
        Err(Error::Key(
            "unsupported private key type (supported: ECDSA P-256, P-384, P-521, Ed25519)".into(),
        ))
    }

    /// Writes the key as PKCS#8 PEM; with a passphrase as encrypted PKCS#8 (PBES2,
    /// PBKDF2-HMAC-SHA256, AES-256-CBC), which OpenSSL and Python `cryptography` read.
    pub fn to_pem(&self, passphrase: Option<&[u8]>) -> Result<String> {
        let doc = match self {
            PrivateKey::P256(k) => k.to_pkcs8_der(),
            PrivateKey::P384(k) => k.to_pkcs8_der(),
            PrivateKey::P521(k) => k.to_pkcs8_der(),
            PrivateKey::Ed25519(k) => k.to_pkcs8_der(),
        }
        .map_err(|e| Error::Key(format!("encoding PKCS#8: {e}")))?;
        let enc = |e: pkcs8::Error| Error::Key(format!("encoding PKCS#8: {e}"));
        match passphrase {
            None => Ok(doc
                .to_pem("PRIVATE KEY", LineEnding::LF)
                .map_err(|e| Error::Key(format!("encoding PEM: {e}")))?
                .to_string()),
            Some(pw) => {
                let mut salt = [0u8; 16];
                let mut iv = [0u8; 16];
                OsRng.fill_bytes(&mut salt);
                OsRng.fill_bytes(&mut iv);
                let params = pkcs8::pkcs5::pbes2::Parameters::pbkdf2_sha256_aes256cbc(
                    PBKDF2_ROUNDS,
                    &salt,
                    &iv,
                )
                .map_err(|e| Error::Key(format!("PBES2 parameters: {e}")))?;
                let info = pkcs8::PrivateKeyInfo::try_from(doc.as_bytes()).map_err(enc)?;
                let encrypted = info.encrypt_with_params(params, pw).map_err(enc)?;
                Ok(encrypted
                    .to_pem("ENCRYPTED PRIVATE KEY", LineEnding::LF)
                    .map_err(|e| Error::Key(format!("encoding PEM: {e}")))?
                    .to_string())
            }
        }
    }
}

impl Signer for PrivateKey {
    fn public_key(&self) -> PublicKey {
        match self {
            PrivateKey::P256(k) => PublicKey::P256(*k.verifying_key()),
            PrivateKey::P384(k) => PublicKey::P384(*k.verifying_key()),
            PrivateKey::P521(k) => PublicKey::P521(k.public_key()),
            PrivateKey::Ed25519(k) => PublicKey::Ed25519(k.verifying_key()),
        }
    }

    fn sign(&self, msg: &[u8]) -> Result<Vec<u8>> {
        Ok(match self {
            PrivateKey::P256(k) => {
                let s: p256::ecdsa::Signature = k.sign(msg);
                s.to_der().as_bytes().to_vec()
            }
            PrivateKey::P384(k) => {
                let s: p384::ecdsa::Signature = k.sign(msg);
                s.to_der().as_bytes().to_vec()
            }
            PrivateKey::P521(k) => {
                let sk = p521::ecdsa::SigningKey::from_bytes(&k.to_bytes())
                    .map_err(|e| Error::Key(format!("P-521 key: {e}")))?;
                let s: p521::ecdsa::Signature = sk.sign(msg);
                s.to_der().as_bytes().to_vec()
            }
            PrivateKey::Ed25519(k) => k.sign(msg).to_bytes().to_vec(),
        })
    }
}

/// A public key: what a verifier trusts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PublicKey {
    /// ECDSA P-256.
    P256(p256::ecdsa::VerifyingKey),
    /// ECDSA P-384.
    P384(p384::ecdsa::VerifyingKey),
    /// ECDSA P-521.
    P521(p521::PublicKey),
    /// Ed25519.
    Ed25519(ed25519_dalek::VerifyingKey),
}

/// Which message digest a verification applies before ECDSA (the v0.2.0 compatibility path of
/// `model_signing`'s certificate verifier forced SHA-256 whatever the curve).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EcdsaHash {
    /// The curve's own hash (P-256 → SHA-256, P-384 → SHA-384).
    Curve,
    /// SHA-256 whatever the curve.
    Sha256,
}

impl PublicKey {
    /// The key type.
    pub fn algorithm(&self) -> KeyAlgorithm {
        match self {
            PublicKey::P256(_) => KeyAlgorithm::EcdsaP256,
            PublicKey::P384(_) => KeyAlgorithm::EcdsaP384,
            PublicKey::P521(_) => KeyAlgorithm::EcdsaP521,
            PublicKey::Ed25519(_) => KeyAlgorithm::Ed25519,
        }
    }

    /// Reads a PEM `PUBLIC KEY` (SubjectPublicKeyInfo); a private key PEM also works (its public
    /// half is taken) and so does a `CERTIFICATE` (its subject key). Text before the block is
    /// skipped.
    pub fn from_pem(text: &str) -> Result<Self> {
        let (label, der) = decode_pem(text)?;
        match label.as_str() {
            "PUBLIC KEY" => Self::from_spki_der(&der),
            "CERTIFICATE" => certificate_public_key(&der),
            "PRIVATE KEY" | "EC PRIVATE KEY" | "ENCRYPTED PRIVATE KEY" => Ok(PrivateKey::from_pem(
                text,
                std::env::var(PASSPHRASE_ENV)
                    .ok()
                    .as_deref()
                    .map(str::as_bytes),
            )?
            .public_key()),
            other => Err(Error::Key(format!(
                "PEM block '{other}' is not a public key"
            ))),
        }
    }

    /// Decodes a DER SubjectPublicKeyInfo.
    pub fn from_spki_der(der: &[u8]) -> Result<Self> {
        if let Ok(k) = p256::PublicKey::from_public_key_der(der) {
            return Ok(PublicKey::P256(k.into()));
        }
        if let Ok(k) = p384::PublicKey::from_public_key_der(der) {
            return Ok(PublicKey::P384(k.into()));
        }
        if let Ok(k) = p521::PublicKey::from_public_key_der(der) {
            return Ok(PublicKey::P521(k));
        }
        if let Ok(k) = ed25519_dalek::VerifyingKey::from_public_key_der(der) {
            return Ok(PublicKey::Ed25519(k));
        }
        Err(Error::Key(
            "unsupported public key type (supported: ECDSA P-256, P-384, P-521, Ed25519)".into(),
        ))
    }

    /// The SubjectPublicKeyInfo as PEM: `-----BEGIN PUBLIC KEY-----`, 64-column base64, LF line
    /// ends, a trailing newline, uncompressed EC point (the form OpenSSL and `cryptography` write).
    pub fn to_pem(&self) -> String {
        let r = match self {
            PublicKey::P256(k) => p256::PublicKey::from(k).to_public_key_pem(LineEnding::LF),
            PublicKey::P384(k) => p384::PublicKey::from(k).to_public_key_pem(LineEnding::LF),
            PublicKey::P521(k) => k.to_public_key_pem(LineEnding::LF),
            PublicKey::Ed25519(k) => k.to_public_key_pem(LineEnding::LF),
        };
        // Encoding a valid in-memory key cannot fail (no I/O, known sizes).
        r.unwrap_or_default()
    }

    /// The key hint `model_signing` writes into `verificationMaterial.publicKey.hint`:
    /// lowercase hex SHA-256 of [`PublicKey::to_pem`].
    pub fn hint(&self) -> String {
        hex::encode(Sha256::digest(self.to_pem().as_bytes()))
    }

    /// Checks `sig` over `msg`; `false` for any malformed or wrong signature.
    pub fn verify(&self, msg: &[u8], sig: &[u8], hash: EcdsaHash) -> bool {
        use ecdsa::signature::hazmat::PrehashVerifier;
        match (self, hash) {
            (PublicKey::P256(k), _) => p256::ecdsa::Signature::from_der(sig)
                .map(|s| k.verify(msg, &s).is_ok())
                .unwrap_or(false),
            (PublicKey::P384(k), EcdsaHash::Curve) => p384::ecdsa::Signature::from_der(sig)
                .map(|s| k.verify(msg, &s).is_ok())
                .unwrap_or(false),
            (PublicKey::P384(k), EcdsaHash::Sha256) => p384::ecdsa::Signature::from_der(sig)
                .map(|s| k.verify_prehash(&Sha256::digest(msg), &s).is_ok())
                .unwrap_or(false),
            (PublicKey::P521(k), hash) => {
                use p521::elliptic_curve::sec1::ToEncodedPoint;
                let Ok(vk) =
                    p521::ecdsa::VerifyingKey::from_encoded_point(&k.to_encoded_point(false))
                else {
                    return false;
                };
                let Ok(s) = p521::ecdsa::Signature::from_der(sig) else {
                    return false;
                };
                match hash {
                    EcdsaHash::Curve => vk.verify(msg, &s).is_ok(),
                    EcdsaHash::Sha256 => vk.verify_prehash(&Sha256::digest(msg), &s).is_ok(),
                }
            }
            (PublicKey::Ed25519(k), _) => ed25519_dalek::Signature::from_slice(sig)
                .map(|s| k.verify_strict(msg, &s).is_ok())
                .unwrap_or(false),
        }
    }
}

/// The subject public key of a DER X.509 certificate. Only the key is taken: nothing about the
/// certificate (validity, issuer, chain) is checked here.
pub fn certificate_public_key(der: &[u8]) -> Result<PublicKey> {
    use pkcs8::der::{Decode, Encode};
    let cert = x509_cert::Certificate::from_der(der)
        .map_err(|e| Error::Key(format!("bad X.509 certificate: {e}")))?;
    let spki = cert
        .tbs_certificate
        .subject_public_key_info
        .to_der()
        .map_err(|e| Error::Key(format!("bad certificate key: {e}")))?;
    PublicKey::from_spki_der(&spki)
}

/// The e-mail addresses and URIs in a DER certificate's subjectAltName (the Sigstore signer
/// identity of a Fulcio certificate), for display only; empty when there are none or the
/// certificate cannot be read.
pub fn certificate_identities(der: &[u8]) -> Vec<String> {
    use pkcs8::der::Decode;
    use x509_cert::ext::pkix::name::GeneralName;
    use x509_cert::ext::pkix::SubjectAltName;
    let Ok(cert) = x509_cert::Certificate::from_der(der) else {
        return Vec::new();
    };
    let Ok(Some((_, san))) = cert.tbs_certificate.get::<SubjectAltName>() else {
        return Vec::new();
    };
    san.0
        .iter()
        .filter_map(|g| match g {
            GeneralName::Rfc822Name(s) => Some(s.to_string()),
            GeneralName::UniformResourceIdentifier(s) => Some(s.to_string()),
            _ => None,
        })
        .collect()
}

/// Every `CERTIFICATE` block of a PEM file (text between blocks is skipped), as DER.
pub fn pem_certificates(text: &str) -> Result<Vec<Vec<u8>>> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(i) = rest.find("-----BEGIN ") {
        let (label, der) = decode_pem(&rest[i..])?;
        if label == "CERTIFICATE" {
            out.push(der);
        }
        let block = &rest[i..];
        let end = block
            .find("-----END ")
            .map(|j| j + 9)
            .unwrap_or(block.len());
        rest = &block[end..];
        rest = rest.find("-----").map(|j| &rest[j + 5..]).unwrap_or("");
    }
    if out.is_empty() {
        return Err(Error::Key("no CERTIFICATE block found".into()));
    }
    Ok(out)
}

/// Finds the first PEM block in `text` (skipping any preamble) and decodes it.
fn decode_pem(text: &str) -> Result<(String, Vec<u8>)> {
    let start = text
        .find("-----BEGIN ")
        .ok_or_else(|| Error::Key("no PEM block (-----BEGIN ...) found".into()))?;
    let block = &text[start..];
    let end_marker = block
        .find("-----END ")
        .and_then(|i| block[i + 9..].find("-----").map(|j| i + 9 + j + 5))
        .ok_or_else(|| Error::Key("PEM block has no -----END line".into()))?;
    let block = &block[..end_marker];
    let (label, der) = pkcs8::der::pem::decode_vec(block.as_bytes())
        .map_err(|e| Error::Key(format!("bad PEM: {e}")))?;
    Ok((label.to_string(), der))
}

/// Reads a private key file; the passphrase (if the key is encrypted) comes from `passphrase`
/// or else from `TUNEGATE_KEY_PASSPHRASE`.
pub fn load_private_key(path: &std::path::Path, passphrase: Option<&[u8]>) -> Result<PrivateKey> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    let env = std::env::var(PASSPHRASE_ENV).ok();
    let pw = passphrase.or(env.as_deref().map(str::as_bytes));
    PrivateKey::from_pem(&text, pw).map_err(|e| Error::Key(format!("{}: {e}", path.display())))
}

/// Reads a public key (or certificate, or private key) file.
pub fn load_public_key(path: &std::path::Path) -> Result<PublicKey> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    PublicKey::from_pem(&text).map_err(|e| Error::Key(format!("{}: {e}", path.display())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sign_verify_all_types() {
        for alg in [
            KeyAlgorithm::EcdsaP256,
            KeyAlgorithm::EcdsaP384,
            KeyAlgorithm::EcdsaP521,
            KeyAlgorithm::Ed25519,
        ] {
            let k = PrivateKey::generate(alg);
            let sig = k.sign(b"hello").unwrap();
            let pk = k.public_key();
            assert!(pk.verify(b"hello", &sig, EcdsaHash::Curve), "{alg:?}");
            assert!(!pk.verify(b"hellp", &sig, EcdsaHash::Curve), "{alg:?}");
            let other = PrivateKey::generate(alg).public_key();
            assert!(!other.verify(b"hello", &sig, EcdsaHash::Curve), "{alg:?}");
        }
    }

    #[test]
    fn pem_roundtrip_plain_and_encrypted() {
        for alg in [
            KeyAlgorithm::EcdsaP256,
            KeyAlgorithm::EcdsaP384,
            KeyAlgorithm::EcdsaP521,
            KeyAlgorithm::Ed25519,
        ] {
            let k = PrivateKey::generate(alg);
            let plain = k.to_pem(None).unwrap();
            assert!(plain.starts_with("-----BEGIN PRIVATE KEY-----\n"));
            let back = PrivateKey::from_pem(&plain, None).unwrap();
            assert_eq!(back.public_key(), k.public_key());

            let enc = k.to_pem(Some(b"correct horse")).unwrap();
            assert!(enc.starts_with("-----BEGIN ENCRYPTED PRIVATE KEY-----\n"));
            let back = PrivateKey::from_pem(&enc, Some(b"correct horse")).unwrap();
            assert_eq!(back.public_key(), k.public_key());
            let wrong = PrivateKey::from_pem(&enc, Some(b"wrong")).unwrap_err();
            assert!(wrong.to_string().contains("wrong passphrase"), "{wrong}");
            let none = PrivateKey::from_pem(&enc, None).unwrap_err();
            assert!(none.to_string().contains("encrypted"), "{none}");

            let pem = k.public_key().to_pem();
            assert_eq!(PublicKey::from_pem(&pem).unwrap(), k.public_key());
        }
    }

    #[test]
    fn hint_matches_model_signing_on_the_shared_key() {
        // The public key file has a certtool text preamble; the hint is over the re-encoded PEM.
        let root = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
        let rel = "shared/data/model-signing/keys/certificate/signing-key-pub.pem";
        let p = [root.join("..").join(rel), root.join("../..").join(rel)]
            .into_iter()
            .find(|p| p.exists())
            .unwrap_or_else(|| root.join("..").join(rel));
        if !p.exists() {
            eprintln!("note: {} absent, hint vector not checked", p.display());
            return;
        }
        let k = load_public_key(&p).unwrap();
        assert_eq!(k.algorithm(), KeyAlgorithm::EcdsaP384);
        assert_eq!(
            k.hint(),
            "e8450dec4eb99dae995da9af1bc2cc9f76ed669ee2e744f57abba763df3e3f8e"
        );
        let sk = load_private_key(&p.with_file_name("signing-key.pem"), None).unwrap();
        assert_eq!(sk.public_key(), k);
        let cert = load_public_key(&p.with_file_name("signing-key-cert.pem")).unwrap();
        assert_eq!(cert, k);
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        assert!(PublicKey::from_pem("nothing here").is_err());
        assert!(PublicKey::from_pem(
            "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n"
        )
        .is_err());
        assert!(PrivateKey::from_pem(
            "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
            None
        )
        .is_err());
    }
}
