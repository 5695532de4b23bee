//! DSSE (Dead Simple Signing Envelope): the pre-authentication encoding (PAE) and the JSON
//! envelope `{payload, payloadType, signatures[{keyid, sig}]}`.
//!
//! The signature covers `PAE(payloadType, payload)`, never the JSON, so re-serialising an
//! envelope cannot change what was signed. [`Envelope::verify`] returns the exact payload bytes
//! it checked, so callers never parse bytes other than the signed ones.
use crate::error::{Error, Result};
use crate::keys::{EcdsaHash, PublicKey, Signer};
use base64::engine::general_purpose::{STANDARD, URL_SAFE};
use base64::Engine as _;
use serde::{Deserialize, Serialize};

/// The payload type of an in-toto statement.
pub const IN_TOTO_PAYLOAD_TYPE: &str = "application/vnd.in-toto+json";

/// `"DSSEv1" SP len(type) SP type SP len(body) SP body`, lengths in ASCII decimal bytes.
pub fn pae(payload_type: &str, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload.len() + payload_type.len() + 32);
    out.extend_from_slice(b"DSSEv1 ");
    out.extend_from_slice(payload_type.len().to_string().as_bytes());
    out.push(b' ');
    out.extend_from_slice(payload_type.as_bytes());
    out.push(b' ');
    out.extend_from_slice(payload.len().to_string().as_bytes());
    out.push(b' ');
    out.extend_from_slice(payload);
    out
}

/// The encoding `model_signing` v0.2.0 signed by mistake (verify only): header `DSSEV1` with a
/// capital V, then Python's `repr()` of the payload bytes instead of the bytes.
pub fn pae_compat_v020(payload_type: &str, payload: &[u8]) -> Vec<u8> {
    let mut out = format!(
        "DSSEV1 {} {} {} ",
        payload_type.len(),
        payload_type,
        payload.len()
    )
    .into_bytes();
    out.extend_from_slice(python_bytes_repr(payload).as_bytes());
    out
}

/// Python's `repr(bytes)`.
fn python_bytes_repr(b: &[u8]) -> String {
    let quote = if b.contains(&b'\'') && !b.contains(&b'"') {
        '"'
    } else {
        '\''
    };
    let mut s = String::with_capacity(b.len() + 3);
    s.push('b');
    s.push(quote);
    for &c in b {
        match c {
            b'\\' => s.push_str("\\\\"),
            b'\t' => s.push_str("\\t"),
            b'\n' => s.push_str("\\n"),
            b'\r' => s.push_str("\\r"),
            c if c as char == quote => {
                s.push('\\');
                s.push(quote);
            }
            0x20..=0x7e => s.push(c as char),
            c => s.push_str(&format!("\\x{c:02x}")),
        }
    }
    s.push(quote);
    s
}

/// One signature of an envelope.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnvelopeSignature {
    /// Base64 signature bytes.
    pub sig: String,
    /// Key id; `model_signing` writes `""` (v1.1) or `null` (older). Always written as a string.
    #[serde(default, deserialize_with = "null_as_empty")]
    pub keyid: String,
}

fn null_as_empty<'de, D: serde::Deserializer<'de>>(d: D) -> std::result::Result<String, D::Error> {
    Ok(Option::<String>::deserialize(d)?.unwrap_or_default())
}

/// A DSSE envelope as JSON (field names as in the DSSE spec and the Sigstore bundle).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Envelope {
    /// Base64 (standard alphabet on write; standard or URL-safe on read) of the payload bytes.
    pub payload: String,
    /// What the payload is, e.g. [`IN_TOTO_PAYLOAD_TYPE`].
    #[serde(rename = "payloadType")]
    pub payload_type: String,
    /// The signatures (tunegate writes one and verifies the first, as `model_signing` does).
    pub signatures: Vec<EnvelopeSignature>,
}

/// Why an envelope did not verify.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EnvelopeFailure {
    /// The envelope holds no signature.
    NoSignature,
    /// `payload` or `sig` is not base64.
    BadBase64(&'static str),
    /// The signature does not verify with the key.
    BadSignature,
}

impl std::fmt::Display for EnvelopeFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            EnvelopeFailure::NoSignature => write!(f, "the DSSE envelope holds no signature"),
            EnvelopeFailure::BadBase64(w) => write!(f, "the DSSE {w} is not valid base64"),
            EnvelopeFailure::BadSignature => write!(
                f,
                "the DSSE signature does not verify with the given key (wrong key, or the payload or payload type was changed)"
            ),
        }
    }
}

/// Decodes standard or URL-safe base64, padded or not.
pub fn decode_b64(s: &str) -> Option<Vec<u8>> {
    let t = s.trim_end_matches('=');
    let pad = |x: &str| {
        let mut v = x.to_string();
        while v.len() % 4 != 0 {
            v.push('=');
        }
        v
    };
    STANDARD
        .decode(pad(t))
        .or_else(|_| URL_SAFE.decode(pad(t)))
        .ok()
}

impl Envelope {
    /// Signs `payload` of type `payload_type`.
    pub fn sign(payload_type: &str, payload: &[u8], signer: &dyn Signer) -> Result<Self> {
        let sig = signer.sign(&pae(payload_type, payload))?;
        Ok(Envelope {
            payload: STANDARD.encode(payload),
            payload_type: payload_type.to_string(),
            signatures: vec![EnvelopeSignature {
                sig: STANDARD.encode(sig),
                keyid: String::new(),
            }],
        })
    }

    /// The payload bytes, *unverified*. Only for diagnostics; use [`Envelope::verify`].
    pub fn payload_unverified(&self) -> Option<Vec<u8>> {
        decode_b64(&self.payload)
    }

    /// Verifies the first signature over the PAE with `key` and returns the signed payload
    /// bytes. With `allow_compat`, the v0.2.0 `model_signing` encoding is tried too (for ECDSA:
    /// curve hash, then SHA-256).
    pub fn verify(
        &self,
        key: &PublicKey,
        allow_compat: bool,
    ) -> std::result::Result<Vec<u8>, EnvelopeFailure> {
        let first = self
            .signatures
            .first()
            .ok_or(EnvelopeFailure::NoSignature)?;
        let payload = decode_b64(&self.payload).ok_or(EnvelopeFailure::BadBase64("payload"))?;
        let sig = decode_b64(&first.sig).ok_or(EnvelopeFailure::BadBase64("signature"))?;
        if key.verify(&pae(&self.payload_type, &payload), &sig, EcdsaHash::Curve) {
            return Ok(payload);
        }
        if allow_compat {
            let compat = pae_compat_v020(&self.payload_type, &payload);
            if key.verify(&compat, &sig, EcdsaHash::Curve)
                || key.verify(&compat, &sig, EcdsaHash::Sha256)
            {
                return Ok(payload);
            }
        }
        Err(EnvelopeFailure::BadSignature)
    }
}

/// Convenience: parse an envelope from JSON.
pub fn parse_envelope(json: &str) -> Result<Envelope> {
    serde_json::from_str(json).map_err(|e| Error::Format(format!("not a DSSE envelope: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::{KeyAlgorithm, PrivateKey};

    #[test]
    fn pae_matches_the_spec_example() {
        // The DSSE spec's worked example.
        assert_eq!(
            pae("http://example.com/HelloWorld", b"hello world"),
            b"DSSEv1 29 http://example.com/HelloWorld 11 hello world".to_vec()
        );
        assert_eq!(pae("", b""), b"DSSEv1 0  0 ".to_vec());
    }

    #[test]
    fn python_repr_escapes() {
        assert_eq!(python_bytes_repr(b"{\n \"a\\\"}"), "b'{\\n \"a\\\\\"}'");
        assert_eq!(python_bytes_repr(b"\x00\xff'"), "b\"\\x00\\xff'\"");
        assert_eq!(python_bytes_repr(b"'\""), "b'\\'\"'");
    }

    #[test]
    fn envelope_roundtrip_and_tamper() {
        let k = PrivateKey::generate(KeyAlgorithm::EcdsaP256);
        let env = Envelope::sign(IN_TOTO_PAYLOAD_TYPE, b"{\"x\":1}", &k).unwrap();
        let json = serde_json::to_string(&env).unwrap();
        assert!(json.contains("\"payloadType\":\"application/vnd.in-toto+json\""));
        let back = parse_envelope(&json).unwrap();
        assert_eq!(back.verify(&k.public_key(), false).unwrap(), b"{\"x\":1}");

        let mut t = back.clone();
        t.payload_type = "application/json".into();
        assert_eq!(
            t.verify(&k.public_key(), true),
            Err(EnvelopeFailure::BadSignature)
        );
        let mut t = back.clone();
        t.payload = STANDARD.encode(b"{\"x\":2}");
        assert_eq!(
            t.verify(&k.public_key(), true),
            Err(EnvelopeFailure::BadSignature)
        );
        let mut t = back.clone();
        t.signatures.clear();
        assert_eq!(
            t.verify(&k.public_key(), true),
            Err(EnvelopeFailure::NoSignature)
        );
        let other = PrivateKey::generate(KeyAlgorithm::EcdsaP256).public_key();
        assert_eq!(
            back.verify(&other, true),
            Err(EnvelopeFailure::BadSignature)
        );
        // keyid null is accepted
        let j = json.replace("\"keyid\":\"\"", "\"keyid\":null");
        assert!(parse_envelope(&j)
            .unwrap()
            .verify(&k.public_key(), false)
            .is_ok());
    }

    #[test]
    fn url_safe_base64_is_accepted() {
        assert_eq!(decode_b64("-_8").unwrap(), vec![0xfb, 0xff]);
        assert_eq!(decode_b64("+/8=").unwrap(), vec![0xfb, 0xff]);
        assert!(decode_b64("!!").is_none());
    }
}
