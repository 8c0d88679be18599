//! Base-10 strings for ECDSA `r` and `s` (Go `big.Int.String()` / `SetString(s, 10)`), without a bignum crate.

/// Big-endian 32-byte value of a decimal string; `None` if not all digits or ≥ 2^256.
pub fn decimal_to_be32(digits: &str) -> Option<[u8; 32]> {
    if digits.is_empty() {
        return None;
    }
    let mut out = [0u8; 32];
    for d in digits.bytes() {
        if !d.is_ascii_digit() {
            return None;
        }
        let mut carry = u32::from(d - b'0');
        for byte in out.iter_mut().rev() {
            let v = u32::from(*byte) * 10 + carry;
            *byte = (v & 0xff) as u8;
            carry = v >> 8;
        }
        if carry != 0 {
            return None;
        }
    }
    Some(out)
}

/// Decimal string of a big-endian value, no leading zeros ("0" for zero).
pub fn be_to_decimal(bytes: &[u8]) -> String {
    let mut n = bytes.to_vec();
    let mut digits = Vec::new();
    while n.iter().any(|&b| b != 0) {
        let mut rem = 0u32;
        for byte in n.iter_mut() {
            let v = (rem << 8) | u32::from(*byte);
            *byte = (v / 10) as u8;
            rem = v % 10;
        }
        digits.push(b'0' + rem as u8);
    }
    if digits.is_empty() {
        return "0".to_owned();
    }
    digits.reverse();
    String::from_utf8(digits).expect("ASCII digits")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_values() {
        let mut v = [0u8; 32];
        v[30] = 0x01;
        v[31] = 0x00;
        assert_eq!(be_to_decimal(&v), "256");
        assert_eq!(decimal_to_be32("256"), Some(v));
        assert_eq!(decimal_to_be32("0000256"), Some(v));
        let max = "115792089237316195423570985008687907853269984665640564039457584007913129639935";
        assert_eq!(decimal_to_be32(max), Some([0xff; 32]));
        assert_eq!(be_to_decimal(&[0xff; 32]), max);
        assert_eq!(
            decimal_to_be32(
                "115792089237316195423570985008687907853269984665640564039457584007913129639936"
            ),
            None
        );
        assert_eq!(decimal_to_be32("12a"), None);
        assert_eq!(be_to_decimal(&[0, 0]), "0");
    }
}
