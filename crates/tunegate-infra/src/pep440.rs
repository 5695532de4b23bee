//! PEP 440 versions: parsing (with the spec's normalisations) and ordering, enough to decide
//! whether a pinned version falls inside an advisory's range.
//!
//! Order: epoch, release (trailing zeros ignored), then `1.0.dev1 < 1.0a1 < 1.0a1.post1 < 1.0rc1
//! < 1.0 < 1.0.post1`, dev releases before their parent, local labels after the public version.
use std::cmp::Ordering;
use std::fmt;

/// A parsed version.
#[derive(Debug, Clone)]
pub struct Version {
    /// `N!` epoch (0 when absent).
    pub epoch: u64,
    /// Release numbers.
    pub release: Vec<u64>,
    /// Pre-release: phase (0 a, 1 b, 2 rc) and number.
    pub pre: Option<(u8, u64)>,
    /// Post-release number.
    pub post: Option<u64>,
    /// Dev-release number.
    pub dev: Option<u64>,
    /// Local label segments (`+ubuntu.1`).
    pub local: Vec<String>,
    text: String,
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

struct Cur<'a> {
    s: &'a [u8],
    i: usize,
}

impl Cur<'_> {
    fn num(&mut self) -> Option<u64> {
        let st = self.i;
        while self.i < self.s.len() && self.s[self.i].is_ascii_digit() {
            self.i += 1;
        }
        if st == self.i {
            return None;
        }
        std::str::from_utf8(&self.s[st..self.i]).ok()?.parse().ok()
    }
    fn sep(&mut self) -> bool {
        if self.i < self.s.len() && matches!(self.s[self.i], b'.' | b'-' | b'_') {
            self.i += 1;
            true
        } else {
            false
        }
    }
    fn word(&mut self, words: &[&str]) -> Option<usize> {
        for (k, w) in words.iter().enumerate() {
            if self.s[self.i..].starts_with(w.as_bytes()) {
                self.i += w.len();
                return Some(k);
            }
        }
        None
    }
    fn opt_num(&mut self) -> u64 {
        let save = self.i;
        self.sep();
        match self.num() {
            Some(n) => n,
            None => {
                self.i = save;
                0
            }
        }
    }
}

impl Version {
    /// Parses a version string; `None` when it is not PEP 440.
    pub fn parse(s: &str) -> Option<Version> {
        let lower = s.trim().to_ascii_lowercase();
        let (public, local) = match lower.split_once('+') {
            Some((p, l)) => (p.to_string(), Some(l.to_string())),
            None => (lower.clone(), None),
        };
        let public = public.strip_prefix('v').unwrap_or(&public).to_string();
        let mut c = Cur {
            s: public.as_bytes(),
            i: 0,
        };
        let mut epoch = 0;
        let first = c.num()?;
        let mut release = vec![first];
        if c.i < c.s.len() && c.s[c.i] == b'!' {
            c.i += 1;
            epoch = first;
            release = vec![c.num()?];
        }
        while c.i + 1 < c.s.len() && c.s[c.i] == b'.' && c.s[c.i + 1].is_ascii_digit() {
            c.i += 1;
            release.push(c.num()?);
        }
        let mut pre = None;
        let save = c.i;
        c.sep();
        // Longest spellings first so `rc` wins over `c`, `preview` over `pre`.
        match c.word(&["alpha", "a", "beta", "b", "preview", "pre", "rc", "c"]) {
            Some(k) => {
                let phase = match k {
                    0 | 1 => 0,
                    2 | 3 => 1,
                    _ => 2,
                };
                pre = Some((phase, c.opt_num()));
            }
            None => c.i = save,
        }
        let mut post = None;
        let save = c.i;
        if c.i < c.s.len() && c.s[c.i] == b'-' && c.s.get(c.i + 1).is_some_and(u8::is_ascii_digit) {
            c.i += 1;
            post = Some(c.num()?);
        } else {
            c.sep();
            match c.word(&["post", "rev", "r"]) {
                Some(_) => post = Some(c.opt_num()),
                None => c.i = save,
            }
        }
        let mut dev = None;
        let save = c.i;
        c.sep();
        match c.word(&["dev"]) {
            Some(_) => dev = Some(c.opt_num()),
            None => c.i = save,
        }
        if c.i != c.s.len() {
            return None;
        }
        let local = match local {
            Some(l) if l.is_empty() => return None,
            Some(l) => l.split(['.', '-', '_']).map(String::from).collect(),
            None => Vec::new(),
        };
        if local
            .iter()
            .any(|seg| seg.is_empty() || !seg.bytes().all(|b| b.is_ascii_alphanumeric()))
        {
            return None;
        }
        Some(Version {
            epoch,
            release,
            pre,
            post,
            dev,
            local,
            text: s.trim().to_string(),
        })
    }

    fn release_trimmed(&self) -> &[u64] {
        let mut n = self.release.len();
        while n > 1 && self.release[n - 1] == 0 {
            n -= 1;
        }
        &self.release[..n]
    }

    /// True for pre- and dev-releases.
    pub fn is_prerelease(&self) -> bool {
        self.pre.is_some() || self.dev.is_some()
    }
}

// Keys: pre (i128 so "before everything" / "after everything" fit), post, dev.
fn pre_key(v: &Version) -> (i8, u64) {
    match (v.pre, v.post, v.dev) {
        (None, None, Some(_)) => (-1, 0),
        (Some((p, n)), _, _) => (p as i8, n),
        (None, _, _) => (3, 0),
    }
}
fn post_key(v: &Version) -> (i8, u64) {
    v.post.map_or((-1, 0), |n| (0, n))
}
fn dev_key(v: &Version) -> (i8, u64) {
    v.dev.map_or((1, 0), |n| (0, n))
}

fn local_cmp(a: &[String], b: &[String]) -> Ordering {
    for (x, y) in a.iter().zip(b) {
        let o = match (x.parse::<u64>(), y.parse::<u64>()) {
            (Ok(m), Ok(n)) => m.cmp(&n),
            (Ok(_), Err(_)) => Ordering::Greater,
            (Err(_), Ok(_)) => Ordering::Less,
            (Err(_), Err(_)) => x.cmp(y),
        };
        if o != Ordering::Equal {
            return o;
        }
    }
    a.len().cmp(&b.len())
}

impl Ord for Version {
    fn cmp(&self, o: &Self) -> Ordering {
        self.epoch
            .cmp(&o.epoch)
            .then_with(|| self.release_trimmed().cmp(o.release_trimmed()))
            .then_with(|| pre_key(self).cmp(&pre_key(o)))
            .then_with(|| post_key(self).cmp(&post_key(o)))
            .then_with(|| dev_key(self).cmp(&dev_key(o)))
            .then_with(|| local_cmp(&self.local, &o.local))
    }
}
impl PartialOrd for Version {
    fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}
impl PartialEq for Version {
    fn eq(&self, o: &Self) -> bool {
        self.cmp(o) == Ordering::Equal
    }
}
impl Eq for Version {}

/// Normalises a distribution name (PEP 503): lowercase, runs of `-_.` become `-`.
pub fn normalize_name(n: &str) -> String {
    let mut out = String::with_capacity(n.len());
    let mut dash = false;
    for ch in n.trim().chars() {
        if matches!(ch, '-' | '_' | '.') {
            dash = true;
        } else {
            if dash && !out.is_empty() {
                out.push('-');
            }
            dash = false;
            out.extend(ch.to_lowercase());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    fn v(s: &str) -> Version {
        Version::parse(s).unwrap_or_else(|| panic!("{s}"))
    }

    #[test]
    fn spec_ordering() {
        let order = [
            "1.0.dev456",
            "1.0a1",
            "1.0a2.dev456",
            "1.0a12.dev456",
            "1.0a12",
            "1.0b1.dev456",
            "1.0b2",
            "1.0b2.post345.dev456",
            "1.0b2.post345",
            "1.0rc1.dev456",
            "1.0rc1",
            "1.0",
            "1.0+abc.5",
            "1.0+abc.7",
            "1.0+5",
            "1.0.post456.dev34",
            "1.0.post456",
            "1.0.15",
            "1.1.dev1",
            "1!0.1",
        ];
        for w in order.windows(2) {
            assert!(v(w[0]) < v(w[1]), "{} < {}", w[0], w[1]);
        }
    }

    #[test]
    fn normalisation() {
        assert_eq!(v("1.0"), v("1.0.0"));
        assert_eq!(v("1.0alpha1"), v("1.0a1"));
        assert_eq!(v("1.0-preview.2"), v("1.0rc2"));
        assert_eq!(v("1.0c1"), v("1.0rc1"));
        assert_eq!(v("1.0-1"), v("1.0.post1"));
        assert_eq!(v("1.0rev"), v("1.0.post0"));
        assert_eq!(v("v2.1"), v("2.1"));
        assert_eq!(v("0!1.2"), v("1.2"));
        assert!(v("2.0.0.dev20221230").is_prerelease());
        for bad in ["", "abc", "1.0+", "1..0", "1.0 junk", "1.0+a b"] {
            assert!(Version::parse(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn names() {
        assert_eq!(normalize_name("Torch_Triton"), "torch-triton");
        assert_eq!(normalize_name("a.-_b"), "a-b");
    }
}
