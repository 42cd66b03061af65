//! `datetime.fromtimestamp(seconds, timezone.utc)`'s fields, worked out as CPython does, so the
//! bindings can make each datetime with one call of the `datetime` constructor: under the
//! stable ABI, `fromtimestamp` costs a Python method call and a second datetime (`fromutc`),
//! twice per pod of a 100,000-pod listing.

/// `(year, month, day, hour, minute, second, microsecond)` of `seconds` after the epoch, UTC,
/// rounded as `datetime.fromtimestamp` rounds (`_PyTime_ObjectToTimeval`, half to even).
/// `None` outside the years `datetime` holds (the caller then asks Python itself).
pub fn utc_fields(seconds: f64) -> Option<(i64, u32, u32, u32, u32, u32, u32)> {
    if !seconds.is_finite() {
        return None;
    }
    let mut whole = seconds.trunc();
    let mut micros = ((seconds - whole) * 1e6).round_ties_even();
    if micros >= 1e6 {
        micros -= 1e6;
        whole += 1.0;
    } else if micros < 0.0 {
        micros += 1e6;
        whole -= 1.0;
    }
    // Years 1..=9999 are within ±2.6e11 s of the epoch: beyond that, no datetime.
    if whole.abs() > 3e11 {
        return None;
    }
    let whole = whole as i64;
    let (days, of_day) = (whole.div_euclid(86_400), whole.rem_euclid(86_400));
    let (year, month, day) = civil_from_days(days);
    if !(1..=9999).contains(&year) {
        return None;
    }
    let of_day = of_day as u32;
    Some((year, month, day, of_day / 3600, of_day % 3600 / 60, of_day % 60, micros as u32))
}

/// The proleptic Gregorian date `days` after 1970-01-01 (H. Hinnant's `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097);
    let year_of_era = (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let shifted_month = (5 * day_of_year + 2) / 153;
    let day = (day_of_year - (153 * shifted_month + 2) / 5 + 1) as u32;
    let month = if shifted_month < 10 { shifted_month + 3 } else { shifted_month - 9 } as u32;
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::utc_fields;

    #[test]
    fn dates_and_times_as_python_gives_them() {
        // Values from `datetime.fromtimestamp(s, timezone.utc)`.
        assert_eq!(utc_fields(0.0), Some((1970, 1, 1, 0, 0, 0, 0)));
        assert_eq!(utc_fields(951_782_400.0), Some((2000, 2, 29, 0, 0, 0, 0)));
        assert_eq!(utc_fields(1_700_000_000.5), Some((2023, 11, 14, 22, 13, 20, 500_000)));
        assert_eq!(utc_fields(1_796_083_199.999_999), Some((2026, 11, 30, 23, 59, 59, 999_999)));
        assert_eq!(utc_fields(-1.25), Some((1969, 12, 31, 23, 59, 58, 750_000)));
        assert_eq!(utc_fields(253_402_300_799.0), Some((9999, 12, 31, 23, 59, 59, 0)));
    }

    #[test]
    fn microseconds_round_half_to_even_and_carry() {
        // 0.9999995 s: 999999.5 µs, which rounds to the even 1000000, carried into the second.
        assert_eq!(utc_fields(0.999_999_5).map(|f| (f.5, f.6)), Some((1, 0)));
        assert_eq!(utc_fields(1e-7), Some((1970, 1, 1, 0, 0, 0, 0)));
    }

    #[test]
    fn beyond_datetime_is_left_to_python() {
        assert_eq!(utc_fields(253_402_300_800.0), None);
        assert_eq!(utc_fields(f64::NAN), None);
        assert_eq!(utc_fields(1e300), None);
    }
}
