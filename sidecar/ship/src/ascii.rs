//! Short ASCII strings of a fixed length (country codes, hash digests) that
//! events carry by value: no allocation per event.

/// `N` ASCII bytes, shown and serialised as a string.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Ascii<const N: usize>([u8; N]);

/// An ISO 3166 alpha-2 country code.
pub type Country = Ascii<2>;
/// 16 bytes of a digest as 32 lowercase hex digits.
pub type Hex16 = Ascii<32>;

impl<const N: usize> Ascii<N> {
    /// `bytes`, if all are ASCII.
    pub fn new(bytes: [u8; N]) -> Option<Ascii<N>> {
        bytes.is_ascii().then_some(Ascii(bytes))
    }

    pub fn as_str(&self) -> &str {
        std::str::from_utf8(&self.0).expect("ASCII")
    }
}

impl Country {
    /// Two uppercase letters, as the range files and MaxMind DBs write them.
    pub fn parse(cc: &str) -> Option<Country> {
        let b: [u8; 2] = cc.as_bytes().try_into().ok()?;
        b.iter().all(u8::is_ascii_uppercase).then_some(Ascii(b))
    }
}

impl<const N: usize> std::fmt::Debug for Ascii<N> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl<const N: usize> serde::Serialize for Ascii<N> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}
