//! Cron schedules and their time zones.
//!
//! Time zones come from jiff's bundled copy of the IANA database (about half a megabyte in a
//! binary; chrono-tz's generated tables were two).

use chrono::{DateTime, Utc};
use croner::parser::{CronParser, Seconds, Year};
use croner::Cron;
use jiff::tz::TimeZone;

/// A standard 5-field cron expression (minute hour day-of-month month day-of-week), as
/// `0 2 * * *`. Exists only when valid.
#[derive(Debug, Clone)]
pub struct CronSchedule {
    text: String,
    cron: Cron,
}

impl CronSchedule {
    pub fn parse(s: &str) -> Result<Self, String> {
        let text = s.split_whitespace().collect::<Vec<_>>().join(" ");
        let fields = text.split(' ').filter(|f| !f.is_empty()).count();
        if fields != 5 {
            return Err(format!("must be a 5-field cron expression (minute hour day-of-month month day-of-week), got {fields} field(s)"));
        }
        // As vixie cron: when day-of-month and day-of-week are both restricted, a day matching
        // either runs; when either field starts with `*` (`*`, `*/15`), a day must match both.
        let days: Vec<&str> = text.split(' ').skip(2).step_by(2).collect();
        let both = days.iter().any(|field| field.starts_with('*'));
        let parser = CronParser::builder().seconds(Seconds::Disallowed).year(Year::Disallowed).dom_and_dow(both).build();
        let cron = parser.parse(&text).map_err(|e| format!("is not a valid cron expression: {e}"))?;
        Ok(Self { text, cron })
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Whether the schedule fires more often than every 5 minutes on average over a week (more
    /// than 2016 slots): what the frequent-schedules quota counts. Working days only, every
    /// minute from 9 to 5, is frequent; every minute of one hour a day is not.
    pub fn is_frequent(&self) -> bool {
        const WEEKLY: usize = 7 * 24 * 12;
        // A fixed week (from a Monday, in UTC), so the answer never depends on when it is asked.
        let Ok(start) = jiff::Timestamp::from_second(1_767_571_200) else { return false };
        let (start, end) = (start.to_zoned(TimeZone::UTC), start.as_second() + 7 * 86_400);
        self.cron.iter_after(start).take(WEEKLY + 1).take_while(|slot| slot.timestamp().as_second() < end).count() > WEEKLY
    }

    /// The first slot strictly after `after`, in `tz` (daylight-saving changes included).
    pub fn next_after(&self, after: DateTime<Utc>, tz: &Timezone) -> Option<DateTime<Utc>> {
        let start = jiff::Timestamp::new(after.timestamp(), after.timestamp_subsec_nanos() as i32).ok()?.to_zoned(tz.0.clone());
        let next = self.cron.find_next_occurrence(&start, false).ok()?.timestamp();
        DateTime::from_timestamp(next.as_second(), next.subsec_nanosecond() as u32)
    }
}

impl PartialEq for CronSchedule {
    fn eq(&self, other: &Self) -> bool {
        self.text == other.text
    }
}

/// An IANA time zone name (`Europe/Paris`); UTC when a pipeline names none.
#[derive(Debug, Clone)]
pub struct Timezone(TimeZone);

impl Timezone {
    pub const UTC: Timezone = Timezone(TimeZone::UTC);

    pub fn parse(s: &str) -> Result<Self, String> {
        let invalid = || format!("'{s}' is not an IANA time zone (such as Europe/Paris)");
        // jiff also reads POSIX TZ strings and fixed offsets; a pipeline names a zone.
        if s.is_empty() || !s.chars().all(|c| c.is_ascii_alphanumeric() || "/_+-".contains(c)) {
            return Err(invalid());
        }
        let tz = jiff::tz::db().get(s).map_err(|_| invalid())?;
        Ok(Self(tz))
    }

    /// The zone's name as the database spells it.
    pub fn name(&self) -> &str {
        self.0.iana_name().unwrap_or("UTC")
    }
}

impl PartialEq for Timezone {
    fn eq(&self, other: &Self) -> bool {
        self.name() == other.name()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn frequent_means_more_often_than_every_five_minutes_over_a_week() {
        let frequent = |s: &str| CronSchedule::parse(s).unwrap().is_frequent();
        for s in ["* * * * *", "*/4 * * * *", "* 9-17 * * 1-5", "0-59/2 * * * *"] {
            assert!(frequent(s), "{s}");
        }
        for s in ["*/5 * * * *", "*/6 * * * *", "* 2 * * *", "0 2 * * *", "* * 1 * *", "* * 29 2 *"] {
            assert!(!frequent(s), "{s}");
        }
    }

    #[test]
    fn accepts_standard_five_field_expressions() {
        for ok in ["0 2 * * *", "*/5 * * * *", "0 9-17 * * 1-5", "30 1 1,15 * *", "0  2 * *  *"] {
            assert!(CronSchedule::parse(ok).is_ok(), "{ok}");
        }
        assert_eq!(CronSchedule::parse("0  2 * *  *").unwrap().as_str(), "0 2 * * *");
    }

    #[test]
    fn rejects_invalid_expressions() {
        for bad in ["", "* * * *", "0 0 2 * * *", "61 * * * *", "0 25 * * *", "a b c d e", "@daily", "0 0 32 * *"] {
            assert!(CronSchedule::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn next_slot_follows_the_time_zone_across_dst() {
        let cron = CronSchedule::parse("0 2 * * *").unwrap();
        assert_eq!(cron.next_after(at("2026-03-16T01:00:00Z"), &Timezone::UTC), Some(at("2026-03-16T02:00:00Z")));
        let paris = Timezone::parse("Europe/Paris").unwrap();
        // Winter: 02:00 Paris is 01:00 UTC; summer: 00:00 UTC.
        assert_eq!(cron.next_after(at("2026-01-10T12:00:00Z"), &paris), Some(at("2026-01-11T01:00:00Z")));
        assert_eq!(cron.next_after(at("2026-07-10T12:00:00Z"), &paris), Some(at("2026-07-11T00:00:00Z")));
    }

    /// As vixie cron: a slot in the spring-forward gap runs at the first instant after it; a
    /// slot in the fall-back overlap runs once, at the earlier instant.
    #[test]
    fn daylight_saving_gaps_run_late_and_overlaps_run_once() {
        let cron = CronSchedule::parse("30 2 * * *").unwrap();
        let paris = Timezone::parse("Europe/Paris").unwrap();
        // 2027-03-28: 02:00 CET jumps to 03:00 CEST; 02:30 does not exist.
        assert_eq!(cron.next_after(at("2027-03-27T12:00:00Z"), &paris), Some(at("2027-03-28T01:00:00Z")));
        assert_eq!(cron.next_after(at("2027-03-28T01:00:00Z"), &paris), Some(at("2027-03-29T00:30:00Z")));
        // 2027-10-31: 03:00 CEST falls back to 02:00 CET; 02:30 happens twice, fires once.
        let first = cron.next_after(at("2027-10-30T12:00:00Z"), &paris).unwrap();
        assert_eq!(first, at("2027-10-31T00:30:00Z"));
        assert_eq!(cron.next_after(first, &paris), Some(at("2027-11-01T01:30:00Z")));
        // An hourly schedule keeps firing every real hour through the overlap.
        let hourly = CronSchedule::parse("0 * * * *").unwrap();
        let slots: Vec<_> =
            std::iter::successors(Some(at("2027-10-30T23:30:00Z")), |t| hourly.next_after(*t, &paris)).skip(1).take(4).collect();
        assert_eq!(slots, [at("2027-10-31T00:00:00Z"), at("2027-10-31T01:00:00Z"), at("2027-10-31T02:00:00Z"), at("2027-10-31T03:00:00Z")]);
    }

    /// Vixie cron's rule for the two day fields, from `0 0 */15 * 1` (issue "hostile input").
    #[test]
    fn day_fields_follow_vixie_cron() {
        let days = |expr: &str, from: &str, n: usize| {
            let cron = CronSchedule::parse(expr).unwrap();
            std::iter::successors(Some(at(from)), |t| cron.next_after(*t, &Timezone::UTC))
                .skip(1)
                .take(n)
                .map(|t| t.format("%Y-%m-%d").to_string())
                .collect::<Vec<_>>()
        };
        // `*/15` starts with `*`: days 1, 16 and 31 that are also Mondays.
        assert_eq!(days("0 0 */15 * 1", "2026-05-01T00:00:00Z", 2), ["2026-06-01", "2026-08-31"]);
        // Both restricted: the 1st and 15th of the month, and every Monday.
        assert_eq!(days("0 0 1,15 * 1", "2026-06-01T00:00:00Z", 4), ["2026-06-08", "2026-06-15", "2026-06-22", "2026-06-29"]);
        // One of them `*`: the other alone decides.
        assert_eq!(days("0 0 * * 1", "2026-06-01T00:00:00Z", 2), ["2026-06-08", "2026-06-15"]);
        assert_eq!(days("0 0 13 * *", "2026-06-01T00:00:00Z", 2), ["2026-06-13", "2026-07-13"]);
    }

    #[test]
    fn time_zones_must_be_iana_names() {
        assert_eq!(Timezone::parse("America/New_York").unwrap().name(), "America/New_York");
        assert!(Timezone::parse("Mars/Olympus").is_err());
        assert!(Timezone::parse("").is_err());
        // Names are matched as the database spells them, whatever the case.
        assert_eq!(Timezone::parse("europe/paris").unwrap().name(), "Europe/Paris");
        assert_eq!(Timezone::parse("UTC").unwrap(), Timezone::UTC);
        // Not POSIX TZ strings, offsets or paths, which a zone lookup might otherwise accept.
        for bad in ["EST5EDT,M3.2.0,M11.1.0", "+02:00", "<+03>-3", "../../etc/passwd", "/usr/share/zoneinfo/UTC"] {
            assert!(Timezone::parse(bad).is_err(), "{bad}");
        }
    }
}
