//! Offline X.509 chain verification for certificate-method bundles against trust anchors the
//! user gives (PEM CA certificates), mirroring what `model_signing verify certificate` checks
//! with OpenSSL: each certificate is signed by the next one in the bundle and the last by a
//! trust anchor; names chain; issuers are CAs; every certificate is valid at the leaf's
//! `notBefore` (the signing time the format assumes, so expired leaves still verify); the leaf
//! may sign (KeyUsage digitalSignature, or EKU codeSigning when KeyUsage is absent).
//! Revocation, name constraints and policies are not checked; Fulcio/Rekor (keyless) are out of
//! scope.
use crate::keys::PublicKey;
use pkcs8::der::{Decode, Encode};
use sha2::{Sha256, Sha384, Sha512};
use x509_cert::ext::pkix::{BasicConstraints, ExtendedKeyUsage, KeyUsage, KeyUsages};
use x509_cert::Certificate;

const ECDSA_SHA256: &str = "1.2.840.10045.4.3.2";
const ECDSA_SHA384: &str = "1.2.840.10045.4.3.3";
const ECDSA_SHA512: &str = "1.2.840.10045.4.3.4";
const RSA_SHA256: &str = "1.2.840.113549.1.1.11";
const RSA_SHA384: &str = "1.2.840.113549.1.1.12";
const RSA_SHA512: &str = "1.2.840.113549.1.1.13";
const CODE_SIGNING: &str = "1.3.6.1.5.5.7.3.3";

fn parse(der: &[u8]) -> Result<Certificate, String> {
    Certificate::from_der(der).map_err(|e| format!("bad certificate: {e}"))
}

/// Checks `cert`'s signature with `issuer`'s public key.
fn signed_by(cert: &Certificate, issuer: &Certificate) -> Result<(), String> {
    let tbs = cert.tbs_certificate.to_der().map_err(|e| e.to_string())?;
    let sig = cert
        .signature
        .as_bytes()
        .ok_or("signature has unused bits")?;
    let spki = issuer
        .tbs_certificate
        .subject_public_key_info
        .to_der()
        .map_err(|e| e.to_string())?;
    let alg = cert.signature_algorithm.oid.to_string();
    let ok = match alg.as_str() {
        ECDSA_SHA256 | ECDSA_SHA384 | ECDSA_SHA512 => {
            let key = PublicKey::from_spki_der(&spki).map_err(|e| e.to_string())?;
            verify_ecdsa(&key, &tbs, sig, &alg)
        }
        RSA_SHA256 | RSA_SHA384 | RSA_SHA512 => {
            use rsa::pkcs1v15::{Signature, VerifyingKey};
            use rsa::pkcs8::DecodePublicKey;
            use rsa::signature::Verifier;
            let key = rsa::RsaPublicKey::from_public_key_der(&spki)
                .map_err(|e| format!("issuer key: {e}"))?;
            let s = Signature::try_from(sig).map_err(|e| e.to_string())?;
            match alg.as_str() {
                RSA_SHA256 => VerifyingKey::<Sha256>::new(key).verify(&tbs, &s).is_ok(),
                RSA_SHA384 => VerifyingKey::<Sha384>::new(key).verify(&tbs, &s).is_ok(),
                _ => VerifyingKey::<Sha512>::new(key).verify(&tbs, &s).is_ok(),
            }
        }
        other => {
            return Err(format!(
                "unsupported certificate signature algorithm {other}"
            ))
        }
    };
    if ok {
        Ok(())
    } else {
        Err(format!(
            "certificate '{}' is not signed by '{}'",
            cert.tbs_certificate.subject, issuer.tbs_certificate.subject
        ))
    }
}

fn verify_ecdsa(key: &PublicKey, msg: &[u8], sig: &[u8], alg: &str) -> bool {
    use ecdsa::signature::hazmat::PrehashVerifier;
    use sha2::Digest;
    let prehash: Vec<u8> = match alg {
        ECDSA_SHA256 => Sha256::digest(msg).to_vec(),
        ECDSA_SHA384 => Sha384::digest(msg).to_vec(),
        _ => Sha512::digest(msg).to_vec(),
    };
    match key {
        PublicKey::P256(k) => p256::ecdsa::Signature::from_der(sig)
            .map(|s| k.verify_prehash(&prehash, &s).is_ok())
            .unwrap_or(false),
        PublicKey::P384(k) => p384::ecdsa::Signature::from_der(sig)
            .map(|s| k.verify_prehash(&prehash, &s).is_ok())
            .unwrap_or(false),
        _ => false,
    }
}

fn is_ca(c: &Certificate) -> bool {
    matches!(c.tbs_certificate.get::<BasicConstraints>(), Ok(Some((_, bc))) if bc.ca)
}

fn valid_at(c: &Certificate, t: std::time::Duration) -> bool {
    let v = &c.tbs_certificate.validity;
    v.not_before.to_unix_duration() <= t && t <= v.not_after.to_unix_duration()
}

/// Verifies `chain` (DER, leaf first, as carried by the bundle) up to one of `anchors` (DER).
/// Returns the leaf's subject on success.
pub fn verify_chain(chain: &[Vec<u8>], anchors: &[Vec<u8>]) -> Result<String, String> {
    if anchors.is_empty() {
        return Err("no trust anchors given".into());
    }
    let certs: Vec<Certificate> = chain.iter().map(|d| parse(d)).collect::<Result<_, _>>()?;
    let roots: Vec<Certificate> = anchors.iter().map(|d| parse(d)).collect::<Result<_, _>>()?;
    let leaf = certs.first().ok_or("empty certificate chain")?;
    let t = leaf.tbs_certificate.validity.not_before.to_unix_duration();
    // The leaf may sign.
    match leaf.tbs_certificate.get::<KeyUsage>() {
        Ok(Some((_, ku))) if !ku.0.contains(KeyUsages::DigitalSignature) => {
            return Err("the leaf certificate's KeyUsage does not allow digital signatures".into())
        }
        Ok(Some(_)) => {}
        _ => match leaf.tbs_certificate.get::<ExtendedKeyUsage>() {
            Ok(Some((_, eku))) if eku.0.iter().any(|o| o.to_string() == CODE_SIGNING) => {}
            _ => return Err(
                "the leaf certificate has neither KeyUsage digitalSignature nor EKU codeSigning"
                    .into(),
            ),
        },
    }
    for (i, c) in certs.iter().enumerate() {
        if !valid_at(c, t) {
            return Err(format!(
                "certificate '{}' is not valid at the leaf's notBefore",
                c.tbs_certificate.subject
            ));
        }
        // Reached a trust anchor itself?
        if roots.iter().any(|r| r == c) {
            return Ok(leaf.tbs_certificate.subject.to_string());
        }
        // Signed by a trust anchor?
        if let Some(r) = roots
            .iter()
            .find(|r| r.tbs_certificate.subject == c.tbs_certificate.issuer)
        {
            signed_by(c, r)?;
            if !valid_at(r, t) {
                return Err(format!(
                    "trust anchor '{}' is not valid at the leaf's notBefore",
                    r.tbs_certificate.subject
                ));
            }
            return Ok(leaf.tbs_certificate.subject.to_string());
        }
        let next = certs.get(i + 1).ok_or_else(|| {
            format!(
                "certificate '{}' (issuer '{}') does not chain to a given trust anchor",
                c.tbs_certificate.subject, c.tbs_certificate.issuer
            )
        })?;
        if next.tbs_certificate.subject != c.tbs_certificate.issuer {
            return Err(format!(
                "certificate '{}' is followed by '{}', not by its issuer",
                c.tbs_certificate.subject, next.tbs_certificate.subject
            ));
        }
        if !is_ca(next) {
            return Err(format!(
                "issuer '{}' is not a CA",
                next.tbs_certificate.subject
            ));
        }
        signed_by(c, next)?;
    }
    Err("the chain does not reach a trust anchor".into())
}
