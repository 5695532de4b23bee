//! The model gate's checks (`M###`). Ids are stable; never renumber, never reuse.
tunegate_core::declare_checks! {
    DANGEROUS_GLOBAL = "M001", "model.pickle-dangerous-global", Critical,
        "A pickle imports a global that executes code, spawns processes, touches files or the network, imports modules or unpickles nested data.";
    UNKNOWN_GLOBAL = "M002", "model.pickle-unknown-global", Medium,
        "A pickle imports a global outside the checkpoint allow-list (high when it is called during load or reached through a dotted name).";
    MALFORMED = "M003", "model.pickle-malformed", Medium,
        "A pickle stream is truncated or invalid where CPython's unpickler would stop with an error.";
    ARCHIVE_SUSPICIOUS = "M004", "model.archive-suspicious", High,
        "A zip or tar container with path traversal, local/central name mismatch, flag bits, a decompression bomb or unreadable members.";
    NUMPY_OBJECT = "M005", "model.numpy-object-array", Low,
        "A NumPy array with object dtype: loading it with allow_pickle unpickles its content (the embedded pickle is scanned too).";
    GLOBAL_MUTATION = "M006", "model.pickle-global-mutation", Critical,
        "A pickle BUILDs state into an imported module or class, overwriting attributes a later import would trust.";
    UNSCANNABLE = "M007", "model.archive-unscannable", High,
        "A container format tunegate cannot look inside (7z): loading tools may still unpack and unpickle it.";
    RESOURCE_LIMIT = "M008", "model.pickle-resource-limit", High,
        "A pickle exceeds the decoder's bounds (opcodes, stack, memo or mark nesting): an expansion attack or a file too odd to trust.";
    NOT_SCANNED = "M009", "model.format-not-scanned", Info,
        "A file whose format this gate does not inspect yet (safetensors, Keras, GGUF, text, ...).";
    UNRESOLVED_CALLABLE = "M010", "model.pickle-unresolved-callable", High,
        "A pickle calls or imports something the scanner cannot resolve statically (EXT registry codes, computed callables, non-string STACK_GLOBAL operands).";
    FRAME_DIVERGENCE = "M011", "model.pickle-frame-divergence", High,
        "An opcode straddles a FRAME boundary: pickletools-based tools and CPython's C unpickler decode the bytes differently.";
    TEMPLATE_INJECTION = "M012", "model.chat-template-injection", High,
        "A chat template (tokenizer config, GGUF metadata, .jinja file) reaches for attributes a Jinja sandbox refuses (dunders, escaped underscores, attr filter): server-side template injection.";
    KERAS_LAMBDA = "M013", "model.keras-lambda", High,
        "A Keras model config (H5 or .keras) holds a Lambda layer, whose marshalled or source code runs when the model loads.";
    TF_UNSAFE_OP = "M014", "model.tf-unsafe-op", High,
        "A TensorFlow graph uses an op that runs Python or touches files (PyFunc, EagerPyFunc, ReadFile, WriteFile).";
    REMOTE_CODE = "M015", "model.remote-code", Medium,
        "Loading needs trust_remote_code: auto_map or custom_pipelines in a config (high when `repo--module.Class` pulls code from another repository) or Python files beside the weights.";
    WEIGHTS_TWIN = "M016", "model.weights-twin", Info,
        "A folder holds both safetensors and pickle weights; says which one transformers would load.";
    SAFETENSORS_HEADER = "M017", "model.safetensors-header", Medium,
        "A safetensors header that a strict loader rejects or that lies: length out of bounds, bad JSON, unknown dtype, shape/size disagreement, offsets out of range, overlapping or leaving gaps, non-string metadata.";
    APPROVED_CHANGED = "M020", "model.approved-file-changed", Critical,
        "A file's SHA-256 differs from the digest the approved-model list records for it (names expected and actual digests, and which approved file the content belongs to when shards were swapped).";
    APPROVED_MISSING = "M021", "model.approved-file-missing", High,
        "A file the approved-model entry lists is absent from the model folder.";
    APPROVED_UNEXPECTED = "M022", "model.approved-file-unexpected", High,
        "A file in the model folder that the approved-model entry does not list (a .py beside the weights, a swapped-in pytorch_model.bin, a renamed file).";
    APPROVED_FOLDER_DIGEST = "M023", "model.approved-folder-digest", High,
        "The folder digest (SHA-256 of the sorted sha256sum listing) differs from an entry that records only a folder digest.";
    APPROVED_SYMLINK = "M024", "model.approved-symlink", High,
        "A symbolic link inside the model folder: tunegate does not follow links, so its content is unverified and could come from outside the folder.";
    APPROVED_NO_ENTRY = "M025", "model.approved-no-entry", Critical,
        "No entry of the approved-model list matches the model (or several match equally well): the model is not approved.";
    APPROVED_MATCH = "M026", "model.approved-match", Info,
        "The model matches an approved-model entry exactly; names the id, revision and folder digest.";
    APPROVED_IGNORED = "M027", "model.approved-ignored", Info,
        "A top-level folder the approved-model comparison skips by rule (.git/, .cache/huggingface/).";
    APPROVED_SIGNATURE_INVALID = "M028", "model.approved-list-signature-invalid", Critical,
        "`model verify --key`: the approved-model list's detached signature (OpenSSF model-signing bundle) does not verify with the key (changed list, wrong key, signature for another file); the list is not trusted and no model is compared against it.";
    APPROVED_SIGNATURE_OK = "M029", "model.approved-list-signed", Info,
        "`model verify --key`: the approved-model list's signature verified; names the signer.";
    DIFF_TENSOR_SET = "M030", "model.diff-tensor-set", Medium,
        "`model diff`: a tensor was added or removed, or changed dtype or shape, against the reference (high with --identical).";
    DIFF_ROW_EDIT = "M031", "model.diff-row-edit", High,
        "`model diff`: only a few rows of a tensor changed (at most 5%) while the rest are bit-identical: a targeted edit such as rewritten embedding rows.";
    DIFF_LOCALIZED = "M032", "model.diff-localized-change", High,
        "`model diff`: one of few changed tensors (at most 3, or 5% of them) while at least 75% of the model is bit-identical to the reference: a targeted edit, not a fine-tune.";
    DIFF_OUTLIER = "M033", "model.diff-outlier-change", Medium,
        "`model diff`: a tensor's relative change is an outlier against the other changed tensors of the model or of its layer (robust z-score of log change over 3.5 and at least 10x the median).";
    NONFINITE_WEIGHTS = "M034", "model.weights-nonfinite", High,
        "A tensor holds NaN or infinite values.";
    DIFF_SUMMARY = "M035", "model.diff-summary", Info,
        "`model diff`: how many tensors changed against the reference and by how much.";
    DIFF_NOT_IDENTICAL = "M036", "model.diff-not-identical", High,
        "`model diff --identical`: the model was claimed identical to the reference but some tensor differs.";
    DIFF_ROW_OUTLIERS = "M037", "model.diff-row-outliers", Medium,
        "`model diff` with reference weights: a few rows (at most 1%) of a tensor changed far more than its other rows (robust z-score over 3.5, at least 10x the median row change): edited rows hidden in a fine-tune, or tokens the fine-tune trained hard.";
    // `tunegate lint` (pipeline source; report gate `lint`). Severities are graded per finding:
    // deserialisation findings rise one step in a file that also downloads artifacts.
    LINT_TRUST_REMOTE_CODE = "M040", "lint.trust-remote-code", High,
        "Pipeline source passes trust_remote_code=True (keyword, dict entry, CLI flag or YAML setting): loading runs Python from the model or dataset repository.";
    LINT_TORCH_LOAD = "M041", "lint.torch-load-unpickles", Medium,
        "torch.load (or load_state_dict_from_url) without weights_only=True unpickles on torch < 2.6; weights_only=False is high.";
    LINT_PICKLE = "M042", "lint.pickle-load", High,
        "pickle/cPickle/_pickle/dill/cloudpickle load, loads or Unpickler: unpickling runs code from the input.";
    LINT_JOBLIB = "M043", "lint.joblib-load", High,
        "joblib.load unpickles its input.";
    LINT_NUMPY_PICKLE = "M044", "lint.numpy-allow-pickle", High,
        "numpy.load(..., allow_pickle=True) unpickles object arrays.";
    LINT_PANDAS_PICKLE = "M045", "lint.pandas-read-pickle", High,
        "pandas.read_pickle unpickles its input.";
    LINT_YAML = "M046", "lint.yaml-unsafe-load", High,
        "yaml.load without a safe loader, yaml.unsafe_load or yaml.full_load: YAML tags construct Python objects (medium without Loader= or with FullLoader).";
    LINT_TORCH_HUB = "M047", "lint.torch-hub-load", Medium,
        "torch.hub.load imports and runs hubconf.py from a GitHub repository.";
    LINT_NO_SAFETENSORS = "M048", "lint.use-safetensors-false", Medium,
        "from_pretrained(..., use_safetensors=False) loads pickle weights instead of safetensors.";
    LINT_KERAS_UNSAFE = "M049", "lint.keras-unsafe-mode", High,
        "keras load_model(..., safe_mode=False) deserialises Lambda layers, whose code runs on load.";
    LINT_EXEC = "M050", "lint.exec-downloaded", High,
        "exec/eval of text computed at run time in a file that downloads content (low when the file fetches nothing, critical when the argument fetches directly).";
    LINT_UNPARSED = "M051", "lint.source-unparsed", Medium,
        "A pipeline source file that could not be decoded (not UTF-8, notebook not JSON or not nbformat 4) and was not linted.";
    LINT_RESOURCE_LIMIT = "M052", "lint.resource-limit", Medium,
        "A source file too large to lint, or more findings in one file than are reported.";
}

#[cfg(test)]
mod tests {
    #[test]
    fn ids_are_well_formed_and_unique() {
        tunegate_core::checks::validate(super::CHECKS).unwrap();
    }
}
