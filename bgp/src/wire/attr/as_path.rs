//! AS_PATH and AS4_PATH values (RFC 4271 section 4.3, RFC 5065 for confederation segments,
//! RFC 6793 for 4-octet AS numbers).

use serde::Serialize;
use std::fmt;

/// The reserved 2-octet AS that stands in for a 4-octet one (RFC 6793 section 9).
pub const AS_TRANS: u32 = 23456;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum SegmentKind {
    Set = 1,
    Sequence = 2,
    ConfedSequence = 3,
    ConfedSet = 4,
}

impl SegmentKind {
    pub fn from_u8(v: u8) -> Option<Self> {
        Some(match v {
            1 => SegmentKind::Set,
            2 => SegmentKind::Sequence,
            3 => SegmentKind::ConfedSequence,
            4 => SegmentKind::ConfedSet,
            _ => return None,
        })
    }

    pub fn is_confed(self) -> bool {
        matches!(self, SegmentKind::ConfedSequence | SegmentKind::ConfedSet)
    }
}

/// One segment. On the wire a segment holds 1 to 255 AS numbers; longer sequences are split
/// when encoded, and a longer set cannot be encoded (splitting it would change its length).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct AsSegment {
    pub kind: SegmentKind,
    pub asns: Vec<u32>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct AsPath {
    pub segments: Vec<AsSegment>,
}

impl AsPath {
    /// A path of one AS_SEQUENCE.
    pub fn sequence(asns: impl Into<Vec<u32>>) -> Self {
        let asns = asns.into();
        if asns.is_empty() {
            return AsPath::default();
        }
        AsPath {
            segments: vec![AsSegment {
                kind: SegmentKind::Sequence,
                asns,
            }],
        }
    }

    /// The length the decision process compares (RFC 4271 section 9.1.2.2 a): an AS_SET counts
    /// as one, confederation segments do not count (RFC 5065 section 5.3).
    pub fn route_len(&self) -> usize {
        self.segments
            .iter()
            .map(|s| match s.kind {
                SegmentKind::Sequence => s.asns.len(),
                SegmentKind::Set => 1,
                SegmentKind::ConfedSequence | SegmentKind::ConfedSet => 0,
            })
            .sum()
    }

    /// The neighbouring AS: the first AS of a leading AS_SEQUENCE (RFC 4271 section 9.1.2.2 c).
    pub fn first_as(&self) -> Option<u32> {
        let seg = self.segments.iter().find(|s| !s.kind.is_confed())?;
        match seg.kind {
            SegmentKind::Sequence => seg.asns.first().copied(),
            _ => None,
        }
    }

    pub fn contains(&self, asn: u32) -> bool {
        self.segments.iter().any(|s| s.asns.contains(&asn))
    }

    /// Occurrences of `asn` anywhere in the path (for `allowas-in`-style loop checks).
    pub fn count(&self, asn: u32) -> usize {
        self.segments
            .iter()
            .map(|s| s.asns.iter().filter(|&&a| a == asn).count())
            .sum()
    }

    /// Prepends `asn` to the leading AS_SEQUENCE, creating one if needed, as an eBGP speaker does
    /// when it passes a route on (RFC 4271 section 5.1.2).
    pub fn prepend(&mut self, asn: u32) {
        match self.segments.first_mut() {
            Some(seg) if seg.kind == SegmentKind::Sequence && seg.asns.len() < 255 => {
                seg.asns.insert(0, asn)
            }
            _ => self.segments.insert(
                0,
                AsSegment {
                    kind: SegmentKind::Sequence,
                    asns: vec![asn],
                },
            ),
        }
    }

    pub fn has_4_octet_asn(&self) -> bool {
        self.segments
            .iter()
            .any(|s| s.asns.iter().any(|&a| a > u32::from(u16::MAX)))
    }

    /// The AS4_PATH a 4-octet speaker sends beside a 2-octet AS_PATH: the same path without
    /// confederation segments (RFC 6793 section 4.2.2).
    pub fn without_confed(&self) -> AsPath {
        AsPath {
            segments: self
                .segments
                .iter()
                .filter(|s| !s.kind.is_confed())
                .cloned()
                .collect(),
        }
    }

    /// RFC 6793 section 4.2.3: rebuild the true path from AS_PATH (self) and AS4_PATH. When
    /// AS_PATH is shorter than AS4_PATH the AS4_PATH is ignored.
    pub fn merge_as4(&self, as4: &AsPath) -> AsPath {
        let as4 = as4.without_confed();
        let (n, n4) = (self.route_len(), as4.route_len());
        if n < n4 {
            return self.clone();
        }
        let mut keep = n - n4;
        let mut segments = Vec::new();
        for seg in &self.segments {
            // Leading confederation segments are always kept (they do not count).
            if keep == 0 && !seg.kind.is_confed() {
                break;
            }
            match seg.kind {
                SegmentKind::Sequence => {
                    let take = keep.min(seg.asns.len());
                    segments.push(AsSegment {
                        kind: seg.kind,
                        asns: seg.asns[..take].to_vec(),
                    });
                    keep -= take;
                }
                SegmentKind::Set => {
                    segments.push(seg.clone());
                    keep -= 1;
                }
                SegmentKind::ConfedSequence | SegmentKind::ConfedSet => segments.push(seg.clone()),
            }
        }
        for seg in as4.segments {
            match segments.last_mut() {
                // Join the two halves where both are sequences: one path, not two segments.
                Some(last)
                    if last.kind == SegmentKind::Sequence && seg.kind == SegmentKind::Sequence =>
                {
                    last.asns.extend(seg.asns)
                }
                _ => segments.push(seg),
            }
        }
        AsPath { segments }
    }
}

impl fmt::Display for AsPath {
    /// BIRD's and FRR's notation: sequences as space-separated numbers, sets in braces,
    /// confederation sequences in parentheses, confederation sets in square brackets.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        for seg in &self.segments {
            let (open, close) = match seg.kind {
                SegmentKind::Sequence => ("", ""),
                SegmentKind::Set => ("{", "}"),
                SegmentKind::ConfedSequence => ("(", ")"),
                SegmentKind::ConfedSet => ("[", "]"),
            };
            if !first {
                f.write_str(" ")?;
            }
            first = false;
            f.write_str(open)?;
            let sep =
                if seg.kind == SegmentKind::Sequence || seg.kind == SegmentKind::ConfedSequence {
                    " "
                } else {
                    ","
                };
            for (i, a) in seg.asns.iter().enumerate() {
                if i > 0 {
                    f.write_str(sep)?;
                }
                write!(f, "{a}")?;
            }
            f.write_str(close)?;
        }
        Ok(())
    }
}
