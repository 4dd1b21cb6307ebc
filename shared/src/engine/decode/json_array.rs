//! Streams the records of a JSON array from a document fed chunk by chunk.
//!
//! Two scanners share the work. Items of the records array go through a fast scanner that only counts brackets
//! and skips strings to find where the item ends; serde_json then validates and decodes exactly those bytes, so
//! nothing is validated twice on the hot path. Everything else (the way to the array, the rest of the document,
//! items over the size limit) goes through `Syntax`, a small validating pushdown automaton that never buffers
//! values, so those parts are checked without holding them in memory.

use std::fmt;

use serde_json::Value;

use crate::engine::record::Record;

/// One item of the records array.
#[derive(Debug, Clone, PartialEq)]
pub struct Item {
    /// 1-based position of the item in the array (counting failed items too).
    pub index: u64,
    /// Byte offset just past the item's last byte (before any whitespace or comma that follows it), relative to
    /// the first byte ever fed to a fresh decoder, or to `offset` given to `resume`: a later decoder made with
    /// `resume(max, end, index)` continues with the next item.
    pub end: u64,
    /// The item as an object, or why it is not one.
    pub record: Result<Record, String>,
}

/// An error that makes the rest of the document untrustworthy; the decoder is spent after it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DocumentError(pub String);

impl fmt::Display for DocumentError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for DocumentError {}

const EOF: &str = "invalid JSON: EOF while parsing";

/// Bounds the validator's bracket stack (one bit per level), so hostile nesting costs at most about 1 KiB.
const MAX_DEPTH: usize = 10_000;

fn syntax_error(at: u64, what: &str) -> DocumentError {
    DocumentError(format!("invalid JSON at byte {at}: {what}"))
}

fn is_ws(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r')
}

fn skip_ws(s: &[u8], mut i: usize) -> usize {
    while let Some(&b) = s.get(i) {
        if !is_ws(b) {
            break;
        }
        i += 1;
    }
    i
}

/// Bytes that can continue a number or literal token; the token ends at the first other byte. Deliberately loose
/// (serde_json judges the token), so that e.g. `1x` is one bad token rather than a good item followed by garbage.
fn is_scalar_byte(b: u8) -> bool {
    matches!(b, b'0'..=b'9' | b'a'..=b'z' | b'A'..=b'Z' | b'+' | b'-' | b'.')
}

/// What a value starting with byte `b` is, with its article, as used in messages.
fn kind_of(b: u8) -> Option<&'static str> {
    match b {
        b'{' => Some("an object"),
        b'[' => Some("an array"),
        b'"' => Some("a string"),
        b'-' | b'0'..=b'9' => Some("a number"),
        b't' | b'f' => Some("a boolean"),
        b'n' => Some("null"),
        _ => None,
    }
}

/// Bytes the fast item scanner must look at outside strings.
static STRUCTURAL: [bool; 256] = {
    let mut t = [false; 256];
    t[b'"' as usize] = true;
    t[b'{' as usize] = true;
    t[b'}' as usize] = true;
    t[b'[' as usize] = true;
    t[b']' as usize] = true;
    t
};

/// Position of the first `"` or `\` (and, with `CTRL`, control character) in `s`, eight bytes at a time.
fn find_in_string<const CTRL: bool>(s: &[u8]) -> Option<usize> {
    const LO: u64 = 0x0101_0101_0101_0101;
    const HI: u64 = 0x8080_8080_8080_8080;
    let mut words = s.chunks_exact(8);
    let mut off = 0;
    for word in &mut words {
        let Ok(bytes) = <[u8; 8]>::try_from(word) else { break };
        let w = u64::from_le_bytes(bytes);
        // Classic "has zero byte" tricks: borrows only run upwards from a true hit, so the lowest flag is exact.
        let q = w ^ (LO * u64::from(b'"'));
        let bs = w ^ (LO * u64::from(b'\\'));
        let mut hits = (q.wrapping_sub(LO) & !q) | (bs.wrapping_sub(LO) & !bs);
        if CTRL {
            hits |= w.wrapping_sub(LO * 0x20) & !w;
        }
        hits &= HI;
        if hits != 0 {
            return Some(off + (hits.trailing_zeros() / 8) as usize);
        }
        off += 8;
    }
    words.remainder().iter().position(|&b| b == b'"' || b == b'\\' || (CTRL && b < 0x20)).map(|p| off + p)
}

/// Grows `buf` geometrically (amortised copies) but never past `max`, so its capacity stays within the limit.
fn extend_capped(buf: &mut Vec<u8>, bytes: &[u8], max: usize) {
    let need = buf.len() + bytes.len();
    if need > buf.capacity() {
        let target = buf.capacity().saturating_mul(2).min(max).max(need);
        buf.reserve_exact(target - buf.len());
    }
    buf.extend_from_slice(bytes);
}

/// serde_json's message without its " at line L column C" suffix, which would be relative to the item.
fn serde_message(e: &serde_json::Error) -> String {
    let text = e.to_string();
    let suffix = format!(" at line {} column {}", e.line(), e.column());
    match text.strip_suffix(&suffix) {
        Some(stripped) => stripped.to_owned(),
        None => text,
    }
}

/// Decodes one well-delimited item. Non-objects are failed items; bytes serde_json refuses are a document error,
/// because then the scanner's idea of where the item ended cannot be trusted either.
fn parse_item(bytes: &[u8], index: u64) -> Result<Result<Record, String>, DocumentError> {
    let invalid = |e: serde_json::Error| DocumentError(format!("invalid JSON in record {index}: {}", serde_message(&e)));
    if bytes.first() == Some(&b'{') {
        return serde_json::from_slice::<Record>(bytes).map(Ok).map_err(invalid);
    }
    let why = match serde_json::from_slice::<Value>(bytes).map_err(invalid)? {
        Value::Object(map) => return Ok(Ok(map)),
        Value::Array(_) => "is an array, not an object",
        Value::String(_) => "is a string, not an object",
        Value::Number(_) => "is a number, not an object",
        Value::Bool(_) => "is a boolean, not an object",
        Value::Null => "is null, not an object",
    };
    Ok(Err(why.to_owned()))
}

/// Whether a raw (still escaped) key equals `want`. Escaped keys are rare, so they are decoded by serde_json.
fn key_matches(raw: &[u8], want: &str) -> bool {
    if !raw.contains(&b'\\') {
        return raw == want.as_bytes();
    }
    let mut quoted = Vec::with_capacity(raw.len() + 2);
    quoted.push(b'"');
    quoted.extend_from_slice(raw);
    quoted.push(b'"');
    serde_json::from_slice::<String>(&quoted).is_ok_and(|key| key == want)
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Num {
    Minus,
    Zero,
    Int,
    Dot,
    Frac,
    Exp,
    ExpSign,
    ExpInt,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum St {
    Value,
    ArrFirst,
    ObjFirst,
    Key,
    Colon,
    After,
    Str { key: bool },
    Esc { key: bool },
    Hex { key: bool, left: u8 },
    Num(Num),
    Lit { word: &'static [u8], next: usize },
    Done,
}

/// Why `Syntax::run` stopped.
#[derive(Debug, PartialEq, Eq)]
enum Ev {
    /// Consumed everything.
    More,
    /// A key of the watched object ended (its raw bytes are in `key`).
    Key,
    /// The armed value starts at the returned position (not consumed).
    Target,
    /// The watched object is about to close (the `}` is not consumed).
    Missing,
    /// Standalone mode: the value ended just before the returned position.
    Done,
}

/// Validating JSON automaton with a bit stack of open containers instead of recursion.
struct Syntax {
    st: St,
    stack: Vec<u64>,
    depth: usize,
    /// Validates a single value (an oversized item) and stops right after it, instead of a whole document.
    standalone: bool,
    /// Depth of the object whose keys are compared with the records path (0: none).
    watch: usize,
    /// The next value at depth `watch` (or the top-level value) is the one the records path looks for.
    armed: bool,
    capturing: bool,
    key: Vec<u8>,
    /// Longer raw keys cannot decode to the wanted key, so they are not kept (bounds memory).
    key_cap: usize,
    key_long: bool,
}

impl Syntax {
    fn new(standalone: bool) -> Self {
        Syntax {
            st: St::Value,
            stack: Vec::new(),
            depth: 0,
            standalone,
            watch: 0,
            armed: false,
            capturing: false,
            key: Vec::new(),
            key_cap: 0,
            key_long: false,
        }
    }

    fn reset(&mut self) {
        self.st = St::Value;
        self.depth = 0;
    }

    fn push(&mut self, array: bool, at: u64) -> Result<(), DocumentError> {
        if self.depth >= MAX_DEPTH {
            return Err(syntax_error(at, "nesting too deep"));
        }
        let (word, bit) = (self.depth / 64, 1u64 << (self.depth % 64));
        if word >= self.stack.len() {
            self.stack.push(0);
        }
        if let Some(w) = self.stack.get_mut(word) {
            if array {
                *w |= bit;
            } else {
                *w &= !bit;
            }
        }
        self.depth += 1;
        Ok(())
    }

    fn top_is_array(&self) -> bool {
        let Some(d) = self.depth.checked_sub(1) else { return false };
        self.stack.get(d / 64).is_some_and(|w| (w >> (d % 64)) & 1 == 1)
    }

    /// A value just ended; returns whether a standalone run must stop here.
    fn value_end(&mut self) -> bool {
        self.st = if self.depth == 0 { St::Done } else { St::After };
        self.standalone && self.depth == 0
    }

    fn capture(&mut self, bytes: &[u8]) {
        if self.capturing && !self.key_long {
            if self.key.len() + bytes.len() > self.key_cap {
                self.key_long = true;
            } else {
                self.key.extend_from_slice(bytes);
            }
        }
    }

    fn start_key(&mut self) {
        self.st = St::Str { key: true };
        if self.watch != 0 && self.depth == self.watch && !self.armed {
            self.capturing = true;
            self.key.clear();
            self.key_long = false;
        }
    }

    fn start_value(&mut self, b: u8, at: u64) -> Result<(), DocumentError> {
        self.st = match b {
            b'{' => {
                self.push(false, at)?;
                St::ObjFirst
            }
            b'[' => {
                self.push(true, at)?;
                St::ArrFirst
            }
            b'"' => St::Str { key: false },
            b'-' => St::Num(Num::Minus),
            b'0' => St::Num(Num::Zero),
            b'1'..=b'9' => St::Num(Num::Int),
            b't' => St::Lit { word: b"true", next: 1 },
            b'f' => St::Lit { word: b"false", next: 1 },
            b'n' => St::Lit { word: b"null", next: 1 },
            _ => return Err(syntax_error(at, "expected a value")),
        };
        Ok(())
    }

    /// Consumes `s` (whose first byte is at absolute offset `base`) until it ends or an event needs the caller.
    fn run(&mut self, s: &[u8], base: u64) -> Result<(usize, Ev), DocumentError> {
        let mut i = 0;
        while let Some(&b) = s.get(i) {
            let at = base + i as u64;
            match self.st {
                St::Str { key } => {
                    let rest = s.get(i..).unwrap_or_default();
                    let k = find_in_string::<true>(rest).unwrap_or(rest.len());
                    self.capture(rest.get(..k).unwrap_or_default());
                    i += k;
                    let Some(&c) = s.get(i) else { break };
                    i += 1;
                    match c {
                        b'"' if key => {
                            self.st = St::Colon;
                            if self.capturing {
                                self.capturing = false;
                                return Ok((i, Ev::Key));
                            }
                        }
                        b'"' => {
                            if self.value_end() {
                                return Ok((i, Ev::Done));
                            }
                        }
                        b'\\' => {
                            self.capture(&[c]);
                            self.st = St::Esc { key };
                        }
                        _ => return Err(syntax_error(base + (i - 1) as u64, "control character in string")),
                    }
                }
                St::Esc { key } => {
                    self.st = match b {
                        b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => St::Str { key },
                        b'u' => St::Hex { key, left: 4 },
                        _ => return Err(syntax_error(at, "invalid escape")),
                    };
                    self.capture(&[b]);
                    i += 1;
                }
                St::Hex { key, left } => {
                    if !b.is_ascii_hexdigit() {
                        return Err(syntax_error(at, "invalid unicode escape"));
                    }
                    self.st = if left <= 1 { St::Str { key } } else { St::Hex { key, left: left - 1 } };
                    self.capture(&[b]);
                    i += 1;
                }
                St::Num(n) => {
                    let next = match (n, b) {
                        (Num::Minus, b'0') => Some(Num::Zero),
                        (Num::Minus | Num::Int, b'1'..=b'9') | (Num::Int, b'0') => Some(Num::Int),
                        (Num::Zero | Num::Int, b'.') => Some(Num::Dot),
                        (Num::Dot | Num::Frac, b'0'..=b'9') => Some(Num::Frac),
                        (Num::Zero | Num::Int | Num::Frac, b'e' | b'E') => Some(Num::Exp),
                        (Num::Exp, b'+' | b'-') => Some(Num::ExpSign),
                        (Num::Exp | Num::ExpSign | Num::ExpInt, b'0'..=b'9') => Some(Num::ExpInt),
                        _ => None,
                    };
                    match next {
                        Some(n) => {
                            self.st = St::Num(n);
                            i += 1;
                        }
                        // The number is complete; `b` belongs to what follows, so it is looked at again.
                        None if matches!(n, Num::Zero | Num::Int | Num::Frac | Num::ExpInt) && !b.is_ascii_digit() => {
                            if self.value_end() {
                                return Ok((i, Ev::Done));
                            }
                        }
                        None => return Err(syntax_error(at, "invalid number")),
                    }
                }
                St::Lit { word, next } => {
                    if word.get(next) != Some(&b) {
                        return Err(syntax_error(at, "invalid literal"));
                    }
                    i += 1;
                    if next + 1 < word.len() {
                        self.st = St::Lit { word, next: next + 1 };
                    } else if self.value_end() {
                        return Ok((i, Ev::Done));
                    }
                }
                _ if is_ws(b) => i += 1,
                St::Value => {
                    if self.armed && self.depth == self.watch {
                        return Ok((i, Ev::Target));
                    }
                    self.start_value(b, at)?;
                    i += 1;
                }
                St::ArrFirst => {
                    if b == b']' {
                        i += 1;
                        self.depth = self.depth.saturating_sub(1);
                        if self.value_end() {
                            return Ok((i, Ev::Done));
                        }
                    } else {
                        self.start_value(b, at)?;
                        i += 1;
                    }
                }
                St::ObjFirst | St::After if b == b'}' && !self.top_is_array() => {
                    if self.watch != 0 && self.depth == self.watch {
                        return Ok((i, Ev::Missing));
                    }
                    i += 1;
                    self.depth = self.depth.saturating_sub(1);
                    if self.value_end() {
                        return Ok((i, Ev::Done));
                    }
                }
                St::ObjFirst | St::Key => {
                    if b != b'"' {
                        return Err(syntax_error(at, "expected a key"));
                    }
                    self.start_key();
                    i += 1;
                }
                St::Colon => {
                    if b != b':' {
                        return Err(syntax_error(at, "expected ':'"));
                    }
                    self.st = St::Value;
                    i += 1;
                }
                St::After => {
                    let array = self.top_is_array();
                    match b {
                        b',' => self.st = if array { St::Value } else { St::Key },
                        b']' if array => {
                            self.depth = self.depth.saturating_sub(1);
                            if self.value_end() {
                                return Ok((i + 1, Ev::Done));
                            }
                        }
                        _ if array => return Err(syntax_error(at, "expected ',' or ']'")),
                        _ => return Err(syntax_error(at, "expected ',' or '}'")),
                    }
                    i += 1;
                }
                St::Done => {
                    if self.standalone {
                        return Ok((i, Ev::Done));
                    }
                    return Err(syntax_error(at, "trailing characters"));
                }
            }
        }
        Ok((s.len(), Ev::More))
    }
}

/// Fast boundary scanner for one item: counts brackets and skips strings, nothing more.
struct ItemScan {
    /// Absolute offset of the item's first byte.
    start: u64,
    scalar: bool,
    depth: u64,
    in_str: bool,
    esc: bool,
}

impl ItemScan {
    fn new(start: u64, first: u8) -> Self {
        ItemScan { start, scalar: !matches!(first, b'{' | b'[' | b'"'), depth: 0, in_str: false, esc: false }
    }

    /// Where the item ends (exclusive) within `s`, if it does.
    fn scan(&mut self, s: &[u8]) -> Option<usize> {
        if self.scalar {
            return s.iter().position(|&b| !is_scalar_byte(b));
        }
        let mut i = 0;
        loop {
            if self.in_str {
                if self.esc {
                    if i >= s.len() {
                        return None;
                    }
                    self.esc = false;
                    i += 1;
                }
                i += find_in_string::<false>(s.get(i..)?)?;
                self.esc = *s.get(i)? == b'\\';
                self.in_str = self.esc;
                i += 1;
                if !self.in_str && self.depth == 0 {
                    return Some(i);
                }
            } else {
                i += s.get(i..)?.iter().position(|&b| STRUCTURAL[usize::from(b)])?;
                let b = *s.get(i)?;
                i += 1;
                match b {
                    b'"' => self.in_str = true,
                    b'{' | b'[' => self.depth += 1,
                    _ => {
                        self.depth = self.depth.saturating_sub(1);
                        if self.depth == 0 {
                            return Some(i);
                        }
                    }
                }
            }
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// Looking for the records array (validating everything on the way).
    Prefix,
    /// Just after `[`.
    ArrStart,
    /// Just after an item.
    ArrAfter,
    /// Just after a comma.
    ArrNext,
    /// Inside an item within the limit.
    Item,
    /// Inside an oversized item, validating it without keeping it.
    Skip,
    /// After the records array: validating the rest of the document.
    Suffix,
    /// After the records array of a resumed decoder.
    Ignore,
}

/// Streaming decoder of the records array of one JSON document.
pub struct JsonArray {
    max: usize,
    /// Absolute offset of the first byte of the chunk being fed.
    pos: u64,
    /// Index of the last item started.
    index: u64,
    phase: Phase,
    resumed: bool,
    doc: Syntax,
    path: Vec<String>,
    path_text: String,
    /// How many components of `path` have been found.
    level: usize,
    item: ItemScan,
    /// Bytes of the current item from earlier chunks; never more than `max`.
    buf: Vec<u8>,
    skip: Syntax,
    error: Option<DocumentError>,
}

impl JsonArray {
    /// A decoder for a whole document whose records are the top-level array, or the array at `records_path`
    /// (dot-separated keys of nested objects; `Some("")` means no path). Items over `max_record_bytes` are failed.
    pub fn new(records_path: Option<&str>, max_record_bytes: usize) -> Self {
        let path_text = records_path.unwrap_or_default().to_owned();
        let path = if path_text.is_empty() { Vec::new() } else { path_text.split('.').map(str::to_owned).collect() };
        let mut doc = Syntax::new(false);
        // The top-level value is the first candidate: the records array itself, or the object the path starts in.
        doc.armed = true;
        JsonArray {
            max: max_record_bytes,
            pos: 0,
            index: 0,
            phase: Phase::Prefix,
            resumed: false,
            doc,
            path,
            path_text,
            level: 0,
            item: ItemScan::new(0, b'{'),
            buf: Vec::new(),
            skip: Syntax::new(true),
            error: None,
        }
    }

    /// A decoder that starts inside the records array right after the item that ended at byte `offset` (an
    /// `Item::end` a previous decoder reported), numbering the next item `after_index + 1`. The bytes fed to it
    /// start at `offset` of the document. Offsets it reports are absolute (offset + bytes fed).
    pub fn resume(max_record_bytes: usize, offset: u64, after_index: u64) -> Self {
        let mut decoder = JsonArray::new(None, max_record_bytes);
        decoder.pos = offset;
        decoder.index = after_index;
        decoder.phase = Phase::ArrAfter;
        decoder.resumed = true;
        decoder
    }

    /// Bytes currently allocated for a partial item (never more than `max_record_bytes`).
    #[cfg(test)]
    pub fn buffered(&self) -> usize {
        self.buf.capacity()
    }

    /// Appends the items this chunk completes (items completed before an error in the chunk stay in `out`).
    pub fn feed(&mut self, chunk: &[u8], out: &mut Vec<Item>) -> Result<(), DocumentError> {
        if let Some(e) = &self.error {
            return Err(e.clone());
        }
        let result = self.run(chunk, out);
        self.pos += chunk.len() as u64;
        if let Err(e) = &result {
            self.error = Some(e.clone());
        }
        result
    }

    /// The document has no more bytes. Never adds items: any item still open means the array is unclosed.
    pub fn finish(&mut self, _out: &mut Vec<Item>) -> Result<(), DocumentError> {
        if let Some(e) = &self.error {
            return Err(e.clone());
        }
        let complete = match self.phase {
            Phase::Ignore => true,
            Phase::Suffix => self.doc.st == St::Done,
            _ => false,
        };
        if complete {
            return Ok(());
        }
        let e = DocumentError(EOF.to_owned());
        self.error = Some(e.clone());
        Err(e)
    }

    fn run(&mut self, chunk: &[u8], out: &mut Vec<Item>) -> Result<(), DocumentError> {
        let n = chunk.len();
        let mut i = 0;
        while i < n {
            let rest = chunk.get(i..).unwrap_or_default();
            let at = self.pos + i as u64;
            match self.phase {
                Phase::Prefix => {
                    let (k, ev) = self.doc.run(rest, at)?;
                    i += k;
                    match ev {
                        Ev::Key => self.on_key(),
                        Ev::Target => {
                            if let Some(&b) = chunk.get(i) {
                                i += self.on_target(b, self.pos + i as u64)?;
                            }
                        }
                        Ev::Missing => {
                            let key = self.path.get(self.level).map_or("", String::as_str);
                            return Err(DocumentError(format!("records path '{}': the document has no '{key}'", self.path_text)));
                        }
                        Ev::More | Ev::Done => {}
                    }
                }
                Phase::Suffix => {
                    // Nothing is watched or armed any more, so this consumes the whole rest or fails.
                    let (k, _) = self.doc.run(rest, at)?;
                    i += k;
                }
                Phase::Ignore => i = n,
                Phase::ArrStart | Phase::ArrAfter | Phase::ArrNext => {
                    i = skip_ws(chunk, i);
                    let Some(&b) = chunk.get(i) else { break };
                    let at = self.pos + i as u64;
                    match (self.phase, b) {
                        (Phase::ArrAfter, b',') => {
                            self.phase = Phase::ArrNext;
                            i += 1;
                        }
                        (Phase::ArrStart | Phase::ArrAfter, b']') => {
                            i += 1;
                            self.phase = if self.resumed {
                                // A resumed decoder never saw the start of the document, so it cannot check the
                                // rest; the accepted trade-off is to ignore everything after the records array.
                                Phase::Ignore
                            } else {
                                self.doc.value_end();
                                Phase::Suffix
                            };
                        }
                        (Phase::ArrAfter, _) => return Err(syntax_error(at, "expected ',' or ']'")),
                        (_, b'{' | b'[' | b'"' | b'-' | b'0'..=b'9' | b't' | b'f' | b'n') => {
                            self.index = self.index.saturating_add(1);
                            self.item = ItemScan::new(at, b);
                            self.phase = Phase::Item;
                        }
                        _ => return Err(syntax_error(at, "expected a value")),
                    }
                }
                Phase::Item => {
                    // Look at no more than max + 1 bytes of the item: enough to know it is too large.
                    let budget = self.max.saturating_add(1).saturating_sub(self.buf.len()).min(rest.len());
                    let window = rest.get(..budget).unwrap_or_default();
                    match self.item.scan(window) {
                        Some(k) if self.buf.len() + k <= self.max => {
                            let whole = window.get(..k).unwrap_or_default();
                            // Zero-copy when the item lies in this chunk; only items spanning chunks are copied.
                            let bytes = if self.buf.is_empty() {
                                whole
                            } else {
                                extend_capped(&mut self.buf, whole, self.max);
                                &self.buf
                            };
                            let record = parse_item(bytes, self.index)?;
                            i += k;
                            out.push(Item { index: self.index, end: self.pos + i as u64, record });
                            self.buf.clear();
                            self.phase = Phase::ArrAfter;
                        }
                        None if self.buf.len() + window.len() <= self.max => {
                            extend_capped(&mut self.buf, window, self.max);
                            i += window.len();
                        }
                        // Too large: the validator re-reads what was seen (at most max + 1 bytes) from the item's
                        // start, then goes on through the rest of it without keeping anything.
                        _ => self.oversized()?,
                    }
                }
                Phase::Skip => {
                    let (k, ev) = self.skip.run(rest, at)?;
                    i += k;
                    if ev == Ev::Done {
                        let why = format!("is larger than the limit of {} bytes", self.max);
                        out.push(Item { index: self.index, end: self.pos + i as u64, record: Err(why) });
                        self.phase = Phase::ArrAfter;
                    }
                }
            }
        }
        Ok(())
    }

    /// Switches the current item to the validator, feeding it the bytes buffered from earlier chunks; the caller
    /// then re-reads the current chunk from the same position in `Phase::Skip`.
    fn oversized(&mut self) -> Result<(), DocumentError> {
        self.skip.reset();
        let (k, ev) = self.skip.run(&self.buf, self.item.start)?;
        if ev == Ev::Done {
            // The validator ended a number or literal where the loose token scanner did not: junk follows it.
            return Err(syntax_error(self.item.start + k as u64, "expected ',' or ']'"));
        }
        self.buf.clear();
        self.phase = Phase::Skip;
        Ok(())
    }

    fn on_key(&mut self) {
        let Some(want) = self.path.get(self.level) else { return };
        if !self.doc.key_long && key_matches(&self.doc.key, want) {
            // First match wins: once armed, later keys of this object are not captured.
            self.doc.armed = true;
            self.level += 1;
        }
    }

    /// The value the path leads to starts with `b`; returns how many bytes it consumed.
    fn on_target(&mut self, b: u8, at: u64) -> Result<usize, DocumentError> {
        let Some(kind) = kind_of(b) else { return Err(syntax_error(at, "expected a value")) };
        if self.level == self.path.len() {
            if b == b'[' {
                self.doc.armed = false;
                self.doc.watch = 0;
                self.phase = Phase::ArrStart;
                return Ok(1);
            }
            if self.path.is_empty() {
                let hint = if b == b'{' { " (a records path can point into it)" } else { "" };
                return Err(DocumentError(format!("expected an array of records, found {kind}{hint}")));
            }
            return Err(DocumentError(format!("records path '{}' leads to {kind}, not an array", self.path_text)));
        }
        if b == b'{' {
            // Let the validator open the object; its keys at the new depth are then compared with the path.
            self.doc.armed = false;
            self.doc.watch = self.doc.depth + 1;
            self.doc.key_cap = self.path.get(self.level).map_or(0, |k| k.len().saturating_mul(6));
            return Ok(0);
        }
        let what = match self.level {
            0 => "the document".to_owned(),
            n => format!("'{}'", self.path.get(..n).unwrap_or_default().join(".")),
        };
        Err(DocumentError(format!("records path '{}': {what} is {kind}, not an object", self.path_text)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const MAX: usize = 1 << 20;

    fn decode_chunks(chunks: &[&[u8]], path: Option<&str>, max: usize) -> Result<Vec<Item>, DocumentError> {
        let mut decoder = JsonArray::new(path, max);
        let mut out = Vec::new();
        for chunk in chunks {
            decoder.feed(chunk, &mut out)?;
            assert!(decoder.buffered() <= max);
        }
        decoder.finish(&mut out)?;
        Ok(out)
    }

    fn decode(doc: &str, path: Option<&str>) -> Result<Vec<Item>, DocumentError> {
        decode_chunks(&[doc.as_bytes()], path, MAX)
    }

    /// Decodes `doc` whole, split in two at every byte, and byte by byte; all must agree.
    fn decode_all_splits(doc: &str, path: Option<&str>, max: usize) -> Result<Vec<Item>, DocumentError> {
        let bytes = doc.as_bytes();
        let whole = decode_chunks(&[bytes], path, max);
        for k in 0..=bytes.len() {
            let (a, b) = bytes.split_at(k);
            assert_eq!(decode_chunks(&[a, b], path, max), whole, "split at {k} of {doc}");
        }
        let singles: Vec<&[u8]> = bytes.chunks(1).collect();
        assert_eq!(decode_chunks(&singles, path, max), whole, "byte by byte: {doc}");
        whole
    }

    fn records(items: &[Item]) -> Vec<Value> {
        items.iter().map(|it| it.record.clone().map_or_else(Value::String, Value::Object)).collect()
    }

    fn err(doc: &str, path: Option<&str>) -> String {
        match decode(doc, path) {
            Ok(items) => panic!("expected an error for {doc}, got {items:?}"),
            Err(e) => e.0,
        }
    }

    const TRICKY: &str = "[ {\"s\":\"a\\\\\\\"]\", \"u\":\"\\u00e9\\ud83d\\ude00\", \"raw\":\"é日本😀\",\n\
        \"n\":[1,[2,{\"x\":[]}],-1.5e+10], \"o\":{\"k\":{\"}\":\"]\"}}, \"t\":true,\"f\":false,\"z\":null} ,\r\n\
        \t{\"b\":\"\\\\\"} , 12345 , \"str\\\"\" , [ \"[\" ] , true , null, {}, -0.5 ]";

    #[test]
    fn every_split_gives_the_same_items() {
        let items = decode_all_splits(TRICKY, None, MAX).unwrap();
        let expected = vec![
            json!({"s": "a\\\"]", "u": "é😀", "raw": "é日本😀", "n": [1, [2, {"x": []}], -1.5e10],
                   "o": {"k": {"}": "]"}}, "t": true, "f": false, "z": null}),
            json!({"b": "\\"}),
            json!("is a number, not an object"),
            json!("is a string, not an object"),
            json!("is an array, not an object"),
            json!("is a boolean, not an object"),
            json!("is null, not an object"),
            json!({}),
            json!("is a number, not an object"),
        ];
        assert_eq!(records(&items), expected);
        assert_eq!(items.iter().map(|it| it.index).collect::<Vec<_>>(), (1..=9).collect::<Vec<_>>());
        // Each end is just past the item's last byte.
        for it in &items {
            let before = TRICKY.as_bytes().get(..usize::try_from(it.end).unwrap()).unwrap();
            assert!(!is_ws(*before.last().unwrap()) && *before.last().unwrap() != b',');
        }
        let last_end = items.last().map(|it| usize::try_from(it.end).unwrap()).unwrap();
        assert!(TRICKY[..last_end].ends_with("-0.5"));
    }

    #[test]
    fn every_split_with_a_records_path_and_small_limit() {
        let doc = r#"{"meta":{"items":[9]},"data":{"x":[{"items":1}],"items":[{"a":1},{"big":"0123456789012345678901234567890"},{"c":"\\\""}]},"z":[1.0e-3,"\u0041",{"q":null}]}"#;
        let items = decode_all_splits(doc, Some("data.items"), 24).unwrap();
        assert_eq!(records(&items), vec![json!({"a": 1}), json!("is larger than the limit of 24 bytes"), json!({"c": "\\\""})]);
        assert_eq!(items.iter().map(|it| it.index).collect::<Vec<_>>(), vec![1, 2, 3]);
    }

    #[test]
    fn every_split_gives_the_same_error() {
        for doc in [
            r#"[{"a":1},{"b":"x"#,
            r#"[{"a":1},]"#,
            "[1 2]",
            "[1] x",
            r#"[{"a":}]"#,
            r#"{"items":[1],"rest":[1,}"#,
            r#"{"rest":"\q","items":[]}"#,
            "[1x]",
            "[tru]",
        ] {
            let path = doc.starts_with('{').then_some("items");
            assert!(decode_all_splits(doc, path, 8).is_err(), "{doc}");
        }
    }

    #[test]
    fn empty_arrays_and_whitespace() {
        assert_eq!(decode("[]", None).unwrap(), vec![]);
        assert_eq!(decode(" \t\r\n[ \n\t]\r\n ", None).unwrap(), vec![]);
        let items = decode_all_splits(" \n[ \t{ \"a\" :\r\n1 } \n,\t{\"b\":[ 1 , 2 ]}\n ]\n\n", None, MAX).unwrap();
        assert_eq!(records(&items), vec![json!({"a": 1}), json!({"b": [1, 2]})]);
        assert_eq!(items.first().map(|it| it.end), Some(17));
        assert_eq!(decode(r#"{"d": { "r" : [ ] } }"#, Some("d.r")).unwrap(), vec![]);
    }

    #[test]
    fn escaped_quotes_and_backslashes() {
        let items = decode_all_splits(r#"[{"k":"a\\\"]"},{"k":"\\"},{"k":"\"}{[","\\\\":"\u005c"}]"#, None, MAX).unwrap();
        assert_eq!(records(&items), vec![json!({"k": "a\\\"]"}), json!({"k": "\\"}), json!({"k": "\"}{[", "\\\\": "\\"})]);
    }

    #[test]
    fn records_path_at_depth_one_and_two() {
        let items = decode(r#"{"n": 1, "items": [{"a": 1}, {"a": 2}], "after": {"x": [true]}}"#, Some("items")).unwrap();
        assert_eq!(records(&items), vec![json!({"a": 1}), json!({"a": 2})]);
        let items = decode(r#"{"data": {"total": 2, "items": [{"a": 1}]}, "next": null}"#, Some("data.items")).unwrap();
        assert_eq!(records(&items), vec![json!({"a": 1})]);
        assert_eq!(items.first().map(|it| it.end), Some(40));
    }

    #[test]
    fn records_path_key_deeper_or_in_an_array_does_not_count() {
        let doc = r#"{"a": {"items": [{"wrong": 1}]}, "b": [{"items": [{"wrong": 2}]}], "items": [{"right": 1}]}"#;
        assert_eq!(records(&decode(doc, Some("items")).unwrap()), vec![json!({"right": 1})]);
        let doc = r#"{"data": {"x": {"items": [1]}, "l": [{"items": [2]}]}, "items": [3]}"#;
        assert_eq!(err(doc, Some("data.items")), "records path 'data.items': the document has no 'items'");
    }

    #[test]
    fn records_path_first_key_wins_and_escaped_keys_match() {
        let doc = r#"{"items": [{"first": 1}], "items": [{"second": 2}], "items": 3}"#;
        assert_eq!(records(&decode(doc, Some("items")).unwrap()), vec![json!({"first": 1})]);
        let doc = r#"{"it\u0065ms": [{"a": 1}]}"#;
        assert_eq!(records(&decode(doc, Some("items")).unwrap()), vec![json!({"a": 1})]);
        let doc = r#"{"item\"s": [1], "itemsitemsitemsitemsitemsitemsitems": [2], "items": [{"a": 1}]}"#;
        assert_eq!(records(&decode(doc, Some("items")).unwrap()), vec![json!({"a": 1})]);
        let doc = r#"{"": {"x": [{"a": 1}]}}"#;
        assert_eq!(records(&decode(doc, Some(".x")).unwrap()), vec![json!({"a": 1})]);
    }

    #[test]
    fn records_path_errors() {
        assert_eq!(err(r#"{"data": {"items": []}}"#, Some("data.rows")), "records path 'data.rows': the document has no 'rows'");
        assert_eq!(err(r#"{"x": 1}"#, Some("data.rows")), "records path 'data.rows': the document has no 'data'");
        assert_eq!(err(r#"{"data": {"total": 5}}"#, Some("data.total")), "records path 'data.total' leads to a number, not an array");
        assert_eq!(err(r#"{"data": null}"#, Some("data")), "records path 'data' leads to null, not an array");
        assert_eq!(err(r#"{"data": {"a": 1}}"#, Some("data")), "records path 'data' leads to an object, not an array");
        assert_eq!(err(r#"{"data": "s"}"#, Some("data.items")), "records path 'data.items': 'data' is a string, not an object");
        assert_eq!(err(r#"[1]"#, Some("data")), "records path 'data': the document is an array, not an object");
        assert_eq!(err(r#"{"data": }"#, Some("data")), "invalid JSON at byte 9: expected a value");
    }

    #[test]
    fn top_level_not_an_array() {
        assert_eq!(err(r#"{"a": [1]}"#, None), "expected an array of records, found an object (a records path can point into it)");
        assert_eq!(err("12", None), "expected an array of records, found a number");
        assert_eq!(err(r#""x""#, None), "expected an array of records, found a string");
        assert_eq!(err(" true", None), "expected an array of records, found a boolean");
        assert_eq!(err("null", None), "expected an array of records, found null");
        assert_eq!(err("x", None), "invalid JSON at byte 0: expected a value");
    }

    #[test]
    fn non_object_items_fail_with_their_index() {
        let items = decode(r#"[{"a":1}, 2, "three", [4], false, null, {"b":7}]"#, None).unwrap();
        let failed: Vec<(u64, String)> = items.iter().filter_map(|it| it.record.clone().err().map(|e| (it.index, e))).collect();
        assert_eq!(
            failed,
            vec![
                (2, "is a number, not an object".to_owned()),
                (3, "is a string, not an object".to_owned()),
                (4, "is an array, not an object".to_owned()),
                (5, "is a boolean, not an object".to_owned()),
                (6, "is null, not an object".to_owned()),
            ]
        );
        assert_eq!(items.last().map(|it| (it.index, it.record.is_ok())), Some((7, true)));
    }

    #[test]
    fn oversized_items_are_skipped_without_buffering() {
        let max = 100;
        let big = format!(r#"{{"big": "{}", "nested": [{{"x": "\"]}}"}}, [1, 2]], "n": -1.5e3}}"#, "x".repeat(5000));
        let long_string = format!("\"{}\"", "y".repeat(300));
        let long_number = "7".repeat(300);
        let doc = format!(r#"[{{"a":1}}, {big}, {{"b":2}}, {long_string}, {long_number}, {{"c":3}}]"#);
        for chunk_size in [1, 7, 64, 1000, doc.len()] {
            let mut decoder = JsonArray::new(None, max);
            let mut items = Vec::new();
            for chunk in doc.as_bytes().chunks(chunk_size) {
                decoder.feed(chunk, &mut items).unwrap();
                assert!(decoder.buffered() <= max, "buffered {} with chunks of {chunk_size}", decoder.buffered());
            }
            decoder.finish(&mut items).unwrap();
            let too_big = json!("is larger than the limit of 100 bytes");
            assert_eq!(records(&items), vec![json!({"a": 1}), too_big.clone(), json!({"b": 2}), too_big.clone(), too_big, json!({"c": 3})]);
            assert_eq!(items.iter().map(|it| it.index).collect::<Vec<_>>(), vec![1, 2, 3, 4, 5, 6]);
            let big_end = usize::try_from(items[1].end).unwrap();
            assert_eq!(&doc[big_end - big.len()..big_end], big);
        }
    }

    #[test]
    fn limit_is_exact() {
        // Each item below is exactly 10 bytes.
        let doc = r#"[{"a":"12"},"12345678",1234567890,{"a":true}]"#;
        let at_limit = decode_all_splits(doc, None, 10).unwrap();
        assert_eq!(
            records(&at_limit),
            vec![json!({"a": "12"}), json!("is a string, not an object"), json!("is a number, not an object"), json!({"a": true})]
        );
        let below = decode_all_splits(doc, None, 9).unwrap();
        assert!(below.iter().all(|it| it.record == Err("is larger than the limit of 9 bytes".to_owned())));
        assert_eq!(at_limit.iter().map(|it| it.end).collect::<Vec<_>>(), below.iter().map(|it| it.end).collect::<Vec<_>>());
        let zero = decode_chunks(&[b"[1,{}]"], None, 0).unwrap();
        assert!(zero.iter().all(|it| it.record == Err("is larger than the limit of 0 bytes".to_owned())) && zero.len() == 2);
    }

    #[test]
    fn oversized_items_are_still_validated() {
        for bad in [r#"{"a": tru}"#, r#"{"a": [1, 2}"#, r#"{"a" 1}"#, r#"{"a": "\x"}"#, "12345678901234x", r#"{"a": 01}"#] {
            let doc = format!("[{bad}, {{}}]");
            assert!(decode_all_splits(&doc, None, 4).unwrap_err().0.starts_with("invalid JSON at byte"), "{bad}");
        }
        let deep = format!("[{}]", "[".repeat(20_000));
        assert_eq!(decode_chunks(&[deep.as_bytes()], None, 10).unwrap_err().0, "invalid JSON at byte 10001: nesting too deep");
        // Within the limit, serde_json's own nesting limit applies: a document error, not a crash.
        let deep = format!("[{}{}]", "[".repeat(200), "]".repeat(200));
        assert_eq!(decode(&deep, None).unwrap_err().0, "invalid JSON in record 1: recursion limit exceeded");
    }

    #[test]
    fn resume_from_every_item_end() {
        let doc = format!(
            r#"{{"data": {{"items": [ {{"a":1}} , 2,{{"big":"{}"}}, "s" , {{"b":[1,{{"c":"]"}}]}}, {{}} ], "after": [1, 2]}}, "z": true}}"#,
            "q".repeat(200)
        );
        let all = decode_chunks(&[doc.as_bytes()], Some("data.items"), 50).unwrap();
        assert_eq!(all.len(), 6);
        for (n, item) in all.iter().enumerate() {
            let rest = &doc.as_bytes()[usize::try_from(item.end).unwrap()..];
            for chunk_size in [1, 3, 1000] {
                let mut decoder = JsonArray::resume(50, item.end, item.index);
                let mut out = Vec::new();
                for chunk in rest.chunks(chunk_size) {
                    decoder.feed(chunk, &mut out).unwrap();
                }
                decoder.finish(&mut out).unwrap();
                assert_eq!(out, all[n + 1..], "resume after item {}", item.index);
            }
        }
        // After the array closes, a resumed decoder does not look at the rest.
        let mut decoder = JsonArray::resume(50, 100, 7);
        let mut out = Vec::new();
        decoder.feed(br#", {"x": 1} ] garbage {"#, &mut out).unwrap();
        decoder.finish(&mut out).unwrap();
        assert_eq!(out, vec![Item { index: 8, end: 110, record: Ok(json!({"x": 1}).as_object().cloned().unwrap()) }]);
    }

    #[test]
    fn document_errors() {
        assert_eq!(err(r#"[{"a":1},{"b""#, None), "invalid JSON: EOF while parsing");
        assert_eq!(err(r#"[{"a":1}"#, None), "invalid JSON: EOF while parsing");
        assert_eq!(err(r#"{"items":[1]"#, Some("items")), "invalid JSON: EOF while parsing");
        assert_eq!(err(r#"[{"a":1},]"#, None), "invalid JSON at byte 9: expected a value");
        assert_eq!(err("[1 2]", None), "invalid JSON at byte 3: expected ',' or ']'");
        assert_eq!(err("[1,,2]", None), "invalid JSON at byte 3: expected a value");
        assert_eq!(err("[1] x", None), "invalid JSON at byte 4: trailing characters");
        assert_eq!(err("[1] []", None), "invalid JSON at byte 4: trailing characters");
        assert_eq!(err(r#"{"items":[]} 1"#, Some("items")), "invalid JSON at byte 13: trailing characters");
        assert_eq!(err("", None), "invalid JSON: EOF while parsing");
        assert_eq!(err(" \n ", None), "invalid JSON: EOF while parsing");
        assert_eq!(err(r#"[{"a":}]"#, None), "invalid JSON in record 1: expected value");
        assert_eq!(err(r#"[{"a":1}, {"b":1]]"#, None), "invalid JSON in record 2: expected `,` or `}`");
        assert_eq!(err(r#"[{"a":1]"#, None), "invalid JSON in record 1: expected `,` or `}`");
        assert_eq!(err("[1x]", None), "invalid JSON in record 1: trailing characters");
        assert_eq!(err(r#"{"items":[], "r": {"a" 1}}"#, Some("items")), "invalid JSON at byte 23: expected ':'");
        assert_eq!(err(r#"{"items":[], "r": [1}}"#, Some("items")), "invalid JSON at byte 20: expected ',' or ']'");
        assert_eq!(err("{\"x\":\"a\nb\",\"items\":[]}", Some("items")), "invalid JSON at byte 7: control character in string");
        assert_eq!(err(r#"{"x":-,"items":[]}"#, Some("items")), "invalid JSON at byte 6: invalid number");
    }

    #[test]
    fn spent_after_an_error() {
        let mut decoder = JsonArray::new(None, MAX);
        let mut out = Vec::new();
        let first = decoder.feed(b"[1 2", &mut out).unwrap_err();
        assert_eq!(decoder.feed(b"]", &mut out), Err(first.clone()));
        assert_eq!(decoder.finish(&mut out), Err(first));
        let mut decoder = JsonArray::new(None, MAX);
        assert!(decoder.finish(&mut out).is_err());
        assert_eq!(decoder.feed(b"[]", &mut out), Err(DocumentError(EOF.to_owned())));
        assert_eq!(DocumentError("m".to_owned()).to_string(), "m");
    }

    #[test]
    fn hundred_thousand_records() {
        let mut doc = String::from("{\"data\":{\"items\":[");
        for i in 0..100_000 {
            if i > 0 {
                doc.push(',');
            }
            doc.push_str(&format!(r#"{{"id":{i},"name":"user \"{i}\"","tags":["a","b"],"ok":true}}"#));
        }
        doc.push_str("]}}");
        let mut decoder = JsonArray::new(Some("data.items"), 1024);
        let mut items = Vec::new();
        for chunk in doc.as_bytes().chunks(65_536) {
            decoder.feed(chunk, &mut items).unwrap();
        }
        decoder.finish(&mut items).unwrap();
        assert_eq!(items.len(), 100_000);
        for (n, item) in items.iter().enumerate() {
            assert_eq!(item.index, n as u64 + 1);
            assert_eq!(item.record.as_ref().ok().and_then(|r| r.get("id")), Some(&json!(n)));
        }
        assert!(decoder.buffered() <= 1024);
    }

    /// What serde_json, reading the whole document at once, says the items are.
    fn serde_items(doc: &[u8], path: Option<&str>) -> Option<Vec<Value>> {
        let mut value: Value = serde_json::from_slice(doc).ok()?;
        for key in path.into_iter().flat_map(|p| p.split('.')) {
            value = value.as_object_mut()?.remove(key)?;
        }
        let kind = |v: &Value| match v {
            Value::Object(_) => v.clone(),
            Value::Array(_) => json!("is an array, not an object"),
            Value::String(_) => json!("is a string, not an object"),
            Value::Number(_) => json!("is a number, not an object"),
            Value::Bool(_) => json!("is a boolean, not an object"),
            Value::Null => json!("is null, not an object"),
        };
        Some(value.as_array()?.iter().map(kind).collect())
    }

    #[test]
    fn mutated_documents_agree_with_serde_json() {
        let seeds: [(&str, Option<&str>); 4] = [
            (r#"[{"a":[1,{"b":"x\"y"}],"c":-0.5e-3},"s",[true,false,null],{},12]"#, None),
            (r#" [ {"k" : "]}" } , { "n":{"m":[ ]}} ] "#, None),
            (r#"{"x":[{"items":1}],"d":{"items":[{"a":1},[2],{"b":"}"}],"z":{"q":[1e5,"w"]}},"t":null}"#, Some("d.items")),
            (r#"{"items":[{"a":"\u0041"},3],"more":{"deep":[[{}]]}}"#, Some("items")),
        ];
        const ALPHABET: &[u8] = b"[]{}\",:\\ 0123456789.-+eEtrufalsn\t\nx";
        let mut rng: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut next = |bound: usize| {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            usize::try_from(rng % bound as u64).unwrap()
        };
        for round in 0..30_000 {
            let (seed, path) = seeds[round % seeds.len()];
            let mut doc = seed.as_bytes().to_vec();
            for _ in 0..1 + next(3) {
                let at = next(doc.len() + 1);
                match next(3) {
                    0 if at < doc.len() => drop(doc.remove(at)),
                    1 if at < doc.len() => doc[at] = ALPHABET[next(ALPHABET.len())],
                    _ => doc.insert(at, ALPHABET[next(ALPHABET.len())]),
                }
            }
            let split = next(doc.len() + 1);
            let (a, b) = doc.split_at(split);
            // A small limit sends most items through the validator instead of serde_json: same verdicts expected.
            let max = if round % 2 == 0 { MAX } else { 8 };
            let ours = decode_chunks(&[a, b], path, max).map(|items| records(&items));
            let text = String::from_utf8_lossy(&doc);
            match serde_items(&doc, path) {
                Some(expected) => {
                    let ours = ours.unwrap_or_else(|e| panic!("{text}: {e}"));
                    assert_eq!(ours.len(), expected.len(), "{text}");
                    let too_big = json!("is larger than the limit of 8 bytes");
                    assert!(ours.iter().zip(&expected).all(|(o, e)| o == e || (max == 8 && *o == too_big)), "{text}");
                }
                // serde_json accepted the document but the path finds no array: then we must fail too.
                None if serde_json::from_slice::<Value>(&doc).is_ok() => assert!(ours.is_err(), "{text}"),
                None => assert!(ours.is_err(), "{text} gave {ours:?}"),
            }
        }
    }

    #[test]
    fn string_scanner_finds_specials_in_every_lane() {
        for len in 0..20 {
            for pos in 0..len {
                for special in [b'"', b'\\', 0x1f] {
                    let mut s = vec![b'a'; len];
                    s[pos] = special;
                    let expected = (special != 0x1f).then_some(pos);
                    assert_eq!(find_in_string::<false>(&s), expected);
                    assert_eq!(find_in_string::<true>(&s), Some(pos));
                }
            }
            assert_eq!(find_in_string::<true>(&vec![0xffu8; len]), None);
        }
    }
}
