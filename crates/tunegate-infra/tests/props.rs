//! Property tests: the parsers of untrusted text never panic; they return a value or an error
//! naming the file.
use proptest::prelude::*;
use std::path::Path;
use tunegate_core::Severity;

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn yaml_never_panics(s in "[ -~\n\t:\\-\\[\\]{}&*!|>'\"#%@`]{0,200}") {
        let _ = tunegate_infra::yaml::parse_str(Path::new("p.yaml"), &s);
    }

    #[test]
    fn infra_check_never_panics_on_k8s_shapes(
        kind in prop::sample::select(vec!["Pod", "Job", "CronJob", "NetworkPolicy", "Role", "RoleBinding", "PyTorchJob", "RayJob"]),
        body in "[ -~\n]{0,160}",
    ) {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("x.yaml"), format!("kind: {kind}\n{body}")).unwrap();
        match tunegate_infra::infra::check(&[d.path().to_path_buf()], &Default::default(), Severity::High) {
            Ok(_) => {}
            Err(e) => prop_assert!(e.to_string().contains("x.yaml"), "{}", e),
        }
    }

    #[test]
    fn requirements_never_panic(lines in prop::collection::vec("[ -~é€]{0,60}", 0..8)) {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("requirements.txt");
        std::fs::write(&p, lines.join("\n")).unwrap();
        match tunegate_infra::deps::check(&[p], &[], Severity::High) {
            Ok(_) => {}
            Err(e) => prop_assert!(e.to_string().contains("requirements.txt"), "{}", e),
        }
    }

    #[test]
    fn versions_order_is_total(a in "[0-9]{1,3}(\\.[0-9]{1,3}){0,3}((a|b|rc)[0-9])?(\\.post[0-9])?(\\.dev[0-9])?",
                               b in "[0-9]{1,3}(\\.[0-9]{1,3}){0,3}((a|b|rc)[0-9])?(\\.post[0-9])?(\\.dev[0-9])?") {
        use tunegate_infra::pep440::Version;
        let (x, y) = (Version::parse(&a).unwrap(), Version::parse(&b).unwrap());
        prop_assert_eq!(x.cmp(&y), y.cmp(&x).reverse());
    }
}
