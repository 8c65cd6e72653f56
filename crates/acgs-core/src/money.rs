//! Money as integer micro-dollars.
//!
//! [`Usd`] never touches floating point: it parses decimal text exactly ("10.00", "0.025"),
//! displays exact decimals, and all arithmetic is checked or saturating so it cannot panic.
//! Rates that multiply (tokens × price per million) go through `i128` in [`Usd::mul_div_ceil`].

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::Error;

/// Micro-dollars in one dollar.
pub const MICROS_PER_USD: i64 = 1_000_000;

/// An amount of US dollars, stored as integer micro-dollars (µ$).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Usd(i64);

impl Usd {
    /// Zero dollars.
    pub const ZERO: Self = Self(0);
    /// The largest representable amount.
    pub const MAX: Self = Self(i64::MAX);

    /// An amount from micro-dollars.
    #[must_use]
    pub const fn from_micros(micros: i64) -> Self {
        Self(micros)
    }

    /// An amount from whole dollars, saturating.
    #[must_use]
    pub const fn from_dollars(dollars: i64) -> Self {
        Self(dollars.saturating_mul(MICROS_PER_USD))
    }

    /// The amount in micro-dollars.
    #[must_use]
    pub const fn micros(self) -> i64 {
        self.0
    }

    /// Sum, or `None` on overflow.
    #[must_use]
    pub const fn checked_add(self, other: Self) -> Option<Self> {
        match self.0.checked_add(other.0) {
            Some(v) => Some(Self(v)),
            None => None,
        }
    }

    /// Difference, or `None` on overflow.
    #[must_use]
    pub const fn checked_sub(self, other: Self) -> Option<Self> {
        match self.0.checked_sub(other.0) {
            Some(v) => Some(Self(v)),
            None => None,
        }
    }

    /// Sum that stops at the bounds instead of overflowing.
    #[must_use]
    pub const fn saturating_add(self, other: Self) -> Self {
        Self(self.0.saturating_add(other.0))
    }

    /// Difference that stops at the bounds instead of overflowing.
    #[must_use]
    pub const fn saturating_sub(self, other: Self) -> Self {
        Self(self.0.saturating_sub(other.0))
    }

    /// `self × factor`, or `None` on overflow.
    #[must_use]
    pub const fn checked_mul(self, factor: i64) -> Option<Self> {
        match self.0.checked_mul(factor) {
            Some(v) => Some(Self(v)),
            None => None,
        }
    }

    /// `self × numerator ÷ denominator`, rounded up (for estimates), computed in `i128`.
    /// `None` when `denominator` is zero or the result does not fit.
    #[must_use]
    pub fn mul_div_ceil(self, numerator: i64, denominator: i64) -> Option<Self> {
        if denominator == 0 {
            return None;
        }
        let product = i128::from(self.0) * i128::from(numerator);
        let d = i128::from(denominator);
        let q = product.div_euclid(d);
        let r = product.rem_euclid(d);
        let rounded = if r == 0 { q } else { q + 1 };
        i64::try_from(rounded).ok().map(Self)
    }

    /// `self × numerator ÷ denominator`, rounded half-up (for actual costs), computed in `i128`.
    #[must_use]
    pub fn mul_div_round(self, numerator: i64, denominator: i64) -> Option<Self> {
        if denominator == 0 {
            return None;
        }
        let product = i128::from(self.0) * i128::from(numerator);
        let d = i128::from(denominator);
        let q = product.div_euclid(d);
        let r = product.rem_euclid(d);
        let rounded = if r * 2 >= d.abs() { q + 1 } else { q };
        i64::try_from(rounded).ok().map(Self)
    }

    /// Parse a decimal amount exactly: `"10"`, `"10.00"`, `"0.025"`, optionally with a leading `$`.
    /// More than six decimals is an error, never a silent rounding.
    pub fn parse(text: &str) -> Result<Self, Error> {
        let invalid = |reason| Error::InvalidAmount {
            input: text.chars().take(40).collect(),
            reason,
        };
        let trimmed = text.trim();
        let trimmed = trimmed.strip_prefix('$').unwrap_or(trimmed);
        let (negative, digits) = match trimmed.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, trimmed),
        };
        let (whole, frac) = digits.split_once('.').unwrap_or((digits, ""));
        if whole.is_empty() && frac.is_empty() {
            return Err(invalid("no digits"));
        }
        if !whole.bytes().all(|b| b.is_ascii_digit()) || !frac.bytes().all(|b| b.is_ascii_digit()) {
            return Err(invalid("only digits and one decimal point are allowed"));
        }
        if frac.len() > 6 {
            return Err(invalid("more than six decimal places"));
        }
        let whole_value: i64 = if whole.is_empty() {
            0
        } else {
            whole.parse().map_err(|_| invalid("too large"))?
        };
        let mut frac_value: i64 = 0;
        for b in frac.bytes().chain(std::iter::repeat(b'0')).take(6) {
            frac_value = frac_value * 10 + i64::from(b - b'0');
        }
        let micros = whole_value
            .checked_mul(MICROS_PER_USD)
            .and_then(|w| w.checked_add(frac_value))
            .ok_or_else(|| invalid("too large"))?;
        Ok(Self(if negative { -micros } else { micros }))
    }
}

impl fmt::Display for Usd {
    /// At least two decimals, at most six, trailing zeros beyond the second dropped:
    /// `10.00`, `0.025`, `0.000001`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let negative = self.0 < 0;
        let abs = self.0.unsigned_abs();
        let micros = u64::try_from(MICROS_PER_USD).unwrap_or(1_000_000);
        let whole = abs / micros;
        let frac = abs % micros;
        let mut frac_text = format!("{frac:06}");
        while frac_text.len() > 2 && frac_text.ends_with('0') {
            frac_text.pop();
        }
        let sign = if negative { "-" } else { "" };
        write!(f, "{sign}{whole}.{frac_text}")
    }
}

impl FromStr for Usd {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl Serialize for Usd {
    /// Money in JSON is a decimal string, never a float.
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Usd {
    /// Accepts a decimal string, an integer, or a float from TOML (`10.00`); floats are read through
    /// their shortest decimal form, so `0.025` is exactly 25,000 µ$.
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = Usd;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a dollar amount such as \"10.00\"")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Usd, E> {
                Usd::parse(v).map_err(E::custom)
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Usd, E> {
                v.checked_mul(MICROS_PER_USD)
                    .map(Usd)
                    .ok_or_else(|| E::custom("amount too large"))
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Usd, E> {
                i64::try_from(v)
                    .map_err(|_| E::custom("amount too large"))
                    .and_then(|v| self.visit_i64(v))
            }
            fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Usd, E> {
                if !v.is_finite() {
                    return Err(E::custom("amount must be finite"));
                }
                Usd::parse(&v.to_string()).map_err(E::custom)
            }
        }
        deserializer.deserialize_any(Visitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parses_exact_decimals() {
        assert_eq!(Usd::parse("10.00").ok(), Some(Usd::from_micros(10_000_000)));
        assert_eq!(Usd::parse("0.025").ok(), Some(Usd::from_micros(25_000)));
        assert_eq!(Usd::parse("$3").ok(), Some(Usd::from_micros(3_000_000)));
        assert_eq!(Usd::parse(".5").ok(), Some(Usd::from_micros(500_000)));
        assert_eq!(Usd::parse("0.000001").ok(), Some(Usd::from_micros(1)));
    }

    #[test]
    fn refuses_inexact_or_malformed_text() {
        for bad in [
            "",
            ".",
            "1.0000001",
            "1e3",
            "1,5",
            "abc",
            "1.2.3",
            "99999999999999999999",
        ] {
            assert!(Usd::parse(bad).is_err(), "{bad:?} should be refused");
        }
    }

    #[test]
    fn displays_at_least_two_decimals() {
        assert_eq!(Usd::from_micros(10_000_000).to_string(), "10.00");
        assert_eq!(Usd::from_micros(25_000).to_string(), "0.025");
        assert_eq!(Usd::from_micros(1).to_string(), "0.000001");
        assert_eq!(Usd::from_micros(-1_500_000).to_string(), "-1.50");
    }

    #[test]
    fn toml_floats_are_read_exactly() {
        #[derive(Deserialize)]
        struct T {
            a: Usd,
            b: Usd,
        }
        let t: T = toml::from_str("a = 0.025\nb = 10.00").expect("parses");
        assert_eq!(t.a.micros(), 25_000);
        assert_eq!(t.b.micros(), 10_000_000);
    }

    #[test]
    fn json_is_a_decimal_string() {
        let json = serde_json::to_string(&Usd::from_micros(25_000)).expect("serializes");
        assert_eq!(json, "\"0.025\"");
    }

    #[test]
    fn rounding_directions() {
        let rate = Usd::from_micros(300_000); // $0.30 per 1M tokens
        assert_eq!(rate.mul_div_ceil(1, 1_000_000), Some(Usd::from_micros(1)));
        assert_eq!(rate.mul_div_round(1, 1_000_000), Some(Usd::ZERO));
        assert_eq!(rate.mul_div_round(5, 3_000_000), Some(Usd::from_micros(1)));
        assert_eq!(rate.mul_div_ceil(1, 0), None);
    }

    proptest! {
        #[test]
        fn display_then_parse_round_trips(micros in any::<i64>().prop_filter("not MIN", |m| *m != i64::MIN)) {
            let usd = Usd::from_micros(micros);
            prop_assert_eq!(Usd::parse(&usd.to_string()).ok(), Some(usd));
        }

        #[test]
        fn arithmetic_never_panics(a in any::<i64>(), b in any::<i64>(), n in any::<i64>(), d in any::<i64>()) {
            let (a, b) = (Usd::from_micros(a), Usd::from_micros(b));
            let _ = a.checked_add(b);
            let _ = a.checked_sub(b);
            let _ = a.saturating_add(b);
            let _ = a.saturating_sub(b);
            let _ = a.checked_mul(n);
            let _ = a.mul_div_ceil(n, d);
            let _ = a.mul_div_round(n, d);
        }

        #[test]
        fn parse_matches_integer_arithmetic(whole in 0i64..1_000_000_000, frac in 0i64..1_000_000) {
            let text = format!("{whole}.{frac:06}");
            prop_assert_eq!(Usd::parse(&text).ok(), Some(Usd::from_micros(whole * 1_000_000 + frac)));
        }

        #[test]
        fn parse_never_panics(text in ".{0,40}") {
            let _ = Usd::parse(&text);
        }
    }
}

/// A quantity in a price's unit (images, megapixels, seconds), exact to a millionth: what a
/// provider reports it billed (`3.008` seconds). Parsed and shown like an amount, never as a
/// float; never negative.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Units(u64);

impl Units {
    /// Decimal text (`2`, `2.5`, `3.008`); `None` for anything else, a negative number or more
    /// than six decimals.
    #[must_use]
    pub fn parse(text: &str) -> Option<Self> {
        let text = text.trim();
        if text.starts_with(['-', '+']) {
            return None;
        }
        let amount = Usd::parse(text).ok()?;
        u64::try_from(amount.micros()).ok().map(Self)
    }

    /// A whole number of units.
    #[must_use]
    pub const fn whole(n: u64) -> Self {
        Self(n.saturating_mul(1_000_000))
    }

    /// The quantity in millionths.
    #[must_use]
    pub const fn millionths(self) -> u64 {
        self.0
    }
}

impl fmt::Display for Units {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (whole, fraction) = (self.0 / 1_000_000, self.0 % 1_000_000);
        if fraction == 0 {
            return write!(f, "{whole}");
        }
        let digits = format!("{fraction:06}");
        write!(f, "{whole}.{}", digits.trim_end_matches('0'))
    }
}

impl Serialize for Units {
    /// A decimal string, like money.
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Units {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Self::parse(&text).ok_or_else(|| serde::de::Error::custom("a quantity such as \"2.5\""))
    }
}

/// What a request asked for and what the provider said it billed, each in the price's unit
/// (recorded in manifests and audit entries beside the cost).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Quantity {
    /// The quantity the estimate priced.
    pub requested: u64,
    /// The quantity the provider reported billing, when it reported one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub billed: Option<Units>,
}

#[cfg(test)]
mod units_tests {
    use super::Units;

    #[test]
    fn billed_quantities_are_exact_decimals() {
        assert_eq!(
            Units::parse("3.008").map(Units::millionths),
            Some(3_008_000)
        );
        assert_eq!(
            Units::parse("2").map(|u| u.to_string()).as_deref(),
            Some("2")
        );
        assert_eq!(
            Units::parse(" 2.50 ").map(|u| u.to_string()).as_deref(),
            Some("2.5")
        );
        assert_eq!(Units::whole(4).to_string(), "4");
        for bad in ["", "-1", "+1", "1e3", "NaN", "inf", "1.0000001", "two"] {
            assert_eq!(Units::parse(bad), None, "{bad}");
        }
    }
}
