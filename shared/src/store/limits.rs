//! Predicts whether DynamoDB would refuse a row before the row is sent, so one bad row can be reported by field
//! instead of failing a whole batch write.
//!
//! Rows are `serde_json` values stored the way `serde_dynamo` encodes them: String→S, Number→N, Bool→BOOL,
//! Null→NULL, Array→L, Object→M. JSON has no binary type, so B never arises here.
//!
//! # Rules relied on
//!
//! - AWS, "DynamoDB item sizes and formats"
//!   (<https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/CapacityUnitCalculations.html>):
//!   an item's size is the sum of its attribute names and values; names and strings count their UTF-8 bytes;
//!   a number is "approximately" 1 byte per two significant digits plus 1 byte, leading and trailing zeros trimmed;
//!   binary counts raw bytes; null and Boolean are 1 byte; a List or Map is 3 bytes plus its elements, and each
//!   element adds 1 byte (a Map element also adds its name).
//! - AWS, "Constraints in Amazon DynamoDB"
//!   (<https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/Constraints.html>):
//!   sizes use binary units (1 KB = 1024 bytes), so the 400 KB item limit is 409,600 bytes; a partition key value
//!   is 1 to 2048 bytes and a sort key value 1 to 1024 bytes; nested attributes go up to 32 levels deep.
//! - AWS, "Supported data types and naming rules in Amazon DynamoDB"
//!   (<https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/HowItWorks.NamingRulesDataTypes.html>):
//!   numbers have up to 38 digits of precision; positive range 1E-130 to
//!   9.9999999999999999999999999999999999999E+125, negative range its mirror, and zero.
//! - What "32 levels" counts is not spelled out by AWS. The emulator dynoxide's conformance test
//!   (`nubo-db/dynoxide`, `tests/nesting_depth.rs`, boundary "captured against real DynamoDB") counts the top-level
//!   attribute as level 1: a scalar wrapped in 31 maps (the scalar at level 32) is accepted, 32 wraps are refused.
//!   Another emulator's PartiQL tests agree and show lists count like maps.
//!
//! # Known doubt about number sizes
//!
//! AWS calls its number formula approximate. `zaccharles/dynamodb-calculator` (`index.html`), which its author
//! fitted to measured capacity use, counts digit pairs aligned on the decimal point and 1 more byte for negatives,
//! so "1.2" is 3 bytes there and 2 here; it can exceed the formula used here by up to 2 bytes per number. This
//! module follows the documented formula.
//!
//! # Reading of the depth rule used here
//!
//! The `data` attribute (the map holding the row) is level 1, the row's own fields are level 2, and every value
//! inside a map or list is one level below it. A value at level 33, i.e. one whose field path has 32 segments, is
//! too deep. An empty map or list at level 32 has nothing at level 33, so it passes (this case is not confirmed
//! against DynamoDB).

use std::fmt;

use serde_json::{Map, Number, Value};

/// DynamoDB's item size limit: 400 KB with 1 KB = 1024 bytes.
pub const MAX_ITEM_BYTES: usize = 400 * 1024;
/// Deepest level a value may sit at, counting the top-level attribute as level 1.
pub const MAX_NESTING_LEVELS: usize = 32;
/// Longest sort key value, in bytes.
pub const MAX_SORT_KEY_BYTES: usize = 1024;
/// Longest partition key value, in bytes. `check_row` does not see the partition key; this is for the caller.
pub const MAX_PARTITION_KEY_BYTES: usize = 2048;
/// Most significant digits a number may have.
pub const MAX_NUMBER_DIGITS: usize = 38;

/// Decimal exponent bounds of a nonzero number in scientific form (d.ddd × 10^E).
const MIN_EXPONENT: i64 = -130;
const MAX_EXPONENT: i64 = 125;
/// A List or Map costs this much before its elements.
const CONTAINER_BYTES: usize = 3;
/// Each List or Map element costs this much besides its name and value.
const ELEMENT_BYTES: usize = 1;

/// Why DynamoDB would refuse a row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RowLimit {
    /// "is N bytes as a DynamoDB item; the limit is 409600"
    TooLarge { bytes: usize },
    /// "nests deeper than 32 levels" — with the path of the field where it goes too deep, like `a.b[3].c`
    TooDeep { field: String },
    /// "number out of DynamoDB's range" (or "has more than 38 significant digits") — with the field path
    Number { field: String },
    /// "key is N bytes; the limit is 1024"
    KeyTooLong { bytes: usize },
    /// A map with an empty key, which DynamoDB refuses as an attribute name — with the path of
    /// the map.
    EmptyName { field: String },
}

impl fmt::Display for RowLimit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Field paths are names from the row's schema, never values, so they are safe to log.
        match self {
            RowLimit::TooLarge { bytes } => write!(f, "is {bytes} bytes as a DynamoDB item; the limit is {MAX_ITEM_BYTES}"),
            RowLimit::TooDeep { field } => write!(f, "nests deeper than {MAX_NESTING_LEVELS} levels at field {field}"),
            RowLimit::Number { field } => {
                write!(f, "has a number out of DynamoDB's range or with more than {MAX_NUMBER_DIGITS} significant digits at field {field}")
            }
            RowLimit::KeyTooLong { bytes } => write!(f, "key is {bytes} bytes; the limit is {MAX_SORT_KEY_BYTES}"),
            RowLimit::EmptyName { field } => write!(f, "has an object with an empty key at field {field}"),
        }
    }
}

impl std::error::Error for RowLimit {}

impl RowLimit {
    /// The field at fault, when the limit is about one field.
    pub fn field(&self) -> Option<&str> {
        match self {
            RowLimit::TooDeep { field } | RowLimit::Number { field } | RowLimit::EmptyName { field } => Some(field),
            RowLimit::TooLarge { .. } | RowLimit::KeyTooLong { .. } => None,
        }
    }
}

/// Size in bytes of one attribute value as DynamoDB counts it (not including its name).
///
/// Values DynamoDB would refuse are still measured: a number it would refuse counts as its
/// largest possible size, and nesting has no limit here.
pub fn value_size(v: &Value) -> usize {
    let mut stack = Stack::new();
    let own = match push_or_measure(&mut stack, v) {
        Ok(bytes) => bytes,
        // Only a refused number gets here; count it as the most a valid number can take.
        Err(Fault::Number) => WORST_NUMBER_BYTES,
        Err(Fault::Deep | Fault::EmptyName) => 0,
    };
    own.saturating_add(walk(&mut stack, usize::MAX, WalkNumbers::Lenient).unwrap_or(0))
}

/// Size of a number given as its JSON text (e.g. "-0.00120", "1e5", "12345678901234567890"); None when DynamoDB
/// would refuse it (out of range or > 38 significant digits). Must handle exponents, signs, leading/trailing
/// zeros, and "0".
///
/// Text that is not a number at all is also None. A leading `+`, a bare leading or trailing `.` (".5", "5.")
/// and `E` are read leniently as numbers; serde_json never prints them, so this only matters for hand-written text.
pub fn number_size(text: &str) -> Option<usize> {
    let mut scan = NumberScan::default();
    scan.feed(text.as_bytes());
    scan.finish()
}

/// Checks a row that will be stored as an item with fixed attributes (the caller passes `fixed_bytes` = the size
/// of the other attributes of the item, e.g. PK, SK, runId, writtenAt and the attribute name "data") plus the
/// row's fields under a map attribute named `data`, and the item's sort key. Returns the total item size, or the
/// first limit it breaks (depth and number checks first, then key length, then size).
///
/// One pass over the row, and no allocation unless a limit is broken.
pub fn check_row(row: &Map<String, Value>, sort_key: &str, fixed_bytes: usize) -> Result<usize, RowLimit> {
    let mut stack = Stack::new();
    stack.push(Frame::Map { iter: row.iter(), key: "" });
    // The data map is level 1, so a value is too deep once the frames above it reach the limit.
    let data_bytes = match walk(&mut stack, MAX_NESTING_LEVELS, WalkNumbers::Strict) {
        Ok(elements) => CONTAINER_BYTES.saturating_add(elements),
        Err(Fault::Deep) => return Err(RowLimit::TooDeep { field: stack.render_path() }),
        Err(Fault::Number) => return Err(RowLimit::Number { field: stack.render_path() }),
        Err(Fault::EmptyName) => return Err(RowLimit::EmptyName { field: stack.render_path() }),
    };
    if sort_key.len() > MAX_SORT_KEY_BYTES {
        return Err(RowLimit::KeyTooLong { bytes: sort_key.len() });
    }
    let total = fixed_bytes.saturating_add(data_bytes);
    if total > MAX_ITEM_BYTES {
        return Err(RowLimit::TooLarge { bytes: total });
    }
    Ok(total)
}

/// Why DynamoDB would refuse an item that an API write makes (a pipeline, a connector, a
/// schema): the field at fault, as a path from the item's top (`nodes[0].config.a`), and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ItemLimit {
    pub field: String,
    pub reason: RowLimit,
}

impl fmt::Display for ItemLimit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.reason {
            RowLimit::TooLarge { bytes } => {
                write!(f, "the item would be {bytes} bytes stored; DynamoDB takes at most {MAX_ITEM_BYTES} (this field is the largest)")
            }
            RowLimit::TooDeep { .. } => write!(f, "nests deeper than DynamoDB's {MAX_NESTING_LEVELS} levels here"),
            RowLimit::Number { .. } => {
                write!(f, "is a number out of DynamoDB's range or with more than {MAX_NUMBER_DIGITS} significant digits")
            }
            RowLimit::KeyTooLong { bytes } => write!(f, "key is {bytes} bytes; the limit is {MAX_SORT_KEY_BYTES}"),
            RowLimit::EmptyName { .. } => write!(f, "has an empty key; DynamoDB takes no empty attribute name"),
        }
    }
}

/// Checks a whole item, whose attributes are level 1 (one level above a row's fields, which sit
/// in the `data` map): depth, numbers, and size with `fixed_bytes` for the key attributes.
pub fn check_item(item: &Map<String, Value>, fixed_bytes: usize) -> Result<usize, ItemLimit> {
    let mut stack = Stack::new();
    stack.push(Frame::Map { iter: item.iter(), key: "" });
    let bytes = match walk(&mut stack, MAX_NESTING_LEVELS + 1, WalkNumbers::Strict) {
        Ok(bytes) => bytes,
        Err(fault) => {
            let field: String = stack.render_path().chars().take(300).collect();
            let reason = match fault {
                Fault::Deep => RowLimit::TooDeep { field: field.clone() },
                Fault::Number => RowLimit::Number { field: field.clone() },
                Fault::EmptyName => RowLimit::EmptyName { field: field.clone() },
            };
            return Err(ItemLimit { field, reason });
        }
    };
    let total = fixed_bytes.saturating_add(bytes);
    if total > MAX_ITEM_BYTES {
        let largest = item.iter().max_by_key(|(name, v)| name.len().saturating_add(value_size(v))).map(|(name, _)| name.clone());
        return Err(ItemLimit { field: largest.unwrap_or_default(), reason: RowLimit::TooLarge { bytes: total } });
    }
    Ok(total)
}

/// Largest size a number can have under the documented rule: 38 digits → 19 bytes, plus 1.
const WORST_NUMBER_BYTES: usize = MAX_NUMBER_DIGITS.div_ceil(2) + 1;

/// Why a walk stopped before the end.
enum Fault {
    Deep,
    Number,
    EmptyName,
}

/// Whether a refused number stops the walk (`check_row`) or is just measured (`value_size`).
#[derive(Clone, Copy, PartialEq, Eq)]
enum WalkNumbers {
    Strict,
    Lenient,
}

/// One open List or Map, with the element it is currently on, so a path can be rendered when a fault is found.
enum Frame<'a> {
    Map { iter: serde_json::map::Iter<'a>, key: &'a str },
    List { iter: std::slice::Iter<'a, Value>, taken: usize },
}

impl<'a> Frame<'a> {
    /// Moves to the next element, returning it with the bytes its name and element overhead add.
    fn next(&mut self) -> Option<(&'a Value, usize)> {
        match self {
            Frame::Map { iter, key } => iter.next().map(|(k, v)| {
                *key = k.as_str();
                (v, ELEMENT_BYTES.saturating_add(k.len()))
            }),
            Frame::List { iter, taken } => iter.next().map(|v| {
                *taken = taken.saturating_add(1);
                (v, ELEMENT_BYTES)
            }),
        }
    }
}

/// Frames kept inline; `check_row` never needs more, because it stops at the depth limit.
const INLINE_FRAMES: usize = MAX_NESTING_LEVELS;

/// An explicit stack instead of recursion, so input depth can never exhaust the thread's stack. Frames past
/// `INLINE_FRAMES` spill to the heap, which only `value_size` on values deeper than DynamoDB allows can reach.
struct Stack<'a> {
    inline: [Option<Frame<'a>>; INLINE_FRAMES],
    spill: Vec<Frame<'a>>,
    len: usize,
}

impl<'a> Stack<'a> {
    fn new() -> Self {
        Stack { inline: [const { None }; INLINE_FRAMES], spill: Vec::new(), len: 0 }
    }

    fn push(&mut self, frame: Frame<'a>) {
        match self.inline.get_mut(self.len) {
            Some(slot) => *slot = Some(frame),
            None => self.spill.push(frame),
        }
        self.len = self.len.saturating_add(1);
    }

    fn pop(&mut self) {
        if self.len > INLINE_FRAMES {
            self.spill.pop();
        }
        // Inline slots are simply left behind; `len` says which are live.
        self.len = self.len.saturating_sub(1);
    }

    fn top(&mut self) -> Option<&mut Frame<'a>> {
        if self.len > INLINE_FRAMES {
            return self.spill.last_mut();
        }
        let index = self.len.checked_sub(1)?;
        self.inline.get_mut(index)?.as_mut()
    }

    fn frames(&self) -> impl Iterator<Item = &Frame<'a>> {
        self.inline.iter().take(self.len).flatten().chain(self.spill.iter())
    }

    /// The path of the element the top frame is on, like `a.b[3].c`; the first frame is the row itself.
    fn render_path(&self) -> String {
        use fmt::Write as _;
        let mut out = String::new();
        for (i, frame) in self.frames().enumerate() {
            match frame {
                Frame::Map { key, .. } => {
                    if i > 0 {
                        out.push('.');
                    }
                    out.push_str(key);
                }
                Frame::List { taken, .. } => {
                    // Writing to a String cannot fail.
                    let _ = write!(out, "[{}]", taken.saturating_sub(1));
                }
            }
        }
        out
    }
}

/// Measures a scalar, or opens a container (counting its 3 bytes) for the walk to fill in.
fn push_or_measure<'a>(stack: &mut Stack<'a>, v: &'a Value) -> Result<usize, Fault> {
    match v {
        Value::Null | Value::Bool(_) => Ok(1),
        Value::String(s) => Ok(s.len()),
        Value::Number(n) => json_number_size(n).ok_or(Fault::Number),
        Value::Array(items) => {
            stack.push(Frame::List { iter: items.iter(), taken: 0 });
            Ok(CONTAINER_BYTES)
        }
        Value::Object(fields) => {
            stack.push(Frame::Map { iter: fields.iter(), key: "" });
            Ok(CONTAINER_BYTES)
        }
    }
}

/// Sums the elements of every open container, depth first. The element under the top frame is the one at fault
/// when this returns an error, so the caller can render its path from the stack.
///
/// `max_frames` is how many containers may be open above a value; the bottom frame is level 1.
fn walk<'a>(stack: &mut Stack<'a>, max_frames: usize, numbers: WalkNumbers) -> Result<usize, Fault> {
    let mut bytes = 0usize;
    while let Some(top) = stack.top() {
        let Some((child, overhead)) = top.next() else {
            stack.pop();
            continue;
        };
        bytes = bytes.saturating_add(overhead);
        if numbers == WalkNumbers::Strict && matches!(stack.top(), Some(Frame::Map { key: "", .. })) {
            return Err(Fault::EmptyName);
        }
        // The child sits one level below the `len` open frames.
        if stack.len >= max_frames {
            return Err(Fault::Deep);
        }
        let own = match push_or_measure(stack, child) {
            Ok(own) => own,
            Err(Fault::Number) if numbers == WalkNumbers::Lenient => WORST_NUMBER_BYTES,
            Err(fault) => return Err(fault),
        };
        bytes = bytes.saturating_add(own);
    }
    Ok(bytes)
}

/// Size of a serde_json number without allocating: integers are counted directly, anything else is scanned as
/// serde_json would print it (`to_string()` goes through the same `Display`).
fn json_number_size(n: &Number) -> Option<usize> {
    if let Some(u) = n.as_u64() {
        return Some(integer_size(u));
    }
    if let Some(i) = n.as_i64() {
        return Some(integer_size(i.unsigned_abs()));
    }
    use fmt::Write as _;
    let mut scan = NumberScan::default();
    // The scanner never fails a write; an error could only come from a broken Display, so refuse then.
    write!(scan, "{n}").ok()?;
    scan.finish()
}

/// Any u64 is within DynamoDB's range and under 38 digits, so only its significant digits matter.
fn integer_size(mut u: u64) -> usize {
    if u == 0 {
        return 1;
    }
    while u.is_multiple_of(10) {
        u /= 10;
    }
    let digits = u.ilog10() as usize + 1;
    digits.div_ceil(2) + 1
}

/// Where the scanner is in `[+-] digits [. digits] [(e|E) [+-] digits]`.
#[derive(Default, Clone, Copy, PartialEq, Eq)]
enum ScanState {
    #[default]
    Start,
    Sign,
    Integer,
    Fraction,
    ExponentMark,
    ExponentSign,
    Exponent,
    Invalid,
}

/// Exponent text is clamped here so absurd exponents cannot overflow; anything this large is out of range anyway.
const EXPONENT_CLAMP: i64 = 1_000_000_000_000;

/// Reads a number's text byte by byte, keeping only what the size and range rules need, so it can be fed
/// through `fmt::Write` from `Display` without a buffer.
#[derive(Default)]
struct NumberScan {
    state: ScanState,
    /// Mantissa digits seen so far, both sides of the point.
    digits: usize,
    /// Mantissa digits before the point.
    integer_digits: usize,
    /// Index among the mantissa digits of the first and last nonzero digit.
    first_nonzero: Option<usize>,
    last_nonzero: usize,
    exponent: i64,
    exponent_negative: bool,
}

impl NumberScan {
    fn feed(&mut self, bytes: &[u8]) {
        for &b in bytes {
            if self.state == ScanState::Invalid {
                return;
            }
            self.state = self.step(b);
        }
    }

    fn step(&mut self, b: u8) -> ScanState {
        use ScanState::*;
        match (self.state, b) {
            (Start, b'-' | b'+') => Sign,
            (Start | Sign | Integer, b'0'..=b'9') => {
                self.mantissa_digit(b);
                self.integer_digits = self.integer_digits.saturating_add(1);
                Integer
            }
            (Start | Sign | Integer, b'.') => Fraction,
            (Fraction, b'0'..=b'9') => {
                self.mantissa_digit(b);
                Fraction
            }
            // An exponent needs at least one mantissa digit before it (".e5" is not a number).
            (Integer | Fraction, b'e' | b'E') if self.digits > 0 => ExponentMark,
            (ExponentMark, b'-') => {
                self.exponent_negative = true;
                ExponentSign
            }
            (ExponentMark, b'+') => ExponentSign,
            (ExponentMark | ExponentSign | Exponent, b'0'..=b'9') => {
                self.exponent = (self.exponent * 10 + i64::from(b - b'0')).min(EXPONENT_CLAMP);
                Exponent
            }
            _ => Invalid,
        }
    }

    fn mantissa_digit(&mut self, b: u8) {
        let index = self.digits;
        self.digits = self.digits.saturating_add(1);
        if b != b'0' {
            self.first_nonzero.get_or_insert(index);
            self.last_nonzero = index;
        }
    }

    fn finish(&self) -> Option<usize> {
        let complete = match self.state {
            ScanState::Integer | ScanState::Exponent => true,
            ScanState::Fraction => self.digits > 0,
            _ => false,
        };
        if !complete {
            return None;
        }
        // Zero has no significant digits; DynamoDB stores it in 1 byte whatever its exponent.
        let Some(first) = self.first_nonzero else {
            return Some(1);
        };
        let significant = self.last_nonzero.saturating_sub(first).saturating_add(1);
        if significant > MAX_NUMBER_DIGITS {
            return None;
        }
        // With the first nonzero digit at mantissa index f, the value is d.ddd × 10^(integer_digits - 1 - f + exp).
        let to_i64 = |x: usize| i64::try_from(x).unwrap_or(i64::MAX);
        let exponent = if self.exponent_negative { -self.exponent } else { self.exponent };
        let scientific = to_i64(self.integer_digits).saturating_sub(1).saturating_sub(to_i64(first)).saturating_add(exponent);
        if !(MIN_EXPONENT..=MAX_EXPONENT).contains(&scientific) {
            return None;
        }
        Some(significant.div_ceil(2) + 1)
    }
}

impl fmt::Write for NumberScan {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        self.feed(s.as_bytes());
        Ok(())
    }
}

#[cfg(test)]
mod tests {

    fn nested(levels: usize) -> Value {
        (0..levels).fold(json!(1), |inner, _| json!({ "a": inner }))
    }

    #[test]
    fn an_empty_key_is_refused_with_its_path() {
        let item = json!({"name": "c", "config": {"headers": {"": "x"}}});
        let err = check_item(item.as_object().unwrap(), 0).unwrap_err();
        assert_eq!((err.field.as_str(), err.reason.field()), ("config.headers.", Some("config.headers.")));
        assert!(check_item(json!({"config": {"a": {"b": ""}}}).as_object().unwrap(), 0).is_ok(), "empty values are fine");
        let row = json!({"payload": {"": 1}});
        assert!(matches!(check_row(row.as_object().unwrap(), "K#1", 0), Err(RowLimit::EmptyName { .. })));
    }

    #[test]
    fn an_items_attributes_are_level_one() {
        // An attribute holding a scalar wrapped in 31 maps puts the scalar at level 32: accepted.
        let ok = json!({ "config": nested(31) });
        assert!(check_item(ok.as_object().unwrap(), 100).is_ok());
        let deep = json!({ "name": "x", "config": nested(32) });
        let err = check_item(deep.as_object().unwrap(), 100).unwrap_err();
        assert!(err.field.starts_with("config.a.a"), "{}", err.field);
        assert!(matches!(err.reason, RowLimit::TooDeep { .. }));
        // Deeper input (a request body is at most 128 levels, serde_json's limit) names a bounded path.
        let very = json!({ "nodes": [{ "config": nested(500) }] });
        let err = check_item(very.as_object().unwrap(), 100).unwrap_err();
        assert!(err.field.starts_with("nodes[0].config.a") && err.field.len() <= 300, "{}", err.field);
    }

    #[test]
    fn an_oversized_item_names_its_largest_field() {
        let big = json!({ "name": "x", "nodes": "n".repeat(MAX_ITEM_BYTES), "edges": [] });
        let err = check_item(big.as_object().unwrap(), 100).unwrap_err();
        assert_eq!(err.field, "nodes");
        assert!(matches!(err.reason, RowLimit::TooLarge { bytes } if bytes > MAX_ITEM_BYTES));
        let fits = json!({ "name": "x", "nodes": "n".repeat(MAX_ITEM_BYTES - 200) });
        assert!(check_item(fits.as_object().unwrap(), 100).is_ok());
    }

    use super::*;
    use serde_json::json;
    use std::alloc::{GlobalAlloc, Layout, System};
    use std::cell::Cell;

    /// Counts allocations per thread, so the no-allocation test is not disturbed by tests running beside it.
    struct CountingAlloc;

    thread_local! {
        static ALLOCATIONS: Cell<usize> = const { Cell::new(0) };
    }

    unsafe impl GlobalAlloc for CountingAlloc {
        unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
            let _ = ALLOCATIONS.try_with(|c| c.set(c.get() + 1));
            // SAFETY: forwarded unchanged to the system allocator.
            unsafe { System.alloc(layout) }
        }

        unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
            // SAFETY: forwarded unchanged to the system allocator.
            unsafe { System.dealloc(ptr, layout) }
        }
    }

    #[global_allocator]
    static GLOBAL: CountingAlloc = CountingAlloc;

    fn allocations() -> usize {
        ALLOCATIONS.with(Cell::get)
    }

    fn obj(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            _ => Map::new(),
        }
    }

    /// A scalar wrapped in `depth` single-key maps, as in dynoxide's conformance test: depth 1 is `{"n": "leaf"}`.
    fn deep_map(depth: usize, leaf: Value) -> Value {
        let mut v = leaf;
        for _ in 0..depth {
            let mut m = Map::new();
            m.insert("n".to_string(), v);
            v = Value::Object(m);
        }
        v
    }

    fn deep_list(depth: usize, leaf: Value) -> Value {
        let mut v = leaf;
        for _ in 0..depth {
            v = Value::Array(vec![v]);
        }
        v
    }

    /// Size of a whole item given as top-level attributes: names plus values, no element overhead.
    fn item_size(item: &Value) -> usize {
        obj(item.clone()).iter().map(|(k, v)| k.len() + value_size(v)).sum()
    }

    #[test]
    fn scalar_sizes() {
        assert_eq!(value_size(&json!("abc")), 3);
        assert_eq!(value_size(&json!("")), 0);
        assert_eq!(value_size(&json!("é")), 2);
        assert_eq!(value_size(&json!("日本")), 6);
        assert_eq!(value_size(&json!("😀")), 4);
        assert_eq!(value_size(&json!(true)), 1);
        assert_eq!(value_size(&json!(false)), 1);
        assert_eq!(value_size(&Value::Null), 1);
        assert_eq!(value_size(&json!(0)), 1);
        assert_eq!(value_size(&json!(7)), 2);
        assert_eq!(value_size(&json!(123)), 3);
        assert_eq!(value_size(&json!(-1234)), 3);
        assert_eq!(value_size(&json!(1000)), 2);
        assert_eq!(value_size(&json!(0.25)), 2);
    }

    #[test]
    fn container_sizes() {
        assert_eq!(value_size(&json!([])), 3);
        assert_eq!(value_size(&json!({})), 3);
        // 3 + (1 + 2) + (1 + 2)
        assert_eq!(value_size(&json!([1, "ab"])), 9);
        // 3 + (1 + "a" + 2) + (1 + "bc" + 1)
        assert_eq!(value_size(&json!({"a": 1, "bc": true})), 11);
        // outer 3 + (1 + "m" + inner), inner = 3 + (1 + 1)
        assert_eq!(value_size(&json!({"m": [null]})), 3 + 1 + 1 + 5);
        // Names are UTF-8 bytes too: 3 + (1 + 6 + 3)
        assert_eq!(value_size(&json!({"名前": "値"})), 13);
    }

    #[test]
    fn third_party_worked_examples() {
        // mikaelvesavuori/ddbitemsizer README: "The size of this input is 141 bytes."
        let item = json!({
            "itemType": "SLOT", "id": "abc1231", "hostName": "Harry Mason", "timeSlot": "February 23, 1999",
            "slotStatus": "OPEN", "createdAt": "February 1, 1999", "updatedAt": "February 1, 1999", "expiresAt": 2099
        });
        assert_eq!(item_size(&item), 141);
        // LeeroyHannigan/DynamoDB-ItemSizeCalculator README: size 137.
        let item = json!({
            "Id": 101, "Title": "Book 101 Title", "ISBN": "111-1111111111", "Authors": ["Author1"], "Price": 2,
            "Dimensions": "8.5 x 11.0 x 0.5", "PageCount": 500, "InPublication": true, "ProductCategory": "Book"
        });
        assert_eq!(item_size(&item), 137);
    }

    #[test]
    fn number_text_sizes() {
        for zero in ["0", "-0", "+0", "0.000", "000", "0e10", "0E-999", "0e99999999999999999999999", ".0", "0."] {
            assert_eq!(number_size(zero), Some(1), "{zero}");
        }
        assert_eq!(number_size("1"), Some(2));
        assert_eq!(number_size("12"), Some(2));
        assert_eq!(number_size("123"), Some(3));
        assert_eq!(number_size("-0.00120"), Some(2));
        assert_eq!(number_size("1e5"), Some(2));
        assert_eq!(number_size("1E+5"), Some(2));
        assert_eq!(number_size("1e0005"), Some(2));
        assert_eq!(number_size("12345678901234567890"), Some(11));
        assert_eq!(number_size("00012.3400"), Some(3));
        assert_eq!(number_size(".5"), Some(2));
        assert_eq!(number_size("5."), Some(2));
        assert_eq!(number_size("+5"), Some(2));
        assert_eq!(number_size("1.5e-10"), Some(2));
    }

    #[test]
    fn number_text_refused_when_not_a_number() {
        for bad in ["", "-", "+", ".", "abc", "1e", "1e+", "1.2.3", "--1", " 1", "1 ", "e5", ".e5", "1e5.0", "0x10", "NaN", "1_000"] {
            assert_eq!(number_size(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn number_range_boundaries() {
        assert_eq!(number_size("1e-130"), Some(2));
        assert_eq!(number_size("1E-130"), Some(2));
        assert_eq!(number_size("-1e-130"), Some(2));
        assert_eq!(number_size("1e-131"), None);
        assert_eq!(number_size("-1e-131"), None);
        assert_eq!(number_size("0.99e-130"), None);
        let max = "9.9999999999999999999999999999999999999e125";
        assert_eq!(number_size(max), Some(20));
        assert_eq!(number_size(&format!("-{max}")), Some(20));
        assert_eq!(number_size("1e126"), None);
        assert_eq!(number_size("-1e126"), None);
        assert_eq!(number_size("1e125"), Some(2));
        // The exponent of the leading digit is what counts, however the text is split.
        assert_eq!(number_size("99999999999999999999999999999999999999e88"), Some(20));
        assert_eq!(number_size("99999999999999999999999999999999999999e89"), None);
        assert_eq!(number_size(&format!("0.{}1", "0".repeat(129))), Some(2));
        assert_eq!(number_size(&format!("0.{}1", "0".repeat(130))), None);
        assert_eq!(number_size(&format!("1{}", "0".repeat(125))), Some(2));
        assert_eq!(number_size(&format!("1{}", "0".repeat(126))), None);
        assert_eq!(number_size("1e99999999999999999999999999"), None);
        assert_eq!(number_size("1e-99999999999999999999999999"), None);
    }

    #[test]
    fn number_precision_boundaries() {
        let d38 = "12345678901234567890123456789012345678";
        assert_eq!(number_size(d38), Some(20));
        assert_eq!(number_size(&format!("-0.000{d38}")), Some(20));
        assert_eq!(number_size(&format!("{d38}0000")), Some(20));
        assert_eq!(number_size("123456789012345678901234567890123456789"), None);
        assert_eq!(number_size("1.23456789012345678901234567890123456789"), None);
        // Trailing zeros are trimmed: one significant digit, and 1e42 is in range.
        assert_eq!(number_size("1000000000000000000000000000000000000000000"), Some(2));
        // Zeros between nonzero digits are significant: 39 digits.
        assert_eq!(number_size(&format!("1{}1", "0".repeat(37))), None);
        assert_eq!(number_size(&format!("1{}1", "0".repeat(36))), Some(20));
    }

    #[test]
    fn serde_json_number_shapes() {
        let f = |x: f64| serde_json::Number::from_f64(x).map(|n| n.to_string()).unwrap_or_default();
        // serde_json 1.0.154 prints a positive exponent with "+"; older releases printed "1e300". Both parse.
        assert_eq!(f(1e300), "1e+300");
        assert_eq!(f(0.1), "0.1");
        assert_eq!(f(1e15), "1000000000000000.0");
        assert_eq!(number_size("1e300"), None);
        assert_eq!(number_size(&f(1e15)), Some(2));
        assert_eq!(number_size(&f(1e16)), Some(2));
        assert_eq!(number_size(&f(-0.0)), Some(1));
        assert_eq!(number_size(&f(1e300)), None);
        assert_eq!(number_size(&f(0.1)), Some(2));
        assert_eq!(number_size(&f(1e-7)), Some(2));
        assert_eq!(number_size(&f(f64::MIN_POSITIVE)), None);
        assert_eq!(number_size(&f(f64::MAX)), None);
        assert_eq!(number_size(&f(-1.5e125)), Some(2));
        assert_eq!(number_size(&f(1e126)), None);
        // 17 significant digits: 0.30000000000000004
        assert_eq!(number_size(&f(0.1 + 0.2)), Some(10));
        assert_eq!(number_size(&u64::MAX.to_string()), Some(11));
        assert_eq!(number_size(&i64::MIN.to_string()), Some(11));
    }

    #[test]
    fn number_fast_path_matches_text() {
        let mut values = vec![json!(0), json!(-1), json!(10), json!(u64::MAX), json!(i64::MIN), json!(1_000_000u64)];
        for x in [0.0, -0.0, 0.5, 1.0, 3.0, 1e20, 1e21, 123456.789, 1e-7, 2.5e-130, 1e-131, 1e125, 1e126, 1e300, -2.2e-308] {
            values.push(Value::Number(serde_json::Number::from_f64(x).unwrap_or_else(|| 0.into())));
        }
        for v in values {
            let Value::Number(n) = &v else { continue };
            assert_eq!(json_number_size(n), number_size(&n.to_string()), "{n}");
        }
    }

    #[test]
    fn size_boundary_at_400_kb() {
        let fixed = 100;
        // data map: 3 + (1 + "s" + string)
        let fits = MAX_ITEM_BYTES - fixed - 5;
        let row = obj(json!({ "s": "x".repeat(fits) }));
        assert_eq!(check_row(&row, "sk", fixed), Ok(409_600));
        let row = obj(json!({ "s": "x".repeat(fits + 1) }));
        assert_eq!(check_row(&row, "sk", fixed), Err(RowLimit::TooLarge { bytes: 409_601 }));
    }

    #[test]
    fn check_row_total_matches_value_size() {
        let row = obj(json!({"a": 1, "b": [true, null, "x"], "c": {"d": 1.5, "名": "値"}}));
        let expected = 60 + value_size(&Value::Object(row.clone()));
        assert_eq!(check_row(&row, "sk", 60), Ok(expected));
        assert_eq!(check_row(&Map::new(), "sk", 60), Ok(63));
    }

    #[test]
    fn depth_boundary_matches_dynoxide_capture() {
        // data = 31 wraps (leaf at level 32) is accepted; the row is what sits inside data's outer map.
        let ok = obj(deep_map(31, json!("leaf")));
        assert!(check_row(&ok, "sk", 0).is_ok());
        // data = 32 wraps (leaf at level 33) is refused, at the leaf: 32 path segments.
        let bad = obj(deep_map(32, json!("leaf")));
        let field = ["n"; 32].join(".");
        assert_eq!(check_row(&bad, "sk", 0), Err(RowLimit::TooDeep { field }));
    }

    #[test]
    fn depth_counts_lists_like_maps() {
        // "a" is level 2, so 30 nested lists put the leaf at level 32.
        let ok = obj(json!({ "a": deep_list(30, json!(1)) }));
        assert!(check_row(&ok, "sk", 0).is_ok());
        let bad = obj(json!({ "a": deep_list(31, json!(1)) }));
        let field = format!("a{}", "[0]".repeat(31));
        assert_eq!(check_row(&bad, "sk", 0), Err(RowLimit::TooDeep { field }));
        // An empty container at level 32 holds nothing at level 33.
        let empty_at_32 = obj(json!({ "a": deep_list(30, json!([])) }));
        assert!(check_row(&empty_at_32, "sk", 0).is_ok());
        let empty_at_33 = obj(json!({ "a": deep_list(31, json!([])) }));
        assert!(matches!(check_row(&empty_at_33, "sk", 0), Err(RowLimit::TooDeep { .. })));
    }

    #[test]
    fn very_deep_input_neither_recurses_nor_panics() {
        let depth = 100_000;
        let v = deep_list(depth, Value::Null);
        // n nested lists around null: each adds 3 + 1, plus the null.
        assert_eq!(value_size(&v), 4 * depth + 1);
        let mut row = Map::new();
        row.insert("x".into(), v);
        let err = check_row(&row, "sk", 0);
        assert_eq!(err, Err(RowLimit::TooDeep { field: format!("x{}", "[0]".repeat(31)) }));
        // serde_json's drop recurses; leak instead of overflowing the test thread's stack.
        std::mem::forget(row);
    }

    #[test]
    fn number_fault_reports_field_path() {
        let row = obj(json!({"a": {"b": [1, 2, 3, {"c": 1e300}]}}));
        assert_eq!(check_row(&row, "sk", 0), Err(RowLimit::Number { field: "a.b[3].c".into() }));
        let row = obj(json!({"top": 1e-200}));
        assert_eq!(check_row(&row, "sk", 0), Err(RowLimit::Number { field: "top".into() }));
        // value_size still measures it, as the largest a number can be.
        assert_eq!(value_size(&json!(1e300)), WORST_NUMBER_BYTES);
    }

    #[test]
    fn sort_key_boundary() {
        let row = obj(json!({"a": 1}));
        assert!(check_row(&row, &"k".repeat(1024), 0).is_ok());
        assert_eq!(check_row(&row, &"k".repeat(1025), 0), Err(RowLimit::KeyTooLong { bytes: 1025 }));
        // Bytes, not characters.
        assert!(check_row(&row, &"é".repeat(512), 0).is_ok());
        assert_eq!(check_row(&row, &format!("{}a", "é".repeat(512)), 0), Err(RowLimit::KeyTooLong { bytes: 1025 }));
    }

    #[test]
    fn faults_come_in_documented_order() {
        let long_key = "k".repeat(2000);
        let mut deep = obj(deep_map(32, json!(1)));
        deep.insert("big".into(), json!("x".repeat(MAX_ITEM_BYTES)));
        assert!(matches!(check_row(&deep, &long_key, 0), Err(RowLimit::TooDeep { .. })));
        let numeric = obj(json!({"big": "x".repeat(MAX_ITEM_BYTES), "n": 1e200}));
        assert!(matches!(check_row(&numeric, &long_key, 0), Err(RowLimit::Number { .. })));
        let large = obj(json!({"big": "x".repeat(MAX_ITEM_BYTES)}));
        assert_eq!(check_row(&large, &long_key, 0), Err(RowLimit::KeyTooLong { bytes: 2000 }));
        assert!(matches!(check_row(&large, "sk", 0), Err(RowLimit::TooLarge { .. })));
    }

    #[test]
    fn huge_fixed_bytes_saturates() {
        let row = obj(json!({"a": 1}));
        assert_eq!(check_row(&row, "sk", usize::MAX), Err(RowLimit::TooLarge { bytes: usize::MAX }));
    }

    #[test]
    fn multibyte_names_and_values() {
        let row = obj(json!({"名前": "値", "ключ": ["é"]}));
        // 3 + (1 + 6 + 3) + (1 + 8 + (3 + 1 + 2))
        assert_eq!(check_row(&row, "sk", 0), Ok(28));
        let row = obj(json!({"a": {"ключ": [1e300]}}));
        assert_eq!(check_row(&row, "sk", 0), Err(RowLimit::Number { field: "a.ключ[0]".into() }));
    }

    #[test]
    fn messages() {
        assert_eq!(RowLimit::TooLarge { bytes: 409_601 }.to_string(), "is 409601 bytes as a DynamoDB item; the limit is 409600");
        assert_eq!(RowLimit::TooDeep { field: "a.b[3].c".into() }.to_string(), "nests deeper than 32 levels at field a.b[3].c");
        assert_eq!(
            RowLimit::Number { field: "x".into() }.to_string(),
            "has a number out of DynamoDB's range or with more than 38 significant digits at field x"
        );
        assert_eq!(RowLimit::KeyTooLong { bytes: 1025 }.to_string(), "key is 1025 bytes; the limit is 1024");
        // A refused value never reaches the message.
        let row = obj(json!({"secret": {"n": 1e300}}));
        let msg = check_row(&row, "sk", 0).map_err(|e| e.to_string()).err().unwrap_or_default();
        assert!(msg.contains("secret.n") && !msg.contains("300"), "{msg}");
    }

    #[test]
    fn happy_path_does_not_allocate() {
        let row = obj(json!({
            "id": 12345, "neg": -7, "big": u64::MAX, "f": 0.30000000000000004, "tiny": 1.5e-100,
            "s": "text", "é": ["a", 1, true, null, {"deep": [[[[2.5]]]]}], "m": {"k": false}
        }));
        let sort_key = "2024-01-01#00001";
        let before = allocations();
        let result = check_row(&row, sort_key, 200);
        let after = allocations();
        assert!(result.is_ok());
        assert_eq!(after - before, 0);
    }
}
