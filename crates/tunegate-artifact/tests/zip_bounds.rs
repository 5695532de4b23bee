//! Zip members are inflated no further than their declared size: a member that understates its
//! size (to slip under the bomb-ratio check) is a finding, not a gigabyte of memory.
use flate2::write::DeflateEncoder;
use flate2::Compression;
use std::io::Write;
use tunegate_artifact::scan_bytes;
use tunegate_core::Severity;

/// A one-member zip whose headers declare `declared` uncompressed bytes for `content`.
fn zip_with(name: &str, content_len: usize, declared: u32) -> Vec<u8> {
    let mut enc = DeflateEncoder::new(Vec::new(), Compression::best());
    let chunk = vec![0u8; 1 << 20];
    let mut left = content_len;
    while left > 0 {
        let k = left.min(chunk.len());
        enc.write_all(&chunk[..k]).unwrap();
        left -= k;
    }
    let comp = enc.finish().unwrap();
    let n = name.as_bytes();
    let mut out = Vec::new();
    // Local header.
    out.extend(0x0403_4b50u32.to_le_bytes());
    out.extend([20, 0, 0, 0, 8, 0, 0, 0, 0, 0]);
    out.extend(0u32.to_le_bytes()); // crc (PyTorch's reader ignores it)
    out.extend((comp.len() as u32).to_le_bytes());
    out.extend(declared.to_le_bytes());
    out.extend((n.len() as u16).to_le_bytes());
    out.extend(0u16.to_le_bytes());
    out.extend(n);
    out.extend(&comp);
    let cd_at = out.len();
    // Central directory header.
    out.extend(0x0201_4b50u32.to_le_bytes());
    out.extend([20, 0, 20, 0, 0, 0, 8, 0, 0, 0, 0, 0]);
    out.extend(0u32.to_le_bytes());
    out.extend((comp.len() as u32).to_le_bytes());
    out.extend(declared.to_le_bytes());
    out.extend((n.len() as u16).to_le_bytes());
    out.extend([0u8; 12]); // extra, comment, disk, internal attrs
    out.extend(0u32.to_le_bytes()); // external attrs
    out.extend(0u32.to_le_bytes()); // local header offset
    out.extend(n);
    let cd_len = out.len() - cd_at;
    out.extend(0x0605_4b50u32.to_le_bytes());
    out.extend([0, 0, 0, 0, 1, 0, 1, 0]);
    out.extend((cd_len as u32).to_le_bytes());
    out.extend((cd_at as u32).to_le_bytes());
    out.extend(0u16.to_le_bytes());
    out
}

#[test]
fn a_member_inflating_past_its_declared_size_is_not_inflated_further() {
    // 32 MiB of zeros declared as 1 KiB: the ratio check sees a small member.
    let z = zip_with("archive/data.pkl", 32 << 20, 1024);
    assert!(z.len() < 64 << 10, "the archive itself is small");
    let f = scan_bytes("liar.pt", &z);
    let hit = f
        .iter()
        .find(|f| f.id == "M004" && f.message.contains("inflates past its declared size"))
        .unwrap_or_else(|| panic!("no declared-size finding: {f:#?}"));
    assert_eq!(hit.severity, Severity::High);
    assert_eq!(hit.evidence["declared"], 1024);
}

#[test]
fn an_honest_member_is_still_inflated_and_scanned() {
    let z = zip_with("archive/data.pkl", 4096, 4096);
    let f = scan_bytes("honest.pt", &z);
    assert!(
        !f.iter().any(|f| f.message.contains("declared size")),
        "{f:#?}"
    );
}
