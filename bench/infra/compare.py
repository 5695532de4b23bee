#!/usr/bin/env python3
"""Per-requirement comparison of tunegate infra check and checkov; prints a Markdown table."""
import argparse, json, pathlib, shutil, subprocess, tempfile, time

REQ = {
    "I001": "egress isolated (default-deny egress selects the pod)",
    "I002": "egress not open to 0.0.0.0/0",
    "I003": "no hostPath (/dev/shm)",
    "I004": "not privileged",
    "I005": "no hostIPC",
    "I006": "capabilities dropped",
    "I007": "dedicated service account",
    "I008": "RBAC: no wildcard verbs",
    "I009": "RBAC: no get/list secrets",
    "I010": "RBAC: no create pods",
    "I011": "RBAC: not bound to cluster-admin",
    "I012": "no token in plain env",
    "I013": "image pinned by digest",
    "I014": "IAM: no Resource *",
    "I015": "IAM: scoped to the job prefix (not bucket-wide)",
    "I016": "IAM: no s3:ListBucket",
    "I017": "IAM: no bucket-policy actions",
    "I018": "IAM: no public principal",
    "I019": "Job: activeDeadlineSeconds set",
    "I020": "CNI egress CRD reported as not evaluated",
}


def tunegate(bin_, d):
    out = subprocess.run([bin_, "infra", "check", str(d), "--format", "json", "--quiet",
                          "--job-prefix", "ml-checkpoints/jobs/${job-id}/"],
                         capture_output=True, text=True)
    if out.returncode not in (0, 1):
        raise SystemExit(f"tunegate failed on {d}: {out.stderr}")
    return {(f["id"], f["message"]) for f in json.loads(out.stdout)["findings"]}


def checkov(bin_, d):
    """Failed checkov check ids on the manifests (kubernetes) and the IAM policy (terraform)."""
    with tempfile.TemporaryDirectory() as t:
        t = pathlib.Path(t)
        shutil.copytree(d / "k8s", t / "k8s")
        tf = t / "tf"
        tf.mkdir()
        for i, p in enumerate(sorted((d / "iam").glob("*.json"))):
            (tf / f"p{i}.tf").write_text(
                f'resource "aws_iam_policy" "p{i}" {{\n  name = "p{i}"\n  policy = <<POLICY\n'
                + p.read_text() + "POLICY\n}\n")
        failed = set()
        for sub, fw in (("k8s", "kubernetes"), ("tf", "terraform")):
            out = subprocess.run([bin_, "-d", str(t / sub), "--framework", fw, "--output", "json",
                                  "--quiet", "--compact", "--skip-download"],
                                 capture_output=True, text=True)
            if not out.stdout.strip():
                raise SystemExit(f"checkov produced no output on {d}/{sub}: {out.stderr[-2000:]}")
            docs = json.loads(out.stdout)
            for doc in docs if isinstance(docs, list) else [docs]:
                for c in doc.get("results", {}).get("failed_checks", []):
                    failed.add((c["check_id"], c.get("resource", "")))
        return failed


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--tunegate", required=True)
    ap.add_argument("--checkov", required=True)
    ap.add_argument("--fixtures", required=True)
    a = ap.parse_args()
    fx = pathlib.Path(a.fixtures)
    version = subprocess.run([a.checkov, "--version"], capture_output=True, text=True).stdout.strip()
    t0 = time.time()
    base_t, base_c = tunegate(a.tunegate, fx / "pattern"), checkov(a.checkov, fx / "pattern")
    rows, tg_n, ck_n = [], 0, 0
    for d in sorted((fx / "variants").iterdir()):
        rid = d.name[:4]
        new_t = sorted({i for i, _ in tunegate(a.tunegate, d) - base_t})
        new_c = sorted({i for i, _ in checkov(a.checkov, d) - base_c})
        tg_n += rid in new_t
        ck_n += bool(new_c)
        rows.append(f"| {rid} | {REQ[rid]} | {'yes (' + ', '.join(new_t) + ')' if rid in new_t else 'no'} "
                    f"| {'yes (' + ', '.join(new_c) + ')' if new_c else 'no'} |")
    print(f"checkov {version}; baseline (the pattern) checkov failures: "
          f"{', '.join(sorted({i for i, _ in base_c})) or 'none'}; tunegate findings on the pattern: "
          f"{', '.join(sorted({i for i, _ in base_t})) or 'none'}\n")
    print("| req | requirement (variant of the pattern) | tunegate | checkov (new failed checks) |")
    print("|---|---|---|---|")
    print("\n".join(rows))
    print(f"| | **caught** | **{tg_n}/{len(rows)}** | **{ck_n}/{len(rows)}** |")
    print(f"\n({time.time() - t0:.0f} s for both tools on {len(rows) + 1} fixture sets)")


if __name__ == "__main__":
    main()
