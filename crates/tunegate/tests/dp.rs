//! `tunegate dp` end to end: both commands' JSON shape and values (checked against
//! dp-accounting 0.6.0 numbers from `tunegate-ml/tests/vectors`), the epochs form, text output,
//! infinite ε at zero noise, and exit 2 with a message naming the flag on bad input.
use assert_cmd::Command;
use predicates::str::contains;
use serde_json::Value;

fn tg() -> Command {
    Command::cargo_bin("tunegate").unwrap()
}

fn json_out(args: &[&str]) -> Value {
    let out = tg()
        .arg("dp")
        .args(args)
        .args(["--format", "json"])
        .assert()
        .code(0);
    serde_json::from_slice(&out.get_output().stdout).expect("JSON on stdout")
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-3 * b.abs()
}

#[test]
fn epsilon_json_shape_and_value() {
    let v = json_out(&[
        "epsilon",
        "--noise-multiplier",
        "1.1",
        "--sample-rate",
        "0.01",
        "--steps",
        "1000",
        "--delta",
        "1e-5",
    ]);
    let keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(&keys[..3], &["epsilon", "delta", "accountant"]);
    assert_eq!(v["accountant"], "rdp");
    assert_eq!(v["delta"].as_f64(), Some(1e-5));
    // dp-accounting 0.6.0: 1.7117701662429012 at order 9.6.
    let eps = v["epsilon"].as_f64().unwrap();
    assert!(close(eps, 1.7117701662429012), "{eps}");
    assert_eq!(v["order"].as_f64(), Some(9.6));
    assert_eq!(v["steps"].as_u64(), Some(1000));
}

#[test]
fn epochs_form_equals_rate_and_steps() {
    let v = json_out(&[
        "epsilon",
        "--noise-multiplier",
        "1.1",
        "--epochs",
        "10",
        "--dataset-size",
        "10000",
        "--batch-size",
        "100",
        "--delta",
        "1e-5",
    ]);
    assert_eq!(v["sample_rate"].as_f64(), Some(0.01));
    assert_eq!(v["steps"].as_u64(), Some(1000));
    assert!(close(v["epsilon"].as_f64().unwrap(), 1.7117701662429012));
}

#[test]
fn noise_json_shape_and_value() {
    let v = json_out(&[
        "noise",
        "--epsilon",
        "1",
        "--sample-rate",
        "0.01",
        "--steps",
        "1000",
        "--delta",
        "1e-5",
    ]);
    let keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(
        &keys[..4],
        &["epsilon", "delta", "accountant", "noise_multiplier"]
    );
    assert_eq!(v["accountant"], "rdp");
    // dp-accounting's calibrate_dp_mechanism: 1.5131221642023396.
    let noise = v["noise_multiplier"].as_f64().unwrap();
    assert!(close(noise, 1.5131221642023396), "{noise}");
    let eps = v["epsilon"].as_f64().unwrap();
    assert!(eps <= 1.0 && eps > 0.999, "{eps}");
    assert_eq!(v["target_epsilon"].as_f64(), Some(1.0));
}

#[test]
fn text_output() {
    tg().args([
        "dp",
        "epsilon",
        "--noise-multiplier",
        "1.1",
        "--sample-rate",
        "0.01",
        "--steps",
        "1000",
        "--delta",
        "1e-5",
    ])
    .assert()
    .code(0)
    .stdout(contains("epsilon = 1.711770 at delta = 1e-5"))
    .stdout(contains("optimal order 9.6"));
    tg().args([
        "dp",
        "noise",
        "--epsilon",
        "1",
        "--sample-rate",
        "0.01",
        "--steps",
        "1000",
        "--delta",
        "1e-5",
    ])
    .assert()
    .code(0)
    .stdout(contains("noise multiplier = 1.5131"));
}

#[test]
fn zero_noise_is_infinite_epsilon() {
    let v = json_out(&[
        "epsilon",
        "--noise-multiplier",
        "0",
        "--sample-rate",
        "0.01",
        "--steps",
        "10",
        "--delta",
        "1e-5",
    ]);
    assert!(v["epsilon"].is_null());
    assert_eq!(v["epsilon_infinite"], true);
    tg().args([
        "dp",
        "epsilon",
        "--noise-multiplier",
        "0",
        "--sample-rate",
        "0.01",
        "--steps",
        "10",
        "--delta",
        "1e-5",
    ])
    .assert()
    .code(0)
    .stdout(contains("epsilon = inf"))
    .stdout(contains("no privacy guarantee"));
}

#[test]
fn bad_input_exits_2_naming_the_argument() {
    let cases: &[(&[&str], &str)] = &[
        (
            &[
                "epsilon",
                "--noise-multiplier",
                "-1",
                "--sample-rate",
                "0.01",
                "--steps",
                "10",
                "--delta",
                "1e-5",
            ],
            "noise multiplier -1",
        ),
        (
            &[
                "epsilon",
                "--noise-multiplier",
                "NaN",
                "--sample-rate",
                "0.01",
                "--steps",
                "10",
                "--delta",
                "1e-5",
            ],
            "noise multiplier NaN",
        ),
        (
            &[
                "epsilon",
                "--noise-multiplier",
                "1",
                "--sample-rate",
                "1.5",
                "--steps",
                "10",
                "--delta",
                "1e-5",
            ],
            "sample rate 1.5",
        ),
        (
            &[
                "epsilon",
                "--noise-multiplier",
                "1",
                "--sample-rate",
                "0.1",
                "--steps",
                "10",
                "--delta",
                "1",
            ],
            "delta 1",
        ),
        (
            &[
                "epsilon",
                "--noise-multiplier",
                "1",
                "--sample-rate",
                "0.1",
                "--steps",
                "0",
                "--delta",
                "1e-5",
            ],
            "steps 0",
        ),
        (
            &[
                "epsilon",
                "--noise-multiplier",
                "1",
                "--sample-rate",
                "0.1",
                "--delta",
                "1e-5",
            ],
            "--steps",
        ),
        (
            &[
                "epsilon",
                "--noise-multiplier",
                "1",
                "--sample-rate",
                "0.1",
                "--steps",
                "5",
                "--epochs",
                "1",
                "--delta",
                "1e-5",
            ],
            "not both",
        ),
        (
            &[
                "epsilon",
                "--noise-multiplier",
                "1",
                "--epochs",
                "1",
                "--dataset-size",
                "10",
                "--batch-size",
                "20",
                "--delta",
                "1e-5",
            ],
            "batch size 20",
        ),
        (
            &[
                "noise",
                "--epsilon",
                "0",
                "--sample-rate",
                "0.1",
                "--steps",
                "10",
                "--delta",
                "1e-5",
            ],
            "epsilon 0",
        ),
        (
            &[
                "noise",
                "--epsilon",
                "1",
                "--sample-rate",
                "0.1",
                "--steps",
                "10",
                "--delta",
                "-0.1",
            ],
            "delta -0.1",
        ),
        (
            &[
                "epsilon",
                "--noise-multiplier",
                "1",
                "--sample-rate",
                "0.1",
                "--steps",
                "10",
                "--delta",
                "1e-5",
                "--format",
                "xml",
            ],
            "unknown format",
        ),
    ];
    for (args, msg) in cases {
        tg().arg("dp")
            .args(*args)
            .assert()
            .code(2)
            .stderr(contains(*msg));
    }
}
