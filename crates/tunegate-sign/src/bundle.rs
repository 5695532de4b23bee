//! The Sigstore bundle (`application/vnd.dev.sigstore.bundle.v0.3+json`) as `model_signing`
//! writes it: `{mediaType, verificationMaterial, dsseEnvelope}`.
//!
//! tunegate writes the key form (`publicKey.hint` = SHA-256 of the public key PEM,
//! `tlogEntries: []`). It reads all forms found in `model_signing` v0.2–v1.1 signatures: key
//! bundles with a hint or with the older `rawBytes`/`keyDetails`, certificate-chain bundles
//! (`x509CertificateChain`) and keyless bundles (`certificate` + Rekor entries), plus the older
//! bundle media types and JSON Lines files (`claims.jsonl`, last OMS line wins).
use crate::dsse::Envelope;
use crate::error::{Error, Result};
use crate::keys::PublicKey;
use serde::{Deserialize, Serialize};

/// The media type tunegate writes (and `model_signing` requires).
pub const MEDIA_TYPE_V03: &str = "application/vnd.dev.sigstore.bundle.v0.3+json";
/// Every media type accepted on read.
pub const ACCEPTED_MEDIA_TYPES: [&str; 4] = [
    MEDIA_TYPE_V03,
    "application/vnd.dev.sigstore.bundle+json;version=0.1",
    "application/vnd.dev.sigstore.bundle+json;version=0.2",
    "application/vnd.dev.sigstore.bundle+json;version=0.3",
];
/// Bundles bigger than this are refused unread.
pub const MAX_BUNDLE_BYTES: u64 = 64 << 20;

/// `verificationMaterial.publicKey`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PublicKeyMaterial {
    /// Hex SHA-256 of the public key PEM (model_signing ≥ 1.1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hint: Option<String>,
    /// Base64 of the public key PEM text (model_signing ≤ 1.0.1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub raw_bytes: Option<String>,
    /// Key details string written next to `rawBytes` (informational).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_details: Option<String>,
}

/// One DER certificate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RawCertificate {
    /// Base64 DER.
    pub raw_bytes: String,
}

/// `verificationMaterial.x509CertificateChain`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CertificateChain {
    /// Leaf first.
    pub certificates: Vec<RawCertificate>,
}

/// `verificationMaterial`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VerificationMaterial {
    /// Key-based signatures.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_key: Option<PublicKeyMaterial>,
    /// Certificate-method signatures.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub x509_certificate_chain: Option<CertificateChain>,
    /// Keyless (Fulcio) signatures.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificate: Option<RawCertificate>,
    /// Transparency-log entries (empty for key and certificate signatures).
    #[serde(default)]
    pub tlog_entries: Vec<serde_json::Value>,
    /// RFC 3161 timestamps (keyless only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timestamp_verification_data: Option<serde_json::Value>,
}

/// A Sigstore bundle holding a DSSE envelope.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Bundle {
    /// Bundle media type.
    pub media_type: String,
    /// What the verifier needs besides its own trust (key hint or certificates).
    pub verification_material: VerificationMaterial,
    /// The signed envelope.
    pub dsse_envelope: Envelope,
}

/// The signer identity material a bundle carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Material {
    /// A public key, identified by hint and/or its PEM.
    Key {
        /// `hint`, if present.
        hint: Option<String>,
        /// The PEM text from `rawBytes`, if present.
        pem: Option<String>,
    },
    /// A certificate chain (leaf first), DER; `keyless` for Fulcio bundles with a tlog entry.
    Certificates {
        /// DER certificates, leaf first.
        chain: Vec<Vec<u8>>,
        /// Whether this is a keyless (Sigstore) bundle.
        keyless: bool,
    },
}

impl Bundle {
    /// A key-method bundle around `envelope`, as model_signing 1.1 writes it.
    pub fn for_key(envelope: Envelope, key: &PublicKey) -> Self {
        Bundle {
            media_type: MEDIA_TYPE_V03.into(),
            verification_material: VerificationMaterial {
                public_key: Some(PublicKeyMaterial {
                    hint: Some(key.hint()),
                    ..Default::default()
                }),
                ..Default::default()
            },
            dsse_envelope: envelope,
        }
    }

    /// Compact JSON, key order `mediaType, verificationMaterial, dsseEnvelope`.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    /// Parses a bundle: one JSON document, or JSON Lines (the last line holding a bundle).
    /// Errors name what is wrong (a truncated file is "not valid JSON").
    pub fn parse(bytes: &[u8]) -> std::result::Result<Self, String> {
        match serde_json::from_slice::<Bundle>(bytes) {
            Ok(b) => Ok(b),
            Err(first) => {
                let text = std::str::from_utf8(bytes)
                    .map_err(|_| "the bundle is not UTF-8 text".to_string())?;
                let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
                if lines.len() > 1 {
                    for l in lines.iter().rev() {
                        if let Ok(b) = serde_json::from_str::<Bundle>(l) {
                            return Ok(b);
                        }
                    }
                }
                if first.is_eof() {
                    Err(format!("the bundle is truncated ({first})"))
                } else {
                    Err(format!("the bundle is not a Sigstore bundle ({first})"))
                }
            }
        }
    }

    /// Reads and parses a bundle file; outer error = unreadable file, inner = malformed bundle.
    pub fn read(path: &std::path::Path) -> Result<std::result::Result<Self, String>> {
        let meta = std::fs::metadata(path).map_err(|e| Error::io(path, e))?;
        if meta.len() > MAX_BUNDLE_BYTES {
            return Err(Error::Format(format!(
                "{}: {} bytes is larger than any signature bundle ({} MiB limit)",
                path.display(),
                meta.len(),
                MAX_BUNDLE_BYTES >> 20
            )));
        }
        let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
        Ok(Self::parse(&bytes))
    }

    /// The signer material, or why there is none usable.
    pub fn material(&self) -> std::result::Result<Material, String> {
        let vm = &self.verification_material;
        let b64 = |s: &str| {
            crate::dsse::decode_b64(s).ok_or_else(|| "a certificate is not base64".to_string())
        };
        if let Some(c) = &vm.x509_certificate_chain {
            let chain = c
                .certificates
                .iter()
                .map(|c| b64(&c.raw_bytes))
                .collect::<std::result::Result<Vec<_>, _>>()?;
            if chain.is_empty() {
                return Err("the certificate chain is empty".into());
            }
            return Ok(Material::Certificates {
                chain,
                keyless: false,
            });
        }
        if let Some(c) = &vm.certificate {
            return Ok(Material::Certificates {
                chain: vec![b64(&c.raw_bytes)?],
                keyless: true,
            });
        }
        if let Some(k) = &vm.public_key {
            let pem = match &k.raw_bytes {
                Some(r) => Some(
                    crate::dsse::decode_b64(r)
                        .and_then(|b| String::from_utf8(b).ok())
                        .ok_or_else(|| "publicKey.rawBytes is not base64 PEM text".to_string())?,
                ),
                None => None,
            };
            return Ok(Material::Key {
                hint: k.hint.clone(),
                pem,
            });
        }
        Err("the bundle has no verification material (no public key, certificate or chain)".into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::{KeyAlgorithm, PrivateKey, Signer};

    #[test]
    fn key_bundle_shape() {
        let k = PrivateKey::generate(KeyAlgorithm::EcdsaP256);
        let env = Envelope::sign(crate::dsse::IN_TOTO_PAYLOAD_TYPE, b"{}", &k).unwrap();
        let b = Bundle::for_key(env, &k.public_key());
        let j = b.to_json();
        assert!(j.starts_with(&format!(
            "{{\"mediaType\":\"{MEDIA_TYPE_V03}\",\"verificationMaterial\":{{\"publicKey\":{{\"hint\":\"{}\"}},\"tlogEntries\":[]}},\"dsseEnvelope\":",
            k.public_key().hint()
        )), "{j}");
        assert_eq!(Bundle::parse(j.as_bytes()).unwrap(), b);
        let t = Bundle::parse(&j.as_bytes()[..j.len() / 2]).unwrap_err();
        assert!(t.contains("truncated"), "{t}");
        // JSON Lines: the last bundle line wins.
        let jl = format!("{j}\n{j}\n");
        assert_eq!(Bundle::parse(jl.as_bytes()).unwrap(), b);
        assert!(matches!(
            b.material(),
            Ok(Material::Key {
                hint: Some(_),
                pem: None
            })
        ));
    }
}
