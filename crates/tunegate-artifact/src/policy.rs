//! The global policy: an allow-list of what real checkpoints import, and a deny-list that only
//! grades severity and explains.
//!
//! Every `(module, name)` a pickle imports is classified after alias normalisation (protocol 0-2
//! names such as `__builtin__`, `copy_reg`, `httplib` are mapped the way CPython's
//! `fix_imports` does, and the C-accelerated twins `_operator`, `_io`, `_pickle`, `posix`, `nt`
//! are treated as their public modules). Matching on the allow-list is exact; dotted names
//! (protocol 4 attribute chains) never match it.

/// How a global is graded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// On the allow-list: real checkpoints need it and loading it runs no attacker code.
    Allowed,
    /// Not on any list: unaudited.
    Unknown,
    /// Unknown, but its name looks like a code-execution or I/O sink (`system`, `popen`, `run`...).
    Suspicious(&'static str),
    /// Executes code, spawns processes, touches files or network, imports modules or unpickles.
    Dangerous(&'static str),
}

/// Exact allow-list, `module.name`, each with the reason it is safe to import during load.
///
/// - torch rebuild helpers (`torch._utils._rebuild_*`, `torch._tensor._rebuild_from_type_v2`):
///   how `torch.save` serialises tensors and parameters; they only build tensors from storages
///   that the loader's `persistent_load` supplies. (`_rebuild_from_type_v2` calls its `func`
///   argument, but that argument is itself an imported global and graded on its own.)
/// - torch storage types, `torch.Size`, `torch.device`, dtypes, layouts, memory formats: pure
///   type tags referenced by persistent ids and tensor metadata.
/// - `collections.OrderedDict`: every `state_dict`. `collections.defaultdict`: only calls its
///   factory on a missing key, never during load (the factory is an import graded on its own).
/// - numpy `_reconstruct`, `ndarray`, `dtype`, `scalar`: how numpy arrays and scalars pickle.
/// - `_codecs.encode`: numpy arrays at protocol 2 encode their bytes as `encode(str, 'latin1')`;
///   it converts a string to bytes and nothing else.
/// - `copyreg._reconstructor`: protocol 0/1 instance creation (`object.__new__(cls)`); the class
///   is a separate import and graded on its own. `builtins.object` is its base argument.
/// - builtins `set`, `frozenset`, `bytearray`, `bytes`, `slice`, `complex`, `range`, `int`,
///   `float`, `bool`, `str`, `list`, `dict`, `tuple`: constructors of plain data, no side effects.
/// - `argparse.Namespace`: hyper-parameters saved in Lightning/fairseq checkpoints; a plain
///   attribute bag.
/// - `joblib.numpy_pickle.NumpyArrayWrapper`: joblib's placeholder for arrays stored beside the
///   pickle; it holds metadata only.
pub const ALLOWED: &[&str] = &[
    "torch._utils._rebuild_tensor",
    "torch._utils._rebuild_tensor_v2",
    "torch._utils._rebuild_tensor_v3",
    "torch._utils._rebuild_parameter",
    "torch._utils._rebuild_parameter_with_state",
    "torch._utils._rebuild_sparse_tensor",
    "torch._utils._rebuild_qtensor",
    "torch._utils._rebuild_device_tensor_from_numpy",
    "torch._utils._rebuild_meta_tensor_no_storage",
    "torch._utils._rebuild_wrapper_subclass",
    "torch._tensor._rebuild_from_type_v2",
    "torch.Size",
    "torch.device",
    "torch.storage.UntypedStorage",
    "torch.storage.TypedStorage",
    "torch.UntypedStorage",
    "torch.TypedStorage",
    "torch.FloatStorage",
    "torch.DoubleStorage",
    "torch.HalfStorage",
    "torch.BFloat16Storage",
    "torch.LongStorage",
    "torch.IntStorage",
    "torch.ShortStorage",
    "torch.CharStorage",
    "torch.ByteStorage",
    "torch.BoolStorage",
    "torch.ComplexFloatStorage",
    "torch.ComplexDoubleStorage",
    "torch.QInt8Storage",
    "torch.QUInt8Storage",
    "torch.QInt32Storage",
    "torch.QUInt4x2Storage",
    "torch.QUInt2x4Storage",
    "torch.cuda.FloatStorage",
    "torch.cuda.DoubleStorage",
    "torch.cuda.HalfStorage",
    "torch.cuda.BFloat16Storage",
    "torch.cuda.LongStorage",
    "torch.cuda.IntStorage",
    "torch.cuda.ShortStorage",
    "torch.cuda.CharStorage",
    "torch.cuda.ByteStorage",
    "torch.cuda.BoolStorage",
    "torch.float16",
    "torch.float32",
    "torch.float64",
    "torch.bfloat16",
    "torch.half",
    "torch.float",
    "torch.double",
    "torch.int8",
    "torch.int16",
    "torch.int32",
    "torch.int64",
    "torch.uint8",
    "torch.bool",
    "torch.complex64",
    "torch.complex128",
    "torch.strided",
    "torch.sparse_coo",
    "torch.contiguous_format",
    "torch.channels_last",
    "torch.preserve_format",
    "torch.per_tensor_affine",
    "torch.per_channel_affine",
    "torch.nn.parameter.Parameter",
    "collections.OrderedDict",
    "collections.defaultdict",
    "numpy.core.multiarray._reconstruct",
    "numpy._core.multiarray._reconstruct",
    "numpy.core.multiarray.scalar",
    "numpy._core.multiarray.scalar",
    "numpy.ndarray",
    "numpy.dtype",
    "_codecs.encode",
    "copyreg._reconstructor",
    "builtins.object",
    "builtins.set",
    "builtins.frozenset",
    "builtins.bytearray",
    "builtins.bytes",
    "builtins.slice",
    "builtins.complex",
    "builtins.range",
    "builtins.int",
    "builtins.float",
    "builtins.bool",
    "builtins.str",
    "builtins.list",
    "builtins.dict",
    "builtins.tuple",
    "argparse.Namespace",
    "joblib.numpy_pickle.NumpyArrayWrapper",
];

/// Modules where every name is critical (after alias normalisation), with the reason.
const DANGEROUS_MODULES: &[(&str, &str)] = &[
    ("os", "process and file-system access"),
    ("subprocess", "spawns processes"),
    ("sys", "interpreter internals (modules, hooks, exit)"),
    ("runpy", "runs Python modules and code"),
    ("importlib", "imports arbitrary modules"),
    ("imp", "imports arbitrary modules"),
    ("zipimport", "imports code from archives"),
    ("pkgutil", "resolves arbitrary names to callables"),
    ("pickle", "unpickles nested data"),
    ("dill", "unpickles nested data and code"),
    ("cloudpickle", "rebuilds code objects"),
    ("marshal", "loads code objects"),
    ("types", "builds code and function objects"),
    ("shutil", "copies, moves and deletes files"),
    ("socket", "network access"),
    ("ssl", "network access"),
    ("http", "network access"),
    ("urllib", "network access"),
    ("urllib2", "network access"),
    ("requests", "network access"),
    ("aiohttp", "network access"),
    ("httpx", "network access"),
    ("ftplib", "network access"),
    ("smtplib", "network access"),
    ("telnetlib", "network access"),
    ("imaplib", "network access and process spawn"),
    ("poplib", "network access"),
    ("nntplib", "network access"),
    ("xmlrpc", "network access"),
    ("webbrowser", "launches programs"),
    ("pty", "spawns processes"),
    ("code", "runs Python code"),
    ("codeop", "compiles Python code"),
    ("ctypes", "loads native libraries"),
    ("_ctypes", "loads native libraries"),
    ("pdb", "runs Python code"),
    ("bdb", "runs Python code"),
    ("cProfile", "runs Python code"),
    ("profile", "runs Python code"),
    ("trace", "runs Python code"),
    ("timeit", "runs Python code"),
    ("doctest", "runs Python code"),
    ("pydoc", "imports modules and runs pagers"),
    ("pip", "installs packages"),
    ("setuptools", "runs build commands"),
    ("distutils", "runs build commands and writes files"),
    ("venv", "creates environments and runs commands"),
    ("ensurepip", "runs pip"),
    ("idlelib", "runs Python code"),
    ("lib2to3", "evaluates grammar files"),
    ("asyncio", "spawns processes and opens connections"),
    ("multiprocessing", "spawns processes"),
    ("concurrent", "spawns processes"),
    ("threading", "runs callables in threads"),
    ("_thread", "runs callables in threads"),
    ("signal", "installs handlers"),
    ("io", "opens files"),
    ("tempfile", "creates files"),
    ("glob", "reads the file system"),
    ("pathlib", "reads and writes files"),
    ("fileinput", "reads files"),
    ("linecache", "reads files"),
    ("logging", "writes files and loads configs"),
    ("mailcap", "runs commands"),
    ("pipes", "runs commands"),
    ("_osx_support", "runs commands"),
    ("_aix_support", "runs commands"),
    ("_pyrepl", "runs pagers"),
    ("test", "runs Python subprocesses"),
    ("platform", "runs commands"),
    ("site", "imports modules"),
    ("gc", "reaches every live object"),
    (
        "operator",
        "calls methods and reads attributes by name (attrgetter, methodcaller, call)",
    ),
    (
        "functools",
        "wraps callables to call them later (partial, reduce)",
    ),
    ("typing", "evaluates type strings"),
    ("dataclasses", "compiles functions"),
    ("_interpreters", "runs code in subinterpreters"),
    ("_posixsubprocess", "spawns processes"),
    ("torch.hub", "downloads and runs code"),
    ("torch.jit", "compiles and runs code"),
    ("torch._dynamo", "evaluates guard code"),
    ("torch._inductor", "compiles and runs code"),
    ("torch.serialization", "loads nested checkpoints"),
    ("torch.utils", "runs commands and profilers"),
    ("torch.fx", "evaluates expressions"),
    ("torch.load", "loads nested checkpoints"),
    (
        "torch.storage._load_from_bytes",
        "runs torch.load on embedded bytes (nested unpickling)",
    ),
    ("torch.package", "imports packaged code"),
    ("torch.ops", "calls native operators"),
    ("numpy.f2py", "evaluates expressions"),
    ("numpy.testing", "runs code"),
    ("numpy.distutils", "runs build commands"),
    ("numpy.load", "unpickles nested data"),
    ("numpy.lib", "loads and saves files"),
    ("numpy.ctypeslib", "loads native libraries"),
    ("joblib.load", "unpickles nested data"),
    ("uuid._get_command_stdout", "runs commands"),
    ("random._os", "os alias"),
];

/// Builtins that run code, import modules, open files or reach attributes by name.
const DANGEROUS_BUILTINS: &[&str] = &[
    "eval",
    "exec",
    "execfile",
    "compile",
    "__import__",
    "open",
    "file",
    "input",
    "raw_input",
    "getattr",
    "setattr",
    "delattr",
    "globals",
    "locals",
    "vars",
    "breakpoint",
    "apply",
    "reload",
    "type",
    "map",
    "filter",
];

/// Leaf names that look like code-execution or I/O sinks in unknown modules.
const SINK_NAMES: &[&str] = &[
    "system",
    "popen",
    "spawn",
    "exec",
    "eval",
    "run",
    "runcode",
    "runcommand",
    "runctx",
    "run_code",
    "call",
    "check_call",
    "check_output",
    "Popen",
    "load",
    "loads",
    "load_config",
    "import_module",
    "__import__",
    "urlopen",
    "urlretrieve",
    "write_file",
    "open",
    "remove",
    "rmtree",
    "execWrapper",
    "compile_file",
    "pipepager",
    "locate",
    "resolve_name",
    "debug_script",
];

/// Maps a module the way CPython's `fix_imports` and the C twins would.
pub fn normalize_module(module: &str) -> String {
    let (head, rest) = match module.split_once('.') {
        Some((h, r)) => (h, Some(r)),
        None => (module, None),
    };
    let head = match head {
        "__builtin__" | "exceptions" | "__builtins__" => "builtins",
        "copy_reg" => "copyreg",
        "cPickle" | "_pickle" => "pickle",
        "posix" | "nt" | "_posixsubprocess_alias" => "os",
        "_operator" => "operator",
        "_io" | "_pyio" => "io",
        "_functools" => "functools",
        "httplib" => "http",
        "commands" => "subprocess",
        "_socket" => "socket",
        "_ssl" => "ssl",
        "_signal" => "signal",
        "_marshal" => "marshal",
        "_imp" => "importlib",
        "_frozen_importlib" | "_frozen_importlib_external" => "importlib",
        "_winapi" => "subprocess",
        "_sre" => "re",
        h => h,
    };
    match rest {
        Some(r) => format!("{head}.{r}"),
        None => head.to_string(),
    }
}

fn is_identifier(s: &str) -> bool {
    let mut chars = s.chars();
    match chars.next() {
        Some(c) if c == '_' || c.is_alphabetic() => {}
        _ => return false,
    }
    chars.all(|c| c == '_' || c.is_alphanumeric())
}

/// True when `s` is a dotted Python identifier path (`a.b.c`); only those can be imported.
pub fn is_dotted_identifier(s: &str) -> bool {
    !s.is_empty() && s.split('.').all(is_identifier)
}

/// Classifies `module`.`name` (name may be dotted: protocol 4 attribute chains).
pub fn classify(module: &str, name: &str) -> Class {
    let m = normalize_module(module);
    let full = format!("{m}.{name}");
    if ALLOWED.contains(&full.as_str()) {
        return Class::Allowed;
    }
    // Every prefix of the full dotted path is checked against the dangerous modules, so
    // `asyncio.unix_events...` and `random._os.system` are both caught.
    let parts: Vec<&str> = full.split('.').collect();
    for i in 1..=parts.len() {
        let prefix = parts[..i].join(".");
        if let Some((_, why)) = DANGEROUS_MODULES.iter().find(|(p, _)| *p == prefix) {
            return Class::Dangerous(if why.is_empty() { "runs code" } else { why });
        }
    }
    if m == "builtins" {
        let first = name.split('.').next().unwrap_or(name);
        if DANGEROUS_BUILTINS.contains(&first) {
            return Class::Dangerous(
                "builtin that runs code, imports, opens files or reaches attributes by name",
            );
        }
    }
    // An attribute chain through a module alias (`shutil` + `os.system`, `random` + `_os.system`).
    let name_parts: Vec<&str> = name.split('.').collect();
    if name_parts.len() > 1 {
        for p in &name_parts[..name_parts.len() - 1] {
            let p = normalize_module(p.trim_start_matches('_'));
            if DANGEROUS_MODULES
                .iter()
                .any(|(d, _)| *d == p && !d.contains('.'))
            {
                return Class::Dangerous("attribute chain reaches a dangerous module");
            }
        }
    }
    for p in &parts {
        if SINK_NAMES.contains(p) {
            return Class::Suspicious("name of a code-execution or I/O sink");
        }
    }
    if name.contains('.') {
        return Class::Suspicious("dotted attribute chain (protocol 4) outside the allow-list");
    }
    Class::Unknown
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn grades() {
        assert_eq!(
            classify("torch._utils", "_rebuild_tensor_v2"),
            Class::Allowed
        );
        assert_eq!(classify("collections", "OrderedDict"), Class::Allowed);
        assert_eq!(classify("__builtin__", "set"), Class::Allowed);
        assert!(matches!(classify("posix", "system"), Class::Dangerous(_)));
        assert!(matches!(classify("nt", "system"), Class::Dangerous(_)));
        assert!(matches!(
            classify("__builtin__", "eval"),
            Class::Dangerous(_)
        ));
        assert!(matches!(
            classify("builtins", "eval.__call__"),
            Class::Dangerous(_)
        ));
        assert!(matches!(
            classify("random", "_os.system"),
            Class::Dangerous(_)
        ));
        assert!(matches!(
            classify("shutil", "os.system"),
            Class::Dangerous(_)
        ));
        assert!(matches!(
            classify("asyncio.unix_events", "_UnixSubprocessTransport._start"),
            Class::Dangerous(_)
        ));
        assert!(matches!(
            classify("_operator", "methodcaller"),
            Class::Dangerous(_)
        ));
        assert!(matches!(
            classify("mailcap", "findmatch"),
            Class::Dangerous(_)
        ));
        assert!(matches!(classify("foo", "system"), Class::Suspicious(_)));
        assert!(matches!(
            classify("foo.bar", "Baz.qux"),
            Class::Suspicious(_)
        ));
        assert_eq!(
            classify("sklearn.linear_model", "LogisticRegression"),
            Class::Unknown
        );
        assert!(is_dotted_identifier("a.b_c"));
        assert!(!is_dotted_identifier("a b"));
    }
}
