//! Signature bundles on arbitrary bytes: parsing, the verification material, envelope
//! verification and the manifest parser never panic, and nothing verifies with a key that
//! signed nothing.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tunegate_sign::bundle::Bundle;
use tunegate_sign::keys::PublicKey;
use tunegate_sign::manifest::Manifest;
use tunegate_sign::statement::Statement;
use tunegate_sign::verify::{verify_bundle, Trust};

const KEY: &str = "-----BEGIN PUBLIC KEY-----
MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAERPXc/Nc1PkWJFEjmzZae3pGSMizU
EFFMRIlzOCWj3NBYgnftYjDl8QxP0N7/AuO1Ct9c8x8eczOdgALSVPwzLQ==
-----END PUBLIC KEY-----
";

fuzz_target!(|data: &[u8]| {
    let Ok(b) = Bundle::parse(data) else { return };
    let _ = b.material();
    let key = PublicKey::from_pem(KEY).expect("fixed key");
    assert!(verify_bundle(&b, &Trust::Key(key)).is_err(), "verified without a signature by the key");
    let _ = verify_bundle(&b, &Trust::BundledCertificateUnverified);
    if let Some(p) = b.dsse_envelope.payload_unverified() {
        if let Ok(st) = Statement::from_payload(&p) {
            let _ = Manifest::from_statement(&st);
        }
    }
});
