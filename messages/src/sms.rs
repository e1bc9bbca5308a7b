//! How long an SMS is in what an operator bills: segments (3GPP TS 23.038 and 23.040).
//!
//! A text made only of the GSM 7-bit default alphabet (and its extension table, whose
//! characters take an escape and so two septets) fits 160 septets in one message, or 153 per
//! segment once it is split (the user-data header takes the rest). One character outside it,
//! the rupee sign included, makes the whole text UCS-2: 70 UTF-16 units in one message, 67 per
//! segment. A segment never splits an escape sequence or a surrogate pair.

/// The GSM 03.38 default alphabet, in table order (0x1B, the escape, is left out).
const BASIC: &str = "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?\
¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà";

/// The extension table: each is sent as escape + character, two septets.
const EXTENSION: &str = "\u{000C}^{}\\[~]|€";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    Gsm7,
    Ucs2,
}

impl Encoding {
    pub const fn as_str(self) -> &'static str {
        match self {
            Encoding::Gsm7 => "GSM-7",
            Encoding::Ucs2 => "UCS-2",
        }
    }
}

/// A text's encoding and how many segments it is sent as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SmsLength {
    pub encoding: Encoding,
    /// Septets (GSM-7) or UTF-16 code units (UCS-2).
    pub units: usize,
    pub segments: usize,
}

/// Septets one character takes in GSM-7, or `None` if it is not in the alphabet.
fn septets(c: char) -> Option<usize> {
    if BASIC.contains(c) {
        Some(1)
    } else if EXTENSION.contains(c) {
        Some(2)
    } else {
        None
    }
}

/// Segments needed for items of the given sizes, `single` fitting unsplit and `per_segment`
/// once split, no item divided between two segments.
fn pack(sizes: &[usize], single: usize, per_segment: usize) -> usize {
    let total: usize = sizes.iter().sum();
    if total == 0 {
        return 1;
    }
    if total <= single {
        return 1;
    }
    let mut segments = 1;
    let mut used = 0;
    for &size in sizes {
        if used + size > per_segment {
            segments += 1;
            used = 0;
        }
        used += size;
    }
    segments
}

/// The text in the GSM-7 alphabet: look-alikes replaced (AMFI's master has a scheme named
/// "...Regular` Plan", and a backtick alone would make an SMS UCS-2, halving what fits), any
/// other character outside it dropped. An SMS is sent as this.
pub fn to_gsm7(text: &str) -> String {
    text.chars()
        .filter_map(|c| match c {
            c if septets(c).is_some() => Some(c),
            '`' | '\u{2018}' | '\u{2019}' | '\u{00B4}' => Some('\''),
            '\u{201C}' | '\u{201D}' => Some('"'),
            '\u{2013}' | '\u{2014}' | '\u{2212}' => Some('-'),
            '\u{00A0}' | '\t' => Some(' '),
            _ => None,
        })
        .collect()
}

pub fn sms_length(text: &str) -> SmsLength {
    let gsm: Option<Vec<usize>> = text.chars().map(septets).collect();
    match gsm {
        Some(sizes) => SmsLength {
            encoding: Encoding::Gsm7,
            units: sizes.iter().sum(),
            segments: pack(&sizes, 160, 153),
        },
        None => {
            let sizes: Vec<usize> = text.chars().map(char::len_utf16).collect();
            SmsLength {
                encoding: Encoding::Ucs2,
                units: sizes.iter().sum(),
                segments: pack(&sizes, 70, 67),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn look_alikes_become_gsm7_and_the_rest_is_dropped() {
        assert_eq!(to_gsm7("Regular` Plan"), "Regular' Plan");
        assert_eq!(to_gsm7("“Fund” – ‘A’"), "\"Fund\" - 'A'");
        assert_eq!(to_gsm7("₹5 😀 ok"), "5  ok");
        assert_eq!(
            sms_length(&to_gsm7("any ` text € ₹")).encoding,
            Encoding::Gsm7
        );
    }

    #[test]
    fn the_alphabet_has_its_127_printable_entries_and_ten_extensions() {
        // 128 code points less the escape.
        assert_eq!(BASIC.chars().count(), 127);
        assert_eq!(EXTENSION.chars().count(), 10);
    }

    #[test]
    fn segment_boundaries_follow_ts_23_040() {
        let gsm = |n: usize| sms_length(&"a".repeat(n));
        assert_eq!(gsm(0).segments, 1);
        assert_eq!(gsm(160).segments, 1);
        assert_eq!(gsm(161).segments, 2);
        assert_eq!(gsm(306).segments, 2);
        assert_eq!(gsm(307).segments, 3);
        assert_eq!(gsm(459).segments, 3);
        assert_eq!(gsm(160).encoding, Encoding::Gsm7);
        // An extension character costs two septets: 80 euro signs fill one message exactly.
        assert_eq!(sms_length(&"€".repeat(80)).units, 160);
        assert_eq!(sms_length(&"€".repeat(80)).segments, 1);
        assert_eq!(sms_length(&"€".repeat(81)).segments, 2);
        // ...and never straddles two segments: 152 septets then an escape pair need a second.
        let straddle = format!("{}€{}", "a".repeat(152), "a".repeat(10));
        assert_eq!(sms_length(&straddle).units, 164);
        assert_eq!(sms_length(&straddle).segments, 2);
        let tight = format!("{}€{}", "a".repeat(152), "a".repeat(153));
        assert_eq!(sms_length(&tight).segments, 3);
    }

    #[test]
    fn one_rupee_sign_makes_the_whole_text_ucs2() {
        let text = format!("₹{}", "a".repeat(69));
        assert_eq!(sms_length(&text).encoding, Encoding::Ucs2);
        assert_eq!(sms_length(&text).segments, 1);
        let text = format!("₹{}", "a".repeat(70));
        assert_eq!(sms_length(&text).segments, 2);
        assert_eq!(sms_length(&"अ".repeat(134)).segments, 2);
        assert_eq!(sms_length(&"अ".repeat(135)).segments, 3);
        // A character outside the BMP is a surrogate pair: two units, kept together.
        assert_eq!(sms_length(&"😀".repeat(35)).segments, 1);
        assert_eq!(sms_length(&"😀".repeat(36)).segments, 2);
        assert_eq!(sms_length("😀").units, 2);
    }
}
